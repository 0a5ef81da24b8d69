//! The relay handshake: only a connection presenting the shared secret may use `*` nicknames,
//! and it must; the guest's real address is what gets logged.

use chat_core::client::{ClientError, ConnectOptions, TcpClient, handshake};
use chat_core::connection::Connection;
use chat_core::names::NickError;
use chat_core::protocol::{HANDSHAKE_MAX_FRAME, RejectReason, RelayHello, ServerFrame};
use chat_testing::*;

const SECRET: &str = "s3cret-s3cret-s3cret-s3cret-s3cret";

async fn via_relay(
    server: &TestServer,
    secret: &str,
    guest: &str,
    nick: &str,
) -> Result<TcpClient, ClientError> {
    via_relay_from("127.0.0.1", server, secret, guest, nick).await
}

/// [`via_relay`] from a relay at the loopback address `from`.
async fn via_relay_from(
    from: &str,
    server: &TestServer,
    secret: &str,
    guest: &str,
    nick: &str,
) -> Result<TcpClient, ClientError> {
    let stream = connect_from(from, server.addr).await;
    let conn = Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("conn");
    let relay = RelayHello {
        secret: secret.into(),
        peer_addr: guest.into(),
        relay: "test-relay".into(),
    };
    handshake(conn, Some(relay), &ConnectOptions::new(nick)).await
}

#[tokio::test]
async fn relayed_guest_with_the_right_secret_gets_a_star_nickname() {
    let server = TestServer::start_with(|c| c.relay_secret = Some(SECRET.into())).await;
    let mut alice = server.client("alice").await;
    let mut guest = via_relay(&server, SECRET, "203.0.113.7:4242", "*guest")
        .await
        .expect("welcome");
    assert_eq!(guest.welcome.nick, "*guest");
    assert!(
        guest
            .welcome
            .roster
            .iter()
            .any(|u| u.nick == "*guest" && u.relayed)
    );
    assert!(
        guest
            .welcome
            .roster
            .iter()
            .any(|u| u.nick == "alice" && !u.relayed)
    );
    expect(
        &mut alice,
        "guest joined",
        |f| matches!(f, ServerFrame::Joined { user, .. } if user.nick == "*guest" && user.relayed),
    )
    .await;
    still_chatting(&mut guest, &mut alice, "hello from a guest").await;
    guest
        .sender
        .private(&["alice"], "psst from a guest")
        .await
        .expect("pm");
    expect_text(&mut alice, "psst from a guest").await;
    alice
        .sender
        .private(&["*GUEST"], "psst back")
        .await
        .expect("pm");
    expect_text(&mut guest, "psst back").await;

    // A second guest asking for the same name gets a suffix, keeping the star.
    let twin = via_relay(&server, SECRET, "203.0.113.8:1", "*guest")
        .await
        .expect("welcome");
    assert!(twin.welcome.nick.starts_with("*guest") && twin.welcome.nick.len() > 6);

    let log = server.stop().await;
    assert!(
        log.iter().any(|e| e["kind"] == "join"
            && e["nick"] == "*guest"
            && e["addr"] == "203.0.113.7:4242"
            && e["relayed"] == true),
        "the guest's real address is logged"
    );
}

#[tokio::test]
async fn wrong_secret_is_refused_clearly() {
    let server = TestServer::start_with(|c| c.relay_secret = Some(SECRET.into())).await;
    let (reason, message) = refused(via_relay(&server, "guess", "203.0.113.7:1", "*guest").await);
    assert_eq!(reason, RejectReason::RelayRefused);
    assert!(message.contains("secret"), "{message}");
    let log = server.stop().await;
    let line = log
        .iter()
        .find(|e| e["kind"] == "rejected")
        .expect("logged");
    assert!(
        !line.to_string().contains("guess"),
        "the presented secret is never logged"
    );
}

#[tokio::test]
async fn no_secret_configured_means_no_relays() {
    let server = TestServer::start().await;
    let (reason, message) = refused(via_relay(&server, "", "203.0.113.7:1", "*guest").await);
    assert_eq!(reason, RejectReason::RelayRefused);
    assert!(message.contains("does not accept relayed"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn relayed_connections_must_use_star_nicknames_that_follow_the_rules() {
    let server = TestServer::start_with(|c| c.relay_secret = Some(SECRET.into())).await;
    let (reason, _) = refused(via_relay(&server, SECRET, "203.0.113.7:1", "plain").await);
    assert_eq!(
        reason,
        RejectReason::InvalidNick(NickError::MissingRelayPrefix)
    );
    let (reason, _) = refused(via_relay(&server, SECRET, "203.0.113.7:1", "**x").await);
    assert_eq!(
        reason,
        RejectReason::InvalidNick(NickError::ReservedStart('*'))
    );
    let (reason, message) = refused(via_relay(&server, SECRET, "not an address", "*x").await);
    assert_eq!(reason, RejectReason::Malformed);
    assert!(message.contains("guest address"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn a_short_relay_secret_is_refused_at_start() {
    let config = chat_server::Config {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        relay_secret: Some("short".into()),
        ..chat_server::Config::default()
    };
    let e = chat_server::Server::bind(config)
        .await
        .expect_err("too short");
    assert!(e.to_string().contains("at least 32 bytes"), "{e}");
}

#[tokio::test]
async fn guessing_the_relay_secret_is_throttled_and_summed_up_in_the_log() {
    let server = TestServer::start_with(|c| c.relay_secret = Some(SECRET.into())).await;
    // The first wrong secret is checked; the next ones, within its delay, are refused unheard.
    let (reason, message) = refused(via_relay(&server, "guess", "203.0.113.7:1", "*g").await);
    assert_eq!(reason, RejectReason::RelayRefused);
    assert!(message.contains("does not match"), "{message}");
    for _ in 0..20 {
        let (reason, message) = refused(via_relay(&server, SECRET, "203.0.113.7:1", "*g").await);
        assert_eq!(reason, RejectReason::RelayRefused);
        assert!(
            message.contains("too many wrong relay secrets"),
            "{message}"
        );
    }
    // A relay elsewhere, with the right secret, is not slowed, and the log names it.
    let guest = via_relay_from("127.0.0.2", &server, SECRET, "198.51.100.4:7", "*ok")
        .await
        .expect("the real relay");
    drop(guest);
    let log = server.stop().await;
    let refusals = log
        .iter()
        .filter(|e| {
            e["kind"] == "rejected" && e["reason"].as_str().is_some_and(|r| r.contains("secret"))
        })
        .count();
    assert_eq!(
        refusals, 1,
        "twenty refusals unheard leave no line each: {log:#?}"
    );
    let join = log
        .iter()
        .find(|e| e["kind"] == "join" && e["nick"] == "*ok")
        .expect("the guest's join");
    assert_eq!(join["addr"], "198.51.100.4:7");
    assert!(
        join["via"]
            .as_str()
            .is_some_and(|v| v.starts_with("127.0.0.2:")),
        "{join}"
    );
}
