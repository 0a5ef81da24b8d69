//! The full-screen client's state. [`App::update`] takes one [`Event`] (a key, a paste, a
//! network event, a tick), changes the state and returns the [`Effect`]s the driver must carry
//! out (send a frame, ring the bell, connect, quit). Nothing here touches a terminal or a
//! socket, so every behaviour can be tested by feeding events.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_core::names::{fold, validate_text};
use chat_core::protocol::{
    Body, ChatMessage, ClientFrame, DEFAULT_ROOM, DisconnectReason, ErrorCode, Limits, Outgoing,
    PROTOCOL_VERSION, Password, ServerFrame, Target, UserInfo, Welcome,
};
use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyEvent, KeyEventKind, MouseEvent};
use ratatui::style::{Modifier, Style};
use ratatui_textarea::{CursorMove, TextArea};

use crate::command::{Command, parse, room_name, unsupported};
use crate::event::sanitize_text;

mod backoff;
mod conn;
mod form;
mod keys;
mod scroll;
mod tabs;

pub use super::config::Options;
pub use super::entry::{Entry, EntryKind};
pub use backoff::Backoff;
pub use conn::ConnState;
pub use form::{ConnectForm, Field};
pub use keys::Focus;
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

/// A message waiting to be sent (typed while disconnected, or sent and not confirmed before
/// the connection was lost).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Recipients.
    pub to: Target,
    /// What to say.
    pub body: Body,
}

/// Nickname completion in progress (repeated Tab cycles through the candidates).
#[derive(Debug, Clone)]
struct Completion {
    candidates: Vec<String>,
    index: usize,
    /// Characters inserted by the last completion (removed before inserting the next).
    inserted: usize,
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
    /// Where the masked input line was scrolled when last drawn (see [`App::input_view`]).
    masked_scroll: Cell<(u16, u16)>,
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
    pub input: TextArea<'static>,
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
    history: Vec<String>,
    history_pos: Option<usize>,
    draft: String,
    completion: Option<Completion>,
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

/// Entries kept in the input history.
const HISTORY: usize = 200;

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
            masked_scroll: Cell::new((0, 0)),
            server_version: PROTOCOL_VERSION,
            replaced: false,
            offline_shown: 0,
            roster_selected: 0,
            focus: Focus::Input,
            input: input_area(""),
            help: false,
            show_roster,
            size: (80, 24),
            lag: None,
            now,
            wall: Utc::now(),
            backoff: Backoff::new(fastrand::Rng::new()),
            limits: None,
            history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            completion: None,
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
                        self.completion = None;
                        self.input.insert_str(text);
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

    // ----- input line -----

    /// The text in the input line.
    pub fn input_text(&self) -> String {
        self.input.lines().join("\n")
    }

    /// The input line as it is drawn: once a password command and a space are typed, a copy
    /// in which the command still shows and every character after it is a bullet, with the
    /// cursor in the same place (the text area itself can only mask all of its text or none).
    /// Draw it with [`App::input_drawn`] after, so that the copy drawn next scrolls on from
    /// where this one was.
    pub fn input_view(&self) -> Cow<'_, TextArea<'static>> {
        if !hides_password(&self.input_text()) {
            self.masked_scroll.set((0, 0));
            return Cow::Borrowed(&self.input);
        }
        let mut view = TextArea::new(mask_password(self.input.lines()));
        view.set_style(self.input.style());
        view.set_cursor_style(self.input.cursor_style());
        view.set_cursor_line_style(self.input.cursor_line_style());
        let (rows, cols) = self.masked_scroll.get();
        view.scroll((
            i16::try_from(rows).unwrap_or(i16::MAX),
            i16::try_from(cols).unwrap_or(i16::MAX),
        ));
        let (row, col) = (self.input.cursor().0, self.input.cursor().1);
        view.move_cursor(CursorMove::Jump(
            u16::try_from(row).unwrap_or(u16::MAX),
            u16::try_from(col).unwrap_or(u16::MAX),
        ));
        Cow::Owned(view)
    }

    /// The input line's view (from [`App::input_view`]) has been drawn.
    pub fn input_drawn(&self, view: Cow<'_, TextArea<'static>>) {
        if let Cow::Owned(masked) = view {
            self.masked_scroll.set(masked.scroll_offset());
        }
    }

    fn set_input(&mut self, text: &str) {
        self.input = input_area(text);
    }

    fn history_back(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let pos = match self.history_pos {
            None => {
                self.draft = self.input_text();
                self.history.len() - 1
            }
            Some(p) => p.saturating_sub(1),
        };
        self.history_pos = Some(pos);
        let text = self.history[pos].clone();
        self.set_input(&text);
    }

    fn history_forward(&mut self) {
        let Some(pos) = self.history_pos else {
            return;
        };
        if pos + 1 < self.history.len() {
            self.history_pos = Some(pos + 1);
            let text = self.history[pos + 1].clone();
            self.set_input(&text);
        } else {
            self.history_pos = None;
            let draft = std::mem::take(&mut self.draft);
            self.set_input(&draft);
        }
    }

    /// Completes the nickname before the cursor; false when there is no word to complete.
    fn complete(&mut self) -> bool {
        if let Some(c) = &mut self.completion {
            for _ in 0..c.inserted {
                self.input.delete_char();
            }
            c.index = (c.index + 1) % c.candidates.len();
            let text = c.candidates[c.index].clone();
            c.inserted = text.chars().count();
            self.input.insert_str(text);
            return true;
        }
        let ratatui_textarea::DataCursor(row, col) = self.input.cursor();
        let line: Vec<char> = self.input.lines()[row].chars().collect();
        let start = line[..col]
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(0, |i| i + 1);
        let word: String = line[start..col].iter().collect();
        if word.is_empty() {
            return false;
        }
        let prefix = fold(&word);
        let me = fold(&self.nick);
        let mut candidates: Vec<String> = self
            .roster
            .iter()
            .map(|u| u.nick.clone())
            .chain(self.tabs.iter().filter_map(|t| match &t.kind {
                TabKind::Private { nick } => Some(nick.clone()),
                TabKind::Lobby | TabKind::Room { .. } => None,
            }))
            .filter(|n| {
                let f = fold(n);
                f.starts_with(&prefix) && f != me
            })
            .collect();
        candidates.sort_by_key(|n| fold(n));
        candidates.dedup_by_key(|n| fold(n));
        if candidates.is_empty() {
            return true; // nothing to complete, but Tab was meant for the word
        }
        let suffix = if row == 0 && start == 0 { ": " } else { " " };
        let candidates: Vec<String> = candidates.into_iter().map(|n| n + suffix).collect();
        for _ in start..col {
            self.input.delete_char();
        }
        let text = candidates[0].clone();
        self.completion = Some(Completion {
            inserted: text.chars().count(),
            candidates,
            index: 0,
        });
        self.input.insert_str(text);
        true
    }

    fn submit(&mut self) -> Vec<Effect> {
        let text = self.input_text();
        if text.trim().is_empty() {
            return Vec::new();
        }
        // Lines that carry a password are not kept for Up to bring back.
        if !password_command(&text) && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        self.history_pos = None;
        self.draft.clear();
        let Some(command) = parse(&text) else {
            return Vec::new();
        };
        let tab = self.tabs[self.active].kind.clone();
        let (effects, keep) = match command {
            Command::Say(text) => self.send_to_tab(tab, Body::Text(text)),
            Command::Me(text) => self.send_to_tab(tab, Body::Action(text)),
            Command::Msg { to, text } => {
                let first = to[0].clone();
                self.send(
                    TabKind::Private { nick: first },
                    Target::Users(to),
                    Body::Text(text),
                )
            }
            Command::Query(nick) => {
                if fold(&nick) == fold(&self.nick) {
                    self.notice_active("that is you; pick someone else to talk to", true);
                    (Vec::new(), true)
                } else {
                    let i = self.open_tab(&nick);
                    self.select_tab(i);
                    (Vec::new(), false)
                }
            }
            Command::Who => {
                let room = tab.room().unwrap_or(DEFAULT_ROOM).to_owned();
                self.request(ClientFrame::Who { room })
            }
            Command::Clear => {
                let tab = &mut self.tabs[self.active];
                tab.first_seq += tab.entries.len() as u64;
                tab.entries.clear();
                tab.scroll = None;
                (Vec::new(), false)
            }
            Command::Close => (self.close_tab(self.active), false),
            Command::Join(room) => {
                let room = room_name(&room).to_owned();
                let folded = fold(&room);
                self.request_then(ClientFrame::Join { room }, |app| {
                    app.joining = Some(folded);
                })
            }
            Command::Part(room) => match room.as_deref().map(room_name).or(tab.room()) {
                Some(room) => {
                    let room = room.to_owned();
                    self.request(ClientFrame::Part { room })
                }
                None => {
                    self.notice_active("/part #room, or /part in a room's tab", true);
                    (Vec::new(), true)
                }
            },
            Command::Rooms => self.request(ClientFrame::ListRooms),
            Command::Topic(topic) => match tab.room() {
                Some(room) => {
                    let room = room.to_owned();
                    self.request(ClientFrame::SetTopic { room, topic })
                }
                None => {
                    self.notice_active("/topic works in a room's tab", true);
                    (Vec::new(), true)
                }
            },
            Command::History(limit) => match tab.room() {
                Some(room) => {
                    let room = room.to_owned();
                    let before = self.tabs[self.active].oldest_id;
                    let folded = fold(&room);
                    let history = ClientFrame::History {
                        room,
                        before,
                        limit,
                    };
                    self.request_then(history, |app| {
                        app.history_asked.insert(folded);
                    })
                }
                None => {
                    self.notice_active("/history works in a room's tab", true);
                    (Vec::new(), true)
                }
            },
            Command::Register(password) => {
                let frame = ClientFrame::Register {
                    password: password.clone(),
                };
                self.request_then(frame, |app| app.new_password = Some(password))
            }
            Command::Password(password) => {
                let frame = ClientFrame::SetPassword {
                    password: password.clone(),
                };
                self.request_then(frame, |app| app.new_password = Some(password))
            }
            Command::Room(room) => {
                let kind = TabKind::Room {
                    name: room_name(&room).to_owned(),
                };
                let found = if fold(room_name(&room)) == DEFAULT_ROOM {
                    Some(0)
                } else {
                    self.tabs.iter().position(|t| t.kind.is(&kind))
                };
                match found {
                    Some(i) => {
                        self.select_tab(i);
                        (Vec::new(), false)
                    }
                    None => {
                        let text = format!("you are not in #{}: /join it", room_name(&room));
                        self.notice_active(&text, true);
                        (Vec::new(), true)
                    }
                }
            }
            Command::Reconnect => (self.reconnect_now(), false),
            Command::Help => {
                self.help = true;
                (Vec::new(), false)
            }
            Command::Quit(reason) => (self.quit(reason), false),
            Command::Invalid(why) => {
                self.notice_active(&why, true);
                (Vec::new(), true)
            }
        };
        if !keep {
            self.set_input("");
        }
        effects
    }

    /// [`App::request`], and `then` once it goes out (what the client expects of the answer
    /// is kept only for a request that was sent).
    fn request_then(
        &mut self,
        frame: ClientFrame,
        then: impl FnOnce(&mut Self),
    ) -> (Vec<Effect>, bool) {
        let sent = self.request(frame);
        if !sent.0.is_empty() {
            then(self);
        }
        sent
    }

    /// Sends a request that needs a connection (not queued while disconnected), if the
    /// server speaks a version of the protocol that has it.
    fn request(&mut self, frame: ClientFrame) -> (Vec<Effect>, bool) {
        if self.conn == ConnState::Connected {
            if let Some(why) = unsupported(&frame, self.server_version) {
                self.notice_active(&why, true);
                return (Vec::new(), true);
            }
            (vec![Effect::Send(frame)], false)
        } else {
            self.notice_active("not connected", true);
            (Vec::new(), true)
        }
    }

    /// Sends text typed in a tab to that tab's room or user. A private message to someone
    /// offline goes to the server too: a registered user gets it at their next login (the
    /// server says so), anyone else is reported not online.
    fn send_to_tab(&mut self, tab: TabKind, body: Body) -> (Vec<Effect>, bool) {
        let target = match &tab {
            TabKind::Lobby => Target::Room(DEFAULT_ROOM.to_owned()),
            TabKind::Room { name } => Target::Room(name.clone()),
            TabKind::Private { nick } => Target::Users(vec![nick.clone()]),
        };
        self.send(tab, target, body)
    }

    /// Sends a message now, or queues it while disconnected. Returns the effects and whether
    /// the input must be kept (the message was refused locally).
    fn send(&mut self, tab: TabKind, target: Target, body: Body) -> (Vec<Effect>, bool) {
        let text = match &body {
            Body::Text(t) | Body::Action(t) => t,
        };
        let max = self
            .limits
            .as_ref()
            .map_or(4096, |l| l.max_message_len as usize);
        if let Err(e) = validate_text(text, max) {
            self.notice_active(&format!("message not sent: {e}"), true);
            return (Vec::new(), true);
        }
        let i = self.tab_for(&tab);
        if self.conn == ConnState::Connected && self.tabs[i].pending.is_empty() {
            return (vec![self.frame_for(tab, target, body)], false);
        }
        // Queued behind what is already waiting, shown as pending in its tab.
        self.tabs[i].pending.push(Pending { to: target, body });
        (self.flush_pending(), false)
    }

    /// Sends what is pending, as far as the connection, the recipients and the server's rate
    /// limit allow; schedules the rest.
    fn flush_pending(&mut self) -> Vec<Effect> {
        if self.conn != ConnState::Connected || self.flush_at.is_some_and(|at| at > self.now) {
            return Vec::new();
        }
        self.flush_at = None;
        let (burst, interval) = self.limits.as_ref().map_or((1, 1000), |l| {
            (l.rate_burst as usize, u64::from(l.rate_interval_ms))
        });
        // Leave room in the burst for pings and for what the user types meanwhile.
        let budget = burst.saturating_sub(2).max(1);
        let mut effects = Vec::new();
        let mut waiting = false;
        for i in 0..self.tabs.len() {
            let kind = self.tabs[i].kind.clone();
            if let TabKind::Private { nick } = &kind
                && !self.is_online(nick)
            {
                continue; // sent when they are back
            }
            while !self.tabs[i].pending.is_empty() {
                if effects.len() >= budget {
                    waiting = true;
                    break;
                }
                let p = self.tabs[i].pending.remove(0);
                effects.push(self.frame_for(kind.clone(), p.to, p.body));
            }
        }
        if waiting {
            let wait = Duration::from_millis(interval.saturating_mul(effects.len() as u64));
            self.flush_at = Some(self.now + wait);
        }
        effects
    }

    /// Puts an unconfirmed message back at the front of its tab's queue.
    fn requeue(&mut self, kind: &TabKind, p: Pending) {
        let i = self.tab_for(kind);
        self.tabs[i].pending.insert(0, p);
    }

    fn frame_for(&mut self, tab: TabKind, to: Target, body: Body) -> Effect {
        let tag = self.next_tag;
        self.next_tag += 1;
        let pending = Pending {
            to: to.clone(),
            body: body.clone(),
        };
        self.in_flight.insert(tag, (tab, pending));
        Effect::Send(ClientFrame::Send(Outgoing {
            tag,
            to,
            body,
            attrs: Vec::new(),
        }))
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

/// Whether `line` is a command whose argument is a password (`/register`, `/password`).
fn password_command(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    ["/register", "/password", "/passwd"]
        .iter()
        .any(|p| first.eq_ignore_ascii_case(p))
}

/// Whether the input line must hide what is typed: a password command followed by a space
/// or a new line (what follows is the password either way).
fn hides_password(line: &str) -> bool {
    password_command(line) && line.trim_start().contains(char::is_whitespace)
}

/// The lines of a password command with everything after the command word and the spaces
/// that follow it replaced by bullets, one per character.
fn mask_password(lines: &[String]) -> Vec<String> {
    let bullets = |text: &str| "•".repeat(text.chars().count());
    let Some((first, rest)) = lines.split_first() else {
        return Vec::new();
    };
    let word_start = first.len() - first.trim_start().len();
    let word_end = first[word_start..]
        .find(char::is_whitespace)
        .map_or(first.len(), |i| word_start + i);
    let after = &first[word_end..];
    let shown = word_end + (after.len() - after.trim_start().len());
    std::iter::once(format!("{}{}", &first[..shown], bullets(&first[shown..])))
        .chain(rest.iter().map(|line| bullets(line)))
        .collect()
}

fn input_area(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(text.split('\n').map(str::to_owned).collect());
    t.set_cursor_line_style(Style::default());
    t.set_placeholder_style(Style::default().add_modifier(Modifier::DIM));
    t.set_placeholder_text("type a message, /help for commands");
    t.move_cursor(CursorMove::Bottom);
    t.move_cursor(CursorMove::End);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(lines: &[&str]) -> Vec<String> {
        mask_password(&lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn a_password_command_keeps_its_word_and_hides_the_rest() {
        assert_eq!(masked(&["/register s3cret"]), ["/register ••••••"]);
        assert_eq!(masked(&["  /password  old new"]), ["  /password  •••••••"]);
        assert_eq!(masked(&["/passwd"]), ["/passwd"]);
        assert_eq!(masked(&["/register", "s3cret"]), ["/register", "••••••"]);
        // One bullet per character, whatever its width.
        assert_eq!(masked(&["/register 秘密é"]), ["/register •••"]);
    }
}
