//! Moderation, against in-process servers on port 0 with their databases in temp dirs: every
//! command allowed for the right role and refused for others, bans that hold across a new
//! nickname and a restart, mutes with the time left, `/nick`, `/away`, `/whois`, the fallbacks
//! for version 2 clients, and `chat-server admin` against a running server. Clients come from
//! different loopback addresses (127.0.0.x), which the server takes for different hosts.

use std::path::Path;

use chat_core::client::{ConnectOptions, TcpClient, handshake};
use chat_core::connection::Connection;
use chat_core::protocol::{
    ClientFrame, DisconnectReason, ErrorCode, HANDSHAKE_MAX_FRAME, ModAction, RejectReason,
    RelayHello, ServerFrame,
};
use chat_server::config::AdminCommand;
use chat_server::{Config, DbLocation};
use chat_testing::*;

fn on_file(path: &Path) -> impl FnOnce(&mut Config) + '_ {
    move |c: &mut Config| {
        generous_rate(c);
        c.db = DbLocation::File(path.to_owned());
    }
}

/// A server keeping its data in `db`, counting loopback addresses as different hosts.
async fn on_disk(db: &Path) -> TestServer {
    TestServer::start_with(|c| {
        on_file(db)(c);
        count_loopback(c);
    })
    .await
}

fn admin(db: &Path, command: AdminCommand) -> String {
    let mut out = Vec::new();
    chat_server::admin::run(db, &command, &mut out).expect("admin command");
    String::from_utf8(out).expect("utf-8")
}

async fn from(server: &TestServer, addr: &str, nick: &str) -> TcpClient {
    server
        .client_from(addr, nick, None)
        .await
        .unwrap_or_else(|e| panic!("{nick}: {e}"))
}

async fn refusal(client: &mut TcpClient, frame: ClientFrame) -> String {
    send(client, frame).await;
    let e = expect_error(client).await;
    assert_eq!(e.code, ErrorCode::NotAllowed, "{}", e.message);
    e.message
}

async fn notice(client: &mut TcpClient, action: ModAction) -> chat_core::protocol::ModNotice {
    match expect(
        client,
        "a moderation notice",
        |f| matches!(f, ServerFrame::Moderation(n) if n.action == action),
    )
    .await
    {
        ServerFrame::Moderation(n) => n,
        _ => unreachable!(),
    }
}

/// Alice registers, and `chat-server admin op` makes her a server operator while the server
/// runs: she sees herself among the lobby's operators.
async fn operator(server: &TestServer, db: &Path) -> TcpClient {
    let mut alice = from(server, "127.0.0.1", "alice").await;
    register(&mut alice, "alice-password").await;
    let shown = admin(
        db,
        AdminCommand::Op {
            nick: "alice".into(),
        },
    );
    assert!(shown.contains("alice is now a server operator"), "{shown}");
    expect(
        &mut alice,
        "the lobby's operators",
        |f| matches!(f, ServerFrame::Ops { ops, .. } if ops == &["alice".to_owned()]),
    )
    .await;
    alice
}

#[tokio::test]
async fn room_operators_kick_mute_and_lock_the_topic_and_others_are_refused() {
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        count_loopback(c);
    })
    .await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    let mut dave = from(&server, "127.0.0.4", "dave").await;
    // Whoever creates a room is its operator.
    join(&mut carol, "rust").await;
    expect(
        &mut carol,
        "carol is an operator",
        |f| matches!(f, ServerFrame::Ops { ops, .. } if ops == &["carol".to_owned()]),
    )
    .await;
    join(&mut bob, "rust").await;
    join(&mut dave, "rust").await;
    // Dave is not an operator: every action is refused, with the reason.
    let kick = |nick: &str| ClientFrame::Kick {
        room: Some("rust".into()),
        nick: nick.into(),
        reason: "spam".into(),
    };
    assert!(
        refusal(&mut dave, kick("bob"))
            .await
            .contains("only operators of #rust")
    );
    let mute = ClientFrame::Mute {
        room: Some("rust".into()),
        nick: "bob".into(),
        duration_secs: Some(600),
        reason: "calm down".into(),
    };
    assert!(
        refusal(&mut dave, mute.clone())
            .await
            .contains("only operators")
    );
    let lock = ClientFrame::LockTopic {
        room: "rust".into(),
        locked: true,
    };
    assert!(
        refusal(&mut dave, lock.clone())
            .await
            .contains("only operators")
    );
    let op = ClientFrame::Op {
        room: Some("rust".into()),
        nick: "dave".into(),
        grant: true,
    };
    assert!(
        refusal(&mut dave, op.clone())
            .await
            .contains("only operators")
    );
    let ban = ClientFrame::Ban {
        target: "bob".into(),
        duration_secs: None,
        reason: String::new(),
    };
    assert!(
        refusal(&mut carol, ban)
            .await
            .contains("only server operators")
    );
    assert!(
        refusal(&mut carol, ClientFrame::ListBans)
            .await
            .contains("only server operators")
    );
    // Lifting bans, muting everywhere and naming server operators are server operators' too.
    for frame in [
        ClientFrame::Unban {
            target: "bob".into(),
        },
        ClientFrame::Unmute {
            room: None,
            nick: "bob".into(),
        },
        ClientFrame::Op {
            room: None,
            nick: "dave".into(),
            grant: true,
        },
    ] {
        assert!(
            refusal(&mut carol, frame)
                .await
                .contains("only server operators")
        );
    }
    // Unmuting in the room is its operators'.
    let unmute = ClientFrame::Unmute {
        room: Some("rust".into()),
        nick: "bob".into(),
    };
    assert!(refusal(&mut dave, unmute).await.contains("only operators"));
    let server_kick = ClientFrame::Kick {
        room: None,
        nick: "bob".into(),
        reason: String::new(),
    };
    assert!(
        refusal(&mut carol, server_kick)
            .await
            .contains("server operators")
    );

    // Carol mutes bob in #rust: his messages there are refused with the time left; in the
    // lobby he still speaks.
    send(&mut carol, mute).await;
    let n = notice(&mut bob, ModAction::Mute).await;
    assert_eq!((n.by.as_str(), n.room.as_deref()), ("carol", Some("rust")));
    assert!(n.until.is_some());
    bob.sender.say("rust", "still here?").await.expect("say");
    let e = expect_error(&mut bob).await;
    assert_eq!(e.code, ErrorCode::NotAllowed);
    assert!(
        e.message.contains("muted in #rust by carol for") && e.message.contains("min"),
        "{}",
        e.message
    );
    bob.sender.say("lobby", "lobby is fine").await.expect("say");
    expect_text(&mut dave, "lobby is fine").await;

    // The topic locked: dave may not set it, carol may.
    send(&mut carol, lock).await;
    notice(&mut dave, ModAction::LockTopic).await;
    let topic = |t: &str| ClientFrame::SetTopic {
        room: "rust".into(),
        topic: t.into(),
    };
    assert!(refusal(&mut dave, topic("mine")).await.contains("locked"));
    send(&mut carol, topic("Rust only")).await;
    expect(
        &mut dave,
        "the topic",
        |f| matches!(f, ServerFrame::Topic { topic, .. } if topic == "Rust only"),
    )
    .await;

    // Carol makes dave an operator; then dave may kick bob, who is put out of #rust only.
    send(&mut carol, op).await;
    expect(
        &mut dave,
        "dave is an operator",
        |f| matches!(f, ServerFrame::Ops { ops, .. } if ops.contains(&"dave".to_owned())),
    )
    .await;
    send(&mut dave, kick("bob")).await;
    let n = notice(&mut bob, ModAction::Kick).await;
    assert_eq!((n.by.as_str(), n.target.as_str()), ("dave", "bob"));
    expect(
        &mut bob,
        "Parted",
        |f| matches!(f, ServerFrame::Parted { room } if room == "rust"),
    )
    .await;
    match expect(
        &mut carol,
        "bob left",
        |f| matches!(f, ServerFrame::Left { nick, .. } if nick == "bob"),
    )
    .await
    {
        ServerFrame::Left { message, .. } => {
            assert!(message.contains("kicked by dave: spam"), "{message}")
        }
        _ => unreachable!(),
    }
    // Bob is still online, and a bystander is unaffected.
    still_chatting(&mut bob, &mut carol, "still here").await;
    let log = server.stop().await;
    let kicks: Vec<_> = log
        .iter()
        .filter(|e| e["kind"] == "moderation" && e["action"] == "kick")
        .collect();
    assert_eq!(kicks.len(), 1);
    assert_eq!(
        (kicks[0]["by"].as_str(), kicks[0]["target"].as_str()),
        (Some("dave"), Some("bob"))
    );
    assert_eq!(kicks[0]["reason"], "spam");
}

#[tokio::test]
async fn a_ban_holds_under_another_nickname_and_across_a_restart_until_lifted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = on_disk(&db).await;
    let mut alice = operator(&server, &db).await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    // Alice may not ban her own address.
    let own = ClientFrame::Ban {
        target: "127.0.0.1".into(),
        duration_secs: None,
        reason: String::new(),
    };
    assert!(refusal(&mut alice, own).await.contains("ban you too"));
    send(
        &mut alice,
        ClientFrame::Ban {
            target: "bob".into(),
            duration_secs: Some(3600),
            reason: "flooding".into(),
        },
    )
    .await;
    notice(&mut alice, ModAction::Ban).await;
    let (reason, message) = bye(&read_to_end(&mut bob).await);
    assert_eq!(reason, DisconnectReason::Banned);
    assert!(message.contains("flooding"), "{message}");
    // Back under another nickname, from the same address: refused with the reason and the
    // time left.
    let (reason, message) = refused(server.client_from("127.0.0.2", "robert", None).await);
    assert!(
        matches!(reason, RejectReason::Banned { until: Some(_) }),
        "{reason:?}"
    );
    assert!(
        message.contains("flooding") && message.contains("ends in"),
        "{message}"
    );
    // Carol, elsewhere, chats on.
    still_chatting(&mut alice, &mut carol, "carol unaffected").await;
    send(&mut alice, ClientFrame::ListBans).await;
    match expect(&mut alice, "the bans", |f| {
        matches!(f, ServerFrame::Bans(_))
    })
    .await
    {
        ServerFrame::Bans(bans) => {
            assert_eq!(bans.len(), 1);
            assert_eq!(bans[0].target, "address 127.0.0.2");
        }
        _ => unreachable!(),
    }
    server.stop().await;

    // After a restart the ban holds; `chat-server admin` lists it and lifts it while the
    // server runs.
    let server = on_disk(&db).await;
    let (reason, _) = refused(server.client_from("127.0.0.2", "bob", None).await);
    assert!(matches!(reason, RejectReason::Banned { .. }));
    let listed = admin(&db, AdminCommand::Bans);
    assert!(
        listed.contains("address 127.0.0.2") && listed.contains("flooding"),
        "{listed}"
    );
    admin(
        &db,
        AdminCommand::Unban {
            target: "127.0.0.2".into(),
        },
    );
    // The server notices the admin tool's change at its next look (every 2 s).
    let deadline = std::time::Instant::now() + WAIT;
    let bob = loop {
        match server.client_from("127.0.0.2", "bob", None).await {
            Ok(bob) => break bob,
            // A few tries a second: more would meet the limit on connections per minute.
            Err(_) if std::time::Instant::now() < deadline => {
                let wait = || std::thread::sleep(std::time::Duration::from_millis(300));
                tokio::task::spawn_blocking(wait).await.expect("sleep");
            }
            Err(e) => panic!("still refused after the unban: {e}"),
        }
    };
    quit(bob).await;
    let log = server.stop().await;
    assert!(
        log.iter()
            .any(|e| e["kind"] == "moderation" && e["action"] == "unban" && e["by"] == "admin")
    );
}

#[tokio::test]
async fn server_operators_kick_mute_and_name_operators_and_old_clients_get_a_bye() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = on_disk(&db).await;
    let mut alice = operator(&server, &db).await;
    // A version 2 client is kicked off the server: a Bye with the reason in words.
    let (mut r, mut w) = raw_from("127.0.0.2", server.addr).await;
    tokio::io::AsyncWriteExt::write_all(&mut w, &hello("oldie", 2))
        .await
        .expect("hello");
    match r.recv().await {
        Ok(Some(ServerFrame::Welcome(welcome))) => assert_eq!(welcome.version, 2),
        other => panic!("{other:?}"),
    }
    send(
        &mut alice,
        ClientFrame::Kick {
            room: None,
            nick: "oldie".into(),
            reason: "off you go".into(),
        },
    )
    .await;
    let (reason, message) = bye(&frames_until_close(&mut r).await);
    assert_eq!(reason, DisconnectReason::ConnectionClosed);
    assert_eq!(message, "kicked by alice: off you go");
    // The others are told who kicked and why.
    match expect(
        &mut alice,
        "oldie left",
        |f| matches!(f, ServerFrame::Left { nick, .. } if nick == "oldie"),
    )
    .await
    {
        ServerFrame::Left { message, .. } => assert_eq!(message, "kicked by alice: off you go"),
        _ => unreachable!(),
    }
    // A server-wide mute covers private messages too; unmuted, bob speaks again.
    let mut bob = from(&server, "127.0.0.3", "bob").await;
    let mute = ClientFrame::Mute {
        room: None,
        nick: "bob".into(),
        duration_secs: None,
        reason: String::new(),
    };
    send(&mut alice, mute).await;
    notice(&mut bob, ModAction::Mute).await;
    bob.sender.private(&["alice"], "psst").await.expect("msg");
    assert!(
        expect_error(&mut bob)
            .await
            .message
            .contains("until an operator unmutes you")
    );
    send(
        &mut alice,
        ClientFrame::Unmute {
            room: None,
            nick: "bob".into(),
        },
    )
    .await;
    notice(&mut bob, ModAction::Unmute).await;
    bob.sender.private(&["alice"], "psst").await.expect("msg");
    expect_text(&mut alice, "psst").await;
    // A server operator can only be an account.
    let op_bob = ClientFrame::Op {
        room: None,
        nick: "bob".into(),
        grant: true,
    };
    assert!(refusal(&mut alice, op_bob).await.contains("only accounts"));
    server.stop().await;
    let shown = admin(
        &db,
        AdminCommand::Account {
            nick: "alice".into(),
        },
    );
    assert!(shown.contains("server operator:  yes"), "{shown}");
}

#[tokio::test]
async fn nick_changes_reach_every_roster_and_relayed_guests_stay_starred() {
    let server = TestServer::start_with(|c| {
        generous_rate(c);
        c.relay_secret = Some("s3cret-s3cret-s3cret-s3cret-s3cret".into());
    })
    .await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // A version 2 client in the lobby.
    let (mut old, mut w) = raw(server.addr).await;
    tokio::io::AsyncWriteExt::write_all(&mut w, &hello("oldie", 2))
        .await
        .expect("hello");
    send(
        &mut bob,
        ClientFrame::Nick {
            nick: "robert".into(),
        },
    )
    .await;
    for client in [&mut alice, &mut bob] {
        expect(client, "the change", |f| {
            matches!(f, ServerFrame::NickChanged { old, new, .. } if old == "bob" && new == "robert")
        })
        .await;
    }
    // The version 2 client sees bob leave and robert come.
    let mut seen = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(f)) = old.recv().await {
            let done = matches!(&f, ServerFrame::Joined { user, .. } if user.nick == "robert");
            seen.push(f);
            if done {
                break;
            }
        }
    })
    .await
    .expect("robert joins, for a version 2 client");
    assert!(seen.iter().any(|f| matches!(f,
        ServerFrame::Left { nick, message, .. } if nick == "bob" && message == "is now robert")));
    // Taken, or an account's, or starred: refused.
    register(&mut alice, "alice-pw").await;
    assert!(
        refusal(
            &mut bob,
            ClientFrame::Nick {
                nick: "alice".into()
            }
        )
        .await
        .contains("taken")
    );
    assert!(
        refusal(&mut bob, ClientFrame::Nick { nick: "*x".into() })
            .await
            .contains("reserved")
    );
    alice
        .sender
        .private(&["robert"], "found you")
        .await
        .expect("msg");
    expect_text(&mut bob, "found you").await;
    // A relayed guest renames and keeps the star.
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let conn = Connection::tcp(stream, HANDSHAKE_MAX_FRAME).expect("conn");
    let relay = RelayHello {
        secret: "s3cret-s3cret-s3cret-s3cret-s3cret".into(),
        peer_addr: "203.0.113.9:5000".into(),
        relay: "test-relay".into(),
    };
    let mut guest = handshake(conn, Some(relay), &ConnectOptions::new("*gus"))
        .await
        .expect("a relayed guest");
    send(
        &mut guest,
        ClientFrame::Nick {
            nick: "gustav".into(),
        },
    )
    .await;
    expect(&mut alice, "the guest's change", |f| {
        matches!(f, ServerFrame::NickChanged { old, new, .. } if old == "*gus" && new == "*gustav")
    })
    .await;
    // Who is who.
    send(
        &mut alice,
        ClientFrame::Whois {
            nick: "*gustav".into(),
        },
    )
    .await;
    match expect(&mut alice, "whois", |f| matches!(f, ServerFrame::Whois(_))).await {
        ServerFrame::Whois(w) => {
            assert!(w.relayed && !w.account && !w.operator);
            assert_eq!(w.rooms_in_common, ["lobby"]);
        }
        _ => unreachable!(),
    }
    let log = server.stop().await;
    assert!(
        log.iter()
            .any(|e| e["kind"] == "renamed" && e["old"] == "bob" && e["new"] == "robert")
    );
}

#[tokio::test]
async fn away_is_told_to_the_room_and_once_to_each_private_sender() {
    let server = TestServer::start_with(generous_rate).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    send(
        &mut bob,
        ClientFrame::Away {
            message: "at lunch".into(),
        },
    )
    .await;
    expect(&mut alice, "bob is away", |f| {
        matches!(f, ServerFrame::Away { nick, message: Some(m) } if nick == "bob" && m == "at lunch")
    })
    .await;
    for text in ["one", "two"] {
        alice.sender.private(&["bob"], text).await.expect("msg");
        expect_text(&mut bob, text).await;
    }
    // The away message came back once, after the first message only.
    send(&mut alice, ClientFrame::Whois { nick: "bob".into() }).await;
    let mut replies = 0;
    let whois = loop {
        let f = expect(&mut alice, "anything", |_| true).await;
        match f {
            ServerFrame::Whois(_) => break f,
            ServerFrame::Away { .. } => replies += 1,
            _ => {}
        }
    };
    assert_eq!(replies, 1, "the away message comes back once");
    match whois {
        ServerFrame::Whois(w) => assert_eq!(w.away.as_deref(), Some("at lunch")),
        _ => unreachable!(),
    }
    send(
        &mut bob,
        ClientFrame::Away {
            message: String::new(),
        },
    )
    .await;
    expect(
        &mut alice,
        "bob is back",
        |f| matches!(f, ServerFrame::Away { nick, message: None } if nick == "bob"),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn admin_deletes_accounts_and_rooms_of_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = TestServer::start_with(on_file(&db)).await;
    let mut bob = server.client("bob").await;
    register(&mut bob, "bob-password").await;
    join(&mut bob, "attic").await;
    // Its echo comes once stored, after the room and its operator.
    bob.sender.say("attic", "dusty").await.expect("say");
    expect_text(&mut bob, "dusty").await;
    let listed = admin(&db, AdminCommand::Accounts);
    assert!(
        listed.contains("bob") && listed.contains("1 accounts"),
        "{listed}"
    );
    let rooms = admin(&db, AdminCommand::Rooms);
    assert!(
        rooms.contains("#attic") && rooms.contains("operators: bob"),
        "{rooms}"
    );
    // A new password, printed, replaces the old one.
    let reset = admin(
        &db,
        AdminCommand::ResetPassword {
            nick: "bob".into(),
            password_stdin: false,
        },
    );
    let new = reset
        .split("is: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the new password is printed");
    let (reason, _) = refused(login(&server, "bob", "bob-password").await);
    assert_eq!(reason, RejectReason::BadPassword);
    // Logging in with the new one replaces bob's connection; the new one goes on.
    let mut bob_before = bob;
    let mut bob = login(&server, "bob", new)
        .await
        .expect("the new password works");
    let (reason, _) = bye(&read_to_end(&mut bob_before).await);
    assert_eq!(reason, DisconnectReason::LoggedInElsewhere);
    join(&mut bob, "attic").await;
    admin(
        &db,
        AdminCommand::DeleteRoom {
            room: "#attic".into(),
        },
    );
    expect(
        &mut bob,
        "put out of #attic",
        |f| matches!(f, ServerFrame::Parted { room } if room == "attic"),
    )
    .await;
    admin(&db, AdminCommand::DeleteAccount { nick: "bob".into() });
    let (_, message) = bye(&read_to_end(&mut bob).await);
    assert!(message.contains("deleted"), "{message}");
    // The nickname is free, and a reset of a deleted account is refused.
    let carol = server.client("bob").await;
    assert_eq!(carol.welcome.nick, "bob");
    let mut out = Vec::new();
    let refused = chat_server::admin::run(
        &db,
        &AdminCommand::ResetPassword {
            nick: "bob".into(),
            password_stdin: false,
        },
        &mut out,
    );
    assert!(refused.expect_err("no such account").contains("no account"));
    server.stop().await;
}

#[tokio::test]
async fn room_operators_survive_a_restart_and_a_renamed_account_is_still_replaced_by_its_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = on_disk(&db).await;
    let mut carol = server.client("carol").await;
    register(&mut carol, "carol-password").await;
    join(&mut carol, "den").await;
    carol.sender.say("den", "mine").await.expect("say");
    expect_text(&mut carol, "mine").await;
    // Carol, renamed, is still logged in to her account: her next login replaces this one.
    send(
        &mut carol,
        ClientFrame::Nick {
            nick: "carol_away".into(),
        },
    )
    .await;
    expect(&mut carol, "renamed", |f| {
        matches!(f, ServerFrame::NickChanged { .. })
    })
    .await;
    let again = login(&server, "carol", "carol-password")
        .await
        .expect("login");
    let (reason, _) = bye(&read_to_end(&mut carol).await);
    assert_eq!(reason, DisconnectReason::LoggedInElsewhere);
    quit(again).await;
    server.stop().await;

    // After a restart her room is given back at login, with her as its operator.
    let server = on_disk(&db).await;
    let mut carol = login(&server, "carol", "carol-password")
        .await
        .expect("login");
    expect(&mut carol, "the den's operators", |f| {
        matches!(f, ServerFrame::Ops { room, ops } if room == "den" && ops == &["carol".to_owned()])
    })
    .await;
    server.stop().await;
}

async fn deleted(client: &mut TcpClient, id: u64) -> String {
    match expect(
        client,
        "Deleted",
        |f| matches!(f, ServerFrame::Deleted { id: i, .. } if *i == id),
    )
    .await
    {
        ServerFrame::Deleted { by, .. } => by,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn messages_are_deleted_by_their_author_or_an_operator_and_their_text_is_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    // One recent message per room in memory: older ones are looked up in the store.
    let server = TestServer::start_with(|c| {
        on_file(&db)(c);
        count_loopback(c);
        c.history_replay = 1;
    })
    .await;
    let mut carol = from(&server, "127.0.0.3", "carol").await;
    let mut bob = from(&server, "127.0.0.2", "bob").await;
    let mut dave = from(&server, "127.0.0.4", "dave").await;
    join(&mut carol, "rust").await;
    join(&mut bob, "rust").await;
    join(&mut dave, "rust").await;
    let spam = |text: &str| text.to_owned();
    let mut ids = Vec::new();
    for text in [spam("cheap watches"), spam("cheaper watches")] {
        bob.sender.say("rust", &text).await.expect("say");
        ids.push(expect_text(&mut bob, &text).await.id);
    }
    // Dave is neither its author nor an operator.
    let delete = |id| ClientFrame::Delete { id };
    assert!(
        refusal(&mut dave, delete(ids[1]))
            .await
            .contains("author or an operator")
    );
    // Carol, the room's operator, deletes the older one (in the store only), bob his newer one.
    send(&mut carol, delete(ids[0])).await;
    assert_eq!(deleted(&mut dave, ids[0]).await, "carol");
    send(&mut bob, delete(ids[1])).await;
    assert_eq!(deleted(&mut dave, ids[1]).await, "bob");
    assert!(
        refusal(&mut bob, delete(ids[1]))
            .await
            .contains("no message")
    );
    // A private message, deleted by its author.
    bob.sender
        .private(&["dave"], "psst, watches")
        .await
        .expect("private");
    let private = expect_text(&mut dave, "psst, watches").await.id;
    send(&mut bob, delete(private)).await;
    assert_eq!(deleted(&mut dave, private).await, "bob");
    // The text is gone from the history, there and after a restart.
    send(
        &mut dave,
        ClientFrame::History {
            room: "rust".into(),
            before: None,
            limit: 50,
        },
    )
    .await;
    match expect(&mut dave, "history", |f| {
        matches!(f, ServerFrame::History { .. })
    })
    .await
    {
        ServerFrame::History { messages, .. } => {
            assert!(
                messages.iter().all(|m| !m.body.text().contains("watches")),
                "{messages:?}"
            );
        }
        _ => unreachable!(),
    }
    let log = server.stop().await;
    assert_eq!(log.iter().filter(|e| e["kind"] == "deleted").count(), 3);
    let stored = rusqlite::Connection::open(&db).expect("open");
    let left: i64 = stored
        .query_row(
            "SELECT count(*) FROM messages WHERE body LIKE '%watches%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(left, 0, "the deleted text is gone from the database");
}
