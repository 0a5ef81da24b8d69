//! What room the line client is in: the rooms joined, the current one, and where `/history`
//! continues from in each.

use chat_core::names::{conversation_key, fold};
use chat_core::protocol::{DEFAULT_ROOM, ServerFrame, Target};
use chrono::Utc;

use crate::line_event::LineEvent;

/// The rooms the line client is in, the current one (where plain text goes: the room last
/// joined with `/join`, or the one `/room` chose; rooms an account gets back at login do not
/// change it), and the oldest message seen in each (where `/history` continues from).
#[derive(Debug)]
pub(super) struct Rooms {
    pub(super) current: String,
    joined: Vec<String>,
    oldest: std::collections::HashMap<String, u64>,
    /// The room asked for with `/join`, folded: it becomes current when entered.
    pub(super) joining: Option<String>,
    /// The latest message of each sender (by folded nickname) in each room, for
    /// `/delete NICK`.
    latest: std::collections::HashMap<(String, String), u64>,
    /// The messages seen in this run, for `/search` and the quotes of replies.
    pub(super) seen: super::messages::SeenMessages,
}

/// Senders whose latest message is remembered, at most (then the memory starts again).
const MAX_LATEST: usize = 4096;

impl Default for Rooms {
    fn default() -> Self {
        Rooms {
            current: DEFAULT_ROOM.to_owned(),
            joined: vec![DEFAULT_ROOM.to_owned()],
            oldest: std::collections::HashMap::new(),
            joining: None,
            latest: std::collections::HashMap::new(),
            seen: super::messages::SeenMessages::default(),
        }
    }
}

impl Rooms {
    /// Follows a frame from the server; returns an event when the current room changed other
    /// than by entering one (whose own event says so).
    pub(super) fn track(&mut self, frame: &ServerFrame) -> Option<LineEvent> {
        self.seen.track(frame);
        match frame {
            ServerFrame::Entered { room, .. } => {
                if !self.joined.iter().any(|r| fold(r) == fold(room)) {
                    self.joined.push(room.clone());
                }
                if self.joining.as_deref() == Some(fold(room).as_str()) {
                    self.joining = None;
                    self.current.clone_from(room);
                    return Some(LineEvent::CurrentRoom {
                        time: Utc::now(),
                        room: room.clone(),
                    });
                }
            }
            ServerFrame::Parted { room } => {
                self.joined.retain(|r| fold(r) != fold(room));
                if fold(&self.current) == fold(room) {
                    self.current = self
                        .joined
                        .last()
                        .cloned()
                        .unwrap_or_else(|| DEFAULT_ROOM.to_owned());
                    return Some(LineEvent::CurrentRoom {
                        time: Utc::now(),
                        room: self.current.clone(),
                    });
                }
            }
            ServerFrame::Message(m) => {
                if let Target::Room(room) = &m.to {
                    self.seen(room, m.id);
                    if self.latest.len() >= MAX_LATEST {
                        self.latest.clear();
                    }
                    self.latest.insert((fold(room), fold(&m.from)), m.id);
                }
            }
            ServerFrame::History { room, messages, .. } => {
                if let Some(first) = messages.first() {
                    self.seen(room, first.id);
                }
            }
            ServerFrame::PrivateHistory { with, messages, .. } => {
                if let Some(first) = messages.first() {
                    self.seen(&conversation_key(with), first.id);
                }
            }
            _ => {}
        }
        None
    }

    fn seen(&mut self, room: &str, id: u64) {
        let oldest = self.oldest.entry(room.to_owned()).or_insert(id);
        *oldest = (*oldest).min(id);
    }

    /// Where `/history` continues from in `room`.
    pub(super) fn oldest(&self, room: &str) -> Option<u64> {
        self.oldest.get(room).copied()
    }

    /// The latest message from `nick` in the current room, for `/delete NICK`.
    pub(super) fn latest_from(&self, nick: &str) -> Option<u64> {
        self.latest.get(&(fold(&self.current), fold(nick))).copied()
    }

    /// `/room NAME`: makes a joined room the current one.
    pub(super) fn switch(&mut self, room: &str) -> LineEvent {
        let found = self.joined.iter().find(|r| fold(r) == fold(room)).cloned();
        match found {
            Some(room) => {
                self.current.clone_from(&room);
                LineEvent::CurrentRoom {
                    time: Utc::now(),
                    room,
                }
            }
            None => LineEvent::error(format!("you are not in #{room}: /join #{room} first")),
        }
    }
}
