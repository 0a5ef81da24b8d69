//! Private history against in-process servers on port 0 with their databases in temp dirs: an
//! account pages back through each of its private conversations after a restart, a group's
//! apart from a pair's, and only since it exists; a guest has none; deleted messages are gone.
//! Search finds, a page at a time, the stored messages of the searcher's rooms and private
//! conversations that the pattern matches.

use std::path::Path;

use chat_core::client::TcpClient;
use chat_core::protocol::{ChatMessage, ClientFrame, ErrorCode, MessageId, ServerFrame};
use chat_server::{Config, DbLocation};
use chat_testing::*;

fn on_file(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        generous_rate(c);
        count_loopback(c);
        c.db = DbLocation::File(path.to_owned());
    }
}

async fn from(server: &TestServer, addr: &str, nick: &str, password: Option<&str>) -> TcpClient {
    server
        .client_from(addr, nick, password)
        .await
        .unwrap_or_else(|e| panic!("{nick}: {e}"))
}

/// Asks for a page of the conversation with `with` and returns it.
async fn page(
    client: &mut TcpClient,
    with: &[&str],
    before: Option<MessageId>,
    limit: u32,
) -> (Vec<ChatMessage>, bool) {
    let with: Vec<String> = with.iter().map(|n| (*n).to_owned()).collect();
    let asked = with.clone();
    send(
        client,
        ClientFrame::PrivateHistory {
            with,
            before,
            limit,
        },
    )
    .await;
    match expect(
        client,
        "a page of private history",
        |f| matches!(f, ServerFrame::PrivateHistory { with, .. } if *with == asked),
    )
    .await
    {
        ServerFrame::PrivateHistory { messages, more, .. } => (messages, more),
        _ => unreachable!(),
    }
}

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.text()).collect()
}

#[tokio::test]
async fn an_account_pages_through_its_private_conversations_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = from(&server, "127.0.0.2", "alice", None).await;
    let mut bob = from(&server, "127.0.0.3", "bob", None).await;
    let mut carol = from(&server, "127.0.0.4", "carol", None).await;
    // Before alice has an account: not hers to read back later.
    alice
        .sender
        .private(&["bob"], "as a guest")
        .await
        .expect("pm");
    expect_text(&mut bob, "as a guest").await;
    register(&mut alice, "alice-password").await;
    register(&mut bob, "bob-password").await;

    alice.sender.private(&["bob"], "one").await.expect("pm");
    expect_text(&mut bob, "one").await;
    bob.sender.private(&["Alice"], "two").await.expect("pm");
    expect_text(&mut alice, "two").await;
    alice
        .sender
        .private(&["bob", "carol"], "to both")
        .await
        .expect("pm");
    expect_text(&mut carol, "to both").await;
    carol
        .sender
        .private(&["alice"], "from carol")
        .await
        .expect("pm");
    expect_text(&mut alice, "from carol").await;
    alice.sender.private(&["bob"], "oops").await.expect("pm");
    let oops = expect_text(&mut bob, "oops").await.id;
    alice.sender.private(&["bob"], "three").await.expect("pm");
    expect_text(&mut bob, "three").await;
    send(&mut alice, ClientFrame::Delete { id: oops }).await;
    expect(
        &mut bob,
        "the deletion",
        |f| matches!(f, ServerFrame::Deleted { id, .. } if *id == oops),
    )
    .await;

    // A guest has no private history, and is told why.
    send(
        &mut carol,
        ClientFrame::PrivateHistory {
            with: vec!["alice".into()],
            before: None,
            limit: 50,
        },
    )
    .await;
    let refused = expect_error(&mut carol).await;
    assert_eq!(refused.code, ErrorCode::NotAllowed);
    assert!(refused.message.contains("accounts"), "{}", refused.message);
    still_chatting(&mut alice, &mut carol, "carol is unaffected").await;
    server.stop().await;

    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = from(&server, "127.0.0.2", "alice", Some("alice-password")).await;
    let (all, more) = page(&mut alice, &["bob"], None, 50).await;
    assert_eq!(texts(&all), ["one", "two", "three"]);
    assert!(!more);
    let (group, _) = page(&mut alice, &["carol", "BOB"], None, 50).await;
    assert_eq!(texts(&group), ["to both"]);
    let (carols, _) = page(&mut alice, &["carol"], None, 50).await;
    assert_eq!(texts(&carols), ["from carol"]);

    // Paging back, a page at a time.
    let (newest, more) = page(&mut alice, &["bob"], None, 2).await;
    assert_eq!((texts(&newest), more), (vec!["two", "three"], true));
    let (older, more) = page(&mut alice, &["bob"], Some(newest[0].id), 2).await;
    assert_eq!((texts(&older), more), (vec!["one"], false));

    // Bob sees the same conversation from his side.
    let mut bob = from(&server, "127.0.0.3", "bob", Some("bob-password")).await;
    let (his, _) = page(&mut bob, &["alice"], None, 50).await;
    assert_eq!(texts(&his), ["one", "two", "three"]);
    server.stop().await;
}

/// Searches for `pattern` below `before`; the texts found, newest first, and where to go on.
async fn search(
    client: &mut TcpClient,
    pattern: &str,
    before: Option<MessageId>,
) -> (Vec<String>, Option<MessageId>) {
    send(
        client,
        ClientFrame::Search {
            pattern: pattern.into(),
            before,
            limit: 2,
        },
    )
    .await;
    let asked = pattern.to_owned();
    match expect(
        client,
        "search results",
        |f| matches!(f, ServerFrame::Found { pattern, .. } if *pattern == asked),
    )
    .await
    {
        ServerFrame::Found { messages, next, .. } => (
            messages.iter().map(|m| m.body.text().to_owned()).collect(),
            next,
        ),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn search_finds_what_the_searcher_may_read_and_the_pattern_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = from(&server, "127.0.0.2", "alice", None).await;
    let mut bob = from(&server, "127.0.0.3", "bob", None).await;
    register(&mut alice, "alice-password").await;
    join(&mut bob, "secret").await;
    for text in ["coffee at ten", "Coffee at eleven", "no coffees today"] {
        bob.sender.say("lobby", text).await.expect("say");
        expect_text(&mut alice, text).await;
    }
    bob.sender
        .say("secret", "coffee in the secret room")
        .await
        .expect("say");
    expect_text(&mut bob, "coffee in the secret room").await;
    bob.sender
        .private(&["alice"], "coffee, just us")
        .await
        .expect("pm");
    expect_text(&mut alice, "coffee, just us").await;
    // Between two others: not alice's to find.
    let mut dan = from(&server, "127.0.0.5", "dan", None).await;
    bob.sender
        .private(&["dan"], "coffee, just bob and dan")
        .await
        .expect("pm");
    expect_text(&mut dan, "coffee, just bob and dan").await;
    alice
        .sender
        .say("lobby", "gone soon: coffee")
        .await
        .expect("say");
    let gone = expect_text(&mut bob, "gone soon: coffee").await.id;
    send(&mut alice, ClientFrame::Delete { id: gone }).await;
    expect(
        &mut bob,
        "the deletion",
        |f| matches!(f, ServerFrame::Deleted { id, .. } if *id == gone),
    )
    .await;
    server.stop().await;

    // After a restart: the index is on disk. Alice is not in #secret: not hers to find.
    let server = TestServer::start_with(on_file(&db)).await;
    let mut alice = from(&server, "127.0.0.2", "alice", Some("alice-password")).await;
    let (first, next) = search(&mut alice, "coffee at (ten|eleven)", None).await;
    assert_eq!(first, ["Coffee at eleven", "coffee at ten"]);
    let (rest, next) = search(&mut alice, "coffee at (ten|eleven)", next).await;
    assert!(rest.is_empty() && next.is_none(), "{rest:?} {next:?}");
    // Word beginnings: "coffees" has "coffee"; the private message is alice's to find.
    let (newest, next) = search(&mut alice, "coffee", None).await;
    assert_eq!(newest, ["coffee, just us", "no coffees today"]);
    let (older, next) = search(&mut alice, "coffee", next).await;
    assert_eq!(older, ["Coffee at eleven", "coffee at ten"]);
    let (none, next) = search(&mut alice, "coffee", next).await;
    assert!(none.is_empty() && next.is_none(), "{none:?} {next:?}");
    // A guest finds the rooms' messages only, and the one in #secret only as a member.
    let mut carol = from(&server, "127.0.0.4", "carol", None).await;
    let (hers, _) = search(&mut carol, "just", None).await;
    assert!(hers.is_empty(), "{hers:?}");
    join(&mut carol, "secret").await;
    let (secret, _) = search(&mut carol, "secret", None).await;
    assert_eq!(secret, ["coffee in the secret room"]);
    // A pattern without a word is refused with the reason; the searcher can go on.
    send(
        &mut carol,
        ClientFrame::Search {
            pattern: r"\d+".into(),
            before: None,
            limit: 10,
        },
    )
    .await;
    let refused = expect_error(&mut carol).await;
    assert_eq!(refused.code, ErrorCode::InvalidText);
    assert!(refused.message.contains("words"), "{}", refused.message);
    still_chatting(&mut alice, &mut carol, "still here").await;
    server.stop().await;
}
