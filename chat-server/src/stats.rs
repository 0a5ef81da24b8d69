//! Server counters, updated with relaxed atomics on the hot paths and read as a snapshot by the
//! console, the message log (and the monitor).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use serde::Serialize;
use tokio::time::Instant;

/// Live counters. Everything is cumulative since start except `clients_now`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted (including ones that never completed the handshake).
    pub connections_total: AtomicU64,
    /// Users online now.
    pub clients_now: AtomicU64,
    /// Most users online at once.
    pub clients_peak: AtomicU64,
    /// Messages accepted from clients.
    pub messages_in: AtomicU64,
    /// Message frames queued to recipients (the sender's echo included).
    pub deliveries: AtomicU64,
    /// Bytes read from client sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to client sockets.
    pub bytes_out: AtomicU64,
    /// Messages refused by the rate limiter.
    pub rate_limited: AtomicU64,
    /// Clients disconnected because their send queue filled up.
    pub slow_dropped: AtomicU64,
    /// Log records dropped because the disk could not keep up.
    pub log_dropped: AtomicU64,
    /// Messages refused (and room or account changes not kept) because the store could not
    /// keep up.
    pub store_busy: AtomicU64,
    /// Connections refused over their address's limits.
    pub address_refused: AtomicU64,
    /// Passwords hashed or verified (each costs tens of milliseconds of CPU).
    pub password_hashes: AtomicU64,
    /// Messages deleted by the retention.
    pub messages_pruned: AtomicU64,
    /// Rooms deleted because they expired or made way for a new one.
    pub rooms_expired: AtomicU64,
    /// Seconds from a message's arrival (read from its sender's socket) to the end of the
    /// hub's writes of it to its recipients' sockets.
    pub delivery_latency: Latency,
}

/// A histogram of latencies in seconds: 16 buckets from 50 µs, doubling, to 1.6 s.
#[derive(Debug, Clone)]
pub struct Latency(pub Histogram);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new(exponential_buckets(0.000_05, 2.0, 16)))
    }
}

/// The arrival times of the messages the hub fanned out in its current batch, observed into
/// [`Stats::delivery_latency`] once the batch's writes are done.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    arrivals: Vec<Instant>,
}

impl Delivered {
    /// A message that arrived at `at` was fanned out in this batch.
    pub(crate) fn arrived(&mut self, at: Instant) {
        self.arrivals.push(at);
    }

    /// The batch's writes are done: each of its messages took from its arrival until now.
    pub(crate) fn observe(&mut self, stats: &Stats) {
        if self.arrivals.is_empty() {
            return;
        }
        let now = Instant::now();
        for at in self.arrivals.drain(..) {
            let took = now.saturating_duration_since(at);
            stats.delivery_latency.0.observe(took.as_secs_f64());
        }
        // A burst's batch may be large; an idle hub keeps little.
        if self.arrivals.capacity() > 1024 {
            self.arrivals.shrink_to(64);
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub connections_total: u64,
    pub clients_now: u64,
    pub clients_peak: u64,
    pub messages_in: u64,
    pub deliveries: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rate_limited: u64,
    pub slow_dropped: u64,
    pub log_dropped: u64,
    pub store_busy: u64,
    pub address_refused: u64,
    pub password_hashes: u64,
    pub messages_pruned: u64,
    pub rooms_expired: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_total: r(&self.connections_total),
            clients_now: r(&self.clients_now),
            clients_peak: r(&self.clients_peak),
            messages_in: r(&self.messages_in),
            deliveries: r(&self.deliveries),
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            rate_limited: r(&self.rate_limited),
            slow_dropped: r(&self.slow_dropped),
            log_dropped: r(&self.log_dropped),
            store_busy: r(&self.store_busy),
            address_refused: r(&self.address_refused),
            password_hashes: r(&self.password_hashes),
            messages_pruned: r(&self.messages_pruned),
            rooms_expired: r(&self.rooms_expired),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl std::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "clients {} (peak {}), connections {}, messages in {}, deliveries {}, \
             bytes in {} out {}, rate-limited {}, slow clients dropped {}, \
             log records dropped {}, refused by a busy store {}, refused over an \
             address's limits {}, passwords hashed {}, messages deleted by retention {}, \
             rooms expired {}",
            self.clients_now,
            self.clients_peak,
            self.connections_total,
            self.messages_in,
            self.deliveries,
            self.bytes_in,
            self.bytes_out,
            self.rate_limited,
            self.slow_dropped,
            self.log_dropped,
            self.store_busy,
            self.address_refused,
            self.password_hashes,
            self.messages_pruned,
            self.rooms_expired
        )
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::{Registry, Unit};

    #[tokio::test(start_paused = true)]
    async fn a_batch_times_each_message_from_its_arrival_to_the_end_of_the_writes() {
        let stats = Stats::default();
        let mut delivered = Delivered::default();
        delivered.arrived(Instant::now());
        tokio::time::advance(std::time::Duration::from_millis(3)).await;
        delivered.arrived(Instant::now());
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        delivered.observe(&stats);
        // Nothing new: nothing observed.
        delivered.observe(&stats);
        let mut registry = Registry::default();
        registry.register_with_unit(
            "latency",
            "test",
            Unit::Seconds,
            stats.delivery_latency.0.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        assert!(text.contains("latency_seconds_count 2\n"), "{text}");
        // 4 ms and 1 ms: one in the 1.6 ms bucket, both by the 6.4 ms one.
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.0016\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.0064\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("latency_seconds_sum 0.005"), "{text}");
    }
}
