//! What the relay costs: throughput and round-trip latency through the relay, against the same
//! measurements with direct connections. Run with `cargo bench -p chat-relay`.
//!
//! Everything runs in this process on loopback: a server (rate limits lifted), a relay, and
//! clients. Throughput: `PAIRS` pairs of clients, each sender sending `MESSAGES` private
//! messages to its receiver back to back; the time is from the first send until every receiver
//! has every message. Latency: one client sends `PINGS` pings one at a time and times each
//! round trip (ping → pong).

use std::time::{Duration, Instant};

use chat_core::client::{ConnectOptions, TcpClient, connect};
use chat_core::protocol::ServerFrame;
use chat_relay::{Config as RelayConfig, Relay};
use chat_server::{Config as ServerConfig, Server};
use chat_service::Secret;

const PAIRS: usize = 4;
const MESSAGES: usize = 20_000;
const PINGS: usize = 20_000;
const ROUNDS: usize = 3;
const SECRET: &str = "bench-secret-of-at-least-thirty-two-bytes";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run a short version.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (messages, pings, rounds) = if quick {
        (200, 200, 1)
    } else {
        (MESSAGES, PINGS, ROUNDS)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(messages, pings, rounds));
}

async fn run(messages: usize, pings: usize, rounds: usize) {
    let mut server_config = ServerConfig {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        relay_secret: Some(Secret::from(SECRET)),
        ..ServerConfig::default()
    };
    server_config.rate.burst = u32::MAX;
    server_config.rate.per_sec = 1e12;
    server_config.send_queue_bytes = 64 * 1024 * 1024;
    let server = Server::bind(server_config).await.expect("server").spawn();
    let mut relay_config = RelayConfig::new(server.addr().to_string(), Secret::from(SECRET));
    relay_config.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    relay_config.stats_interval = None;
    let relay = Relay::bind(relay_config).await.expect("relay").spawn();
    let direct = server.addr().to_string();
    let relayed = relay.addr().to_string();

    println!(
        "relay benchmark: {PAIRS} sender/receiver pairs x {messages} private messages; \
         {pings} sequential pings; best of {rounds} rounds"
    );
    let mut results = Vec::new();
    for (name, addr) in [("direct", &direct), ("relayed", &relayed)] {
        let mut best_rate = 0f64;
        let mut best_lat: Option<(Duration, Duration)> = None;
        for round in 0..rounds {
            let rate = throughput(addr, &format!("{name}{round}"), messages).await;
            best_rate = best_rate.max(rate);
            let (p50, p99) = latency(addr, &format!("{name}{round}p"), pings).await;
            if best_lat.is_none_or(|(b, _)| p50 < b) {
                best_lat = Some((p50, p99));
            }
        }
        let (p50, p99) = best_lat.expect("a round");
        println!(
            "{name:>8}: {best_rate:>10.0} messages/s   round trip p50 {:>6.1} µs  p99 {:>6.1} µs",
            micros(p50),
            micros(p99)
        );
        results.push((best_rate, p50));
    }
    let (direct_rate, direct_p50) = results[0];
    let (relay_rate, relay_p50) = results[1];
    println!(
        "relayed throughput: {:.1} % of direct; added p50 round trip: {:.1} µs",
        100.0 * relay_rate / direct_rate,
        micros(relay_p50) - micros(direct_p50)
    );
    relay.shutdown().await;
    server.shutdown().await;
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn client(addr: &str, nick: &str) -> TcpClient {
    connect(addr, &ConnectOptions::new(nick))
        .await
        .unwrap_or_else(|e| panic!("{nick}: {e}"))
}

/// Messages per second delivered from senders to receivers.
async fn throughput(addr: &str, tag: &str, messages: usize) -> f64 {
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let sender = client(addr, &format!("s{tag}x{i}")).await;
        let receiver = client(addr, &format!("r{tag}x{i}")).await;
        pairs.push((sender, receiver));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (sender, receiver) in pairs {
        let to = receiver.welcome.nick.clone();
        tasks.push(tokio::spawn(async move {
            // Own both clients whole: a closure capturing only `events` would drop (and close)
            // the sending half.
            let (mut sender, mut receiver) = (sender, receiver);
            let send = async {
                for n in 0..messages {
                    sender
                        .sender
                        .private(&[&to], format!("message {n}"))
                        .await
                        .expect("send");
                }
                // Keep reading the echoes so the server never has to drop us.
                let mut echoes = 0;
                while echoes < messages {
                    if let Ok(Some(ServerFrame::Message(_))) = sender.events.next().await {
                        echoes += 1;
                    }
                }
            };
            let receive = async {
                let mut got = 0;
                while got < messages {
                    match receiver.events.next().await {
                        Ok(Some(ServerFrame::Message(_))) => got += 1,
                        Ok(Some(f @ ServerFrame::Bye { .. })) => panic!("receiver: {f:?}"),
                        Ok(Some(_)) => {}
                        other => panic!("receiver: {other:?}"),
                    }
                }
            };
            tokio::join!(send, receive);
        }));
    }
    for t in tasks {
        t.await.expect("pair");
    }
    (PAIRS * messages) as f64 / start.elapsed().as_secs_f64()
}

/// Median and 99th percentile of ping round trips.
async fn latency(addr: &str, tag: &str, pings: usize) -> (Duration, Duration) {
    let mut c = client(addr, &format!("p{tag}")).await;
    let mut times = Vec::with_capacity(pings);
    for n in 0..pings as u64 {
        let start = Instant::now();
        c.sender.ping(n).await.expect("ping");
        loop {
            match c.events.next().await {
                Ok(Some(ServerFrame::Pong { nonce, .. })) if nonce == n => break,
                Ok(Some(_)) => {}
                other => panic!("pinger: {other:?}"),
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}
