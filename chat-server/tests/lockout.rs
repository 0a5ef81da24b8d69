//! Attacks that keep someone from logging in: rooms filled with the longest messages so that
//! what a login is sent (its Welcome, the recent messages of the lobby and of each of its
//! rooms) would pass the send queue. The replay is paced and cut to fit, the Welcome comes
//! first, and the account gets in, to every room.

use chat_core::protocol::ServerFrame;
use chat_server::Config;
use chat_testing::*;

/// Says `n` messages of `size` bytes in `room`, reading the echoes as they come.
async fn fill(client: &mut chat_core::client::TcpClient, room: &str, n: usize, size: usize) {
    for chunk in 0..n.div_ceil(50) {
        let count = 50.min(n - chunk * 50);
        for i in 0..count {
            let text = format!("{chunk}-{i}-{}", "x".repeat(size - 16));
            client.sender.say(room, text).await.expect("send");
        }
        for _ in 0..count {
            expect(
                client,
                "an echo",
                |f| matches!(f, ServerFrame::Message(m) if m.tag.is_some()),
            )
            .await;
        }
    }
}

fn config(c: &mut Config) {
    generous_rate(c);
    c.history_replay = 500;
    c.max_message_len = 4096;
}

#[tokio::test]
async fn rooms_full_of_the_longest_messages_do_not_lock_an_account_out() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c| {
        config(c);
        c.db = chat_server::DbLocation::File(db.clone());
    })
    .await;
    let rooms = ["r1", "r2", "r3", "r4", "r5", "r6"];
    let mut victim = server.client("victim").await;
    register(&mut victim, "victim's password").await;
    for room in rooms {
        join(&mut victim, room).await;
    }
    quit(victim).await;
    // The attacker fills the lobby and each room: 7 × 120 messages of 4 KB, over 3 MB, three
    // times the victim's send queue.
    let mut attacker = server.client("attacker").await;
    fill(&mut attacker, "lobby", 120, 4096).await;
    for room in rooms {
        join(&mut attacker, room).await;
        fill(&mut attacker, room, 120, 4096).await;
    }
    // The victim logs in: the Welcome comes first, then every room, with recent messages.
    let mut victim = login(&server, "victim", "victim's password")
        .await
        .expect("login");
    let mut entered = Vec::new();
    let mut history = 0;
    while entered.len() < rooms.len() || history < rooms.len() + 1 {
        match expect(&mut victim, "the replay", |_| true).await {
            ServerFrame::Entered { room, .. } => entered.push(room),
            ServerFrame::History { messages, more, .. } => {
                assert!(!messages.is_empty());
                assert!(more, "cut to fit: older messages are left for /history");
                history += 1;
            }
            ServerFrame::Bye { reason, message } => panic!("dropped: {reason:?} {message}"),
            _ => {}
        }
    }
    entered.sort();
    assert_eq!(entered, rooms);
    // Everyone still chats, the victim included.
    still_chatting(&mut attacker, &mut victim, "let them in").await;
    server.stop().await;
}

#[tokio::test]
async fn a_lobby_of_500_long_messages_does_not_lock_anyone_out() {
    let server = TestServer::start_with(config).await;
    let mut attacker = server.client("attacker").await;
    fill(&mut attacker, "lobby", 500, 4096).await;
    // Two megabytes of recent messages: a newcomer's first frame is its Welcome, and it stays.
    let mut newcomer = server.client("newcomer").await;
    match expect(&mut newcomer, "the lobby's history", |f| {
        matches!(f, ServerFrame::History { .. } | ServerFrame::Bye { .. })
    })
    .await
    {
        ServerFrame::History { messages, more, .. } => {
            assert!(more);
            assert!(messages.len() < 500, "cut to fit the send queue");
            assert!(
                messages
                    .last()
                    .is_some_and(|m| m.body.text().starts_with("9-49-"))
            );
        }
        other => panic!("{other:?}"),
    }
    still_chatting(&mut attacker, &mut newcomer, "welcome").await;
    server.stop().await;
}
