//! Server counters, updated with relaxed atomics on the hot paths and read as a snapshot by the
//! console, the message log (and the monitor).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

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
