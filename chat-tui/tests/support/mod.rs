//! Building blocks for driving the full-screen client's state without a terminal.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use chat_core::protocol::{
    Body, ChatMessage, DisconnectReason, Limits, ServerFrame, Target, UserInfo, Welcome,
};
use chat_tui::tui::app::{App, Backoff, Clock, Effect, Event, NetEvent, Options};
use chrono::{DateTime, TimeZone, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A fixed wall-clock time: 12:04 UTC.
pub fn at(minute_offset: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 4, 0)
        .single()
        .expect("valid time")
        + chrono::Duration::minutes(minute_offset)
}

pub fn options() -> Options {
    Options {
        utc: true,
        color: true,
        scrollback: 10_000,
        roster: true,
        ignore_file: None,
    }
}

pub fn user(nick: &str) -> UserInfo {
    UserInfo {
        nick: nick.to_owned(),
        relayed: nick.starts_with('*'),
    }
}

pub fn welcome(nick: &str, roster: &[&str]) -> Welcome {
    Welcome {
        version: chat_core::protocol::PROTOCOL_VERSION,
        server: "chat-server/0.1.0".to_owned(),
        nick: nick.to_owned(),
        requested_nick: nick.to_owned(),
        nick_change: None,
        server_time: at(0),
        room: "lobby".to_owned(),
        rooms: Vec::new(),
        roster: roster.iter().map(|n| user(n)).collect(),
        limits: Limits {
            max_frame: 65536,
            max_message_len: 4096,
            max_targets: 16,
            rate_burst: 10,
            rate_interval_ms: 500,
        },
    }
}

/// A client that asked for `nick`, before connecting.
pub fn fresh(nick: &str) -> App {
    let mut app = App::new(
        Some(nick.to_owned()),
        "127.0.0.1:12345".to_owned(),
        options(),
        Instant::now(),
    );
    let now = app.now();
    set_clock(&mut app, now, at(0));
    app.backoff = Backoff::new(fastrand::Rng::with_seed(7));
    app
}

/// Sets the app's clock, as the driver does before each event.
pub fn set_clock(app: &mut App, now: Instant, wall: DateTime<Utc>) {
    app.update(Event::Clock(Clock { now, wall }));
}

/// Lets `by` pass on the app's clock (the wall clock stays put).
pub fn advance(app: &mut App, by: Duration) {
    let (now, wall) = (app.now() + by, app.wall());
    set_clock(app, now, wall);
}

/// A client connected as `nick` with `roster` online, on an 80×24 terminal.
pub fn connected(nick: &str, roster: &[&str]) -> App {
    let mut app = fresh(nick);
    let effects = app.start();
    assert!(
        matches!(effects[..], [Effect::Connect { .. }]),
        "{effects:?}"
    );
    net(
        &mut app,
        NetEvent::Connected(Box::new(welcome(nick, roster))),
    );
    app
}

pub fn net(app: &mut App, ev: NetEvent) -> Vec<Effect> {
    app.update(Event::Net(ev))
}

pub fn frame(app: &mut App, f: ServerFrame) -> Vec<Effect> {
    net(app, NetEvent::Frame(f))
}

pub fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub fn press_with(app: &mut App, code: KeyCode, mods: KeyModifiers) -> Vec<Effect> {
    app.update(Event::Key(KeyEvent::new(code, mods)))
}

pub fn alt(app: &mut App, c: char) -> Vec<Effect> {
    press_with(app, KeyCode::Char(c), KeyModifiers::ALT)
}

pub fn ctrl(app: &mut App, c: char) -> Vec<Effect> {
    press_with(app, KeyCode::Char(c), KeyModifiers::CONTROL)
}

/// Types `text` key by key.
pub fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// Types `text` and presses Enter.
pub fn enter_line(app: &mut App, text: &str) -> Vec<Effect> {
    type_text(app, text);
    press(app, KeyCode::Enter)
}

pub fn public(id: u64, from: &str, text: &str, minute: i64) -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id,
        at: at(minute),
        from: from.to_owned(),
        to: Target::Room("lobby".to_owned()),
        body: Body::Text(text.to_owned()),
        attrs: Vec::new(),
        tag: None,
    })
}

pub fn private(id: u64, from: &str, to: &[&str], text: &str, minute: i64) -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        id,
        at: at(minute),
        from: from.to_owned(),
        to: Target::Users(to.iter().map(|s| (*s).to_owned()).collect()),
        body: Body::Text(text.to_owned()),
        attrs: Vec::new(),
        tag: None,
    })
}

pub fn joined(nick: &str) -> ServerFrame {
    ServerFrame::Joined {
        room: "lobby".to_owned(),
        user: user(nick),
        at: at(0),
    }
}

pub fn left(nick: &str) -> ServerFrame {
    ServerFrame::Left {
        room: "lobby".to_owned(),
        nick: nick.to_owned(),
        reason: DisconnectReason::Quit,
        message: String::new(),
        at: at(0),
    }
}

/// The frames among `effects`.
pub fn sent(effects: &[Effect]) -> Vec<chat_core::protocol::ClientFrame> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// The texts of the messages among `effects`, with their targets.
pub fn sent_texts(effects: &[Effect]) -> Vec<(Target, String)> {
    sent(effects)
        .into_iter()
        .filter_map(|f| match f {
            chat_core::protocol::ClientFrame::Send(o) => {
                let text = match o.body {
                    Body::Text(t) | Body::Action(t) => t,
                };
                Some((o.to, text))
            }
            _ => None,
        })
        .collect()
}

/// Acknowledges every message among `effects` the way the server does: by echoing it back.
pub fn echo(app: &mut App, nick: &str, effects: &[Effect], id: u64) {
    for f in sent(effects) {
        if let chat_core::protocol::ClientFrame::Send(o) = f {
            frame(
                app,
                ServerFrame::Message(ChatMessage {
                    id,
                    at: at(1),
                    from: nick.to_owned(),
                    to: o.to,
                    body: o.body,
                    attrs: o.attrs,
                    tag: Some(o.tag),
                }),
            );
        }
    }
}
