//! The full-screen client's behaviour, driven through `App::update` without a terminal.

mod support;

use std::time::Duration;

use chat_core::protocol::{ClientFrame, ErrorCode, ErrorFrame, RejectReason, ServerFrame, Target};
use chat_tui::tui::app::{
    Backoff, ConnState, Effect, EntryKind, Event, Focus, NetEvent, Screen, TabKind,
};
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use support::*;

fn titles(app: &chat_tui::tui::app::App) -> Vec<String> {
    app.tabs.iter().map(|t| t.kind.title().to_owned()).collect()
}

fn last_text(app: &chat_tui::tui::app::App, tab: usize) -> String {
    match &app.tabs[tab].entries.back().expect("an entry").kind {
        EntryKind::Message { text, .. } | EntryKind::Notice { text, .. } => text.clone(),
    }
}

#[test]
fn incoming_private_message_opens_a_tab_without_focus_and_counts_unread() {
    let mut app = connected("alice", &["alice", "bob"]);
    let effects = frame(&mut app, private(1, "bob", &["alice"], "psst", 1));
    assert_eq!(effects, vec![Effect::Bell]);
    assert_eq!(titles(&app), ["lobby", "bob"]);
    assert_eq!(app.active, 0, "focus stays on the lobby");
    assert_eq!(app.tabs[1].unread, 1);
    assert!(app.tabs[1].highlight);
    frame(&mut app, private(2, "bob", &["alice"], "still there?", 2));
    assert_eq!(app.tabs[1].unread, 2);

    // Viewing the tab clears the count; messages arriving while it is on screen do not count.
    alt(&mut app, '2');
    assert_eq!(app.active, 1);
    assert_eq!(app.tabs[1].unread, 0);
    assert!(!app.tabs[1].highlight);
    frame(&mut app, private(3, "bob", &["alice"], "ok", 3));
    assert_eq!(app.tabs[1].unread, 0);
    // The lobby counts while it is not on screen.
    frame(&mut app, public(4, "bob", "hello all", 3));
    assert_eq!(app.tabs[0].unread, 1);
    assert!(!app.tabs[0].highlight);
}

#[test]
fn unread_counts_clear_only_when_the_tab_is_viewed() {
    let mut app = connected("alice", &["alice", "bob", "carol"]);
    frame(&mut app, private(1, "bob", &["alice"], "one", 1));
    frame(&mut app, private(2, "carol", &["alice"], "two", 1));
    // Switching elsewhere does not clear other tabs.
    alt(&mut app, '3');
    assert_eq!((app.tabs[1].unread, app.tabs[2].unread), (1, 0));
    ctrl(&mut app, 'p');
    assert_eq!(app.active, 1);
    assert_eq!(app.tabs[1].unread, 0);
}

#[test]
fn own_private_messages_go_to_the_recipients_tab() {
    let mut app = connected("alice", &["alice", "bob"]);
    let effects = enter_line(&mut app, "/msg bob hi there");
    assert_eq!(
        sent_texts(&effects),
        [(Target::Users(vec!["bob".into()]), "hi there".into())]
    );
    assert_eq!(app.input_text(), "", "the input is cleared");
    echo(&mut app, "alice", &effects, 1);
    assert_eq!(titles(&app), ["lobby", "bob"]);
    assert_eq!(last_text(&app, 1), "hi there");
    assert_eq!(app.active, 0, "/msg does not switch tabs");
    assert_eq!(app.tabs[1].unread, 0, "our own messages are not unread");
}

#[test]
fn focus_moves_between_input_and_roster_and_enter_opens_a_private_tab() {
    let mut app = connected("alice", &["alice", "bob", "carol"]);
    assert_eq!(app.focus, Focus::Input);
    // Tab with nothing to complete goes to the roster; Tab there comes back.
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Roster);
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Input);
    press(&mut app, KeyCode::BackTab);
    assert_eq!(app.focus, Focus::Roster);
    assert_eq!(app.roster_selected, 0);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down); // stays on the last entry
    assert_eq!(app.roster[app.roster_selected].nick, "carol");
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Enter);
    assert_eq!(titles(&app), ["lobby", "bob"]);
    assert_eq!(app.active, 1, "Enter on the roster focuses the tab");
    assert_eq!(app.focus, Focus::Input);
    // Enter again on the same user focuses the same tab.
    alt(&mut app, '1');
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::Enter);
    assert_eq!(titles(&app), ["lobby", "bob"]);
    assert_eq!(app.active, 1);
    // Text typed in a private tab goes to that user.
    let effects = enter_line(&mut app, "hello bob");
    assert_eq!(
        sent_texts(&effects),
        [(Target::Users(vec!["bob".into()]), "hello bob".into())]
    );
}

#[test]
fn tab_switching_and_activity() {
    let mut app = connected("alice", &["alice", "bob", "carol", "dave"]);
    for (i, who) in ["bob", "carol", "dave"].iter().enumerate() {
        enter_line(&mut app, &format!("/query {who}"));
        assert_eq!(app.active, i + 1);
    }
    assert_eq!(titles(&app), ["lobby", "bob", "carol", "dave"]);
    ctrl(&mut app, 'n');
    assert_eq!(app.active, 0, "Ctrl-N wraps around");
    ctrl(&mut app, 'p');
    assert_eq!(app.active, 3, "Ctrl-P wraps around");
    alt(&mut app, '9');
    assert_eq!(app.active, 3, "no such tab: nothing happens");
    alt(&mut app, '1');

    // Alt-A goes to a private message or mention first, then to other activity.
    frame(&mut app, public(1, "bob", "weather talk", 1));
    alt(&mut app, '2');
    frame(&mut app, public(2, "bob", "more weather", 1));
    frame(&mut app, private(3, "dave", &["alice"], "urgent", 1));
    alt(&mut app, 'a');
    assert_eq!(app.active, 3);
    alt(&mut app, 'a');
    assert_eq!(app.active, 0);
    alt(&mut app, 'a');
    assert_eq!(app.active, 0, "no activity left: stays");

    // Alt-W closes a tab, but not the lobby.
    alt(&mut app, '3');
    alt(&mut app, 'w');
    assert_eq!(titles(&app), ["lobby", "bob", "dave"]);
    assert_eq!(app.active, 1);
    alt(&mut app, '1');
    alt(&mut app, 'w');
    assert_eq!(titles(&app), ["lobby", "bob", "dave"]);
    assert!(last_text(&app, 0).contains("cannot be closed"));
}

#[test]
fn readline_keys_edit_the_line_and_alt_w_closes_the_tab() {
    let mut app = connected("alice", &["alice", "bob"]);
    enter_line(&mut app, "/query bob");
    assert_eq!(app.active, 1);
    // Ctrl-W deletes the word before the cursor (blanks separate words, as in a shell) and
    // leaves the tab alone.
    type_text(&mut app, "see you at half-past  ");
    ctrl(&mut app, 'w');
    assert_eq!(app.input_text(), "see you at ");
    assert_eq!(titles(&app), ["lobby", "bob"], "Ctrl-W keeps the tab");
    // Alt-Backspace deletes by word characters.
    type_text(&mut app, "half-past");
    press_with(&mut app, KeyCode::Backspace, KeyModifiers::ALT);
    assert_eq!(app.input_text(), "see you at half-");
    // Alt-B and Alt-F move by words; Ctrl-K deletes to the end, Ctrl-Y puts it back.
    alt(&mut app, 'b');
    alt(&mut app, 'b');
    ctrl(&mut app, 'k');
    assert_eq!(app.input_text(), "see you ");
    ctrl(&mut app, 'y');
    assert_eq!(app.input_text(), "see you at half-");
    // Ctrl-A and Ctrl-E go to the start and the end; Ctrl-U deletes up to the cursor.
    ctrl(&mut app, 'a');
    type_text(&mut app, "ok, ");
    ctrl(&mut app, 'e');
    type_text(&mut app, "past four");
    assert_eq!(app.input_text(), "ok, see you at half-past four");
    alt(&mut app, 'b');
    ctrl(&mut app, 'u');
    assert_eq!(app.input_text(), "four");
    ctrl(&mut app, 'e');
    alt(&mut app, 'b');
    alt(&mut app, 'f');
    type_text(&mut app, "!");
    assert_eq!(app.input_text(), "four!");
    // Alt-W closes the tab (the text typed stays in the input line).
    alt(&mut app, 'w');
    assert_eq!(titles(&app), ["lobby"]);
    assert_eq!(app.input_text(), "four!");
}

#[test]
fn input_history_recalls_sent_lines_and_keeps_the_draft() {
    let mut app = connected("alice", &["alice"]);
    enter_line(&mut app, "first");
    enter_line(&mut app, "second");
    type_text(&mut app, "draft");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "second");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "first");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "first", "stops at the oldest");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "second");
    press(&mut app, KeyCode::Down);
    assert_eq!(app.input_text(), "draft");
    // A recalled line is sent as is.
    let mut app = connected("alice", &["alice"]);
    enter_line(&mut app, "again");
    press(&mut app, KeyCode::Up);
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(sent_texts(&effects)[0].1, "again");
}

#[test]
fn tab_completes_nicknames_and_cycles() {
    let mut app = connected("alice", &["alice", "bob", "Bobby", "carol"]);
    type_text(&mut app, "bo");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bob: ");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "Bobby: ");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bob: ");
    assert_eq!(app.focus, Focus::Input);
    // After other typing, a new word completes with a space, not a colon.
    type_text(&mut app, "and ca");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bob: and carol ");
    // Tab after a space completes nothing and does not move the keyboard away from text.
    type_text(&mut app, " ");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "bob: and carol  ");
    assert_eq!(app.focus, Focus::Input);
    // Our own nickname is not offered; nothing matching leaves the text alone.
    let mut app = connected("alice", &["alice", "bob"]);
    type_text(&mut app, "al");
    press(&mut app, KeyCode::Tab);
    assert_eq!(app.input_text(), "al");
    assert_eq!(app.focus, Focus::Input);
}

#[test]
fn backoff_grows_with_jitter_up_to_a_cap_and_resets() {
    let mut b = Backoff::new(fastrand::Rng::with_seed(1));
    let mut steps = Vec::new();
    for _ in 0..10 {
        steps.push(b.next_delay());
    }
    let expected_steps = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30];
    for (d, step) in steps.iter().zip(expected_steps) {
        let step = Duration::from_secs(step);
        assert!(*d >= step / 2 && *d <= step, "{d:?} for step {step:?}");
    }
    assert_eq!(b.attempts(), 10);
    b.reset();
    assert!(b.next_delay() <= Duration::from_secs(1));
}

#[test]
fn reconnect_state_machine() {
    let mut app = connected("alice", &["alice", "bob"]);
    assert_eq!(app.conn, ConnState::Connected);

    // Lost: wait, then connect again asking for the same nickname.
    let effects = net(
        &mut app,
        NetEvent::Lost {
            message: "the server closed the connection".into(),
        },
    );
    let [Effect::Connect { nick, delay, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(nick, "alice");
    assert!(*delay <= Duration::from_secs(1));
    assert!(matches!(app.conn, ConnState::Waiting { .. }));
    assert!(last_text(&app, 0).contains("disconnected"));

    // Each failure waits longer.
    net(&mut app, NetEvent::Connecting);
    assert_eq!(app.conn, ConnState::Connecting);
    let effects = net(
        &mut app,
        NetEvent::Failed {
            message: "cannot connect: connection refused".into(),
            retry: true,
        },
    );
    let [Effect::Connect { delay, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert!(*delay >= Duration::from_secs(1) && *delay <= Duration::from_secs(2));

    // The server gave us another name this time: say so.
    let mut w = welcome("alice42", &["alice42", "bob"]);
    w.requested_nick = "alice".into();
    w.nick_change = Some(chat_core::protocol::NickChange::Taken);
    net(&mut app, NetEvent::Connected(Box::new(w)));
    assert_eq!(app.conn, ConnState::Connected);
    assert_eq!(app.nick, "alice42");
    assert_eq!(app.requested_nick, "alice", "asked for again next time");
    assert!(last_text(&app, 0).contains("alice was taken"));
    assert_eq!(app.backoff.attempts(), 0, "reset after connecting");

    // A refusal that will not go away stops the retries; /reconnect tries again at once.
    net(
        &mut app,
        NetEvent::Lost {
            message: "x".into(),
        },
    );
    let effects = net(
        &mut app,
        NetEvent::Failed {
            message: "the server refused the connection: protocol version 1 unsupported".into(),
            retry: false,
        },
    );
    assert!(effects.is_empty());
    assert!(matches!(app.conn, ConnState::Stopped { .. }));
    let effects = enter_line(&mut app, "/reconnect");
    assert_eq!(
        effects,
        [Effect::Connect {
            server: "127.0.0.1:12345".into(),
            nick: "alice".into(),
            password: None,
            delay: Duration::ZERO
        }]
    );
}

#[test]
fn messages_typed_while_disconnected_are_kept_and_sent_after_reconnecting() {
    let mut app = connected("alice", &["alice", "bob"]);
    enter_line(&mut app, "/query bob");
    alt(&mut app, '1');
    // Sent but never confirmed when the connection drops: kept too.
    let unconfirmed = enter_line(&mut app, "in flight");
    assert_eq!(sent_texts(&unconfirmed).len(), 1);
    net(
        &mut app,
        NetEvent::Lost {
            message: "reset".into(),
        },
    );

    let effects = enter_line(&mut app, "typed offline");
    assert!(effects.is_empty(), "nothing to send on");
    assert_eq!(app.input_text(), "", "queued, not left in the input");
    alt(&mut app, '2');
    enter_line(&mut app, "to bob offline");
    let pending: Vec<usize> = app.tabs.iter().map(|t| t.pending.len()).collect();
    assert_eq!(pending, [2, 1]);

    let effects = net(
        &mut app,
        NetEvent::Connected(Box::new(welcome("alice", &["alice", "bob"]))),
    );
    assert_eq!(
        sent_texts(&effects),
        [
            (Target::Room("lobby".into()), "in flight".into()),
            (Target::Room("lobby".into()), "typed offline".into()),
            (Target::Users(vec!["bob".into()]), "to bob offline".into()),
        ]
    );
    assert!(app.tabs.iter().all(|t| t.pending.is_empty()));
}

/// The server's answer to a private message for someone not online who has no account.
fn not_online(effects: &[Effect], nick: &str) -> ServerFrame {
    ServerFrame::Error(ErrorFrame {
        tag: Some(tag_of(effects)),
        code: ErrorCode::NoSuchUser(vec![nick.into()]),
        message: format!("not online: {nick}"),
    })
}

#[test]
fn a_private_message_nobody_can_receive_comes_back_and_never_goes_to_the_next_holder() {
    let mut app = connected("alice", &["alice", "bob", "zoe"]);
    enter_line(&mut app, "/query bob");
    frame(&mut app, left("bob"));
    assert!(last_text(&app, 1).contains("bob left"));
    // The server decides: bob is a guest, so it says he is not online. The message comes
    // back to the input line, and the tab says so.
    let effects = enter_line(&mut app, "are you there?");
    assert_eq!(sent_texts(&effects).len(), 1, "sent to the server");
    frame(&mut app, not_online(&effects, "bob"));
    assert_eq!(app.input_text(), "are you there?");
    assert!(
        last_text(&app, 1).contains("not sent"),
        "{}",
        last_text(&app, 1)
    );
    assert!(app.tabs[1].pending.is_empty(), "nothing waits for the name");
    // Whoever connects as bob next gets nothing.
    let effects = frame(&mut app, joined("bob"));
    assert!(sent(&effects).is_empty(), "{effects:?}");

    // From the lobby, to a name nobody holds: the error is in the lobby, where it was typed,
    // the line comes back as typed, and no tab is left open for the name.
    alt(&mut app, '1');
    press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    let effects = enter_line(&mut app, "/msg bobb my pin is 1234");
    frame(&mut app, not_online(&effects, "bobb"));
    assert_eq!(app.input_text(), "/msg bobb my pin is 1234");
    assert!(last_text(&app, 0).contains("bobb not online"));
    assert_eq!(titles(&app), ["lobby", "bob"]);
    assert!(sent(&frame(&mut app, joined("bobb"))).is_empty());

    // Something else typed meanwhile stays; the notice quotes what was not sent.
    press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    let effects = enter_line(&mut app, "/msg carol hi carol");
    type_text(&mut app, "draft");
    frame(&mut app, not_online(&effects, "carol"));
    assert_eq!(app.input_text(), "draft");
    assert!(last_text(&app, 0).contains("hi carol"));

    // zoe has an account: the server keeps the message for her next login, and says so in
    // her tab.
    press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    enter_line(&mut app, "/query zoe");
    frame(&mut app, left("zoe"));
    let effects = enter_line(&mut app, "see you tomorrow");
    echo(&mut app, "alice", &effects, 7);
    frame(
        &mut app,
        ServerFrame::Queued {
            tag: tag_of(&effects),
            to: vec!["zoe".into()],
        },
    );
    let zoe = titles(&app)
        .iter()
        .position(|t| t == "zoe")
        .expect("zoe's tab");
    assert!(
        last_text(&app, zoe).contains("kept for them"),
        "{}",
        last_text(&app, zoe)
    );
}

#[test]
fn a_private_message_to_several_people_has_a_tab_where_replies_go_to_all() {
    let mut app = connected("alice", &["alice", "bob", "dave", "erin"]);
    let effects = enter_line(&mut app, "/msg erin,dave hi both");
    assert_eq!(
        sent_texts(&effects),
        [(
            Target::Users(vec!["erin".into(), "dave".into()]),
            "hi both".into()
        )]
    );
    echo(&mut app, "alice", &effects, 1);
    assert_eq!(
        titles(&app),
        ["lobby", "erin, dave"],
        "one tab for the group"
    );
    assert_eq!(last_text(&app, 1), "hi both");
    // Their answers, each to the three of us, come to the same tab.
    frame(&mut app, private(2, "dave", &["erin", "alice"], "hello", 2));
    assert_eq!(titles(&app), ["lobby", "erin, dave"]);
    assert_eq!(last_text(&app, 1), "hello");
    assert_eq!(app.tabs[1].unread, 1);
    // A reply typed there goes to both.
    alt(&mut app, '2');
    let effects = enter_line(&mut app, "lunch?");
    assert_eq!(
        sent_texts(&effects),
        [(
            Target::Users(vec!["erin".into(), "dave".into()]),
            "lunch?".into()
        )]
    );
    // Another set of people is another tab; one person alone is that person's tab.
    frame(
        &mut app,
        private(3, "bob", &["alice", "erin"], "and us?", 3),
    );
    frame(&mut app, private(4, "erin", &["alice"], "just you", 3));
    assert_eq!(titles(&app), ["lobby", "erin, dave", "bob, erin", "erin"]);
    // /msg to the same people in another order goes to their tab.
    let effects = enter_line(&mut app, "/msg dave,erin,alice sure");
    assert_eq!(
        sent_texts(&effects),
        [(
            Target::Users(vec!["dave".into(), "erin".into()]),
            "sure".into()
        )],
        "not to ourselves"
    );
    echo(&mut app, "alice", &effects, 5);
    assert_eq!(titles(&app).len(), 4);
    assert_eq!(last_text(&app, 1), "sure");
    // A message kept for one of them is said in the group's tab.
    frame(
        &mut app,
        ServerFrame::Queued {
            tag: tag_of(&effects),
            to: vec!["dave".into()],
        },
    );
    assert!(last_text(&app, 1).contains("dave offline: kept"));
    // Leaving and coming back shows in the group's tab; the completion knows its people.
    frame(&mut app, left("dave"));
    assert!(last_text(&app, 1).contains("dave left"));
}

#[test]
fn mentions_are_highlighted_and_ring_the_bell() {
    let mut app = connected("alice", &["alice", "bob"]);
    alt(&mut app, '1');
    enter_line(&mut app, "/query bob");
    assert_eq!(
        frame(&mut app, public(1, "bob", "Alice: lunch?", 1)),
        [Effect::Bell]
    );
    assert!(app.tabs[0].highlight);
    assert!(matches!(
        app.tabs[0].entries.back().map(|e| &e.kind),
        Some(EntryKind::Message { mention: true, .. })
    ));
    // A word that merely contains the nickname is not a mention.
    assert!(frame(&mut app, public(2, "bob", "malice aforethought", 1)).is_empty());
    assert!(chat_tui::tui::app::mentions("hi alice!", "alice"));
    assert!(!chat_tui::tui::app::mentions("alicet", "alice"));
}

#[test]
fn a_multi_line_paste_is_one_message_and_alt_enter_adds_a_line() {
    let mut app = connected("alice", &["alice"]);
    app.update(Event::Paste("line one\r\nline two\nline three".into()));
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        sent_texts(&effects),
        [(
            Target::Room("lobby".into()),
            "line one\nline two\nline three".into()
        )]
    );
    type_text(&mut app, "a");
    press_with(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "b");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(sent_texts(&effects)[0].1, "a\nb");
}

#[test]
fn scrollback_is_bounded_and_scrolling_returns_to_live() {
    let mut app = connected("alice", &["alice", "bob"]);
    app.opts.scrollback = 100;
    for i in 0..300 {
        frame(&mut app, public(i, "bob", &format!("message {i}"), 1));
    }
    let tab = &app.tabs[0];
    assert_eq!(tab.entries.len(), 100);
    assert_eq!(tab.last_seq(), Some(tab.first_seq + 99));

    press(&mut app, KeyCode::PageUp);
    let anchor = app.tabs[0].scroll.expect("scrolled");
    press(&mut app, KeyCode::PageUp);
    assert!(app.tabs[0].scroll.expect("scrolled").seq < anchor.seq);
    // New messages do not move what is on screen.
    let before = app.tabs[0].scroll;
    frame(&mut app, public(999, "bob", "new", 1));
    assert_eq!(app.tabs[0].scroll, before);
    // Scrolling far up stops at the oldest line.
    for _ in 0..100 {
        press(&mut app, KeyCode::PageUp);
    }
    let top = app.tabs[0].scroll.expect("scrolled");
    assert!(top.seq >= app.tabs[0].first_seq);
    press(&mut app, KeyCode::PageDown);
    assert!(app.tabs[0].scroll.expect("scrolled").seq > top.seq);
    // End returns to live.
    press(&mut app, KeyCode::End);
    assert_eq!(app.tabs[0].scroll, None);
    // So does scrolling down far enough.
    press(&mut app, KeyCode::PageUp);
    for _ in 0..10 {
        press(&mut app, KeyCode::PageDown);
    }
    assert_eq!(app.tabs[0].scroll, None);
}

fn tag_of(effects: &[Effect]) -> u64 {
    match &sent(effects)[0] {
        ClientFrame::Send(o) => o.tag,
        other => panic!("{other:?}"),
    }
}

fn lose(app: &mut chat_tui::tui::app::App) {
    net(
        app,
        NetEvent::Lost {
            message: "x".into(),
        },
    );
}

#[test]
fn errors_and_rate_limits_lose_nothing() {
    let mut app = connected("alice", &["alice", "bob"]);
    // Refusals show the text.
    let effects = enter_line(&mut app, "some text");
    frame(
        &mut app,
        ServerFrame::Error(ErrorFrame {
            tag: Some(tag_of(&effects)),
            code: ErrorCode::InvalidText,
            message: "invalid text".into(),
        }),
    );
    assert!(last_text(&app, 0).contains("some text"));

    // Text the server would refuse is refused here and stays in the input line.
    let long = "x".repeat(5000);
    app.update(Event::Paste(long.clone()));
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.input_text().len(), 5000);
    assert!(last_text(&app, 0).contains("limit is 4096"));
}

#[test]
fn rate_limited_messages_are_sent_again_when_the_server_allows() {
    let mut app = connected("alice", &["alice", "bob"]);
    let effects = enter_line(&mut app, "too fast");
    frame(
        &mut app,
        ServerFrame::RateLimited {
            tag: Some(tag_of(&effects)),
            retry_after_ms: 1500,
        },
    );
    assert!(last_text(&app, 0).contains("sent again in 1.5 s"));
    assert_eq!(app.tabs[0].pending.len(), 1);
    // What is typed meanwhile queues behind it, in order.
    assert!(enter_line(&mut app, "and this").is_empty());
    assert!(app.update(Event::Tick).is_empty(), "not yet");
    advance(&mut app, Duration::from_millis(1500));
    let effects = app.update(Event::Tick);
    let texts: Vec<String> = sent_texts(&effects).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["too fast", "and this"]);
}

#[test]
fn messages_refused_one_after_another_go_again_in_the_order_sent() {
    let mut app = connected("alice", &["alice", "bob"]);
    // Typed faster than the server's answers come back: all three are sent, then refused.
    let tags: Vec<u64> = ["one", "two", "three"]
        .iter()
        .map(|t| tag_of(&enter_line(&mut app, t)))
        .collect();
    for tag in tags {
        frame(
            &mut app,
            ServerFrame::RateLimited {
                tag: Some(tag),
                retry_after_ms: 1000,
            },
        );
    }
    enter_line(&mut app, "four");
    advance(&mut app, Duration::from_millis(1000));
    let effects = app.update(Event::Tick);
    let texts: Vec<String> = sent_texts(&effects).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["one", "two", "three", "four"]);
}

#[test]
fn a_long_queue_is_sent_at_the_pace_the_server_allows() {
    let mut app = connected("alice", &["alice", "bob"]);
    lose(&mut app);
    for i in 0..20 {
        enter_line(&mut app, &format!("queued {i}"));
    }
    // Burst 10 (see support::welcome): 8 at once, leaving room for pings.
    let effects = net(
        &mut app,
        NetEvent::Connected(Box::new(welcome("alice", &["alice", "bob"]))),
    );
    assert_eq!(sent(&effects).len(), 8);
    assert!(app.update(Event::Tick).is_empty());
    advance(&mut app, Duration::from_secs(4));
    let effects = app.update(Event::Tick);
    assert_eq!(sent_texts(&effects)[0].1, "queued 8");
    assert_eq!(sent(&effects).len(), 8);
    advance(&mut app, Duration::from_secs(4));
    assert_eq!(sent(&app.update(Event::Tick)).len(), 4);
    assert!(app.tabs[0].pending.is_empty());
}

#[test]
fn quitting_with_unsent_messages_asks_first() {
    let mut app = connected("alice", &["alice"]);
    lose(&mut app);
    enter_line(&mut app, "not sent yet");
    assert!(ctrl(&mut app, 'c').is_empty());
    assert!(last_text(&app, 0).contains("1 message(s) not sent yet"));
    assert_eq!(ctrl(&mut app, 'c'), [Effect::Exit]);
    // A lost terminal does not ask.
    let mut app = connected("alice", &["alice"]);
    lose(&mut app);
    enter_line(&mut app, "not sent yet");
    assert_eq!(app.update(Event::Hangup), [Effect::Exit]);
}

#[test]
fn the_roster_selection_stays_on_the_same_person() {
    let mut app = connected("alice", &["alice", "bob", "carol"]);
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::Down);
    assert_eq!(app.roster[app.roster_selected].nick, "carol");
    frame(&mut app, joined("aaron"));
    assert_eq!(app.roster[app.roster_selected].nick, "carol");
    frame(&mut app, left("bob"));
    assert_eq!(app.roster[app.roster_selected].nick, "carol");
    frame(&mut app, left("carol"));
    assert!(app.roster_selected < app.roster.len());
    // Relayed guests come after the members.
    frame(&mut app, joined("*guest"));
    let names: Vec<&str> = app.roster.iter().map(|u| u.nick.as_str()).collect();
    assert_eq!(names, ["aaron", "alice", "*guest"]);
}

#[test]
fn scrolling_survives_a_change_of_width() {
    let mut app = connected("alice", &["alice", "bob"]);
    let text = "a long line that wraps on narrow panes ".repeat(4);
    for i in 0..50 {
        frame(&mut app, public(i, "bob", &text, 1));
    }
    app.update(Event::Resize {
        width: 40,
        height: 20,
    });
    for _ in 0..3 {
        app.update(Event::Mouse(ratatui::crossterm::event::MouseEvent {
            kind: ratatui::crossterm::event::MouseEventKind::ScrollUp,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        }));
    }
    assert!(app.tabs[0].scroll.is_some());
    app.update(Event::Resize {
        width: 200,
        height: 20,
    });
    press(&mut app, KeyCode::PageUp);
    press(&mut app, KeyCode::PageDown);
    app.update(Event::Resize {
        width: 30,
        height: 10,
    });
    press(&mut app, KeyCode::PageUp);
    assert!(app.tabs[0].scroll.is_some());
}

#[test]
fn quitting_says_goodbye_when_connected_and_exits_at_once_otherwise() {
    let mut app = connected("alice", &["alice"]);
    assert_eq!(
        enter_line(&mut app, "/quit see you"),
        [Effect::Quit {
            reason: "see you".into()
        }]
    );
    let mut app = connected("alice", &["alice"]);
    assert_eq!(
        ctrl(&mut app, 'c'),
        [Effect::Quit {
            reason: String::new()
        }]
    );
    let mut app = connected("alice", &["alice"]);
    net(
        &mut app,
        NetEvent::Lost {
            message: "x".into(),
        },
    );
    assert_eq!(ctrl(&mut app, 'c'), [Effect::Exit]);
    let mut app = fresh("alice");
    assert_eq!(press(&mut app, KeyCode::Esc), [Effect::Exit]);
}

#[test]
fn a_known_nickname_connects_at_once_and_a_refusal_brings_the_form_back() {
    use chat_tui::tui::run::{TuiOptions, start};
    let opts = |nick: Option<&str>| TuiOptions {
        nick: nick.map(str::to_owned),
        password: None,
        server: "127.0.0.1:12345".to_owned(),
        app: options(),
        trust: Default::default(),
        download_dir: std::env::temp_dir(),
    };
    // The nickname alone (from --nick, CHAT_NICK or the configuration file; the server is
    // the default one): no form to fill in.
    let (mut app, effects) = start(opts(Some("alice")), std::time::Instant::now());
    assert!(
        matches!(&effects[..], [Effect::Connect { nick, .. }] if nick == "alice"),
        "{effects:?}"
    );
    net(
        &mut app,
        NetEvent::Connected(Box::new(welcome("alice", &["alice"]))),
    );
    assert!(matches!(app.screen, Screen::Main));
    // Refused: the form, with the reason, prefilled for another try.
    let (mut app, _) = start(opts(Some("alice")), std::time::Instant::now());
    net(
        &mut app,
        NetEvent::Failed {
            message: "the nickname is registered: give its password".to_owned(),
            retry: false,
        },
    );
    let Screen::Connect(form) = &app.screen else {
        panic!("the form comes back");
    };
    assert!(
        form.error
            .as_deref()
            .is_some_and(|e| e.contains("registered"))
    );
    assert_eq!(form.nick.lines(), ["alice"]);
    // Nothing known (or only blanks): the form asks, and nothing is sent.
    for nick in [None, Some("  ")] {
        let (app, effects) = start(opts(nick), std::time::Instant::now());
        assert!(effects.is_empty(), "{effects:?}");
        assert!(matches!(app.screen, Screen::Connect(_)));
    }
    // A nickname no server would accept: the form says why, and nothing is sent.
    let (app, effects) = start(opts(Some("no spaces please")), std::time::Instant::now());
    assert!(effects.is_empty(), "{effects:?}");
    let Screen::Connect(form) = &app.screen else {
        panic!("the form");
    };
    assert!(form.error.is_some());
}

#[test]
fn the_connect_screen_explains_what_is_wrong() {
    let mut app = chat_tui::tui::app::App::new(
        None,
        "127.0.0.1:12345".into(),
        options(),
        std::time::Instant::now(),
    );
    let form_error = |app: &chat_tui::tui::app::App| match &app.screen {
        Screen::Connect(f) => f.error.clone(),
        Screen::Main => panic!("not on the connect screen"),
    };
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(form_error(&app).as_deref(), Some("enter a nickname"));
    type_text(&mut app, "bad nick");
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(form_error(&app).expect("error").contains("whitespace"));
    for _ in 0..5 {
        press(&mut app, KeyCode::Backspace);
    }
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        effects,
        [Effect::Connect {
            server: "127.0.0.1:12345".into(),
            nick: "bad".into(),
            password: None,
            delay: Duration::ZERO
        }]
    );
    // The server's refusal is shown in the form, and nothing retries by itself.
    let rejected = chat_core::protocol::Rejected {
        reason: RejectReason::InvalidNick(chat_core::names::NickError::Empty),
        message: "nickname rejected".into(),
    };
    let message = chat_core::client::ClientError::Rejected(rejected).to_string();
    let effects = net(
        &mut app,
        NetEvent::Failed {
            message,
            retry: false,
        },
    );
    assert!(effects.is_empty());
    assert!(
        form_error(&app)
            .expect("error")
            .contains("nickname rejected")
    );
}

#[test]
fn a_nickname_given_away_can_be_taken_back() {
    let mut app = fresh("alice");
    app.start();
    // Reconnected while a stale session still held the name: the server gave another.
    let mut w = welcome("alice42", &["alice", "alice42", "bob"]);
    w.requested_nick = "alice".into();
    w.nick_change = Some(chat_core::protocol::NickChange::Taken);
    net(&mut app, NetEvent::Connected(Box::new(w)));
    assert_eq!(app.nick, "alice42");
    // The stale session goes: the client says the name is free.
    frame(&mut app, left("alice"));
    assert!(last_text(&app, 0).contains("free again: /reconnect"));
    // /reconnect leaves and comes back asking for it.
    let effects = enter_line(&mut app, "/reconnect");
    assert!(matches!(
        &effects[..],
        [Effect::Send(ClientFrame::Quit { .. })]
    ));
    let effects = net(
        &mut app,
        NetEvent::Lost {
            message: "closed".into(),
        },
    );
    assert!(matches!(&effects[..], [Effect::Connect { nick, .. }] if nick == "alice"));
    net(
        &mut app,
        NetEvent::Connected(Box::new(welcome("alice", &["alice", "bob"]))),
    );
    assert_eq!(app.nick, "alice");
}

fn in_room(id: u64, room: &str, from: &str, text: &str) -> chat_core::protocol::ChatMessage {
    chat_core::protocol::ChatMessage {
        id,
        at: at(id as i64),
        from: from.into(),
        to: Target::Room(room.into()),
        body: chat_core::protocol::Body::Text(text.into()),
        attrs: Vec::new(),
        tag: None,
    }
}

#[test]
fn a_joined_room_gets_a_tab_with_its_history_roster_and_messages() {
    let mut app = connected("alice", &["alice", "bob", "carol"]);
    let effects = enter_line(&mut app, "/join #rust");
    assert_eq!(
        sent(&effects),
        [ClientFrame::Join {
            room: "rust".into()
        }]
    );
    frame(
        &mut app,
        ServerFrame::Entered {
            room: "rust".into(),
            topic: "crabs".into(),
        },
    );
    assert_eq!(
        app.tabs[1].kind,
        TabKind::Room {
            name: "rust".into()
        }
    );
    assert_eq!(app.active, 1, "the room asked for is shown");
    assert!(last_text(&app, 1).contains("topic: crabs"));
    frame(
        &mut app,
        ServerFrame::Roster {
            room: "rust".into(),
            users: vec![user("alice"), user("bob")],
        },
    );
    // The sidebar follows the room on screen.
    let shown: Vec<&str> = app.shown_roster().iter().map(|u| u.nick.as_str()).collect();
    assert_eq!(shown, ["alice", "bob"]);
    frame(
        &mut app,
        ServerFrame::History {
            room: "rust".into(),
            messages: vec![
                in_room(5, "rust", "bob", "old one"),
                in_room(6, "rust", "bob", "old two"),
            ],
            more: true,
        },
    );
    frame(
        &mut app,
        ServerFrame::Message(in_room(7, "rust", "bob", "live")),
    );
    let entries: Vec<(String, bool)> = app.tabs[1]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { text, history, .. } => Some((text.clone(), *history)),
            _ => None,
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("old one".to_owned(), true),
            ("old two".to_owned(), true),
            ("live".to_owned(), false)
        ]
    );
    // The same history again (after a reconnect) is not shown twice.
    frame(
        &mut app,
        ServerFrame::History {
            room: "rust".into(),
            messages: vec![in_room(6, "rust", "bob", "old two")],
            more: true,
        },
    );
    assert_eq!(
        app.tabs[1]
            .entries
            .iter()
            .filter(|e| matches!(&e.kind, EntryKind::Message { text, .. } if text == "old two"))
            .count(),
        1
    );
    // Typed text goes to the room; /history asks for what is older than the oldest shown.
    assert_eq!(
        sent_texts(&enter_line(&mut app, "hi rust")),
        [(Target::Room("rust".into()), "hi rust".into())]
    );
    assert_eq!(
        sent(&enter_line(&mut app, "/history 20")),
        [ClientFrame::History {
            room: "rust".into(),
            before: Some(5),
            limit: 20
        }]
    );
    // An older page goes above what is shown.
    frame(
        &mut app,
        ServerFrame::History {
            room: "rust".into(),
            messages: vec![in_room(2, "rust", "carol", "ancient")],
            more: false,
        },
    );
    let first = app.tabs[1]
        .entries
        .iter()
        .find_map(|e| match &e.kind {
            EntryKind::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .expect("a message");
    assert_eq!(first, "ancient");
    assert!(last_text(&app, 1).contains("nothing older"));
    // The lobby's roster is still everyone.
    alt(&mut app, '1');
    assert_eq!(app.shown_roster().len(), 3);
    // Closing a room's tab leaves the room; the tab goes when the server confirms.
    alt(&mut app, '2');
    assert_eq!(
        sent(&alt(&mut app, 'w')),
        [ClientFrame::Part {
            room: "rust".into()
        }]
    );
    frame(
        &mut app,
        ServerFrame::Parted {
            room: "rust".into(),
        },
    );
    assert_eq!(app.tabs.len(), 1);
}

/// Alice, in room `go`, just lost her connection.
fn in_room_go_then_lost() -> chat_tui::tui::app::App {
    let mut app = connected("alice", &["alice"]);
    frame(
        &mut app,
        ServerFrame::Entered {
            room: "go".into(),
            topic: String::new(),
        },
    );
    net(
        &mut app,
        NetEvent::Lost {
            message: "reset".into(),
        },
    );
    app
}

#[test]
fn reconnecting_rejoins_the_rooms_whose_tabs_are_open() {
    let mut app = in_room_go_then_lost();
    let effects = net(
        &mut app,
        NetEvent::Connected(Box::new(welcome("alice", &["alice"]))),
    );
    assert!(sent(&effects).contains(&ClientFrame::Join { room: "go".into() }));
}

#[test]
fn reconnected_to_a_version_1_server_a_room_tab_is_neither_rejoined_nor_left() {
    let mut app = in_room_go_then_lost();
    let mut old = welcome("alice", &["alice"]);
    old.version = 1;
    let effects = net(&mut app, NetEvent::Connected(Box::new(old)));
    assert!(sent(&effects).is_empty(), "{effects:?}");
    // Closing the tab sends no Part (that server has no rooms): the tab just goes.
    let go = titles(&app)
        .iter()
        .position(|t| t == "go")
        .expect("the room's tab");
    app.active = go;
    let effects = enter_line(&mut app, "/close");
    assert!(sent(&effects).is_empty(), "{effects:?}");
    assert!(
        !titles(&app).contains(&"go".to_owned()),
        "{:?}",
        titles(&app)
    );
}

#[test]
fn messages_kept_while_offline_arrive_in_their_private_tabs() {
    let mut app = connected("alice", &["alice"]);
    let effects = frame(
        &mut app,
        ServerFrame::Offline(vec![chat_core::protocol::ChatMessage {
            id: 3,
            at: at(-60),
            from: "bob".into(),
            to: Target::Users(vec!["alice".into()]),
            body: chat_core::protocol::Body::Text("you there?".into()),
            attrs: Vec::new(),
            tag: None,
        }]),
    );
    assert_eq!(
        effects,
        [
            Effect::Bell,
            Effect::Send(ClientFrame::AckOffline { up_to: 3 })
        ]
    );
    let i = app
        .tabs
        .iter()
        .position(|t| t.kind.title() == "bob")
        .expect("a tab for bob");
    assert!(matches!(
        &app.tabs[i].entries.back().expect("entry").kind,
        EntryKind::Message { text, history: true, .. } if text == "you there?"
    ));
    assert_eq!(app.tabs[i].entries.back().expect("entry").at, at(-60));
    assert!(last_text(&app, 0).contains("while you were away"));
}

#[test]
fn the_connect_screen_logs_in_with_a_masked_password() {
    let mut app = fresh("alice");
    // Nickname, then the password field.
    if let Screen::Connect(form) = &app.screen {
        assert_eq!(form.field, chat_tui::tui::app::Field::Password);
    }
    type_text(&mut app, "s3cret");
    // Nothing shows the password when printed for debugging, on the form or after.
    assert!(!format!("{app:?}").contains("s3cret"));
    let effects = press(&mut app, KeyCode::Enter);
    assert!(matches!(
        &effects[..],
        [Effect::Connect { nick, password: Some(p), .. }] if nick == "alice" && p.0 == "s3cret"
    ));
    assert!(!format!("{effects:?} {app:?}").contains("s3cret"));
}

#[test]
fn after_registering_a_reconnect_logs_in_with_the_new_password() {
    let mut app = connected("alice", &["alice"]);
    enter_line(&mut app, "/register s3cret");
    // Not kept for Up to bring back, nor shown when printed for debugging.
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "");
    assert!(!format!("{app:?}").contains("s3cret"));
    frame(
        &mut app,
        ServerFrame::Registered {
            nick: "alice".into(),
        },
    );
    let effects = net(
        &mut app,
        NetEvent::Lost {
            message: "reset".into(),
        },
    );
    assert!(matches!(
        &effects[..],
        [Effect::Connect { password: Some(p), .. }] if p.0 == "s3cret"
    ));
}

#[test]
fn replaced_by_another_login_does_not_reconnect_by_itself() {
    let mut app = connected("alice", &["alice"]);
    frame(
        &mut app,
        ServerFrame::Bye {
            reason: chat_core::protocol::DisconnectReason::LoggedInElsewhere,
            message: "alice logged in from another connection".into(),
        },
    );
    let effects = net(
        &mut app,
        NetEvent::Lost {
            message: "closed".into(),
        },
    );
    assert!(effects.is_empty(), "{effects:?}");
    assert!(matches!(app.conn, ConnState::Stopped { .. }));
    assert!(last_text(&app, 0).contains("/reconnect"));
    assert!(matches!(
        &enter_line(&mut app, "/reconnect")[..],
        [Effect::Connect { .. }]
    ));
}

#[test]
fn a_backlog_in_several_pages_rings_once_and_counts_in_one_notice() {
    let mut app = connected("alice", &["alice"]);
    let kept = |id: u64| chat_core::protocol::ChatMessage {
        id,
        at: at(-60),
        from: "bob".into(),
        to: Target::Users(vec!["alice".into()]),
        body: chat_core::protocol::Body::Text(format!("note {id}")),
        attrs: Vec::new(),
        tag: None,
    };
    let first = frame(&mut app, ServerFrame::Offline(vec![kept(1), kept(2)]));
    assert_eq!(
        first,
        [
            Effect::Bell,
            Effect::Send(ClientFrame::AckOffline { up_to: 2 })
        ]
    );
    let second = frame(&mut app, ServerFrame::Offline(vec![kept(3)]));
    assert_eq!(second, [Effect::Send(ClientFrame::AckOffline { up_to: 3 })]);
    assert!(last_text(&app, 0).starts_with("3 private message(s)"));
    let notices = app.tabs[0]
        .entries
        .iter()
        .filter(|e| matches!(&e.kind, EntryKind::Notice { text, .. } if text.contains("while you were away")))
        .count();
    assert_eq!(notices, 1);
}

#[test]
fn a_version_1_server_gets_no_request_it_cannot_decode() {
    let mut app = fresh("alice");
    app.start();
    let mut old = welcome("alice", &["alice", "bob"]);
    old.version = 1;
    net(&mut app, NetEvent::Connected(Box::new(old)));
    assert!(
        last_text(&app, 0).contains("protocol version 1"),
        "{}",
        last_text(&app, 0)
    );
    for line in ["/join #rust", "/register s3cret", "/history", "/rooms"] {
        let effects = enter_line(&mut app, line);
        assert!(sent(&effects).is_empty(), "{line}: {effects:?}");
        assert!(
            last_text(&app, app.active).contains("needs protocol version 2"),
            "{line}: {}",
            last_text(&app, app.active)
        );
        // Kept in the input line, to send elsewhere or change.
        assert_eq!(app.input_text(), line);
        while !app.input_text().is_empty() {
            press(&mut app, KeyCode::Backspace);
        }
    }
    // Messages and /who are version 1 and still go out.
    assert_eq!(sent(&enter_line(&mut app, "hello")).len(), 1);
    assert_eq!(sent(&enter_line(&mut app, "/who")).len(), 1);
}

#[test]
fn a_new_certificate_is_asked_about_and_a_changed_one_cannot_be_accepted() {
    use chat_tui::trust::Verdict;
    let form_error = |app: &chat_tui::tui::app::App| match &app.screen {
        Screen::Connect(f) => f.error.clone(),
        Screen::Main => panic!("not on the connect screen"),
    };
    let mut app = fresh("alice");
    app.start();
    let untrusted = |verdict| NetEvent::Untrusted {
        server: "127.0.0.1:12345".into(),
        fingerprint: "SHA256:new".into(),
        verdict,
    };
    // First use: asked; the form waits; other keys do nothing.
    assert!(net(&mut app, untrusted(Verdict::FirstUse)).is_empty());
    let prompt = app.trust_prompt.clone().expect("asked");
    assert!(prompt.asks());
    assert!(prompt.text().iter().any(|l| l.contains("SHA256:new")));
    assert!(press(&mut app, KeyCode::Char('x')).is_empty());
    assert!(app.trust_prompt.is_some());
    // Yes: trusted from now on, and connecting again at once.
    let effects = press(&mut app, KeyCode::Char('y'));
    assert!(app.trust_prompt.is_none());
    assert!(matches!(
        &effects[..],
        [Effect::Trust { server, fingerprint }, Effect::Connect { delay, .. }]
            if server == "127.0.0.1:12345" && fingerprint == "SHA256:new" && delay.is_zero()
    ));
    // No: not connected, said on the form.
    net(&mut app, untrusted(Verdict::FirstUse));
    assert!(press(&mut app, KeyCode::Char('n')).is_empty());
    assert!(form_error(&app).expect("error").contains("not trusted"));

    // A changed certificate: told, with both fingerprints and the command; no key accepts it.
    let changed = Verdict::Changed {
        old: "SHA256:old".into(),
    };
    net(&mut app, untrusted(changed));
    let prompt = app.trust_prompt.clone().expect("told");
    assert!(!prompt.asks());
    let text = prompt.text().join("\n");
    assert!(
        text.contains("SHA256:old") && text.contains("SHA256:new"),
        "{text}"
    );
    assert!(
        text.contains("chat-tui --forget-server 127.0.0.1:12345"),
        "{text}"
    );
    assert!(press(&mut app, KeyCode::Char('y')).is_empty());
    assert!(press(&mut app, KeyCode::Enter).is_empty());
    assert!(app.trust_prompt.is_none());
    assert!(form_error(&app).expect("error").contains("CHANGED"));
}

#[test]
fn roster_keys_ask_whois_ignore_and_prepare_a_kick_for_enter_to_confirm() {
    let mut app = connected("alice", &["alice", "bob", "carol"]);
    press(&mut app, KeyCode::Tab);
    press(&mut app, KeyCode::Down);
    assert_eq!(app.roster[app.roster_selected].nick, "bob");
    let effects = press(&mut app, KeyCode::Char('w'));
    assert_eq!(sent(&effects), [ClientFrame::Whois { nick: "bob".into() }]);
    press(&mut app, KeyCode::Char('i'));
    assert!(app.ignored.contains("bob"));
    frame(&mut app, public(7, "bob", "spam spam", 1));
    assert_eq!(app.tabs[0].hidden, 1, "bob's message is hidden and counted");
    assert!(!last_text(&app, 0).contains("spam"));
    press(&mut app, KeyCode::Char('i'));
    assert!(!app.ignored.contains("bob"));
    // `k` puts the kick on the input line; nothing is sent until Enter.
    let effects = press(&mut app, KeyCode::Char('k'));
    assert!(sent(&effects).is_empty());
    assert_eq!(app.focus, Focus::Input);
    assert_eq!(app.input_text(), "/kick bob ");
    type_text(&mut app, "spamming");
    let effects = press(&mut app, KeyCode::Enter);
    assert_eq!(
        sent(&effects),
        [ClientFrame::Kick {
            room: Some("lobby".into()),
            nick: "bob".into(),
            reason: "spamming".into(),
        }]
    );
}

#[test]
fn operators_are_marked_away_is_kept_and_a_nick_change_follows_into_tabs() {
    let mut app = connected("alice", &["alice", "bob"]);
    frame(
        &mut app,
        ServerFrame::Ops {
            room: "lobby".into(),
            ops: vec!["bob".into()],
        },
    );
    assert!(app.is_op("lobby", "bob") && !app.is_op("lobby", "alice"));
    frame(&mut app, private(3, "bob", &["alice"], "hi", 1));
    frame(
        &mut app,
        ServerFrame::Away {
            nick: "bob".into(),
            message: Some("lunch".into()),
        },
    );
    assert_eq!(app.away.get("bob").map(String::as_str), Some("lunch"));
    assert_eq!(last_text(&app, 1), "bob is away: lunch");
    frame(
        &mut app,
        ServerFrame::NickChanged {
            old: "bob".into(),
            new: "robert".into(),
            at: at(2),
        },
    );
    assert_eq!(titles(&app), ["lobby", "robert"]);
    assert!(app.is_op("lobby", "robert"));
    assert!(app.away.contains_key("robert"));
    assert!(app.roster.iter().any(|u| u.nick == "robert"));
    // Our own change renames us.
    frame(
        &mut app,
        ServerFrame::NickChanged {
            old: "alice".into(),
            new: "alicia".into(),
            at: at(3),
        },
    );
    assert_eq!(app.nick, "alicia");
}

#[test]
fn kicked_or_banned_off_the_server_the_client_does_not_reconnect_by_itself() {
    for (reason, said) in [
        (chat_core::protocol::DisconnectReason::Kicked, "/reconnect"),
        (chat_core::protocol::DisconnectReason::Banned, "banned"),
    ] {
        let mut app = connected("bob", &["alice", "bob"]);
        frame(
            &mut app,
            ServerFrame::Bye {
                reason,
                message: "kicked by alice: enough".into(),
            },
        );
        let effects = net(
            &mut app,
            NetEvent::Lost {
                message: "closed".into(),
            },
        );
        assert!(effects.is_empty(), "{reason:?}: {effects:?}");
        assert!(matches!(app.conn, ConnState::Stopped { .. }));
        assert!(last_text(&app, 0).contains(said), "{}", last_text(&app, 0));
    }
}

#[test]
fn a_deleted_message_shows_as_deleted_and_delete_nick_names_their_latest() {
    let mut app = connected("alice", &["alice", "bob"]);
    frame(&mut app, public(5, "bob", "cheap watches", 1));
    frame(&mut app, public(6, "bob", "cheaper watches", 2));
    let effects = enter_line(&mut app, "/delete bob");
    assert_eq!(sent(&effects), [ClientFrame::Delete { id: 6 }]);
    frame(
        &mut app,
        ServerFrame::Deleted {
            id: 6,
            room: Some("lobby".into()),
            by: "alice".into(),
            at: at(3),
        },
    );
    assert_eq!(last_text(&app, 0), "(message deleted by alice)");
    assert!(matches!(&enter_line(&mut app, "/delete carol")[..], []));
    assert!(last_text(&app, 0).contains("no message from carol"));
}

#[test]
fn file_commands_go_to_the_agent_and_an_older_server_is_not_asked() {
    use chat_tui::command::FileCommand;
    let mut app = connected("alice", &["alice", "bob"]);
    let effects = enter_line(&mut app, "/file bob /tmp/report.pdf");
    assert_eq!(
        effects,
        [Effect::File(FileCommand::Send {
            to: "bob".into(),
            path: "/tmp/report.pdf".into()
        })]
    );
    // The offer's tab is on screen.
    assert_eq!(app.tabs[app.active].kind.title(), "bob");
    // A server of protocol 4 cannot pass files on: nothing is sent, the line stays.
    let mut old = fresh("alice");
    old.start();
    let mut w = welcome("alice", &["alice", "bob"]);
    w.version = 4;
    net(&mut old, NetEvent::Connected(Box::new(w)));
    let effects = enter_line(&mut old, "/file bob /tmp/report.pdf");
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::File(_))),
        "{effects:?}"
    );
    let said = last_text(&old, old.active);
    assert!(said.contains("cannot pass files on"), "{said}");
}

/// A lobby message from `from` with attributes.
fn with_attrs(
    id: u64,
    from: &str,
    text: &str,
    minute: i64,
    attrs: Vec<chat_core::protocol::MessageAttr>,
) -> ServerFrame {
    match public(id, from, text, minute) {
        ServerFrame::Message(mut m) => {
            m.attrs = attrs;
            ServerFrame::Message(m)
        }
        other => other,
    }
}

/// The message entry with `id` in tab `tab`.
fn message_entry(app: &chat_tui::tui::app::App, tab: usize, id: u64) -> EntryKind {
    app.tabs[tab]
        .entries
        .iter()
        .find(|e| e.id == Some(id))
        .map(|e| e.kind.clone())
        .expect("the message")
}

#[test]
fn an_edit_replaces_the_text_and_marks_it_and_replies_quote_the_original() {
    use chat_core::protocol::MessageAttr;
    let mut app = connected("alice", &["alice", "bob"]);
    frame(&mut app, public(5, "bob", "coffee at tne?", 1));
    frame(
        &mut app,
        with_attrs(6, "alice", "yes!", 2, vec![MessageAttr::ReplyTo(5)]),
    );
    frame(
        &mut app,
        with_attrs(7, "bob", "and this?", 2, vec![MessageAttr::ReplyTo(2)]),
    );
    match message_entry(&app, 0, 6) {
        EntryKind::Message { reply: Some(q), .. } => {
            assert_eq!((q.id, q.text.as_deref()), (5, Some("bob: coffee at tne?")));
        }
        other => panic!("{other:?}"),
    }
    // An original this tab never showed is named by its id.
    assert!(matches!(
        message_entry(&app, 0, 7),
        EntryKind::Message { reply: Some(q), .. } if q.id == 2 && q.text.is_none()
    ));
    frame(
        &mut app,
        ServerFrame::Edited {
            id: 5,
            room: Some("lobby".into()),
            text: "coffee at ten?".into(),
            by: "bob".into(),
            at: at(3),
        },
    );
    match message_entry(&app, 0, 5) {
        EntryKind::Message { text, edited, .. } => {
            assert_eq!((text.as_str(), edited), ("coffee at ten?", true));
        }
        other => panic!("{other:?}"),
    }
    // The reply quotes the new text.
    assert!(matches!(
        message_entry(&app, 0, 6),
        EntryKind::Message { reply: Some(q), .. } if q.text.as_deref() == Some("bob: coffee at ten?")
    ));
}

#[test]
fn reactions_show_with_counts_and_are_replaced_by_the_next_list() {
    use chat_core::protocol::Reaction;
    let mut app = connected("alice", &["alice", "bob"]);
    frame(&mut app, public(5, "bob", "shipped!", 1));
    let reactions = |list: &[(&str, &[&str])]| ServerFrame::Reactions {
        id: 5,
        room: Some("lobby".into()),
        reactions: list
            .iter()
            .map(|(e, nicks)| Reaction {
                emoji: (*e).into(),
                nicks: nicks.iter().map(|n| (*n).into()).collect(),
            })
            .collect(),
    };
    frame(
        &mut app,
        reactions(&[("👍", &["bob", "alice"]), ("🎉", &["carol"])]),
    );
    let shown = |app: &chat_tui::tui::app::App| match message_entry(app, 0, 5) {
        EntryKind::Message { reactions, .. } => reactions
            .iter()
            .map(|r| (r.emoji.clone(), r.count, r.mine))
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        shown(&app),
        [("👍".into(), 2, true), ("🎉".into(), 1, false)]
    );
    frame(&mut app, reactions(&[("🎉", &["carol", "bob"])]));
    assert_eq!(shown(&app), [("🎉".into(), 2, false)]);
    frame(&mut app, reactions(&[]));
    assert!(shown(&app).is_empty());
}

#[test]
fn an_expiring_message_counts_down_and_shows_as_expired() {
    use chat_core::protocol::MessageAttr;
    let mut app = connected("alice", &["alice", "bob"]);
    frame(
        &mut app,
        with_attrs(5, "bob", "secret", 0, vec![MessageAttr::ExpiresIn(30)]),
    );
    frame(
        &mut app,
        with_attrs(6, "bob", "later", 0, vec![MessageAttr::ExpiresIn(3600)]),
    );
    assert!(matches!(
        message_entry(&app, 0, 5),
        EntryKind::Message { expires: Some(t), .. } if t == at(0) + chrono::Duration::seconds(30)
    ));
    // Each second redraws while a message counts down.
    app.drawn();
    app.update(Event::Tick);
    assert!(app.needs_redraw());
    // The server's word that it expired: `Deleted` with nobody as `by`.
    frame(
        &mut app,
        ServerFrame::Deleted {
            id: 5,
            room: Some("lobby".into()),
            by: String::new(),
            at: at(1),
        },
    );
    assert!(matches!(
        message_entry(&app, 0, 5),
        EntryKind::Message { text, expires: None, .. } if text == chat_tui::tui::app::EXPIRED
    ));
    // By this client's clock alone (an older server deletes nothing).
    let now = app.now();
    set_clock(&mut app, now, at(61));
    app.update(Event::Tick);
    assert!(matches!(
        message_entry(&app, 0, 6),
        EntryKind::Message { text, .. } if text == "(message expired)"
    ));
    app.drawn();
    app.update(Event::Tick);
    assert!(!app.needs_redraw(), "nothing counts down any more");
}

#[test]
fn reply_edit_react_and_temp_send_their_frames() {
    use chat_core::protocol::MessageAttr;
    let mut app = connected("alice", &["alice", "bob"]);
    let effects = enter_line(&mut app, "/reply 5 sure :tada:");
    match &sent(&effects)[..] {
        [ClientFrame::Send(o)] => {
            assert_eq!(o.attrs, [MessageAttr::ReplyTo(5)]);
            assert_eq!(o.body.text(), "sure 🎉");
            assert_eq!(o.to, Target::Room("lobby".into()));
        }
        other => panic!("{other:?}"),
    }
    let effects = enter_line(&mut app, "/temp 5m gone soon");
    assert!(matches!(
        &sent(&effects)[..],
        [ClientFrame::Send(o)] if o.attrs == [MessageAttr::ExpiresIn(300)]
    ));
    assert_eq!(
        sent(&enter_line(&mut app, "/edit 5 better")),
        [ClientFrame::Edit {
            id: 5,
            text: "better".into()
        }]
    );
    assert_eq!(
        sent(&enter_line(&mut app, "/react 5 :+1:")),
        [ClientFrame::React {
            id: 5,
            emoji: "👍".into()
        }]
    );
    // Refused here: the line stays for correcting.
    assert!(enter_line(&mut app, "/react 5 two words").is_empty());
    assert_eq!(app.input_text(), "/react 5 two words");
    assert!(last_text(&app, 0).contains("one emoji"));

    // A server of protocol 5 gets neither an edit nor a reaction nor an expiring message.
    let mut old = fresh("alice");
    old.start();
    let mut w = welcome("alice", &["alice", "bob"]);
    w.version = 5;
    net(&mut old, NetEvent::Connected(Box::new(w)));
    for line in ["/edit 5 x", "/react 5 👍", "/temp 1m x"] {
        let effects = enter_line(&mut old, line);
        assert!(sent(&effects).is_empty(), "{line}: {effects:?}");
        assert!(last_text(&old, 0).contains("protocol version"), "{line}");
        press_with(&mut old, KeyCode::Char('u'), KeyModifiers::CONTROL);
    }
    // A reply is an ordinary message to an older server.
    assert_eq!(sent(&enter_line(&mut old, "/reply 5 ok")).len(), 1);
}

#[test]
fn alt_up_selects_messages_and_keys_put_the_command_on_the_input_line() {
    let mut app = connected("alice", &["alice", "bob"]);
    frame(&mut app, public(5, "bob", "first", 1));
    frame(&mut app, public(6, "alice", "my typo", 2));
    frame(&mut app, public(7, "bob", "third", 3));
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    assert_eq!(app.selected, Some(7), "the newest first");
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    assert_eq!(app.selected, Some(6));
    press(&mut app, KeyCode::Char('e'));
    assert_eq!(app.input_text(), "/edit 6 my typo");
    assert_eq!(app.selected, None, "acting ends the selection");
    press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);

    // With a selection, plain Up and Down move it too.
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up); // stays on the oldest
    assert_eq!(app.selected, Some(5));
    press(&mut app, KeyCode::Down);
    assert_eq!(app.selected, Some(6));
    press(&mut app, KeyCode::Char('d'));
    assert_eq!(app.input_text(), "/delete 6");
    press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    for (key, line) in [
        (KeyCode::Char('r'), "/reply 7 "),
        (KeyCode::Enter, "/reply 7 "),
        (KeyCode::Char('+'), "/react 7 "),
    ] {
        press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
        let effects = press(&mut app, key);
        assert!(effects.is_empty(), "{key:?}: nothing is sent");
        assert_eq!(app.input_text(), line);
        press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    }
    // Esc ends it; past the newest, Alt-Down ends it too.
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.selected, None);
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    press_with(&mut app, KeyCode::Down, KeyModifiers::ALT);
    assert_eq!(app.selected, None);
    // Up with no selection still recalls what was sent.
    enter_line(&mut app, "hello");
    press(&mut app, KeyCode::Up);
    assert_eq!(app.input_text(), "hello");
    // Typing ends a selection and types.
    press_with(&mut app, KeyCode::Char('u'), KeyModifiers::CONTROL);
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    press(&mut app, KeyCode::Char('h'));
    assert_eq!((app.selected, app.input_text().as_str()), (None, "h"));
}

#[test]
fn search_selects_the_newest_match_and_n_moves_through_the_others() {
    let mut app = connected("alice", &["alice", "bob"]);
    frame(&mut app, public(1, "bob", "Coffee?", 1));
    frame(&mut app, public(2, "bob", "tea", 1));
    frame(&mut app, public(3, "carol", "more coffee", 2));
    frame(&mut app, public(4, "bob", "no", 2));
    enter_line(&mut app, "/search coffee");
    assert!(last_text(&app, 0).starts_with("2 messages match /coffee/"));
    assert_eq!(app.selected, Some(3));
    assert!(app.selection_status().expect("status").contains("2 of 2"));
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(app.selected, Some(1));
    press(&mut app, KeyCode::Char('n')); // no older match: stays
    assert_eq!(app.selected, Some(1));
    press(&mut app, KeyCode::Char('N'));
    assert_eq!(app.selected, Some(3));
    press(&mut app, KeyCode::Esc);
    assert_eq!((app.selected, app.selection_status()), (None, None));
    // An uppercase letter makes it case-sensitive.
    enter_line(&mut app, "/search Coffee");
    assert_eq!(app.selected, Some(1));
    press(&mut app, KeyCode::Esc);
    enter_line(&mut app, "/search nothing-like-it");
    assert!(last_text(&app, 0).contains("no message in this tab matches"));
    assert_eq!(app.selected, None);
    let effects = enter_line(&mut app, "/search (unclosed");
    assert!(effects.is_empty());
    assert!(last_text(&app, 0).contains("not a valid pattern"));
    assert_eq!(app.input_text(), "/search (unclosed", "kept for correcting");
}

#[test]
fn selecting_an_old_message_scrolls_it_into_view() {
    let mut app = connected("alice", &["alice", "bob"]);
    for i in 1..=60 {
        frame(&mut app, public(i, "bob", &format!("message {i}"), 1));
    }
    enter_line(&mut app, "/search ^message 3$");
    assert_eq!(app.selected, Some(3));
    assert!(app.tabs[0].scroll.is_some(), "scrolled back to it");
    press(&mut app, KeyCode::Esc);
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    assert_eq!(app.selected, Some(60));
    assert!(app.tabs[0].scroll.is_none(), "the newest is live");
}

/// The texts of the messages of tab `i`, with whether each came from history.
fn messages_of(app: &chat_tui::tui::app::App, i: usize) -> Vec<(String, bool)> {
    app.tabs[i]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Message { text, history, .. } => Some((text.clone(), *history)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_account_gets_each_private_tabs_history_and_pages_back_with_history() {
    let mut app = connected("alice", &["alice", "bob"]);
    // A guest: nothing is asked, and /history says why.
    let effects = frame(&mut app, private(5, "bob", &["alice"], "still there?", 1));
    assert!(sent(&effects).is_empty(), "{effects:?}");
    let tab = app
        .tabs
        .iter()
        .position(|t| t.kind == TabKind::Private { nick: "bob".into() })
        .expect("bob's tab");
    app.active = tab;
    assert!(sent(&enter_line(&mut app, "/history")).is_empty());
    let said = app.tabs[tab].entries.back().expect("a notice");
    assert!(
        matches!(&said.kind, EntryKind::Notice { text, .. } if text.contains("accounts only")),
        "{said:?}"
    );
    // The refused line stays on the input line, to be corrected.
    assert_eq!(app.input_text(), "/history");
    ctrl(&mut app, 'u');

    // Once an account, the open private tab asks for its latest messages.
    let effects = frame(
        &mut app,
        ServerFrame::Registered {
            nick: "alice".into(),
        },
    );
    assert_eq!(
        sent(&effects),
        [ClientFrame::PrivateHistory {
            with: vec!["bob".into()],
            before: None,
            limit: 50
        }]
    );
    let page = |ids: &[(u64, &str, &str)], more| ServerFrame::PrivateHistory {
        with: vec!["bob".into()],
        messages: ids
            .iter()
            .map(|(id, from, text)| {
                let to = if *from == "bob" { "alice" } else { "bob" };
                match private(*id, from, &[to], text, 0) {
                    ServerFrame::Message(m) => m,
                    _ => unreachable!(),
                }
            })
            .collect(),
        more,
    };
    frame(
        &mut app,
        page(
            &[
                (2, "alice", "lunch?"),
                (3, "bob", "sure"),
                (5, "bob", "still there?"),
            ],
            true,
        ),
    );
    assert_eq!(
        messages_of(&app, tab),
        [
            ("lunch?".to_owned(), true),
            ("sure".to_owned(), true),
            ("still there?".to_owned(), false)
        ]
    );
    // Asked once per connection, not at every event.
    assert!(sent(&frame(&mut app, joined("carol"))).is_empty());
    // /history goes on from the oldest message shown, and says what it found.
    assert_eq!(
        sent(&enter_line(&mut app, "/history 20")),
        [ClientFrame::PrivateHistory {
            with: vec!["bob".into()],
            before: Some(2),
            limit: 20
        }]
    );
    frame(&mut app, page(&[(1, "bob", "hi alice")], false));
    assert_eq!(messages_of(&app, tab)[0], ("hi alice".to_owned(), true));
    let said = app.tabs[tab].entries.back().expect("a notice");
    assert!(
        matches!(&said.kind, EntryKind::Notice { text, .. } if text == "1 earlier message; nothing older"),
        "{said:?}"
    );
    // From another tab, /history bob goes to bob's tab and pages back there.
    app.active = 0;
    assert_eq!(
        sent(&enter_line(&mut app, "/history bob 10")),
        [ClientFrame::PrivateHistory {
            with: vec!["bob".into()],
            before: Some(1),
            limit: 10
        }]
    );
    assert_eq!(app.active, tab);
    // A conversation without a tab: the tab opens and gets its latest messages.
    let effects = enter_line(&mut app, "/history carol");
    assert_eq!(
        sent(&effects),
        [ClientFrame::PrivateHistory {
            with: vec!["carol".into()],
            before: None,
            limit: 50
        }]
    );
    assert_eq!(
        app.tabs[app.active].kind,
        TabKind::Private {
            nick: "carol".into()
        }
    );
}

#[test]
fn a_server_search_lists_what_it_found_and_goes_on_with_older_matches() {
    let mut app = connected("alice", &["alice", "bob"]);
    assert_eq!(
        sent(&enter_line(&mut app, "/search -s coffee")),
        [ClientFrame::Search {
            pattern: "coffee".into(),
            before: None,
            limit: 20
        }]
    );
    let ServerFrame::Message(m) = public(42, "bob", "coffee at ten?", 0) else {
        unreachable!()
    };
    frame(
        &mut app,
        ServerFrame::Found {
            pattern: "coffee".into(),
            messages: vec![m],
            next: Some(42),
        },
    );
    let notices = notices(&app, 0);
    let tail = &notices[notices.len() - 2..];
    assert_eq!(
        tail[0],
        "1 stored message matches /coffee/; /search -s shows older ones:"
    );
    assert!(
        tail[1].starts_with("  #42 ") && tail[1].ends_with(" #lobby <bob> coffee at ten?"),
        "{}",
        tail[1]
    );
    assert_eq!(
        sent(&enter_line(&mut app, "/search -s")),
        [ClientFrame::Search {
            pattern: "coffee".into(),
            before: Some(42),
            limit: 20
        }]
    );
}

#[test]
fn mentions_are_asked_for_and_listed_with_older_ones_on_request() {
    let mut app = connected("alice", &["alice", "bob"]);
    assert_eq!(
        sent(&enter_line(&mut app, "/mentions")),
        [ClientFrame::Mentions {
            before: None,
            limit: 20
        }]
    );
    let ServerFrame::Message(m) = public(42, "bob", "alice: coffee at ten?", 0) else {
        unreachable!()
    };
    frame(
        &mut app,
        ServerFrame::Mentions {
            since: Some(m.at),
            messages: vec![m],
            next: Some(42),
        },
    );
    let notices = notices(&app, 0);
    let tail = &notices[notices.len() - 2..];
    assert!(
        tail[0].starts_with("1 message mentioned you since your last login (")
            && tail[0].ends_with("); /mentions more shows older ones:"),
        "{}",
        tail[0]
    );
    assert!(
        tail[1].starts_with("  #42 ") && tail[1].ends_with(" #lobby <bob> alice: coffee at ten?"),
        "{}",
        tail[1]
    );
    assert_eq!(
        sent(&enter_line(&mut app, "/mentions more")),
        [ClientFrame::Mentions {
            before: Some(42),
            limit: 20
        }]
    );
    frame(
        &mut app,
        ServerFrame::Mentions {
            since: None,
            messages: Vec::new(),
            next: None,
        },
    );
    // None older: said here, nothing sent.
    assert!(sent(&enter_line(&mut app, "/mentions more")).is_empty());
}

/// The notices of tab `tab`, in order.
fn notices(app: &chat_tui::tui::app::App, tab: usize) -> Vec<String> {
    app.tabs[tab]
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Notice { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn reply_and_react_take_a_nickname_for_their_latest_message_in_the_tab() {
    let mut app = connected("alice", &["alice", "bob"]);
    frame(&mut app, public(41, "bob", "lunch?", 0));
    frame(&mut app, public(42, "bob", "at noon?", 1));
    let sent_reply = sent(&enter_line(&mut app, "/reply bob: sure"));
    assert!(
        matches!(
            &sent_reply[..],
            [ClientFrame::Send(o)] if o.attrs == [chat_core::protocol::MessageAttr::ReplyTo(42)]
        ),
        "{sent_reply:?}"
    );
    assert_eq!(
        sent(&enter_line(&mut app, "/react @bob :+1:")),
        [ClientFrame::React {
            id: 42,
            emoji: "👍".into()
        }]
    );
    // Nobody of that name wrote here: said, nothing sent, the line kept.
    assert!(sent(&enter_line(&mut app, "/react carol :+1:")).is_empty());
    assert_eq!(app.input_text(), "/react carol :+1:");
    assert!(
        notices(&app, 0)
            .last()
            .is_some_and(|n| n.contains("no message from carol"))
    );
}
