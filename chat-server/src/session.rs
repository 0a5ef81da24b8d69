//! One task per connection: the handshake, then reading, checking and rate-limiting the
//! client's frames and turning them into hub commands, while writing what the hub queues for
//! the client (the connection's [`Writer`], see [`crate::outbox`]).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use chat_core::connection::FrameReader;
use chat_core::frame::{FrameError, encode_frame};
use chat_core::names;
use chat_core::protocol::{
    Body, ClientFrame, DisconnectReason, ErrorCode, ErrorFrame, HANDSHAKE_MAX_FRAME, Hello,
    MAX_SERVER_FRAME, MIN_PROTOCOL_VERSION, Outgoing, PROTOCOL_VERSION, RejectReason, Rejected,
    ServerFrame, Target,
};
use chrono::Utc;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, GuestPolicy};
use crate::event::EventKind;
use crate::hub::{Ack, Cmd, ConnId, JoinRequest, Login};
use crate::login::{self, Failures};
use crate::outbox::{CLOSE_GRACE, Outbox, PushError, SocketSink, Writer};
use crate::ratelimit::{RateLimiter, Verdict};
use crate::stats::Stats;
use crate::store::{StoreError, StoreHandle};

/// Most attributes on one message.
const MAX_ATTRS: usize = 8;
/// Longest room topic, in bytes.
const MAX_TOPIC: usize = 300;
/// Longest quit message kept, in bytes.
const MAX_QUIT_MESSAGE: usize = 256;
/// After the server closes a connection it keeps reading (and discarding) for this long, so
/// that unread input does not turn the close into a reset that would destroy the final frame
/// before the client reads it.
const LINGER: Duration = Duration::from_secs(1);

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Arc<Config>,
    pub stats: Arc<Stats>,
    pub hub: mpsc::Sender<Cmd>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub next_conn: AtomicU64,
    /// The store, for logins; `None` keeps no accounts.
    pub store: Option<StoreHandle<Ack>>,
    /// Recent wrong passwords per address.
    pub failures: Failures,
}

/// A refused handshake.
struct Refusal {
    /// What to tell the client; `None` when it is gone already.
    reason: Option<RejectReason>,
    message: String,
    nick: Option<String>,
    addr: SocketAddr,
}

impl Refusal {
    fn new(reason: RejectReason, message: impl Into<String>, addr: SocketAddr) -> Self {
        Refusal {
            reason: Some(reason),
            message: message.into(),
            nick: None,
            addr,
        }
    }
}

/// A completed handshake.
struct Accepted {
    hello: Hello,
    version: u16,
    addr: SocketAddr,
    relayed: bool,
}

/// A connection's frame reader. The socket's halves are owned: once the client is admitted,
/// its outbox holds the write half, which the hub writes to directly.
type Reader = FrameReader<Counting<OwnedReadHalf>, ClientFrame>;

/// Serves one accepted TCP connection until it ends.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// keeps a second copy of each argument in its state (its parameters and the locals they are
/// moved into), for the whole life of the connection.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep each argument twice, for the connection's whole life"
)]
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> + Send {
    async move {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        // The reader, the handshake's outcome, the handshake and the ending phases are boxed:
        // a connection spends its life in the read loop, and its task should be no larger
        // than that state needs (the server's memory per idle connection). A future keeps a
        // slot for every local that lives across an await, so a large value moved from one
        // phase to the next would otherwise be paid for several times over.
        let mut reader: Box<Reader> = Box::new(FrameReader::new(
            Counting {
                inner: r,
                stats: shared.stats.clone(),
            },
            HANDSHAKE_MAX_FRAME,
        ));
        let accepted = match Box::pin(greet(&mut reader, &shared, peer)).await {
            Ok(accepted) => accepted,
            Err(refusal) => return Box::pin(refuse(reader, w, *refusal, &shared)).await,
        };
        // The chat phase. Logging in and being admitted are boxed: what they hold is not kept
        // in the connection's state for the rest of its life.
        let version = accepted.version;
        let Some(Admitted {
            mut reader,
            conn,
            outbox,
            mut writer,
        }) = Box::pin(enter(reader, w, accepted, &shared)).await
        else {
            return;
        };
        reader.set_max_frame(shared.config.max_frame);
        let mut abandoned = Abandoned {
            conn,
            outbox: Some(outbox.clone()),
            shared: &shared,
        };
        let end = read_loop(&mut reader, &mut writer, conn, version, &outbox, &shared).await;
        Box::pin(leave(reader, writer, end, conn, outbox, &shared)).await;
        abandoned.outbox = None;
        // The connection's place among `--max-clients` is given back when it ends.
        drop(permit);
    }
}

/// Ends an admitted connection whose task stops before it has left (a panic in it, or the
/// runtime dropping it): the outbox keeps the socket open for the hub, so without this the
/// client would stay connected, still written to and never read. Disarmed by clearing
/// `outbox` once the connection has ended properly.
struct Abandoned<'a> {
    conn: ConnId,
    outbox: Option<Arc<Outbox>>,
    shared: &'a Shared,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let Some(outbox) = self.outbox.take() else {
            return;
        };
        outbox.abandon();
        let leave = Cmd::Leave {
            conn: self.conn,
            reason: DisconnectReason::ConnectionClosed,
            message: "the server lost this connection".to_owned(),
        };
        match self.shared.hub.try_send(leave) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            // The hub's queue is full: told as soon as there is room, from a task of its own.
            Err(TrySendError::Full(leave)) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let hub = self.shared.hub.clone();
                    runtime.spawn(async move { hub.send(leave).await });
                }
                Err(_) => tracing::error!(
                    conn = self.conn,
                    "could not tell the hub about a connection that ended abruptly"
                ),
            },
        }
    }
}

/// The handshake, within the Hello timeout and unless the server shuts down.
async fn greet(
    reader: &mut Reader,
    shared: &Shared,
    peer: SocketAddr,
) -> Result<Box<Accepted>, Box<Refusal>> {
    let timeout = shared.config.hello_timeout;
    tokio::select! {
        res = tokio::time::timeout(timeout, handshake(reader, shared, peer)) => match res {
            Ok(res) => res.map(Box::new).map_err(Box::new),
            Err(_) => Err(Box::new(Refusal::new(
                RejectReason::HelloTimeout,
                format!("no Hello received within {} s", timeout.as_secs()),
                peer,
            ))),
        },
        () = shared.shutdown.cancelled() => Err(Box::new(Refusal::new(
            RejectReason::ShuttingDown,
            "the server is shutting down",
            peer,
        ))),
    }
}

/// Reads the optional relay frame and the Hello, and checks them.
async fn handshake(
    reader: &mut Reader,
    shared: &Shared,
    peer: SocketAddr,
) -> Result<Accepted, Refusal> {
    let mut addr = peer;
    let mut relayed = false;
    let mut frame = next_handshake_frame(reader, peer).await?;
    if let ClientFrame::RelayHello(relay) = frame {
        let Some(secret) = shared.config.relay_secret.as_ref() else {
            return Err(Refusal::new(
                RejectReason::RelayRefused,
                "this server does not accept relayed connections",
                peer,
            ));
        };
        if !bool::from(relay.secret.as_bytes().ct_eq(secret.expose().as_bytes())) {
            return Err(Refusal::new(
                RejectReason::RelayRefused,
                "the relay's secret does not match the server's",
                peer,
            ));
        }
        addr = relay.peer_addr.parse().map_err(|_| {
            Refusal::new(
                RejectReason::Malformed,
                format!(
                    "the relay sent an invalid guest address {:?}",
                    relay.peer_addr
                ),
                peer,
            )
        })?;
        relayed = true;
        frame = next_handshake_frame(reader, addr).await?;
    }
    let ClientFrame::Hello(hello) = frame else {
        return Err(Refusal::new(
            RejectReason::ExpectedHello,
            "the first frame must be Hello",
            addr,
        ));
    };
    let with_nick = |mut r: Refusal| {
        r.nick = Some(hello.nick.clone());
        r
    };
    if hello.version < MIN_PROTOCOL_VERSION {
        return Err(with_nick(Refusal::new(
            RejectReason::VersionMismatch {
                client: hello.version,
                server_min: MIN_PROTOCOL_VERSION,
                server_max: PROTOCOL_VERSION,
            },
            format!(
                "protocol version {} is too old: this server speaks versions {} to {}; \
                 please upgrade the client",
                hello.version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
            ),
            addr,
        )));
    }
    if !names::validate_client_name(&hello.client) {
        return Err(with_nick(Refusal::new(
            RejectReason::Malformed,
            "the client name is too long or contains control characters",
            addr,
        )));
    }
    let nick_check = if relayed {
        names::validate_relayed_nick(&hello.nick)
    } else if hello.nick.starts_with(names::RELAY_PREFIX) {
        return Err(with_nick(Refusal::new(
            RejectReason::NickReservedForRelay,
            "nicknames starting with '*' are reserved for guests connecting through a relay",
            addr,
        )));
    } else {
        names::validate_nick(&hello.nick)
    };
    if let Err(rule) = nick_check {
        return Err(with_nick(Refusal::new(
            RejectReason::InvalidNick(rule.clone()),
            format!("invalid nickname {:?}: {rule}", hello.nick),
            addr,
        )));
    }
    Ok(Accepted {
        version: hello.version.min(PROTOCOL_VERSION),
        hello,
        addr,
        relayed,
    })
}

async fn next_handshake_frame(
    reader: &mut Reader,
    addr: SocketAddr,
) -> Result<ClientFrame, Refusal> {
    match reader.recv().await {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(Refusal {
            reason: None,
            message: "connection closed before Hello".into(),
            nick: None,
            addr,
        }),
        Err(e @ FrameError::TooLarge { .. }) => Err(Refusal::new(
            RejectReason::FrameTooLarge,
            e.to_string(),
            addr,
        )),
        Err(FrameError::Io(e)) => Err(Refusal {
            reason: None,
            message: format!("connection failed before Hello: {e}"),
            nick: None,
            addr,
        }),
        Err(e) => Err(Refusal::new(RejectReason::Malformed, e.to_string(), addr)),
    }
}

/// Checks the Hello's password against the account it names: `Ok(None)` is a guest,
/// `Ok(Some)` a verified account (or, with `--guests deny`, one created by this login).
/// A wrong password is answered only after a delay that grows with each failure from the
/// same address.
async fn log_in(accepted: &Accepted, shared: &Shared) -> Result<Option<Login>, Refusal> {
    let nick = &accepted.hello.nick;
    let refusal = |reason: RejectReason, message: String| {
        let reason = reason.for_version(accepted.version);
        let mut r = Refusal::new(reason, message, accepted.addr);
        r.nick = Some(nick.clone());
        r
    };
    let deny = shared.config.guests == GuestPolicy::Deny;
    let Some(password) = accepted.hello.password.clone() else {
        if deny {
            return Err(refusal(
                RejectReason::GuestsNotAllowed,
                "this server admits only accounts: log in with a password (a nickname nobody \
                 has registered yet is registered with it)"
                    .into(),
            ));
        }
        return Ok(None);
    };
    if accepted.relayed {
        return Err(refusal(
            RejectReason::NoAccountsThroughRelay,
            "accounts cannot be used through a relay: connect to the server directly to log in, \
             or connect without a password as a guest"
                .into(),
        ));
    }
    if shared.store.is_none() {
        return Err(refusal(
            RejectReason::NoSuchAccount,
            "this server keeps no accounts".into(),
        ));
    }
    let key = names::nick_keys(nick).folded;
    let ip = accepted.addr.ip();
    // One attempt at a time per address, and none within the wait after a wrong password:
    // no password is even checked then. Worth retrying, so clients do, a little later.
    if let Err(wait) = shared.failures.begin(ip) {
        return Err(refusal(
            RejectReason::Unavailable,
            format!(
                "too many wrong passwords from your address, or a login from it under way: \
                 try again in {} s",
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            ),
        ));
    }
    let result = check_login(accepted, shared, &key, password, deny, &refusal).await;
    match &result {
        Ok(_) => shared.failures.succeeded(ip, &key),
        // A wrong password gave the turn back after its delay (in `check_login`).
        Err(r) if r.reason == Some(RejectReason::BadPassword) => {}
        Err(_) => shared.failures.finished(ip),
    }
    result
}

/// The part of [`log_in`] that holds the address's turn: looks the account up and checks the
/// password (or, with `--guests deny`, prepares the account to create).
async fn check_login(
    accepted: &Accepted,
    shared: &Shared,
    key: &str,
    password: String,
    deny: bool,
    refusal: &impl Fn(RejectReason, String) -> Refusal,
) -> Result<Option<Login>, Refusal> {
    let nick = &accepted.hello.nick;
    let Some(store) = &shared.store else {
        return Err(refusal(
            RejectReason::NoSuchAccount,
            "this server keeps no accounts".into(),
        ));
    };
    let ip = accepted.addr.ip();
    let account_key = key.to_owned();
    let key = key.to_owned();
    let unavailable = |e: StoreError| {
        refusal(
            RejectReason::Unavailable,
            format!("the server cannot read its accounts right now ({e}); try again later"),
        )
    };
    let account = store
        .read(move |s| s.account(&key))
        .await
        .and_then(|found| found)
        .map_err(unavailable)?;
    let Some(account) = account else {
        if !deny {
            return Err(refusal(
                RejectReason::NoSuchAccount,
                format!(
                    "there is no account named {nick:?}: connect without a password, then \
                     /register to create it"
                ),
            ));
        }
        login::check_password(&password).map_err(|rule| {
            // Not a wrong password: the address's turn is given back at once.
            shared.failures.finished(ip);
            refusal(
                RejectReason::BadPassword,
                format!("cannot register {nick:?}: {rule}"),
            )
        })?;
        let hash = login::off_thread(move || login::hash_password(&password))
            .await
            .and_then(Result::ok)
            .ok_or_else(|| {
                refusal(
                    RejectReason::Unavailable,
                    "the password could not be hashed now; try again later".into(),
                )
            })?;
        return Ok(Some(Login {
            account: crate::store::Account {
                nick: nick.clone(),
                hash: login::HashedPassword::default(),
                rooms: Vec::new(),
            },
            create: Some(hash),
        }));
    };
    let hash = account.hash.clone();
    let Some(matches) = login::off_thread(move || login::verify_password(&password, &hash)).await
    else {
        return Err(refusal(
            RejectReason::Unavailable,
            "the server is too busy checking passwords right now; try again later".into(),
        ));
    };
    if !matches {
        tokio::time::sleep(shared.failures.failed(ip, &account_key)).await;
        return Err(refusal(
            RejectReason::BadPassword,
            format!("wrong password for {:?}", account.nick),
        ));
    }
    Ok(Some(Login {
        account,
        create: None,
    }))
}

/// Tells the client why it was refused, records it, and closes.
async fn refuse<W: AsyncWrite + Unpin>(
    reader: Box<Reader>,
    mut w: W,
    refusal: Refusal,
    shared: &Shared,
) {
    let Refusal {
        reason,
        message,
        nick,
        addr,
    } = refusal;
    let _ = shared
        .hub
        .send(Cmd::Record(EventKind::Rejected {
            addr: addr.to_string(),
            nick,
            reason: message.clone(),
        }))
        .await;
    if let Some(reason) = reason {
        let frame = ServerFrame::Rejected(Rejected { reason, message });
        if let Ok(bytes) = encode_frame(&frame, MAX_SERVER_FRAME) {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                w.write_all(&bytes).await?;
                w.shutdown().await
            })
            .await;
            linger(reader).await;
        }
    }
}

/// Discards what the client still sends, for a moment, before the socket is dropped.
async fn linger(reader: Box<Reader>) {
    let mut rest = reader.into_inner();
    let _ = tokio::time::timeout(LINGER, async {
        let mut limited = tokio::io::AsyncReadExt::take(&mut rest, 1 << 20);
        tokio::io::copy(&mut limited, &mut tokio::io::sink()).await
    })
    .await;
}

/// An admitted connection.
struct Admitted {
    reader: Box<Reader>,
    conn: ConnId,
    outbox: Arc<Outbox>,
    writer: Writer<SocketSink>,
}

/// Logs the client in and has the hub admit it; `None` once the client has been told why
/// not.
async fn enter(
    reader: Box<Reader>,
    w: OwnedWriteHalf,
    accepted: Box<Accepted>,
    shared: &Shared,
) -> Option<Admitted> {
    let login = tokio::select! {
        login = log_in(&accepted, shared) => login,
        () = shared.shutdown.cancelled() => Err(Refusal::new(
            RejectReason::ShuttingDown,
            "the server is shutting down",
            accepted.addr,
        )),
    };
    let login = match login {
        Ok(login) => login,
        Err(refusal) => {
            refuse(reader, w, refusal, shared).await;
            return None;
        }
    };
    let (conn, outbox, writer) = admit(w, accepted, login, shared).await?;
    Some(Admitted {
        reader,
        conn,
        outbox,
        writer,
    })
}

/// Asks the hub to admit the client, with the queue the hub will fill for it; `None` (after
/// telling the client why) if it is not admitted.
async fn admit(
    w: OwnedWriteHalf,
    accepted: Box<Accepted>,
    login: Option<Login>,
    shared: &Shared,
) -> Option<(ConnId, Arc<Outbox>, Writer<SocketSink>)> {
    let config = &shared.config;
    let conn: ConnId = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let outbox = Arc::new(Outbox::with_socket(config.send_queue_bytes, w));
    let writer = Writer::new(SocketSink(outbox.clone()));
    let (joined_tx, joined_rx) = oneshot::channel();
    let join = Cmd::Join(Box::new(JoinRequest {
        conn,
        version: accepted.version,
        nick: accepted.hello.nick.clone(),
        client: accepted.hello.client.clone(),
        addr: accepted.addr,
        relayed: accepted.relayed,
        outbox: outbox.clone(),
        login,
        joined: joined_tx,
    }));
    // Nothing is read until the Welcome is queued, so no direct answer can overtake it. The
    // hub either answers (admitted) or drops the sender (shutting down, or gone); nothing is
    // written before that. Once admitted, a write failure is noticed by the read loop, which
    // reports the client gone.
    let answer = match shared.hub.send(join).await {
        Ok(()) => joined_rx.await.ok(),
        Err(_) => None,
    };
    let refused = match answer {
        Some(Ok(())) => return Some((conn, outbox, writer)),
        Some(Err(mut rejected)) => {
            rejected.reason = rejected.reason.for_version(accepted.version);
            rejected
        }
        None => Rejected {
            reason: RejectReason::ShuttingDown,
            message: "the server is shutting down".into(),
        },
    };
    let _ = shared
        .hub
        .send(Cmd::Record(EventKind::Rejected {
            addr: accepted.addr.to_string(),
            nick: Some(accepted.hello.nick.clone()),
            reason: refused.message.clone(),
        }))
        .await;
    let frame = ServerFrame::Rejected(refused);
    outbox.close(encode_frame(&frame, MAX_SERVER_FRAME).ok(), false);
    writer.finish(&outbox, &shared.stats).await;
    None
}

/// Ends an admitted connection: tells the hub why (unless it decided), writes what is left.
async fn leave(
    reader: Box<Reader>,
    mut writer: Writer<SocketSink>,
    end: End,
    conn: ConnId,
    outbox: Arc<Outbox>,
    shared: &Shared,
) {
    let linger_after = matches!(
        end,
        End::Leave(
            DisconnectReason::ProtocolError | DisconnectReason::Flooding,
            _
        )
    );
    match end {
        End::Leave(reason, message) => {
            let leave = Cmd::Leave {
                conn,
                reason,
                message,
            };
            if shared.hub.send(leave).await.is_err() {
                close_for_shutdown(&outbox);
            }
        }
        End::HubGone => close_for_shutdown(&outbox),
        End::ClosedByHub => {}
        End::Shutdown => {
            // The hub says bye to every client it knows, after handling what was already
            // read. Give it that chance (writing meanwhile); close here only if it never
            // comes.
            let wait = writer.drive(outbox.closed(), &outbox, &shared.stats);
            let _ = tokio::time::timeout(LINGER, wait).await;
            close_for_shutdown(&outbox);
        }
    }
    writer.finish(&outbox, &shared.stats).await;
    if linger_after {
        linger(reader).await;
    }
}

/// How a connection's read loop ended.
#[derive(Debug)]
enum End {
    /// The client leaves; the hub must be told why.
    Leave(DisconnectReason, String),
    /// The hub already removed the client (quit handled, queue overflow, shutdown).
    ClosedByHub,
    /// The server is shutting down.
    Shutdown,
    /// The hub is no longer running.
    HubGone,
}

/// Reads, checks and forwards frames until the connection ends, writing what the hub queues
/// for the client all along.
async fn read_loop<W: AsyncWrite + Unpin>(
    reader: &mut Reader,
    writer: &mut Writer<W>,
    conn: ConnId,
    version: u16,
    outbox: &Outbox,
    shared: &Shared,
) -> End {
    let stats = &*shared.stats;
    let lost = || {
        End::Leave(
            DisconnectReason::ConnectionClosed,
            "connection lost while sending to the client".to_owned(),
        )
    };
    let mut limiter = RateLimiter::new(shared.config.rate, Instant::now());
    // Registered once, for the whole loop.
    let mut shutdown = pin!(shared.shutdown.cancelled());
    // A password being hashed, for a command to send once hashed.
    let mut hashing = None;
    loop {
        let cmd = if let Some(hashing) = hashing.take() {
            match writer.drive(hashing, outbox, stats).await {
                Ok(Ok(cmd)) => cmd,
                Ok(Err(e)) => {
                    if !reply(outbox, &ServerFrame::Error(e)) {
                        return overflow(&shared.config);
                    }
                    continue;
                }
                Err(_) => return lost(),
            }
        } else {
            // One poll function rather than a `select!` of futures: what an idle connection
            // waits on is held in its task's state for as long as it is connected.
            let woke = poll_fn(|cx| {
                if outbox.poll_closed(cx).is_ready() {
                    return Poll::Ready(Err(if outbox.failed() {
                        lost()
                    } else {
                        End::ClosedByHub
                    }));
                }
                if shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(End::Shutdown));
                }
                // Reading before writing: a busy room could keep the writer going for ever,
                // and the client would never be heard; input, on the other hand, is bounded
                // by the rate limit (and a client that waits for answers lets the writer run).
                if let Poll::Ready(read) = poll_next_frame(reader, cx) {
                    return Poll::Ready(Ok(read));
                }
                writer.poll_pump(outbox, stats, cx).map(|_| {
                    outbox.fail();
                    Err(lost())
                })
            });
            let read = match woke.await {
                Ok(read) => read,
                Err(end) => return end,
            };
            // Deciding is synchronous, so that no frame is held across the wait for the hub
            // (every idle connection's task is as large as its largest waiting state); for
            // the same reason nothing is awaited inside this `match`, whose value would be
            // kept across the wait.
            match step(read, conn, version, outbox, shared, &mut limiter) {
                Step::Next => continue,
                Step::Hub(cmd) => cmd,
                Step::End(end) => return end,
                Step::Hash(purpose, password) => {
                    hashing = Some(Box::pin(hashed(conn, purpose, password)));
                    continue;
                }
            }
        };
        match writer.drive(to_hub(shared, cmd), outbox, stats).await {
            Ok(true) => {}
            Ok(false) => return End::HubGone,
            Err(_) => return lost(),
        }
    }
}

/// Polls for the client's next frame. While no frame is partly received, the connection holds
/// no read buffer: it waits for the socket to be readable first, and then gets one.
fn poll_next_frame(
    reader: &mut Reader,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<ClientFrame>, FrameError>> {
    if reader.buffered() == 0 {
        reader.release_buffer();
        if let Err(e) = ready!(reader.get_ref().inner.as_ref().poll_read_ready(cx)) {
            return Poll::Ready(Err(FrameError::Io(e)));
        }
        reader.reserve_buffer();
    }
    reader.poll_recv(cx)
}

/// Hashes a new password (see [`hash`]) into the hub command it is for.
async fn hashed(conn: ConnId, purpose: HashFor, password: String) -> Result<Cmd, ErrorFrame> {
    let hash = hash(password).await?;
    Ok(match purpose {
        HashFor::Register => Cmd::Register { conn, hash },
        HashFor::SetPassword => Cmd::SetPassword { conn, hash },
    })
}

/// What the read loop does next with what it read.
enum Step {
    /// Nothing more (answered directly, or refused).
    Next,
    /// Hand this to the hub.
    Hub(Cmd),
    /// The connection ends.
    End(End),
    /// Hash this password (off the connection's task), then hand it to the hub.
    Hash(HashFor, String),
}

/// What a password is hashed for.
enum HashFor {
    Register,
    SetPassword,
}

/// Hashes a new password on the blocking pool.
async fn hash(password: String) -> Result<login::HashedPassword, ErrorFrame> {
    let fail = |message: String| ErrorFrame {
        tag: None,
        code: ErrorCode::InvalidPassword,
        message,
    };
    login::check_password(&password).map_err(fail)?;
    match login::off_thread(move || login::hash_password(&password)).await {
        Some(hashed) => hashed.map_err(fail),
        None => Err(ErrorFrame {
            tag: None,
            code: ErrorCode::Busy,
            message: "the server is too busy hashing passwords right now; try again".into(),
        }),
    }
}

/// Checks one read result against the protocol and the rate limit, answering directly what
/// needs no hub.
fn step(
    read: Result<Option<ClientFrame>, FrameError>,
    conn: ConnId,
    version: u16,
    outbox: &Outbox,
    shared: &Shared,
    limiter: &mut RateLimiter,
) -> Step {
    let config = &shared.config;
    let frame = match read {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            return Step::End(End::Leave(
                DisconnectReason::ConnectionClosed,
                "connection closed".into(),
            ));
        }
        Err(e) if e.is_protocol_violation() => {
            return Step::End(End::Leave(DisconnectReason::ProtocolError, e.to_string()));
        }
        Err(e) => {
            return Step::End(End::Leave(
                DisconnectReason::ConnectionClosed,
                e.to_string(),
            ));
        }
    };
    if let ClientFrame::Quit { reason } = frame {
        return Step::End(End::Leave(
            DisconnectReason::Quit,
            clean_quit_message(&reason),
        ));
    }
    let tag = match &frame {
        ClientFrame::Send(out) => Some(out.tag),
        _ => None,
    };
    match limiter.check(Instant::now()) {
        Verdict::Allow => {}
        Verdict::Refuse { retry_after, first } => {
            Stats::add(&shared.stats.rate_limited, 1);
            let retry_after_ms = u32::try_from(retry_after.as_millis()).unwrap_or(u32::MAX);
            let refused = ServerFrame::RateLimited {
                tag,
                retry_after_ms,
            };
            if !reply(outbox, &refused) {
                return Step::End(overflow(config));
            }
            return if first {
                Step::Hub(Cmd::RateLimited {
                    conn,
                    retry_after_ms: u64::from(retry_after_ms),
                })
            } else {
                Step::Next
            };
        }
        Verdict::Kick => {
            return Step::End(End::Leave(
                DisconnectReason::Flooding,
                "disconnected for flooding: kept sending while rate-limited".to_owned(),
            ));
        }
    }
    // A frame of a later version than this connection's is answered, not acted on: the
    // answers to it would be frames the client cannot decode.
    if frame.since_version() > version {
        let err = ErrorFrame {
            tag,
            code: ErrorCode::Unsupported,
            message: format!(
                "that request needs protocol version {}; this connection speaks version \
                 {version}",
                frame.since_version()
            ),
        };
        return if reply(outbox, &ServerFrame::Error(err)) {
            Step::Next
        } else {
            Step::End(overflow(config))
        };
    }
    match frame {
        ClientFrame::Send(msg) => match check_outgoing(&msg, config) {
            Ok(()) => Step::Hub(Cmd::Send { conn, msg }),
            Err(err) => {
                if reply(outbox, &ServerFrame::Error(err)) {
                    Step::Next
                } else {
                    Step::End(overflow(config))
                }
            }
        },
        ClientFrame::Who { room } => Step::Hub(Cmd::Who { conn, room }),
        ClientFrame::Ping { nonce } => {
            let pong = ServerFrame::Pong {
                nonce,
                server_time: Utc::now(),
            };
            if reply(outbox, &pong) {
                Step::Next
            } else {
                Step::End(overflow(config))
            }
        }
        ClientFrame::Hello(_) | ClientFrame::RelayHello(_) => Step::End(End::Leave(
            DisconnectReason::ProtocolError,
            "the handshake was already done; Hello may be sent only once".to_owned(),
        )),
        ClientFrame::Quit { .. } => Step::Next,
        ClientFrame::Join { room } => Step::Hub(Cmd::EnterRoom { conn, room }),
        ClientFrame::Part { room } => Step::Hub(Cmd::PartRoom { conn, room }),
        ClientFrame::ListRooms => Step::Hub(Cmd::ListRooms { conn }),
        ClientFrame::SetTopic { room, topic } => {
            let checked = if topic.contains(['\n', '\r']) {
                Err("a topic is one line".to_owned())
            } else if topic.is_empty() {
                Ok(())
            } else {
                names::validate_text(&topic, MAX_TOPIC).map_err(|e| e.to_string())
            };
            match checked {
                Ok(()) => Step::Hub(Cmd::SetTopic { conn, room, topic }),
                Err(message) => {
                    let err = ErrorFrame {
                        tag: None,
                        code: ErrorCode::InvalidText,
                        message: format!("invalid topic: {message}"),
                    };
                    if reply(outbox, &ServerFrame::Error(err)) {
                        Step::Next
                    } else {
                        Step::End(overflow(config))
                    }
                }
            }
        }
        ClientFrame::History {
            room,
            before,
            limit,
        } => Step::Hub(Cmd::History {
            conn,
            room,
            before,
            limit,
        }),
        ClientFrame::Register { password } => Step::Hash(HashFor::Register, password.0),
        ClientFrame::SetPassword { password } => Step::Hash(HashFor::SetPassword, password.0),
        ClientFrame::AckOffline { up_to } => Step::Hub(Cmd::AckOffline { conn, up_to }),
    }
}

/// Hands a command to the hub; false if the hub is gone. The usual case (room in the hub's
/// queue) does not wait; the rare wait for room is boxed, so that the read loop's state, which
/// every idle connection holds, does not carry a command and a semaphore wait.
fn to_hub(shared: &Shared, cmd: Cmd) -> impl Future<Output = bool> + '_ {
    let waiting = match shared.hub.try_send(cmd) {
        Ok(()) => Ok(None),
        Err(TrySendError::Full(cmd)) => Ok(Some(Box::pin(shared.hub.send(cmd)))),
        Err(TrySendError::Closed(_)) => Err(()),
    };
    async move {
        match waiting {
            Ok(None) => true,
            Ok(Some(send)) => send.await.is_ok(),
            Err(()) => false,
        }
    }
}

/// Closes the outbox with a shutdown `Bye` unless it is closed already.
fn close_for_shutdown(outbox: &Outbox) {
    let bye = ServerFrame::Bye {
        reason: DisconnectReason::ServerShutdown,
        message: "the server is shutting down".into(),
    };
    outbox.close(encode_frame(&bye, MAX_SERVER_FRAME).ok(), false);
}

/// Refuses a connection over `--max-clients` with a clear frame and the same polite close as
/// any refusal.
pub(crate) async fn refuse_full(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let (r, w) = stream.into_split();
    let reader = Box::new(FrameReader::new(
        Counting {
            inner: r,
            stats: shared.stats.clone(),
        },
        HANDSHAKE_MAX_FRAME,
    ));
    let message = format!(
        "the server is full ({} connections); try again later",
        shared.config.max_clients
    );
    let refusal = Refusal::new(RejectReason::ServerFull, message, peer);
    refuse(reader, w, refusal, &shared).await;
}

fn overflow(config: &Config) -> End {
    End::Leave(
        DisconnectReason::SendQueueExceeded,
        format!(
            "send queue exceeded ({} bytes waiting): the client is not reading",
            config.send_queue_bytes
        ),
    )
}

/// Queues a direct answer; false if the client's queue is full.
fn reply(outbox: &Outbox, frame: &ServerFrame) -> bool {
    match encode_frame(frame, MAX_SERVER_FRAME) {
        Ok(bytes) => outbox.push(bytes) != Err(PushError::Full),
        Err(_) => true,
    }
}

/// Checks a message before it goes to the hub, so that the hub's work stays minimal.
fn check_outgoing(msg: &Outgoing, config: &Config) -> Result<(), ErrorFrame> {
    let err = |code, message: String| ErrorFrame {
        tag: Some(msg.tag),
        code,
        message,
    };
    let text = match &msg.body {
        Body::Text(t) | Body::Action(t) => t,
    };
    if let Err(e) = names::validate_text(text, config.max_message_len) {
        let code = match e {
            names::TextError::TooLong { .. } => ErrorCode::MessageTooLong {
                max: u32::try_from(config.max_message_len).unwrap_or(u32::MAX),
            },
            _ => ErrorCode::InvalidText,
        };
        return Err(err(code, e.to_string()));
    }
    match &msg.to {
        Target::Room(room) => {
            if let Err(e) = names::validate_room(room.strip_prefix('#').unwrap_or(room)) {
                return Err(err(ErrorCode::NoSuchRoom(room.clone()), e.to_string()));
            }
        }
        Target::Users(users) => {
            if users.is_empty() || users.len() > config.max_targets {
                let max = u32::try_from(config.max_targets).unwrap_or(u32::MAX);
                return Err(err(
                    ErrorCode::BadTargets { max },
                    format!("a private message needs 1 to {max} recipients"),
                ));
            }
        }
    }
    if msg.attrs.len() > MAX_ATTRS {
        return Err(err(
            ErrorCode::Unsupported,
            format!("at most {MAX_ATTRS} message attributes are allowed"),
        ));
    }
    Ok(())
}

fn clean_quit_message(reason: &str) -> String {
    let mut out: String = reason.chars().filter(|c| !c.is_control()).collect();
    if out.len() > MAX_QUIT_MESSAGE {
        let mut cut = MAX_QUIT_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Counts bytes read from a client into the server's statistics (one relaxed atomic add per
/// read syscall, not per frame).
#[derive(Debug)]
pub(crate) struct Counting<R> {
    inner: R,
    stats: Arc<Stats>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// When writing failed (the socket broke while sending), the session must report the
    /// client gone even if reading has not failed (yet).
    #[tokio::test]
    async fn a_failed_write_makes_the_session_report_the_client_gone() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (server_side, _) = listener.accept().await.expect("accept");
        let (r, w) = server_side.into_split();
        let mut writer = Writer::new(w);
        let stats = Arc::new(Stats::default());
        let mut reader: Reader = FrameReader::new(
            Counting {
                inner: r,
                stats: stats.clone(),
            },
            1024,
        );
        let (hub, _hub_rx) = mpsc::channel(8);
        let shared = shared_with(hub, stats);
        let outbox = Outbox::new(1024);
        outbox.fail();
        match read_loop(&mut reader, &mut writer, 1, 2, &outbox, &shared).await {
            End::Leave(DisconnectReason::ConnectionClosed, message) => {
                assert!(message.contains("sending"), "{message}");
            }
            other => panic!("expected the client to leave, got {other:?}"),
        }
        // Closed by the hub instead: the hub already knows, nothing to report.
        let outbox = Outbox::new(1024);
        outbox.close(None, false);
        assert!(matches!(
            read_loop(&mut reader, &mut writer, 1, 2, &outbox, &shared).await,
            End::ClosedByHub
        ));
        // The read loop's own write fails while the client sends nothing: it reports the
        // client gone and marks the queue failed.
        let outbox = Outbox::new(1024);
        outbox
            .push(bytes::Bytes::from_static(b"lost"))
            .expect("push");
        let mut broken = Writer::new(Broken);
        let ended = read_loop(&mut reader, &mut broken, 1, 2, &outbox, &shared);
        match tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the failed write ends the read loop")
        {
            End::Leave(DisconnectReason::ConnectionClosed, message) => {
                assert!(message.contains("sending"), "{message}");
            }
            other => panic!("expected the client to leave, got {other:?}"),
        }
        assert!(outbox.failed());
    }

    /// What sessions share, with `hub` as the hub's queue and no store.
    fn shared_with(hub: mpsc::Sender<Cmd>, stats: Arc<Stats>) -> Shared {
        Shared {
            config: Arc::new(Config::default()),
            stats,
            hub,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
            store: None,
            failures: Failures::default(),
        }
    }

    /// The outbox keeps the socket open for the hub: a connection whose task is dropped
    /// without leaving (as a panic in it would) must still be closed and reported.
    #[tokio::test]
    async fn a_connection_whose_task_ends_abruptly_is_closed_and_reported() {
        ends_abruptly(false).await;
    }

    #[tokio::test]
    async fn a_connection_that_ends_abruptly_is_reported_even_when_the_hub_is_busy() {
        ends_abruptly(true).await;
    }

    /// Admits a connection, aborts its task (with the hub's queue full first, if `busy`), and
    /// checks the hub hears of it and the client's connection ends.
    async fn ends_abruptly(busy: bool) {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server_side, peer) = listener.accept().await.expect("accept");
        let (hub_tx, mut hub_rx) = mpsc::channel(8);
        let shared = Arc::new(shared_with(hub_tx.clone(), Arc::new(Stats::default())));
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .acquire_owned()
            .await
            .expect("permit");
        let task = tokio::spawn(serve(server_side, peer, shared, permit));
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            nick: "ann".into(),
            client: "test".into(),
            password: None,
        });
        let hello = encode_frame(&hello, HANDSHAKE_MAX_FRAME).expect("encode");
        client.write_all(&hello).await.expect("hello");
        let secs = Duration::from_secs(10);
        // Act as the hub: admit the client, and queue it something.
        let request = match tokio::time::timeout(secs, hub_rx.recv()).await {
            Ok(Some(Cmd::Join(request))) => request,
            _ => panic!("no join"),
        };
        let (conn, outbox) = (request.conn, request.outbox.clone());
        request.joined.send(Ok(())).expect("joined");
        outbox
            .push(bytes::Bytes::from_static(b"welcome"))
            .expect("push");
        // Once it arrives, the session is in its read loop.
        let mut got = [0u8; 7];
        let read = client.read_exact(&mut got);
        tokio::time::timeout(secs, read)
            .await
            .expect("welcome")
            .expect("read");
        let mut queued = 0;
        while busy && hub_tx.try_send(Cmd::Barrier).is_ok() {
            queued += 1;
        }
        task.abort();
        assert!(task.await.expect_err("aborted").is_cancelled());
        for _ in 0..queued {
            let barrier = tokio::time::timeout(secs, hub_rx.recv()).await;
            assert!(matches!(barrier, Ok(Some(Cmd::Barrier))));
        }
        match tokio::time::timeout(secs, hub_rx.recv()).await {
            Ok(Some(Cmd::Leave {
                conn: left,
                reason: DisconnectReason::ConnectionClosed,
                ..
            })) => assert_eq!(left, conn),
            _ => panic!("no leave"),
        }
        assert!(outbox.failed());
        // The client is told: its connection ends.
        let mut rest = Vec::new();
        let eof = client.read_to_end(&mut rest);
        tokio::time::timeout(secs, eof)
            .await
            .expect("eof")
            .expect("read");
        assert!(rest.is_empty());
    }

    /// A socket whose every write fails.
    struct Broken;

    impl AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
}
