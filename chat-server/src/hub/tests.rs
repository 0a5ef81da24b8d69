//! The hub's behaviour, driven by commands without sockets: ordering of the batched fan-out,
//! joins within a batch, and acknowledgement only once stored.

use std::sync::Arc;

use chat_core::protocol::{DEFAULT_ROOM, DisconnectReason, Outgoing, ServerFrame, Target};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::outbox::Outbox;
use crate::store::{Snapshot, StoreHandle};
use chat_core::frame::{LEN_PREFIX, decode_payload};
use chat_core::protocol::Body;

fn hub() -> Hub {
    Hub::new(
        Arc::new(Config::default()),
        Arc::new(Stats::default()),
        None,
        None,
    )
}

fn join(hub: &mut Hub, conn: ConnId, nick: &str) -> Arc<Outbox> {
    let outbox = Arc::new(Outbox::new(1 << 20));
    let (joined, _rx) = oneshot::channel();
    hub.handle(Cmd::Join(Box::new(JoinRequest {
        conn,
        version: chat_core::protocol::PROTOCOL_VERSION,
        nick: nick.to_owned(),
        client: "test".to_owned(),
        addr: "127.0.0.1:1".parse().expect("addr"),
        relayed: false,
        via: None,
        outbox: outbox.clone(),
        login: None,
        joined,
    })));
    outbox
}

fn say(conn: ConnId, to: Target, text: &str) -> Cmd {
    Cmd::Send {
        conn,
        msg: Outgoing {
            tag: 1,
            to,
            body: Body::Text(text.to_owned()),
            attrs: Vec::new(),
        },
        arrived: tokio::time::Instant::now(),
    }
}

fn lobby() -> Target {
    Target::Room(DEFAULT_ROOM.to_owned())
}

/// Every frame queued for `outbox`, described briefly, and how many pieces they came in.
fn frames(outbox: &Outbox) -> (Vec<String>, usize) {
    let pieces = outbox.queued();
    let mut out = Vec::new();
    for piece in &pieces {
        let mut rest = &piece[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..LEN_PREFIX].try_into().expect("prefix"));
            let end = LEN_PREFIX + len as usize;
            let frame: ServerFrame = decode_payload(&rest[LEN_PREFIX..end]).expect("decode");
            out.push(match frame {
                ServerFrame::Welcome(w) => format!("welcome {}", w.nick),
                ServerFrame::Joined { user, .. } => format!("joined {}", user.nick),
                ServerFrame::Message(m) => format!("{} {}", m.from, m.body.text()),
                ServerFrame::Left { nick, .. } => format!("left {nick}"),
                ServerFrame::History { messages, .. } => {
                    format!("history {}", messages.len())
                }
                other => format!("{other:?}"),
            });
            rest = &rest[end..];
        }
    }
    (out, pieces.len())
}

#[test]
fn a_burst_to_a_room_is_one_piece_per_member_in_order() {
    let mut hub = hub();
    let alice = join(&mut hub, 1, "alice");
    let bob = join(&mut hub, 2, "bob");
    hub.settle();
    let before = frames(&bob).1;
    for i in 0..50 {
        hub.handle(say(1, lobby(), &format!("m{i}")));
    }
    hub.settle();
    let (seen, pieces) = frames(&bob);
    assert_eq!(pieces, before + 1, "one piece for the whole burst");
    let said: Vec<String> = (0..50).map(|i| format!("alice m{i}")).collect();
    assert_eq!(seen[seen.len() - 50..], said[..]);
    // The sender gets its echoes, not the broadcast.
    assert_eq!(
        frames(&alice).0.iter().filter(|f| *f == "alice m0").count(),
        1
    );
    assert_eq!(hub.stats.snapshot().deliveries, 100);
}

#[test]
fn private_messages_and_room_messages_keep_their_order() {
    let mut hub = hub();
    let _alice = join(&mut hub, 1, "alice");
    let bob = join(&mut hub, 2, "bob");
    hub.handle(say(1, lobby(), "one"));
    hub.handle(say(1, Target::Users(vec!["bob".into()]), "two"));
    hub.handle(say(1, lobby(), "three"));
    hub.settle();
    let (seen, _) = frames(&bob);
    assert_eq!(
        seen,
        ["welcome bob", "alice one", "alice two", "alice three"]
    );
}

#[test]
fn joins_in_one_batch_are_announced_in_one_piece() {
    let mut hub = hub();
    let alice = join(&mut hub, 1, "alice");
    hub.settle();
    let before = frames(&alice).1;
    let newcomers: Vec<Arc<Outbox>> = (2..12)
        .map(|i| join(&mut hub, i, &format!("n{i}")))
        .collect();
    hub.settle();
    let (seen, pieces) = frames(&alice);
    assert_eq!(pieces, before + 1);
    assert_eq!(seen.len(), 1 + 10);
    // Each newcomer: its welcome, then the joins that came after its own.
    for (i, outbox) in newcomers.iter().enumerate() {
        let (seen, _) = frames(outbox);
        assert_eq!(seen.len(), 1 + (9 - i), "{seen:?}");
        assert_eq!(seen[0], format!("welcome n{}", i + 2));
    }
}

#[test]
fn who_joins_in_the_middle_of_a_batch_sees_nothing_from_before() {
    let mut hub = hub();
    let _alice = join(&mut hub, 1, "alice");
    let bob = join(&mut hub, 2, "bob");
    hub.handle(say(1, lobby(), "before"));
    let carol = join(&mut hub, 3, "carol");
    let dave = join(&mut hub, 4, "dave");
    hub.handle(say(1, lobby(), "after"));
    hub.handle(Cmd::Leave {
        conn: 2,
        reason: DisconnectReason::Quit,
        message: "bye".into(),
    });
    hub.settle();
    assert_eq!(
        frames(&carol).0,
        [
            "welcome carol",
            "history 1",
            "joined dave",
            "alice after",
            "left bob"
        ]
    );
    assert_eq!(
        frames(&dave).0,
        ["welcome dave", "history 1", "alice after", "left bob"]
    );
    // Bob got everything up to his departure, then his goodbye.
    let (seen, _) = frames(&bob);
    assert_eq!(
        seen[1..],
        [
            "alice before",
            "joined carol",
            "joined dave",
            "alice after",
            "Bye { reason: Quit, message: \"bye\" }"
        ]
    );
}

#[test]
fn leaving_and_entering_a_room_within_one_batch_gets_only_what_came_after() {
    let mut hub = hub();
    let _alice = join(&mut hub, 1, "alice");
    let bob = join(&mut hub, 2, "bob");
    let room = || Target::Room("r".into());
    let enter = |conn| Cmd::EnterRoom {
        conn,
        room: "r".into(),
    };
    hub.handle(enter(1));
    hub.handle(enter(2));
    hub.settle();
    let before = frames(&bob).0.len();
    hub.handle(say(1, room(), "one"));
    hub.handle(Cmd::PartRoom {
        conn: 2,
        room: "r".into(),
    });
    hub.handle(say(1, room(), "two"));
    hub.handle(enter(2));
    hub.handle(Cmd::PartRoom {
        conn: 2,
        room: "r".into(),
    });
    hub.handle(enter(2));
    hub.handle(say(1, room(), "three"));
    hub.settle();
    let seen = frames(&bob).0;
    let live: Vec<&String> = seen[before..]
        .iter()
        .filter(|f| f.starts_with("alice "))
        .collect();
    // "two" was said while bob was out: he gets it only in the history replayed when he
    // came back, never live, and nothing twice.
    assert_eq!(live, ["alice one", "alice three"], "{seen:?}");
}

/// The echo (the acknowledgement) leaves the hub only with the store's report that the
/// message was committed; a failed commit turns it into an error and out of the replay.
#[test]
fn a_message_is_acknowledged_only_once_its_commit_is_reported() {
    let (reports_tx, reports) = std::sync::mpsc::channel();
    let store = crate::store::SqliteStore::in_memory().expect("store");
    let (handle, _thread) = StoreHandle::spawn(
        Box::new(store),
        Box::new(move |result, acks| {
            let _ = reports_tx.send((result.map_err(|e| e.to_string()), acks));
        }),
    )
    .expect("store thread");
    let (me, _rx) = mpsc::channel(8);
    let mut hub = hub().with_store(handle, Snapshot::default(), me.downgrade());
    let alice = join(&mut hub, 1, "alice");
    let bob = join(&mut hub, 2, "bob");
    hub.settle();
    let echoes = |outbox: &Outbox| {
        frames(outbox)
            .0
            .iter()
            .filter(|f| f.starts_with("alice "))
            .count()
    };
    hub.handle(say(1, lobby(), "stored"));
    hub.settle();
    // Bob has it at once; Alice's echo waits for the commit.
    assert!(frames(&bob).0.contains(&"alice stored".to_owned()));
    assert_eq!(echoes(&alice), 0);
    let (result, acks) = reports
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the commit is reported");
    assert_eq!(result, Ok(()));
    hub.handle(Cmd::Stored { result, acks });
    hub.settle();
    assert_eq!(echoes(&alice), 1);

    hub.handle(say(1, lobby(), "lost"));
    hub.settle();
    let (_, acks) = reports
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the commit is reported");
    hub.handle(Cmd::Stored {
        result: Err("disk full".into()),
        acks,
    });
    hub.settle();
    assert_eq!(
        echoes(&alice),
        1,
        "no echo for a message that was not stored"
    );
    assert!(
        frames(&alice)
            .0
            .iter()
            .any(|f| f.contains("Busy") && f.contains("disk full"))
    );
    let replay: Vec<&str> = hub.rooms[DEFAULT_ROOM]
        .recent
        .iter()
        .map(|m| m.body.text())
        .collect();
    assert_eq!(replay, ["stored"]);
}

#[test]
fn a_recipient_acknowledging_what_it_never_read_cannot_make_the_server_queue_more() {
    use chat_core::protocol::{ClientFrame, FILE_CHUNK, FILE_WINDOW};
    let mut hub = hub();
    let _alice = join(&mut hub, 1, "alice");
    // Bob's queue is never read (no socket): whatever is queued for him stays.
    let bob = join(&mut hub, 2, "bob");
    let size = 16 * FILE_WINDOW;
    let file = |frame| Cmd::File { conn: 0, frame };
    let by = |conn, cmd: Cmd| match cmd {
        Cmd::File { frame, .. } => Cmd::File { conn, frame },
        other => other,
    };
    hub.handle(by(
        1,
        file(ClientFrame::FileOffer {
            tag: 1,
            to: "bob".into(),
            name: "big.bin".into(),
            size,
            sha256: [0; 32],
        }),
    ));
    let id = 1;
    hub.handle(by(2, file(ClientFrame::FileAnswer { id, accept: true })));
    let mut sent = 0u64;
    while sent < size && hub.transfers.has(id) {
        let chunk = ClientFrame::FileChunk {
            id,
            data: vec![0; FILE_CHUNK],
        };
        hub.handle(by(1, file(chunk)));
        sent += FILE_CHUNK as u64;
        // Bob says he has it all, at once.
        hub.handle(by(2, file(ClientFrame::FileAck { id, received: sent })));
    }
    assert!(!hub.transfers.has(id), "the transfer was cancelled");
    assert!(
        bob.bulk_bytes() as u64 <= 4 * FILE_WINDOW,
        "{}",
        bob.bulk_bytes()
    );
    assert!(sent < size);
    // An empty chunk ends a transfer too.
    hub.handle(by(
        1,
        file(ClientFrame::FileOffer {
            tag: 2,
            to: "bob".into(),
            name: "x".into(),
            size: 10,
            sha256: [0; 32],
        }),
    ));
    let id = 2;
    hub.handle(by(2, file(ClientFrame::FileAnswer { id, accept: true })));
    let empty = ClientFrame::FileChunk { id, data: vec![] };
    hub.handle(by(1, file(empty)));
    assert!(!hub.transfers.has(id));
}
