//! The monitor: HTTP endpoints, the WebSocket feed (backlog then live, in order, private
//! messages included), access control, and viewer isolation.

use std::net::SocketAddr;

use chat_server::MonitorConfig;
use chat_service::Secret;
use chat_testing::*;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const TOKEN: &str = "test-token-0123456789";

async fn server_with_monitor(tweak: impl FnOnce(&mut MonitorConfig)) -> TestServer {
    let mut monitor = MonitorConfig {
        http_port: 0,
        ws_port: Some(0),
        token: Some(Secret::from(TOKEN)),
        ..MonitorConfig::default()
    };
    tweak(&mut monitor);
    TestServer::start_with(|c| {
        c.monitor = Some(monitor);
        generous_rate(c);
    })
    .await
}

fn http_addr(server: &TestServer) -> SocketAddr {
    server.monitor.as_ref().expect("monitor").http
}

struct HttpReply {
    status: u16,
    headers: String,
    body: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A plain HTTP/1.1 GET over a fresh connection.
async fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> HttpReply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read");
    let raw = String::from_utf8(raw).expect("utf-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    HttpReply {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn the_page_its_assets_stats_and_metrics() {
    let server = server_with_monitor(|_| {}).await;
    let addr = http_addr(&server);

    let page = get(addr, &format!("/?token={TOKEN}"), &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<title>chat monitor</title>"));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no external resources"
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(
        page.header("set-cookie"),
        None,
        "the token goes nowhere else"
    );

    // The script and the style sheet hold nothing secret: no token needed.
    let js = get(addr, "/app.js", &[]).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let css = get(addr, "/style.css", &[]).await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    assert_eq!(get(addr, "/nothing-here", &[]).await.status, 404);
    for path in ["/", "/stats", "/metrics", "/?token=wrong", "/?token="] {
        assert_eq!(get(addr, path, &[]).await.status, 401, "{path}");
    }

    let mut alice = server.client("alice").await;
    alice.sender.say("lobby", "counted").await.expect("send");
    expect_text(&mut alice, "counted").await;
    let stats = get(addr, &format!("/stats?token={TOKEN}"), &[]).await;
    assert_eq!(stats.header("content-type"), Some("application/json"));
    let stats: serde_json::Value = serde_json::from_str(&stats.body).expect("json");
    assert_eq!(stats["clients_now"], 1);
    assert_eq!(stats["messages_in"], 1);
    assert_eq!(stats["monitor_viewers"], 0);

    let metrics = get(
        addr,
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(
        metrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    // OpenMetrics text: HELP, TYPE (and UNIT) before each family's samples, `# EOF` at the end.
    let mut names = Vec::new();
    let mut lines = metrics.body.lines().peekable();
    while let Some(help) = lines.next() {
        if help == "# EOF" {
            assert_eq!(lines.next(), None, "nothing after # EOF");
            break;
        }
        let family = help
            .strip_prefix("# HELP ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("expected HELP, got {help:?}"));
        let ty = lines.next().expect("TYPE line");
        let kind = ty
            .strip_prefix(&format!("# TYPE {family} "))
            .unwrap_or_else(|| panic!("{ty}"));
        if lines.peek().is_some_and(|l| l.starts_with("# UNIT ")) {
            lines.next();
        }
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "info" => &["_info"],
            "gauge" => &[""],
            "histogram" => &["_sum", "_count", "_bucket"],
            other => panic!("unexpected type {other}"),
        };
        while let Some(sample) = lines.next_if(|l| !l.starts_with("# ")) {
            let (n, v) = sample.split_once(' ').expect("name value");
            // Labels, if any: `name{label="value"}`.
            let n = n.split_once('{').map_or(n, |(n, labels)| {
                assert!(labels.ends_with('}'), "{sample}");
                n
            });
            assert!(
                suffixes.iter().any(|s| n == format!("{family}{s}")),
                "{sample} in {family}"
            );
            v.parse::<f64>().expect("a number");
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            names.push(n.to_owned());
        }
    }
    assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
    for wanted in [
        "chat_clients",
        "chat_messages_total",
        "chat_deliveries_total",
        "chat_bytes_received_total",
        "chat_bytes_sent_total",
        "chat_rate_limited_total",
        "chat_slow_clients_dropped_total",
        "chat_monitor_viewers",
        "chat_build_info",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    assert!(metrics.body.contains("chat_messages_total 1\n"));
    // The message's delivery was timed: one observation, in seconds.
    assert!(
        metrics
            .body
            .contains("# UNIT chat_delivery_latency_seconds seconds\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("chat_delivery_latency_seconds_count 1\n")
    );
    assert!(
        metrics
            .body
            .contains("chat_delivery_latency_seconds_bucket{le=\"+Inf\"} 1\n")
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        metrics
            .body
            .contains(&format!("chat_build_info{{version=\"{version}\"}} 1\n"))
    );
    server.stop().await;
}

const METRICS_TOKEN: &str = "metrics-only-0123456789";

#[tokio::test]
async fn health_and_readiness_need_no_token_and_the_metrics_token_reads_only_metrics() {
    let server = server_with_monitor(|m| {
        m.metrics_token = Some(Secret::from(METRICS_TOKEN));
    })
    .await;
    let addr = http_addr(&server);

    let health = get(addr, "/healthz", &[]).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(addr, "/readyz", &[]).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(ready.header("cache-control"), Some("no-store"));

    // Prometheus's token reads the metrics, by header or query...
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let metrics = get(addr, "/metrics", &[("Authorization", &bearer)]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("chat_clients "), "{}", metrics.body);
    let by_query = get(addr, &format!("/metrics?token={METRICS_TOKEN}"), &[]).await;
    assert_eq!(by_query.status, 200);
    // ... and nothing else: not the page, not the counters, not the feed of private messages.
    for path in ["/", "/stats", "/ws"] {
        let reply = get(addr, path, &[("Authorization", &bearer)]).await;
        assert_eq!(reply.status, 401, "{path}");
    }
    let feed = format!("ws://{addr}/ws?token={METRICS_TOKEN}");
    assert!(viewer(&feed, None).await.is_err(), "the feed refuses it");
    // The monitor's own token still reads the metrics.
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        get(addr, "/metrics", &[("Authorization", &bearer)])
            .await
            .status,
        200
    );
    assert_eq!(get(addr, "/metrics", &[]).await.status, 401);
    server.stop().await;
}

type Viewer = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn viewer(url: &str, origin: Option<&str>) -> Result<Viewer, WsError> {
    let mut req = url.into_client_request().expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", o.parse().expect("header"));
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn next_record(ws: &mut Viewer) -> serde_json::Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a record in time")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("json"),
            Some(Ok(_)) => {}
            other => panic!("feed ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn backlog_then_live_in_order_with_private_messages() {
    let server = server_with_monitor(|_| {}).await;
    let info = server.monitor.clone().expect("monitor");
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.sender.say("lobby", "before").await.expect("send");
    expect_text(&mut bob, "before").await;
    alice
        .sender
        .private(&["bob"], "secret before")
        .await
        .expect("send");
    expect_text(&mut bob, "secret before").await;

    // Both ways in: /ws on the HTTP port (from the page's origin), and the feed port.
    let page_origin = format!("http://{}", info.http);
    let mut on_http = viewer(
        &format!("ws://{}/ws?token={TOKEN}", info.http),
        Some(&page_origin),
    )
    .await
    .expect("viewer on /ws");
    let ws_addr = info.ws.expect("feed port");
    let mut on_ws_port = viewer(
        &format!("ws://{ws_addr}/?token={TOKEN}"),
        Some(&page_origin),
    )
    .await
    .expect("viewer on the feed port");

    for ws in [&mut on_http, &mut on_ws_port] {
        let backlog = [
            next_record(ws).await,
            next_record(ws).await,
            next_record(ws).await,
            next_record(ws).await,
        ];
        assert_eq!(backlog[0]["kind"], "join");
        assert_eq!(backlog[0]["nick"], "alice");
        assert_eq!(backlog[1]["nick"], "bob");
        assert_eq!(backlog[2]["text"], "before");
        assert_eq!(backlog[2]["room"], "lobby");
        assert_eq!(backlog[3]["text"], "secret before");
        assert_eq!(backlog[3]["from"], "alice");
        assert_eq!(backlog[3]["to"], serde_json::json!(["bob"]));
        for (i, r) in backlog.iter().enumerate() {
            assert_eq!(r["seq"], i as u64 + 1, "no gap, no duplicate");
        }
    }

    bob.sender
        .private(&["alice"], "secret after")
        .await
        .expect("send");
    alice.sender.say("lobby", "after").await.expect("send");
    for ws in [&mut on_http, &mut on_ws_port] {
        let a = next_record(ws).await;
        let b = next_record(ws).await;
        assert_eq!(
            (a["seq"].clone(), a["text"].clone()),
            (5.into(), "secret after".into())
        );
        assert_eq!(a["to"], serde_json::json!(["alice"]));
        assert_eq!(
            (b["seq"].clone(), b["text"].clone()),
            (6.into(), "after".into())
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn foreign_origins_and_missing_tokens_are_refused() {
    let server = server_with_monitor(|_| {}).await;
    let info = server.monitor.clone().expect("monitor");
    let ws_addr = info.ws.expect("feed port");
    let refused = |r: Result<Viewer, WsError>| match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted"),
    };
    for url in [
        format!("ws://{}/ws?token={TOKEN}", info.http),
        format!("ws://{ws_addr}/?token={TOKEN}"),
    ] {
        assert_eq!(
            refused(viewer(&url, Some("http://evil.example")).await),
            403,
            "{url}"
        );
        let no_token = url.replace(&format!("token={TOKEN}"), "token=nope");
        let page = format!("http://{}", info.http);
        assert_eq!(refused(viewer(&no_token, Some(&page)).await), 401, "{url}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_viewer_that_stops_reading_is_closed_and_chat_goes_on() {
    let server = TestServer::start_with(|c| {
        c.monitor = Some(MonitorConfig {
            http_port: 0,
            ws_port: None,
            token: Some(Secret::from(TOKEN)),
            backlog: 0,
            viewer_queue: 8,
            ..MonitorConfig::default()
        });
        generous_rate(c);
        // The test's clients read in turns on one thread: give them room.
        c.send_queue_bytes = 64 * 1024 * 1024;
    })
    .await;
    let info = server.monitor.clone().expect("monitor");
    let mut stuck = viewer(&format!("ws://{}/ws?token={TOKEN}", info.http), None)
        .await
        .expect("viewer");
    let alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // Far more than the socket buffers hold: the viewer's queue overflows.
    let text = "x".repeat(3000);
    const N: usize = 4000;
    let chat_testing::TestClientParts {
        mut sender,
        mut events,
    } = chat_testing::parts(alice);
    let send = async {
        for _ in 0..N {
            sender.say("lobby", text.clone()).await.expect("send");
        }
    };
    // Alice reads her echoes, Bob reads everything: both keep up.
    let echoes = async {
        let mut got = 0;
        while got < N {
            if let Ok(Some(chat_core::protocol::ServerFrame::Message(_))) = events.next().await {
                got += 1;
            }
        }
    };
    let receive = async {
        let mut got = 0;
        while got < N {
            if next_message(&mut bob).await.from == "alice" {
                got += 1;
            }
        }
    };
    tokio::join!(send, echoes, receive);

    // The stuck viewer, read at last: what was queued, then a close saying why.
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match stuck.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
    .expect("a close frame with a reason");
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.contains("too slow"), "{}", close.reason);
    let stats = get(info.http, &format!("/stats?token={TOKEN}"), &[]).await;
    let stats: serde_json::Value = serde_json::from_str(&stats.body).expect("json");
    assert_eq!(stats["monitor_viewers_dropped"], 1);
    assert_eq!(stats["slow_dropped"], 0, "no chat client was dropped");
    server.stop().await;
}

/// A plain HTTP/1.1 GET from the loopback address `from`, the connection left to the server
/// to close (as a browser keeping it alive would).
async fn get_kept_alive(from: &str, addr: SocketAddr, path: &str) -> HttpReply {
    let mut s = connect_from(from, addr).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection after its answer")
        .expect("read");
    let raw = String::from_utf8(raw).expect("utf-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    HttpReply {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn silent_sockets_from_one_address_do_not_lock_the_monitor_out() {
    let server = server_with_monitor(|_| {}).await;
    let addr = http_addr(&server);
    let mut silent = Vec::new();
    for _ in 0..70 {
        silent.push(connect_from("127.0.0.2", addr).await);
    }
    // Someone else still reads the stats at once, and watches the feed.
    let stats = get_kept_alive("127.0.0.3", addr, &format!("/stats?token={TOKEN}")).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let ws_url = format!("ws://{addr}/ws?token={TOKEN}");
    viewer(&ws_url, None).await.expect("a viewer gets in");
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_is_closed_after_its_answer_and_holds_no_place() {
    let server = server_with_monitor(|_| {}).await;
    let addr = http_addr(&server);
    // Seventy page loads that would keep their connections: each is closed after its answer.
    for _ in 0..70 {
        let script = get_kept_alive("127.0.0.2", addr, "/app.js").await;
        assert_eq!(script.status, 200);
        assert_eq!(script.header("connection"), Some("close"));
    }
    let stats = get_kept_alive("127.0.0.3", addr, &format!("/stats?token={TOKEN}")).await;
    assert_eq!(stats.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_viewer_over_the_limit_is_told_why_and_refused_requests_take_no_place() {
    let server = server_with_monitor(|m| m.max_viewers = 2).await;
    let addr = http_addr(&server);
    let url = format!("ws://{addr}/ws?token={TOKEN}");
    // Requests without the token are refused and take no viewer's place.
    for _ in 0..10 {
        assert!(viewer(&format!("ws://{addr}/ws"), None).await.is_err());
    }
    let mut first = viewer(&url, None).await.expect("first");
    let _second = viewer(&url, None).await.expect("second");
    let mut third = viewer(&url, None).await.expect("the upgrade");
    match tokio::time::timeout(WAIT, third.next())
        .await
        .expect("told in time")
    {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Again);
            assert!(
                frame.reason.contains("too many monitor viewers"),
                "{frame:?}"
            );
        }
        other => panic!("expected a close frame saying why, got {other:?}"),
    }
    // The first viewers still get the feed.
    let mut alice = server.client("alice").await;
    alice.sender.say("lobby", "watched").await.expect("say");
    loop {
        let record = next_record(&mut first).await;
        if record["kind"] == "message" {
            assert_eq!(record["text"], "watched");
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_metrics_token_equal_to_the_monitor_token_is_refused_at_start() {
    let config = chat_server::Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        monitor: Some(MonitorConfig {
            http_port: 0,
            ws_port: None,
            token: Some(Secret::from(TOKEN)),
            metrics_token: Some(Secret::from(TOKEN)),
            ..MonitorConfig::default()
        }),
        ..chat_server::Config::default()
    };
    let Err(e) = chat_server::Server::bind(config).await else {
        panic!("the server started with the same token twice");
    };
    assert!(e.to_string().contains("--metrics-token must differ"), "{e}");
}
