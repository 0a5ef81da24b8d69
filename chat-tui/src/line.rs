//! Line mode (`chat-tui --plain`): reads commands and messages from standard input, prints one
//! line (or one JSON object) per event on standard output. For scripts, bots and dumb
//! terminals.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use chat_core::client::{ClientError, ClientSender, ConnectOptions, NetClient, connect_secured};
use chat_core::frame::FrameError;
use chat_core::protocol::{
    Body, ClientFrame, DisconnectReason, MessageAttr, Password, RejectReason, ServerFrame, Target,
};
use chrono::Utc;
use tokio::sync::mpsc;

use crate::command::{Command, ModCommand, parse, room_name};
use deliver::{Answer, Delivery};

mod deliver;
mod files;
mod interrupt;
mod messages;
mod rooms;
use crate::line_event::LineEvent;
use crate::sanitize::sanitize_line;
use crate::trust::{self, Trust, Verdict};
use chat_core::names::fold;
use interrupt::Interrupt;
use rooms::Rooms;

/// How the line client was asked to behave.
#[derive(Debug, Clone)]
pub struct LineOptions {
    /// `host:port` of the server or relay.
    pub server: String,
    /// Nickname; asked for on standard input when absent.
    pub nick: Option<String>,
    /// Account password: logs in to the account registered under the nickname.
    pub password: Option<Password>,
    /// Print JSON objects instead of text lines.
    pub json: bool,
    /// Show times in UTC instead of local time.
    pub utc: bool,
    /// Which certificates to trust (or no TLS at all).
    pub trust: Trust,
    /// Where the ignore list is kept (`None`: in memory only).
    pub ignore_file: Option<std::path::PathBuf>,
    /// Where received files are saved.
    pub download_dir: std::path::PathBuf,
    /// Whose file offers are accepted without asking.
    pub accept_files_from: Vec<String>,
}

/// Exit statuses, documented in the README.
pub mod exit {
    /// The user quit (`/quit`, end of input, Ctrl-C).
    pub const QUIT: u8 = 0;
    /// Any other local error.
    pub const ERROR: u8 = 1;
    /// Bad usage (also what clap uses).
    pub const USAGE: u8 = 2;
    /// The server could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The server refused the handshake (nickname rejected, version mismatch, full, ...).
    pub const REFUSED: u8 = 4;
    /// The connection was closed by the server or lost.
    pub const DISCONNECTED: u8 = 5;
    /// The user quit (or the input ended), but some messages could not be delivered (each is
    /// named on standard error).
    pub const UNDELIVERED: u8 = 6;
    /// The server's certificate is not trusted: seen for the first time (and neither
    /// `--trust-fingerprint` nor `--trust-on-first-use` given), or not the one accepted before.
    pub const UNTRUSTED: u8 = 7;
}

/// Time allowed for the server to confirm a quit.
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// Runs the line client; returns the process exit status.
pub async fn run(opts: LineOptions) -> u8 {
    let mut interrupt = Interrupt::new();
    let mut input = spawn_stdin_reader();
    let nick = match &opts.nick {
        Some(n) => n.clone(),
        None => match ask_nick(&mut input, &mut interrupt).await {
            Ok(nick) => nick,
            Err(code) => return code,
        },
    };
    let client = match open(&opts, nick, &mut interrupt).await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let (ignored, unreadable) = crate::ignore::Ignored::load(opts.ignore_file.clone());
    let mut out = Output {
        json: opts.json,
        utc: opts.utc,
        me: client.welcome.nick.clone(),
        ignored,
    };
    if let Some(why) = unreadable
        && out.show(&LineEvent::error(why)).is_err()
    {
        return exit::ERROR;
    }
    if out
        .show(&LineEvent::welcome(&client.welcome, &opts.server))
        .is_err()
    {
        return exit::ERROR;
    }
    if let Some(text) = crate::command::older_server(client.welcome.version)
        && out.show(&LineEvent::error(text)).is_err()
    {
        return exit::ERROR;
    }
    let mut delivery = Delivery::default();
    let max_frame = client.welcome.limits.max_frame;
    let files = files::LineFiles::start(opts.download_dir, &opts.accept_files_from, max_frame);
    let mut io = Io {
        input,
        interrupt,
        out,
        files,
        input_done: false,
    };
    let code = chat(client, &mut io, &mut delivery).await;
    io.files.shut_down().await;
    finish(code, delivery)
}

/// The exit status once the session ended with `code`: a quit that left lines undelivered
/// is [`exit::UNDELIVERED`]; whatever the status, the lines not delivered are named.
fn finish(code: u8, delivery: Delivery) -> u8 {
    let Some(report) = delivery.report() else {
        return code;
    };
    eprintln!("chat-tui: {report}");
    if code == exit::QUIT {
        exit::UNDELIVERED
    } else {
        code
    }
}

/// What the session reads from and writes to.
struct Io {
    input: mpsc::Receiver<String>,
    interrupt: Interrupt,
    out: Output,
    files: files::LineFiles,
    /// The input ended while files were still moving: the session quits once they are done.
    input_done: bool,
}

/// The session: lines read and carried out, frames shown, until it ends; returns the exit
/// status. The next line is read only once the message before it is answered (see
/// [`Delivery`]).
async fn chat(client: NetClient, io: &mut Io, delivery: &mut Delivery) -> u8 {
    let mut me = client.welcome.nick.clone();
    let max_len = client.welcome.limits.max_message_len as usize;
    let version = client.welcome.version;
    let mut sender = client.sender;
    let mut events = client.events;
    let mut rooms = Rooms::default();
    // Once we have said goodbye we wait (a bounded time) for the server to confirm.
    let mut quitting = false;
    let quit_deadline = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(quit_deadline);
    let retry = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(retry);

    loop {
        let (command, line) = tokio::select! {
            line = io.input.recv(), if !quitting && !io.input_done && delivery.idle() => {
                match line {
                    Some(line) => (parse(&line), Some((delivery.read(), line))),
                    // The end of the input waits for the files under way.
                    None if io.files.busy() => {
                        io.input_done = true;
                        continue;
                    }
                    None => (Some(Command::Quit(String::new())), None),
                }
            }
            Some(frame) = io.files.frames.recv() => {
                let sent = sender.send(&frame).await;
                if let Some(code) = after_send(sent, quitting, &mut io.out) {
                    return code;
                }
                continue;
            }
            Some(event) = io.files.events.recv() => {
                if let Some(ev) = io.files.event(event, &me)
                    && io.out.show(&ev).is_err()
                {
                    return exit::ERROR;
                }
                if !(io.input_done && !quitting && !io.files.busy()) {
                    continue;
                }
                (Some(Command::Quit(String::new())), None)
            }
            frame = events.next() => {
                let frame = match frame.map(|f| f.map(|f| io.files.route(f))) {
                    Ok(Some(Some(frame))) => frame,
                    Ok(Some(None)) => continue,
                    Ok(None) if quitting => return exit::QUIT,
                    Ok(None) => {
                        let _ = io.out.show(&lost("the server closed the connection"));
                        return exit::DISCONNECTED;
                    }
                    Err(e) => {
                        let _ = io.out.show(&lost(&e.to_string()));
                        return if quitting { exit::QUIT } else { exit::DISCONNECTED };
                    }
                };
                if let ServerFrame::NickChanged { old, new, .. } = &frame
                    && fold(old) == fold(&me)
                {
                    me.clone_from(new);
                    io.out.me.clone_from(new);
                }
                let answer = delivery.answer(&frame, tokio::time::Instant::now());
                if let (Answer::Retry(_), Some(at)) = (answer, delivery.retry_at()) {
                    retry.as_mut().reset(at);
                }
                match show_frame(frame, &me, answer, &mut io.out, &mut rooms, &mut sender).await {
                    Some(code) => return code,
                    None => continue,
                }
            }
            // A message refused for going too fast goes again, now that it may.
            () = &mut retry, if delivery.retry_at().is_some() => {
                let Some((n, text, message)) = delivery.take_retry() else { continue };
                match message.send(&mut sender).await {
                    Ok(Some(tag)) => delivery.sent(tag, n, text, message),
                    Ok(None) => {}
                    Err(e) => {
                        delivery.refused(n, text, e.to_string());
                        if let Some(code) = after_send(Err(e), quitting, &mut io.out) {
                            return code;
                        }
                    }
                }
                continue;
            }
            // The server did not confirm in time; we said goodbye, so this is still a quit.
            () = &mut quit_deadline, if quitting => return exit::QUIT,
            () = io.interrupt.recv() => {
                if quitting {
                    return exit::QUIT; // a second Ctrl-C does not wait
                }
                (Some(Command::Quit(String::new())), None)
            }
        };
        let command = match command {
            Some(Command::File(f)) => {
                if let Some(ev) = io.files.command(f, version)
                    && io.out.show(&ev).is_err()
                {
                    return exit::ERROR;
                }
                continue;
            }
            other => other,
        };
        let shown = match &command {
            Some(Command::Ignore(nick)) => Some(ignore(&mut io.out.ignored, nick.clone(), true)),
            Some(Command::Unignore(nick)) => {
                Some(ignore(&mut io.out.ignored, Some(nick.clone()), false))
            }
            _ => None,
        };
        if let Some(ev) = shown {
            if io.out.show(&ev).is_err() {
                return exit::ERROR;
            }
            continue;
        }
        let send = match step(command, &mut rooms, max_len, version) {
            Step::Nothing => continue,
            Step::Show(ev) => {
                if io.out.show(&ev).is_err() {
                    return exit::ERROR;
                }
                continue;
            }
            Step::NotSent(ev, why) => {
                if let Some((n, text)) = line {
                    delivery.refused(n, text, why);
                }
                if io.out.show(&ev).is_err() {
                    return exit::ERROR;
                }
                continue;
            }
            Step::Send(send) => send,
        };
        if let Outbound::Quit(_) = send {
            quitting = true;
            quit_deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + QUIT_WAIT);
        }
        // A send can block if the server stops reading; Ctrl-C and the quit deadline still work.
        let result = tokio::select! {
            res = send.send(&mut sender) => res,
            () = io.interrupt.recv() => return exit::QUIT,
            () = &mut quit_deadline, if quitting => return exit::QUIT,
        };
        if let (Ok(Some(tag)), Some((n, text))) = (&result, line) {
            delivery.sent(*tag, n, text, send);
        }
        if let Some(code) = after_send(result.map(drop), quitting, &mut io.out) {
            return code;
        }
    }
}

/// What a send's result comes to: the exit status when the session ends.
fn after_send(result: Result<(), FrameError>, quitting: bool, out: &mut Output) -> Option<u8> {
    match result {
        Ok(()) => None,
        Err(_) if quitting => Some(exit::QUIT),
        Err(e) if e.is_protocol_violation() => {
            // Could not be encoded (e.g. over the frame limit): nothing was sent.
            out.show(&LineEvent::error(format!("message not sent: {e}")))
                .is_err()
                .then_some(exit::ERROR)
        }
        Err(e) => {
            let _ = out.show(&lost(&e.to_string()));
            Some(exit::DISCONNECTED)
        }
    }
}

/// Asks for the nickname on standard input; `Err` holds the exit status.
async fn ask_nick(
    input: &mut mpsc::Receiver<String>,
    interrupt: &mut Interrupt,
) -> Result<String, u8> {
    eprint!("nickname: ");
    let _ = io::stderr().flush();
    let line = tokio::select! {
        line = input.recv() => line,
        () = interrupt.recv() => return Err(exit::QUIT),
    };
    match line {
        Some(line) if !line.trim().is_empty() => Ok(line.trim().to_owned()),
        _ => {
            eprintln!("chat-tui: no nickname given (use --nick NAME)");
            Err(exit::USAGE)
        }
    }
}

/// Connects and logs in as `nick`; `Err` holds the exit status, the reason printed.
async fn open(
    opts: &LineOptions,
    nick: String,
    interrupt: &mut Interrupt,
) -> Result<NetClient, u8> {
    let mut connect_opts =
        ConnectOptions::new(nick).client(concat!("chat-tui/", env!("CARGO_PKG_VERSION")));
    connect_opts.password.clone_from(&opts.password);
    let mut trust = opts.trust.clone();
    let server = &opts.server;
    loop {
        let security = trust.security(server);
        let connected = tokio::select! {
            res = connect_secured(server, &connect_opts, &security) => res,
            () = interrupt.recv() => return Err(exit::QUIT),
        };
        let e = match connected {
            Ok(client) => return Ok(client),
            Err(e) => e,
        };
        if let ClientError::Untrusted { fingerprint, .. } = &e {
            let refusal = match trust.judge(server) {
                Verdict::FirstUse if trust.first_use => {
                    if let Err(why) = trust.accept(server, fingerprint) {
                        eprintln!("chat-tui: {why}");
                    }
                    eprintln!("chat-tui: trusting {server} from now on: {fingerprint}");
                    continue;
                }
                Verdict::FirstUse => trust::first_use_refused(server, fingerprint),
                Verdict::Changed { old } => trust::changed(server, &old, fingerprint),
                Verdict::NotGiven { given } => trust::not_given(server, &given, fingerprint),
            };
            eprintln!("chat-tui: {refusal}");
            return Err(exit::UNTRUSTED);
        }
        // The text can quote the server (a refusal's message): never print it raw.
        eprintln!("chat-tui: {}", sanitize_line(&e.to_string()));
        return Err(match e {
            ClientError::Connect { .. } | ClientError::Timeout { .. } => exit::UNREACHABLE,
            // A relay that cannot reach the server: as unreachable as the server itself.
            ClientError::Rejected(r) if matches!(r.reason, RejectReason::Unavailable) => {
                exit::UNREACHABLE
            }
            ClientError::Rejected(_) => exit::REFUSED,
            _ => exit::DISCONNECTED,
        });
    }
}

/// Shows a frame from the server (and a change of the current room it makes), `answer` being
/// what it says of the message waiting for one; returns the exit status when it ends the
/// session.
async fn show_frame<W>(
    frame: ServerFrame,
    me: &str,
    answer: Answer,
    out: &mut Output,
    rooms: &mut Rooms,
    sender: &mut ClientSender<W>,
) -> Option<u8>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let bye = match &frame {
        ServerFrame::Bye { reason, .. } => Some(*reason),
        _ => None,
    };
    let switched = rooms.track(&frame);
    // Kept private messages are acknowledged once printed.
    let received = match &frame {
        ServerFrame::Offline(messages) => messages.last().map(|m| m.id),
        _ => None,
    };
    let mut shown = LineEvent::from_frame(frame, me);
    shown.retain(|ev| match ev {
        LineEvent::Message { from, own, .. } => *own || !out.ignored.contains(from),
        LineEvent::Edited { by, .. } => !out.ignored.contains(by),
        _ => true,
    });
    rooms.seen.fill_quotes(&mut shown);
    for ev in &mut shown {
        // Our message, refused for going too fast, is sent again by itself.
        if let LineEvent::RateLimited { retrying, .. } = ev {
            *retrying = matches!(answer, Answer::Retry(_));
        }
    }
    for ev in shown.iter().chain(&switched) {
        if out.show(ev).is_err() {
            return Some(exit::ERROR);
        }
    }
    if let Some(up_to) = received {
        let ack = ClientFrame::AckOffline { up_to };
        if sender.send(&ack).await.is_err() {
            let _ = out.show(&lost("the connection broke"));
            return Some(exit::DISCONNECTED);
        }
    }
    match bye {
        Some(DisconnectReason::Quit) => Some(exit::QUIT),
        Some(_) => Some(exit::DISCONNECTED),
        None => None,
    }
}

/// What a typed line comes to in the line mode.
enum Step {
    /// Nothing (an empty line).
    Nothing,
    /// Something to show, and nothing to send.
    Show(LineEvent),
    /// A message refused here (why, and what to show): a line not delivered.
    NotSent(LineEvent, String),
    /// Something to send.
    Send(Outbound),
}

/// What to do with a typed line, `None` being an empty one, for a server that speaks protocol
/// `version` and takes messages up to `max_len` bytes long.
fn step(command: Option<Command>, rooms: &mut Rooms, max_len: usize, version: u16) -> Step {
    if let Some(Command::Message(m)) = command {
        return messages::step(m, rooms, max_len, version);
    }
    let step = to_send(command, rooms, max_len);
    if let Step::Send(Outbound::Frame(frame)) = &step {
        if let Some(message) = crate::command::unsupported(frame, version) {
            return Step::Show(LineEvent::error(message));
        }
        // The room asked for becomes the current one once entered.
        if let ClientFrame::Join { room } = frame {
            rooms.joining = Some(fold(room));
        }
    }
    step
}

/// What a typed line asks to send, or to show instead.
fn to_send(command: Option<Command>, rooms: &mut Rooms, max_len: usize) -> Step {
    let Some(command) = command else {
        return Step::Nothing;
    };
    let frame = |frame| Step::Send(Outbound::Frame(frame));
    match command {
        // Refuse locally what the server would refuse anyway, so a long paste is an error
        // message rather than a failed send.
        Command::Say(t) | Command::Me(t) | Command::Msg { text: t, .. } if t.len() > max_len => {
            Step::NotSent(
                LineEvent::error(format!(
                    "message not sent: it is {} bytes long; the limit is {max_len}",
                    t.len()
                )),
                format!("longer than the server's limit of {max_len} bytes"),
            )
        }
        Command::Help => {
            let lines = crate::command::HELP
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            Step::Show(LineEvent::Help { lines })
        }
        Command::Invalid(message) => Step::Show(LineEvent::error(message)),
        Command::Quit(reason) => Step::Send(Outbound::Quit(reason)),
        Command::Say(text) => Step::Send(Outbound::Say(rooms.current.clone(), text)),
        Command::Me(text) => Step::Send(Outbound::Me(rooms.current.clone(), text)),
        Command::Msg { to, text } => Step::Send(Outbound::Msg(to, text)),
        Command::Who => frame(ClientFrame::Who {
            room: rooms.current.clone(),
        }),
        Command::Join(room) => frame(ClientFrame::Join {
            room: room_name(&room).to_owned(),
        }),
        Command::Part(room) => frame(ClientFrame::Part {
            room: room.map_or_else(|| rooms.current.clone(), |r| room_name(&r).to_owned()),
        }),
        Command::Rooms => frame(ClientFrame::ListRooms),
        Command::Topic(topic) => frame(ClientFrame::SetTopic {
            room: rooms.current.clone(),
            topic,
        }),
        Command::History(limit) => frame(ClientFrame::History {
            room: rooms.current.clone(),
            before: rooms.oldest(&rooms.current),
            limit,
        }),
        Command::PrivateHistory { with, limit } => frame(ClientFrame::PrivateHistory {
            before: rooms.oldest(&chat_core::names::conversation_key(&with)),
            with,
            limit,
        }),
        Command::Register(password) => frame(ClientFrame::Register { password }),
        Command::Password(password) => frame(ClientFrame::SetPassword { password }),
        Command::Room(room) => Step::Show(rooms.switch(room_name(&room))),
        Command::Mod(ModCommand::DeleteLast(nick)) => match rooms.latest_from(&nick) {
            Some(id) => frame(ClientFrame::Delete { id }),
            None => Step::Show(LineEvent::error(format!(
                "no message from {nick} in #{} to delete",
                rooms.current
            ))),
        },
        Command::Mod(m) => match m.frame(Some(&rooms.current)) {
            Ok(f) => frame(f),
            Err(why) => Step::Show(LineEvent::error(why)),
        },
        Command::Ignore(_) | Command::Unignore(_) | Command::File(_) | Command::Message(_) => {
            Step::Nothing
        }
        Command::Query(_) | Command::Clear | Command::Close | Command::Reconnect => {
            Step::Show(LineEvent::error(
                "that command is only available in the full-screen client; /help lists the \
                 commands of the line mode",
            ))
        }
    }
}

/// `/ignore [NICK]` (`add`) or `/unignore NICK`: changes the list; what to show is the list,
/// or why it could not be changed.
fn ignore(list: &mut crate::ignore::Ignored, nick: Option<String>, add: bool) -> LineEvent {
    let changed = match (&nick, add) {
        (None, _) => Ok(()),
        (Some(nick), true) => list.add(nick),
        (Some(nick), false) => match list.remove(nick) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("you were not ignoring {nick}")),
            Err(e) => Err(e),
        },
    };
    match changed {
        Ok(()) => LineEvent::Ignored {
            time: Utc::now(),
            nicks: list.list(),
        },
        Err(why) => LineEvent::error(why),
    }
}

/// What the user asked to send.
#[derive(Clone)]
enum Outbound {
    Say(String, String),
    Me(String, String),
    Msg(Vec<String>, String),
    /// A message to a room with attributes (a reply, an expiry).
    Attr(String, String, Vec<MessageAttr>),
    Quit(String),
    Frame(ClientFrame),
}

impl Outbound {
    /// Sends it; a message's tag comes back (the server's answer names it).
    async fn send<W>(&self, sender: &mut ClientSender<W>) -> Result<Option<u64>, FrameError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Outbound::Say(room, text) => sender.say(room, text.as_str()).await.map(Some),
            Outbound::Me(room, text) => sender.action(room, text.as_str()).await.map(Some),
            Outbound::Msg(to, text) => sender.private(to, text.as_str()).await.map(Some),
            Outbound::Attr(room, text, attrs) => {
                let (to, body) = (Target::Room(room.clone()), Body::Text(text.clone()));
                sender.message(to, body, attrs.clone()).await.map(Some)
            }
            Outbound::Quit(reason) => sender.quit(reason.as_str()).await.map(|()| None),
            Outbound::Frame(frame) => sender.send(frame).await.map(|()| None),
        }
    }
}

fn lost(message: &str) -> LineEvent {
    LineEvent::Disconnected {
        time: Utc::now(),
        reason: "connection lost".to_owned(),
        message: message.to_owned(),
    }
}

struct Output {
    json: bool,
    utc: bool,
    me: String,
    /// Whose messages are not shown.
    ignored: crate::ignore::Ignored,
}

impl Output {
    /// Prints one event; fails when standard output is gone (e.g. a closed pipe).
    fn show(&mut self, ev: &LineEvent) -> io::Result<()> {
        let text = if self.json {
            ev.to_json()
        } else {
            ev.to_text(&self.me, self.utc)
        };
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{text}")?;
        stdout.flush()
    }
}

/// Reads standard input on its own thread (a blocking read cannot be cancelled, and must not
/// keep the process alive at exit), one line at a time. Bytes that are not UTF-8 are replaced
/// (U+FFFD) rather than ending the input.
fn spawn_stdin_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
