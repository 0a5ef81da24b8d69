//! File transfers through an in-process server on port 0: an offer accepted and its content
//! passed on under flow control, declines and cancels from each side, the limits (size,
//! transfers per address, older clients, nobody online), a sender that ignores the window, a
//! recipient that stops reading while others chat, and a disconnection in the middle. Clients
//! come from different loopback addresses where the limits per address matter.

use chat_core::files::sha256;
use chat_core::protocol::{ClientFrame, ErrorCode, FILE_WINDOW, FileInfo, ServerFrame};
use chat_server::Config;
use chat_testing::*;
use tokio::io::AsyncWriteExt;

fn files(config: &mut Config) {
    generous_rate(config);
    config.files.rate = None;
}

fn offer(tag: u64, to: &str, name: &str, data: &[u8]) -> ClientFrame {
    ClientFrame::FileOffer {
        tag,
        to: to.into(),
        name: name.into(),
        size: data.len() as u64,
        sha256: sha256(data),
    }
}

/// `from` offers `data` to `to` (who must receive the offer); the transfer's id.
async fn offered<R1: Rd, W1: Wr, R2: Rd, W2: Wr>(
    from: &mut chat_core::client::Client<R1, W1>,
    to: &mut chat_core::client::Client<R2, W2>,
    name: &str,
    data: &[u8],
) -> u64 {
    let recipient = to.welcome.nick.clone();
    send(from, offer(7, &recipient, name, data)).await;
    let ServerFrame::FileOffered { tag, id, to: named } = expect(from, "FileOffered", |f| {
        matches!(f, ServerFrame::FileOffered { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!((tag, named.as_str()), (7, recipient.as_str()));
    let ServerFrame::FileOffer(info) =
        expect(to, "FileOffer", |f| matches!(f, ServerFrame::FileOffer(_))).await
    else {
        unreachable!()
    };
    assert_eq!(
        info,
        FileInfo {
            id,
            from: from.welcome.nick.clone(),
            name: name.into(),
            size: data.len() as u64,
            sha256: sha256(data),
        }
    );
    id
}

async fn cancelled<R: Rd, W: Wr>(client: &mut chat_core::client::Client<R, W>) -> (String, String) {
    match expect(client, "FileCancelled", |f| {
        matches!(f, ServerFrame::FileCancelled { .. })
    })
    .await
    {
        ServerFrame::FileCancelled { by, reason, .. } => (by, reason),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_file_goes_through_in_chunks_under_flow_control_and_is_recorded_without_content() {
    let server = TestServer::start_with(files).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // 3 MB: three windows' worth, so the sender must wait for acknowledgements.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let got = transfer(&mut alice, &mut bob, "report.pdf", &data).await;
    assert!(got == data, "the content arrived changed");
    still_chatting(&mut alice, &mut bob, "thanks").await;
    let log = server.stop().await;
    let steps: Vec<&str> = log
        .iter()
        .filter(|e| e["kind"] == "file")
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(steps, ["offer", "accepted", "done"]);
    let record = log.iter().find(|e| e["kind"] == "file").expect("a record");
    assert_eq!(record["name"], "report.pdf");
    assert_eq!(record["size"], 3_000_000);
    assert_eq!(record["from"], "alice");
    assert_eq!(record["to"], "bob");
    assert_eq!(
        record["sha256"],
        chat_core::protocol::sha256_hex(&sha256(&data))
    );
    // Names, sizes and hashes only: no record is anywhere near the file's size.
    let longest = log.iter().map(|e| e.to_string().len()).max().unwrap_or(0);
    assert!(longest < 2_000, "a record of {longest} bytes");
}

#[tokio::test]
async fn a_decline_and_a_cancel_from_either_side_end_the_transfer_for_both() {
    let server = TestServer::start_with(files).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let data = b"hello".to_vec();
    // Declined.
    let id = offered(&mut alice, &mut bob, "a.txt", &data).await;
    send(&mut bob, ClientFrame::FileAnswer { id, accept: false }).await;
    expect(&mut alice, "declined", |f| {
        matches!(f, ServerFrame::FileAnswer { accept: false, .. })
    })
    .await;
    // Then the transfer is gone: a late accept is refused.
    send(&mut bob, ClientFrame::FileAnswer { id, accept: true }).await;
    let e = expect_error(&mut bob).await;
    assert!(e.message.contains("no file transfer"), "{}", e.message);
    // The sender withdraws an offer.
    let id = offered(&mut alice, &mut bob, "b.txt", &data).await;
    let reason = "wrong file".to_owned();
    send(&mut alice, ClientFrame::FileCancel { id, reason }).await;
    assert_eq!(
        cancelled(&mut bob).await,
        ("alice".to_owned(), "wrong file".to_owned())
    );
    // The recipient stops an accepted transfer in the middle.
    let id = offered(&mut alice, &mut bob, "c.txt", &data).await;
    send(&mut bob, ClientFrame::FileAnswer { id, accept: true }).await;
    let chunk = ClientFrame::FileChunk {
        id,
        data: b"he".to_vec(),
    };
    send(&mut alice, chunk).await;
    expect(&mut bob, "a chunk", |f| {
        matches!(f, ServerFrame::FileChunk { .. })
    })
    .await;
    let reason = String::new();
    send(&mut bob, ClientFrame::FileCancel { id, reason }).await;
    assert_eq!(cancelled(&mut alice).await.0, "bob");
    // A third user cannot cancel someone else's transfer.
    let mut carol = server.client("carol").await;
    let id = offered(&mut alice, &mut bob, "d.txt", &data).await;
    let reason = String::new();
    send(&mut carol, ClientFrame::FileCancel { id, reason }).await;
    let e = expect_error(&mut carol).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    still_chatting(&mut alice, &mut bob, "still here").await;
    let log = server.stop().await;
    let steps: Vec<&str> = log
        .iter()
        .filter(|e| e["kind"] == "file")
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        steps,
        [
            "offer",
            "declined",
            "offer",
            "cancelled",
            "offer",
            "accepted",
            "cancelled",
            "offer",
            // The server's shutdown ends the last one.
            "cancelled"
        ]
    );
}

#[tokio::test]
async fn offers_over_the_limits_are_refused_clearly() {
    let server = TestServer::start_with(|c| {
        files(c);
        count_loopback(c);
        c.files.max_size = 1000;
        c.files.per_address = 2;
    })
    .await;
    let mut alice = server
        .client_from("127.0.0.2", "alice", None)
        .await
        .expect("alice");
    let mut bob = server
        .client_from("127.0.0.3", "bob", None)
        .await
        .expect("bob");
    let big = vec![0u8; 1001];
    send(&mut alice, offer(1, "bob", "big.iso", &big)).await;
    let e = expect_error(&mut alice).await;
    assert_eq!(e.tag, Some(1));
    assert!(e.message.contains("too large"), "{}", e.message);
    send(&mut alice, offer(2, "nobody", "a.txt", b"x")).await;
    let e = expect_error(&mut alice).await;
    assert_eq!(e.code, ErrorCode::NoSuchUser(vec!["nobody".into()]));
    send(&mut alice, offer(3, "alice", "a.txt", b"x")).await;
    assert!(expect_error(&mut alice).await.message.contains("yourself"));
    send(&mut alice, offer(4, "bob", "../../.bashrc\n", b"x")).await;
    assert_eq!(expect_error(&mut alice).await.code, ErrorCode::InvalidText);
    // Two transfers from one address at once, and no third.
    offered(&mut alice, &mut bob, "1.txt", b"x").await;
    offered(&mut alice, &mut bob, "2.txt", b"x").await;
    send(&mut alice, offer(5, "bob", "3.txt", b"x")).await;
    let e = expect_error(&mut alice).await;
    assert!(e.message.contains("your address has 2"), "{}", e.message);
    // Someone at another address is not affected.
    let mut carol = server
        .client_from("127.0.0.4", "carol", None)
        .await
        .expect("carol");
    offered(&mut carol, &mut bob, "mine.txt", b"x").await;
    // A client of protocol 4 cannot receive files: the sender is told.
    let (mut r, mut w) = raw_from("127.0.0.5", server.addr).await;
    w.write_all(&hello("dave", 4)).await.expect("hello");
    let first = r.recv().await.expect("read").expect("a frame");
    assert!(matches!(first, ServerFrame::Welcome(_)), "{first:?}");
    send(&mut carol, offer(6, "dave", "x.txt", b"x")).await;
    let e = expect_error(&mut carol).await;
    assert_eq!(e.code, ErrorCode::Unsupported);
    assert!(e.message.contains("cannot receive files"), "{}", e.message);
    server.stop().await;
}

#[tokio::test]
async fn a_sender_beyond_the_window_is_cancelled_and_nobody_else_notices() {
    let server = TestServer::start_with(files).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let data = vec![1u8; 2 * FILE_WINDOW as usize];
    let id = offered(&mut alice, &mut bob, "flood.bin", &data).await;
    // Chunks before the offer is accepted end it.
    let early = ClientFrame::FileChunk {
        id,
        data: vec![0; 10],
    };
    send(&mut alice, early).await;
    let (by, reason) = cancelled(&mut alice).await;
    assert_eq!(by, "server");
    assert!(reason.contains("before the offer was accepted"), "{reason}");
    cancelled(&mut bob).await;
    // Accepted, then more than a window without waiting for acknowledgements.
    let id = offered(&mut alice, &mut bob, "flood.bin", &data).await;
    send(&mut bob, ClientFrame::FileAnswer { id, accept: true }).await;
    for piece in data.chunks(32 * 1024) {
        let chunk = ClientFrame::FileChunk {
            id,
            data: piece.to_vec(),
        };
        alice.sender.send(&chunk).await.expect("chunk");
    }
    let (_, reason) = cancelled(&mut alice).await;
    assert!(reason.contains("flow-control window"), "{reason}");
    still_chatting(&mut carol, &mut bob, "nothing happened").await;
    still_chatting(&mut alice, &mut carol, "to me either").await;
    server.stop().await;
}

#[tokio::test]
async fn a_recipient_that_stops_reading_delays_nobody_and_is_not_disconnected() {
    // A small send queue: a transfer's chunks, were they counted in it, would overflow it.
    let server = TestServer::start_with(|c| {
        files(c);
        c.send_queue_bytes = 256 * 1024;
    })
    .await;
    let mut alice = server.client("alice").await;
    let bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let mut dave = server.client("dave").await;
    let mut bob = parts(bob);
    let data = vec![9u8; 8 * FILE_WINDOW as usize];
    send(&mut alice, offer(1, "bob", "big.bin", &data)).await;
    let ServerFrame::FileOffered { id, .. } = expect(&mut alice, "FileOffered", |f| {
        matches!(f, ServerFrame::FileOffered { .. })
    })
    .await
    else {
        unreachable!()
    };
    bob.sender
        .send(&ClientFrame::FileAnswer { id, accept: true })
        .await
        .expect("accept");
    expect(&mut alice, "accepted", |f| {
        matches!(f, ServerFrame::FileAnswer { accept: true, .. })
    })
    .await;
    // Bob reads nothing from now on. Alice fills the window, all of it held for Bob.
    for piece in data[..FILE_WINDOW as usize].chunks(32 * 1024) {
        let chunk = ClientFrame::FileChunk {
            id,
            data: piece.to_vec(),
        };
        alice.sender.send(&chunk).await.expect("chunk");
    }
    // Meanwhile the others chat on: every message arrives, in order, and nobody leaves.
    for i in 0..50 {
        let text = format!("message {i}");
        carol.sender.say("lobby", &text).await.expect("say");
        expect_text(&mut dave, &text).await;
        expect_text(&mut alice, &text).await;
    }
    still_chatting(&mut alice, &mut dave, "all fine").await;
    // Bob is still connected: reading again, he finds the chat and then the file's chunks.
    let mut saw_chunk = false;
    let mut saw_chat = false;
    tokio::time::timeout(WAIT, async {
        while !(saw_chunk && saw_chat) {
            match bob.events.next().await.expect("read").expect("open") {
                ServerFrame::FileChunk { .. } => saw_chunk = true,
                ServerFrame::Message(m) if m.body.text() == "all fine" => saw_chat = true,
                ServerFrame::Bye { reason, message } => panic!("bob left: {reason:?} {message}"),
                _ => {}
            }
        }
    })
    .await
    .expect("bob reads on");
    assert_eq!(server.stats().slow_dropped, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_disconnection_cancels_the_transfer_for_the_other_side() {
    let server = TestServer::start_with(files).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    offered(&mut alice, &mut bob, "a.txt", b"abc").await;
    quit(bob).await;
    let (by, reason) = cancelled(&mut alice).await;
    assert_eq!(by, "server");
    assert_eq!(reason, "bob disconnected");
    server.stop().await;
}

#[tokio::test]
async fn the_file_rate_holds_acknowledgements_back_and_the_senders_own_chat_goes_on() {
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        c.files.rate = Some(1_000_000);
    })
    .await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // 4 MB at 1 MB/s, the first megabyte at once, each chunk sent once the one before is
    // acknowledged: at least three seconds (a lower bound: the clock cannot make it shorter).
    let data = vec![3u8; 4_000_000];
    let start = tokio::time::Instant::now();
    assert!(transfer(&mut alice, &mut bob, "slow.bin", &data).await == data);
    let took = start.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(2_900),
        "took {took:?}"
    );
    // A window's worth sent and received at once: its acknowledgement is held back for
    // about a second, while alice's message goes through meanwhile.
    let data = vec![4u8; FILE_WINDOW as usize];
    send(&mut alice, offer(9, "bob", "next.bin", &data)).await;
    let ServerFrame::FileOffer(info) = expect(&mut bob, "offer", |f| {
        matches!(f, ServerFrame::FileOffer(_))
    })
    .await
    else {
        unreachable!()
    };
    let id = info.id;
    send(&mut bob, ClientFrame::FileAnswer { id, accept: true }).await;
    for piece in data.chunks(32 * 1024) {
        let chunk = ClientFrame::FileChunk {
            id,
            data: piece.to_vec(),
        };
        alice.sender.send(&chunk).await.expect("chunk");
    }
    let mut received = 0;
    while received < data.len() {
        let ServerFrame::FileChunk { data: piece, .. } = expect(&mut bob, "a chunk", |f| {
            matches!(f, ServerFrame::FileChunk { .. })
        })
        .await
        else {
            unreachable!()
        };
        received += piece.len();
    }
    let received = received as u64;
    send(&mut bob, ClientFrame::FileAck { id, received }).await;
    alice.sender.say("lobby", "meanwhile").await.expect("say");
    let mut acked_first = false;
    let frame = expect(&mut alice, "the echo", |f| {
        acked_first |= matches!(f, ServerFrame::FileAck { received: r, .. } if *r == received);
        matches!(f, ServerFrame::Message(m) if m.body.text() == "meanwhile")
    })
    .await;
    assert!(matches!(frame, ServerFrame::Message(_)));
    assert!(!acked_first, "the acknowledgement came before the echo");
    expect(
        &mut alice,
        "the held acknowledgement",
        |f| matches!(f, ServerFrame::FileAck { received: r, .. } if *r == received),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn the_servers_own_limit_on_transfers_refuses_the_next_sender_clearly() {
    let server = TestServer::start_with(|c| {
        files(c);
        count_loopback(c);
        c.files.max_transfers = 1;
    })
    .await;
    let mut alice = server
        .client_from("127.0.0.2", "alice", None)
        .await
        .expect("alice");
    let mut bob = server
        .client_from("127.0.0.3", "bob", None)
        .await
        .expect("bob");
    let mut carol = server
        .client_from("127.0.0.4", "carol", None)
        .await
        .expect("carol");
    let id = offered(&mut alice, &mut bob, "a.txt", b"a").await;
    send(&mut carol, offer(1, "bob", "b.txt", b"b")).await;
    let e = expect_error(&mut carol).await;
    assert_eq!((e.code, e.tag), (ErrorCode::Busy, Some(1)));
    assert!(
        e.message.contains("1 file transfers under way"),
        "{}",
        e.message
    );
    // Once alice's ends, carol's place is free.
    let reason = String::new();
    send(&mut alice, ClientFrame::FileCancel { id, reason }).await;
    cancelled(&mut bob).await;
    offered(&mut carol, &mut bob, "b.txt", b"b").await;
    server.stop().await;
}
