//! The live monitor: the same event records as the message log, fed to browser viewers over
//! WebSocket, with a backlog of the most recent ones.
//!
//! The hub publishes every event here (one lock, one `Arc` clone per viewer, never a wait).
//! A viewer subscribes under the same lock, so it gets the backlog and then exactly the events
//! that follow: no gap, no duplicate. Each viewer has a bounded queue; a viewer that falls
//! behind is dropped (and told why) instead of slowing anything down.

pub mod token;

pub mod http;
mod metrics;
pub mod slots;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chat_service::Secret;
use tokio::sync::mpsc;

use crate::event::SharedEvent;

/// How the monitor runs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Address the HTTP and WebSocket listeners bind (127.0.0.1 unless opened wider).
    pub listen: IpAddr,
    /// HTTP port: the page, `/stats`, `/metrics`, and the feed at `/ws`. 0 picks a free port.
    pub http_port: u16,
    /// WebSocket-only port for the feed; `None` for none. 0 picks a free port.
    pub ws_port: Option<u16>,
    /// The access token; `None` generates a random one at start.
    pub token: Option<Secret>,
    /// A token that reads `/metrics` only (for Prometheus); `None`: `/metrics` needs the
    /// access token.
    pub metrics_token: Option<Secret>,
    /// Records a new viewer receives first.
    pub backlog: usize,
    /// Records that may wait for one viewer before it is dropped as too slow.
    pub viewer_queue: usize,
    /// Viewers at once, at most.
    pub max_viewers: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            listen: IpAddr::from([127, 0, 0, 1]),
            http_port: 8000,
            ws_port: Some(8765),
            token: None,
            metrics_token: None,
            backlog: 200,
            viewer_queue: 4096,
            max_viewers: 64,
        }
    }
}

/// The live side of the monitor, shared by the hub (publishing) and the viewers.
#[derive(Debug)]
pub struct Monitor {
    inner: Mutex<Inner>,
    backlog: usize,
    queue: usize,
    /// Viewers connected now.
    pub viewers: AtomicU64,
    /// Viewers dropped because they could not keep up.
    pub viewers_dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    recent: VecDeque<SharedEvent>,
    viewers: Vec<ViewerSlot>,
}

#[derive(Debug)]
struct ViewerSlot {
    tx: mpsc::Sender<SharedEvent>,
    too_slow: Arc<AtomicBool>,
}

/// A viewer's subscription: the backlog, then the live records.
#[derive(Debug)]
pub struct Subscription {
    /// The most recent records, oldest first.
    pub backlog: Vec<SharedEvent>,
    /// Everything published after the backlog; ends when the viewer is dropped or the
    /// server stops.
    pub live: mpsc::Receiver<SharedEvent>,
    /// Set when the viewer was dropped for falling behind.
    pub too_slow: Arc<AtomicBool>,
}

impl Monitor {
    /// A monitor keeping `backlog` records, with `queue` records of room per viewer.
    pub fn new(backlog: usize, queue: usize) -> Self {
        Monitor {
            inner: Mutex::new(Inner::default()),
            backlog,
            queue: queue.max(1),
            viewers: AtomicU64::new(0),
            viewers_dropped: AtomicU64::new(0),
        }
    }

    /// Records an event and hands it to every viewer. Never waits.
    pub fn publish(&self, event: &SharedEvent) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.backlog > 0 {
            if inner.recent.len() == self.backlog {
                inner.recent.pop_front();
            }
            inner.recent.push_back(event.clone());
        }
        let dropped = &self.viewers_dropped;
        inner
            .viewers
            .retain(|v| match v.tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    v.too_slow.store(true, Ordering::Relaxed);
                    dropped.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// Subscribes a new viewer.
    pub fn subscribe(&self) -> Subscription {
        let (tx, live) = mpsc::channel(self.queue);
        let too_slow = Arc::new(AtomicBool::new(false));
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.viewers.push(ViewerSlot {
            tx,
            too_slow: too_slow.clone(),
        });
        Subscription {
            backlog: inner.recent.iter().cloned().collect(),
            live,
            too_slow,
        }
    }

    /// Drops every viewer (at shutdown): their feeds end.
    pub fn close(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.viewers.clear();
    }
}

/// A random access token: 128 bits from the operating system's generator (`getrandom`), as 32
/// hex digits. There is no weaker fallback: without the generator there is no token.
pub fn random_token() -> std::io::Result<Secret> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 16]);
    getrandom::fill(&mut *bytes).map_err(|e| {
        std::io::Error::other(format!("the operating system gave no random bytes: {e}"))
    })?;
    let hex = zeroize::Zeroizing::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    Ok(Secret::from(hex.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};

    fn event(seq: u64) -> SharedEvent {
        Arc::new(Event {
            seq,
            ts: chrono::Utc::now(),
            kind: EventKind::Stats(Default::default()),
        })
    }

    #[test]
    fn backlog_then_live_without_gap_or_duplicate() {
        let m = Monitor::new(3, 10);
        for seq in 1..=5 {
            m.publish(&event(seq));
        }
        let mut sub = m.subscribe();
        m.publish(&event(6));
        let backlog: Vec<u64> = sub.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(backlog, [3, 4, 5]);
        assert_eq!(sub.live.try_recv().map(|e| e.seq).ok(), Some(6));
        assert!(sub.live.try_recv().is_err());
    }

    #[test]
    fn a_viewer_that_falls_behind_is_dropped_and_told() {
        let m = Monitor::new(0, 2);
        let mut slow = m.subscribe();
        let mut fine = m.subscribe();
        for seq in 1..=3 {
            m.publish(&event(seq));
            // `fine` keeps up.
            assert_eq!(fine.live.try_recv().map(|e| e.seq).ok(), Some(seq));
        }
        assert!(slow.too_slow.load(Ordering::Relaxed));
        assert_eq!(m.viewers_dropped.load(Ordering::Relaxed), 1);
        // What was queued is still delivered, then the feed ends.
        assert_eq!(slow.live.try_recv().map(|e| e.seq).ok(), Some(1));
        assert_eq!(slow.live.try_recv().map(|e| e.seq).ok(), Some(2));
        assert!(matches!(
            slow.live.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn tokens_are_random_hex() {
        let a = random_token().expect("token");
        let b = random_token().expect("token");
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
