//! Where every event record goes: the monitor, the message log, and the counters derived from
//! events. The hub produces each record once and hands it to [`Sinks::record`]; nothing else
//! publishes, logs or counts what an event already says.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_core::protocol::{DisconnectReason, Timestamp};
use tokio::sync::mpsc;

use crate::event::{Event, EventKind};
use crate::eventlog::LogSender;
use crate::monitor::Monitor;
use crate::stats::Stats;

/// The monitor, the log and the statistics, fed one record at a time.
#[derive(Debug)]
pub(crate) struct Sinks {
    stats: Arc<Stats>,
    log: Option<LogSender>,
    monitor: Option<Arc<Monitor>>,
    next_seq: u64,
    /// The log queue was full at the last record.
    log_behind: bool,
}

impl Sinks {
    pub(crate) fn new(
        stats: Arc<Stats>,
        log: Option<LogSender>,
        monitor: Option<Arc<Monitor>>,
    ) -> Self {
        Sinks {
            stats,
            log,
            monitor,
            next_seq: 1,
            log_behind: false,
        }
    }

    /// Numbers the event, counts it, and hands it to the monitor and the log (which drops it,
    /// counted, when the disk cannot keep up: the hub never waits).
    pub(crate) fn record(&mut self, kind: EventKind, ts: Timestamp) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let event = Arc::new(Event { seq, ts, kind });
        self.count(&event);
        if let Some(monitor) = &self.monitor {
            monitor.publish(&event);
        }
        if let Some(log) = &self.log {
            match log.try_send(event) {
                Ok(()) => self.log_behind = false,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Stats::add(&self.stats.log_dropped, 1);
                    if !self.log_behind {
                        tracing::warn!(
                            "the message log cannot keep up with the disk: dropping records \
                             (counted as log_dropped)"
                        );
                        self.log_behind = true;
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// The counters an event changes: messages accepted, who is online (every admitted
    /// connection has one `Join` and then one `Leave` or `Disconnect`), slow clients dropped.
    fn count(&self, event: &Event) {
        let stats = &*self.stats;
        match &event.kind {
            EventKind::Message(_) => Stats::add(&stats.messages_in, 1),
            EventKind::Join { .. } => {
                let online = stats.clients_now.fetch_add(1, Ordering::Relaxed) + 1;
                stats.clients_peak.fetch_max(online, Ordering::Relaxed);
            }
            EventKind::Leave { .. } => {
                stats.clients_now.fetch_sub(1, Ordering::Relaxed);
            }
            EventKind::Disconnect { reason, .. } => {
                stats.clients_now.fetch_sub(1, Ordering::Relaxed);
                if *reason == DisconnectReason::SendQueueExceeded {
                    Stats::add(&stats.slow_dropped, 1);
                }
            }
            _ => {}
        }
    }
}
