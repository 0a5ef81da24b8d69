//! Working with messages once they are sent, against in-process servers on port 0 with their
//! databases in temp dirs: edits and reactions reach whoever can see the message (and a
//! version 5 client gets an edit as a message marked "(edit)"), others are refused, the store
//! keeps only the latest text, and both survive a restart; replies carry what they answer;
//! expiring messages go from every client and from the store when they expire, on a paused
//! clock, across a restart too; a version 2 client gets a notice in place of a deleted message.

use std::path::Path;
use std::time::Duration;

use chat_core::client::TcpClient;
use chat_core::frame::encode_frame;
use chat_core::protocol::{
    Body, ClientFrame, ErrorCode, MAX_EXPIRY_SECS, MessageAttr, MessageId, Reaction, ServerFrame,
    Target,
};
use chat_server::{Config, DbLocation};
use chat_testing::*;
use tokio::io::AsyncWriteExt;

fn on_file(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        generous_rate(c);
        count_loopback(c);
        c.db = DbLocation::File(path.to_owned());
        // One recent message per room in memory: older ones are found in the store.
        c.history_replay = 1;
    }
}

async fn from(server: &TestServer, addr: &str, nick: &str) -> TcpClient {
    server
        .client_from(addr, nick, None)
        .await
        .unwrap_or_else(|e| panic!("{nick}: {e}"))
}

async fn refusal(client: &mut TcpClient, frame: ClientFrame, code: ErrorCode) -> String {
    send(client, frame).await;
    let e = expect_error(client).await;
    assert_eq!(e.code, code, "{}", e.message);
    e.message
}

async fn edited(client: &mut TcpClient, id: MessageId) -> (String, String) {
    match expect(
        client,
        "an edit",
        |f| matches!(f, ServerFrame::Edited { id: i, .. } if *i == id),
    )
    .await
    {
        ServerFrame::Edited { text, by, .. } => (text, by),
        _ => unreachable!(),
    }
}

async fn reactions(client: &mut TcpClient, id: MessageId) -> Vec<(String, Vec<String>)> {
    match expect(
        client,
        "reactions",
        |f| matches!(f, ServerFrame::Reactions { id: i, .. } if *i == id),
    )
    .await
    {
        ServerFrame::Reactions { reactions, .. } => reactions
            .into_iter()
            .map(|Reaction { emoji, nicks }| (emoji, nicks))
            .collect(),
        _ => unreachable!(),
    }
}

fn react(id: MessageId, emoji: &str) -> ClientFrame {
    ClientFrame::React {
        id,
        emoji: emoji.into(),
    }
}

fn said(emoji: &str, nicks: &[&str]) -> (String, Vec<String>) {
    (
        emoji.to_owned(),
        nicks.iter().map(|n| (*n).to_owned()).collect(),
    )
}

#[tokio::test]
async fn edits_and_reactions_reach_whoever_sees_the_message_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    let mut dave = from(&server, "127.0.0.4", "dave").await;
    let mut eve = from(&server, "127.0.0.5", "eve").await;
    // A client of protocol version 5, in the room too.
    let (mut old, mut old_w) = raw_from("127.0.0.6", server.addr).await;
    old_w.write_all(&hello("oldie", 5)).await.expect("hello");
    let join_frame = ClientFrame::Join {
        room: "rust".into(),
    };
    old_w
        .write_all(&encode_frame(&join_frame, 1024).expect("encode"))
        .await
        .expect("join");
    for client in [&mut bob, &mut carol, &mut dave] {
        join(client, "rust").await;
    }
    bob.sender.say("rust", "teh first").await.expect("say");
    let first = expect_text(&mut dave, "teh first").await.id;
    bob.sender.say("rust", "second").await.expect("say");
    let second = expect_text(&mut dave, "second").await.id;

    // Only its author (or an operator) edits it: the first is in the store only by now.
    let edit = |id, text: &str| ClientFrame::Edit {
        id,
        text: text.into(),
    };
    let refused = refusal(&mut dave, edit(first, "mine now"), ErrorCode::NotAllowed).await;
    assert!(refused.contains("only its author"), "{refused}");
    send(&mut bob, edit(first, "the first")).await;
    assert_eq!(
        edited(&mut dave, first).await,
        ("the first".to_owned(), "bob".to_owned())
    );
    assert_eq!(edited(&mut bob, first).await.0, "the first");
    let fallback = loop {
        match old.recv().await.expect("read").expect("open") {
            ServerFrame::Message(m) if m.body.text().starts_with("(edit)") => break m,
            _ => {}
        }
    };
    assert_eq!(
        (fallback.id, fallback.body.text()),
        (first, "(edit) the first")
    );
    let too_long = "x".repeat(Config::default().max_message_len + 1);
    let code = ErrorCode::MessageTooLong {
        max: Config::default().max_message_len as u32,
    };
    refusal(&mut bob, edit(second, &too_long), code).await;

    // Reactions toggle, and whoever sees the message sees the whole list.
    send(&mut dave, react(second, "👍")).await;
    assert_eq!(reactions(&mut bob, second).await, [said("👍", &["dave"])]);
    send(&mut carol, react(second, "👍")).await;
    assert_eq!(
        reactions(&mut bob, second).await,
        [said("👍", &["dave", "carol"])]
    );
    send(&mut dave, react(second, "👍")).await;
    assert_eq!(reactions(&mut bob, second).await, [said("👍", &["carol"])]);
    send(&mut dave, react(first, "🎉")).await;
    assert_eq!(reactions(&mut carol, first).await, [said("🎉", &["dave"])]);
    // Not a member of #rust: Eve cannot see it, so she cannot react to it.
    let refused = refusal(&mut eve, react(second, "👎"), ErrorCode::NotAllowed).await;
    assert!(refused.contains("cannot see"), "{refused}");
    let refused = refusal(
        &mut dave,
        react(second, "two words"),
        ErrorCode::InvalidText,
    )
    .await;
    assert!(refused.contains("one emoji"), "{refused}");
    refusal(
        &mut dave,
        react(second, &"🎉".repeat(9)),
        ErrorCode::InvalidText,
    )
    .await;

    // A reply carries the id it answers.
    let reply = chat_core::protocol::Outgoing {
        tag: 77,
        to: Target::Room("rust".into()),
        body: Body::Text("agreed".into()),
        attrs: vec![MessageAttr::ReplyTo(first)],
    };
    send(&mut carol, ClientFrame::Send(reply)).await;
    let got = expect_text(&mut dave, "agreed").await;
    assert_eq!(MessageAttr::reply_to(&got.attrs), Some(first));
    let agreed = got.id;
    send(&mut bob, react(agreed, "🙌")).await;
    assert_eq!(reactions(&mut dave, agreed).await, [said("🙌", &["bob"])]);
    still_chatting(&mut bob, &mut eve, "bystanders chat on").await;

    let log = server.stop().await;
    assert_eq!(log.iter().filter(|e| e["kind"] == "edited").count(), 1);
    assert_eq!(log.iter().filter(|e| e["kind"] == "reacted").count(), 5);

    // After a restart: the history has the new text, then the edit and the reactions.
    let server = TestServer::start_with(on_file(&db)).await;
    let mut dave = from(&server, "127.0.0.4", "dave").await;
    join(&mut dave, "rust").await;
    // The recent message kept in memory comes back with its reactions, loaded at start.
    assert_eq!(reactions(&mut dave, agreed).await, [said("🙌", &["bob"])]);
    let page = ClientFrame::History {
        room: "rust".into(),
        before: None,
        limit: 50,
    };
    send(&mut dave, page).await;
    match expect(
        &mut dave,
        "a history page",
        |f| matches!(f, ServerFrame::History { messages, .. } if messages.len() == 3),
    )
    .await
    {
        ServerFrame::History { messages, .. } => {
            let texts: Vec<&str> = messages.iter().map(|m| m.body.text()).collect();
            assert_eq!(texts, ["the first", "second", "agreed"]);
        }
        _ => unreachable!(),
    }
    assert_eq!(edited(&mut dave, first).await.0, "the first");
    assert_eq!(reactions(&mut dave, first).await, [said("🎉", &["dave"])]);
    assert_eq!(reactions(&mut dave, second).await, [said("👍", &["carol"])]);
    server.stop().await;
    let stored = rusqlite::Connection::open(&db).expect("open");
    let old_text: i64 = stored
        .query_row(
            "SELECT count(*) FROM messages WHERE body LIKE '%teh%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(old_text, 0, "the text before the edit is not kept");
}

/// Waits, moving the paused clock on, for `client` to be told message `id` was deleted; who
/// deleted it.
async fn deleted_on_paused_clock(client: &mut TcpClient, id: MessageId) -> String {
    let wait = async {
        loop {
            match client.events.next().await {
                Ok(Some(ServerFrame::Deleted { id: i, by, .. })) if i == id => return by,
                Ok(Some(_)) => {}
                other => panic!("waiting for the deletion of {id}: {other:?}"),
            }
        }
    };
    let step = Duration::from_millis(500);
    advance_until(wait, step, Duration::from_secs(600)).await
}

fn expiring(text: &str, secs: u32) -> ClientFrame {
    ClientFrame::Send(chat_core::protocol::Outgoing {
        tag: 5,
        to: Target::Room("lobby".into()),
        body: Body::Text(text.into()),
        attrs: vec![MessageAttr::ExpiresIn(secs)],
    })
}

fn stored_count(db: &Path, text: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM messages WHERE body = ?1",
            [text],
            |r| r.get(0),
        )
        .expect("count")
}

#[tokio::test(start_paused = true)]
async fn an_expiring_message_goes_from_every_client_and_the_store_when_it_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = from(&server, "127.0.0.1", "alice").await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    for secs in [0, MAX_EXPIRY_SECS + 1] {
        let refused = refusal(&mut alice, expiring("never", secs), ErrorCode::InvalidText).await;
        assert!(refused.contains("1 second to 30 days"), "{refused}");
    }
    send(&mut alice, expiring("gone in 30 s", 30)).await;
    let id = expect_text(&mut bob, "gone in 30 s").await.id;
    expect_text(&mut alice, "gone in 30 s").await;
    assert_eq!(
        deleted_on_paused_clock(&mut bob, id).await,
        "",
        "it expired"
    );
    assert_eq!(deleted_on_paused_clock(&mut alice, id).await, "");
    still_chatting(&mut alice, &mut bob, "still here").await;

    // One that outlives the server expires after the restart.
    send(&mut alice, expiring("gone in 2 min", 120)).await;
    let later = expect_text(&mut bob, "gone in 2 min").await.id;
    expect_text(&mut alice, "gone in 2 min").await;
    server.stop().await;
    assert_eq!(stored_count(&db, "gone in 30 s"), 0);
    assert_eq!(stored_count(&db, "gone in 2 min"), 1);

    let server = TestServer::start_with(on_file(&db)).await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    assert_eq!(deleted_on_paused_clock(&mut carol, later).await, "");
    server.stop().await;
    assert_eq!(stored_count(&db, "gone in 2 min"), 0);
}

#[tokio::test]
async fn a_guest_who_takes_a_departed_guests_nickname_is_not_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(on_file(&dir.path().join("chat.db"))).await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    bob.sender
        .private(&["carol"], "secret plans")
        .await
        .expect("pm");
    let his = expect_text(&mut carol, "secret plans").await.id;
    carol
        .sender
        .private(&["bob"], "for bob only")
        .await
        .expect("pm");
    let hers = expect_text(&mut bob, "for bob only").await.id;
    quit(bob).await;
    let mut mallory = from(&server, "127.0.0.9", "bob").await;
    assert_eq!(mallory.welcome.nick, "bob", "the nickname is free again");
    let edit = ClientFrame::Edit {
        id: his,
        text: "mine now".into(),
    };
    let refused = refusal(&mut mallory, edit, ErrorCode::NotAllowed).await;
    assert!(refused.contains("only its author"), "{refused}");
    let refused = refusal(&mut mallory, react(hers, "👀"), ErrorCode::NotAllowed).await;
    assert!(refused.contains("cannot see"), "{refused}");
    // Carol's edit of what she sent the first bob does not reach the second.
    let edit = ClientFrame::Edit {
        id: hers,
        text: "for bob only, edited".into(),
    };
    send(&mut carol, edit).await;
    assert_eq!(edited(&mut carol, hers).await.0, "for bob only, edited");
    carol.sender.say("lobby", "marker").await.expect("say");
    loop {
        match mallory.events.next().await.expect("read").expect("open") {
            ServerFrame::Message(m) if m.body.text() == "marker" => break,
            ServerFrame::Edited { id, .. } | ServerFrame::Reactions { id, .. } if id == hers => {
                panic!("the second bob was told of the first's message")
            }
            _ => {}
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_expiring_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c| {
        on_file(&db)(c);
        c.limits.expiring = 3;
        c.limits.expiring_per_address = 2;
    })
    .await;
    let mut alice = from(&server, "127.0.0.1", "alice").await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    for text in ["one", "two"] {
        send(&mut alice, expiring(text, MAX_EXPIRY_SECS)).await;
        expect_text(&mut bob, text).await;
    }
    // Alice's address has its share; bob's has not.
    let refused = refusal(
        &mut alice,
        expiring("three", MAX_EXPIRY_SECS),
        ErrorCode::Busy,
    )
    .await;
    assert!(refused.contains("your address has 2"), "{refused}");
    send(&mut bob, expiring("bob's", MAX_EXPIRY_SECS)).await;
    expect_text(&mut alice, "bob's").await;
    // The server's own limit: three wait.
    let refused = refusal(
        &mut carol,
        expiring("carol's", MAX_EXPIRY_SECS),
        ErrorCode::Busy,
    )
    .await;
    assert!(refused.contains("as many expiring messages"), "{refused}");
    // Messages without an expiry go on. (The share comes back as they expire: the unit test
    // of `Expiries`, on a paused clock.)
    still_chatting(&mut carol, &mut bob, "plain messages go on").await;
    still_chatting(&mut alice, &mut bob, "alice too").await;
    server.stop().await;
}

#[tokio::test]
async fn a_version_2_client_gets_a_notice_in_place_of_a_deleted_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(on_file(&dir.path().join("chat.db"))).await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    let mut dave = from(&server, "127.0.0.4", "dave").await;
    let (mut old, mut old_w) = raw_from("127.0.0.6", server.addr).await;
    old_w.write_all(&hello("oldie", 2)).await.expect("hello");
    loop {
        if let ServerFrame::Welcome(_) = old.recv().await.expect("read").expect("open") {
            break;
        }
    }
    bob.sender.say("lobby", "cheap watches").await.expect("say");
    let id = expect_text(&mut dave, "cheap watches").await.id;
    send(&mut bob, ClientFrame::Delete { id }).await;
    let notice = loop {
        match old.recv().await.expect("read").expect("open") {
            ServerFrame::Message(m) if m.body.text().starts_with("(message") => break m,
            ServerFrame::Deleted { .. } => panic!("a version 2 client knows no Deleted"),
            _ => {}
        }
    };
    assert_eq!(
        (notice.id, notice.from.as_str(), notice.body.text()),
        (id, "bob", "(message deleted)")
    );
    // The version 6 clients are told with `Deleted`, as before.
    expect(
        &mut dave,
        "Deleted",
        |f| matches!(f, ServerFrame::Deleted { id: i, by, .. } if *i == id && by == "bob"),
    )
    .await;
    still_chatting(&mut bob, &mut dave, "bystanders chat on").await;
    server.stop().await;
}
