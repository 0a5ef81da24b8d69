//! Private history (protocol 6, for accounts): each private or group tab gets the latest
//! messages of its conversation from the server once per connection (so a restarted client
//! has them back), and `/history` in it pages back. And the server's search (`/search -s`),
//! and the messages that mentioned us since our previous login (`/mentions`, protocol 7).

use chat_core::names::conversation_key;
use chat_core::protocol::{ChatMessage, ClientFrame, Target};
use chrono::{DateTime, Local, Utc};

use crate::sanitize::sanitize_line;

use super::{App, ConnState, Effect, TabKind};

/// Messages asked for when a private tab opens (or the client reconnects).
const FIRST_PAGE: u32 = 50;

/// The first protocol version whose servers keep private history.
const PRIVATE_HISTORY_VERSION: u16 = 6;

impl App {
    /// Why this connection cannot read private history, if it cannot.
    pub(super) fn no_private_history(&self) -> Option<&'static str> {
        if self.server_version < PRIVATE_HISTORY_VERSION {
            Some("this server keeps no private history (it speaks an older protocol)")
        } else if !self.account {
            Some("private history is kept for accounts only: /register PASSWORD keeps yours")
        } else {
            None
        }
    }

    /// Asks for the latest messages of each private or group tab that has not had them on
    /// this connection.
    pub(super) fn fetch_private_histories(&mut self) -> Vec<Effect> {
        if !matches!(self.conn, ConnState::Connected) || self.no_private_history().is_some() {
            return Vec::new();
        }
        let mut effects = Vec::new();
        for tab in &self.tabs {
            if !matches!(tab.kind, TabKind::Private { .. } | TabKind::Group { .. }) {
                continue;
            }
            let people = tab.kind.people();
            if self.private_fetched.insert(conversation_key(people)) {
                effects.push(Effect::Send(ClientFrame::PrivateHistory {
                    with: people.to_vec(),
                    before: None,
                    limit: FIRST_PAGE,
                }));
            }
        }
        effects
    }

    /// `/history NICK[,NICK...] [N]`: goes to the conversation's tab (a private one opens if
    /// needed, and gets its latest messages at once); in a tab that has them, pages back.
    pub(super) fn history_with(&mut self, with: Vec<String>, limit: u32) -> (Vec<Effect>, bool) {
        let kind = match with.as_slice() {
            [nick] => TabKind::Private { nick: nick.clone() },
            _ => TabKind::Group {
                nicks: with.clone(),
            },
        };
        let fetched = self.private_fetched.contains(&conversation_key(&with));
        match self.tabs.iter().position(|t| t.kind.is(&kind)) {
            Some(i) => self.select_tab(i),
            None if with.len() == 1 => {
                let (effects, keep) = self.query(&with[0]);
                if keep {
                    return (effects, keep);
                }
            }
            None => return self.refuse("no tab for that group: /msg NICK,NICK text opens one"),
        }
        if fetched {
            self.older_private_history(limit)
        } else {
            (Vec::new(), false)
        }
    }

    /// `/history [N]` in a private or group tab: the page before the oldest message shown.
    pub(super) fn older_private_history(&mut self, limit: u32) -> (Vec<Effect>, bool) {
        if let Some(why) = self.no_private_history() {
            return self.refuse(why);
        }
        let people = self.tabs[self.active].kind.people().to_vec();
        let key = conversation_key(&people);
        let frame = ClientFrame::PrivateHistory {
            with: people,
            before: self.tabs[self.active].oldest_id,
            limit,
        };
        self.request_then(frame, |app| {
            app.history_asked.insert(key);
        })
    }
}

/// Matches asked for per server search.
const SEARCH_PAGE: u32 = 20;

impl App {
    /// `/search -s REGEX`: asks the server; `/search -s` alone: the older matches of the last.
    pub(super) fn server_search(&mut self, pattern: String) -> (Vec<Effect>, bool) {
        let (pattern, before) = if pattern.is_empty() {
            match &self.server_search {
                Some((last, Some(next))) => (last.clone(), Some(*next)),
                Some((last, None)) => {
                    let text = format!("no older stored message matches /{last}/");
                    return self.refuse(&text);
                }
                None => return self.refuse("/search -s REGEX searches what the server stored"),
            }
        } else {
            (pattern, None)
        };
        self.request(ClientFrame::Search {
            pattern,
            before,
            limit: SEARCH_PAGE,
        })
    }

    /// The server's matches, newest first: listed in the tab on screen, each with its place
    /// and id (for `/reply`, `/react`).
    pub(super) fn found(
        &mut self,
        pattern: String,
        messages: Vec<ChatMessage>,
        next: Option<u64>,
    ) -> Vec<Effect> {
        let pattern = sanitize_line(&pattern);
        let more = if next.is_some() {
            "; /search -s shows older ones"
        } else {
            ""
        };
        let head = match messages.len() {
            0 => format!("no stored message you can read matches /{pattern}/{more}"),
            1 => format!("1 stored message matches /{pattern}/{more}:"),
            n => format!("{n} stored messages match /{pattern}/, newest first{more}:"),
        };
        self.list_found(&head, &messages);
        self.server_search = Some((pattern, next));
        Vec::new()
    }

    /// `/mentions`: asks the server for what mentioned us since our previous login; `more`:
    /// the older ones of the last answer.
    pub(super) fn mentions(&mut self, more: bool) -> (Vec<Effect>, bool) {
        let before = match (more, self.mentions_next) {
            (false, _) => None,
            (true, Some(Some(next))) => Some(next),
            (true, _) => return self.refuse("no older mentions: /mentions lists the latest"),
        };
        self.request(ClientFrame::Mentions {
            before,
            limit: SEARCH_PAGE,
        })
    }

    /// The messages that mentioned us, newest first: listed in the tab on screen like the
    /// server's search matches.
    pub(super) fn mentioned(
        &mut self,
        since: Option<DateTime<Utc>>,
        messages: Vec<ChatMessage>,
        next: Option<u64>,
    ) -> Vec<Effect> {
        let since = since.map_or_else(
            || "since your account exists".to_owned(),
            |t| format!("since your last login ({})", self.when(&t)),
        );
        let more = if next.is_some() {
            "; /mentions more shows older ones"
        } else {
            ""
        };
        let head = match messages.len() {
            0 => format!("nothing mentioned you {since}{more}"),
            1 => format!("1 message mentioned you {since}{more}:"),
            n => format!("{n} messages mentioned you {since}, newest first{more}:"),
        };
        self.list_found(&head, &messages);
        self.mentions_next = Some(next);
        Vec::new()
    }

    /// `head`, then each message found with its place, time and id, in the tab on screen.
    fn list_found(&mut self, head: &str, messages: &[ChatMessage]) {
        self.notice_active(head, false);
        for m in messages {
            let place = match &m.to {
                Target::Room(room) => format!("#{}", sanitize_line(room)),
                Target::Users(_) => "private".to_owned(),
            };
            let text = format!(
                "  #{} {} {place} <{}> {}",
                m.id,
                self.when(&m.at),
                sanitize_line(&m.from),
                sanitize_line(m.body.text())
            );
            self.notice_active(&text, false);
        }
    }

    /// A date and time as the message list shows them (local time unless `--utc`).
    fn when(&self, at: &DateTime<Utc>) -> String {
        if self.opts.utc {
            at.format("%Y-%m-%d %H:%M").to_string()
        } else {
            at.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        }
    }
}
