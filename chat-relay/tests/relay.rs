//! The relay end to end: a real server and a real relay on ephemeral loopback ports, guests
//! and direct clients talking through them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_core::client::{ClientError, ConnectOptions, TcpClient, connect};
use chat_core::frame::{decode_payload, encode_frame};
use chat_core::names::NickError;
use chat_core::protocol::{
    ClientFrame, DisconnectReason, ErrorCode, HANDSHAKE_MAX_FRAME, Hello, MAX_SERVER_FRAME,
    PROTOCOL_VERSION, RejectReason, ServerFrame, Target,
};
use chat_core::{Connection, FrameReader};
use chat_relay::{Config, Relay, RunningRelay};
use chat_service::Secret;
use chat_testing::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "relay-test-secret-of-thirty-two-bytes-or-more";

struct TestRelay {
    addr: SocketAddr,
    log: PathBuf,
    running: RunningRelay,
    _dir: tempfile::TempDir,
}

impl TestRelay {
    async fn start(server: SocketAddr, secret: &str) -> TestRelay {
        Self::start_with(server, secret, |_| {}).await
    }

    async fn start_with(
        server: SocketAddr,
        secret: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestRelay {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("relay.jsonl");
        let mut config = Config::new(server.to_string(), Secret::from(secret));
        config.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        config.log_file = Some(log.clone());
        config.stats_interval = None;
        tweak(&mut config);
        let running = Relay::bind(config).await.expect("bind relay").spawn();
        TestRelay {
            addr: running.addr(),
            log,
            running,
            _dir: dir,
        }
    }

    async fn guest(&self, nick: &str) -> TcpClient {
        self.try_guest(nick)
            .await
            .unwrap_or_else(|e| panic!("{nick} could not connect through the relay: {e}"))
    }

    async fn try_guest(&self, nick: &str) -> Result<TcpClient, ClientError> {
        connect(&self.addr.to_string(), &ConnectOptions::new(nick)).await
    }

    /// Stops the relay (every connection closed and logged); returns the log lines.
    async fn stop(self) -> Vec<serde_json::Value> {
        tokio::time::timeout(WAIT, self.running.shutdown())
            .await
            .expect("relay stops in time");
        read_log(&self.log)
    }
}

/// Waits until the relay has closed every connection.
async fn wait_until_idle(relay: &TestRelay) {
    let stats = relay.running.stats();
    tokio::time::timeout(WAIT, until(|| stats.snapshot().connections_now == 0))
        .await
        .expect("the relay closes its connections");
}

async fn server_accepting_relays() -> TestServer {
    TestServer::start_with(|c| {
        c.relay_secret = Some(Secret::from(SECRET));
        generous_rate(c);
    })
    .await
}

fn rejected(result: Result<TcpClient, ClientError>) -> chat_core::protocol::Rejected {
    match result {
        Err(ClientError::Rejected(r)) => r,
        Err(other) => panic!("expected a refusal, got the error {other}"),
        Ok(c) => panic!("expected a refusal, got welcomed as {}", c.welcome.nick),
    }
}

#[tokio::test]
async fn a_guest_appears_starred_and_chats_with_direct_clients_both_ways() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut alice = server.client("alice").await;
    let mut bob = relay.guest("bob").await;
    assert_eq!(bob.welcome.nick, "*bob");
    assert!(bob.welcome.roster.iter().any(|u| u.nick == "alice"));

    let joined = expect(
        &mut alice,
        "bob joins",
        |f| matches!(f, ServerFrame::Joined { user, .. } if user.nick == "*bob"),
    )
    .await;
    let ServerFrame::Joined { user, .. } = joined else {
        unreachable!()
    };
    assert!(user.relayed, "shown as a relayed guest");

    bob.sender
        .say("lobby", "hi from the relay")
        .await
        .expect("send");
    assert_eq!(
        expect_text(&mut alice, "hi from the relay").await.from,
        "*bob"
    );
    alice
        .sender
        .private(&["*bob"], "psst, guest")
        .await
        .expect("pm");
    let m = expect_text(&mut bob, "psst, guest").await;
    assert_eq!(m.from, "alice");
    assert_eq!(m.to, Target::Users(vec!["*bob".into()]));
    bob.sender
        .private(&["alice"], "psst back")
        .await
        .expect("pm");
    assert_eq!(expect_text(&mut alice, "psst back").await.from, "*bob");

    // The server knows the guest by its own address, not the relay's.
    let guest_addr = bob.sender.get_mut().local_addr().expect("addr").to_string();
    drop(bob);
    expect(
        &mut alice,
        "bob leaves",
        |f| matches!(f, ServerFrame::Left { nick, .. } if nick == "*bob"),
    )
    .await;
    relay.stop().await;
    let log = server.stop().await;
    let join = log
        .iter()
        .find(|r| r["kind"] == "join" && r["nick"] == "*bob")
        .expect("join record");
    assert_eq!(join["addr"], guest_addr.as_str());
    assert_eq!(join["relayed"], true);
}

#[tokio::test]
async fn a_guest_edits_reacts_and_searches_through_the_relay_under_its_starred_name() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut alice = server.client("alice").await;
    let mut bob = relay.guest("bob").await;
    alice.sender.say("lobby", "hello guest").await.expect("say");
    let hers = expect_text(&mut bob, "hello guest").await.id;
    bob.sender.say("lobby", "helo").await.expect("say");
    let his = expect_text(&mut alice, "helo").await.id;

    send(
        &mut bob,
        ClientFrame::Edit {
            id: his,
            text: "hello".into(),
        },
    )
    .await;
    let edited = expect(
        &mut alice,
        "the guest's edit",
        |f| matches!(f, ServerFrame::Edited { id, .. } if *id == his),
    )
    .await;
    assert!(
        matches!(&edited, ServerFrame::Edited { text, by, .. } if text == "hello" && by == "*bob"),
        "{edited:?}"
    );
    send(
        &mut bob,
        ClientFrame::React {
            id: hers,
            emoji: "👋".into(),
        },
    )
    .await;
    let reactions = expect(
        &mut alice,
        "the guest's reaction",
        |f| matches!(f, ServerFrame::Reactions { id, .. } if *id == hers),
    )
    .await;
    let ServerFrame::Reactions { reactions, .. } = reactions else {
        unreachable!()
    };
    assert_eq!(reactions.len(), 1);
    assert_eq!(
        (reactions[0].emoji.as_str(), &reactions[0].nicks[..]),
        ("👋", &["*bob".to_owned()][..])
    );
    // Nor is a guest anyone else: alice's message stays hers.
    send(
        &mut bob,
        ClientFrame::Edit {
            id: hers,
            text: "mine now".into(),
        },
    )
    .await;
    let refused = expect_error(&mut bob).await;
    assert_eq!(refused.code, ErrorCode::NotAllowed, "{}", refused.message);
    // A guest searches what the server stored of the rooms it is in.
    let search = ClientFrame::Search {
        pattern: "hello gu".into(),
        before: None,
        limit: 20,
    };
    send(&mut bob, search).await;
    let found = expect(&mut bob, "search results", |f| {
        matches!(f, ServerFrame::Found { .. })
    })
    .await;
    let ServerFrame::Found { messages, .. } = found else {
        unreachable!()
    };
    let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, [hers]);
    // Mentions are an account's: a relayed guest is told so.
    let mentions = ClientFrame::Mentions {
        before: None,
        limit: 20,
    };
    send(&mut bob, mentions).await;
    let refused = expect_error(&mut bob).await;
    assert_eq!(refused.code, ErrorCode::NotAllowed, "{}", refused.message);
    assert!(
        refused.message.contains("accounts only"),
        "{}",
        refused.message
    );
    relay.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn files_go_through_the_relay_both_ways_unchanged() {
    let server = TestServer::start_with(|c| {
        c.relay_secret = Some(Secret::from(SECRET));
        generous_rate(c);
        c.files.rate = None;
    })
    .await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut alice = server.client("alice").await;
    let mut bob = relay.guest("bob").await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    assert!(transfer(&mut bob, &mut alice, "from-guest.bin", &data).await == data);
    assert!(transfer(&mut alice, &mut bob, "to-guest.bin", &data).await == data);
    still_chatting(&mut alice, &mut bob, "got both").await;
    relay.stop().await;
    let log = server.stop().await;
    let done: Vec<(&str, &str)> = log
        .iter()
        .filter(|r| r["kind"] == "file" && r["action"] == "done")
        .map(|r| {
            (
                r["from"].as_str().unwrap_or(""),
                r["to"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(done, [("*bob", "alice"), ("alice", "*bob")]);
}

#[tokio::test]
async fn starred_nicknames_are_for_guests_and_bad_ones_are_refused_with_the_rule() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let direct = server.client_result("*mallory").await;
    assert_eq!(rejected(direct).reason, RejectReason::NickReservedForRelay);
    // A star is not doubled.
    let carol = relay.guest("*carol").await;
    assert_eq!(carol.welcome.nick, "*carol");
    // A rule broken is named, by the relay itself.
    let r = rejected(relay.try_guest("two words").await);
    assert_eq!(r.reason, RejectReason::InvalidNick(NickError::Whitespace));
    assert!(r.message.contains("whitespace"), "{}", r.message);
    drop(carol);
    let log = relay.stop().await;
    assert!(log.iter().any(|r| {
        r["requested"] == "two words"
            && r["end"]
                .as_str()
                .is_some_and(|e| e.starts_with("refused: invalid nickname"))
    }));
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_the_guest_is_told_why() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, "not-the-secret-but-as-long-as-one-should-be").await;
    let r = rejected(relay.try_guest("dave").await);
    assert_eq!(r.reason, RejectReason::RelayRefused);
    assert!(r.message.contains("secret"), "{}", r.message);
    let log = relay.stop().await;
    assert!(
        log[0]["end"]
            .as_str()
            .is_some_and(|e| e.starts_with("refused by the server")),
        "{log:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_gets_a_clear_error_not_a_silent_close() {
    // A port that was just free: nothing listens there.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let relay = TestRelay::start(closed, SECRET).await;
    let e = relay.try_guest("erin").await.expect_err("no server");
    let text = e.to_string();
    let ClientError::Rejected(r) = e else {
        panic!("{text}")
    };
    assert_eq!(r.reason, RejectReason::Unavailable);
    assert!(text.contains("cannot reach the chat server"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    relay.stop().await;
}

/// Reads one frame of type `T` from a raw stream.
async fn read_frame<T: serde::de::DeserializeOwned>(s: &mut TcpStream) -> T {
    let len = s.read_u32().await.expect("length") as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.expect("payload");
    decode_payload(&payload).expect("decode")
}

#[tokio::test]
async fn after_the_hello_bytes_pass_unchanged_both_ways_and_half_closes_work() {
    // A stand-in server that records what it receives.
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let relay = TestRelay::start(upstream.local_addr().expect("addr"), SECRET).await;

    let mut guest = TcpStream::connect(relay.addr).await.expect("connect");
    let guest_addr = guest.local_addr().expect("addr");
    let hello = ClientFrame::Hello(Hello {
        version: PROTOCOL_VERSION,
        nick: "frank".into(),
        client: "test".into(),
        password: None,
    });
    // The Hello and, in the same write, bytes that are not even valid frames.
    let after_hello: Vec<u8> = (0..=255u8)
        .chain(b"\x00\x00\x00\x05hello".iter().copied())
        .collect();
    let mut first = encode_frame(&hello, HANDSHAKE_MAX_FRAME)
        .expect("encode")
        .to_vec();
    first.extend_from_slice(&after_hello);
    guest.write_all(&first).await.expect("write");

    let (mut server_side, _) = upstream.accept().await.expect("accept");
    let ClientFrame::RelayHello(rh) = read_frame::<ClientFrame>(&mut server_side).await else {
        panic!("RelayHello first")
    };
    assert_eq!(rh.secret, SECRET);
    assert_eq!(rh.peer_addr, guest_addr.to_string());
    let ClientFrame::Hello(h) = read_frame::<ClientFrame>(&mut server_side).await else {
        panic!("then Hello")
    };
    assert_eq!(h.nick, "*frank");
    assert_eq!(h.client, "test", "the rest of the Hello is unchanged");
    let mut got = vec![0u8; after_hello.len()];
    server_side
        .read_exact(&mut got)
        .await
        .expect("forwarded bytes");
    assert_eq!(got, after_hello);

    // The server's answer and whatever follows reach the guest byte for byte.
    let welcome = ServerFrame::Rejected(chat_core::protocol::Rejected {
        reason: RejectReason::ServerFull,
        message: "a scripted answer".into(),
    });
    let mut down = encode_frame(&welcome, MAX_SERVER_FRAME)
        .expect("encode")
        .to_vec();
    down.extend((0..100u8).rev());
    server_side.write_all(&down).await.expect("write");
    let mut got = vec![0u8; down.len()];
    guest.read_exact(&mut got).await.expect("read");
    assert_eq!(got, down);

    // The guest closes its sending side: the server sees the end, and can still answer.
    guest.shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    server_side.read_to_end(&mut rest).await.expect("eof");
    assert!(rest.is_empty());
    server_side
        .write_all(b"after the half-close")
        .await
        .expect("write");
    server_side.shutdown().await.expect("shutdown");
    let mut tail = Vec::new();
    guest.read_to_end(&mut tail).await.expect("read to end");
    assert_eq!(tail, b"after the half-close");

    let log = relay.stop().await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["bytes_from_client"], after_hello.len() as u64);
    assert_eq!(log[0]["bytes_to_client"], (down.len() + 20) as u64);
}

#[tokio::test]
async fn one_hundred_guests_at_once() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut watcher = server.client("watcher").await;
    let addr = relay.addr.to_string();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let nick = format!("g{i}");
                let mut c = connect(&addr, &ConnectOptions::new(nick.as_str()))
                    .await
                    .unwrap_or_else(|e| panic!("{nick}: {e}"));
                assert_eq!(c.welcome.nick, format!("*{nick}"));
                c.sender
                    .say("lobby", format!("hello from {nick}"))
                    .await
                    .expect("send");
                expect_text(&mut c, &format!("hello from {nick}")).await;
                c
            })
        })
        .collect();
    let mut guests = Vec::new();
    for t in tasks {
        guests.push(t.await.expect("guest task"));
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 100 {
        let m = next_message(&mut watcher).await;
        seen.insert(m.from);
    }
    assert_eq!(relay.running.stats().snapshot().connections_now, 100);
    drop(guests);
    relay.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_flooding_guest_is_limited_by_its_own_address_and_others_are_unaffected() {
    let server = TestServer::start_with(|c| {
        c.relay_secret = Some(Secret::from(SECRET));
        c.rate.burst = 3;
        c.rate.per_sec = 0.5;
        c.rate.kick_after = 5;
    })
    .await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut flood = relay.guest("flood").await;
    let mut calm = relay.guest("calm").await;
    let mut watcher = server.client("watcher").await;
    for i in 0..20 {
        if flood
            .sender
            .say("lobby", format!("spam {i}"))
            .await
            .is_err()
        {
            break;
        }
    }
    let frames = read_to_end(&mut flood).await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, ServerFrame::RateLimited { .. }))
    );
    assert!(frames.iter().any(|f| matches!(
        f,
        ServerFrame::Bye {
            reason: DisconnectReason::Flooding,
            ..
        }
    )));
    // The other guest, through the same relay, is not limited.
    calm.sender.say("lobby", "still here").await.expect("send");
    assert_eq!(expect_text(&mut watcher, "still here").await.from, "*calm");
    expect_text(&mut calm, "still here").await;

    let flood_addr = flood
        .sender
        .get_mut()
        .local_addr()
        .expect("addr")
        .to_string();
    drop((flood, calm));
    relay.stop().await;
    let log = server.stop().await;
    let limited = log
        .iter()
        .find(|r| r["kind"] == "rate_limited")
        .expect("rate_limited record");
    assert_eq!(limited["nick"], "*flood");
    assert_eq!(limited["addr"], flood_addr.as_str());
}

#[tokio::test]
async fn the_relay_log_has_one_line_per_connection() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut gina = relay.guest("gina").await;
    let gina_addr = gina.sender.get_mut().local_addr().expect("addr");
    gina.sender.say("lobby", "logged").await.expect("send");
    expect_text(&mut gina, "logged").await;
    gina.sender.quit("bye").await.expect("quit");
    read_to_end(&mut gina).await;
    drop(gina);
    rejected(relay.try_guest("bad nick").await);
    wait_until_idle(&relay).await;
    let log = relay.stop().await;
    server.stop().await;
    assert_eq!(log.len(), 2, "{log:?}");
    let g = log
        .iter()
        .find(|r| r["nick"] == "*gina")
        .expect("gina's line");
    assert_eq!(g["client"], gina_addr.to_string());
    assert_eq!(g["requested"], "gina");
    assert_eq!(g["server_nick"], "*gina");
    assert_eq!(g["end"], "closed");
    assert!(g["bytes_from_client"].as_u64().expect("bytes") > 0);
    assert!(g["bytes_to_client"].as_u64().expect("bytes") > 0);
    assert!(g["duration_ms"].is_u64());
    assert!(g["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
}

/// The clock is paused: the silent connection's handshake timeout passes only as the test
/// moves the clock.
#[tokio::test(start_paused = true)]
async fn bad_first_frames_and_limits_get_clear_refusals_and_others_carry_on() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start_with(server.addr, SECRET, |c| {
        c.max_clients = 3;
        c.handshake_timeout = Duration::from_secs(3);
    })
    .await;
    let mut a = relay.guest("a").await;
    let mut b = relay.guest("b").await;

    // Raw connections, answered by the relay itself.
    async fn refusal_for(relay: SocketAddr, bytes: &[u8]) -> chat_core::protocol::Rejected {
        let stream = TcpStream::connect(relay).await.expect("connect");
        let mut conn: Connection<_, _, ServerFrame, ClientFrame> =
            Connection::tcp(stream, MAX_SERVER_FRAME).expect("conn");
        conn.writer.get_mut().write_all(bytes).await.expect("write");
        match tokio::time::timeout(WAIT, conn.recv())
            .await
            .expect("answer")
        {
            Ok(Some(ServerFrame::Rejected(r))) => r,
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
    let oversized = refusal_for(relay.addr, &[0x00, 0x10, 0x00, 0x00]).await;
    assert_eq!(oversized.reason, RejectReason::FrameTooLarge);
    let garbage = refusal_for(relay.addr, b"\x00\x00\x00\x04\xff\xff\xff\xff").await;
    assert_eq!(garbage.reason, RejectReason::Malformed);
    let not_hello = encode_frame(&ClientFrame::Ping { nonce: 1 }, 64).expect("encode");
    assert_eq!(
        refusal_for(relay.addr, &not_hello).await.reason,
        RejectReason::ExpectedHello
    );
    let silent = refusal_for(relay.addr, b"");
    let step = Duration::from_millis(250);
    let silent = advance_until(silent, step, Duration::from_secs(600)).await;
    assert_eq!(silent.reason, RejectReason::HelloTimeout);

    // The relay is full at three guests.
    let c = relay.guest("c").await;
    let full = rejected(relay.try_guest("d").await);
    assert_eq!(full.reason, RejectReason::ServerFull);
    assert!(full.message.contains("relay is full"), "{}", full.message);

    still_chatting(&mut a, &mut b, "we are fine").await;
    drop(c);
    relay.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn either_side_closing_closes_the_other() {
    let server = server_accepting_relays().await;
    let relay = TestRelay::start(server.addr, SECRET).await;
    let mut watcher = server.client("watcher").await;
    // The guest goes: the server sees it leave.
    let guest = relay.guest("henry").await;
    drop(guest);
    expect(
        &mut watcher,
        "henry leaves",
        |f| matches!(f, ServerFrame::Left { nick, .. } if nick == "*henry"),
    )
    .await;
    // The server goes: the guest is told and its connection ends.
    let mut guest = relay.guest("ida").await;
    let stats = relay.running.stats();
    drop(watcher);
    server.stop().await;
    let frames = read_to_end(&mut guest).await;
    assert!(frames.iter().any(|f| matches!(
        f,
        ServerFrame::Bye {
            reason: DisconnectReason::ServerShutdown,
            ..
        }
    )));
    drop(guest);
    // Nothing is left behind in the relay.
    wait_until_idle(&relay).await;
    assert_eq!(stats.snapshot().connections_total, 2);
    relay.stop().await;
}

#[tokio::test]
async fn the_frame_reader_hands_over_what_it_read_ahead() {
    // The relay relies on this: bytes after the Hello that arrived with it are not lost.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server_side, _) = listener.accept().await.expect("accept");
    let mut bytes = encode_frame(&ClientFrame::Ping { nonce: 7 }, 64)
        .expect("encode")
        .to_vec();
    bytes.extend_from_slice(b"tail bytes");
    client.write_all(&bytes).await.expect("write");
    let mut reader: FrameReader<TcpStream, ClientFrame> = FrameReader::new(server_side, 64);
    assert_eq!(
        reader.recv().await.expect("frame"),
        Some(ClientFrame::Ping { nonce: 7 })
    );
    let (mut stream, mut read_ahead) = reader.into_parts();
    while read_ahead.len() < b"tail bytes".len() {
        let mut more = [0u8; 16];
        let n = stream.read(&mut more).await.expect("read");
        read_ahead.extend_from_slice(&more[..n]);
    }
    assert_eq!(&read_ahead[..], b"tail bytes");
}

#[test]
fn the_binary_explains_itself_and_refuses_to_start_without_a_secret() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_chat-relay"))
        // No configuration file of this machine's.
        .env("CHAT_RELAY_CONFIG", "/dev/null")
        .arg("--help")
        .output()
        .expect("run chat-relay");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--port",
        "--server",
        "--relay-secret",
        "--log-file",
    ] {
        assert!(text.contains(flag), "--help mentions {flag}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chat-relay"))
        // No configuration file of this machine's.
        .env("CHAT_RELAY_CONFIG", "/dev/null")
        .env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join("chat-relay-test-data"),
        )
        .env_remove("CHAT_RELAY_SECRET")
        .env_remove("CHAT_RELAY_SECRET_FILE")
        .output()
        .expect("run chat-relay");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("chat-relay: a relay secret is needed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_that_hangs_up_without_answering_is_reported_to_the_guest() {
    // Something listening that is not a chat server: it accepts, reads a little, and hangs up.
    let odd = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let odd_addr = odd.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = odd.accept().await {
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf).await;
        }
    });
    let relay = TestRelay::start(odd_addr, SECRET).await;
    let r = rejected(relay.try_guest("jack").await);
    assert_eq!(r.reason, RejectReason::Unavailable);
    assert!(r.message.contains("closed the connection"), "{}", r.message);
    let log = relay.stop().await;
    assert!(
        log[0]["end"]
            .as_str()
            .is_some_and(|e| e.starts_with("refused: the chat server"))
    );
}

/// The clock is paused: the guest's stall timeout passes only as the test moves the clock,
/// a second for every 64 messages the guest does not read.
#[tokio::test(start_paused = true)]
async fn a_guest_that_stops_reading_does_not_hold_its_session() {
    let server = TestServer::start_with(|c| {
        c.relay_secret = Some(Secret::from(SECRET));
        generous_rate(c);
        c.send_queue_bytes = 64 * 1024;
    })
    .await;
    let relay = TestRelay::start_with(server.addr, SECRET, |c| {
        c.stall_timeout = Duration::from_secs(5);
    })
    .await;
    // The guest logs in, then never reads again.
    let stuck = relay.guest("stuck").await;
    let mut talker = server.client("talker").await;
    let big = "y".repeat(4000);
    // Enough to fill every buffer between the server and the guest: the server drops the
    // guest, and the relay, unable to write to it, lets it go.
    let stats = relay.running.stats();
    for n in 1.. {
        talker.sender.say("lobby", big.clone()).await.expect("send");
        expect_text(&mut talker, &big).await;
        if stats.snapshot().connections_now == 0 {
            break;
        }
        assert!(n < 5000, "the relay never let the guest go");
        if n % 64 == 0 {
            tokio::time::advance(Duration::from_secs(1)).await;
        }
    }
    let idle = until(|| stats.snapshot().connections_now == 0);
    advance_until(idle, Duration::from_secs(1), Duration::from_secs(600)).await;
    drop(stuck);
    let log = relay.stop().await;
    assert!(
        log[0]["end"]
            .as_str()
            .is_some_and(|e| e.contains("has not read anything")),
        "{log:?}"
    );
    server.stop().await;
}

/// TLS on both sides: the guest to the relay (the relay's own certificate), the relay to the
/// server (the server's, trusted by its fingerprint), and a direct client over TLS too.
#[tokio::test]
async fn guests_chat_over_tls_on_both_sides_of_the_relay() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_tls(&dir.path().join("server"))(c);
        c.relay_secret = Some(Secret::from(SECRET));
        generous_rate(c);
    })
    .await;
    let server_fp = server.fingerprint();
    let relay_dir = dir.path().join("relay");
    let relay = TestRelay::start_with(server.addr, SECRET, |c| {
        c.tls = Some(chat_relay::RelayTls {
            source: chat_service::tls::CertSource::Generated {
                dir: relay_dir.clone(),
                names: vec!["127.0.0.1".into()],
            },
            plaintext_from: chat_service::tls::PlaintextFrom::Loopback,
        });
        c.server_tls = Some(true);
        c.server_fingerprint = Some(server_fp.clone());
        c.loopback_is_remote = true;
    })
    .await;
    let relay_fp = chat_service::tls::Identity::load(&chat_service::tls::CertSource::Generated {
        dir: relay_dir,
        names: Vec::new(),
    })
    .expect("the relay's certificate")
    .fingerprint;
    assert_ne!(
        relay_fp, server_fp,
        "the relay has a certificate of its own"
    );
    let security = chat_core::Security::Tls {
        pinned: Some(relay_fp),
    };
    let mut guest = chat_core::connect_secured(
        &relay.addr.to_string(),
        &ConnectOptions::new("gina"),
        &security,
    )
    .await
    .expect("a guest over TLS");
    assert_eq!(guest.welcome.nick, "*gina");
    let mut direct = tls_client(&server, "dan", None, &server_fp)
        .await
        .expect("dan");
    still_chatting(&mut guest, &mut direct, "encrypted both ways").await;
    // From elsewhere, unencrypted guests are refused by the relay itself.
    let (reason, _) = refused(relay.try_guest("plain").await);
    assert_eq!(reason, RejectReason::TlsRequired);
    drop(guest);
    relay.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_server_certificate_the_relay_does_not_trust_is_named_to_the_guest() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_tls(dir.path())(c);
        c.relay_secret = Some(Secret::from(SECRET));
    })
    .await;
    let relay = TestRelay::start_with(server.addr, SECRET, |c| c.server_tls = Some(true)).await;
    let r = rejected(relay.try_guest("gina").await);
    assert_eq!(r.reason, RejectReason::Unavailable);
    assert!(
        r.message.contains("--server-fingerprint") && r.message.contains(&server.fingerprint()),
        "{}",
        r.message
    );
    relay.stop().await;
    server.stop().await;
}
