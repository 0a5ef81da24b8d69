//! Expiring messages: when each one goes. A message sent with `ExpiresIn` is deleted by the
//! hub when it expires (`Deleted` with an empty `by` to whoever can see it, and from the store
//! and the room's recent messages). The times are kept in memory, loaded from the store at
//! start; what already expired while the server was stopped was deleted by the store before.

use std::collections::BTreeSet;

use chat_core::protocol::{MessageId, Timestamp};
use chrono::Utc;
use tokio::time::{Duration, Instant};

/// Most expiring messages waiting at once; a new one beyond is refused.
pub(super) const MAX_EXPIRING: usize = 100_000;

/// When each expiring message goes, soonest first.
#[derive(Debug, Default)]
pub(super) struct Expiries {
    due: BTreeSet<(Instant, MessageId)>,
}

impl Expiries {
    /// Whether another one may be added.
    pub fn has_room(&self) -> bool {
        self.due.len() < MAX_EXPIRING
    }

    /// Message `id` goes `secs` seconds from now.
    pub fn add(&mut self, id: MessageId, secs: u32) {
        self.due
            .insert((Instant::now() + Duration::from_secs(u64::from(secs)), id));
    }

    /// Message `id`, loaded from the store, goes at `at` (a wall-clock time).
    pub fn add_at(&mut self, id: MessageId, at: Timestamp) {
        let left = (at - Utc::now()).to_std().unwrap_or_default();
        self.due.insert((Instant::now() + left, id));
    }

    /// When the next one goes.
    pub fn next(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The messages due by `now`, taken out.
    pub fn take_due(&mut self, now: Instant) -> Vec<MessageId> {
        let mut ids = Vec::new();
        while let Some(&(at, id)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            ids.push(id);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn messages_come_due_in_the_order_they_expire() {
        let mut expiries = Expiries::default();
        expiries.add(7, 60);
        expiries.add(3, 30);
        expiries.add_at(9, Utc::now() - chrono::Duration::seconds(5));
        assert_eq!(expiries.take_due(Instant::now()), [9], "already expired");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(expiries.take_due(Instant::now()), [3]);
        assert_eq!(
            expiries.next(),
            Some(Instant::now() + Duration::from_secs(30))
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(expiries.take_due(Instant::now()), [7]);
        assert!(expiries.next().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_expiring_wait_and_room_comes_back_as_they_go() {
        let mut expiries = Expiries::default();
        for id in 0..MAX_EXPIRING as u64 {
            expiries.add(id, 60);
        }
        assert!(!expiries.has_room(), "full: the hub refuses one more");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(expiries.take_due(Instant::now()).len(), MAX_EXPIRING);
        assert!(expiries.has_room());
    }
}
