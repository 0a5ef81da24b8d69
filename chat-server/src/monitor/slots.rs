//! Who may hold the monitor's connections. A connection that has not shown the token yet is
//! pending: few at once in all, fewer per address, and short-lived (its request's headers
//! must come within [`HEADER_TIMEOUT`], and it closes after its one answer). A viewer (the
//! token shown, the feed upgraded to WebSocket) has a place of its own among `max_viewers`;
//! one over that limit is told why in the WebSocket's close frame.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::IpKey;

/// Pending connections at once, at most.
const MAX_PENDING: usize = 64;
/// Pending connections from one address at once, at most.
const MAX_PENDING_PER_ADDRESS: usize = 8;
/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// The monitor's connection places.
#[derive(Debug)]
pub struct Slots {
    pending: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpKey, usize>>,
    viewers: Arc<Semaphore>,
    max_viewers: usize,
}

impl Slots {
    /// Places for `max_viewers` viewers and the usual pending connections.
    pub fn new(max_viewers: usize) -> Self {
        Slots {
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
            per_address: Mutex::new(HashMap::new()),
            viewers: Arc::new(Semaphore::new(max_viewers)),
            max_viewers,
        }
    }

    /// A pending place for a connection from `addr`, if one is free for it.
    pub fn enter(self: &Arc<Self>, addr: IpAddr) -> Option<Pending> {
        let key = IpKey::of(addr);
        let permit = self.pending.clone().try_acquire_owned().ok()?;
        let mut counts = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= MAX_PENDING_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Pending {
            slots: self.clone(),
            key,
            _permit: permit,
        })
    }

    /// A viewer's place, or why there is none.
    pub fn viewer(&self) -> Result<OwnedSemaphorePermit, String> {
        self.viewers.clone().try_acquire_owned().map_err(|_| {
            format!(
                "too many monitor viewers ({} open): close another monitor tab",
                self.max_viewers
            )
        })
    }
}

/// A pending connection's place, given back when it is dropped.
#[derive(Debug)]
pub struct Pending {
    slots: Arc<Slots>,
    key: IpKey,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut counts = self
            .slots
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_a_few_pending_places_and_gives_them_back() {
        let slots = Arc::new(Slots::new(1));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let held: Vec<Pending> = (0..MAX_PENDING_PER_ADDRESS)
            .map(|_| slots.enter(a).expect("a place"))
            .collect();
        assert!(slots.enter(a).is_none());
        assert!(slots.enter("192.0.2.2".parse().expect("ip")).is_some());
        drop(held);
        assert!(slots.enter(a).is_some());
        let _viewer = slots.viewer().expect("one viewer");
        let refused = slots.viewer().expect_err("the second");
        assert!(
            refused.contains("too many monitor viewers (1 open)"),
            "{refused}"
        );
    }
}
