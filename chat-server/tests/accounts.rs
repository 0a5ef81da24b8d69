//! Accounts, rooms, history and offline private messages, against in-process servers on port 0
//! with their databases in temp dirs.

use std::path::Path;
use std::time::Instant;

use chat_core::client::{ConnectOptions, TcpClient, handshake};
use chat_core::connection::Connection;
use chat_core::protocol::{
    ChatMessage, ClientFrame, ErrorCode, HANDSHAKE_MAX_FRAME, NickChange, RejectReason, RelayHello,
    ServerFrame, Target,
};
use chat_server::login::FIRST_DELAY;
use chat_server::{Config, DbLocation, GuestPolicy};
use chat_testing::*;
use tokio::net::TcpStream;

/// Sends text to a room and waits for its acknowledgement (the echo): it is stored then.
async fn say_acked(client: &mut TcpClient, room: &str, text: &str) -> ChatMessage {
    let tag = client.sender.say(room, text).await.expect("say");
    match expect(
        client,
        "the echo",
        |f| matches!(f, ServerFrame::Message(m) if m.tag == Some(tag)),
    )
    .await
    {
        ServerFrame::Message(m) => m,
        _ => unreachable!(),
    }
}

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.text()).collect()
}

fn on_file(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        generous_rate(c);
        c.db = DbLocation::File(path.to_owned());
    }
}

#[tokio::test]
async fn register_log_in_and_wrong_passwords_wait_longer_each_time() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    register(&mut alice, "correct horse").await;
    // Registering twice is refused with a reason.
    send(
        &mut alice,
        ClientFrame::Register {
            password: "again".into(),
        },
    )
    .await;
    let e = expect_error(&mut alice).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(e.message.contains("registered already"), "{}", e.message);
    quit(alice).await;

    let back = login(&server, "alice", "correct horse")
        .await
        .expect("login");
    assert_eq!(back.welcome.nick, "alice");
    assert_eq!(back.welcome.nick_change, None);
    quit(back).await;

    // Wrong passwords: refused clearly, the second after a longer wait than the first.
    let started = Instant::now();
    let (reason, message) = refused(login(&server, "alice", "wrong").await);
    assert_eq!(reason, RejectReason::BadPassword);
    assert!(message.contains("wrong password"), "{message}");
    assert!(started.elapsed() >= FIRST_DELAY);
    let started = Instant::now();
    refused(login(&server, "alice", "wrong again").await);
    assert!(started.elapsed() >= FIRST_DELAY * 2);

    // A password for a nickname nobody registered is answered as a wrong one (nobody learns
    // which nicknames are accounts), and says what to do.
    let (reason, other) = refused(login(&server, "nobody", "pw").await);
    assert_eq!(reason, RejectReason::BadPassword);
    assert_eq!(other.replace("nobody", "alice"), message);
    assert!(other.contains("/register"), "{other}");
    server.stop().await;
}

#[tokio::test]
async fn a_guest_asking_for_a_registered_nickname_gets_a_suffix_never_the_account() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    register(&mut alice, "pw").await;
    quit(alice).await;
    for asked in ["alice", "ALICE", "a1ice"] {
        let guest = server.client(asked).await;
        assert_ne!(guest.welcome.nick.to_lowercase(), "alice", "{asked}");
        // Told why: it is an account's, not someone online's.
        assert_eq!(guest.welcome.nick_change, Some(NickChange::Registered));
        quit(guest).await;
    }
    // The owner logging in takes it; an older session of the owner is replaced.
    let first = login(&server, "alice", "pw").await.expect("login");
    let mut second = login(&server, "Alice", "pw").await.expect("login again");
    assert_eq!(second.welcome.nick, "alice");
    let mut first = first;
    let frames = read_to_end(&mut first).await;
    assert!(frames.iter().any(|f| matches!(
        f,
        ServerFrame::Bye {
            reason: chat_core::protocol::DisconnectReason::LoggedInElsewhere,
            ..
        }
    )));
    still_chatting(&mut second, &mut server.client("bob").await, "still here").await;
    server.stop().await;
}

#[tokio::test]
async fn the_password_can_be_changed() {
    let server = TestServer::start().await;
    let mut zoe = server.client("zoe").await;
    send(
        &mut zoe,
        ClientFrame::SetPassword {
            password: "x".into(),
        },
    )
    .await;
    let e = expect_error(&mut zoe).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    register(&mut zoe, "old").await;
    send(
        &mut zoe,
        ClientFrame::SetPassword {
            password: "new".into(),
        },
    )
    .await;
    expect(&mut zoe, "PasswordChanged", |f| {
        matches!(f, ServerFrame::PasswordChanged)
    })
    .await;
    send(
        &mut zoe,
        ClientFrame::SetPassword {
            password: String::new().into(),
        },
    )
    .await;
    let e = expect_error(&mut zoe).await;
    assert_eq!(e.code, ErrorCode::InvalidPassword);
    quit(zoe).await;
    let (reason, _) = refused(login(&server, "zoe", "old").await);
    assert_eq!(reason, RejectReason::BadPassword);
    login(&server, "zoe", "new")
        .await
        .expect("the new one works");
    server.stop().await;
}

#[tokio::test]
async fn with_guests_denied_only_accounts_get_in() {
    let server = TestServer::start_with(|c| c.guests = GuestPolicy::Deny).await;
    let (reason, message) = refused(server.client_result("drifter").await);
    assert_eq!(reason, RejectReason::GuestsNotAllowed);
    assert!(message.contains("password"), "{message}");
    // A first login with a password registers the nickname ...
    let mira = login(&server, "mira", "pw")
        .await
        .expect("registered at login");
    assert_eq!(mira.welcome.nick, "mira");
    quit(mira).await;
    // ... which is then hers.
    let (reason, _) = refused(login(&server, "mira", "not it").await);
    assert_eq!(reason, RejectReason::BadPassword);
    login(&server, "mira", "pw").await.expect("login");
    server.stop().await;
}

#[tokio::test]
async fn relayed_guests_cannot_use_accounts() {
    let server = TestServer::start_with(|c| {
        c.relay_secret = Some("s3cret-s3cret-s3cret-s3cret-s3cret".into())
    })
    .await;
    let mut owner = server.client("kim").await;
    register(&mut owner, "pw").await;
    let through_relay = |password: Option<&str>| {
        let mut opts = ConnectOptions::new("*kim");
        opts.password = password.map(Into::into);
        async move {
            let stream = TcpStream::connect(server.addr).await.expect("connect");
            let conn = Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("conn");
            let relay = RelayHello {
                secret: "s3cret-s3cret-s3cret-s3cret-s3cret".into(),
                peer_addr: "203.0.113.9:5000".into(),
                relay: "test-relay".into(),
            };
            handshake(conn, Some(relay), &opts).await
        }
    };
    let (reason, message) = refused(through_relay(Some("pw")).await);
    assert_eq!(reason, RejectReason::NoAccountsThroughRelay);
    assert!(message.contains("relay"), "{message}");
    let mut guest = through_relay(None).await.expect("a guest is welcome");
    send(
        &mut guest,
        ClientFrame::Register {
            password: "pw".into(),
        },
    )
    .await;
    let e = expect_error(&mut guest).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(e.message.contains("relay"), "{}", e.message);
    server.stop().await;
}

#[tokio::test]
async fn a_room_message_reaches_its_members_only() {
    let server = TestServer::start_with(generous_rate).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    join(&mut alice, "#rust").await;
    join(&mut carol, "rust").await;
    // Alice sees Carol arrive.
    expect(&mut alice, "carol joins", |f| {
        matches!(f, ServerFrame::Joined { room, user, .. } if room == "rust" && user.nick == "carol")
    })
    .await;
    say_acked(&mut alice, "rust", "members only").await;
    expect_text(&mut carol, "members only").await;
    say_acked(&mut alice, "lobby", "marker").await;
    // Bob got the lobby marker and nothing from #rust before it.
    let seen = tokio::time::timeout(WAIT, async {
        let mut seen = Vec::new();
        loop {
            match bob.events.next().await {
                Ok(Some(ServerFrame::Message(m))) => {
                    let done = m.body.text() == "marker";
                    seen.push(m);
                    if done {
                        return seen;
                    }
                }
                Ok(Some(_)) => {}
                other => panic!("bob: {other:?}"),
            }
        }
    })
    .await
    .expect("bob gets the marker");
    assert_eq!(texts(&seen), ["marker"]);
    // A non-member can neither post to the room nor read its history.
    bob.sender.say("rust", "let me in").await.expect("send");
    let e = expect_error(&mut bob).await;
    assert!(matches!(e.code, ErrorCode::NoSuchRoom(_)));
    send(
        &mut bob,
        ClientFrame::History {
            room: "rust".into(),
            before: None,
            limit: 10,
        },
    )
    .await;
    let e = expect_error(&mut bob).await;
    assert!(matches!(e.code, ErrorCode::NoSuchRoom(_)));
    // Rooms are listed with their member counts; topics reach members.
    send(
        &mut alice,
        ClientFrame::SetTopic {
            room: "rust".into(),
            topic: "borrowck support group".into(),
        },
    )
    .await;
    expect(&mut carol, "topic", |f| {
        matches!(f, ServerFrame::Topic { topic, by, .. } if topic == "borrowck support group" && by == "alice")
    })
    .await;
    send(&mut bob, ClientFrame::ListRooms).await;
    match expect(&mut bob, "rooms", |f| matches!(f, ServerFrame::Rooms(_))).await {
        ServerFrame::Rooms(rooms) => {
            let rust = rooms.iter().find(|r| r.name == "rust").expect("listed");
            assert_eq!(rust.members, 2);
            assert_eq!(rust.topic, "borrowck support group");
            assert_eq!(
                rooms.iter().find(|r| r.name == "lobby").map(|r| r.members),
                Some(3)
            );
        }
        _ => unreachable!(),
    }
    // Leaving: the member is told, the others see it, and the lobby cannot be left.
    send(
        &mut carol,
        ClientFrame::Part {
            room: "rust".into(),
        },
    )
    .await;
    expect(
        &mut carol,
        "parted",
        |f| matches!(f, ServerFrame::Parted { room } if room == "rust"),
    )
    .await;
    expect(
        &mut alice,
        "carol leaves",
        |f| matches!(f, ServerFrame::Left { room, nick, .. } if room == "rust" && nick == "carol"),
    )
    .await;
    send(
        &mut carol,
        ClientFrame::Part {
            room: "lobby".into(),
        },
    )
    .await;
    let e = expect_error(&mut carol).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    // The log (and the monitor) record all of it.
    let log = server.stop().await;
    let has = |kind: &str, field: &str, value: &str| {
        log.iter().any(|e| e["kind"] == kind && e[field] == value)
    };
    assert!(has("room_join", "nick", "carol"));
    assert!(has("room_part", "nick", "carol"));
    assert!(has("topic", "topic", "borrowck support group"));
}

#[tokio::test]
async fn entering_a_room_replays_its_latest_messages_and_older_ones_come_in_pages() {
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        c.history_replay = 5;
    })
    .await;
    let mut alice = server.client("alice").await;
    join(&mut alice, "books").await;
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(say_acked(&mut alice, "books", &format!("m{i}")).await);
    }
    let mut bob = server.client("bob").await;
    send(
        &mut bob,
        ClientFrame::Join {
            room: "books".into(),
        },
    )
    .await;
    let page = |f: ServerFrame| match f {
        ServerFrame::History { messages, more, .. } => (messages, more),
        other => panic!("expected history, got {other:?}"),
    };
    let (replay, more) = page(
        expect(&mut bob, "replay", |f| {
            matches!(f, ServerFrame::History { .. })
        })
        .await,
    );
    assert_eq!(texts(&replay), ["m7", "m8", "m9", "m10", "m11"]);
    assert!(more);
    // Original ids and timestamps, no tag.
    assert_eq!(replay[0].id, sent[7].id);
    assert_eq!(replay[0].at, sent[7].at);
    assert_eq!(replay[0].tag, None);
    assert_eq!(replay[0].to, Target::Room("books".into()));
    let mut before = replay[0].id;
    let mut older = Vec::new();
    loop {
        send(
            &mut bob,
            ClientFrame::History {
                room: "books".into(),
                before: Some(before),
                limit: 3,
            },
        )
        .await;
        let (messages, more) = page(
            expect(&mut bob, "a page", |f| {
                matches!(f, ServerFrame::History { .. })
            })
            .await,
        );
        assert!(messages.len() <= 3);
        before = messages.first().map_or(before, |m| m.id);
        older.splice(0..0, messages);
        if !more {
            break;
        }
    }
    assert_eq!(texts(&older), ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    server.stop().await;
}

#[tokio::test]
async fn offline_messages_rooms_and_accounts_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut bob = server.client("bob").await;
    register(&mut bob, "pw").await;
    join(&mut bob, "garden").await;
    send(
        &mut bob,
        ClientFrame::SetTopic {
            room: "garden".into(),
            topic: "tomatoes".into(),
        },
    )
    .await;
    say_acked(&mut bob, "garden", "planted today").await;
    quit(bob).await;

    let mut alice = server.client("alice").await;
    let mut acked = Vec::new();
    for text in ["first while you were out", "second while you were out"] {
        let tag = alice.sender.private(&["bob"], text).await.expect("pm");
        match expect(
            &mut alice,
            "echo",
            |f| matches!(f, ServerFrame::Message(m) if m.tag == Some(tag)),
        )
        .await
        {
            ServerFrame::Message(m) => acked.push(m),
            _ => unreachable!(),
        }
        expect(
            &mut alice,
            "queued",
            |f| matches!(f, ServerFrame::Queued { tag: t, to } if *t == tag && to == &["bob"]),
        )
        .await;
    }
    // A guest who is offline is not kept for.
    alice
        .sender
        .private(&["ghost"], "hello?")
        .await
        .expect("pm");
    let e = expect_error(&mut alice).await;
    assert_eq!(e.code, ErrorCode::NoSuchUser(vec!["ghost".into()]));
    server.stop().await;

    let server = TestServer::start_with(on_file(&db)).await;
    let mut bob = login(&server, "bob", "pw")
        .await
        .expect("bob's account survived");
    // His room is restored with its topic and history, and his messages are waiting.
    match expect(&mut bob, "entered", |f| {
        matches!(f, ServerFrame::Entered { .. })
    })
    .await
    {
        ServerFrame::Entered { room, topic } => {
            assert_eq!(room, "garden");
            assert_eq!(topic, "tomatoes");
        }
        _ => unreachable!(),
    }
    match expect(
        &mut bob,
        "garden history",
        |f| matches!(f, ServerFrame::History { room, .. } if room == "garden"),
    )
    .await
    {
        ServerFrame::History { messages, more, .. } => {
            assert_eq!(texts(&messages), ["planted today"]);
            assert!(!more, "nothing older");
        }
        _ => unreachable!(),
    }
    match expect(&mut bob, "offline messages", |f| {
        matches!(f, ServerFrame::Offline(_))
    })
    .await
    {
        ServerFrame::Offline(messages) => {
            assert_eq!(
                texts(&messages),
                ["first while you were out", "second while you were out"]
            );
            for (got, sent) in messages.iter().zip(&acked) {
                assert_eq!(got.id, sent.id);
                assert_eq!(got.at, sent.at, "original timestamp");
                assert_eq!(got.from, "alice");
            }
        }
        _ => unreachable!(),
    }
    quit(bob).await;
    // Not acknowledged: kept, and delivered again at the next login ...
    let mut bob = login(&server, "bob", "pw").await.expect("login");
    match expect(&mut bob, "offline again", |f| {
        matches!(f, ServerFrame::Offline(_))
    })
    .await
    {
        ServerFrame::Offline(messages) => assert_eq!(messages.len(), 2),
        _ => unreachable!(),
    }
    send(&mut bob, ClientFrame::AckOffline { up_to: acked[1].id }).await;
    say_acked(&mut bob, "lobby", "received").await;
    quit(bob).await;
    // ... and once acknowledged, no more.
    let mut bob = login(&server, "bob", "pw").await.expect("login");
    say_acked(&mut bob, "lobby", "marker").await;
    server.stop().await;
    let frames = read_to_end(&mut bob).await;
    assert!(!frames.iter().any(|f| matches!(f, ServerFrame::Offline(_))));
    // Message ids keep increasing across restarts.
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = server.client("alice").await;
    let later = say_acked(&mut alice, "lobby", "after the restarts").await;
    assert!(later.id > acked[1].id);
    server.stop().await;
}

#[tokio::test]
async fn many_writers_at_once_are_all_stored_in_one_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let mut client = server.client(&format!("w{w}")).await;
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                say_acked(&mut client, "lobby", &format!("w{w} m{i}")).await;
            }
            client
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let mut reader = server.client("reader").await;
    // The lobby's latest, replayed on arrival, first.
    expect(&mut reader, "replay", |f| {
        matches!(f, ServerFrame::History { .. })
    })
    .await;
    let mut before = None;
    let mut all = Vec::new();
    loop {
        send(
            &mut reader,
            ClientFrame::History {
                room: "lobby".into(),
                before,
                limit: 500,
            },
        )
        .await;
        match expect(&mut reader, "page", |f| {
            matches!(f, ServerFrame::History { .. })
        })
        .await
        {
            ServerFrame::History { messages, more, .. } => {
                before = messages.first().map(|m| m.id);
                all.splice(0..0, messages);
                if !more {
                    break;
                }
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(all.len(), 400);
    assert!(all.windows(2).all(|p| p[0].id < p[1].id));
    for w in 0..8 {
        let mine: Vec<&str> = all
            .iter()
            .map(|m| m.body.text())
            .filter(|t| t.starts_with(&format!("w{w} ")))
            .collect();
        let expected: Vec<String> = (0..50).map(|i| format!("w{w} m{i}")).collect();
        assert_eq!(mine, expected);
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_room_names_topics_history_requests_and_passwords_get_clear_errors() {
    let server = TestServer::start_with(generous_rate).await;
    let mut bob = server.client("bob").await;
    let mut mallory = server.client("mallory").await;
    for bad in ["", "#", "has space", "a,b", &"x".repeat(40), "\u{1b}[2J"] {
        send(&mut mallory, ClientFrame::Join { room: bad.into() }).await;
        let e = expect_error(&mut mallory).await;
        assert_eq!(e.code, ErrorCode::InvalidRoom(bad.into()), "{bad:?}");
        assert!(e.message.contains("invalid room name"), "{}", e.message);
    }
    join(&mut mallory, "den").await;
    for (topic, why) in [
        ("two\nlines", "one line"),
        ("\u{7}bell", "control"),
        (&*"t".repeat(301), "long"),
    ] {
        send(
            &mut mallory,
            ClientFrame::SetTopic {
                room: "den".into(),
                topic: topic.into(),
            },
        )
        .await;
        let e = expect_error(&mut mallory).await;
        assert_eq!(e.code, ErrorCode::InvalidText, "{topic:?}");
        assert!(e.message.contains("invalid topic"), "{why}: {}", e.message);
    }
    // A topic for a room one is not in.
    send(
        &mut mallory,
        ClientFrame::SetTopic {
            room: "lobby2".into(),
            topic: "mine".into(),
        },
    )
    .await;
    assert!(matches!(
        expect_error(&mut mallory).await.code,
        ErrorCode::NoSuchRoom(_)
    ));
    // History limits are clamped, not trusted: 0 gives at least one, u32::MAX at most 500.
    for _ in 0..3 {
        say_acked(&mut mallory, "den", "x").await;
    }
    for limit in [0, u32::MAX] {
        send(
            &mut mallory,
            ClientFrame::History {
                room: "den".into(),
                before: Some(u64::MAX),
                limit,
            },
        )
        .await;
        match expect(
            &mut mallory,
            "history",
            |f| matches!(f, ServerFrame::History { room, .. } if room == "den"),
        )
        .await
        {
            ServerFrame::History { messages, .. } => {
                assert!(
                    (1..=500).contains(&messages.len()),
                    "{limit}: {}",
                    messages.len()
                );
            }
            _ => unreachable!(),
        }
    }
    // Passwords that break the rules.
    for bad in ["", "tab\there", &"p".repeat(257)] {
        send(
            &mut mallory,
            ClientFrame::Register {
                password: bad.into(),
            },
        )
        .await;
        assert_eq!(
            expect_error(&mut mallory).await.code,
            ErrorCode::InvalidPassword,
            "{bad:?}"
        );
    }
    // None of it disturbed anyone else.
    still_chatting(&mut bob, &mut mallory, "all fine").await;
    server.stop().await;
}

#[tokio::test]
async fn a_long_offline_backlog_comes_in_pages_each_after_the_last_is_acknowledged() {
    let server = TestServer::start_with(generous_rate).await;
    let mut bob = server.client("bob").await;
    register(&mut bob, "pw").await;
    quit(bob).await;
    let mut alice = server.client("alice").await;
    for i in 0..150 {
        let tag = alice
            .sender
            .private(&["bob"], format!("note {i}"))
            .await
            .expect("pm");
        expect(
            &mut alice,
            "queued",
            |f| matches!(f, ServerFrame::Queued { tag: t, .. } if *t == tag),
        )
        .await;
    }
    let mut bob = login(&server, "bob", "pw").await.expect("login");
    let mut received = Vec::new();
    loop {
        let page = match expect(&mut bob, "a page", |f| matches!(f, ServerFrame::Offline(_))).await
        {
            ServerFrame::Offline(messages) => messages,
            _ => unreachable!(),
        };
        assert!(page.len() <= 100);
        let up_to = page.last().expect("not empty").id;
        received.extend(page.into_iter().map(|m| m.body.text().to_owned()));
        send(&mut bob, ClientFrame::AckOffline { up_to }).await;
        if received.len() == 150 {
            break;
        }
    }
    let expected: Vec<String> = (0..150).map(|i| format!("note {i}")).collect();
    assert_eq!(received, expected);
    // All acknowledged: nothing is kept any more.
    say_acked(&mut bob, "lobby", "got them").await;
    quit(bob).await;
    let mut bob = login(&server, "bob", "pw").await.expect("login");
    say_acked(&mut bob, "lobby", "marker").await;
    server.stop().await;
    let frames = read_to_end(&mut bob).await;
    assert!(!frames.iter().any(|f| matches!(f, ServerFrame::Offline(_))));
}

#[tokio::test]
async fn history_of_a_room_without_messages_is_an_empty_page_and_the_store_carries_on() {
    let server = TestServer::start_with(generous_rate).await;
    let mut alice = server.client("alice").await;
    join(&mut alice, "quiet").await;
    send(
        &mut alice,
        ClientFrame::History {
            room: "quiet".into(),
            before: None,
            limit: 50,
        },
    )
    .await;
    match expect(&mut alice, "history", |f| {
        matches!(f, ServerFrame::History { .. })
    })
    .await
    {
        ServerFrame::History { messages, more, .. } => assert!(messages.is_empty() && !more),
        _ => unreachable!(),
    }
    // Stored and acknowledged: the store thread is still there.
    say_acked(&mut alice, "quiet", "anyone?").await;
    server.stop().await;
}
