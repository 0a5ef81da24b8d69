//! Keep-alive pings: answered even while the client is rate-limited, never counted against its
//! message limit, and bounded on their own (a flood of pings is limited like any other).

use std::time::Duration;

use chat_core::protocol::ServerFrame;
use chat_testing::*;

/// A server whose rate limit allows `burst` messages, then mutes for a minute.
async fn strict_server(burst: u32) -> TestServer {
    TestServer::start_with(|c| {
        c.rate.burst = burst;
        c.rate.per_sec = 0.001;
        c.rate.mute = Duration::from_secs(60);
        c.rate.kick_after = 1000;
    })
    .await
}

/// Waits for the answer to the message tagged `tag`: true if it was accepted (the echo), false
/// if it was refused by the rate limit.
async fn accepted(client: &mut chat_core::client::TcpClient, tag: u64) -> bool {
    let answer = expect(client, "the answer to a message", |f| match f {
        ServerFrame::Message(m) => m.tag == Some(tag),
        ServerFrame::RateLimited { tag: t, .. } => *t == Some(tag),
        _ => false,
    })
    .await;
    matches!(answer, ServerFrame::Message(_))
}

#[tokio::test]
async fn a_rate_limited_client_still_gets_its_pings_answered() {
    let server = strict_server(3).await;
    let mut alice = server.client("alice").await;
    for i in 0..3 {
        let tag = alice
            .sender
            .say("lobby", format!("m{i}"))
            .await
            .expect("send");
        assert!(accepted(&mut alice, tag).await, "m{i} is within the burst");
    }
    let tag = alice
        .sender
        .say("lobby", "one too many")
        .await
        .expect("send");
    assert!(!accepted(&mut alice, tag).await, "the fourth is refused");

    // Muted for a minute, yet a keep-alive is answered, not refused.
    alice.sender.ping(42).await.expect("ping");
    let answer = expect(&mut alice, "the answer to the ping", |f| {
        matches!(
            f,
            ServerFrame::Pong { .. } | ServerFrame::RateLimited { tag: None, .. }
        )
    })
    .await;
    assert!(
        matches!(answer, ServerFrame::Pong { nonce: 42, .. }),
        "{answer:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn pings_take_nothing_from_the_message_limit() {
    let server = strict_server(3).await;
    let mut bob = server.client("bob").await;
    for nonce in 0..3 {
        bob.sender.ping(nonce).await.expect("ping");
        expect(&mut bob, "a pong", |f| {
            matches!(f, ServerFrame::Pong { .. })
        })
        .await;
    }
    for i in 0..3 {
        let tag = bob
            .sender
            .say("lobby", format!("m{i}"))
            .await
            .expect("send");
        assert!(accepted(&mut bob, tag).await, "m{i}: the pings used none");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_pings_is_limited() {
    let server = strict_server(3).await;
    let mut eve = server.client("eve").await;
    for nonce in 0..50 {
        eve.sender.ping(nonce).await.expect("ping");
    }
    expect(&mut eve, "a ping refused", |f| {
        matches!(f, ServerFrame::RateLimited { tag: None, .. })
    })
    .await;
    server.stop().await;
}
