//! Attacks that fill what is kept for good: rooms created until none is left, and messages
//! written until the disk fills. Room creation is limited per guest and per address, a full
//! server makes way for a new room by deleting an unused one, unused rooms expire, and the
//! retention bounds what is stored.

use std::time::Duration;

use chat_core::protocol::{ClientFrame, ErrorCode, ServerFrame};
use chat_server::{Config, DbLocation};
use chat_testing::*;

async fn try_join(client: &mut chat_core::client::TcpClient, room: &str) -> Result<(), String> {
    send(client, ClientFrame::Join { room: room.into() }).await;
    match expect(client, "Entered or an error", |f| {
        matches!(f, ServerFrame::Entered { .. } | ServerFrame::Error(_))
    })
    .await
    {
        ServerFrame::Entered { .. } => Ok(()),
        ServerFrame::Error(e) => {
            assert_eq!(e.code, ErrorCode::NotAllowed, "{e:?}");
            Err(e.message)
        }
        _ => unreachable!(),
    }
}

async fn room_names(client: &mut chat_core::client::TcpClient) -> Vec<String> {
    send(client, ClientFrame::ListRooms).await;
    match expect(client, "Rooms", |f| matches!(f, ServerFrame::Rooms(_))).await {
        ServerFrame::Rooms(rooms) => rooms.into_iter().map(|r| r.name).collect(),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_guest_creates_a_few_rooms_an_account_more() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c: &mut Config| {
        generous_rate(c);
        c.db = DbLocation::File(db.clone());
        c.limits.rooms_per_guest = 3;
    })
    .await;
    let mut guest = server.client("guest").await;
    for room in ["g1", "g2", "g3"] {
        try_join(&mut guest, room)
            .await
            .expect("within a guest's share");
    }
    let refused = try_join(&mut guest, "g4").await.expect_err("over it");
    assert!(refused.contains("a guest may create 3 rooms"), "{refused}");
    // Joining rooms that exist is not creating them.
    let mut other = server.client("other").await;
    try_join(&mut other, "g1")
        .await
        .expect("join an existing room");
    // An account creates more.
    register(&mut other, "pw").await;
    for room in ["a1", "a2", "a3", "a4"] {
        try_join(&mut other, room).await.expect("an account's room");
    }
    server.stop().await;
}

#[tokio::test]
async fn one_address_creates_only_a_few_rooms_an_hour() {
    let server = TestServer::start_with(|c: &mut Config| {
        generous_rate(c);
        count_loopback(c);
        c.limits.rooms_per_hour = 4;
        c.limits.rooms_per_guest = 100;
        c.limits.connects_per_minute = 1000;
    })
    .await;
    // Two connections of one address share its hourly share.
    let mut a = server
        .client_from("127.0.0.2", "maker1", None)
        .await
        .expect("in");
    let mut b = server
        .client_from("127.0.0.2", "maker2", None)
        .await
        .expect("in");
    for room in ["m1", "m2"] {
        try_join(&mut a, room).await.expect("share");
        try_join(&mut b, &format!("{room}b")).await.expect("share");
    }
    let refused = try_join(&mut b, "m5")
        .await
        .expect_err("over the hour's share");
    assert!(
        refused.contains("your address created 4 rooms"),
        "{refused}"
    );
    // Another address is not affected.
    let mut bystander = server
        .client_from("127.0.0.3", "bob", None)
        .await
        .expect("in");
    try_join(&mut bystander, "bobs-room")
        .await
        .expect("another address");
    server.stop().await;
}

#[tokio::test]
async fn a_full_server_makes_way_for_a_new_room() {
    let server = TestServer::start_with(|c: &mut Config| {
        generous_rate(c);
        c.max_rooms = 4;
        c.limits.rooms_per_guest = 100;
    })
    .await;
    // Three rooms besides the lobby: two left empty by the guests who made them, one in use.
    let mut maker = server.client("maker").await;
    for room in ["old", "older"] {
        try_join(&mut maker, room).await.expect("room");
        send(&mut maker, ClientFrame::Part { room: room.into() }).await;
    }
    let mut bob = server.client("bob").await;
    try_join(&mut bob, "busy").await.expect("room");
    // A fourth: the empty room unused longest makes way; the room in use stays.
    try_join(&mut bob, "new").await.expect("made way");
    let rooms = room_names(&mut bob).await;
    assert!(rooms.contains(&"busy".to_owned()) && rooms.contains(&"new".to_owned()));
    assert!(!rooms.contains(&"old".to_owned()), "{rooms:?}");
    assert_eq!(rooms.len(), 4);
    // Every room in use: refused, and told why.
    try_join(&mut maker, "older").await.ok();
    let refused = try_join(&mut maker, "newer").await.expect_err("all in use");
    assert!(refused.contains("all in use"), "{refused}");
    assert!(server.stats().rooms_expired >= 1);
    server.stop().await;
}

#[tokio::test]
async fn unused_rooms_expire_and_rooms_with_accounts_stay() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c: &mut Config| {
        generous_rate(c);
        c.db = DbLocation::File(db.clone());
        c.retention.guest_room_expiry = Some(Duration::ZERO);
        c.retention.room_expiry = Some(Duration::ZERO);
        c.retention.every = Duration::from_millis(50);
    })
    .await;
    let mut guest = server.client("guest").await;
    try_join(&mut guest, "tmp").await.expect("room");
    let mut zoe = server.client("zoe").await;
    register(&mut zoe, "pw").await;
    try_join(&mut zoe, "zoes").await.expect("room");
    quit(zoe).await;
    send(&mut guest, ClientFrame::Part { room: "tmp".into() }).await;
    // The empty guest room goes; zoe's stays, for her next login.
    let gone = async {
        while room_names(&mut guest).await.contains(&"tmp".to_owned()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("the empty room expires");
    assert!(room_names(&mut guest).await.contains(&"zoes".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn the_retention_bounds_what_is_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(|c: &mut Config| {
        generous_rate(c);
        c.db = DbLocation::File(db.clone());
        c.retention.per_room = Some(50);
        c.retention.max_bytes = Some(200 * 1024);
        c.retention.every = Duration::from_millis(50);
    })
    .await;
    let mut writer = server.client("writer").await;
    let big = "w".repeat(4000);
    for i in 0..120 {
        writer
            .sender
            .say("lobby", format!("{i} {big}"))
            .await
            .expect("send");
        expect_text(&mut writer, &format!("{i} {big}")).await;
    }
    let stored = || -> i64 {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .expect("count")
    };
    let bounded = async {
        while stored() > 50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, bounded)
        .await
        .expect("retention applied");
    // What is kept is the newest, and a newcomer's replay has nothing older.
    let mut newcomer = server.client("newcomer").await;
    match expect(&mut newcomer, "history", |f| {
        matches!(f, ServerFrame::History { .. })
    })
    .await
    {
        ServerFrame::History { messages, .. } => {
            assert!(
                messages
                    .last()
                    .is_some_and(|m| m.body.text().starts_with("119 "))
            );
        }
        _ => unreachable!(),
    }
    server.stop().await;
}
