//! The full-screen client's state. [`App::update`] takes one [`Event`] (a key, a paste, a
//! network event, a tick), changes the state and returns the [`Effect`]s the driver must carry
//! out (send a frame, ring the bell, connect, quit). Nothing here touches a terminal or a
//! socket, so every behaviour can be tested by feeding events.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_core::names::fold;
use chat_core::protocol::{
    Body, ChatMessage, ClientFrame, DEFAULT_ROOM, DisconnectReason, ErrorCode, Limits,
    PROTOCOL_VERSION, Password, ServerFrame, Target, UserInfo, Welcome,
};
use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyEvent, KeyEventKind, MouseEvent};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};

use crate::event::sanitize_text;

use super::layout::layout;

mod backoff;
mod commands;
mod conn;
mod form;
mod input;
mod keys;
mod outgoing;
mod scroll;
mod tabs;

pub use super::config::Options;
pub use super::entry::{Entry, EntryKind};
pub use backoff::Backoff;
pub use conn::ConnState;
pub use form::{ConnectForm, Field};
pub use input::InputLine;
pub use keys::Focus;
pub use outgoing::Pending;
pub use tabs::{Anchor, Tab, TabKind};

/// Something that happened: input from the terminal, news from the network, or time passing.
#[derive(Debug)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// A bracketed paste: one piece of text, newlines included.
    Paste(String),
    /// A mouse event (the wheel scrolls).
    Mouse(MouseEvent),
    /// The terminal was resized.
    Resize { width: u16, height: u16 },
    /// News from the network task.
    Net(NetEvent),
    /// Time passed (drives the reconnect countdown).
    Tick,
    /// The terminal went away (input closed, SIGHUP, SIGTERM).
    Hangup,
}

/// What the network task reports.
#[derive(Debug)]
pub enum NetEvent {
    /// A connection attempt started.
    Connecting,
    /// The handshake succeeded.
    Connected(Box<Welcome>),
    /// A frame from the server.
    Frame(ServerFrame),
    /// A measured round trip.
    Lag(Duration),
    /// A connection attempt failed; `retry` says whether trying again may help.
    Failed { message: String, retry: bool },
    /// An established connection was lost or closed by the server.
    Lost { message: String },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Connect (after `delay`) to `server` asking for `nick`.
    Connect {
        server: String,
        nick: String,
        /// Account password; `None` connects as a guest.
        password: Option<Password>,
        delay: Duration,
    },
    /// Send a frame on the current connection.
    Send(ClientFrame),
    /// Ring the terminal bell.
    Bell,
    /// Say goodbye to the server, then exit.
    Quit { reason: String },
    /// Exit now (nothing to say goodbye to).
    Exit,
}

/// The two screens.
#[derive(Debug)]
pub enum Screen {
    /// Asking for the nickname and the server.
    Connect(Box<ConnectForm>),
    /// Chatting.
    Main,
}

/// The whole client state.
#[derive(Debug)]
pub struct App {
    /// Settings.
    pub opts: Options,
    /// Current screen.
    pub screen: Screen,
    /// Connection state.
    pub conn: ConnState,
    /// Server address in use.
    pub server: String,
    /// The nickname the user asked for (asked for again on every reconnect).
    pub requested_nick: String,
    /// The nickname the server gave us.
    pub nick: String,
    /// Tabs; the lobby is always first.
    pub tabs: Vec<Tab>,
    /// Index of the tab on screen.
    pub active: usize,
    /// Everyone online (the lobby's members), sorted.
    pub roster: Vec<UserInfo>,
    /// The members of the other rooms we are in, by folded room name, sorted.
    pub room_rosters: HashMap<String, Vec<UserInfo>>,
    /// Account password given at connect (kept for reconnecting).
    password: Option<Password>,
    /// The room asked for with `/join`, whose tab gets the focus when entered.
    joining: Option<String>,
    /// Rooms whose next roster comes with entering them: not shown as a notice.
    quiet_rosters: HashSet<String>,
    /// Rooms entered on this connection (entering again, as when the client rejoins what the
    /// server already restored, is not announced twice).
    entered: HashSet<String>,
    /// Rooms whose older history the user asked for (`/history`), folded.
    history_asked: HashSet<String>,
    /// The password of a `/register` or `/password` waiting for the server's confirmation.
    new_password: Option<Password>,
    /// The protocol version of the connection (the latest until a server says otherwise).
    server_version: u16,
    /// The server said this connection was replaced by another login to the account.
    replaced: bool,
    /// Private messages kept for us shown since this connection began.
    offline_shown: usize,
    /// Selected roster row.
    pub roster_selected: usize,
    /// Which pane has the keyboard.
    pub focus: Focus,
    /// The input line.
    input: InputLine,
    /// The help overlay is open.
    pub help: bool,
    /// The roster sidebar is wanted (F2 toggles).
    pub show_roster: bool,
    /// Terminal size.
    pub size: (u16, u16),
    /// Last measured round trip.
    pub lag: Option<Duration>,
    /// The time, as of the current event.
    pub now: Instant,
    /// The wall-clock time, as of the current event (stamps the client's own notices).
    pub wall: DateTime<Utc>,
    /// Reconnect delays.
    pub backoff: Backoff,
    limits: Option<Limits>,
    next_tag: u64,
    in_flight: HashMap<u64, (TabKind, Pending)>,
    ever_connected: bool,
    /// Pending messages are not sent before this (rate limit).
    flush_at: Option<Instant>,
    /// The user was told that quitting drops unsent messages.
    quit_armed: bool,
    /// Leaving on purpose to come back under the requested nickname.
    reclaiming: bool,
    /// Something changed since the last draw.
    pub dirty: bool,
}

impl App {
    /// A client showing the connect screen prefilled with `nick` and `server`; with both given,
    /// call [`App::start`] to connect at once.
    pub fn new(nick: Option<String>, server: String, opts: Options, now: Instant) -> Self {
        let show_roster = opts.roster;
        App {
            screen: Screen::Connect(Box::new(ConnectForm::new(nick.as_deref(), &server))),
            opts,
            conn: ConnState::Idle,
            server,
            requested_nick: nick.clone().unwrap_or_default(),
            nick: nick.unwrap_or_default(),
            tabs: vec![Tab::new(TabKind::Lobby)],
            active: 0,
            roster: Vec::new(),
            room_rosters: HashMap::new(),
            password: None,
            joining: None,
            quiet_rosters: HashSet::new(),
            entered: HashSet::new(),
            history_asked: HashSet::new(),
            new_password: None,
            server_version: PROTOCOL_VERSION,
            replaced: false,
            offline_shown: 0,
            roster_selected: 0,
            focus: Focus::Input,
            input: InputLine::default(),
            help: false,
            show_roster,
            size: (80, 24),
            lag: None,
            now,
            wall: Utc::now(),
            backoff: Backoff::new(fastrand::Rng::new()),
            limits: None,
            next_tag: 1,
            in_flight: HashMap::new(),
            ever_connected: false,
            flush_at: None,
            quit_armed: false,
            reclaiming: false,
            dirty: true,
        }
    }

    /// Submits the connect form (what Enter does there): used to connect at once when the
    /// nickname and the server were both given on the command line.
    pub fn start(&mut self) -> Vec<Effect> {
        self.submit_form()
    }

    /// Handles one event.
    pub fn update(&mut self, event: Event) -> Vec<Effect> {
        let was_dirty = self.dirty;
        self.dirty = true;
        let effects = self.handle(event);
        self.dirty |= was_dirty;
        self.sync_styles();
        self.lay_out();
        effects
    }

    fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(key) if key.kind == KeyEventKind::Release => {
                self.dirty = false;
                Vec::new()
            }
            Event::Key(key) => match self.screen {
                Screen::Connect(_) => self.form_key(key),
                Screen::Main => self.main_key(key),
            },
            Event::Paste(text) => {
                let text = text.replace("\r\n", "\n").replace('\r', "\n");
                match &mut self.screen {
                    Screen::Connect(form) => form.paste(&text),
                    Screen::Main => {
                        self.focus = Focus::Input;
                        self.input.paste(&text);
                    }
                }
                Vec::new()
            }
            Event::Mouse(mouse) => {
                self.mouse(mouse);
                Vec::new()
            }
            Event::Resize { width, height } => {
                self.size = (width, height);
                Vec::new()
            }
            Event::Net(net) => self.net(net),
            Event::Hangup => {
                // The terminal is gone: nobody can confirm anything.
                self.quit_armed = true;
                self.quit("terminal closed".to_owned())
            }
            Event::Tick => {
                // Only the countdown changes with time, and queued messages may be due.
                self.dirty = matches!(self.conn, ConnState::Waiting { .. });
                if self.flush_at.is_some_and(|at| at <= self.now) {
                    self.dirty = true;
                    self.flush_pending()
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Shows the cursor only in the field or line that has the keyboard.
    fn sync_styles(&mut self) {
        let cursor = Style::default().add_modifier(Modifier::REVERSED);
        let hidden = Style::default();
        if let Screen::Connect(form) = &mut self.screen {
            form.show_cursor(cursor);
        }
        let input_focused =
            matches!(self.screen, Screen::Main) && self.focus == Focus::Input && !self.help;
        self.input
            .set_cursor_style(if input_focused { cursor } else { hidden });
    }

    /// The text in the input line.
    pub fn input_text(&self) -> String {
        self.input.text()
    }

    /// The input line.
    pub fn input(&self) -> &InputLine {
        &self.input
    }

    /// Replaces the text in the input line.
    fn set_input(&mut self, text: &str) {
        self.input.set(text);
    }

    /// Completes the nickname before the cursor from everyone online and the private tabs;
    /// false when there is no word to complete.
    fn complete(&mut self) -> bool {
        let privates = self.tabs.iter().filter_map(|t| match &t.kind {
            TabKind::Private { nick } => Some(nick.clone()),
            TabKind::Lobby | TabKind::Room { .. } => None,
        });
        let names = self.roster.iter().map(|u| u.nick.clone()).chain(privates);
        self.input.complete(names, &self.nick)
    }

    /// Works out where the text fields on screen are scrolled to, as drawing will show them.
    fn lay_out(&mut self) {
        if let Screen::Main = self.screen {
            let screen = Rect::new(0, 0, self.size.0, self.size.1);
            let area = layout(screen, self.panes()).input;
            self.input.lay_out(area);
        }
    }

    /// The people the sidebar shows: the members of the room on screen (everyone online in
    /// the lobby and in private tabs).
    pub fn shown_roster(&self) -> &[UserInfo] {
        match &self.tabs[self.active].kind {
            TabKind::Room { name } => self.room_rosters.get(&fold(name)).map_or(&[], |v| v),
            _ => &self.roster,
        }
    }

    /// Is `nick` online (in the roster)?
    pub fn is_online(&self, nick: &str) -> bool {
        let key = fold(nick);
        self.roster.iter().any(|u| fold(&u.nick) == key)
    }

    fn frame(&mut self, frame: ServerFrame) -> Vec<Effect> {
        match frame {
            ServerFrame::Message(m) => self.show_message(m, false),
            ServerFrame::Joined { room, user, .. } if fold(&room) != DEFAULT_ROOM => {
                let nick = crate::event::sanitize_line(&user.nick);
                let Some(i) = self.known_room_tab(&room) else {
                    return Vec::new();
                };
                self.notice(
                    i,
                    &format!("{nick} joined #{}", self.tabs[i].kind.title()),
                    false,
                );
                let key = fold(&user.nick);
                self.change_room_roster(&room, |roster| {
                    roster.retain(|u| fold(&u.nick) != key);
                    roster.push(user);
                });
                Vec::new()
            }
            ServerFrame::Left {
                room,
                nick,
                reason,
                message,
                ..
            } if fold(&room) != DEFAULT_ROOM => {
                let key = fold(&nick);
                self.change_room_roster(&room, |roster| {
                    roster.retain(|u| fold(&u.nick) != key);
                });
                let nick = crate::event::sanitize_line(&nick);
                let why = left_why(reason, &message);
                let Some(i) = self.known_room_tab(&room) else {
                    return Vec::new();
                };
                self.notice(i, &format!("{nick} left ({why})"), false);
                Vec::new()
            }
            ServerFrame::Joined { user, .. } => {
                let nick = crate::event::sanitize_line(&user.nick);
                let guest = if user.relayed { " (relayed guest)" } else { "" };
                self.notice(0, &format!("{nick} joined{guest}"), false);
                self.notice_private(&nick, &format!("{nick} is back online"));
                let key = fold(&user.nick);
                self.change_roster(|roster| {
                    roster.retain(|u| fold(&u.nick) != key);
                    roster.push(user);
                });
                // Messages kept for them go now.
                self.flush_pending()
            }
            ServerFrame::Left {
                nick,
                reason,
                message,
                ..
            } => {
                let key = fold(&nick);
                self.change_roster(|roster| roster.retain(|u| fold(&u.nick) != key));
                let nick = crate::event::sanitize_line(&nick);
                let why = left_why(reason, &message);
                self.notice(0, &format!("{nick} left ({why})"), false);
                self.notice_private(
                    &nick,
                    &format!("{nick} left ({why}); messages cannot be sent until they return"),
                );
                // The name we asked for (held by a stale session of ours, say) is free again.
                if key == fold(&self.requested_nick) && key != fold(&self.nick) {
                    let text = format!(
                        "the nickname {} is free again: /reconnect to take it",
                        self.requested_nick
                    );
                    self.notice(0, &text, false);
                }
                Vec::new()
            }
            ServerFrame::Roster { room, users } => {
                let names: Vec<String> = users
                    .iter()
                    .map(|u| crate::event::sanitize_line(&u.nick))
                    .collect();
                let text = format!("in #{room} ({}): {}", names.len(), names.join(", "));
                if fold(&room) == DEFAULT_ROOM {
                    self.set_roster(users);
                    self.notice_active(
                        &format!("online ({}): {}", names.len(), names.join(", ")),
                        false,
                    );
                } else if let Some(i) = self.known_room_tab(&room) {
                    self.change_room_roster(&room, |roster| *roster = users);
                    // Shown when asked for (/who), not when the room is entered.
                    if !self.quiet_rosters.remove(&fold(&room)) {
                        self.notice(i, &crate::event::sanitize_line(&text), false);
                    }
                }
                Vec::new()
            }
            ServerFrame::Entered { room, topic } => {
                let i = self.room_tab(&room);
                let focus = self.joining.as_deref() == Some(fold(&room).as_str());
                if focus {
                    self.joining = None;
                    self.select_tab(i);
                }
                self.quiet_rosters.insert(fold(&room));
                if !self.entered.insert(fold(&room)) {
                    return Vec::new();
                }
                let room = crate::event::sanitize_line(&room);
                let text = if topic.is_empty() {
                    format!("you are in #{room}")
                } else {
                    format!(
                        "you are in #{room}; topic: {}",
                        crate::event::sanitize_line(&topic)
                    )
                };
                self.notice(i, &text, false);
                Vec::new()
            }
            ServerFrame::Parted { room } => {
                let kind = TabKind::Room { name: room.clone() };
                if let Some(i) = self.tabs.iter().position(|t| t.kind.is(&kind)) {
                    self.remove_tab(i);
                }
                let room = crate::event::sanitize_line(&room);
                self.notice_active(&format!("you left #{room}"), false);
                Vec::new()
            }
            ServerFrame::Rooms(rooms) => {
                self.notice_active(&format!("{} rooms:", rooms.len()), false);
                for r in rooms {
                    let mut text = format!("  #{} ({})", r.name, r.members);
                    if !r.topic.is_empty() {
                        text.push_str(&format!(": {}", r.topic));
                    }
                    self.notice_active(&crate::event::sanitize_line(&text), false);
                }
                Vec::new()
            }
            ServerFrame::Topic {
                room, topic, by, ..
            } => {
                let Some(i) = self.known_room_tab(&room) else {
                    return Vec::new();
                };
                let text = if topic.is_empty() {
                    format!("{by} cleared the topic")
                } else {
                    format!("{by} set the topic: {topic}")
                };
                self.notice(i, &crate::event::sanitize_line(&text), false);
                Vec::new()
            }
            ServerFrame::History {
                room,
                messages,
                more,
            } => {
                let asked = self.history_asked.remove(&fold(&room));
                // An answer that arrives after the room was left opens nothing.
                let Some(i) = self.known_room_tab(&room) else {
                    return Vec::new();
                };
                let shown = self.insert_history(i, messages);
                // A replay on entering says only whether there is more; an answer to
                // /history says what it found.
                if asked || (shown > 0 && more) {
                    let text = match (shown, more) {
                        (0, false) => "no older messages".to_owned(),
                        (1, false) => "1 earlier message; nothing older".to_owned(),
                        (1, true) => "1 earlier message; /history shows older ones".to_owned(),
                        (n, false) => format!("{n} earlier messages; nothing older"),
                        (n, true) => format!("{n} earlier messages; /history shows older ones"),
                    };
                    self.notice(i, &text, false);
                }
                Vec::new()
            }
            ServerFrame::Offline(messages) => {
                let n = messages.len();
                let up_to = messages.last().map(|m| m.id);
                let mut effects = Vec::new();
                for m in messages {
                    effects.extend(self.show_message(m, true));
                }
                // One notice and one bell for the whole backlog, however many pages it takes.
                self.offline_shown += n;
                let first_page = self.offline_shown == n;
                let text = format!(
                    "{} private message(s) arrived while you were away",
                    self.offline_shown
                );
                match self.tabs[0].entries.back_mut() {
                    Some(Entry {
                        kind: EntryKind::Notice { text: last, .. },
                        ..
                    }) if !first_page && last.ends_with("arrived while you were away") => {
                        *last = text;
                    }
                    _ => self.notice(0, &text, false),
                }
                effects.truncate(usize::from(first_page));
                // The server stops keeping them, and sends the next page if there is one.
                if let Some(up_to) = up_to {
                    effects.push(Effect::Send(ClientFrame::AckOffline { up_to }));
                }
                effects
            }
            ServerFrame::Queued { to, .. } => {
                let who = crate::event::sanitize_line(&to.join(", "));
                let text = format!("{who} offline: kept for them until they log in");
                match to.first() {
                    Some(nick) => {
                        let i = self.open_tab(nick);
                        self.notice(i, &text, false);
                    }
                    None => self.notice_active(&text, false),
                }
                Vec::new()
            }
            ServerFrame::Registered { nick } => {
                // Reconnecting logs in with the new password from now on.
                if let Some(password) = self.new_password.take() {
                    self.password = Some(password);
                }
                // The account is this nickname (perhaps with the number the server added).
                self.requested_nick.clone_from(&nick);
                let nick = crate::event::sanitize_line(&nick);
                self.notice_active(
                    &format!(
                        "{nick} is registered: next time, log in with your password \
                         (the Password field, or --password)"
                    ),
                    false,
                );
                Vec::new()
            }
            ServerFrame::PasswordChanged => {
                if let Some(password) = self.new_password.take() {
                    self.password = Some(password);
                }
                self.notice_active("your password was changed", false);
                Vec::new()
            }
            ServerFrame::Error(e) => {
                // A refused /register or /password leaves the password in use as it was (the
                // server's refusals of those name the password or the registration).
                let about_password = e.code == ErrorCode::InvalidPassword
                    || (matches!(e.code, ErrorCode::NotAllowed | ErrorCode::Busy)
                        && (e.message.contains("password") || e.message.contains("regist")));
                if e.tag.is_none() && about_password {
                    self.new_password = None;
                }
                let lost = e.tag.and_then(|t| self.in_flight.remove(&t));
                let reason = match &e.code {
                    ErrorCode::NoSuchUser(who) => format!(
                        "{} not online",
                        crate::event::sanitize_line(&who.join(", "))
                    ),
                    _ => crate::event::sanitize_line(&e.message),
                };
                match lost {
                    // A private message to someone who just left waits for their return.
                    Some((kind @ TabKind::Private { .. }, p))
                        if matches!(&e.code, ErrorCode::NoSuchUser(_))
                            && matches!(&p.to, Target::Users(to) if to.len() == 1) =>
                    {
                        let i = self.open_tab(kind.title());
                        self.requeue(&kind, p);
                        self.notice(
                            i,
                            &format!("not sent: {reason}; it stays pending until they are back"),
                            true,
                        );
                    }
                    // Anything else is shown with its text, so nothing typed disappears.
                    Some((kind, p)) => {
                        let i = self.tab_for(&kind);
                        let text = match p.body {
                            Body::Text(t) | Body::Action(t) => t,
                        };
                        self.notice(i, &format!("not sent ({reason}): {text}"), true);
                    }
                    None => self.notice_active(&format!("the server says: {reason}"), true),
                }
                Vec::new()
            }
            ServerFrame::RateLimited {
                tag,
                retry_after_ms,
            } => {
                let wait = Duration::from_millis(u64::from(retry_after_ms));
                let lost = tag.and_then(|t| self.in_flight.remove(&t));
                let already_waiting = self.flush_at.is_some_and(|at| at > self.now);
                self.flush_at = Some(self.flush_at.unwrap_or(self.now).max(self.now + wait));
                match lost {
                    Some((kind, p)) => {
                        // Sent again by itself once the server allows it.
                        self.requeue(&kind, p);
                        if !already_waiting {
                            let secs = wait.as_secs_f64();
                            self.notice_active(
                                &format!(
                                    "slow down: the server limits how fast messages go; \
                                     what is pending is sent again in {secs:.1} s"
                                ),
                                true,
                            );
                        }
                    }
                    None => {
                        let secs = wait.as_secs_f64();
                        self.notice_active(&format!("slow down: try again in {secs:.1} s"), true);
                    }
                }
                Vec::new()
            }
            ServerFrame::Bye { reason, message } => {
                self.replaced = reason == DisconnectReason::LoggedInElsewhere;
                if self.conn != ConnState::Quitting && !self.reclaiming {
                    let message = crate::event::sanitize_line(&message);
                    self.notice(
                        0,
                        &format!(
                            "the server disconnected us ({}): {message}",
                            reason.describe()
                        ),
                        true,
                    );
                }
                Vec::new()
            }
            ServerFrame::Welcome(_) | ServerFrame::Rejected(_) | ServerFrame::Pong { .. } => {
                self.dirty = false;
                Vec::new()
            }
        }
    }

    /// Shows a chat message in its tab (a room's, or the private conversation's); `history`
    /// marks one replayed from the server's store.
    fn show_message(&mut self, m: ChatMessage, history: bool) -> Vec<Effect> {
        if let Some(tag) = m.tag {
            self.in_flight.remove(&tag);
        }
        let own = fold(&m.from) == fold(&self.nick);
        let (text, action) = match m.body {
            Body::Text(t) => (sanitize_text(&t), false),
            Body::Action(t) => (sanitize_text(&t), true),
        };
        let from = crate::event::sanitize_line(&m.from);
        let mention = !own && !history && mentions(&text, &self.nick);
        let entry = Entry {
            at: m.at,
            kind: EntryKind::Message {
                from: from.clone(),
                text,
                action,
                own,
                mention,
                history,
            },
        };
        let id = m.id;
        match m.to {
            Target::Room(room) => {
                let Some(i) = self.known_room_tab(&room) else {
                    return Vec::new();
                };
                if !self.tabs[i].saw(id) {
                    return Vec::new();
                }
                self.push(i, entry, !own, mention);
                if mention {
                    vec![Effect::Bell]
                } else {
                    Vec::new()
                }
            }
            Target::Users(to) if own => {
                for nick in to {
                    let nick = crate::event::sanitize_line(&nick);
                    let i = self.open_tab(&nick);
                    if self.tabs[i].saw(id) {
                        self.push(i, entry.clone(), false, false);
                    }
                }
                Vec::new()
            }
            Target::Users(_) => {
                let i = self.open_tab(&from);
                if !self.tabs[i].saw(id) {
                    return Vec::new();
                }
                self.push(i, entry, true, true);
                vec![Effect::Bell]
            }
        }
    }

    /// Adds messages from a room's history to tab `i`: older than what it shows at the top,
    /// newer (missed while disconnected) at the bottom; ones already shown are skipped.
    /// Returns how many were added.
    fn insert_history(&mut self, i: usize, messages: Vec<ChatMessage>) -> usize {
        let mut older = Vec::new();
        let mut shown = 0;
        let newest = self.tabs[i].newest_id;
        for m in messages {
            if self.tabs[i].ids.contains(&m.id) {
                continue;
            }
            if newest.is_some_and(|n| m.id < n) {
                older.push(m);
            } else {
                shown += 1;
                self.show_message(m, true);
            }
        }
        let scrollback = self.opts.scrollback.max(1);
        let tab = &mut self.tabs[i];
        for m in older.into_iter().rev() {
            if tab.entries.len() >= scrollback {
                break;
            }
            tab.saw(m.id);
            let own = fold(&m.from) == fold(&self.nick);
            let (text, action) = match m.body {
                Body::Text(t) => (sanitize_text(&t), false),
                Body::Action(t) => (sanitize_text(&t), true),
            };
            tab.entries.push_front(Entry {
                at: m.at,
                kind: EntryKind::Message {
                    from: crate::event::sanitize_line(&m.from),
                    text,
                    action,
                    own,
                    mention: false,
                    history: true,
                },
            });
            tab.first_seq -= 1;
            shown += 1;
        }
        shown
    }

    /// Changes the roster of a room other than the lobby, keeping it sorted.
    fn change_room_roster(&mut self, room: &str, change: impl FnOnce(&mut Vec<UserInfo>)) {
        let roster = self.room_rosters.entry(fold(room)).or_default();
        change(roster);
        sort_roster(roster);
    }

    fn set_roster(&mut self, users: Vec<UserInfo>) {
        self.change_roster(|roster| *roster = users);
    }

    /// Changes the roster, keeping it sorted and the selection on the same person.
    fn change_roster(&mut self, change: impl FnOnce(&mut Vec<UserInfo>)) {
        let selected = self.roster.get(self.roster_selected).map(|u| fold(&u.nick));
        change(&mut self.roster);
        // Members first, then relayed guests, each alphabetically.
        sort_roster(&mut self.roster);
        let kept = selected.and_then(|key| self.roster.iter().position(|u| fold(&u.nick) == key));
        self.roster_selected = kept.unwrap_or(self.roster_selected);
        self.roster_selected = self
            .roster_selected
            .min(self.roster.len().saturating_sub(1));
    }
}

/// Roster order: members first, then relayed guests, each alphabetically.
fn sort_roster(roster: &mut [UserInfo]) {
    roster.sort_by_cached_key(|u| (u.relayed, fold(u.nick.trim_start_matches('*'))));
}

/// Why someone left, as shown: the reason, and the message when it says more.
fn left_why(reason: DisconnectReason, message: &str) -> String {
    let message = crate::event::sanitize_line(message);
    if message.is_empty() || message == reason.describe() {
        reason.describe().to_owned()
    } else {
        format!("{}: {message}", reason.describe())
    }
}

/// Does `text` mention `nick` as a word (case-insensitively)?
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let text = fold(text);
    let nick = fold(nick);
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
    text.match_indices(&nick).any(|(i, m)| {
        !word(text[..i].chars().next_back()) && !word(text[i + m.len()..].chars().next())
    })
}
