//! What the full-screen client draws, as text snapshots (`cargo insta review` to update).

mod support;

use std::time::Duration;

use chat_tui::tui::app::{App, Event, NetEvent, TabKind};
use chat_tui::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use support::*;

fn render(app: &mut App, width: u16, height: u16) -> String {
    app.update(Event::Resize { width, height });
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal.draw(|f| ui::draw(f, app)).expect("draw");
    terminal.backend().to_string()
}

/// A lobby with some history.
fn chatting() -> App {
    let mut app = connected("alice", &["alice", "bob", "carol", "*guest"]);
    frame(&mut app, joined("dave"));
    frame(&mut app, public(1, "bob", "morning all", 1));
    frame(&mut app, public(2, "carol", "hi bob! coffee's on", 2));
    let effects = enter_line(&mut app, "on my way");
    echo(&mut app, "alice", &effects, 3);
    frame(&mut app, left("dave"));
    app
}

#[test]
fn connect_screen() {
    let mut app = fresh("alice");
    press(&mut app, KeyCode::Down);
    app.update(Event::Net(NetEvent::Failed {
        message: "cannot connect to 127.0.0.1:12345: connection refused (is the server \
                  running and listening there?)"
            .into(),
        retry: true,
    }));
    insta::assert_snapshot!(render(&mut app, 80, 24));
}

#[test]
fn main_screen() {
    let mut app = chatting();
    insta::assert_snapshot!(render(&mut app, 100, 20));
}

#[test]
fn private_tab_with_unread_lobby() {
    let mut app = chatting();
    frame(
        &mut app,
        private(4, "bob", &["alice"], "psst, are you free at 3?", 3),
    );
    frame(&mut app, private(5, "carol", &["alice"], "ping", 3));
    alt(&mut app, '2');
    frame(&mut app, public(6, "carol", "anyone seen my mug?", 4));
    let effects = enter_line(&mut app, "yes, see you then");
    echo(&mut app, "alice", &effects, 7);
    insta::assert_snapshot!(render(&mut app, 80, 24));
}

#[test]
fn help_overlay() {
    let mut app = chatting();
    press(&mut app, KeyCode::F(1));
    insta::assert_snapshot!(render(&mut app, 80, 24));
}

#[test]
fn collapsed_roster_at_80x24_and_narrow_terminal() {
    let mut app = chatting();
    press(&mut app, KeyCode::F(2));
    insta::assert_snapshot!("roster_hidden_80x24", render(&mut app, 80, 24));
    let mut app = chatting();
    insta::assert_snapshot!("narrow_50x16", render(&mut app, 50, 16));
    // Focusing the roster shows it even when collapsed.
    press(&mut app, KeyCode::BackTab);
    press(&mut app, KeyCode::Down);
    insta::assert_snapshot!("narrow_roster_focused", render(&mut app, 50, 16));
}

#[test]
fn disconnected_with_pending_messages() {
    let mut app = chatting();
    app.update(Event::Net(NetEvent::Lost {
        message: "the server closed the connection".into(),
    }));
    // The countdown is computed from the app's clock.
    let until = match &app.conn {
        chat_tui::tui::app::ConnState::Waiting { until, .. } => *until,
        other => panic!("{other:?}"),
    };
    let wall = app.wall();
    set_clock(&mut app, until - Duration::from_millis(2500), wall);
    enter_line(&mut app, "did everyone get that?");
    insta::assert_snapshot!(render(&mut app, 80, 24));
}

#[test]
fn long_wrapped_message_with_emoji_and_wide_characters() {
    let mut app = connected("alice", &["alice", "bob"]);
    frame(
        &mut app,
        public(
            1,
            "bob",
            "Here is a long message that must wrap under its own text rather than under the \
             nickname 👍🏽 — with emoji 🎉🎉 and wide characters 日本語のテキスト mixed in, \
             plus averyveryveryverylongwordthatcannotbebrokenatanyspaceatallanywhere.",
            1,
        ),
    );
    frame(&mut app, public(2, "bob", "two\nlines", 2));
    insta::assert_snapshot!(render(&mut app, 60, 14));
}

#[test]
fn scrolled_back() {
    let mut app = connected("alice", &["alice", "bob"]);
    for i in 0..60 {
        frame(
            &mut app,
            public(i, "bob", &format!("message number {i}"), 1),
        );
    }
    app.update(Event::Resize {
        width: 80,
        height: 24,
    });
    press(&mut app, KeyCode::PageUp);
    insta::assert_snapshot!(render(&mut app, 80, 24));
}

#[test]
fn many_tabs_keep_the_active_one_visible() {
    let names = [
        "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    ];
    let mut roster = vec!["alice"];
    roster.extend(names);
    let mut app = connected("alice", &roster);
    for (i, n) in names.iter().enumerate() {
        frame(&mut app, private(i as u64, n, &["alice"], "hi", 1));
    }
    alt(&mut app, '9');
    insta::assert_snapshot!(render(&mut app, 80, 6));
}

#[test]
fn no_color_means_no_colours() {
    use ratatui::style::Color;
    let mut app = chatting();
    frame(&mut app, public(9, "bob", "alice: lunch?", 5));
    let colours = |app: &mut App| {
        app.update(Event::Resize {
            width: 80,
            height: 24,
        });
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
        terminal.draw(|f| ui::draw(f, app)).expect("draw");
        terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
            .count()
    };
    assert!(colours(&mut app) > 0, "colours by default");
    app.opts.color = false;
    assert_eq!(colours(&mut app), 0, "none with NO_COLOR");
}

#[test]
fn the_password_is_masked_on_the_connect_screen() {
    let mut app = fresh("alice");
    type_text(&mut app, "s3cret");
    let screen = render(&mut app, 80, 24);
    assert!(!screen.contains("s3cret"), "{screen}");
    assert!(screen.contains("Password   ••••••"), "{screen}");
}

#[test]
fn a_password_typed_after_register_or_password_shows_as_bullets() {
    let mut app = chatting();
    type_text(&mut app, "/register");
    let screen = render(&mut app, 80, 24);
    assert!(
        screen.contains("/register"),
        "the command shows until its argument: {screen}"
    );
    type_text(&mut app, " s3cret");
    let screen = render(&mut app, 80, 24);
    assert!(!screen.contains("s3cret"), "{screen}");
    // The command still shows; the password is one bullet per character.
    assert!(screen.contains("/register •••••• "), "{screen}");
    // The cursor moves over the bullets as it would over the password.
    press(&mut app, KeyCode::Left);
    press(&mut app, KeyCode::Left);
    type_text(&mut app, "x");
    let screen = render(&mut app, 80, 24);
    assert!(screen.contains("/register ••••••• "), "{screen}");
    assert_eq!(app.input_text(), "/register s3crxet");
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Backspace);
    // Wider than the screen, the masked line scrolls like any other: moving the cursor back
    // over what is shown does not slide the bullets.
    let long = "x".repeat(60);
    type_text(&mut app, &long);
    let input_row = |screen: &str| screen.lines().last().unwrap_or_default().to_owned();
    let before = input_row(&render(&mut app, 40, 12));
    assert!(
        !before.contains("/register"),
        "scrolled to the cursor: {before}"
    );
    for _ in 0..5 {
        press(&mut app, KeyCode::Left);
    }
    assert_eq!(input_row(&render(&mut app, 40, 12)), before);
    press(&mut app, KeyCode::Home);
    assert!(input_row(&render(&mut app, 40, 12)).contains("/register •••"));
    press(&mut app, KeyCode::End);
    for _ in 0..long.len() {
        press(&mut app, KeyCode::Backspace);
    }
    // Emptied, the line shows what is typed again.
    for _ in 0.." s3cret".len() + "/register".len() {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "hello");
    assert!(render(&mut app, 80, 24).contains("hello"));
    for _ in 0.."hello".len() {
        press(&mut app, KeyCode::Backspace);
    }
    type_text(&mut app, "/PASSWORD new-one");
    let screen = render(&mut app, 80, 24);
    assert!(!screen.contains("new-one"), "{screen}");
    assert!(screen.contains("/PASSWORD ••••••• "), "{screen}");
    // Sent, the line is empty and shows what is typed next.
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "hello");
    assert!(render(&mut app, 80, 24).contains("hello"));
}

#[test]
fn a_password_on_the_line_after_register_is_hidden_too() {
    let mut app = chatting();
    type_text(&mut app, "/register");
    press_with(&mut app, KeyCode::Enter, KeyModifiers::ALT);
    type_text(&mut app, "s3cret");
    let screen = render(&mut app, 80, 24);
    assert!(!screen.contains("s3cret"), "{screen}");
}

/// The message a frame of `support` carries.
fn message(f: chat_core::protocol::ServerFrame) -> chat_core::protocol::ChatMessage {
    match f {
        chat_core::protocol::ServerFrame::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn a_line_marks_each_new_day() {
    const DAY: i64 = 24 * 60;
    let mut app = connected("alice", &["alice", "bob"]);
    // The lobby's history reaches back two days; a private message was kept from yesterday.
    frame(
        &mut app,
        chat_core::protocol::ServerFrame::History {
            room: "lobby".into(),
            messages: vec![
                message(public(1, "bob", "two days ago", -2 * DAY)),
                message(public(2, "bob", "late yesterday", -DAY + 600)),
            ],
            more: false,
        },
    );
    frame(&mut app, public(3, "bob", "and today", 1));
    frame(
        &mut app,
        chat_core::protocol::ServerFrame::Offline(vec![message(private(
            4,
            "bob",
            &["alice"],
            "kept since yesterday",
            -DAY + 5,
        ))]),
    );
    insta::assert_snapshot!("day_lines_lobby", render(&mut app, 80, 16));
    // The private tab starts with yesterday's message: its day is said at the top.
    alt(&mut app, '2');
    insta::assert_snapshot!("day_lines_private_tab", render(&mut app, 80, 8));
    // Scrolled to the top of a short pane, the day lines count as rows.
    alt(&mut app, '1');
    press(&mut app, KeyCode::PageUp);
    press(&mut app, KeyCode::PageUp);
    insta::assert_snapshot!("day_lines_scrolled_to_the_top", render(&mut app, 80, 8));
}

#[test]
fn a_file_offer_and_transfers_under_way_in_the_private_tab() {
    use chat_tui::files::{FileEvent, Progress};
    let mut app = chatting();
    let offer = chat_core::protocol::FileInfo {
        id: 7,
        from: "bob".into(),
        name: "report.pdf".into(),
        size: 2_400_000,
        sha256: chat_core::files::sha256(b"report"),
    };
    let effects = app.update(Event::File(FileEvent::Incoming(offer)));
    assert!(
        effects.contains(&chat_tui::tui::app::Effect::Bell),
        "{effects:?}"
    );
    // The offer opened bob's tab; the user goes there and accepts.
    alt(&mut app, '2');
    let effects = enter_line(&mut app, "/accept");
    assert_eq!(
        effects,
        [chat_tui::tui::app::Effect::File(
            chat_tui::command::FileCommand::Accept(None)
        )]
    );
    let progress = |id, outgoing, name: &str, done, size, rate| Progress {
        id,
        outgoing,
        peer: "bob".into(),
        name: name.into(),
        done,
        size,
        rate,
    };
    app.update(Event::File(FileEvent::Progress(progress(
        7,
        false,
        "report.pdf",
        1_080_000,
        2_400_000,
        1_200_000.0,
    ))));
    app.update(Event::File(FileEvent::Progress(progress(
        8,
        true,
        "photos.tar",
        30_000_000,
        40_000_000,
        25_000_000.0,
    ))));
    insta::assert_snapshot!(render(&mut app, 80, 16));
    // Done: the bar goes, the tab says where the file is.
    app.update(Event::File(FileEvent::Done {
        progress: progress(7, false, "report.pdf", 2_400_000, 2_400_000, 1_200_000.0),
        path: Some("/home/alice/Downloads/report.pdf".into()),
    }));
    let screen = render(&mut app, 80, 16);
    assert!(
        screen.contains("saved as /home/alice/Downloads/report.pdf"),
        "{screen}"
    );
    assert!(!screen.contains("report.pdf  45%"), "{screen}");
}

#[test]
fn replies_edits_reactions_and_expiring_messages() {
    use chat_core::protocol::{MessageAttr, Reaction, ServerFrame};
    let mut app = connected("alice", &["alice", "bob", "carol"]);
    let with = |f: ServerFrame, attrs: Vec<MessageAttr>| match f {
        ServerFrame::Message(mut m) => {
            m.attrs = attrs;
            ServerFrame::Message(m)
        }
        other => other,
    };
    frame(
        &mut app,
        public(
            1,
            "bob",
            "anyone up for lunch at the new place on the corner?",
            1,
        ),
    );
    frame(
        &mut app,
        with(
            public(2, "carol", "count me in", 2),
            vec![MessageAttr::ReplyTo(1)],
        ),
    );
    frame(
        &mut app,
        ServerFrame::Edited {
            id: 2,
            room: Some("lobby".into()),
            text: "count me in, 12:30?".into(),
            by: "carol".into(),
            at: at(3),
        },
    );
    frame(
        &mut app,
        ServerFrame::Reactions {
            id: 1,
            room: Some("lobby".into()),
            reactions: vec![
                Reaction {
                    emoji: "👍".into(),
                    nicks: vec!["alice".into(), "carol".into()],
                },
                Reaction {
                    emoji: "🍕".into(),
                    nicks: vec!["carol".into()],
                },
            ],
        },
    );
    frame(
        &mut app,
        with(
            public(3, "bob", "door code 4711", 3),
            vec![MessageAttr::ExpiresIn(90)],
        ),
    );
    // 29 seconds after it was sent.
    let now = app.now();
    set_clock(&mut app, now, at(3) + chrono::Duration::seconds(29));
    insta::assert_snapshot!("message_extras", render(&mut app, 80, 12));
    // Selected, a message shows its id, and the status bar its keys.
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    press_with(&mut app, KeyCode::Up, KeyModifiers::ALT);
    insta::assert_snapshot!("message_selected", render(&mut app, 80, 12));
}

#[test]
fn a_line_marks_where_the_unread_messages_of_a_tab_begin() {
    let mut app = chatting();
    frame(
        &mut app,
        private(10, "bob", &["alice"], "are you there?", 4),
    );
    let bob = app
        .tabs
        .iter()
        .position(|t| t.kind == TabKind::Private { nick: "bob".into() })
        .expect("bob's tab");
    app.select_tab(bob);
    app.select_tab(0);
    // While the tab is elsewhere, two more arrive: the marker goes above the first of them.
    frame(&mut app, private(11, "bob", &["alice"], "hello?", 5));
    frame(&mut app, private(12, "bob", &["alice"], "ok, later", 6));
    app.select_tab(bob);
    let screen = render(&mut app, 80, 24);
    let rows: Vec<&str> = screen.lines().collect();
    let marker = rows
        .iter()
        .position(|r| r.contains("── unread ──"))
        .expect("a marker");
    assert!(rows[marker - 1].contains("are you there?"), "{screen}");
    assert!(rows[marker + 1].contains("hello?"), "{screen}");
    assert_eq!(screen.matches("── unread ──").count(), 1);
    // Read, and left with nothing new: the marker stays where it was.
    app.select_tab(0);
    app.select_tab(bob);
    assert!(render(&mut app, 80, 24).contains("── unread ──"));
}
