//! The load generator: N subscribers and P publishers in the lobby of a chat server (or
//! relay), or on one channel of a Redis server for comparison. Each payload carries its
//! publisher, sequence number and send time; the report gives throughput, loss, reordering,
//! latency percentiles, and the server's CPU and memory.

pub mod file;
mod idle;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

pub use idle::{IdleReport, idle};
pub use wire::{Conn, Item, Protocol, Transport};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Chat server, relay or Redis server, `host:port`.
    pub server: String,
    /// What `server` speaks.
    pub protocol: Protocol,
    /// Plain TCP or TLS.
    pub transport: Transport,
    /// Subscribers.
    pub subscribers: usize,
    /// Publishers.
    pub publishers: usize,
    /// Payload size in bytes (the header included; at least the header's size).
    pub size: usize,
    /// Messages per publisher (ignored with `duration`).
    pub messages: u64,
    /// Publish for this long instead of a count.
    pub duration: Option<Duration>,
    /// Open loop: this many messages per second in all; `None` for closed loop.
    pub rate: Option<f64>,
    /// Closed loop: messages each publisher may have in flight (sent, not acknowledged).
    pub window: usize,
    /// Extra subscribers that connect and then never read their socket.
    pub stalled: usize,
    /// The server's process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// How long to wait for the last deliveries once publishing is over.
    pub drain: Duration,
    /// Print a progress record this often (soak runs).
    pub progress: Option<Duration>,
    /// Where progress records (and the final report) are also appended, as JSON Lines.
    pub out: Option<PathBuf>,
}

impl Options {
    /// Defaults for a run against `server`: 100 subscribers, 1 publisher, 64-byte payloads,
    /// 10,000 messages, closed loop with a window of 64.
    pub fn new(server: impl Into<String>) -> Self {
        Options {
            server: server.into(),
            protocol: Protocol::Chat,
            transport: Transport::plain(),
            subscribers: 100,
            publishers: 1,
            size: 64,
            messages: 10_000,
            duration: None,
            rate: None,
            window: 64,
            stalled: 0,
            server_pid: None,
            drain: Duration::from_secs(10),
            progress: None,
            out: None,
        }
    }
}

/// What was measured, as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub protocol: Protocol,
    pub subscribers: usize,
    pub publishers: usize,
    pub stalled: usize,
    pub payload_bytes: usize,
    pub mode: String,
    pub connect_s: f64,
    pub duration_s: f64,
    pub messages_sent: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub deliveries_per_s: f64,
    pub latency_us: Latency,
    /// The generator's own CPU time per delivery (all its threads), from the same window as
    /// the server's: on a shared machine, what the generator spends is taken from the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_cpu_ns_per_delivery: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_process: Option<ServerUsage>,
    /// File transfers made during the run (`--file-mb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<file::FileReport>,
}

/// Delivery latency (publisher send → subscriber receipt), in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The server's resources during the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    pub cpu_s: f64,
    pub cpu_ns_per_delivery: f64,
    pub rss_kib_after: u64,
}

/// One line of a soak run's progress.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub elapsed_s: f64,
    pub messages_sent: u64,
    pub deliveries_received: u64,
    pub deliveries_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
}

/// The payload's start: `publisher:sequence:nanoseconds since the run's start:`, then padding.
fn payload(publisher: usize, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut s = format!("{publisher}:{seq}:{sent_ns}:");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

/// The publisher, sequence number and send time at the start of a payload.
fn parse(text: &[u8]) -> Option<(usize, u64, u64)> {
    let mut numbers = [0u64; 3];
    let mut rest = text;
    for n in &mut numbers {
        let end = rest.iter().position(|&b| b == b':')?;
        *n = wire::decimal(&rest[..end])?;
        rest = &rest[end + 1..];
    }
    Some((usize::try_from(numbers[0]).ok()?, numbers[1], numbers[2]))
}

/// Opens `count` connections named `prefix0`, `prefix1`, ..., at most 64 handshakes at a time.
pub async fn connect_many(
    protocol: Protocol,
    transport: &Transport,
    server: &str,
    prefix: &str,
    count: usize,
    subscribe: bool,
) -> Result<Vec<Conn>, String> {
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let (server, name, gate) = (server.to_owned(), format!("{prefix}{i}"), gate.clone());
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            protocol
                .connect(&transport, &server, &name, subscribe)
                .await
        }));
    }
    let mut conns = Vec::with_capacity(count);
    for t in tasks {
        conns.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(conns)
}

/// CPU time (nanoseconds) and resident memory (KiB) of a process, from /proc: the CPU time
/// of its threads alive at the time (a thread that ends takes its time with it, and one that
/// ends while they are read is skipped).
pub fn process_usage(pid: u32) -> Option<(u64, u64)> {
    let mut cpu = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        cpu += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((cpu, rss))
}

/// Reads more into `conn.buf`; `Ok(false)` at end of stream.
pub(crate) async fn fill(conn: &mut Conn) -> Result<bool, String> {
    if conn.buf.capacity() - conn.buf.len() < 16 * 1024 {
        conn.buf.reserve(64 * 1024);
    }
    let n = conn
        .read
        .read_buf(&mut conn.buf)
        .await
        .map_err(|e| e.to_string())?;
    Ok(n > 0)
}

/// What one subscriber saw.
struct Seen {
    received: u64,
    reordered: u64,
    latency: Histogram<u64>,
}

fn histogram() -> Result<Histogram<u64>, String> {
    // Two significant digits (1 % resolution) keeps a thousand of them small.
    Histogram::new_with_bounds(1, 600_000_000, 2).map_err(|e| e.to_string())
}

/// Shared counters for progress reports.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
}

/// One subscriber: reads until it has `expected` deliveries (known once publishing ends) or the
/// drain time is over.
async fn subscribe(
    protocol: Protocol,
    mut conn: Conn,
    publishers: usize,
    epoch: Instant,
    mut done: watch::Receiver<Option<u64>>,
    drain: Duration,
    counters: Arc<Counters>,
) -> Result<Seen, String> {
    let mut seen = Seen {
        received: 0,
        reordered: 0,
        latency: histogram()?,
    };
    let mut last: Vec<Option<u64>> = vec![None; publishers];
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let expected = *done.borrow();
        if expected.is_some_and(|e| seen.received >= e) {
            break;
        }
        let more = tokio::select! {
            more = fill(&mut conn) => more?,
            _ = done.changed(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + drain);
                continue;
            }
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break,
        };
        if !more {
            return Err("a subscriber was disconnected".to_owned());
        }
        let now_ns = epoch.elapsed().as_nanos() as u64;
        let before = seen.received;
        let mut refused = None;
        let used = protocol.scan(&conn.buf, |item| match item {
            Item::Delivery(text) => {
                let Some((publisher, seq, sent_ns)) = parse(text) else {
                    return;
                };
                let Some(slot) = last.get_mut(publisher) else {
                    return;
                };
                let _ = seen
                    .latency
                    .record((now_ns.saturating_sub(sent_ns) / 1000).max(1));
                seen.received += 1;
                if slot.is_some_and(|prev| seq <= prev) {
                    seen.reordered += 1;
                }
                *slot = Some(seq);
            }
            Item::Refused(why) => refused = Some(why),
            Item::Ack | Item::Other => {}
        })?;
        conn.buf.advance(used);
        counters
            .received
            .fetch_add(seen.received - before, Ordering::Relaxed);
        if let Some(why) = refused {
            return Err(format!("a subscriber: {why}"));
        }
    }
    Ok(seen)
}

/// One publisher: closed loop (a window of messages in flight, each confirmed by the server)
/// or open loop (a fixed rate). Returns how many it sent.
async fn publish(
    protocol: Protocol,
    index: usize,
    mut conn: Conn,
    opts: &Options,
    rate: Option<f64>,
    epoch: Instant,
    counters: Arc<Counters>,
) -> Result<u64, String> {
    let until = opts.duration.map(|d| epoch + d);
    let more = |seq: u64| match until {
        Some(t) => Instant::now() < t,
        None => seq < opts.messages,
    };
    let mut seq = 0u64;
    let mut in_flight = 0usize;
    let mut ticker = rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut queued = 0u64;
    let send = |seq: &mut u64, queued: &mut u64, out: &mut BytesMut| {
        let sent_ns = epoch.elapsed().as_nanos() as u64;
        let text = payload(index, *seq, sent_ns, opts.size);
        *seq += 1;
        *queued += 1;
        protocol.publish(&text, *seq, out)
    };
    loop {
        if ticker.is_none() {
            // Closed loop: top the window up, in one write.
            while in_flight < opts.window && more(seq) {
                send(&mut seq, &mut queued, &mut out)?;
                in_flight += 1;
            }
        }
        if !out.is_empty() {
            conn.write
                .write_all(&out)
                .await
                .map_err(|e| format!("a publisher: {e}"))?;
            counters.sent.fetch_add(queued, Ordering::Relaxed);
            queued = 0;
            out.clear();
        }
        if in_flight == 0 && !more(seq) {
            break;
        }
        let can_tick = ticker.is_some() && more(seq);
        tokio::select! {
            biased;
            // Always read: with several publishers, the others' messages arrive here too.
            res = fill(&mut conn) => {
                if !res.map_err(|e| format!("a publisher: {e}"))? {
                    return Err("a publisher was disconnected".to_owned());
                }
                let mut refused = None;
                let used = protocol.scan(&conn.buf, |item| match item {
                    Item::Ack => in_flight = in_flight.saturating_sub(1),
                    Item::Refused(why) => refused = Some(why),
                    Item::Delivery(_) | Item::Other => {}
                })?;
                conn.buf.advance(used);
                if let Some(why) = refused {
                    return Err(format!("a publisher: {why}"));
                }
            }
            _ = async {
                if let Some(t) = &mut ticker {
                    t.tick().await;
                }
            }, if can_tick => {
                send(&mut seq, &mut queued, &mut out)?;
                in_flight += 1;
            }
        }
    }
    Ok(seq)
}

/// Runs one measurement.
pub async fn run(opts: Options) -> Result<Report, String> {
    let protocol = opts.protocol;
    let run_prefix = format!("b{}x", std::process::id());
    let started = Instant::now();
    let subscribers = connect_many(
        protocol,
        &opts.transport,
        &opts.server,
        &format!("{run_prefix}s"),
        opts.subscribers,
        true,
    )
    .await?;
    // Stalled readers stay open (and unread) until the run is over.
    let stalled = connect_many(
        protocol,
        &opts.transport,
        &opts.server,
        &format!("{run_prefix}z"),
        opts.stalled,
        true,
    )
    .await?;
    let publishers = connect_many(
        protocol,
        &opts.transport,
        &opts.server,
        &format!("{run_prefix}p"),
        opts.publishers,
        false,
    )
    .await?;
    let connect_s = started.elapsed().as_secs_f64();

    let epoch = Instant::now();
    let usage_before = opts.server_pid.and_then(process_usage);
    let own_before = process_usage(std::process::id());
    let (done_tx, done_rx) = watch::channel(None::<u64>);
    let counters = Arc::new(Counters::default());

    let mut sub_tasks = Vec::with_capacity(subscribers.len());
    for conn in subscribers {
        sub_tasks.push(tokio::spawn(subscribe(
            protocol,
            conn,
            opts.publishers,
            epoch,
            done_rx.clone(),
            opts.drain,
            counters.clone(),
        )));
    }
    let progress = opts.progress.map(|every| {
        let (counters, opts) = (counters.clone(), opts.clone());
        tokio::spawn(report_progress(every, counters, opts, epoch))
    });

    let sent = publish_all(protocol, publishers, &opts, epoch, &counters).await?;
    let publish_s = epoch.elapsed().as_secs_f64();
    // Every subscriber should get every message.
    let _ = done_tx.send(Some(sent));
    let (received, reordered, latency) = collect(sub_tasks).await?;
    let duration_s = epoch.elapsed().as_secs_f64();
    if let Some(p) = progress {
        p.abort();
    }
    drop(stalled);
    let expected = sent * opts.subscribers as u64;
    let own_cpu_ns = match (own_before, process_usage(std::process::id())) {
        (Some((cpu0, _)), Some((cpu1, _))) => Some(cpu1.saturating_sub(cpu0) as f64),
        _ => None,
    };
    let server_process = match (opts.server_pid, usage_before) {
        (Some(pid), Some((cpu0, _))) => process_usage(pid).map(|(cpu1, rss)| {
            let cpu_ns = cpu1.saturating_sub(cpu0) as f64;
            ServerUsage {
                cpu_s: cpu_ns / 1e9,
                cpu_ns_per_delivery: cpu_ns / received.max(1) as f64,
                rss_kib_after: rss,
            }
        }),
        _ => None,
    };
    Ok(Report {
        server: opts.server.clone(),
        protocol,
        subscribers: opts.subscribers,
        publishers: opts.publishers,
        stalled: opts.stalled,
        payload_bytes: opts.size,
        mode: match opts.rate {
            Some(r) => format!("open loop, {r} messages/s"),
            None => format!("closed loop, window {}", opts.window),
        },
        connect_s,
        duration_s,
        messages_sent: sent,
        deliveries_expected: expected,
        deliveries_received: received,
        lost: expected.saturating_sub(received),
        reordered,
        deliveries_per_s: received as f64 / duration_s.max(publish_s),
        latency_us: Latency {
            p50: latency.value_at_quantile(0.5),
            p99: latency.value_at_quantile(0.99),
            p999: latency.value_at_quantile(0.999),
            max: latency.max(),
        },
        generator_cpu_ns_per_delivery: own_cpu_ns.map(|ns| ns / received.max(1) as f64),
        server_process,
        file: None,
    })
}

/// Starts every publisher and waits for them; returns how many messages they sent.
async fn publish_all(
    protocol: Protocol,
    publishers: Vec<Conn>,
    opts: &Options,
    epoch: Instant,
    counters: &Arc<Counters>,
) -> Result<u64, String> {
    let per_publisher_rate = opts.rate.map(|r| r / opts.publishers.max(1) as f64);
    let mut pub_tasks = Vec::with_capacity(publishers.len());
    for (index, conn) in publishers.into_iter().enumerate() {
        let (opts, counters) = (opts.clone(), counters.clone());
        pub_tasks.push(tokio::spawn(async move {
            publish(
                protocol,
                index,
                conn,
                &opts,
                per_publisher_rate,
                epoch,
                counters,
            )
            .await
        }));
    }
    let mut sent = 0u64;
    for t in pub_tasks {
        sent += t.await.map_err(|e| e.to_string())??;
    }
    Ok(sent)
}

/// Waits for every subscriber; returns the deliveries received, those out of order, and the
/// latencies of all of them.
async fn collect(
    subscribers: Vec<tokio::task::JoinHandle<Result<Seen, String>>>,
) -> Result<(u64, u64, Histogram<u64>), String> {
    let mut latency = histogram()?;
    let (mut received, mut reordered) = (0u64, 0u64);
    for t in subscribers {
        let seen = t.await.map_err(|e| e.to_string())??;
        received += seen.received;
        reordered += seen.reordered;
        latency.add(&seen.latency).map_err(|e| e.to_string())?;
    }
    Ok((received, reordered, latency))
}

/// Prints a [`Progress`] line to stderr (and appends it to `--out`) every `every`.
async fn report_progress(every: Duration, counters: Arc<Counters>, opts: Options, epoch: Instant) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = (
        0u64,
        Instant::now(),
        opts.server_pid.and_then(process_usage),
    );
    loop {
        tick.tick().await;
        let received = counters.received.load(Ordering::Relaxed);
        let now = Instant::now();
        let usage = opts.server_pid.and_then(process_usage);
        let secs = now.duration_since(last.1).as_secs_f64().max(1e-9);
        let cpu = match (usage, last.2) {
            (Some((c1, _)), Some((c0, _))) => {
                Some(c1.saturating_sub(c0) as f64 / 1e9 / secs * 100.0)
            }
            _ => None,
        };
        let line = Progress {
            elapsed_s: epoch.elapsed().as_secs_f64(),
            messages_sent: counters.sent.load(Ordering::Relaxed),
            deliveries_received: received,
            deliveries_per_s: received.saturating_sub(last.0) as f64 / secs,
            server_rss_kib: usage.map(|(_, rss)| rss),
            server_cpu_percent: cpu,
        };
        let json = serde_json::to_string(&line).unwrap_or_default();
        eprintln!("{json}");
        if let Some(path) = &opts.out
            && let Err(e) = append_line(path, &json)
        {
            eprintln!("chat-bench: cannot write {}: {e}", path.display());
        }
        last = (received, now, usage);
    }
}

fn append_line(path: &PathBuf, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

/// Appends the report to `path` (one JSON line per run).
pub fn append_report(path: &PathBuf, report: &Report) -> std::io::Result<()> {
    append_line(path, &serde_json::to_string(report).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_carries_its_publisher_sequence_and_send_time() {
        let text = payload(3, 17, 123_456_789, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(parse(text.as_bytes()), Some((3, 17, 123_456_789)));
        // Longer than asked for when the header needs it.
        assert_eq!(payload(1, 2, 3, 0), "1:2:3:");
        assert_eq!(parse(b"1:2:3:"), Some((1, 2, 3)));
        assert_eq!(parse(b"1:2:"), None);
        assert_eq!(parse(b"hello from a person"), None);
    }
}
