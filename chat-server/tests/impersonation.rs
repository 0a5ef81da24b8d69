//! Attacks on who is who: nicknames that pose as someone online, as a registered account, or
//! as a relayed `*` guest, and nicknames that show as nothing. Each is refused (or renamed)
//! with the rule, and the person imitated keeps chatting.

use chat_core::client::ClientError;
use chat_core::names::NickError;
use chat_core::protocol::{NickChange, RejectReason};
use chat_testing::*;
use tokio::io::AsyncWriteExt;

/// The refusal a direct connection asking for `nick` gets.
async fn refusal(server: &TestServer, nick: &str) -> chat_core::protocol::Rejected {
    match server.client_result(nick).await {
        Err(ClientError::Rejected(r)) => r,
        Ok(c) => panic!("{nick:?} was admitted as {:?}", c.welcome.nick),
        Err(e) => panic!("{nick:?}: {e}"),
    }
}

#[tokio::test]
async fn nicknames_that_show_as_nothing_are_refused() {
    let server = TestServer::start().await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    // U+2800 BRAILLE PATTERN BLANK, Hangul fillers: letters or symbols that render blank.
    for nick in [
        "bob\u{2800}",
        "\u{2800}",
        "\u{3164}",
        "b\u{115F}ob",
        "\u{FFA0}",
    ] {
        let r = refusal(&server, nick).await;
        assert_eq!(
            r.reason,
            RejectReason::InvalidNick(NickError::Invisible),
            "{nick:?}"
        );
        assert!(r.message.contains("invisible"), "{}", r.message);
    }
    still_chatting(&mut bob, &mut carol, "still bob").await;
    server.stop().await;
}

#[tokio::test]
async fn star_like_symbols_cannot_pose_as_relayed_guests() {
    let server = TestServer::start().await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let stars = [
        '✱', '⋆', '꙳', '⁎', '∗', '﹡', '＊', '✲', '✳', '❋', '✻', '✼', '✽', '❉', '❊', '★', '☆', '✦',
        '✧', '⭑', '٭', '⁕', '※', '⚹', '✴', '✵', '✶', '✷', '✸', '✹', '✺', '❃',
    ];
    for star in stars {
        let nick = format!("{star}zed");
        let r = refusal(&server, &nick).await;
        assert!(
            matches!(
                r.reason,
                RejectReason::InvalidNick(NickError::BadStart(_) | NickError::ReservedStart(_))
            ),
            "{nick}: {r:?}"
        );
    }
    still_chatting(&mut bob, &mut carol, "no fake guests").await;
    server.stop().await;
}

#[tokio::test]
async fn look_alikes_of_someone_online_get_another_nickname() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let w = server.client("w").await;
    let d = server.client("d").await;
    let mallory = server.client("mallory").await;
    for (fake, real) in [
        ("ALİCE", "alice"),
        ("alİce", "alice"),
        ("vv", "w"),
        ("cl", "d"),
        ("rnallory", "mallory"),
        ("\u{0430}lice", "alice"),
    ] {
        let c = server.client(fake).await;
        assert_eq!(
            c.welcome.nick_change,
            Some(NickChange::Taken),
            "{fake} vs {real}"
        );
        assert_ne!(c.welcome.nick, fake);
    }
    drop((w, d, mallory));
    let mut bob = server.client("bob").await;
    still_chatting(&mut alice, &mut bob, "alice is alice").await;
    server.stop().await;
}

#[tokio::test]
async fn nicknames_in_another_form_are_refused_with_their_normal_form() {
    let server = TestServer::start().await;
    let r = refusal(&server, "ｂｏｂ").await;
    assert_eq!(
        r.reason,
        RejectReason::InvalidNick(NickError::NotNormalized {
            normal: "bob".into()
        })
    );
    assert!(r.message.contains("\"bob\""), "{}", r.message);
    server.stop().await;
}

/// A version 2 client cannot decode the rules added in version 3: it gets the nearest older
/// rule, and the message names the real one.
#[tokio::test]
async fn an_older_client_gets_a_rule_it_knows() {
    let server = TestServer::start().await;
    let (mut r, mut w) = raw(server.addr).await;
    w.write_all(&hello("✱zed", 2)).await.expect("hello");
    let (reason, message) = rejection(&frames_until_close(&mut r).await);
    assert_eq!(
        reason,
        RejectReason::InvalidNick(NickError::ReservedStart('✱'))
    );
    assert!(message.contains("must start with a letter"), "{message}");
    server.stop().await;
}
