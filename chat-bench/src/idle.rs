//! The idle scenario: connections that only log in, and the server's memory for them.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{Protocol, Transport, connect_many, fill, process_usage};

/// What `--idle` measured: the server's memory for connections that only log in.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub server: String,
    pub protocol: Protocol,
    pub connections: usize,
    pub connect_s: f64,
    pub server_rss_kib_before: u64,
    pub server_rss_kib_after: u64,
    pub server_bytes_per_connection: f64,
}

/// Opens `count` connections that log in (chat) or subscribe (Redis) and then only read what
/// they are sent; reports the server's memory growth. The connections stay open for `hold`
/// after the measurement, so that the server can be looked at with a profiler meanwhile.
pub async fn idle(
    protocol: Protocol,
    transport: &Transport,
    server: &str,
    count: usize,
    server_pid: u32,
    hold: Duration,
) -> Result<IdleReport, String> {
    let usage =
        || process_usage(server_pid).ok_or_else(|| format!("cannot read /proc/{server_pid}"));
    let rss = || usage().map(|(_, rss)| rss);
    let before = rss()?;
    let started = Instant::now();
    let conns = connect_many(
        protocol,
        transport,
        server,
        &format!("i{}x", std::process::id()),
        count,
        true,
    )
    .await?;
    let connect_s = started.elapsed().as_secs_f64();
    // Like real clients, they read what the server sends them (the others' joins).
    let readers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                while let Ok(true) = fill(&mut conn).await {
                    conn.buf.clear();
                }
            })
        })
        .collect();
    // Let the server finish what the logins started (join announcements, which the clients
    // read) before measuring: idle means the server uses (almost) no CPU for a whole second.
    // Its memory is read two seconds later, so that an allocator that gives memory back on a
    // timer has done so.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = usage()?;
    let mut settled = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = usage()?;
        // Under 1 % of one core over the last second.
        let quiet = now.0.saturating_sub(last.0) < 10_000_000;
        last = now;
        if quiet {
            settled = true;
            break;
        }
    }
    if !settled {
        return Err("the server did not become idle within 120 s".to_owned());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss()?;
    if !hold.is_zero() {
        eprintln!(
            "chat-bench: measured; holding the {count} connections for {} s",
            hold.as_secs()
        );
        tokio::time::sleep(hold).await;
    }
    for r in readers {
        r.abort();
    }
    Ok(IdleReport {
        server: server.to_owned(),
        protocol,
        connections: count,
        connect_s,
        server_rss_kib_before: before,
        server_rss_kib_after: after,
        server_bytes_per_connection: (after.saturating_sub(before) * 1024) as f64
            / count.max(1) as f64,
    })
}
