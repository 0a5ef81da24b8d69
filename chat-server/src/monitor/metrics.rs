//! What `/metrics` shows: the server's counters and gauges, read at each scrape, the delivery
//! latency histogram and the build, in the OpenMetrics text format (prometheus-client).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::Monitor;
use crate::stats::Stats;

/// The counters and gauges, read at each scrape.
#[derive(Debug)]
struct Counters {
    stats: Arc<Stats>,
    monitor: Arc<Monitor>,
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.stats.snapshot();
        let m = &self.monitor;
        // Counters are named without `_total`: the encoder adds it.
        let counters: [(&str, &str, u64); 13] = [
            (
                "chat_connections",
                "Connections accepted.",
                s.connections_total,
            ),
            (
                "chat_messages",
                "Messages accepted from clients.",
                s.messages_in,
            ),
            (
                "chat_deliveries",
                "Message frames queued to recipients.",
                s.deliveries,
            ),
            (
                "chat_bytes_received",
                "Bytes read from clients.",
                s.bytes_in,
            ),
            ("chat_bytes_sent", "Bytes written to clients.", s.bytes_out),
            (
                "chat_rate_limited",
                "Frames refused by the rate limit.",
                s.rate_limited,
            ),
            (
                "chat_slow_clients_dropped",
                "Clients dropped for not reading.",
                s.slow_dropped,
            ),
            (
                "chat_log_records_dropped",
                "Log records dropped (disk too slow).",
                s.log_dropped,
            ),
            (
                "chat_store_busy",
                "Messages refused or changes not kept (store too slow).",
                s.store_busy,
            ),
            (
                "chat_address_refused",
                "Connections refused over their address's limits.",
                s.address_refused,
            ),
            (
                "chat_password_hashes",
                "Passwords hashed or verified.",
                s.password_hashes,
            ),
            (
                "chat_messages_pruned",
                "Messages deleted by the retention.",
                s.messages_pruned,
            ),
            (
                "chat_rooms_expired",
                "Rooms deleted because they expired or made way for a new one.",
                s.rooms_expired,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let latency = &self.stats.delivery_latency.0;
        latency.encode(encoder.encode_descriptor(
            "chat_delivery_latency",
            "From a message's arrival to the end of the hub's writes of it to its recipients.",
            Some(&Unit::Seconds),
            latency.metric_type(),
        )?)?;
        let viewers_dropped = ConstCounter::new(m.viewers_dropped.load(Ordering::Relaxed));
        viewers_dropped.encode(encoder.encode_descriptor(
            "chat_monitor_viewers_dropped",
            "Monitor viewers dropped for not keeping up.",
            None,
            viewers_dropped.metric_type(),
        )?)?;
        let gauges: [(&str, &str, u64); 3] = [
            ("chat_clients", "Users online now.", s.clients_now),
            (
                "chat_clients_peak",
                "Most users online at once.",
                s.clients_peak,
            ),
            (
                "chat_monitor_viewers",
                "Monitor viewers connected.",
                m.viewers.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The registry `/metrics` encodes: the build, and the counters read at each scrape.
pub(crate) fn registry(stats: Arc<Stats>, monitor: Arc<Monitor>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "chat_build",
        // The registry adds the full stop.
        "The running version",
        Info::new(vec![(
            "version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        )]),
    );
    registry.register_collector(Box::new(Counters { stats, monitor }));
    registry
}

/// The metrics in the OpenMetrics text format.
pub(crate) fn metrics(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, registry) {
        tracing::error!("cannot encode the metrics: {e}");
    }
    out
}

/// The content type of [`metrics`].
pub(crate) const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
