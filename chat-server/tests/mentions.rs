//! Mentions (protocol 7) against in-process servers on port 0 with their databases in temp
//! dirs: an account lists, a page at a time, the stored messages that mention its nickname as a
//! word since its previous login (also across a restart), from the rooms it is in and its
//! private conversations, not its own; a guest is refused with the reason, and a version 6
//! connection is told the request needs version 7.

use std::path::Path;

use chat_core::client::TcpClient;
use chat_core::frame::encode_frame;
use chat_core::protocol::{ChatMessage, ClientFrame, ErrorCode, MessageId, ServerFrame, Timestamp};
use chat_server::{Config, DbLocation};
use chat_testing::*;
use tokio::io::AsyncWriteExt;

fn on_file(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        generous_rate(c);
        count_loopback(c);
        c.db = DbLocation::File(path.to_owned());
    }
}

async fn from(server: &TestServer, addr: &str, nick: &str) -> TcpClient {
    server
        .client_from(addr, nick, None)
        .await
        .unwrap_or_else(|e| panic!("{nick}: {e}"))
}

type Mentions = (Option<Timestamp>, Vec<ChatMessage>, Option<MessageId>);

/// Asks for a page of mentions and returns it.
async fn mentions(client: &mut TcpClient, before: Option<MessageId>, limit: u32) -> Mentions {
    send(client, ClientFrame::Mentions { before, limit }).await;
    match expect(client, "mentions", |f| {
        matches!(f, ServerFrame::Mentions { .. })
    })
    .await
    {
        ServerFrame::Mentions {
            since,
            messages,
            next,
        } => (since, messages, next),
        _ => unreachable!(),
    }
}

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.text()).collect()
}

#[tokio::test]
async fn an_account_lists_what_mentioned_it_since_its_previous_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = from(&server, "127.0.0.2", "alice").await;
    let mut bob = from(&server, "127.0.0.3", "bob").await;
    register(&mut alice, "alice-password").await;
    bob.sender.say("lobby", "alice: one").await.expect("say");
    expect_text(&mut alice, "alice: one").await;
    quit(alice).await;
    quit(bob).await;
    server.stop().await;

    // After a restart: what mentioned her since she registered.
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = login(&server, "alice", "alice-password")
        .await
        .expect("login");
    let (since, found, next) = mentions(&mut alice, None, 10).await;
    assert!(since.is_some(), "her registration counts as a login");
    assert_eq!((texts(&found), next), (vec!["alice: one"], None));
    quit(alice).await;

    // While she is away: mentions in the lobby and in private, and what is not one.
    let mut bob = from(&server, "127.0.0.3", "bob").await;
    let mut carol = from(&server, "127.0.0.4", "carol").await;
    join(&mut carol, "den").await;
    for text in ["hi alice!", "alice_b is not her", "ALICE, still there?"] {
        bob.sender.say("lobby", text).await.expect("say");
        expect_text(&mut carol, text).await;
    }
    carol.sender.say("den", "alice in den").await.expect("say");
    expect_text(&mut carol, "alice in den").await;
    bob.sender
        .private(&["alice"], "psst alice")
        .await
        .expect("pm");
    expect_text(&mut bob, "psst alice").await;
    // Between two others, about her: not hers to read.
    bob.sender
        .private(&["carol"], "alice is late again")
        .await
        .expect("pm");
    expect_text(&mut carol, "alice is late again").await;

    let mut alice = login(&server, "alice", "alice-password")
        .await
        .expect("login");
    alice.sender.say("lobby", "alice here").await.expect("say");
    expect_text(&mut alice, "alice here").await;
    // Newest first, two at a time; not "alice: one" (before her previous login), not her
    // own message, not #den (she is not in it), not alice_b.
    let (since, found, next) = mentions(&mut alice, None, 2).await;
    assert!(since.is_some());
    assert_eq!(texts(&found), ["psst alice", "ALICE, still there?"]);
    let (_, older, next) = mentions(&mut alice, next, 2).await;
    assert_eq!((texts(&older), next), (vec!["hi alice!"], None));

    // A guest has none to list, and says so.
    send(
        &mut carol,
        ClientFrame::Mentions {
            before: None,
            limit: 5,
        },
    )
    .await;
    let e = expect_error(&mut carol).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(
        e.message.contains("accounts only") && !e.message.contains("  "),
        "{}",
        e.message
    );

    // A version 6 connection cannot ask.
    let (mut old, mut old_w) = raw_from("127.0.0.6", server.addr).await;
    old_w.write_all(&hello("oldie", 6)).await.expect("hello");
    let asked = ClientFrame::Mentions {
        before: None,
        limit: 5,
    };
    old_w
        .write_all(&encode_frame(&asked, 1024).expect("encode"))
        .await
        .expect("mentions");
    loop {
        match old.recv().await.expect("read").expect("open") {
            ServerFrame::Error(e) => {
                assert_eq!(e.code, ErrorCode::Unsupported);
                assert!(e.message.contains("version 7"), "{}", e.message);
                break;
            }
            ServerFrame::Mentions { .. } => panic!("a version 6 connection got Mentions"),
            _ => {}
        }
    }
    still_chatting(&mut bob, &mut carol, "bystanders chat on").await;
    server.stop().await;
}

#[tokio::test]
async fn an_account_without_a_recorded_login_lists_mentions_since_it_exists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut bob = from(&server, "127.0.0.3", "bob").await;
    bob.sender
        .say("lobby", "alice was a guest's name then")
        .await
        .expect("say");
    expect_text(&mut bob, "alice was a guest's name then").await;
    let mut alice = from(&server, "127.0.0.2", "alice").await;
    register(&mut alice, "alice-password").await;
    bob.sender
        .say("lobby", "alice: welcome")
        .await
        .expect("say");
    expect_text(&mut alice, "alice: welcome").await;
    quit(alice).await;
    quit(bob).await;
    server.stop().await;
    // As an account from before logins were recorded.
    rusqlite::Connection::open(&db)
        .expect("open")
        .execute("UPDATE accounts SET login_ms = NULL, login_id = NULL", [])
        .expect("forget the logins");

    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = login(&server, "alice", "alice-password")
        .await
        .expect("login");
    let (since, found, _) = mentions(&mut alice, None, 10).await;
    assert_eq!((since, texts(&found)), (None, vec!["alice: welcome"]));
    server.stop().await;
}
