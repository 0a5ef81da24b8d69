//! The relay handshake: only a connection presenting the shared secret may use `*` nicknames,
//! and it must; the guest's real address is what gets logged.

use chat_core::client::{ClientError, ConnectOptions, TcpClient, handshake};
use chat_core::connection::Connection;
use chat_core::names::NickError;
use chat_core::protocol::{HANDSHAKE_MAX_FRAME, RejectReason, RelayHello, ServerFrame};
use chat_testing::*;
use tokio::net::TcpStream;

async fn via_relay(
    server: &TestServer,
    secret: &str,
    guest: &str,
    nick: &str,
) -> Result<TcpClient, ClientError> {
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let conn = Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("conn");
    let relay = RelayHello {
        secret: secret.into(),
        peer_addr: guest.into(),
        relay: "test-relay".into(),
    };
    handshake(conn, Some(relay), &ConnectOptions::new(nick)).await
}

fn refused(res: Result<TcpClient, ClientError>) -> (RejectReason, String) {
    match res {
        Err(ClientError::Rejected(r)) => (r.reason, r.message),
        Ok(c) => panic!("expected a rejection, was welcomed as {}", c.welcome.nick),
        Err(e) => panic!("expected a rejection, got {e}"),
    }
}

#[tokio::test]
async fn relayed_guest_with_the_right_secret_gets_a_star_nickname() {
    let server = TestServer::start_with(|c| c.relay_secret = Some("s3cret".into())).await;
    let mut alice = server.client("alice").await;
    let mut guest = via_relay(&server, "s3cret", "203.0.113.7:4242", "*guest")
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
    let twin = via_relay(&server, "s3cret", "203.0.113.8:1", "*guest")
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
    let server = TestServer::start_with(|c| c.relay_secret = Some("s3cret".into())).await;
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
    let server = TestServer::start_with(|c| c.relay_secret = Some("s3cret".into())).await;
    let (reason, _) = refused(via_relay(&server, "s3cret", "203.0.113.7:1", "plain").await);
    assert_eq!(
        reason,
        RejectReason::InvalidNick(NickError::MissingRelayPrefix)
    );
    let (reason, _) = refused(via_relay(&server, "s3cret", "203.0.113.7:1", "**x").await);
    assert_eq!(
        reason,
        RejectReason::InvalidNick(NickError::ReservedStart('*'))
    );
    let (reason, message) = refused(via_relay(&server, "s3cret", "not an address", "*x").await);
    assert_eq!(reason, RejectReason::Malformed);
    assert!(message.contains("guest address"), "{message}");
    server.stop().await;
}
