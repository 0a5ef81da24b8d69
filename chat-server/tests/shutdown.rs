//! Graceful shutdown, in-process and as a real process receiving SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chat_core::client::{ConnectOptions, connect};
use chat_core::protocol::{DisconnectReason, ServerFrame};
use chat_testing::*;

#[tokio::test]
async fn shutdown_says_bye_to_everyone_and_flushes_the_log() {
    let server = TestServer::start_with(generous_rate).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    for i in 0..100 {
        alice
            .sender
            .say("lobby", format!("line {i}"))
            .await
            .expect("send");
    }
    alice
        .sender
        .private(&["bob"], "last words")
        .await
        .expect("pm");
    expect_text(&mut bob, "last words").await;

    let log = server.stop().await;
    for c in [&mut alice, &mut bob] {
        let frames = read_to_end(c).await;
        assert!(
            matches!(
                frames.last(),
                Some(ServerFrame::Bye {
                    reason: DisconnectReason::ServerShutdown,
                    ..
                })
            ),
            "{:?}",
            frames.last()
        );
    }
    let messages: Vec<_> = log.iter().filter(|e| e["kind"] == "message").collect();
    assert_eq!(
        messages.len(),
        101,
        "every message is in the log after shutdown"
    );
    assert_eq!(messages[100]["text"], "last words");
    assert!(
        log.iter()
            .any(|e| e["kind"] == "disconnect" && e["reason"] == "server shutting down")
    );
}

#[tokio::test]
async fn what_was_read_before_shutdown_is_delivered_and_logged_alike() {
    let server = TestServer::start_with(generous_rate).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    still_chatting(&mut alice, &mut bob, "warm-up").await;
    for i in 0..200 {
        alice
            .sender
            .say("lobby", format!("burst {i}"))
            .await
            .expect("send");
    }
    // Stop without waiting: some of the burst is still on its way through the server.
    let log = server.stop().await;
    let echoed: Vec<String> = read_to_end(&mut alice)
        .await
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) if m.tag.is_some() && m.body.text().starts_with("burst") => {
                Some(m.body.text().to_owned())
            }
            _ => None,
        })
        .collect();
    let frames = read_to_end(&mut bob).await;
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Bye {
            reason: DisconnectReason::ServerShutdown,
            ..
        })
    ));
    let delivered: Vec<String> = frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Message(m) if m.body.text().starts_with("burst") => {
                Some(m.body.text().to_owned())
            }
            _ => None,
        })
        .collect();
    let logged: Vec<String> = log
        .iter()
        .filter(|e| {
            e["kind"] == "message" && e["text"].as_str().is_some_and(|t| t.starts_with("burst"))
        })
        .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!logged.is_empty(), "some of the burst was handled");
    assert_eq!(
        delivered, logged,
        "every logged message reached bob before his Bye, in order"
    );
    assert_eq!(echoed, logged, "and was acknowledged to alice");
}

/// Kills the child if the test fails half-way.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_starts_chats_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("sub").join("chat.jsonl");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            // No configuration file of this machine's.
            .env("CHAT_SERVER_CONFIG", "/dev/null")
            // The monitor too, on free ports: the binary starts it by default.
            .args(["--http-port", "0", "--ws-port", "0"])
            .args(["--port", "0", "--stats-interval", "0", "--log-file"])
            .arg(&log)
            .arg("--db")
            .arg(dir.path().join("chat.db"))
            .env_remove("RUST_LOG")
            // What the server keeps in its data folder (its certificate) goes here.
            .env("XDG_DATA_HOME", dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn chat-server"),
    );
    // The console names the address (port 0 picked a free one) and the log file.
    let stderr = child.0.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut console = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(WAIT)
            .expect("the server prints where it listens");
        console.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    // The certificate's fingerprint, which clients see the first time they connect.
    let line = rx.recv_timeout(WAIT).expect("certificate line");
    assert!(
        line.contains("TLS certificate SHA256:") && line.contains("tls/cert.pem"),
        "{line}"
    );
    let line = rx.recv_timeout(WAIT).expect("log line");
    assert!(
        line.contains("message log") && line.contains("chat.jsonl"),
        "{line}"
    );
    // And the monitor's address, with its token, ready to open.
    let url = loop {
        let line = rx.recv_timeout(WAIT).expect("the monitor's address");
        if let Some(url) = line.split("monitor: open ").nth(1) {
            break url.trim().to_owned();
        }
    };
    let page = url.strip_prefix("http://").expect("http URL");
    let (host, path) = page.split_once('/').expect("host and path");
    assert!(path.starts_with("?token=") && path.len() > 20, "{url}");
    let mut http = std::net::TcpStream::connect(host).expect("connect to the monitor");
    std::io::Write::write_all(
        &mut http,
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("request");
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut http, &mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    let mut alice = connect(&addr, &ConnectOptions::new("alice"))
        .await
        .expect("connect");
    alice
        .sender
        .say("lobby", "hello from a real process")
        .await
        .expect("send");
    expect_text(&mut alice, "hello from a real process").await;

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let frames = read_to_end(&mut alice).await;
    assert!(matches!(
        frames.last(),
        Some(ServerFrame::Bye {
            reason: DisconnectReason::ServerShutdown,
            ..
        })
    ));
    let exit = tokio::task::spawn_blocking(move || {
        let status = child.0.wait();
        (status, child)
    })
    .await
    .expect("wait");
    assert!(
        exit.0.expect("exit status").success(),
        "exit status 0 after SIGTERM"
    );
    let lines = read_log(&log);
    assert!(
        lines
            .iter()
            .any(|e| e["kind"] == "message" && e["text"] == "hello from a real process")
    );
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        // No configuration file of this machine's.
        .env("CHAT_SERVER_CONFIG", "/dev/null")
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--port",
        "--http-port",
        "--ws-port",
        "--log-file",
        "--stats-interval",
        "--rate-burst",
        "--rate-per-sec",
        "--max-clients",
        "--relay-secret",
        "--db",
        "--history",
        "--guests",
        "CHAT_PORT",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        // No configuration file of this machine's.
        .env("CHAT_SERVER_CONFIG", "/dev/null")
        .args([
            "--port",
            &port,
            "--no-log-file",
            "--no-monitor",
            "--db",
            ":memory:",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on 127.0.0.1:") && err.contains("in use"),
        "{err}"
    );
}
