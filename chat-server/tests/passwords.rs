//! Attacks on passwords and the hashing pool: guessing one account's password from many
//! addresses, telling accounts from unknown nicknames, hashing for registrations that could
//! not happen, and registrations crowding out logins.

use std::time::Duration;

use chat_core::protocol::{ClientFrame, ErrorCode, RejectReason, ServerFrame};
use chat_server::{Config, DbLocation};
use chat_testing::*;

fn with_db(dir: &tempfile::TempDir) -> impl FnOnce(&mut Config) + use<> {
    let db = dir.path().join("chat.db");
    move |c| c.db = DbLocation::File(db)
}

#[tokio::test]
async fn one_account_is_guessed_at_one_password_at_a_time_from_every_address() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_db(&dir)(c);
        count_loopback(c);
    })
    .await;
    let mut alice = server
        .client_from("127.0.0.2", "alice", None)
        .await
        .expect("alice");
    register(&mut alice, "correct horse").await;
    quit(alice).await;
    // Six addresses guess at once: one guess is checked, the others wait their turn.
    let guesses = (10..16).map(|i| {
        let from = format!("127.0.3.{i}");
        let server = &server;
        async move { refused(server.client_from(&from, "alice", Some("guess")).await) }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|(r, _)| *r == RejectReason::BadPassword)
        .count();
    let told_to_wait = answers
        .iter()
        .filter(|(r, m)| *r == RejectReason::Unavailable && m.contains("try again in"))
        .count();
    assert_eq!((checked, told_to_wait), (1, 5), "{answers:?}");
    // The owner is not locked out: once the delay has passed, the right password works.
    let owner = async {
        loop {
            match server
                .client_from("127.0.0.2", "alice", Some("correct horse"))
                .await
            {
                Ok(c) => return c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    let owner = tokio::time::timeout(WAIT, owner)
        .await
        .expect("the owner logs in");
    quit(owner).await;
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_nickname_is_answered_like_a_wrong_password() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(with_db(&dir)).await;
    let mut kim = server.client("kim").await;
    register(&mut kim, "kim's password").await;
    quit(kim).await;
    let hashed = server.stats().password_hashes;
    let (known, known_message) = refused(login(&server, "kim", "wrong").await);
    let (unknown, unknown_message) = refused(login(&server, "kip", "wrong").await);
    assert_eq!(known, RejectReason::BadPassword);
    assert_eq!(unknown, known);
    assert_eq!(unknown_message.replace("kip", "kim"), known_message);
    // Both cost a password check.
    assert_eq!(server.stats().password_hashes, hashed + 2);
    server.stop().await;
}

#[tokio::test]
async fn a_registration_that_cannot_happen_is_refused_before_hashing() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_db(&dir)(c);
        generous_rate(c);
    })
    .await;
    let mut zoe = server.client("zoe").await;
    register(&mut zoe, "first").await;
    let hashed = server.stats().password_hashes;
    for _ in 0..20 {
        send(
            &mut zoe,
            ClientFrame::Register {
                password: "again".into(),
            },
        )
        .await;
        let e = expect_error(&mut zoe).await;
        assert_eq!(e.code, ErrorCode::NotAllowed);
        assert!(e.message.contains("registered already"), "{}", e.message);
    }
    assert_eq!(server.stats().password_hashes, hashed, "nothing was hashed");
    server.stop().await;
}

#[tokio::test]
async fn one_address_registers_only_a_few_accounts_an_hour() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(|c| {
        with_db(&dir)(c);
        count_loopback(c);
        c.limits.registrations_per_hour = 2;
    })
    .await;
    for nick in ["reg1", "reg2"] {
        let mut c = server
            .client_from("127.0.0.2", nick, None)
            .await
            .expect("in");
        register(&mut c, "pw").await;
    }
    let hashed = server.stats().password_hashes;
    let mut third = server
        .client_from("127.0.0.2", "reg3", None)
        .await
        .expect("in");
    send(
        &mut third,
        ClientFrame::Register {
            password: "pw".into(),
        },
    )
    .await;
    let e = expect_error(&mut third).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(e.message.contains("from your address"), "{}", e.message);
    assert_eq!(server.stats().password_hashes, hashed);
    // Someone else registers as usual.
    let mut other = server
        .client_from("127.0.0.3", "other", None)
        .await
        .expect("in");
    register(&mut other, "pw").await;
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_registrations_does_not_hold_up_logins() {
    let dir = tempfile::tempdir().expect("dir");
    let server = TestServer::start_with(with_db(&dir)).await;
    let mut owner = server.client("owner").await;
    register(&mut owner, "owner's password").await;
    quit(owner).await;
    // Forty guests register at once: their passwords are hashed one after another ...
    let mut flood = Vec::new();
    for i in 0..40 {
        let mut c = server.client(&format!("newbie{i}")).await;
        send(
            &mut c,
            ClientFrame::Register {
                password: "pw".into(),
            },
        )
        .await;
        flood.push(c);
    }
    // ... while the owner's login is checked beside them, long before they are done.
    let owner = login(&server, "owner", "owner's password")
        .await
        .expect("login");
    let mut done = 0;
    for c in &mut flood {
        let answered = tokio::time::timeout(Duration::ZERO, c.events.next()).await;
        if matches!(answered, Ok(Ok(Some(ServerFrame::Registered { .. })))) {
            done += 1;
        }
    }
    assert!(done < 40, "every registration was done before the login");
    quit(owner).await;
    for c in &mut flood {
        expect(c, "Registered", |f| {
            matches!(f, ServerFrame::Registered { .. })
        })
        .await;
    }
    server.stop().await;
}
