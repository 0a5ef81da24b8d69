//! Attacks on the rate limits: reconnecting under new nicknames, spreading a flood over many
//! connections of one address, and an account logging in again. The limits hold per address
//! and per account, and a bystander from another address keeps chatting without a refusal.

use chat_core::protocol::ServerFrame;
use chat_server::Config;
use chat_testing::*;

/// One client's flood control: 5 at once, then one a second; an address's connections
/// together three times that.
fn limits(c: &mut Config) {
    count_loopback(c);
    c.rate.burst = 5;
    c.rate.per_sec = 1.0;
    c.rate.kick_after = 1000;
    c.limits.address_rate_factor = 3;
    c.limits.connects_per_minute = 1000;
}

/// Sends `n` messages as fast as the socket takes them and counts how many the server
/// accepted (echoed) and refused (rate-limited).
async fn flood(client: &mut chat_core::client::TcpClient, n: usize) -> (usize, usize) {
    for i in 0..n {
        client
            .sender
            .say("lobby", format!("flood {i}"))
            .await
            .expect("send");
    }
    let (mut accepted, mut refused) = (0, 0);
    while accepted + refused < n {
        match expect(client, "an answer", |f| {
            matches!(f, ServerFrame::Message(m) if m.tag.is_some())
                || matches!(f, ServerFrame::RateLimited { .. })
        })
        .await
        {
            ServerFrame::Message(_) => accepted += 1,
            _ => refused += 1,
        }
    }
    (accepted, refused)
}

#[tokio::test]
async fn reconnecting_under_a_new_nickname_does_not_reset_the_limit() {
    let server = TestServer::start_with(limits).await;
    let mut bystander = server
        .client_from("127.0.0.3", "bob", None)
        .await
        .expect("bob");
    let mut total = 0;
    for round in 0..4 {
        let nick = format!("spam{round}");
        let mut spammer = server
            .client_from("127.0.0.2", &nick, None)
            .await
            .expect("in");
        let (accepted, _) = flood(&mut spammer, 10).await;
        total += accepted;
        quit(spammer).await;
    }
    // Four connections of 5 each would be 20: the address's shared bucket holds 15 (and
    // refills at three a second while the test runs).
    assert!(total < 20, "{total} messages accepted from one address");
    // The bystander is not limited by the spammer's address.
    let (accepted, refused) = flood(&mut bystander, 5).await;
    assert_eq!((accepted, refused), (5, 0));
    server.stop().await;
}

#[tokio::test]
async fn many_connections_of_one_address_share_one_limit() {
    let server = TestServer::start_with(limits).await;
    let mut bystander = server
        .client_from("127.0.0.3", "bob", None)
        .await
        .expect("bob");
    let mut spammers = Vec::new();
    for i in 0..6 {
        let c = server
            .client_from("127.0.0.2", &format!("many{i}"), None)
            .await;
        spammers.push(c.expect("in"));
    }
    let mut total = 0;
    for spammer in &mut spammers {
        total += flood(spammer, 5).await.0;
    }
    // Six connections of 5 each would be 30: the address's bucket holds 15.
    assert!(total < 30, "{total} messages accepted from one address");
    // The bystander saw every accepted message, and still chats.
    let mut seen = 0;
    while seen < total {
        expect(
            &mut bystander,
            "a spammer's message",
            |f| matches!(f, ServerFrame::Message(m) if m.from.starts_with("many")),
        )
        .await;
        seen += 1;
    }
    let (accepted, refused) = flood(&mut bystander, 5).await;
    assert_eq!((accepted, refused), (5, 0));
    server.stop().await;
}

#[tokio::test]
async fn an_account_finds_its_limit_as_it_left_it() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c| {
        limits(c);
        c.limits.exempt = chat_server::limits::default_exempt();
        c.db = chat_server::DbLocation::File(db.clone());
    })
    .await;
    let mut zoe = server.client("zoe").await;
    register(&mut zoe, "zoe's password").await;
    quit(zoe).await;
    let mut zoe = login(&server, "zoe", "zoe's password")
        .await
        .expect("login");
    let (accepted, refused) = flood(&mut zoe, 8).await;
    assert_eq!((accepted, refused), (5, 3));
    quit(zoe).await;
    // Logged in again at once: the bucket is as empty as it was left.
    let mut zoe = login(&server, "zoe", "zoe's password")
        .await
        .expect("login");
    let (accepted, _) = flood(&mut zoe, 3).await;
    assert!(accepted < 3, "{accepted} accepted right after reconnecting");
    server.stop().await;
}
