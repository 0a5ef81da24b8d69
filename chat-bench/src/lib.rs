//! The load generator: N subscribers and P publishers in the lobby of a chat server (or
//! relay), each payload carrying its publisher, sequence number and send time; reports
//! throughput, loss, reordering, latency percentiles, and the server's CPU and memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::client::{ConnectOptions, TcpClient, connect};
use chat_core::protocol::{Body, DEFAULT_ROOM, ServerFrame, Target};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server or relay, `host:port`.
    pub server: String,
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
    /// Closed loop: messages each publisher may have in flight (sent, own echo not back yet).
    pub window: usize,
    /// The server's process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// How long to wait for the last deliveries once publishing is over.
    pub drain: Duration,
}

/// What was measured, as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub subscribers: usize,
    pub publishers: usize,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_process: Option<ServerUsage>,
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

/// The payload's start: `publisher:sequence:nanoseconds since the run's start:`, then padding.
fn payload(publisher: usize, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut s = format!("{publisher}:{seq}:{sent_ns}:");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

fn parse(text: &str) -> Option<(usize, u64, u64)> {
    let mut parts = text.splitn(4, ':');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}

async fn client(server: &str, nick: String) -> Result<TcpClient, String> {
    let opts = ConnectOptions::new(nick.as_str()).client("chat-bench");
    connect(server, &opts)
        .await
        .map_err(|e| format!("{nick}: {e}"))
}

/// Opens `count` connections named `prefix0`, `prefix1`, ..., at most 64 at a time.
pub async fn connect_many(
    server: &str,
    prefix: &str,
    count: usize,
) -> Result<Vec<TcpClient>, String> {
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let (server, nick, gate) = (server.to_owned(), format!("{prefix}{i}"), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            client(&server, nick).await
        }));
    }
    let mut clients = Vec::with_capacity(count);
    for t in tasks {
        clients.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok(clients)
}

/// CPU time (all threads, nanoseconds) and resident memory (KiB) of a process, from /proc.
pub fn process_usage(pid: u32) -> Option<(u64, u64)> {
    let mut cpu = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let stat = std::fs::read_to_string(path).ok()?;
        cpu += stat.split_whitespace().next()?.parse::<u64>().ok()?;
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

/// What one subscriber saw.
struct Seen {
    received: u64,
    reordered: u64,
    latency: Histogram<u64>,
}

/// Runs one measurement.
pub async fn run(opts: Options) -> Result<Report, String> {
    let run_prefix = format!("b{}x", std::process::id());
    let started = Instant::now();
    let subscribers =
        connect_many(&opts.server, &format!("{run_prefix}s"), opts.subscribers).await?;
    let publishers = connect_many(&opts.server, &format!("{run_prefix}p"), opts.publishers).await?;
    let connect_s = started.elapsed().as_secs_f64();
    let publisher_nicks: Vec<String> = publishers.iter().map(|c| c.welcome.nick.clone()).collect();

    let epoch = Instant::now();
    let usage_before = opts.server_pid.and_then(process_usage);
    let (done_tx, done_rx) = tokio::sync::watch::channel(None::<u64>);

    // Subscribers: count, check order per publisher, time each delivery.
    let mut sub_tasks = Vec::with_capacity(subscribers.len());
    for sub in subscribers {
        let nicks = publisher_nicks.clone();
        let mut done = done_rx.clone();
        let drain = opts.drain;
        sub_tasks.push(tokio::spawn(async move {
            // The whole client, not just its receiving half: dropping the sending half would
            // close the connection.
            let mut sub = sub;
            let mut seen = Seen {
                received: 0,
                reordered: 0,
                latency: Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
            };
            let mut last: HashMap<usize, u64> = HashMap::new();
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let expected = *done.borrow();
                if expected.is_some_and(|e| seen.received >= e) {
                    break;
                }
                let frame = tokio::select! {
                    f = sub.events.next() => f,
                    _ = done.changed(), if expected.is_none() => {
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
                let m = match frame {
                    Ok(Some(ServerFrame::Message(m))) => m,
                    Ok(Some(_)) => continue,
                    Ok(None) => return Err("a subscriber was disconnected".to_owned()),
                    Err(e) => return Err(format!("a subscriber: {e}")),
                };
                if !nicks.contains(&m.from) {
                    continue;
                }
                let Body::Text(text) = &m.body else { continue };
                let Some((publisher, seq, sent_ns)) = parse(text) else {
                    continue;
                };
                let now_ns = epoch.elapsed().as_nanos() as u64;
                let _ = seen
                    .latency
                    .record((now_ns.saturating_sub(sent_ns) / 1000).max(1));
                seen.received += 1;
                match last.insert(publisher, seq) {
                    Some(prev) if seq <= prev => seen.reordered += 1,
                    _ => {}
                }
            }
            Ok::<_, String>(seen)
        }));
    }

    // Publishers.
    let per_publisher_rate = opts.rate.map(|r| r / opts.publishers.max(1) as f64);
    let mut pub_tasks = Vec::with_capacity(publishers.len());
    for (index, publisher) in publishers.into_iter().enumerate() {
        let opts = opts.clone();
        pub_tasks.push(tokio::spawn(async move {
            publish(index, publisher, &opts, per_publisher_rate, epoch).await
        }));
    }
    let mut sent = 0u64;
    for t in pub_tasks {
        sent += t.await.map_err(|e| e.to_string())??;
    }
    let publish_s = epoch.elapsed().as_secs_f64();
    // Every subscriber should get every message.
    let _ = done_tx.send(Some(sent));
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let (mut received, mut reordered) = (0u64, 0u64);
    for t in sub_tasks {
        let seen = t.await.map_err(|e| e.to_string())??;
        received += seen.received;
        reordered += seen.reordered;
        latency.add(&seen.latency).map_err(|e| e.to_string())?;
    }
    let duration_s = epoch.elapsed().as_secs_f64();
    let expected = sent * opts.subscribers as u64;
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
        subscribers: opts.subscribers,
        publishers: opts.publishers,
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
        server_process,
    })
}

/// One publisher: closed loop (a window of messages in flight, confirmed by the server's echo)
/// or open loop (a fixed rate). Returns how many it sent.
async fn publish(
    index: usize,
    mut c: TcpClient,
    opts: &Options,
    rate: Option<f64>,
    epoch: Instant,
) -> Result<u64, String> {
    let until = opts.duration.map(|d| epoch + d);
    let more = |seq: u64| match until {
        Some(t) => Instant::now() < t,
        None => seq < opts.messages,
    };
    let room = Target::Room(DEFAULT_ROOM.to_owned());
    let mut seq = 0u64;
    let mut in_flight = 0usize;
    let mut ticker = rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.001)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    loop {
        let can_send = more(seq) && (ticker.is_some() || in_flight < opts.window);
        if !can_send && in_flight == 0 {
            break;
        }
        tokio::select! {
            biased;
            frame = c.events.next(), if in_flight > 0 => match frame {
                Ok(Some(ServerFrame::Message(m))) if m.tag.is_some() => in_flight -= 1,
                Ok(Some(ServerFrame::RateLimited { .. })) => {
                    return Err("the server rate-limits the publishers: start it with \
                                --rate-burst 1000000 --rate-per-sec 1000000".to_owned());
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("a publisher was disconnected".to_owned()),
                Err(e) => return Err(format!("a publisher: {e}")),
            },
            _ = async {
                if let Some(t) = &mut ticker {
                    t.tick().await;
                }
            }, if can_send => {
                let sent_ns = epoch.elapsed().as_nanos() as u64;
                let text = payload(index, seq, sent_ns, opts.size);
                c.sender
                    .message(room.clone(), Body::Text(text), Vec::new())
                    .await
                    .map_err(|e| format!("a publisher: {e}"))?;
                seq += 1;
                in_flight += 1;
            }
        }
    }
    Ok(seq)
}

/// What `--idle` measured: the server's memory for connections that only log in.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub server: String,
    pub connections: usize,
    pub connect_s: f64,
    pub server_rss_kib_before: u64,
    pub server_rss_kib_after: u64,
    pub server_bytes_per_connection: f64,
}

/// Opens `count` connections that log in and stay idle; reports the server's memory growth.
pub async fn idle(server: &str, count: usize, server_pid: u32) -> Result<IdleReport, String> {
    let rss = || {
        process_usage(server_pid)
            .map(|(_, rss)| rss)
            .ok_or_else(|| format!("cannot read /proc/{server_pid}"))
    };
    let before = rss()?;
    let started = Instant::now();
    let clients = connect_many(server, &format!("i{}x", std::process::id()), count).await?;
    let connect_s = started.elapsed().as_secs_f64();
    // Let the server finish what the logins started (join broadcasts) before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss()?;
    drop(clients);
    Ok(IdleReport {
        server: server.to_owned(),
        connections: count,
        connect_s,
        server_rss_kib_before: before,
        server_rss_kib_after: after,
        server_bytes_per_connection: (after.saturating_sub(before) * 1024) as f64
            / count.max(1) as f64,
    })
}

/// Where the report can also be appended (one JSON line per run).
pub fn append_report(path: &PathBuf, report: &Report) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{}", serde_json::to_string(report).unwrap_or_default())
}
