//! Expiring messages: when each one goes. A message sent with `ExpiresIn` is deleted by the
//! hub when it expires (`Deleted` with an empty `by` to whoever can see it, and from the store
//! and the room's recent messages). The times are kept in memory, loaded from the store at
//! start; what already expired while the server was stopped was deleted by the store before.
//! At most `--max-expiring` wait at once, and `--max-expiring-per-address` from one address
//! (until they expire or are deleted): one address cannot take them all.

use std::collections::{BTreeSet, HashMap};

use chat_core::protocol::{MessageId, Timestamp};
use chrono::Utc;
use tokio::time::{Duration, Instant};

use crate::limits::{IpKey, LimitsConfig};

/// When each expiring message goes, soonest first, and how many each address has waiting.
#[derive(Debug, Default)]
pub(super) struct Expiries {
    due: BTreeSet<(Instant, MessageId)>,
    /// When each waiting message goes, and the address it came from (`None` for those loaded
    /// at start and those from exempt addresses).
    waiting: HashMap<MessageId, (Instant, Option<IpKey>)>,
    /// How many are waiting per address.
    per_address: HashMap<IpKey, usize>,
}

impl Expiries {
    /// Why one more from `addr` (`None`: not counted) cannot be added, if it cannot.
    pub fn refusal(&self, addr: Option<IpKey>, limits: &LimitsConfig) -> Option<String> {
        if self.due.len() >= limits.expiring {
            return Some(
                "the server has as many expiring messages as it keeps track of: send it \
                 without an expiry, or later"
                    .to_owned(),
            );
        }
        let mine = addr.map_or(0, |a| self.per_address.get(&a).copied().unwrap_or(0));
        (mine >= limits.expiring_per_address).then(|| {
            format!(
                "your address has {mine} messages waiting to expire, the most one address may \
                 have: send it without an expiry, or once some have expired"
            )
        })
    }

    /// Message `id`, from `addr`, goes `secs` seconds from now.
    pub fn add(&mut self, id: MessageId, secs: u32, addr: Option<IpKey>) {
        let at = Instant::now() + Duration::from_secs(u64::from(secs));
        self.due.insert((at, id));
        self.waiting.insert(id, (at, addr));
        if let Some(addr) = addr {
            *self.per_address.entry(addr).or_default() += 1;
        }
    }

    /// Message `id`, loaded from the store, goes at `at` (a wall-clock time).
    pub fn add_at(&mut self, id: MessageId, at: Timestamp) {
        let left = (at - Utc::now()).to_std().unwrap_or_default();
        let at = Instant::now() + left;
        self.due.insert((at, id));
        self.waiting.insert(id, (at, None));
    }

    /// Message `id` was deleted: it no longer waits, nor counts for its address.
    pub fn forget(&mut self, id: MessageId) {
        if let Some((at, addr)) = self.waiting.remove(&id) {
            self.due.remove(&(at, id));
            self.uncount(addr);
        }
    }

    fn uncount(&mut self, addr: Option<IpKey>) {
        if let Some(addr) = addr
            && let Some(n) = self.per_address.get_mut(&addr)
        {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&addr);
            }
        }
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
            if let Some((_, addr)) = self.waiting.remove(&id) {
                self.uncount(addr);
            }
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
        expiries.add(7, 60, None);
        expiries.add(3, 30, None);
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
        let limits = LimitsConfig::default();
        let mut expiries = Expiries::default();
        for id in 0..limits.expiring as u64 {
            expiries.add(id, 60, None);
        }
        let refused = expiries.refusal(None, &limits).expect("full");
        assert!(refused.contains("as many expiring messages"), "{refused}");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(expiries.take_due(Instant::now()).len(), limits.expiring);
        assert!(expiries.refusal(None, &limits).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_has_its_share_and_gets_it_back_as_they_go() {
        let limits = LimitsConfig {
            expiring_per_address: 2,
            ..LimitsConfig::default()
        };
        let (a, b) = (IpKey::V4(1), IpKey::V4(2));
        let mut expiries = Expiries::default();
        expiries.add(1, 10, Some(a));
        expiries.add(2, 20, Some(a));
        let refused = expiries.refusal(Some(a), &limits).expect("a has its share");
        assert!(refused.contains("your address has 2"), "{refused}");
        assert!(expiries.refusal(Some(b), &limits).is_none());
        assert!(expiries.refusal(None, &limits).is_none(), "not counted");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(expiries.take_due(Instant::now()), [1]);
        assert!(expiries.refusal(Some(a), &limits).is_none());
        // A deleted one gives its place back at once.
        expiries.add(3, 30, Some(a));
        assert!(expiries.refusal(Some(a), &limits).is_some());
        expiries.forget(3);
        assert!(expiries.refusal(Some(a), &limits).is_none());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(expiries.take_due(Instant::now()), [2]);
        assert!(expiries.per_address.is_empty() && expiries.waiting.is_empty());
    }
}
