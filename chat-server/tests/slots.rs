//! Attacks on the server's places: one address opening every connection it can, holding
//! handshakes open, reconnecting as fast as it can, and guests filling the server. Each is
//! stopped at that address's (or the guests') share, with a clear refusal, while people from
//! other addresses, and accounts, still get in and chat. Tests use the addresses of
//! 127.0.0.0/8 as different hosts, with loopback counted like any other address.

use std::time::Duration;

use chat_core::protocol::RejectReason;
use chat_server::Config;
use chat_testing::*;
use tokio::io::AsyncWriteExt;

fn counted(tweak: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    move |c| {
        count_loopback(c);
        generous_rate(c);
        tweak(c);
    }
}

/// Alice and Bob, each from an address of their own, can still log in and chat.
async fn bystanders_chat(server: &TestServer, text: &str) {
    let mut alice = server
        .client_from("127.0.0.3", "alice", None)
        .await
        .expect("alice");
    let mut bob = server
        .client_from("127.0.0.4", "bob", None)
        .await
        .expect("bob");
    still_chatting(&mut alice, &mut bob, text).await;
}

#[tokio::test]
async fn one_address_cannot_take_every_place() {
    let server = TestServer::start_with(counted(|c| {
        c.max_clients = 50;
        c.limits.per_address = 10;
        c.limits.handshakes_per_address = 10;
        c.limits.connects_per_minute = 1000;
    }))
    .await;
    let mut held = Vec::new();
    for i in 0..10 {
        let guest = server
            .client_from("127.0.0.2", &format!("idle{i}"), None)
            .await;
        held.push(guest.expect("within the address's share"));
    }
    let (reason, message) = refused(server.client_from("127.0.0.2", "idle10", None).await);
    assert_eq!(reason, RejectReason::ServerFull);
    assert!(
        message.contains("too many connections from your address"),
        "{message}"
    );
    bystanders_chat(&server, "plenty of room").await;
    // A place given back is a place again.
    drop(held.pop());
    let again = async {
        loop {
            if let Ok(c) = server.client_from("127.0.0.2", "idle-again", None).await {
                return c;
            }
        }
    };
    tokio::time::timeout(WAIT, again)
        .await
        .expect("a place once one closed");
    assert!(server.stats().address_refused >= 1);
    server.stop().await;
}

#[tokio::test]
async fn silent_connections_cannot_hold_the_door() {
    let server = TestServer::start_with(counted(|c| {
        c.limits.handshakes_per_address = 3;
        c.limits.connects_per_minute = 1000;
    }))
    .await;
    // Three connections that never say Hello hold their address's handshakes ...
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(raw_from("127.0.0.2", server.addr).await);
    }
    // ... a fourth is told at once, without waiting for any Hello timeout ...
    let (mut r, _w) = raw_from("127.0.0.2", server.addr).await;
    let (reason, message) = rejection(&frames_until_close(&mut r).await);
    assert_eq!(reason, RejectReason::ServerFull);
    assert!(message.contains("logging in at once"), "{message}");
    // ... and everyone else logs in as usual meanwhile.
    bystanders_chat(&server, "the door is open").await;
    // A silent connection that finally says Hello is admitted.
    let (r, mut w) = silent.pop().expect("one");
    w.write_all(&hello("late", 3)).await.expect("hello");
    let mut r = r;
    match tokio::time::timeout(WAIT, r.recv()).await.expect("answer") {
        Ok(Some(chat_core::protocol::ServerFrame::Welcome(w))) => assert_eq!(w.nick, "late"),
        other => panic!("expected a Welcome, got {other:?}"),
    }
    drop(w);
    server.stop().await;
}

/// The clock is paused: the address's connection rate refills only as the test moves it.
#[tokio::test(start_paused = true)]
async fn reconnecting_as_fast_as_possible_is_slowed_down() {
    let server = TestServer::start_with(counted(|c| c.limits.connects_per_minute = 5)).await;
    for i in 0..5 {
        let c = server
            .client_from("127.0.0.2", &format!("churn{i}"), None)
            .await;
        quit(c.expect("within the rate")).await;
    }
    let (reason, message) = refused(server.client_from("127.0.0.2", "churn5", None).await);
    assert_eq!(reason, RejectReason::ServerFull);
    assert!(message.contains("too fast"), "{message}");
    bystanders_chat(&server, "not slowed").await;
    // A minute later the address may connect again.
    tokio::time::advance(Duration::from_secs(60)).await;
    let back = server.client_from("127.0.0.2", "churn6", None).await;
    quit(back.expect("after a minute")).await;
    server.stop().await;
}

#[tokio::test]
async fn guests_leave_places_for_accounts() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(counted(|c| {
        c.max_clients = 10;
        c.limits.account_slots = Some(3);
        c.db = chat_server::DbLocation::File(db.clone());
    }))
    .await;
    let mut owner = server
        .client_from("127.0.0.2", "owner", None)
        .await
        .expect("owner");
    register(&mut owner, "owner's password").await;
    quit(owner).await;
    // Seven guests, each from an address of its own, take every place guests may have.
    let mut guests = Vec::new();
    for i in 0..7 {
        let from = format!("127.0.1.{i}");
        let guest = server.client_from(&from, &format!("guest{i}"), None).await;
        guests.push(guest.expect("a guest's place"));
    }
    let (reason, message) = refused(server.client_from("127.0.2.1", "guest7", None).await);
    assert_eq!(reason, RejectReason::ServerFull);
    assert!(message.contains("full for guests"), "{message}");
    // The account still gets in, and chats with the guests.
    let mut owner = server
        .client_from("127.0.0.2", "owner", Some("owner's password"))
        .await
        .expect("the account's place");
    still_chatting(&mut owner, &mut guests[0], "room for the owner").await;
    server.stop().await;
}
