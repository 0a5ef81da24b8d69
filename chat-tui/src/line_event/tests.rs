//! How events read as text and as JSON.

use super::*;
use chrono::TimeZone;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 4, 31)
        .single()
        .expect("time")
}

fn msg(from: &str, to: Option<Vec<&str>>, text: &str, action: bool, own: bool) -> LineEvent {
    LineEvent::Message {
        time: at(),
        id: 1,
        from: from.into(),
        room: to.is_none().then(|| "lobby".into()),
        to: to.map(|t| t.into_iter().map(String::from).collect()),
        text: text.into(),
        action,
        own,
        history: false,
        reply_to: None,
        expires_in: None,
        quote: None,
    }
}

#[test]
fn message_lines() {
    let t = |e: LineEvent| e.to_text("me", true);
    assert_eq!(
        t(msg("alice", None, "hi", false, false)),
        "12:04:31 <alice> hi"
    );
    assert_eq!(
        t(msg("alice", None, "waves", true, false)),
        "12:04:31 * alice waves"
    );
    assert_eq!(
        t(msg("alice", Some(vec!["me"]), "psst", false, false)),
        "12:04:31 [PM alice → you] psst"
    );
    assert_eq!(
        t(msg(
            "alice",
            Some(vec!["me", "carol"]),
            "both",
            false,
            false
        )),
        "12:04:31 [PM alice → you, carol] both"
    );
    assert_eq!(
        t(msg("me", Some(vec!["bob"]), "hey", false, true)),
        "12:04:31 [PM you → bob] hey"
    );
    assert_eq!(
        t(msg("alice", None, "one\ntwo", false, false)),
        "12:04:31 <alice> one\n         two"
    );
}

#[test]
fn earlier_messages_of_another_day_show_their_date() {
    let earlier = |at: DateTime<Utc>| {
        let mut m = msg("alice", None, "one\ntwo", false, false);
        if let LineEvent::Message { time, history, .. } = &mut m {
            (*time, *history) = (at, true);
        }
        m
    };
    let t = |e: LineEvent| e.to_text_on("me", true, at());
    assert_eq!(
        t(earlier(at() - chrono::Duration::hours(2))),
        "10:04:31 (earlier) <alice> one\n         two",
        "today's: the time alone"
    );
    assert_eq!(
        t(earlier(at() - chrono::Duration::days(1))),
        "2026-11-20 12:04:31 (earlier) <alice> one\n                    two"
    );
    // Live messages never carry a date: they are from now.
    assert_eq!(
        msg("alice", None, "hi", false, false).to_text_on("me", true, at()),
        "12:04:31 <alice> hi"
    );
}

#[test]
fn nothing_received_can_drive_the_terminal() {
    let line = msg("alice", None, "\u{1b}[2Jboom\u{7}", false, false).to_text("me", true);
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    assert!(line.contains("boom"));
    // A hostile server cannot start a fake line through a nickname or a reason.
    let fake = msg("mallory\n12:00:00 <admin>", None, "x", false, false).to_text("me", true);
    assert_eq!(fake.lines().count(), 1, "{fake:?}");
    let spoof = msg("eve", None, "abc\u{202E}fed", false, false).to_text("me", true);
    assert!(!spoof.contains('\u{202E}'));
}

#[test]
fn presence_lines() {
    let left = |reason, message: &str| LineEvent::Leave {
        time: at(),
        room: "lobby".into(),
        nick: "bob".into(),
        reason,
        message: message.into(),
    };
    assert_eq!(
        left(DisconnectReason::Quit, "").to_text("me", true),
        "12:04:31 * bob left"
    );
    assert_eq!(
        left(DisconnectReason::Quit, "lunch").to_text("me", true),
        "12:04:31 * bob left (lunch)"
    );
    assert_eq!(
        left(DisconnectReason::SendQueueExceeded, "x").to_text("me", true),
        "12:04:31 * bob left (send queue exceeded)"
    );
    let join = LineEvent::Join {
        time: at(),
        room: "lobby".into(),
        nick: "*g".into(),
        relayed: true,
    };
    assert_eq!(
        join.to_text("me", true),
        "12:04:31 * *g joined (guest, via relay)"
    );
}

#[test]
fn json_has_a_type_and_millisecond_times() {
    let json: serde_json::Value =
        serde_json::from_str(&msg("alice", None, "hi", false, false).to_json()).expect("json");
    assert_eq!(json["type"], "message");
    assert_eq!(json["time"], "2026-11-21T12:04:31.000Z");
    assert_eq!(json["room"], "lobby");
}

#[test]
fn edits_reactions_expiries_and_replies_as_text_and_json() {
    let t = |e: &LineEvent| e.to_text_on("me", true, at());
    let edited = LineEvent::Edited {
        time: at(),
        id: 12,
        room: Some("lobby".into()),
        text: "fixed\u{1b}[2J".into(),
        by: "alice".into(),
    };
    assert_eq!(
        t(&edited),
        "12:04:31 * alice edited message 12: fixed\u{FFFD}[2J"
    );
    let json: serde_json::Value = serde_json::from_str(&edited.to_json()).expect("json");
    assert_eq!(json["type"], "edited");
    assert_eq!(
        (json["id"].as_u64(), &json["by"]),
        (Some(12), &"alice".into())
    );
    assert_eq!(json["room"], "lobby");

    let reactions = LineEvent::from_frame(
        ServerFrame::Reactions {
            id: 12,
            room: None,
            reactions: vec![
                chat_core::protocol::Reaction {
                    emoji: "👍".into(),
                    nicks: vec!["alice".into(), "bob".into()],
                },
                chat_core::protocol::Reaction {
                    emoji: "🎉".into(),
                    nicks: vec!["carol".into()],
                },
            ],
        },
        "me",
    );
    let text = t(&reactions[0]);
    assert!(
        text.ends_with("* reactions to message 12: 👍 2 (alice, bob)  🎉 1 (carol)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&reactions[0].to_json()).expect("json");
    assert_eq!(json["type"], "reactions");
    assert_eq!(json["reactions"][0]["emoji"], "👍");
    assert_eq!(json["reactions"][0]["count"], 2);
    assert_eq!(json["reactions"][1]["nicks"][0], "carol");
    let none = LineEvent::Reactions {
        time: at(),
        id: 12,
        room: None,
        reactions: Vec::new(),
    };
    assert_eq!(t(&none), "12:04:31 * message 12 has no reactions left");

    let expired = LineEvent::from_frame(
        ServerFrame::Deleted {
            id: 7,
            room: Some("lobby".into()),
            by: String::new(),
            at: at(),
        },
        "me",
    );
    assert_eq!(t(&expired[0]), "12:04:31 * message 7 expired");
    let json: serde_json::Value = serde_json::from_str(&expired[0].to_json()).expect("json");
    assert_eq!(
        (&json["type"], &json["expired"], &json["by"]),
        (&"deleted".into(), &true.into(), &"".into())
    );
    let deleted = LineEvent::Deleted {
        time: at(),
        id: 7,
        room: None,
        by: "op".into(),
        expired: false,
    };
    assert_eq!(t(&deleted), "12:04:31 * message 7 was deleted by op");

    // A reply shows what it answers: quoted when seen, else its id; an expiring message
    // shows how long it lives.
    let mut reply = msg("bob", None, "sure", false, false);
    if let LineEvent::Message {
        reply_to,
        expires_in,
        ..
    } = &mut reply
    {
        *reply_to = Some(3);
        *expires_in = Some(300);
    }
    assert_eq!(t(&reply), "12:04:31 <bob> (↳ #3) sure (⏳ 5m)");
    let json: serde_json::Value = serde_json::from_str(&reply.to_json()).expect("json");
    assert_eq!(
        (json["reply_to"].as_u64(), json["expires_in"].as_u64()),
        (Some(3), Some(300))
    );
    assert!(json.get("quote").is_none());
    if let LineEvent::Message { quote, .. } = &mut reply {
        *quote = Some("alice: coffee?".into());
    }
    assert_eq!(t(&reply), "12:04:31 <bob> (↳ alice: coffee?) sure (⏳ 5m)");
    let plain: serde_json::Value =
        serde_json::from_str(&msg("a", None, "x", false, false).to_json()).expect("json");
    assert!(plain["reply_to"].is_null() && plain["expires_in"].is_null());
}

#[test]
fn search_answers_list_ids() {
    let found = LineEvent::Search {
        time: at(),
        pattern: "coff".into(),
        server: false,
        next: None,
        matches: vec![Found {
            id: 4,
            time: at(),
            from: "alice".into(),
            room: Some("lobby".into()),
            text: "coffee?".into(),
        }],
    };
    assert_eq!(
        found.to_text_on("me", true, at()),
        "12:04:31 * 1 message matches /coff/:\n    #4 12:04:31 #lobby <alice> coffee?"
    );
    let json: serde_json::Value = serde_json::from_str(&found.to_json()).expect("json");
    assert_eq!(json["type"], "search");
    assert_eq!(json["matches"][0]["id"], 4);
}

#[test]
fn mentions_list_ids_and_since_when() {
    let found = |id| Found {
        id,
        time: at(),
        from: "bob".into(),
        room: None,
        text: "alice?".into(),
    };
    let mentions = LineEvent::Mentions {
        time: at(),
        since: Some(at()),
        matches: vec![found(9), found(7)],
        next: Some(7),
    };
    assert_eq!(
        mentions.to_text_on("alice", true, at()),
        "12:04:31 * 2 messages mentioned you since your last login (12:04:31), newest first \
         (/mentions more for older ones):\n    #9 12:04:31 <bob> alice?\n    #7 12:04:31 <bob> alice?"
    );
    let json: serde_json::Value = serde_json::from_str(&mentions.to_json()).expect("json");
    assert_eq!(json["type"], "mentions");
    assert_eq!(json["since"], "2026-11-21T12:04:31.000Z");
    assert_eq!(
        (json["matches"][1]["id"].as_u64(), json["next"].as_u64()),
        (Some(7), Some(7))
    );
    let none = LineEvent::Mentions {
        time: at(),
        since: None,
        matches: Vec::new(),
        next: None,
    };
    assert_eq!(
        none.to_text_on("alice", true, at()),
        "12:04:31 * nothing mentioned you since your account exists"
    );
    let json: serde_json::Value = serde_json::from_str(&none.to_json()).expect("json");
    assert!(json["since"].is_null());
}
