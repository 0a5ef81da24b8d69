//! Runs the full-screen client on the real terminal: raw mode and the alternate screen (undone
//! on every exit path, a panic included), one event channel fed by the terminal, the network
//! task and a tick, and one redraw per batch of events.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use chat_core::protocol::Password;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self as term_event, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste,
};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use tokio::sync::{mpsc, oneshot};

use super::app::{App, Clock, Effect, Event, Options};
use super::net::{self, NetCmd};
use super::ui;

/// How the full-screen client was asked to start.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// Nickname to prefill.
    pub nick: Option<String>,
    /// Password to prefill (empty connects as a guest).
    pub password: Option<Password>,
    /// Server to prefill.
    pub server: String,
    /// Display settings.
    pub app: Options,
    /// Which certificates to trust (or no TLS at all).
    pub trust: crate::trust::Trust,
    /// Where received files are saved.
    pub download_dir: std::path::PathBuf,
}

/// The client as it starts: connecting at once when the nickname is known (from `--nick`,
/// `CHAT_NICK` or the configuration file; the server always is, by default), else showing the
/// connect form. The form also comes back when the connection is refused or something given
/// is not acceptable (it then says what), so it is there only when something is missing.
pub fn start(opts: TuiOptions, now: Instant) -> (App, Vec<Effect>) {
    let known = opts.nick.as_deref().is_some_and(|n| !n.trim().is_empty());
    let mut app = App::new(opts.nick, opts.server, opts.app, now);
    if let Some(password) = opts.password {
        app.set_password(&password.0);
    }
    let effects = if known { app.start() } else { Vec::new() };
    (app, effects)
}

/// Events handled before one redraw, at most.
const BATCH: usize = 256;
/// Time allowed for the goodbye at exit.
const QUIT_WAIT: Duration = Duration::from_secs(3);

/// Runs the client until the user quits; returns the exit status.
pub async fn run(opts: TuiOptions) -> u8 {
    if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
        eprintln!(
            "chat-tui: the full-screen client needs a terminal; use --plain for scripts and pipes"
        );
        return crate::line::exit::USAGE;
    }
    install_panic_hook();
    let mut terminal = match enter() {
        Ok(t) => t,
        Err(e) => {
            restore();
            eprintln!("chat-tui: cannot set up the terminal: {e}");
            return crate::line::exit::ERROR;
        }
    };
    let result = event_loop(&mut terminal, opts).await;
    restore();
    match result {
        Ok(()) => crate::line::exit::QUIT,
        Err(e) => {
            eprintln!("chat-tui: terminal error: {e}");
            crate::line::exit::ERROR
        }
    }
}

type Term = Terminal<CrosstermBackend<io::Stdout>>;

async fn event_loop(terminal: &mut Term, opts: TuiOptions) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    spawn_terminal_reader(tx.clone());
    let (agent, frames, mut file_events) = crate::files::spawn(opts.download_dir.clone());
    let files = agent.clone();
    let link = crate::files::FileLink { agent, frames };
    let net = net::spawn(tx.clone(), opts.trust.clone(), link);
    let to_app = tx.clone();
    tokio::spawn(async move {
        while let Some(event) = file_events.recv().await {
            if to_app.send(Event::File(event)).await.is_err() {
                break;
            }
        }
    });
    drop(tx);

    let (mut app, mut effects) = start(opts, Instant::now());
    let size = terminal.size()?;
    app.update(Event::Resize {
        width: size.width,
        height: size.height,
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = Hangup::new();

    loop {
        for effect in effects.drain(..) {
            match effect {
                Effect::Connect {
                    server,
                    nick,
                    password,
                    delay,
                } => {
                    let _ = net.send(NetCmd::Connect {
                        server,
                        nick,
                        password,
                        delay,
                    });
                }
                Effect::File(command) => {
                    let _ = files.send(command.into());
                }
                Effect::Send(frame) => {
                    let _ = net.send(NetCmd::Send(frame));
                }
                Effect::Trust {
                    server,
                    fingerprint,
                } => {
                    let _ = net.send(NetCmd::Trust {
                        server,
                        fingerprint,
                    });
                }
                Effect::Bell => {
                    let out = terminal.backend_mut();
                    out.write_all(b"\x07")?;
                    out.flush()?;
                }
                Effect::Quit { reason } => {
                    // The terminal may be gone (hangup): the goodbye matters more.
                    let _ = terminal.draw(|f| ui::draw(f, &app));
                    let (done, finished) = oneshot::channel();
                    if net.send(NetCmd::Quit { reason, done }).is_ok() {
                        let _ = tokio::time::timeout(QUIT_WAIT, finished).await;
                    }
                    crate::files::shut_down(&files).await;
                    return Ok(());
                }
                Effect::Exit => {
                    crate::files::shut_down(&files).await;
                    return Ok(());
                }
            }
        }
        if app.needs_redraw() {
            terminal.draw(|f| ui::draw(f, &app))?;
            app.drawn();
        }
        let event = tokio::select! {
            ev = rx.recv() => ev.unwrap_or(Event::Hangup),
            _ = tick.tick() => Event::Tick,
            () = hangup.recv() => Event::Hangup,
        };
        effects = update(&mut app, event);
        // Everything already waiting is handled before the next redraw.
        for _ in 0..BATCH {
            let Ok(event) = rx.try_recv() else { break };
            effects.extend(update(&mut app, event));
        }
    }
}

/// Hands `event` to the app, after the time it happened.
fn update(app: &mut App, event: Event) -> Vec<Effect> {
    let mut effects = app.update(Event::Clock(Clock::read()));
    effects.extend(app.update(event));
    effects
}

fn enter() -> io::Result<Term> {
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste)?;
    // Mouse reporting for the wheel only (clicks, SGR encoding): not every movement, which
    // would send bytes over SSH at each twitch of the mouse.
    let mut out = io::stdout();
    out.write_all(MOUSE_ON)?;
    out.flush()?;
    Terminal::new(CrosstermBackend::new(io::stdout()))
}

const MOUSE_ON: &[u8] = b"\x1b[?1000h\x1b[?1006h";

/// Puts the terminal back as it was. Safe to call more than once.
fn restore() {
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

/// A panic restores the terminal before its message is printed, so the message is readable
/// and the shell is usable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Reads terminal events on a thread of its own (the read blocks).
fn spawn_terminal_reader(tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        loop {
            let event = match term_event::read() {
                Ok(term_event::Event::Key(k)) => Event::Key(k),
                Ok(term_event::Event::Paste(p)) => Event::Paste(p),
                Ok(term_event::Event::Mouse(m)) => Event::Mouse(m),
                Ok(term_event::Event::Resize(width, height)) => Event::Resize { width, height },
                Ok(_) => continue,
                Err(_) => Event::Hangup,
            };
            let stop = matches!(event, Event::Hangup);
            if tx.blocking_send(event).is_err() || stop {
                break;
            }
        }
    });
}

/// SIGTERM, SIGHUP (the SSH session or the terminal window closed), and SIGINT or SIGQUIT
/// sent from elsewhere (in raw mode Ctrl-C is a key, not a signal).
struct Hangup {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    quit: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Hangup {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
                quit: signal(SignalKind::quit()).ok(),
            }
        }
        #[cfg(not(unix))]
        Hangup {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                if let Some(s) = s
                    && s.recv().await.is_some()
                {
                    return;
                }
                std::future::pending().await
            }
            tokio::select! {
                () = one(&mut self.term) => {}
                () = one(&mut self.hup) => {}
                () = one(&mut self.int) => {}
                () = one(&mut self.quit) => {}
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}
