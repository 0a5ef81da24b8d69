//! A short run against an in-process server: the tool works and counts right.

use std::time::Duration;

use chat_bench::{Options, run};
use chat_server::{Config, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_delivers_everything_in_order() {
    let mut config = Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        log_file: None,
        stats_interval: None,
        ..Config::default()
    };
    config.rate.burst = 1_000_000;
    config.rate.per_sec = 1_000_000.0;
    let server = Server::bind(config).await.expect("bind").spawn();
    for rate in [None, Some(2000.0)] {
        let report = run(Options {
            server: server.addr().to_string(),
            subscribers: 20,
            publishers: 2,
            size: 64,
            messages: 200,
            duration: None,
            rate,
            window: 16,
            server_pid: Some(std::process::id()),
            drain: Duration::from_secs(10),
        })
        .await
        .expect("run");
        assert_eq!(report.messages_sent, 400);
        assert_eq!(report.deliveries_expected, 400 * 20);
        assert_eq!(report.deliveries_received, 400 * 20, "{report:?}");
        assert_eq!((report.lost, report.reordered), (0, 0));
        assert!(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.max);
        assert!(report.server_process.is_some());
    }
    server.shutdown().await;
}
