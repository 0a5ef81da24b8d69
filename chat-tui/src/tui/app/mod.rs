//! The full-screen client's state machine. [`App::update`] takes one [`Event`] (a key, a
//! paste, the time, the terminal's size, news from the network, a tick), changes the state and
//! returns the [`Effect`]s the driver must carry out (send a frame, ring the bell, connect,
//! quit). Nothing here touches a terminal or a socket, and nothing here calls the drawing code
//! (layout and row counts come from [`layout`](super::layout) and [`entry`](super::entry)), so
//! every behaviour can be tested by feeding events.
//!
//! This file holds the events, the effects and the state, and sends each event on. The rest:
//!
//! | file | owns |
//! |---|---|
//! | `form.rs` | the connect screen: its fields, keys and checks |
//! | `keys.rs` | the main screen's keys and which pane has them ([`Focus`]) |
//! | `input.rs` | the input line ([`InputLine`]): text, history, completion, masking |
//! | `tabs.rs` | tabs, their entries, unread counts and notices |
//! | `scroll.rs` | scrolling a tab's history by rows |
//! | `outgoing.rs` | submitting a line, requests, messages pending and in flight |
//! | `commands.rs` | what each `/command` does |
//! | `replies.rs` | `/reply`, `/edit`, `/react`, `/temp`, `/search` |
//! | `select.rs` | the selected message and the search |
//! | `incoming/` | the server's frames, one file per family |
//! | `conn.rs` | the connection's state, reconnecting, quitting |
//! | `trust.rs` | a server certificate not trusted yet: the question, or the refusal |
//! | `backoff.rs` | the delays between reconnection attempts |

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chat_core::protocol::{
    ClientFrame, DisconnectReason, Limits, PROTOCOL_VERSION, Password, ServerFrame, UserInfo,
    Welcome,
};
use chrono::{DateTime, Utc};
use ratatui::crossterm::event::{KeyEvent, KeyEventKind, MouseEvent};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};

use super::layout::{connect_layout, layout};

mod backoff;
mod commands;
mod conn;
mod files;
mod form;
mod incoming;
mod input;
mod keys;
mod outgoing;
mod private;
mod replies;
mod scroll;
mod select;
mod tabs;
mod trust;

pub use super::config::Options;
pub use super::entry::{Entry, EntryKind};
pub use backoff::Backoff;
pub use conn::ConnState;
pub use form::{ConnectForm, Field};
pub use incoming::{EXPIRED, mentions};
pub use input::InputLine;
pub use keys::Focus;
pub use outgoing::Pending;
pub use select::Search;
pub use tabs::{Anchor, Tab, TabKind};
pub use trust::TrustPrompt;

/// Something that happened: input from the terminal, news from the network, or time passing.
#[derive(Debug)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// A bracketed paste: one piece of text, newlines included.
    Paste(String),
    /// A mouse event (the wheel scrolls).
    Mouse(MouseEvent),
    /// The terminal's size: at start, and whenever it changes.
    Resize { width: u16, height: u16 },
    /// The time now. The driver sends it before every other event, so that what that event
    /// does is stamped and timed right; by itself it changes nothing on screen.
    Clock(Clock),
    /// News from the network task.
    Net(NetEvent),
    /// A second passed: the reconnect countdown moves, and queued messages may be due.
    Tick,
    /// The terminal went away (input closed, SIGHUP, SIGTERM).
    Hangup,
    /// News from the file agent.
    File(crate::files::FileEvent),
}

/// The time, as the driver read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// For delays and countdowns.
    pub now: Instant,
    /// The wall-clock time, which stamps the client's own notices.
    pub wall: DateTime<Utc>,
}

impl Clock {
    /// The system's clocks, now.
    pub fn read() -> Self {
        Clock {
            now: Instant::now(),
            wall: Utc::now(),
        }
    }
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
    /// The server's certificate is not trusted (yet): `verdict` says why.
    Untrusted {
        server: String,
        fingerprint: String,
        verdict: crate::trust::Verdict,
    },
    /// Something the user should know (a certificate trusted for this run only).
    Notice(String),
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
    /// Trust the certificate with `fingerprint` for `server` from now on.
    Trust { server: String, fingerprint: String },
    /// Send a frame on the current connection.
    Send(ClientFrame),
    /// A file transfer command for the file agent.
    File(crate::command::FileCommand),
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
    /// This connection is logged in to an account (it has private history).
    account: bool,
    /// The private conversations whose latest messages were asked for on this connection.
    private_fetched: HashSet<String>,
    /// The last server search: its pattern, and where its older matches start.
    server_search: Option<(String, Option<u64>)>,
    /// Where the older mentions start, after a `/mentions` (`Some(None)`: none are left).
    mentions_next: Option<Option<u64>>,
    /// The server ended this connection for a reason that reconnecting by itself would not
    /// mend (another login to the account replaced it, an operator kicked or banned us).
    stopped_by: Option<DisconnectReason>,
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
    /// A server certificate waiting for the user (over any screen).
    pub trust_prompt: Option<TrustPrompt>,
    /// The roster sidebar is wanted (F2 toggles).
    pub show_roster: bool,
    /// Terminal size, from the last [`Event::Resize`].
    size: (u16, u16),
    /// Last measured round trip.
    pub lag: Option<Duration>,
    /// The time, as of the current event.
    now: Instant,
    /// The wall-clock time, as of the current event (stamps the client's own notices).
    wall: DateTime<Utc>,
    /// Reconnect delays.
    pub backoff: Backoff,
    limits: Option<Limits>,
    next_tag: u64,
    in_flight: HashMap<u64, (TabKind, Pending)>,
    /// The tag and tab of the message the server confirmed last (a `Queued` follows it).
    last_echo: Option<(u64, TabKind)>,
    ever_connected: bool,
    /// Pending messages are not sent before this (rate limit).
    flush_at: Option<Instant>,
    /// The user was told that quitting drops unsent messages.
    quit_armed: bool,
    /// Leaving on purpose to come back under the requested nickname.
    reclaiming: bool,
    /// Something changed since the last draw.
    dirty: bool,
    /// The operators of each room we are in (folded room name to folded nicknames).
    pub ops: HashMap<String, HashSet<String>>,
    /// Who is away, and their message (by folded nickname).
    pub away: HashMap<String, String>,
    /// Whose messages are hidden.
    pub ignored: crate::ignore::Ignored,
    /// File transfers under way, by id.
    pub transfers: std::collections::BTreeMap<u64, crate::files::Progress>,
    /// The id of the selected message of the tab on screen.
    pub selected: Option<u64>,
    /// The search of the tab on screen, its current match selected.
    search: Option<Search>,
}

impl App {
    /// A client showing the connect screen prefilled with `nick` and `server`; with both given,
    /// call [`App::start`] to connect at once.
    pub fn new(nick: Option<String>, server: String, opts: Options, now: Instant) -> Self {
        let show_roster = opts.roster;
        let (ignored, unreadable) = crate::ignore::Ignored::load(opts.ignore_file.clone());
        let mut app = App {
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
            account: false,
            private_fetched: HashSet::new(),
            server_search: None,
            mentions_next: None,
            stopped_by: None,
            offline_shown: 0,
            roster_selected: 0,
            focus: Focus::Input,
            input: InputLine::default(),
            help: false,
            trust_prompt: None,
            show_roster,
            size: (80, 24),
            lag: None,
            now,
            wall: Utc::now(),
            backoff: Backoff::new(fastrand::Rng::new()),
            limits: None,
            next_tag: 1,
            in_flight: HashMap::new(),
            last_echo: None,
            ever_connected: false,
            flush_at: None,
            quit_armed: false,
            reclaiming: false,
            dirty: true,
            ops: HashMap::new(),
            away: HashMap::new(),
            ignored,
            transfers: std::collections::BTreeMap::new(),
            selected: None,
            search: None,
        };
        if let Some(why) = unreadable {
            app.notice(0, &why, true);
        }
        app
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
        let mut effects = self.handle(event);
        effects.extend(self.fetch_private_histories());
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
            Event::Key(key) if self.trust_prompt.is_some() => self.trust_key(key),
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
            Event::Clock(clock) => {
                self.now = clock.now;
                self.wall = clock.wall;
                self.dirty = false;
                Vec::new()
            }
            Event::Net(net) => self.net(net),
            Event::File(event) => self.file_event(event),
            Event::Hangup => {
                // The terminal is gone: nobody can confirm anything.
                self.quit_armed = true;
                self.quit("terminal closed".to_owned())
            }
            Event::Tick => {
                // Only countdowns change with time (reconnecting, expiring messages), and
                // queued messages may be due.
                let expiring = self.expire_due();
                self.dirty = matches!(self.conn, ConnState::Waiting { .. }) || expiring;
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

    /// The time, as of the current event (see [`Event::Clock`]).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The wall-clock time, as of the current event.
    pub fn wall(&self) -> DateTime<Utc> {
        self.wall
    }

    /// Today, as of the current event, in the time zone the times are shown in.
    pub fn today(&self) -> chrono::NaiveDate {
        super::entry::day_of(self.wall, self.opts.utc)
    }

    /// The terminal's size, as of the last [`Event::Resize`]: (width, height).
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// Something changed since the last draw.
    pub fn needs_redraw(&self) -> bool {
        self.dirty
    }

    /// The driver drew the screen: nothing needs drawing until something changes.
    pub fn drawn(&mut self) {
        self.dirty = false;
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

    /// Works out where the text fields on screen are scrolled to, as drawing will show them.
    fn lay_out(&mut self) {
        let screen = Rect::new(0, 0, self.size.0, self.size.1);
        if let Screen::Connect(form) = &mut self.screen {
            form.lay_out(&connect_layout(screen));
            return;
        }
        let area = layout(screen, self.panes()).input;
        self.input.lay_out(area);
    }
}
