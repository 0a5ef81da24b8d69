//! Chat messages: live ones, a room's history (replayed on entering, or asked for with
//! `/history`), the private messages kept for us while we were away, and the server's word
//! that a private message was kept for someone away.

use chat_core::names::fold;
use chat_core::protocol::{ChatMessage, ClientFrame, MessageAttr, Target};

use crate::sanitize::{sanitize_line, sanitize_text};
use crate::tui::app::{App, Effect, Entry, EntryKind, TabKind};
use crate::tui::entry::Quote;
use chat_core::names::conversation_key;

impl App {
    /// Shows a chat message in its tab (a room's, or the private conversation's); `history`
    /// marks one replayed from the server's store.
    pub(in crate::tui::app) fn show_message(
        &mut self,
        m: ChatMessage,
        history: bool,
    ) -> Vec<Effect> {
        if let Some(tag) = m.tag
            && let Some((kind, _)) = self.in_flight.remove(&tag)
        {
            // Where a `Queued` about it, which comes right after, belongs.
            self.last_echo = Some((tag, kind));
        }
        let own = fold(&m.from) == fold(&self.nick);
        if !own && self.ignored.contains(&m.from) {
            // Counted where it would have shown: its room, or the lobby for a private one.
            let i =
                m.to.room()
                    .and_then(|r| self.known_room_tab(r))
                    .unwrap_or(0);
            self.tabs[i].hidden += 1;
            return Vec::new();
        }
        let from = sanitize_line(&m.from);
        let entry = message_entry(&m, &self.nick, history);
        let mention = matches!(entry.kind, EntryKind::Message { mention: true, .. });
        let id = m.id;
        match m.to {
            Target::Room(room) => {
                let Some(i) = self.known_room_tab(&room) else {
                    return Vec::new();
                };
                if !self.tabs[i].saw(id) {
                    return Vec::new();
                }
                self.push(i, entry, !own, mention);
                if mention {
                    vec![Effect::Bell]
                } else {
                    Vec::new()
                }
            }
            // Ours: in the tab of the person, or of the group, it went to.
            Target::Users(to) if own => {
                let to: Vec<String> = to.iter().map(|n| sanitize_line(n)).collect();
                if let Some(kind) = TabKind::private(&to, &self.nick) {
                    let i = self.tab_for(&kind);
                    if self.tabs[i].saw(id) {
                        self.push(i, entry, false, false);
                    }
                }
                Vec::new()
            }
            // To us alone: the sender's tab; to us and others: the tab of everyone in it but
            // us, so that a reply goes to all of them.
            Target::Users(to) => {
                let people: Vec<String> = std::iter::once(from)
                    .chain(to.iter().map(|n| sanitize_line(n)))
                    .collect();
                let Some(kind) = TabKind::private(&people, &self.nick) else {
                    return Vec::new();
                };
                let i = self.tab_for(&kind);
                if !self.tabs[i].saw(id) {
                    return Vec::new();
                }
                self.push(i, entry, true, true);
                vec![Effect::Bell]
            }
        }
    }

    /// A page of a room's history: a replay on entering says only whether there is more; an
    /// answer to `/history` says what it found.
    pub(super) fn history(
        &mut self,
        room: &str,
        messages: Vec<ChatMessage>,
        more: bool,
    ) -> Vec<Effect> {
        let asked = self.history_asked.remove(&fold(room));
        // An answer that arrives after the room was left opens nothing.
        let Some(i) = self.known_room_tab(room) else {
            return Vec::new();
        };
        let shown = self.insert_history(i, messages);
        self.history_notice(i, shown, more, asked);
        Vec::new()
    }

    /// A page of a private conversation (an account's, protocol 6): into its tab, if it is
    /// still open.
    pub(super) fn private_history(
        &mut self,
        with: &[String],
        messages: Vec<ChatMessage>,
        more: bool,
    ) -> Vec<Effect> {
        let asked = self.history_asked.remove(&conversation_key(with));
        let kind = match with {
            [nick] => TabKind::Private { nick: nick.clone() },
            nicks => TabKind::Group {
                nicks: nicks.to_vec(),
            },
        };
        let Some(i) = self.tabs.iter().position(|t| t.kind.is(&kind)) else {
            return Vec::new();
        };
        let shown = self.insert_history(i, messages);
        self.history_notice(i, shown, more, asked);
        Vec::new()
    }

    /// Says in tab `i` what a page of history brought: always after `/history` (`asked`),
    /// otherwise only when there is more.
    fn history_notice(&mut self, i: usize, shown: usize, more: bool, asked: bool) {
        if asked || (shown > 0 && more) {
            let text = match (shown, more) {
                (0, false) => "no older messages".to_owned(),
                (1, false) => "1 earlier message; nothing older".to_owned(),
                (1, true) => "1 earlier message; /history shows older ones".to_owned(),
                (n, false) => format!("{n} earlier messages; nothing older"),
                (n, true) => format!("{n} earlier messages; /history shows older ones"),
            };
            self.notice(i, &text, false);
        }
    }

    /// Adds messages from a room's history to tab `i`: older than what it shows at the top,
    /// newer (missed while disconnected) at the bottom; ones already shown are skipped.
    /// Returns how many were added.
    fn insert_history(&mut self, i: usize, messages: Vec<ChatMessage>) -> usize {
        let mut older = Vec::new();
        let mut shown = 0;
        let newest = self.tabs[i].newest_id;
        for m in messages {
            if self.tabs[i].ids.contains(&m.id) {
                continue;
            }
            if newest.is_some_and(|n| m.id < n) {
                older.push(m);
            } else {
                shown += 1;
                self.show_message(m, true);
            }
        }
        let scrollback = self.opts.scrollback.max(1);
        let tab = &mut self.tabs[i];
        for m in older.into_iter().rev() {
            if tab.entries.len() >= scrollback {
                break;
            }
            tab.saw(m.id);
            let mut entry = message_entry(&m, &self.nick, true);
            tab.find_quote(&mut entry);
            tab.entries.push_front(entry);
            tab.first_seq -= 1;
            shown += 1;
        }
        shown
    }

    /// A page of the private messages kept for us while we were away: one notice and one bell
    /// for the whole backlog, however many pages it takes.
    pub(super) fn offline(&mut self, messages: Vec<ChatMessage>) -> Vec<Effect> {
        let n = messages.len();
        let up_to = messages.last().map(|m| m.id);
        let mut effects = Vec::new();
        for m in messages {
            effects.extend(self.show_message(m, true));
        }
        self.offline_shown += n;
        let first_page = self.offline_shown == n;
        let text = format!(
            "{} private message(s) arrived while you were away",
            self.offline_shown
        );
        match self.tabs[0].entries.back_mut() {
            Some(Entry {
                kind: EntryKind::Notice { text: last, .. },
                ..
            }) if !first_page && last.ends_with("arrived while you were away") => {
                *last = text;
            }
            _ => self.notice(0, &text, false),
        }
        effects.truncate(usize::from(first_page));
        // The server stops keeping them, and sends the next page if there is one.
        if let Some(up_to) = up_to {
            effects.push(Effect::Send(ClientFrame::AckOffline { up_to }));
        }
        effects
    }

    /// A private message (tagged `tag`) to someone away was kept for them: said in the tab
    /// the message went to.
    pub(super) fn queued(&mut self, tag: u64, to: &[String]) -> Vec<Effect> {
        let who = sanitize_line(&to.join(", "));
        let text = format!("{who} offline: kept for them until they log in");
        let tab = match self.last_echo.take() {
            Some((echoed, kind)) if echoed == tag => Some(kind),
            _ => to
                .first()
                .map(|nick| TabKind::Private { nick: nick.clone() }),
        };
        match tab {
            Some(kind) => {
                let i = self.tab_for(&kind);
                self.notice(i, &text, false);
            }
            None => self.notice_active(&text, false),
        }
        Vec::new()
    }
}

/// A chat message as an entry of history, its text made safe to show; `me` is our nickname
/// (our own messages and mentions of us show differently), `history` marks one replayed from
/// the server's store (never a mention).
fn message_entry(m: &ChatMessage, me: &str, history: bool) -> Entry {
    let own = fold(&m.from) == fold(me);
    let (text, action) = (m.body.text(), m.body.is_action());
    let text = sanitize_text(text);
    let mention = !own && !history && mentions(&text, me);
    Entry {
        at: m.at,
        id: Some(m.id),
        kind: EntryKind::Message {
            from: sanitize_line(&m.from),
            text,
            action,
            own,
            mention,
            history,
            reply: MessageAttr::reply_to(&m.attrs).map(|id| Quote { id, text: None }),
            edited: false,
            reactions: Vec::new(),
            expires: MessageAttr::expires_in(&m.attrs)
                .map(|secs| m.at + chrono::Duration::seconds(i64::from(secs))),
        },
    }
}

/// Does `text` mention `nick` as a word (case-insensitively)?
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let text = fold(text);
    let nick = fold(nick);
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    text.match_indices(&nick).any(|(i, m)| {
        !word(text[..i].chars().next_back()) && !word(text[i + m.len()..].chars().next())
    })
}
