//! The network task: connects when told to, forwards server frames as [`NetEvent`]s, sends
//! frames, measures the round trip, and notices a dead connection. It decides nothing about
//! reconnecting: the app does, by sending another [`NetCmd::Connect`].

use std::time::Duration;

use chat_core::client::{ClientError, ConnectOptions, NetClient, connect_secured};
use chat_core::protocol::{ClientFrame, Password, RejectReason, ServerFrame};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::app::{Event, NetEvent};
use crate::files::{FileCmd, FileLink, is_file_frame};
use crate::trust::Trust;

/// What the network task is asked to do.
#[derive(Debug)]
pub enum NetCmd {
    /// Connect after `delay` (replacing any attempt that is waiting).
    Connect {
        server: String,
        nick: String,
        /// Account password; `None` connects as a guest.
        password: Option<Password>,
        delay: Duration,
    },
    /// Send a frame; dropped when not connected (the app keeps unconfirmed messages).
    Send(ClientFrame),
    /// The user trusts the certificate with `fingerprint` for `server` from now on.
    Trust { server: String, fingerprint: String },
    /// Say goodbye, wait briefly for the server's answer, then report on `done` and stop.
    Quit {
        reason: String,
        done: oneshot::Sender<()>,
    },
}

/// How often the round trip is measured.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A connection from which nothing at all (a pong, a message, a refusal) has come for this
/// long is considered lost.
const DEAD_AFTER: Duration = Duration::from_secs(45);
/// A send that cannot complete for this long means the connection is dead.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a goodbye waits for the server's `Bye`.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// Starts the network task, trusting servers as `trust` says; it reports on `events` and stops
/// when the command channel closes or after a quit.
/// File frames from the server go to the file agent of `files`, whose frames are sent while
/// nothing else waits.
pub fn spawn(
    events: mpsc::Sender<Event>,
    trust: Trust,
    files: FileLink,
) -> mpsc::UnboundedSender<NetCmd> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(rx, events, trust, files));
    tx
}

async fn run(
    mut cmds: mpsc::UnboundedReceiver<NetCmd>,
    events: mpsc::Sender<Event>,
    mut trust: Trust,
    mut files: FileLink,
) {
    let report = |ev: NetEvent| {
        let events = events.clone();
        async move { events.send(Event::Net(ev)).await.is_ok() }
    };
    let mut next: Option<(String, String, Option<Password>, Duration)> = None;
    loop {
        let (server, nick, password, delay) = match next.take() {
            Some(c) => c,
            // Idle until the app asks for a connection (trusting certificates meanwhile).
            None => match wait(None, &mut cmds, &events, &mut trust, &mut files).await {
                Wait::Replaced(server, nick, password, delay) => (server, nick, password, delay),
                Wait::Quit(done) => {
                    let _ = done.send(());
                    return;
                }
                Wait::Elapsed | Wait::Closed => return,
            },
        };
        match wait(Some(delay), &mut cmds, &events, &mut trust, &mut files).await {
            Wait::Elapsed => {}
            Wait::Replaced(server, nick, password, delay) => {
                next = Some((server, nick, password, delay));
                continue;
            }
            Wait::Quit(done) => {
                let _ = done.send(());
                return;
            }
            Wait::Closed => return,
        }
        if !report(NetEvent::Connecting).await {
            return;
        }
        let mut opts =
            ConnectOptions::new(nick).client(concat!("chat-tui/", env!("CARGO_PKG_VERSION")));
        opts.password = password;
        let security = trust.security(&server);
        let client = match connect_secured(&server, &opts, &security).await {
            Ok(c) => c,
            Err(ClientError::Untrusted {
                server,
                fingerprint,
            }) => {
                let verdict = trust.judge(&server);
                if !report(NetEvent::Untrusted {
                    server,
                    fingerprint,
                    verdict,
                })
                .await
                {
                    return;
                }
                continue;
            }
            Err(e) => {
                let retry = retryable(&e);
                if !report(NetEvent::Failed {
                    message: e.to_string(),
                    retry,
                })
                .await
                {
                    return;
                }
                continue;
            }
        };
        let ended = session(client, &mut cmds, &events, &mut trust, &mut files).await;
        let _ = files.agent.send(FileCmd::Lost);
        match ended {
            End::Lost(message) => {
                if !report(NetEvent::Lost { message }).await {
                    return;
                }
            }
            End::Quit(done) => {
                let _ = done.send(());
                return;
            }
            End::Stop => return,
        }
    }
}

/// Waits `delay` before connecting (`None`: until asked to connect), while a newer Connect or
/// a Quit may cut the wait short (and the user may trust a certificate meanwhile).
async fn wait(
    delay: Option<Duration>,
    cmds: &mut mpsc::UnboundedReceiver<NetCmd>,
    events: &mpsc::Sender<Event>,
    trust: &mut Trust,
    files: &mut FileLink,
) -> Wait {
    let wake = async {
        match delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(wake);
    loop {
        tokio::select! {
            () = &mut wake => return Wait::Elapsed,
            // Not connected: what the file agent still sends goes nowhere.
            Some(_) = files.frames.recv() => {}
            cmd = cmds.recv() => match cmd {
                Some(NetCmd::Send(_)) => {}
                Some(NetCmd::Trust { server, fingerprint }) => {
                    if let Err(why) = trust.accept(&server, &fingerprint)
                        && events.send(Event::Net(NetEvent::Notice(why))).await.is_err()
                    {
                        return Wait::Closed;
                    }
                }
                Some(NetCmd::Connect { server, nick, password, delay }) => {
                    return Wait::Replaced(server, nick, password, delay);
                }
                Some(NetCmd::Quit { done, .. }) => return Wait::Quit(done),
                None => return Wait::Closed,
            },
        }
    }
}

/// How a wait before connecting ended.
enum Wait {
    Elapsed,
    Replaced(String, String, Option<Password>, Duration),
    Quit(oneshot::Sender<()>),
    Closed,
}

/// Whether trying again later may succeed.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Rejected(r) => matches!(
            r.reason,
            RejectReason::ServerFull
                | RejectReason::ShuttingDown
                | RejectReason::HelloTimeout
                | RejectReason::Unavailable
        ),
        ClientError::Unexpected(_) | ClientError::Untrusted { .. } => false,
        ClientError::Connect { .. }
        | ClientError::Timeout { .. }
        | ClientError::Closed
        | ClientError::Tls { .. }
        | ClientError::Protocol(_) => true,
    }
}

enum End {
    Lost(String),
    Quit(oneshot::Sender<()>),
    Stop,
}

async fn session(
    client: NetClient,
    cmds: &mut mpsc::UnboundedReceiver<NetCmd>,
    events: &mpsc::Sender<Event>,
    trust: &mut Trust,
    files: &mut FileLink,
) -> End {
    let NetClient {
        welcome,
        mut sender,
        events: mut frames,
    } = client;
    let max_frame = welcome.limits.max_frame;
    let _ = files.agent.send(FileCmd::Connected { max_frame });
    if events
        .send(Event::Net(NetEvent::Connected(Box::new(welcome))))
        .await
        .is_err()
    {
        return End::Stop;
    }
    let mut ping = tokio::time::interval_at(Instant::now() + Duration::from_secs(1), PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut alive = Liveness::new(Instant::now());
    loop {
        tokio::select! {
            // In this order: the server's frames, the user's, the ping, and only then a file's.
            biased;
            frame = frames.next() => match frame {
                Ok(Some(ServerFrame::Pong { nonce, .. })) => {
                    if let Some(lag) = alive.pong(nonce, Instant::now())
                        && events.send(Event::Net(NetEvent::Lag(lag))).await.is_err()
                    {
                        return End::Stop;
                    }
                }
                Ok(Some(frame)) if is_file_frame(&frame) => {
                    alive.heard(Instant::now());
                    let _ = files.agent.send(FileCmd::Frame(frame));
                }
                Ok(Some(frame)) => {
                    alive.heard(Instant::now());
                    if events.send(Event::Net(NetEvent::Frame(frame))).await.is_err() {
                        return End::Stop;
                    }
                }
                Ok(None) => return End::Lost("the server closed the connection".to_owned()),
                Err(e) => return End::Lost(e.to_string()),
            },
            cmd = cmds.recv() => match cmd {
                Some(NetCmd::Send(frame)) => {
                    if let Err(end) = send(&mut sender, &frame).await {
                        return end;
                    }
                }
                Some(NetCmd::Quit { reason, done }) => {
                    let goodbye = async {
                        sender.quit(reason).await.ok()?;
                        // Read until the server's Bye or the end of the connection.
                        while let Ok(Some(frame)) = frames.next().await {
                            if matches!(frame, ServerFrame::Bye { .. }) {
                                break;
                            }
                        }
                        Some(())
                    };
                    let _ = tokio::time::timeout(QUIT_WAIT, goodbye).await;
                    return End::Quit(done);
                }
                Some(NetCmd::Connect { .. }) => {} // already connected
                Some(NetCmd::Trust { server, fingerprint }) => {
                    if let Err(why) = trust.accept(&server, &fingerprint)
                        && events.send(Event::Net(NetEvent::Notice(why))).await.is_err()
                    {
                        return End::Stop;
                    }
                }
                None => return End::Stop,
            },
            _ = ping.tick() => match alive.tick(Instant::now()) {
                Beat::Ping(nonce) => {
                    if let Err(e) = sender.ping(nonce).await {
                        return End::Lost(e.to_string());
                    }
                }
                Beat::Dead => {
                    return End::Lost(format!(
                        "nothing from the server for {} s",
                        DEAD_AFTER.as_secs()
                    ));
                }
            },
            Some(frame) = files.frames.recv() => {
                if let Err(end) = send(&mut sender, &frame).await {
                    return end;
                }
            }
        }
    }
}

/// Sends `frame`; the end of the connection if that fails or the server reads nothing for
/// [`SEND_TIMEOUT`].
async fn send<W: tokio::io::AsyncWrite + Unpin>(
    sender: &mut chat_core::client::ClientSender<W>,
    frame: &ClientFrame,
) -> Result<(), End> {
    match tokio::time::timeout(SEND_TIMEOUT, sender.send(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(End::Lost(e.to_string())),
        Err(_) => Err(End::Lost(format!(
            "the server has not read anything for {} s",
            SEND_TIMEOUT.as_secs()
        ))),
    }
}

/// Whether the connection is alive: when the server was last heard from, and the ping whose
/// round trip is being measured. Any frame is a sign of life, not only the answer to a ping: a
/// server that refuses a ping (an older one rate-limits them), or is busy sending a room's
/// messages, is there all the same.
#[derive(Debug)]
pub struct Liveness {
    last_heard: Instant,
    nonce: u64,
    /// The latest ping and when it was sent.
    outstanding: Option<(u64, Instant)>,
}

/// What a tick of the ping timer calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a ping with this nonce.
    Ping(u64),
    /// Nothing came from the server for [`DEAD_AFTER`]: the connection is lost.
    Dead,
}

impl Liveness {
    /// A connection just established at `now`.
    pub fn new(now: Instant) -> Self {
        Liveness {
            last_heard: now,
            nonce: 0,
            outstanding: None,
        }
    }

    /// A frame arrived at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// A pong arrived at `now`: the round trip, if it answers the latest ping.
    pub fn pong(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        self.heard(now);
        let (expected, sent) = self.outstanding?;
        (expected == nonce).then(|| {
            self.outstanding = None;
            now.saturating_duration_since(sent)
        })
    }

    /// The ping timer ticked at `now`: a ping to send (each tick sends one, so that a ping
    /// the server refused or lost does not stop the next), or the end of a silent connection.
    pub fn tick(&mut self, now: Instant) -> Beat {
        if now.saturating_duration_since(self.last_heard) >= DEAD_AFTER {
            return Beat::Dead;
        }
        self.nonce += 1;
        self.outstanding = Some((self.nonce, now));
        Beat::Ping(self.nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_frame_is_a_sign_of_life_and_only_silence_is_death() {
        let start = Instant::now();
        let mut alive = Liveness::new(start);
        // Ten minutes in which every ping is refused (RateLimited, not Pong), yet the server
        // answers each: the connection stays.
        for i in 1..=40 {
            let at = start + PING_EVERY * i;
            assert!(matches!(alive.tick(at), Beat::Ping(_)), "tick {i}");
            alive.heard(at + Duration::from_millis(3));
        }
        // A pong answering the latest ping gives the round trip; an older one does not.
        let at = start + PING_EVERY * 41;
        let Beat::Ping(nonce) = alive.tick(at) else {
            panic!("a ping is due");
        };
        assert_eq!(alive.pong(nonce - 1, at), None);
        assert_eq!(
            alive.pong(nonce, at + Duration::from_millis(20)),
            Some(Duration::from_millis(20))
        );
        // Then nothing at all: lost once DEAD_AFTER has passed since the last frame.
        let quiet = at + Duration::from_millis(20);
        assert!(matches!(alive.tick(quiet + PING_EVERY), Beat::Ping(_)));
        assert!(matches!(alive.tick(quiet + PING_EVERY * 2), Beat::Ping(_)));
        assert_eq!(alive.tick(quiet + DEAD_AFTER), Beat::Dead);
    }
}
