//! Bad input of every kind gets a clear error for that client and leaves everyone else
//! unaffected.

use std::time::Duration;

use chat_core::frame::encode_frame;
use chat_core::protocol::{
    ClientFrame, DisconnectReason, HANDSHAKE_MAX_FRAME, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    RejectReason, ServerFrame,
};
use chat_testing::*;
use tokio::io::AsyncWriteExt;

/// Starts a server with two chatting bystanders, runs `attack`, and checks that the
/// bystanders still chat afterwards, that no attacker is left in the roster, and that the
/// attack is in the log.
async fn with_bystanders<F, Fut>(attack: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: std::future::Future<Output = TestServer>,
{
    with_bystanders_and(|_| {}, attack).await
}

async fn with_bystanders_and<F, Fut>(tweak: impl FnOnce(&mut chat_server::Config), attack: F)
where
    F: FnOnce(TestServer) -> Fut,
    Fut: std::future::Future<Output = TestServer>,
{
    // The bystanders poll the roster below; keep the rate limit out of their way.
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        tweak(c);
    })
    .await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    still_chatting(&mut alice, &mut bob, "before").await;
    let server = attack(server).await;
    still_chatting(&mut alice, &mut bob, "after").await;
    still_chatting(&mut bob, &mut alice, "after, the other way").await;
    // Attackers that got in are gone again (asking until the hub has handled their exit).
    tokio::time::timeout(WAIT, async {
        loop {
            alice.sender.who("lobby").await.expect("who");
            let roster = expect(&mut alice, "roster", |f| {
                matches!(f, ServerFrame::Roster { .. })
            })
            .await;
            if let ServerFrame::Roster { users, .. } = roster
                && users.iter().map(|u| u.nick.as_str()).collect::<Vec<_>>() == ["alice", "bob"]
            {
                return;
            }
        }
    })
    .await
    .expect("only the bystanders remain online");
    let log = server.stop().await;
    let bystander = |e: &serde_json::Value| e["nick"] == "alice" || e["nick"] == "bob";
    assert!(
        log.iter()
            .any(|e| e["kind"] == "rejected" || (e["kind"] == "disconnect" && !bystander(e))),
        "the attack is logged: {log:#?}"
    );
}

#[tokio::test]
async fn oversized_length_before_hello() {
    with_bystanders(|server| async move {
        let (mut r, mut w) = raw(server.addr).await;
        w.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
            .await
            .expect("write");
        let (reason, message) = rejection(&frames_until_close(&mut r).await);
        assert_eq!(reason, RejectReason::FrameTooLarge);
        assert!(
            message.contains("4294967295") && message.contains(&HANDSHAKE_MAX_FRAME.to_string()),
            "{message}"
        );
        server
    })
    .await;
}

#[tokio::test]
async fn oversized_length_after_hello() {
    with_bystanders(|server| async move {
        let mut eve = server.client("eve").await;
        let w = eve_writer(&mut eve);
        w.write_all(&[0x7f, 0, 0, 0]).await.expect("write");
        let frames = read_to_end(&mut eve).await;
        let (reason, message) = bye(&frames);
        assert_eq!(reason, DisconnectReason::ProtocolError);
        assert!(
            message.contains("too large") && message.contains("65536"),
            "{message}"
        );
        server
    })
    .await;
}

/// The raw socket under a client, for writing bytes the API would never produce.
fn eve_writer(client: &mut chat_core::client::TcpClient) -> &mut tokio::net::tcp::OwnedWriteHalf {
    client.sender.get_mut()
}

#[tokio::test]
async fn garbage_bytes() {
    with_bystanders(|server| async move {
        let (mut r, mut w) = raw(server.addr).await;
        w.write_all(b"\x00\x00\x00\x0bGET / HTTP/")
            .await
            .expect("write");
        let (reason, message) = rejection(&frames_until_close(&mut r).await);
        assert_eq!(reason, RejectReason::Malformed);
        assert!(message.contains("cannot decode"), "{message}");

        // An HTTP request: its first four bytes announce a huge frame.
        let (mut r, mut w) = raw(server.addr).await;
        w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (reason, _) = rejection(&frames_until_close(&mut r).await);
        assert_eq!(reason, RejectReason::FrameTooLarge);

        // Garbage after a successful handshake.
        let mut eve = server.client("eve").await;
        eve_writer(&mut eve)
            .write_all(b"\x00\x00\x00\x04\xff\xff\xff\xff")
            .await
            .expect("write");
        let (reason, message) = bye(&read_to_end(&mut eve).await);
        assert_eq!(reason, DisconnectReason::ProtocolError);
        assert!(message.contains("cannot decode"), "{message}");
        server
    })
    .await;
}

#[tokio::test]
async fn truncated_frame() {
    with_bystanders(|server| async move {
        let (mut r, mut w) = raw(server.addr).await;
        let full = hello("trunc", 1);
        w.write_all(&full[..full.len() - 3]).await.expect("write");
        w.shutdown().await.expect("half-close");
        let (reason, message) = rejection(&frames_until_close(&mut r).await);
        assert_eq!(reason, RejectReason::Malformed);
        assert!(message.contains("middle of a frame"), "{message}");
        server
    })
    .await;
}

#[tokio::test]
async fn wrong_protocol_version() {
    with_bystanders(|server| async move {
        let (mut r, mut w) = raw(server.addr).await;
        w.write_all(&hello("oldie", 0)).await.expect("write");
        let (reason, message) = rejection(&frames_until_close(&mut r).await);
        assert_eq!(
            reason,
            RejectReason::VersionMismatch {
                client: 0,
                server_min: MIN_PROTOCOL_VERSION,
                server_max: PROTOCOL_VERSION
            }
        );
        assert!(
            message.contains("version 0")
                && message.contains(&format!("{MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}"))
                && message.contains("upgrade"),
            "{message}"
        );
        server
    })
    .await;
}

#[tokio::test]
async fn newer_client_is_served_at_the_servers_version() {
    let server = TestServer::start().await;
    let (mut r, mut w) = raw(server.addr).await;
    w.write_all(&hello("future", 7)).await.expect("write");
    match tokio::time::timeout(WAIT, r.recv()).await.expect("answer") {
        Ok(Some(ServerFrame::Welcome(welcome))) => {
            assert_eq!(welcome.version, PROTOCOL_VERSION)
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    server.stop().await;
}

/// A connection that never says Hello is refused once the Hello timeout has passed on the
/// paused clock (shorter than the test's own wait for the refusal).
#[tokio::test(start_paused = true)]
async fn no_hello_in_time() {
    let tweak = |c: &mut chat_server::Config| c.hello_timeout = Duration::from_secs(3);
    with_bystanders_and(tweak, |server| async move {
        let (mut r, _w) = raw(server.addr).await;
        let step = Duration::from_millis(500);
        let frames = advance_until(frames_until_close(&mut r), step, Duration::from_secs(600));
        let (reason, message) = rejection(&frames.await);
        assert_eq!(reason, RejectReason::HelloTimeout);
        assert!(
            message.contains("no Hello received within 3 s"),
            "{message}"
        );
        server
    })
    .await;
}

#[tokio::test]
async fn first_frame_not_hello() {
    with_bystanders(|server| async move {
        let (mut r, mut w) = raw(server.addr).await;
        let ping = encode_frame(&ClientFrame::Ping { nonce: 1 }, 64).expect("encode");
        w.write_all(&ping).await.expect("write");
        let (reason, _) = rejection(&frames_until_close(&mut r).await);
        assert_eq!(reason, RejectReason::ExpectedHello);
        server
    })
    .await;
}

#[tokio::test]
async fn hello_twice() {
    with_bystanders(|server| async move {
        let mut eve = server.client("eve").await;
        eve_writer(&mut eve)
            .write_all(&hello("eve2", 1))
            .await
            .expect("write");
        let (reason, message) = bye(&read_to_end(&mut eve).await);
        assert_eq!(reason, DisconnectReason::ProtocolError);
        assert!(message.contains("only once"), "{message}");
        server
    })
    .await;
}

#[tokio::test]
async fn abrupt_disconnect_mid_handshake_and_mid_frame() {
    with_bystanders(|server| async move {
        let (_r, mut w) = raw(server.addr).await;
        w.write_all(&[0, 0]).await.expect("write");
        drop(w);
        drop(_r);
        let mut eve = server.client("eve").await;
        eve_writer(&mut eve)
            .write_all(&[0, 0, 0, 50, 1, 2])
            .await
            .expect("write");
        drop(eve);
        server
    })
    .await;
}

#[tokio::test]
async fn flooding_is_rate_limited_then_disconnected() {
    let server = TestServer::start_with(|c| {
        c.rate.burst = 3;
        c.rate.per_sec = 0.001;
        c.rate.mute = Duration::from_secs(60);
        c.rate.kick_after = 5;
    })
    .await;
    let mut alice = server.client("alice").await;
    let mut flooder = server.client("flooder").await;
    for i in 0..3 {
        flooder
            .sender
            .say("lobby", format!("msg {i}"))
            .await
            .expect("send");
        expect_text(&mut alice, &format!("msg {i}")).await;
    }
    let tag = flooder
        .sender
        .say("lobby", "one too many")
        .await
        .expect("send");
    match expect(&mut flooder, "rate limit", |f| {
        matches!(f, ServerFrame::RateLimited { .. })
    })
    .await
    {
        ServerFrame::RateLimited {
            tag: t,
            retry_after_ms,
        } => {
            assert_eq!(t, Some(tag));
            assert!(
                retry_after_ms > 50_000 && retry_after_ms <= 60_000,
                "{retry_after_ms}"
            );
        }
        _ => unreachable!(),
    }
    // Keep flooding: disconnected with a reason (writes may fail once the server closes).
    for i in 0..10 {
        if flooder
            .sender
            .say("lobby", format!("flood {i}"))
            .await
            .is_err()
        {
            break;
        }
    }
    let (reason, message) = bye(&read_to_end(&mut flooder).await);
    assert_eq!(reason, DisconnectReason::Flooding);
    assert!(message.contains("flooding"), "{message}");
    let left = expect(&mut alice, "flooder left", |f| {
        matches!(f, ServerFrame::Left { .. })
    })
    .await;
    assert!(matches!(
        left,
        ServerFrame::Left {
            reason: DisconnectReason::Flooding,
            ..
        }
    ));

    let mut bob = server.client("bob").await;
    still_chatting(&mut alice, &mut bob, "calm again").await;
    let log = server.stop().await;
    assert!(
        log.iter()
            .any(|e| e["kind"] == "rate_limited" && e["nick"] == "flooder")
    );
    assert!(
        log.iter().any(|e| e["kind"] == "disconnect"
            && e["nick"] == "flooder"
            && e["reason"] == "flooding")
    );
    assert!(
        !log.iter().any(|e| e["text"] == "one too many"),
        "a refused message is not delivered"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_others_keep_receiving() {
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        c.send_queue_bytes = 256 * 1024;
    })
    .await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // The slow client completes the handshake with a tiny receive buffer, then never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(server.addr).await.expect("connect");
    let conn = chat_core::Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("conn");
    let sleeper =
        chat_core::client::handshake(conn, None, &chat_core::ConnectOptions::new("sleeper"))
            .await
            .expect("sleeper handshake");
    expect(&mut alice, "sleeper joined", |f| {
        matches!(f, ServerFrame::Joined { .. })
    })
    .await;
    expect(&mut bob, "sleeper joined", |f| {
        matches!(f, ServerFrame::Joined { .. })
    })
    .await;

    let chat_core::client::Client {
        sender: mut alice_tx,
        events: mut alice_rx,
        ..
    } = alice;
    // Bob reads everything and reports when the sleeper is dropped.
    let (dropped_tx, mut dropped_rx) = tokio::sync::watch::channel(false);
    let bob_task = tokio::spawn(async move {
        let mut received = 0u64;
        let mut last_id = 0;
        loop {
            match bob.events.next().await {
                Ok(Some(ServerFrame::Message(m))) => {
                    assert!(m.id > last_id, "in order");
                    last_id = m.id;
                    if m.body.text() == "done" {
                        return received;
                    }
                    received += 1;
                }
                Ok(Some(ServerFrame::Left { nick, reason, .. })) => {
                    assert_eq!(nick, "sleeper");
                    assert_eq!(reason, DisconnectReason::SendQueueExceeded);
                    let _ = dropped_tx.send(true);
                }
                Ok(Some(_)) => {}
                other => panic!("bob lost the connection: {other:?}"),
            }
        }
    });
    // Alice keeps at most WINDOW messages unacknowledged, like any well-behaved publisher:
    // her own echoes release the window.
    const WINDOW: usize = 32;
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(WINDOW));
    let releases = window.clone();
    let alice_reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = alice_rx.next().await {
            if matches!(frame, ServerFrame::Message(ref m) if m.from == "alice") {
                releases.add_permits(1);
            }
        }
    });
    let payload = "z".repeat(2000);
    let mut sent = 0u64;
    let sending = async {
        while !*dropped_rx.borrow_and_update() {
            window.acquire().await.expect("window").forget();
            alice_tx
                .say("lobby", payload.clone())
                .await
                .expect("alice sends");
            sent += 1;
            assert!(sent < 100_000, "the sleeper was never dropped");
        }
        alice_tx.say("lobby", "done").await.expect("send");
    };
    tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("sleeper dropped in time");
    let received = tokio::time::timeout(WAIT, bob_task)
        .await
        .expect("bob finishes")
        .expect("bob task");
    assert_eq!(received, sent, "bob received every message");
    alice_reader.abort();
    drop(sleeper);
    let log = server.stop().await;
    assert!(log.iter().any(|e| e["kind"] == "disconnect"
        && e["nick"] == "sleeper"
        && e["reason"] == "send queue exceeded"));
}

#[tokio::test]
async fn server_full_is_refused_clearly() {
    let server = TestServer::start_with(|c| c.max_clients = 2).await;
    let mut a = server.client("a").await;
    let mut b = server.client("b").await;
    // A real client, which sends its Hello at once, still reads the refusal.
    let opts = chat_core::ConnectOptions::new("third");
    match chat_core::connect(&server.addr.to_string(), &opts).await {
        Err(chat_core::ClientError::Rejected(r)) => {
            assert_eq!(r.reason, RejectReason::ServerFull);
            assert!(r.message.contains("full"), "{}", r.message);
        }
        other => panic!("expected a ServerFull rejection, got {other:?}"),
    }
    still_chatting(&mut a, &mut b, "two is company").await;
    drop(b);
    expect(&mut a, "b left", |f| matches!(f, ServerFrame::Left { .. })).await;
    // The slot frees once b's connection has fully closed, just after its departure is
    // announced: retry until admitted.
    let c = tokio::time::timeout(WAIT, async {
        loop {
            match chat_core::connect(
                &server.addr.to_string(),
                &chat_core::ConnectOptions::new("c"),
            )
            .await
            {
                Ok(c) => return c,
                Err(chat_core::ClientError::Rejected(r))
                    if r.reason == RejectReason::ServerFull => {}
                Err(e) => panic!("unexpected: {e}"),
            }
        }
    })
    .await
    .expect("a freed slot is usable again");
    assert_eq!(c.welcome.nick, "c");
    server.stop().await;
}

#[tokio::test]
async fn a_connection_reset_while_receiving_removes_the_user() {
    with_bystanders(|server| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        let stream = socket.connect(server.addr).await.expect("connect");
        stream.set_zero_linger().expect("linger");
        let conn = chat_core::Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("conn");
        let victim = chat_core::client::handshake(conn, None, &chat_core::ConnectOptions::new("victim"))
            .await
            .expect("handshake");
        let mut watcher = server.client("watcher").await;
        drop(victim); // RST: the server's next read or write on it fails
        for i in 0..20 {
            watcher.sender.say("lobby", format!("into the void {i}")).await.expect("send");
        }
        expect(&mut watcher, "victim left", |f| {
            matches!(f, ServerFrame::Left { nick, reason: DisconnectReason::ConnectionClosed, .. } if nick == "victim")
        })
        .await;
        drop(watcher);
        server
    })
    .await;
}

/// A version 1 client is never sent what only version 2 knows: no history on arrival, and a
/// version 2 request gets an error it can decode instead of answers it could not.
#[tokio::test]
async fn a_version_1_client_gets_only_version_1_frames() {
    let server = TestServer::start().await;
    let mut talker = server.client("talker").await;
    talker.sender.say("lobby", "before").await.expect("say");
    expect_text(&mut talker, "before").await;
    let (mut r, mut w) = raw(server.addr).await;
    w.write_all(&hello("oldtimer", 1)).await.expect("write");
    match tokio::time::timeout(WAIT, r.recv()).await.expect("answer") {
        Ok(Some(ServerFrame::Welcome(welcome))) => assert_eq!(welcome.version, 1),
        other => panic!("expected Welcome, got {other:?}"),
    }
    let join = ClientFrame::Join {
        room: "rust".into(),
    };
    w.write_all(&encode_frame(&join, HANDSHAKE_MAX_FRAME).expect("encode"))
        .await
        .expect("write");
    // The next frame is the refusal: no History was sent before it.
    match tokio::time::timeout(WAIT, r.recv()).await.expect("answer") {
        Ok(Some(ServerFrame::Error(e))) => {
            assert_eq!(e.code, chat_core::protocol::ErrorCode::Unsupported);
            assert!(e.message.contains("version 2"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    // Still connected, still chatting.
    talker.sender.say("lobby", "after").await.expect("say");
    loop {
        match tokio::time::timeout(WAIT, r.recv()).await.expect("message") {
            Ok(Some(ServerFrame::Message(m))) if m.body.text() == "after" => break,
            Ok(Some(ServerFrame::Message(_) | ServerFrame::Joined { .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    server.stop().await;
}
