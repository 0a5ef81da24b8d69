//! The store and its thread, against real database files.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use chat_core::protocol::{Body, ChatMessage, MessageAttr, Target};
use chrono::{TimeZone, Utc};

use super::*;

fn room_message(id: u64, room: &str, text: &str) -> Write {
    Write::Message {
        message: Arc::new(ChatMessage {
            id,
            at: Utc
                .timestamp_millis_opt(1_700_000_000_000 + id as i64)
                .unwrap(),
            from: "alice".into(),
            to: Target::Room(room.into()),
            body: Body::Text(text.into()),
            attrs: Vec::new(),
            tag: None,
        }),
        room: Some(room.into()),
        offline_for: Vec::new(),
    }
}

fn lobby() -> Write {
    Write::Room(StoredRoom {
        key: "lobby".into(),
        name: "lobby".into(),
        topic: String::new(),
        by_guest: false,
    })
}

#[test]
fn an_empty_database_gets_the_whole_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("chat.db")).unwrap();
    assert_eq!(
        store.schema_version().unwrap() as usize,
        sqlite::MIGRATIONS.len()
    );
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::metadata(dir.path().join("chat.db"))
            .unwrap()
            .permissions();
        assert_eq!(
            perms.mode() & 0o777,
            0o600,
            "private messages are not world-readable"
        );
    }
}

#[test]
fn a_database_of_the_previous_schema_is_upgraded_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    {
        let old = SqliteStore::open_at_version(&path, 1).unwrap();
        assert_eq!(old.schema_version().unwrap(), 1);
        // The room as the first schema stores it (no column for its creator).
        old.connection()
            .execute(
                "INSERT INTO rooms (key, name, topic, created_ms) VALUES ('rust', 'Rust', '', 0)",
                [],
            )
            .unwrap();
        // A message and an account as the first schema stores them.
        old.connection()
            .execute_batch(
                "INSERT INTO messages (id, at_ms, sender, room, recipients, action, body, attrs) \
                 VALUES (7, 0, 'alice', 'lobby', NULL, 0, 'from before', NULL); \
                 INSERT INTO messages (id, at_ms, sender, room, recipients, action, body, attrs) \
                 VALUES (6, 0, 'Carol', NULL, 'Bob\nDave', 0, 'private, from before', NULL); \
                 INSERT INTO accounts (key, nick, hash, created_ms) VALUES ('bob', 'Bob', 'h', 0);",
            )
            .unwrap();
    }
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap() as usize,
        sqlite::MIGRATIONS.len()
    );
    let snap = store.load(10).unwrap();
    let (rust, usage) = &snap.rooms[0];
    assert_eq!((rust.name.as_str(), rust.by_guest), ("Rust", false));
    assert_eq!(usage.accounts, 0);
    assert_eq!(snap.next_message_id, 8);
    assert_eq!(snap.accounts, ["Bob"]);
    assert_eq!(snap.recent[0].1[0].body.text(), "from before");
    assert!(!snap.recent[0].2, "nothing older");
    // The new table works.
    let mut pm = room_message(8, "lobby", "queued");
    if let Write::Message {
        message,
        room,
        offline_for,
    } = &mut pm
    {
        Arc::make_mut(message).to = Target::Users(vec!["Bob".into()]);
        *room = None;
        offline_for.push("bob".into());
    }
    store.apply(&[pm]).unwrap();
    assert_eq!(store.offline("bob", 100).unwrap().len(), 1);
    // Private messages stored before private history are in it.
    let (group, more) = store
        .private_history("bob", &["dave".into(), "CAROL".into()], None, 10)
        .unwrap();
    let texts: Vec<&str> = group.iter().map(|m| m.body.text()).collect();
    assert_eq!((texts, more), (vec!["private, from before"], false));
    let (pair, _) = store
        .private_history("bob", &["alice".into()], None, 10)
        .unwrap();
    assert_eq!(pair.iter().map(|m| m.id).collect::<Vec<_>>(), [8]);
}

#[test]
fn a_database_from_a_newer_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    drop(SqliteStore::open(&path).unwrap());
    let db = rusqlite::Connection::open(&path).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("upgrade the server"), "{err}");
}

#[test]
fn history_pages_go_back_in_order() {
    let mut store = SqliteStore::in_memory().unwrap();
    let mut writes = vec![lobby()];
    writes.extend((1..=25).map(|i| room_message(i, "lobby", &format!("m{i}"))));
    writes.push(room_message(26, "other", "elsewhere"));
    store.apply(&writes).unwrap();
    let text = |ms: &[ChatMessage]| {
        ms.iter()
            .map(|m| m.body.text().to_owned())
            .collect::<Vec<_>>()
    };
    let (page, more) = store.history("lobby", None, 10).unwrap();
    assert!(more);
    assert_eq!(
        text(&page),
        (16..=25).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    let (page, more) = store.history("lobby", Some(page[0].id), 10).unwrap();
    assert!(more);
    assert_eq!(page.first().unwrap().id, 6);
    let (page, more) = store.history("lobby", Some(6), 10).unwrap();
    assert!(!more);
    assert_eq!(text(&page), ["m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(page[0].to, Target::Room("lobby".into()));
    assert_eq!(page[0].at.timestamp_millis(), 1_700_000_000_001);
}

#[test]
fn messages_keep_their_body_kind_recipients_and_attributes() {
    let mut store = SqliteStore::in_memory().unwrap();
    let message = ChatMessage {
        id: 3,
        at: Utc::now(),
        from: "*guest".into(),
        to: Target::Users(vec!["ann".into(), "Bob".into()]),
        body: Body::Action("waves\nat you".into()),
        attrs: vec![MessageAttr::ReplyTo(1), MessageAttr::ExpiresIn(60)],
        tag: None,
    };
    store
        .apply(&[Write::Message {
            message: Arc::new(message.clone()),
            room: None,
            offline_for: vec!["ann".into(), "bob".into()],
        }])
        .unwrap();
    let ann = store.offline("ann", 100).unwrap();
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0].to, message.to);
    assert_eq!(ann[0].body, message.body);
    assert_eq!(ann[0].attrs, message.attrs);
    assert_eq!(ann[0].at.timestamp_millis(), message.at.timestamp_millis());
    // Kept until received, then gone, for that account only.
    assert_eq!(store.offline("ann", 100).unwrap().len(), 1);
    store
        .apply(&[Write::OfflineReceived {
            account: "ann".into(),
            up_to: 3,
        }])
        .unwrap();
    assert!(store.offline("ann", 100).unwrap().is_empty());
    assert_eq!(store.offline("bob", 100).unwrap().len(), 1);
}

#[test]
fn accounts_keep_their_rooms_and_passwords_change() {
    let mut store = SqliteStore::in_memory().unwrap();
    store
        .apply(&[
            Write::Account {
                key: "zoe".into(),
                nick: "Zoe".into(),
                hash: HashedPassword::from_stored("one".into()),
            },
            Write::Membership {
                account: "zoe".into(),
                room: "rust".into(),
                joined: true,
            },
            Write::Membership {
                account: "zoe".into(),
                room: "go".into(),
                joined: true,
            },
            Write::Membership {
                account: "zoe".into(),
                room: "go".into(),
                joined: false,
            },
            Write::Password {
                key: "zoe".into(),
                hash: HashedPassword::from_stored("two".into()),
            },
        ])
        .unwrap();
    let zoe = store.account("zoe").unwrap().unwrap();
    assert_eq!(zoe.nick, "Zoe");
    assert_eq!(zoe.hash.as_str(), "two");
    assert_eq!(zoe.rooms, ["rust"]);
    assert!(store.account("nobody").unwrap().is_none());
}

#[test]
fn a_failed_batch_applies_nothing() {
    let mut store = SqliteStore::in_memory().unwrap();
    store.apply(&[room_message(1, "lobby", "one")]).unwrap();
    // The second write reuses id 1: the whole batch fails.
    let err = store.apply(&[
        room_message(2, "lobby", "two"),
        room_message(1, "lobby", "dup"),
    ]);
    assert!(err.is_err());
    let (page, _) = store.history("lobby", None, 10).unwrap();
    assert_eq!(page.len(), 1);
}

#[tokio::test]
async fn the_store_thread_reports_every_write_in_order_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("chat.db")).unwrap();
    let reported = Arc::new(Mutex::new(Vec::new()));
    let batches = Arc::new(Mutex::new(0usize));
    let (seen, count) = (reported.clone(), batches.clone());
    let (handle, thread) = StoreHandle::spawn(
        Box::new(store),
        Box::new(move |result, reports: Vec<u64>| {
            assert!(result.is_ok());
            *count.lock().unwrap() += 1;
            seen.lock().unwrap().extend(reports);
        }),
    )
    .unwrap();
    // Many concurrent writers.
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let handle = handle.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..250u64 {
                let id = 1 + w * 250 + i;
                handle
                    .write(room_message(id, "lobby", "x"), Some(id))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // A read runs after the writes queued before it.
    let (page, more) = handle
        .read(|s| s.history("lobby", None, 5000).unwrap())
        .await
        .unwrap();
    assert!(!more);
    assert_eq!(page.len(), 2000);
    drop(handle);
    thread.join().unwrap();
    let mut reported = reported.lock().unwrap().clone();
    assert_eq!(reported.len(), 2000);
    // Each writer's reports come in the order it queued them.
    for w in 0..8u64 {
        let mine: Vec<u64> = reported
            .iter()
            .copied()
            .filter(|id| (id - 1) / 250 == w)
            .collect();
        assert!(mine.windows(2).all(|p| p[0] < p[1]));
    }
    reported.sort_unstable();
    assert_eq!(reported, (1..=2000).collect::<Vec<_>>());
    assert!(*batches.lock().unwrap() >= 1);
}

#[test]
fn retention_deletes_old_messages_crowded_rooms_and_the_oldest_beyond_the_size() {
    let mut store = SqliteStore::in_memory().unwrap();
    let day = std::time::Duration::from_secs(86_400);
    // 30 messages of 100 bytes in "busy", 5 in "quiet"; ids are their times' order.
    let mut writes: Vec<Write> = (1..=30)
        .map(|id| room_message(id, "busy", &"b".repeat(100)))
        .collect();
    writes.extend((31..=35).map(|id| room_message(id, "quiet", &"q".repeat(100))));
    let mut pm = room_message(36, "lobby", "kept for bob");
    if let Write::Message {
        message,
        room,
        offline_for,
    } = &mut pm
    {
        Arc::make_mut(message).to = Target::Users(vec!["bob".into()]);
        *room = None;
        offline_for.push("bob".into());
    }
    writes.push(pm);
    store.apply(&writes).unwrap();
    let count = |store: &SqliteStore| -> i64 {
        store
            .connection()
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let at = |id: i64| Utc.timestamp_millis_opt(1_700_000_000_000 + id).unwrap();
    let keep_all = Retention {
        max_age: None,
        per_room: None,
        max_bytes: None,
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep_all, at(100)).unwrap().messages, 0);
    // Per room: "busy" keeps its newest 10.
    let per_room = Retention {
        per_room: Some(10),
        ..keep_all.clone()
    };
    assert_eq!(store.prune(&per_room, at(100)).unwrap().messages, 20);
    let (busy, _) = store.history("busy", None, 100).unwrap();
    assert_eq!(busy.first().map(|m| m.id), Some(21));
    // By size: about 1 KB of text kept, the oldest going first.
    let by_size = Retention {
        max_bytes: Some(1000),
        ..keep_all.clone()
    };
    let pruned = store.prune(&by_size, at(100)).unwrap();
    assert_eq!(pruned.up_to, Some(26));
    assert_eq!(count(&store), 10);
    // By age: a day after the last message, everything goes, the kept message too.
    let by_age = Retention {
        max_age: Some(day),
        ..keep_all.clone()
    };
    let later = at(36) + chrono::Duration::days(1) + chrono::Duration::milliseconds(1);
    assert_eq!(store.prune(&by_age, later).unwrap().up_to, Some(36));
    assert_eq!(count(&store), 0);
    assert!(store.offline("bob", 10).unwrap().is_empty());
}

#[test]
fn a_deleted_room_takes_its_messages_and_memberships() {
    let mut store = SqliteStore::in_memory().unwrap();
    store
        .apply(&[
            Write::Room(StoredRoom {
                key: "tmp".into(),
                name: "tmp".into(),
                topic: String::new(),
                by_guest: true,
            }),
            room_message(1, "tmp", "gone soon"),
            Write::Membership {
                account: "zoe".into(),
                room: "tmp".into(),
                joined: true,
            },
        ])
        .unwrap();
    let snap = store.load(10).unwrap();
    let (tmp, usage) = &snap.rooms[0];
    assert!(tmp.by_guest);
    assert_eq!(usage.accounts, 1);
    // Its creation (now) is later than its message (stamped in 2023).
    assert!(usage.last_used.timestamp_millis() > 1_700_000_000_001);
    store
        .apply(&[Write::DeleteRoom { key: "tmp".into() }])
        .unwrap();
    let snap = store.load(10).unwrap();
    assert!(snap.rooms.is_empty());
    assert!(snap.recent.is_empty());
}

#[test]
fn an_edit_keeps_only_the_new_text_and_reactions_go_with_their_message() {
    let mut store = SqliteStore::in_memory().unwrap();
    let at = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
    let react = |id, emoji: &str, nick: &str, add| Write::React {
        id,
        emoji: emoji.into(),
        nick: nick.into(),
        add,
        at,
    };
    store
        .apply(&[
            lobby(),
            room_message(1, "lobby", "teh text"),
            room_message(2, "lobby", "other"),
            Write::EditMessage {
                id: 1,
                text: "the text".into(),
                by: "alice".into(),
                at,
            },
            react(1, "👍", "Bob", true),
            react(1, "👍", "carol", true),
            react(1, "🎉", "bob", true),
            react(1, "🎉", "BOB", false),
            react(2, "👀", "bob", true),
            // A reaction to a message that is not there is not kept.
            react(9, "👀", "bob", true),
        ])
        .unwrap();
    let (messages, _) = store.history("lobby", None, 10).unwrap();
    assert_eq!(messages[0].body.text(), "the text");
    let notes = store.notes(&[1, 2, 9]).unwrap();
    assert_eq!(notes.len(), 2);
    let (id, first) = &notes[0];
    assert_eq!(*id, 1);
    assert_eq!(first.edited.as_ref().map(|e| e.by.as_str()), Some("alice"));
    assert_eq!(first.reactions.len(), 1);
    assert_eq!(first.reactions[0].nicks, ["Bob", "carol"]);
    store.apply(&[Write::DeleteMessage { id: 2 }]).unwrap();
    assert_eq!(store.notes(&[2]).unwrap(), []);
    let left: i64 = store
        .connection()
        .query_row("SELECT count(*) FROM reactions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 2, "the deleted message's reaction went with it");
}

#[test]
fn expired_messages_are_gone_at_load_and_the_others_are_listed() {
    let mut store = SqliteStore::in_memory().unwrap();
    let expiring = |id: u64, secs: u32, ago_secs: i64| {
        let mut w = room_message(id, "lobby", "temporary");
        if let Write::Message { message, .. } = &mut w {
            let m = Arc::make_mut(message);
            m.at = Utc::now() - chrono::Duration::seconds(ago_secs);
            m.attrs = vec![MessageAttr::ExpiresIn(secs)];
        }
        w
    };
    store
        .apply(&[
            lobby(),
            expiring(1, 60, 120),
            expiring(2, 600, 60),
            room_message(3, "lobby", "for good"),
        ])
        .unwrap();
    let snap = store.load(10).unwrap();
    let ids: Vec<u64> = snap.recent[0].1.iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        [2, 3],
        "the expired one is gone before anything is loaded"
    );
    assert_eq!(snap.expiring.len(), 1);
    assert_eq!(snap.expiring[0].0, 2);
}

#[test]
fn the_search_index_follows_messages_stored_edited_and_deleted_before_or_after_indexing() {
    let mut store = SqliteStore::in_memory().unwrap();
    store.apply(&[lobby()]).unwrap();
    let found = |store: &mut SqliteStore, pattern: &str| -> Vec<u64> {
        let scope = SearchScope {
            rooms: [("lobby".to_owned(), "lobby".to_owned())].into(),
            account: None,
        };
        let query = crate::search::Query::parse(pattern).unwrap();
        let (messages, _) = store.search(&scope, &query, None, 10).unwrap();
        messages.iter().map(|m| m.id).collect()
    };
    store
        .apply(&[
            room_message(1, "lobby", "coffee one"),
            room_message(2, "lobby", "coffee two"),
        ])
        .unwrap();
    assert_eq!(store.index_backlog().unwrap(), 2);
    assert_eq!(store.index(10).unwrap(), 2);
    assert_eq!(store.index(10).unwrap(), 0, "up to date");
    // Stored and deleted before being indexed; an indexed one edited, another deleted.
    store
        .apply(&[room_message(3, "lobby", "coffee three")])
        .unwrap();
    store
        .apply(&[
            Write::DeleteMessage { id: 3 },
            Write::DeleteMessage { id: 2 },
            Write::EditMessage {
                id: 1,
                text: "tea one".into(),
                by: "alice".into(),
                at: Utc::now(),
            },
            room_message(4, "lobby", "coffee four"),
        ])
        .unwrap();
    // A search indexes what waits first.
    assert_eq!(found(&mut store, "coffee"), [4]);
    assert_eq!(found(&mut store, "tea"), [1]);
    assert_eq!(store.index_backlog().unwrap(), 0);
    // The last word is a word's beginning, looked up as the few indexed words that begin so,
    // or as a prefix when they are many or it has accents (the index has none).
    store
        .apply(&[
            room_message(5, "lobby", "coffeehouse opens"),
            room_message(6, "lobby", "café au lait"),
        ])
        .unwrap();
    assert_eq!(found(&mut store, "coff"), [5, 4]);
    assert_eq!(found(&mut store, "caf"), [6]);
    assert_eq!(found(&mut store, "café"), [6]);
    assert!(found(&mut store, "cofx").is_empty());
    let many: Vec<Write> = (0..40)
        .map(|i| room_message(10 + i, "lobby", &format!("w{i:02} said so")))
        .collect();
    store.apply(&many).unwrap();
    assert_eq!(found(&mut store, "w").len(), 10, "a prefix of 40 words");
    assert_eq!(
        found(&mut store, "w3"),
        [49, 48, 47, 46, 45, 44, 43, 42, 41, 40]
    );
    let words = |prefix: &str| super::search::words_beginning(store.connection(), prefix).unwrap();
    let coff = Some(vec!["coffee".to_owned(), "coffeehouse".to_owned()]);
    assert_eq!(words("coff"), coff, "looked up as these two words");
    assert_eq!(words("cofx"), Some(Vec::new()));
    assert_eq!(words("w"), None, "40 words: looked up as a prefix");
    assert_eq!(words("café"), None, "accents: looked up as a prefix");
    // A vowel sign separates the index's words: the pattern's are looked up the same way.
    store
        .apply(&[room_message(60, "lobby", "नमस्ते राम!")])
        .unwrap();
    assert_eq!(found(&mut store, "राम"), [60]);
    let integrity: String = store
        .connection()
        .query_row(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1) \
             RETURNING 'ok'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| e.to_string());
    assert_eq!(integrity, "ok");
}
