//! A short run against an in-process server: the tool works and counts right.

use std::time::Duration;

use chat_bench::{Options, Protocol, Transport, run};
use chat_server::{Config, Server};
use chat_service::tls::{CertSource, Reloadable};

/// A server on a free loopback port, without log file or stats.
fn config() -> Config {
    Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_delivers_everything_in_order() {
    let mut config = config();
    config.rate.burst = 1_000_000;
    config.rate.per_sec = 1_000_000.0;
    let server = Server::bind(config).await.expect("bind").spawn();
    for rate in [None, Some(2000.0)] {
        let report = run(Options {
            subscribers: 20,
            publishers: 2,
            messages: 200,
            rate,
            window: 16,
            server_pid: Some(std::process::id()),
            ..Options::new(server.addr().to_string())
        })
        .await
        .expect("run");
        assert_eq!(report.messages_sent, 400);
        assert_eq!(report.deliveries_expected, 400 * 20);
        assert_eq!(report.deliveries_received, 400 * 20, "{report:?}");
        assert_eq!((report.lost, report.reordered), (0, 0));
        assert!(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.max);
        assert!(report.server_process.is_some());
        assert!(
            report
                .generator_cpu_ns_per_delivery
                .is_some_and(|ns| ns > 0.0)
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_does_not_stop_the_others() {
    let mut config = config();
    config.rate.burst = 1_000_000;
    config.rate.per_sec = 1_000_000.0;
    let server = Server::bind(config).await.expect("bind").spawn();
    // 40,000 messages of 512 bytes (24 MB with framing) overflow the stalled reader's 1 MiB
    // queue and the socket buffers (a few MB): the server drops it, the others get everything.
    let report = run(Options {
        subscribers: 5,
        stalled: 1,
        size: 512,
        messages: 40_000,
        ..Options::new(server.addr().to_string())
    })
    .await
    .expect("run");
    assert_eq!(report.deliveries_received, 40_000 * 5, "{report:?}");
    assert_eq!(server.stats().snapshot().slow_dropped, 1);
    server.shutdown().await;
}

/// A Redis server on a free loopback port, stopped when dropped.
struct Redis {
    child: std::process::Child,
    addr: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate for localhost and 127.0.0.1 made in `dir` (`cert.pem`, `key.pem`).
fn certificate(dir: &std::path::Path) -> (CertSource, String) {
    let source = CertSource::Generated {
        dir: dir.to_owned(),
        names: vec!["localhost".into(), "127.0.0.1".into()],
    };
    let fingerprint = Reloadable::load(source.clone())
        .expect("certificate")
        .fingerprint();
    (source, fingerprint)
}

async fn start_redis() -> Redis {
    start_redis_with(None).await
}

/// Redis on a free port; with a certificate, speaking TLS only (`--tls-port`).
async fn start_redis_with(tls: Option<&CertSource>) -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = std::process::Command::new("redis-server");
    match tls {
        None => cmd.args(["--port", &port.to_string()]),
        Some(source) => {
            let (cert, key) = source.files();
            cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .args(["--tls-auth-clients", "no"])
        }
    };
    let child = cmd
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed for this test (Debian package redis-server)");
    let addr = format!("127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Redis { child, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_mode_measures_redis_pub_sub() {
    let redis = start_redis().await;
    for rate in [None, Some(2000.0)] {
        let report = run(Options {
            protocol: Protocol::Redis,
            subscribers: 20,
            publishers: 2,
            messages: 200,
            rate,
            window: 16,
            ..Options::new(redis.addr.clone())
        })
        .await
        .expect("run");
        assert_eq!(report.deliveries_received, 400 * 20, "{report:?}");
        assert_eq!((report.lost, report.reordered), (0, 0));
    }
    let idle = chat_bench::idle(
        Protocol::Redis,
        &Transport::plain(),
        &redis.addr,
        50,
        redis.child.id(),
        Duration::ZERO,
    )
    .await
    .expect("idle");
    assert_eq!(idle.connections, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_mode_reports_memory_per_connection() {
    let config = config();
    let server = Server::bind(config).await.expect("bind").spawn();
    // The server runs in this process: its memory is this process's.
    let report = chat_bench::idle(
        Protocol::Chat,
        &Transport::plain(),
        &server.addr().to_string(),
        50,
        std::process::id(),
        Duration::ZERO,
    )
    .await
    .expect("idle");
    assert_eq!(report.connections, 50);
    assert!(report.server_rss_kib_before > 0 && report.server_rss_kib_after > 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_server_and_redis_are_measured_over_tls() {
    let dir = tempfile::tempdir().expect("dir");
    let (source, fingerprint) = certificate(&dir.path().join("tls"));
    let mut config = config();
    config.rate.burst = 1_000_000;
    config.rate.per_sec = 1_000_000.0;
    config.tls = Some(chat_server::config::TlsConfig {
        source: source.clone(),
        plaintext_from: chat_service::tls::PlaintextFrom::Loopback,
    });
    let server = Server::bind(config).await.expect("bind").spawn();
    let redis = start_redis_with(Some(&source)).await;
    let transport = Transport::tls(Some(fingerprint)).expect("tls");
    for (protocol, addr) in [
        (Protocol::Chat, server.addr().to_string()),
        (Protocol::Redis, redis.addr.clone()),
    ] {
        let report = run(Options {
            protocol,
            transport: transport.clone(),
            subscribers: 20,
            publishers: 2,
            messages: 200,
            window: 16,
            ..Options::new(addr)
        })
        .await
        .expect("run");
        assert_eq!(
            report.deliveries_received,
            400 * 20,
            "{protocol:?}: {report:?}"
        );
        assert_eq!((report.lost, report.reordered), (0, 0));
    }
    // A certificate not trusted: refused, saying how to trust it.
    let untrusted = Transport::tls(None).expect("tls");
    let e = run(Options {
        transport: untrusted,
        subscribers: 1,
        messages: 1,
        ..Options::new(server.addr().to_string())
    })
    .await
    .expect_err("untrusted");
    assert!(e.contains("--trust-fingerprint"), "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_pass_through_while_the_chat_runs_and_are_counted() {
    let mut config = config();
    config.rate.burst = 1_000_000;
    config.rate.per_sec = 1_000_000.0;
    config.files.rate = None;
    let server = Server::bind(config).await.expect("bind").spawn();
    let completed = chat_bench::file::Completed::default();
    let files = tokio::spawn(chat_bench::file::transfers(
        server.addr().to_string(),
        3_000_000,
        completed.clone(),
    ));
    // Until two files went through, while a chat run goes on.
    let runs = async {
        loop {
            let report = run(Options {
                subscribers: 10,
                messages: 200,
                ..Options::new(server.addr().to_string())
            })
            .await
            .expect("run");
            assert_eq!(report.lost, 0);
            if chat_bench::file::report(&completed).transfers >= 2 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), runs)
        .await
        .expect("two transfers in time");
    files.abort();
    let report = chat_bench::file::report(&completed);
    assert_eq!(report.bytes, report.transfers * 3_000_000);
    assert!(report.mb_per_s > 0.0, "{report:?}");
    server.shutdown().await;
}
