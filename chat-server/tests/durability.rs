//! The durability guarantee, on the real binary: a message whose acknowledgement (its echo)
//! reached the sender is in the history after the server is killed with SIGKILL mid-stream
//! and started again on the same database.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_core::client::{ConnectOptions, TcpClient, connect};
use chat_core::protocol::{ClientFrame, ErrorCode, ServerFrame};

const WAIT: Duration = Duration::from_secs(20);
/// Acknowledged messages to collect before the kill.
const ACKED_BEFORE_KILL: usize = 300;

/// A server process, killed (SIGKILL) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port with `db`; returns it and the address it listens on.
fn start(db: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        // No configuration file of this machine's.
        .env("CHAT_SERVER_CONFIG", "/dev/null")
        .args([
            "--port",
            "0",
            "--no-monitor",
            "--no-log-file",
            "--stats-interval",
            "0",
        ])
        .args(["--rate-burst", "1000000", "--rate-per-sec", "1000000"])
        .arg("--db")
        .arg(db)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(WAIT)
        .expect("the server says where it listens");
    (Server(child), addr)
}

async fn client(addr: &str, nick: &str) -> TcpClient {
    connect(addr, &ConnectOptions::new(nick))
        .await
        .unwrap_or_else(|e| panic!("{nick}: {e}"))
}

#[tokio::test]
async fn every_acknowledged_message_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("chat.db");
    let (mut server, addr) = start(&db);
    let writer = client(&addr, "writer").await;
    let mut sender = writer.sender;
    let mut events = writer.events;
    // Send as fast as the socket takes it, until the connection breaks.
    let sending = tokio::spawn(async move {
        let mut tags = Vec::new();
        for i in 0u64.. {
            match sender.say("lobby", format!("m{i}")).await {
                Ok(tag) => tags.push(tag),
                Err(_) => break,
            }
        }
        tags
    });
    let mut acked: Vec<String> = Vec::new();
    let mut refused: Vec<u64> = Vec::new();
    let mut killed = false;
    tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                // Refused because the store was full: never stored, so not in the check below.
                Ok(Some(ServerFrame::Error(e))) if e.code == ErrorCode::Busy => {
                    refused.extend(e.tag);
                }
                Ok(Some(ServerFrame::Message(m))) if m.tag.is_some() => {
                    acked.push(m.body.text().to_owned());
                    if acked.len() == ACKED_BEFORE_KILL && !killed {
                        // Mid-stream: more is in flight, in the socket and in the store's queue.
                        server.0.kill().expect("SIGKILL");
                        killed = true;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    })
    .await
    .expect("the connection ends after the kill");
    assert!(killed, "the server was killed mid-stream");
    let sent = sending.await.expect("sender").len();
    let _ = server.0.wait();
    drop(server);
    assert!(
        sent > acked.len(),
        "messages were still in flight at the kill"
    );

    let (_server, addr) = start(&db);
    let mut checker = client(&addr, "checker").await;
    let mut stored: Vec<(u64, String)> = Vec::new();
    let mut before = None;
    tokio::time::timeout(WAIT, async {
        // The replay on arrival comes first; then pages back to the start.
        let mut replayed = false;
        loop {
            if replayed {
                checker
                    .sender
                    .send(&ClientFrame::History {
                        room: "lobby".into(),
                        before,
                        limit: 500,
                    })
                    .await
                    .expect("ask");
            }
            let (messages, more) = loop {
                match checker.events.next().await.expect("read").expect("open") {
                    ServerFrame::History { messages, more, .. } => break (messages, more),
                    _ => continue,
                }
            };
            if !replayed {
                replayed = true;
                continue;
            }
            before = messages.first().map(|m| m.id);
            stored.splice(
                0..0,
                messages
                    .into_iter()
                    .map(|m| (m.id, m.body.text().to_owned())),
            );
            if !more {
                break;
            }
        }
    })
    .await
    .expect("history read back");
    let texts: HashSet<&str> = stored.iter().map(|(_, t)| t.as_str()).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|t| !texts.contains(t.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // Stored in the order sent, without gaps but for messages refused as busy (tag i + 1 is
    // message m{i}): the store commits in order.
    let expected: Vec<String> = (0u64..)
        .filter(|i| !refused.contains(&(i + 1)))
        .take(stored.len())
        .map(|i| format!("m{i}"))
        .collect();
    let texts_in_order: Vec<&String> = stored.iter().map(|(_, t)| t).collect();
    assert_eq!(texts_in_order, expected.iter().collect::<Vec<_>>());
    assert!(stored.windows(2).all(|p| p[0].0 < p[1].0));
}
