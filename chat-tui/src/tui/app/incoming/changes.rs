//! Changes to messages already shown: edits, reactions, deletions and expiries. Each finds the
//! message by id in every tab that shows it, and the replies that quote it.

use chat_core::names::fold;
use chat_core::protocol::{MAX_REACTIONS, Reaction};

use crate::sanitize::{sanitize_line, sanitize_text};
use crate::tui::app::{App, Effect, EntryKind};
use crate::tui::entry::Reacted;

/// What replaces the text of a message that expired.
pub const EXPIRED: &str = "(message expired)";

impl App {
    /// Calls `change` on every entry of message `id`, and `quoted` on every reply to it.
    fn each_entry(
        &mut self,
        id: u64,
        mut change: impl FnMut(&mut EntryKind),
        mut quoted: impl FnMut(&mut Option<String>),
    ) {
        for tab in &mut self.tabs {
            let shown = tab.ids.contains(&id);
            for entry in &mut tab.entries {
                if shown && entry.id == Some(id) {
                    change(&mut entry.kind);
                }
                if let EntryKind::Message {
                    reply: Some(quote), ..
                } = &mut entry.kind
                    && quote.id == id
                {
                    quoted(&mut quote.text);
                }
            }
        }
    }

    /// A message's text was replaced: shown with "(edited)"; replies quote the new text.
    pub(super) fn edited(&mut self, id: u64, text: &str) -> Vec<Effect> {
        let text = sanitize_text(text);
        let mut author = None;
        self.each_entry(
            id,
            |kind| {
                if let EntryKind::Message {
                    text: shown,
                    edited,
                    from,
                    ..
                } = kind
                {
                    shown.clone_from(&text);
                    *edited = true;
                    author = Some(from.clone());
                }
            },
            |_| {},
        );
        if let Some(from) = author {
            let quote = crate::extras::quote(&from, &text);
            self.each_entry(id, |_| {}, |q| *q = Some(quote.clone()));
        }
        Vec::new()
    }

    /// A message's reactions, whole: they replace what it showed.
    pub(super) fn reactions(&mut self, id: u64, reactions: &[Reaction]) -> Vec<Effect> {
        let me = fold(&self.nick);
        let list: Vec<Reacted> = reactions
            .iter()
            .filter(|r| !r.nicks.is_empty())
            .take(MAX_REACTIONS)
            .map(|r| Reacted {
                emoji: sanitize_line(&r.emoji).chars().take(16).collect(),
                count: r.nicks.len(),
                mine: r.nicks.iter().any(|n| fold(n) == me),
            })
            .collect();
        self.each_entry(
            id,
            |kind| {
                if let EntryKind::Message { reactions, .. } = kind {
                    reactions.clone_from(&list);
                }
            },
            |_| {},
        );
        Vec::new()
    }

    /// A message was deleted (`by` empty: it expired): wherever it shows, its text is
    /// replaced, and so is the quote of every reply to it.
    pub(super) fn deleted(&mut self, id: u64, by: &str) -> Vec<Effect> {
        let text = if by.is_empty() {
            EXPIRED.to_owned()
        } else {
            format!("(message deleted by {})", sanitize_line(by))
        };
        self.each_entry(id, |kind| gone(kind, &text), |q| *q = Some(text.clone()));
        Vec::new()
    }

    /// Expiring messages whose time has come, by this client's clock, show as expired (the
    /// server deletes them too, but an older one does not); returns whether the tab on screen
    /// has a message counting down, or one that just expired, so that it is drawn again.
    pub(in crate::tui::app) fn expire_due(&mut self) -> bool {
        let now = self.wall;
        let mut redraw = false;
        for (i, tab) in self.tabs.iter_mut().enumerate() {
            for entry in &mut tab.entries {
                let EntryKind::Message {
                    expires: Some(at), ..
                } = &entry.kind
                else {
                    continue;
                };
                redraw |= i == self.active;
                if *at <= now {
                    gone(&mut entry.kind, EXPIRED);
                }
            }
        }
        redraw
    }
}

/// A message's entry once deleted or expired: `text` instead of what it said, and nothing
/// else about it.
fn gone(kind: &mut EntryKind, text: &str) {
    if let EntryKind::Message {
        text: shown,
        action,
        edited,
        reactions,
        expires,
        ..
    } = kind
    {
        *shown = text.to_owned();
        *action = false;
        *edited = false;
        reactions.clear();
        *expires = None;
    }
}
