//! What a client is sent after its `Welcome`, paced by what it has read: the lobby's recent
//! messages, the rooms of its account (each entered with its roster and recent messages), and
//! the private messages kept for it. A client in many busy rooms would otherwise be sent all
//! of it at once and overflow its send queue before it read its first frame; so the parts go
//! one after another, each only once the client's queue has room again (below a quarter of
//! `--send-queue-bytes`), and each history frame is cut to a size that fits
//! ([`history_budget`]).

use std::collections::{HashMap, VecDeque};

use super::Hub;
use super::conn::ConnId;
use chat_core::protocol::ChatMessage;

/// A part of what a newcomer is sent after its `Welcome`.
#[derive(Debug)]
pub(super) enum Part {
    /// A room's recent messages, by the room's key.
    History(String),
    /// An account's room, entered (by key): announced, its roster and recent messages.
    Room(String),
    /// The first page of the private messages kept for an account (the next pages follow
    /// as the client acknowledges them).
    Offline(String),
}

/// The parts still to send, per client; only clients with parts left are listed.
#[derive(Debug, Default)]
pub(super) struct Replays {
    pending: HashMap<ConnId, VecDeque<Part>>,
}

impl Replays {
    /// Adds a part for `conn`, after those it already has.
    pub fn push(&mut self, conn: ConnId, part: Part) {
        self.pending.entry(conn).or_default().push_back(part);
    }

    /// The next part for `conn`, if any.
    fn next(&mut self, conn: ConnId) -> Option<Part> {
        let parts = self.pending.get_mut(&conn)?;
        let part = parts.pop_front();
        if parts.is_empty() {
            self.pending.remove(&conn);
        }
        part
    }

    /// `conn` is gone: nothing more for it.
    pub fn forget(&mut self, conn: ConnId) {
        self.pending.remove(&conn);
    }

    /// Whether any client has parts left.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    fn clients(&self) -> Vec<ConnId> {
        self.pending.keys().copied().collect()
    }
}

/// Roughly the bytes a message takes in a frame.
pub(super) fn size(m: &ChatMessage) -> usize {
    m.body.text().len() + m.from.len() + 64
}

/// How many of the messages whose sizes are `sizes` (oldest first) fit in `budget` bytes,
/// counted from the newest back: the newest ones are kept, and at least one if there is any.
pub(super) fn newest_that_fit(
    sizes: impl DoubleEndedIterator<Item = usize>,
    budget: usize,
) -> usize {
    let mut sizes = sizes.rev().peekable();
    if sizes.peek().is_none() {
        // Nothing to send is no message, not one.
        return 0;
    }
    let mut bytes = 0;
    sizes
        .take_while(|size| {
            bytes += size;
            bytes <= budget
        })
        .count()
        .max(1)
}

impl Hub {
    /// Bytes of message text in one history frame: a quarter of the send queue, at most
    /// 64 KiB, so that a frame always fits beside whatever else is queued.
    pub(super) fn history_budget(&self) -> usize {
        (self.config.send_queue_bytes / 4).min(64 * 1024)
    }

    /// Sends `conn` the next parts of what it is owed while its queue has room.
    pub(super) fn pump(&mut self, conn: ConnId) {
        let low = self.config.send_queue_bytes / 4;
        loop {
            let Some(member) = self.clients.get(&conn) else {
                self.replays.forget(conn);
                return;
            };
            if member.outbox.pending_bytes() >= low {
                return;
            }
            match self.replays.next(conn) {
                Some(Part::History(key)) => self.replay(conn, &key),
                Some(Part::Room(key)) => {
                    if self.rooms.contains_key(&key) {
                        self.enter_room(conn, &key, false);
                    }
                }
                Some(Part::Offline(account)) => self.deliver_offline(conn, account),
                None => return,
            }
        }
    }

    /// [`Hub::pump`] for every client with parts left.
    pub(super) fn pump_all(&mut self) {
        for conn in self.replays.clients() {
            self.pump(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::newest_that_fit;

    #[test]
    fn the_newest_that_fit_and_at_least_one_of_some_none_of_none() {
        assert_eq!(newest_that_fit([10, 10, 10].into_iter(), 25), 2);
        assert_eq!(newest_that_fit([100].into_iter(), 25), 1);
        assert_eq!(newest_that_fit(std::iter::empty(), 25), 0);
    }
}
