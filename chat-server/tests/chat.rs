//! Normal chat behaviour: nicknames, broadcast, private messages, roster, log.

use chat_core::client::{ClientError, ConnectOptions, connect};
use chat_core::names::NickError;
use chat_core::protocol::{
    DisconnectReason, ErrorCode, NickChange, RejectReason, ServerFrame, Target,
};
use chat_testing::*;
use chrono::Utc;

#[tokio::test]
async fn taken_nickname_gets_a_numeric_suffix() {
    let server = TestServer::start().await;
    let first = server.client("alice").await;
    assert_eq!(first.welcome.nick, "alice");
    assert_eq!(first.welcome.nick_change, None);

    let second = server.client("alice").await;
    let nick = &second.welcome.nick;
    assert_eq!(second.welcome.requested_nick, "alice");
    assert_eq!(second.welcome.nick_change, Some(NickChange::Taken));
    let suffix = nick
        .strip_prefix("alice")
        .expect("keeps the requested name");
    assert!(
        suffix.len() >= 4 && suffix.chars().all(|c| c.is_ascii_digit()),
        "{nick}"
    );
    let roster: Vec<_> = second
        .welcome
        .roster
        .iter()
        .map(|u| u.nick.as_str())
        .collect();
    assert_eq!(roster.len(), 2);
    assert!(roster.contains(&"alice") && roster.contains(&nick.as_str()));

    // A long nickname is shortened so that nickname + suffix still fits in 32 characters.
    let long = "x".repeat(32);
    let _a = server.client(&long).await;
    let b = server.client(&long).await;
    assert_eq!(b.welcome.nick.chars().count(), 32);
    assert_ne!(b.welcome.nick, long);

    let log = server.stop().await;
    assert!(log.iter().any(|e| e["kind"] == "nick_changed"
        && e["requested"] == "alice"
        && e["nick"] == nick.as_str()));
}

#[tokio::test]
async fn case_and_look_alike_nicknames_cannot_be_online_together() {
    let server = TestServer::start().await;
    let _alice = server.client("alice").await;
    for other in ["Alice", "ALICE", "\u{0430}lice", "\u{0410}LICE"] {
        let c = server.client(other).await;
        assert_eq!(c.welcome.nick_change, Some(NickChange::Taken), "{other}");
        assert_ne!(c.welcome.nick, other);
    }
    let capital_i = server.client("AIice").await;
    assert_eq!(
        capital_i.welcome.nick_change,
        Some(NickChange::Taken),
        "AIice looks like alice"
    );
    // Fullwidth letters are not how RFC 8266 writes a nickname: refused, with the normal form.
    match server.client_result("\u{FF41}lice").await {
        Err(ClientError::Rejected(r)) => assert_eq!(
            r.reason,
            RejectReason::InvalidNick(NickError::NotNormalized {
                normal: "alice".into()
            })
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn invalid_nicknames_are_rejected_with_the_rule() {
    let server = TestServer::start().await;
    let cases = [
        ("", NickError::Empty),
        ("al ice", NickError::Whitespace),
        ("al\u{1b}[31mice", NickError::Invisible),
        ("a,b", NickError::Comma),
        ("#room", NickError::ReservedStart('#')),
        ("@op", NickError::ReservedStart('@')),
    ];
    for (nick, rule) in cases {
        match connect(&server.addr.to_string(), &ConnectOptions::new(nick)).await {
            Err(ClientError::Rejected(r)) => {
                assert_eq!(
                    r.reason,
                    RejectReason::InvalidNick(rule.clone()),
                    "{nick:?}"
                );
                assert!(r.message.contains(&rule.to_string()), "{}", r.message);
            }
            other => panic!("{nick:?}: expected a rejection, got {other:?}"),
        }
    }
    let long = "y".repeat(33);
    match connect(
        &server.addr.to_string(),
        &ConnectOptions::new(long.as_str()),
    )
    .await
    {
        Err(ClientError::Rejected(r)) => assert!(
            matches!(
                r.reason,
                RejectReason::InvalidNick(NickError::TooLong { max: 32, len: 33 })
            ),
            "{r:?}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn star_nickname_is_refused_on_a_direct_connection() {
    let server = TestServer::start().await;
    match connect(&server.addr.to_string(), &ConnectOptions::new("*guest")).await {
        Err(ClientError::Rejected(r)) => {
            assert_eq!(r.reason, RejectReason::NickReservedForRelay);
            assert!(r.message.contains("relay"), "{}", r.message);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn broadcast_reaches_everyone_with_time_sender_and_id() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    let tag = alice
        .sender
        .say("lobby", "hello everyone")
        .await
        .expect("send");

    let echo = expect_text(&mut alice, "hello everyone").await;
    assert_eq!(echo.tag, Some(tag), "the sender's copy carries its tag");
    for c in [&mut bob, &mut carol] {
        let m = expect_text(c, "hello everyone").await;
        assert_eq!(m.from, "alice");
        assert_eq!(m.to, Target::Room("lobby".into()));
        assert_eq!(m.id, echo.id);
        assert_eq!(m.at, echo.at);
        assert_eq!(m.tag, None, "others do not see the sender's tag");
        assert!(m.at >= before && m.at <= Utc::now() + chrono::Duration::seconds(1));
    }
    let tag2 = bob.sender.say("#Lobby", "second").await.expect("send");
    let m2 = expect_text(&mut alice, "second").await;
    assert!(m2.id > echo.id, "ids increase");
    assert_eq!(expect_text(&mut bob, "second").await.tag, Some(tag2));
    server.stop().await;
}

#[tokio::test]
async fn private_message_reaches_only_its_targets() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let mut dave = server.client("dave").await;

    alice.sender.private(&["BOB"], "psst").await.expect("pm");
    let m = expect_text(&mut bob, "psst").await;
    assert_eq!(m.from, "alice");
    assert_eq!(
        m.to,
        Target::Users(vec!["bob".into()]),
        "canonical nickname"
    );
    assert_eq!(expect_text(&mut alice, "psst").await.to, m.to);

    alice
        .sender
        .private(&["bob", "dave"], "to two")
        .await
        .expect("pm");
    expect_text(&mut bob, "to two").await;
    expect_text(&mut dave, "to two").await;

    // Carol's next message must be this public one: the hub delivers in order, so had she
    // received either private message it would have come first.
    alice
        .sender
        .say("lobby", "public after")
        .await
        .expect("send");
    let next = next_message(&mut carol).await;
    assert_eq!(next.body.text(), "public after");
    server.stop().await;
}

#[tokio::test]
async fn private_message_to_an_absent_nickname_is_an_error_naming_it() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let tag = alice.sender.private(&["zed"], "anyone?").await.expect("pm");
    match expect(&mut alice, "error", |f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => {
            assert_eq!(e.tag, Some(tag));
            assert_eq!(e.code, ErrorCode::NoSuchUser(vec!["zed".into()]));
            assert!(e.message.contains("zed"), "{}", e.message);
        }
        _ => unreachable!(),
    }
    // With one present and one absent target, the present one gets it and the error names
    // the other.
    let tag = alice
        .sender
        .private(&["bob", "zed"], "partial")
        .await
        .expect("pm");
    expect_text(&mut bob, "partial").await;
    match expect(&mut alice, "error", |f| matches!(f, ServerFrame::Error(_))).await {
        ServerFrame::Error(e) => {
            assert_eq!(e.tag, Some(tag));
            assert_eq!(e.code, ErrorCode::NoSuchUser(vec!["zed".into()]));
        }
        _ => unreachable!(),
    }
    server.stop().await;
}

#[tokio::test]
async fn roster_follows_joins_quits_and_abrupt_disconnects() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    assert_eq!(alice.welcome.roster.len(), 1);
    assert_eq!(alice.welcome.room, "lobby");
    assert_eq!(alice.welcome.rooms[0].name, "lobby");

    let mut bob = server.client("bob").await;
    let names: Vec<_> = bob.welcome.roster.iter().map(|u| u.nick.clone()).collect();
    assert_eq!(names, ["alice", "bob"], "sorted");
    expect(
        &mut alice,
        "bob joined",
        |f| matches!(f, ServerFrame::Joined { user, .. } if user.nick == "bob" && !user.relayed),
    )
    .await;

    let carol = server.client("carol").await;
    expect(
        &mut alice,
        "carol joined",
        |f| matches!(f, ServerFrame::Joined { user, .. } if user.nick == "carol"),
    )
    .await;

    // Quit: removed at once with its reason; the quitter gets Bye.
    bob.sender.quit("off to lunch").await.expect("quit");
    let frames = read_to_end(&mut bob).await;
    assert!(
        matches!(
            frames.last(),
            Some(ServerFrame::Bye {
                reason: DisconnectReason::Quit,
                ..
            })
        ),
        "{frames:?}"
    );
    let left = expect(&mut alice, "bob left", |f| {
        matches!(f, ServerFrame::Left { .. })
    })
    .await;
    assert!(
        matches!(left, ServerFrame::Left { nick, reason: DisconnectReason::Quit, message, .. }
        if nick == "bob" && message == "off to lunch")
    );

    // Abrupt disconnect.
    drop(carol);
    let left = expect(&mut alice, "carol left", |f| {
        matches!(f, ServerFrame::Left { .. })
    })
    .await;
    assert!(
        matches!(left, ServerFrame::Left { nick, reason: DisconnectReason::ConnectionClosed, .. } if nick == "carol")
    );

    alice.sender.who("lobby").await.expect("who");
    match expect(&mut alice, "roster", |f| {
        matches!(f, ServerFrame::Roster { .. })
    })
    .await
    {
        ServerFrame::Roster { room, users } => {
            assert_eq!(room, "lobby");
            assert_eq!(
                users.iter().map(|u| u.nick.as_str()).collect::<Vec<_>>(),
                ["alice"]
            );
        }
        _ => unreachable!(),
    }
    // bob's nickname is free again.
    let bob2 = server.client("bob").await;
    assert_eq!(bob2.welcome.nick, "bob");

    let log = server.stop().await;
    assert!(
        log.iter()
            .any(|e| e["kind"] == "leave" && e["nick"] == "bob" && e["message"] == "off to lunch")
    );
    assert!(log.iter().any(|e| e["kind"] == "disconnect"
        && e["nick"] == "carol"
        && e["reason"] == "connection closed"));
}

#[tokio::test]
async fn ping_is_answered_with_the_same_nonce() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.sender.ping(0xfeed).await.expect("ping");
    expect(&mut alice, "pong", |f| {
        matches!(f, ServerFrame::Pong { nonce: 0xfeed, .. })
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn the_log_holds_every_message_and_event_while_running() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice
        .sender
        .say("lobby", "public words")
        .await
        .expect("send");
    alice
        .sender
        .private(&["bob"], "private words")
        .await
        .expect("pm");
    expect_text(&mut bob, "private words").await;
    bob.sender.action("lobby", "waves").await.expect("me");
    expect_text(&mut alice, "waves").await;

    // The writer flushes as soon as it has nothing more to write: wait for the file to show it.
    let path = server.log.clone();
    let lines = tokio::time::timeout(WAIT, async {
        loop {
            let lines = read_log(&path);
            if lines.iter().filter(|e| e["kind"] == "message").count() == 3 {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("log written while the server runs");

    let public = lines
        .iter()
        .find(|e| e["text"] == "public words")
        .expect("public");
    assert_eq!(public["from"], "alice");
    assert_eq!(public["room"], "lobby");
    assert!(public["id"].as_u64().is_some());
    assert!(public["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    let private = lines
        .iter()
        .find(|e| e["text"] == "private words")
        .expect("pm");
    assert_eq!(private["from"], "alice");
    assert_eq!(private["to"], serde_json::json!(["bob"]));
    assert!(private.get("room").is_none());
    let action = lines.iter().find(|e| e["text"] == "waves").expect("action");
    assert_eq!(action["action"], true);
    assert!(lines.iter().any(|e| {
        e["kind"] == "join"
            && e["nick"] == "alice"
            && e["addr"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:"))
    }));
    let seqs: Vec<u64> = lines
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq has no gaps: {seqs:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_connection_stays() {
    let server = TestServer::start_with(|c| c.max_message_len = 100).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    type Check = fn(&ErrorCode) -> bool;
    let cases: Vec<(Target, String, Check)> = vec![
        (Target::Room("lobby".into()), "x".repeat(101), |c| {
            matches!(c, ErrorCode::MessageTooLong { max: 100 })
        }),
        (Target::Room("lobby".into()), "   ".into(), |c| {
            *c == ErrorCode::InvalidText
        }),
        (
            Target::Room("lobby".into()),
            "\u{1b}[2Jgotcha".into(),
            |c| *c == ErrorCode::InvalidText,
        ),
        (Target::Room("nowhere".into()), "hi".into(), |c| {
            matches!(c, ErrorCode::NoSuchRoom(_))
        }),
        (Target::Users(vec![]), "hi".into(), |c| {
            matches!(c, ErrorCode::BadTargets { .. })
        }),
    ];
    for (to, text, check) in cases {
        let tag = alice
            .sender
            .message(to, chat_core::protocol::Body::Text(text.clone()), vec![])
            .await
            .expect("send");
        match expect(&mut alice, "error", |f| matches!(f, ServerFrame::Error(_))).await {
            ServerFrame::Error(e) => {
                assert_eq!(e.tag, Some(tag));
                assert!(check(&e.code), "{text:?}: {e:?}");
            }
            _ => unreachable!(),
        }
    }
    still_chatting(&mut alice, &mut bob, "still here").await;
    server.stop().await;
}

#[tokio::test]
async fn several_listen_addresses_serve_the_same_chat() {
    // IPv6 loopback is used when this machine has it; 127.0.0.2 is always on Linux loopback.
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let second = if v6 { "[::1]:0" } else { "127.0.0.2:0" };
    let dir = tempfile::tempdir().expect("tmp");
    let config = chat_server::Config {
        listen: vec![
            "127.0.0.1:0".parse().expect("v4"),
            second.parse().expect("second"),
        ],
        log_file: Some(dir.path().join("log.jsonl")),
        stats_interval: None,
        ..chat_server::Config::default()
    };
    let server = chat_server::Server::bind(config).await.expect("bind both");
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[1].is_ipv6(), v6);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let mut a = connect(&addrs[0].to_string(), &ConnectOptions::new("four"))
        .await
        .expect("v4");
    let mut b = connect(&addrs[1].to_string(), &ConnectOptions::new("other"))
        .await
        .expect("second");
    still_chatting(&mut a, &mut b, "across listeners").await;
    let _ = tx.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .expect("stops")
        .expect("task");
}
