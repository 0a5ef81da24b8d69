//! The chat suite's relay. Guests connect to the relay instead of the server; for each one the
//! relay opens its own connection to the server, presents the relay secret and the guest's
//! real address (`RelayHello`), forwards the guest's `Hello` with the nickname rewritten to
//! `*nick`, and from then on copies bytes both ways unchanged. Nothing after the `Hello` is
//! decoded, except the server's first answer (`Welcome` or `Rejected`), which is read whole,
//! noted for the log, and forwarded byte for byte.

pub mod cli;
mod growbuf;
mod log;
mod metered;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use chat_core::FrameReader;
use chat_core::frame::{FrameError, decode_payload, encode_frame, encode_frame_into};
use chat_core::names::relayed_nick;
use chat_core::protocol::{
    ClientFrame, HANDSHAKE_MAX_FRAME, MAX_SERVER_FRAME, RejectReason, Rejected, RelayHello,
    ServerFrame,
};
use chat_service::Secret;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use growbuf::GrowingBufReader;
pub use log::LogRecord;
use metered::Metered;

/// Default port guests connect to.
pub const DEFAULT_PORT: u16 = 9999;
/// Connections being refused at once (over the client limit) at most; more are dropped.
const MAX_REFUSALS: usize = 64;
/// Buffer for each direction of a relayed connection: it starts small and grows up to the
/// larger size while reads keep filling it (see `growbuf`).
const COPY_BUFFER_MIN: usize = 2 * 1024;
const COPY_BUFFER: usize = 64 * 1024;
/// Time a guest has to close after the server closed its side.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Time a refused client has to read the refusal before the socket is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses guests connect to.
    pub listen: Vec<SocketAddr>,
    /// The chat server, `host:port`.
    pub server: String,
    /// The secret the server expects from relays.
    pub secret: Secret,
    /// Guests connected at once, at most; more are refused ("relay full").
    pub max_clients: usize,
    /// Time a guest has to send its `Hello`, and the server to answer it.
    pub handshake_timeout: Duration,
    /// Time allowed for connecting to the server.
    pub connect_timeout: Duration,
    /// A guest whose socket accepts nothing for this long is disconnected.
    pub stall_timeout: Duration,
    /// One JSON line per connection, if set.
    pub log_file: Option<PathBuf>,
    /// How often to print statistics; `None` for never.
    pub stats_interval: Option<Duration>,
}

impl Config {
    /// A relay on 127.0.0.1:9999 in front of `server`, with the defaults for everything else.
    pub fn new(server: impl Into<String>, secret: Secret) -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))],
            server: server.into(),
            secret,
            max_clients: 1024,
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
            log_file: None,
            stats_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// Live counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Guests connected now (from accept to close).
    pub connections_now: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused by the relay itself (full, bad Hello, server unreachable).
    pub refused: AtomicU64,
    /// Bytes forwarded from guests to the server.
    pub bytes_up: AtomicU64,
    /// Bytes forwarded from the server to guests.
    pub bytes_down: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub struct StatsSnapshot {
    pub connections_now: u64,
    pub connections_total: u64,
    pub refused: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_now: self.connections_now.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Display for StatsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections {} now, {} total, {} refused; bytes {} from guests, {} to guests",
            self.connections_now,
            self.connections_total,
            self.refused,
            self.bytes_up,
            self.bytes_down
        )
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A listen address could not be bound, or none was given.
    #[error(transparent)]
    Listen(#[from] chat_service::ListenError),
    /// The log file could not be opened.
    #[error("cannot open the log file {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

struct Shared {
    config: Config,
    stats: Arc<Stats>,
    log: Option<log::LogSender>,
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
}

/// A relay whose listeners are bound, ready to [`Relay::run`].
#[derive(Debug)]
pub struct Relay {
    config: Config,
    listeners: chat_service::Listeners,
    log: Option<std::fs::File>,
    stats: Arc<Stats>,
}

impl Relay {
    /// Binds every listen address and opens the log file.
    pub async fn bind(config: Config) -> Result<Relay, RelayError> {
        let listeners = chat_service::Listeners::bind(&config.listen).await?;
        let log = match &config.log_file {
            Some(path) => Some(log::open(path).map_err(|source| RelayError::Log {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        Ok(Relay {
            config,
            listeners,
            log,
            stats: Arc::new(Stats::default()),
        })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.local_addrs()
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Relays until `shutdown` resolves; then closes every connection, writes their log
    /// lines and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Relay {
            config,
            listeners,
            log,
            stats,
        } = self;
        let (log_tx, log_task) = match (log, &config.log_file) {
            (Some(file), Some(path)) => {
                let (tx, task) = log::spawn(file, path);
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(config.max_clients.max(1))),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            config,
            stats,
            log: log_tx,
        });
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        for listener in listeners.into_inner() {
            tracker.spawn(accept_loop(
                listener,
                shared.clone(),
                token.clone(),
                tracker.clone(),
            ));
        }
        if let Some(every) = shared.config.stats_interval {
            let stats = shared.stats.clone();
            let token = token.clone();
            tracker.spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    tokio::select! {
                        _ = tick.tick() => tracing::info!("stats: {}", stats.snapshot()),
                        () = token.cancelled() => break,
                    }
                }
            });
        }
        shutdown.await;
        token.cancel();
        tracker.close();
        tracker.wait().await;
        tracing::info!("stats at exit: {}", shared.stats.snapshot());
        drop(shared);
        if let Some(task) = log_task {
            let _ = task.await;
        }
    }

    /// Runs the relay in the background.
    pub fn spawn(self) -> RunningRelay {
        let addrs = self.local_addrs();
        let stats = self.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        RunningRelay {
            addrs,
            stats,
            stop: Some(stop),
            task,
        }
    }
}

/// A relay running in the background, from [`Relay::spawn`]. Dropping the handle stops it
/// too, without waiting.
#[derive(Debug)]
pub struct RunningRelay {
    addrs: Vec<SocketAddr>,
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningRelay {
    /// The first address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Stops the relay and waits until every connection is closed and logged.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    while let Some((stream, peer)) = chat_service::accept(&listener, &token).await {
        shared
            .stats
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        match shared.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                tracker.spawn(session(stream, peer, shared.clone(), token.clone(), permit));
            }
            Err(_) => {
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                let Ok(slot) = shared.refusals.clone().try_acquire_owned() else {
                    continue; // too many refusals under way: just close
                };
                let shared = shared.clone();
                tracker.spawn(async move {
                    let _slot = slot;
                    let started = Instant::now();
                    let (mut r, mut w) = stream.into_split();
                    let message = "the relay is full; try again later";
                    refuse(&mut r, &mut w, RejectReason::ServerFull, message).await;
                    shared.log(LogRecord::new(peer, started, format!("refused: {message}")));
                });
            }
        }
    }
}

impl Shared {
    fn log(&self, record: LogRecord) {
        tracing::debug!(
            client = %record.client,
            nick = record.nick.as_deref().unwrap_or("-"),
            "connection ended: {}",
            record.end
        );
        if let Some(log) = &self.log {
            log.send(record);
        }
    }
}

/// One guest, from accept to close.
async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    shared.stats.connections_now.fetch_add(1, Ordering::Relaxed);
    let mut record = LogRecord::new(peer, started, String::new());
    record.end = relay(stream, peer, &shared, &token, &mut record).await;
    record.duration_ms = started.elapsed().as_millis() as u64;
    shared.stats.connections_now.fetch_sub(1, Ordering::Relaxed);
    shared.log(record);
}

/// Handshake, then forwarding. Returns how the connection ended, for the log.
async fn relay(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    token: &CancellationToken,
    record: &mut LogRecord,
) -> String {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut reader: FrameReader<OwnedReadHalf, ClientFrame> =
        FrameReader::new(r, HANDSHAKE_MAX_FRAME);

    // 1. The guest's Hello.
    let first = tokio::select! {
        res = tokio::time::timeout(config.handshake_timeout, reader.recv()) => res,
        () = token.cancelled() => return "relay shutting down".to_owned(),
    };
    let refusal = match first {
        Ok(Ok(Some(ClientFrame::Hello(_)))) => None,
        Err(_) => Some((
            RejectReason::HelloTimeout,
            format!(
                "no Hello received within {} s",
                config.handshake_timeout.as_secs()
            ),
        )),
        Ok(Ok(Some(_))) => Some((
            RejectReason::ExpectedHello,
            "the first frame must be Hello".to_owned(),
        )),
        Ok(Ok(None)) => return "closed before Hello".to_owned(),
        Ok(Err(FrameError::TooLarge { len, max })) => Some((
            RejectReason::FrameTooLarge,
            format!("the first frame announces {len} bytes; the limit is {max}"),
        )),
        Ok(Err(ref e)) if e.is_protocol_violation() => Some((
            RejectReason::Malformed,
            format!("the first frame is not a valid Hello: {e}"),
        )),
        Ok(Err(e)) => return format!("connection error before Hello: {e}"),
    };
    let mut hello = match (first, refusal) {
        (Ok(Ok(Some(ClientFrame::Hello(hello)))), None) => hello,
        (_, Some((reason, message))) => {
            return refused(shared, &mut reader.into_parts().0, &mut w, reason, message).await;
        }
        (_, None) => return "closed before Hello".to_owned(),
    };
    record.requested = Some(hello.nick.clone());

    // 2. The nickname, as the server will see it.
    let nick = match relayed_nick(&hello.nick) {
        Ok(n) => n,
        Err(rule) => {
            let message = format!("invalid nickname {:?}: {rule}", hello.nick);
            return refused(
                shared,
                &mut reader.into_parts().0,
                &mut w,
                RejectReason::InvalidNick(rule),
                message,
            )
            .await;
        }
    };
    record.nick = Some(nick.clone());
    hello.nick = nick;

    // 3. Our own connection to the server.
    let connect = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&config.server));
    let upstream = tokio::select! {
        res = connect => res,
        () = token.cancelled() => return "relay shutting down".to_owned(),
    };
    let upstream = match upstream {
        Ok(Ok(s)) => s,
        failed => {
            let message = match failed {
                Ok(Err(e)) => format!(
                    "the relay cannot reach the chat server: {}",
                    describe_io(&e)
                ),
                _ => format!(
                    "the chat server did not answer the relay within {} s",
                    config.connect_timeout.as_secs()
                ),
            };
            let mut r = reader.into_parts().0;
            let unavailable = RejectReason::Unavailable;
            return refused(shared, &mut r, &mut w, unavailable, message).await;
        }
    };
    let _ = upstream.set_nodelay(true);

    // 4. RelayHello and the rewritten Hello, then whatever the guest sent after its Hello.
    let (mut client_read, leftover) = reader.into_parts();
    let mut opening = BytesMut::new();
    let relay_hello = ClientFrame::RelayHello(RelayHello {
        secret: config.secret.expose().to_owned(),
        peer_addr: peer.to_string(),
        relay: concat!("chat-relay/", env!("CARGO_PKG_VERSION")).to_owned(),
    });
    let encoded =
        encode_frame_into(&relay_hello, HANDSHAKE_MAX_FRAME, &mut opening).and_then(|()| {
            encode_frame_into(
                &ClientFrame::Hello(hello),
                HANDSHAKE_MAX_FRAME,
                &mut opening,
            )
        });
    if let Err(e) = encoded {
        // Only an over-long secret can get here.
        let message = format!("the relay cannot present itself to the server: {e}");
        let unavailable = RejectReason::Unavailable;
        return refused(shared, &mut client_read, &mut w, unavailable, message).await;
    }
    opening.extend_from_slice(&leftover);
    let leftover_len = leftover.len() as u64;
    shared
        .stats
        .bytes_up
        .fetch_add(leftover_len, Ordering::Relaxed);
    let (server_read, mut server_write) = upstream.into_split();
    if let Err(e) = server_write.write_all(&opening).await {
        let message = format!("the connection to the chat server failed: {e}");
        let unavailable = RejectReason::Unavailable;
        return refused(shared, &mut client_read, &mut w, unavailable, message).await;
    }

    // 5. Both directions at once, bytes unchanged. Going down, the server's first frame
    //    (Welcome or Rejected) is read whole first, noted for the log, and forwarded as is.
    // Buffers that grow under load, so that one read and one write carry many frames, and
    // stay small for a quiet guest.
    let mut from_client = GrowingBufReader::new(
        Metered::new(client_read, shared.stats.clone(), metered::Direction::Up),
        COPY_BUFFER_MIN,
        COPY_BUFFER,
    );
    let mut from_server = GrowingBufReader::new(
        Metered::new(server_read, shared.stats.clone(), metered::Direction::Down),
        COPY_BUFFER_MIN,
        COPY_BUFFER,
    );
    // A guest that stops reading cannot hold its session forever.
    let mut w = metered::StallGuard::new(w, config.stall_timeout);
    let (up_done, down_done, cancelled) = {
        let up = async {
            let res = tokio::io::copy_buf(&mut from_client, &mut server_write).await;
            // The guest is done sending (or gone): the server sees the end of its input.
            let _ = server_write.shutdown().await;
            res.map(drop)
        };
        let handshake_timeout = config.handshake_timeout;
        let down = async {
            let first =
                tokio::time::timeout(handshake_timeout, read_raw_frame(&mut from_server)).await;
            let (bytes, frame) = match first {
                Ok(Ok(Some(answer))) => answer,
                failed => {
                    let message = match failed {
                        Err(_) => format!(
                            "the chat server did not answer within {} s",
                            handshake_timeout.as_secs()
                        ),
                        Ok(Err(e)) if e.kind() != std::io::ErrorKind::ConnectionReset => {
                            format!("the chat server's answer could not be read: {e}")
                        }
                        _ => "the chat server closed the connection".to_owned(),
                    };
                    return Down::Unavailable(message);
                }
            };
            let refused_by_server = match frame {
                Some(ServerFrame::Welcome(welcome)) => {
                    record.server_nick = Some(welcome.nick);
                    None
                }
                Some(ServerFrame::Rejected(r)) => Some(r.message),
                _ => None,
            };
            let res = async {
                w.write_all(&bytes).await?;
                tokio::io::copy_buf(&mut from_server, &mut w).await?;
                // The server is done: so is the guest's input.
                w.shutdown().await
            }
            .await;
            Down::Done(refused_by_server, res)
        };
        tokio::pin!(up, down);
        let mut up_done: Option<std::io::Result<()>> = None;
        let mut down_done: Option<Down> = None;
        let cancelled = loop {
            tokio::select! {
                res = &mut up, if up_done.is_none() => up_done = Some(res),
                res = &mut down, if down_done.is_none() => {
                    // Unanswered handshake: the guest is told at once. A failed write to the
                    // guest (gone, or not reading): nothing more can reach it.
                    let unanswered = matches!(res, Down::Unavailable(_) | Down::Done(_, Err(_)));
                    down_done = Some(res);
                    if unanswered {
                        break false;
                    }
                    if up_done.is_none() {
                        // The server has closed; a guest that does not close in turn is let go
                        // after a grace period, so that no connection is left behind.
                        break tokio::select! {
                            res = &mut up => { up_done = Some(res); false }
                            () = tokio::time::sleep(CLOSE_GRACE) => false,
                            () = token.cancelled() => true,
                        };
                    }
                }
                () = token.cancelled() => break true,
            }
            if up_done.is_some() && down_done.is_some() {
                break false;
            }
        };
        (up_done, down_done, cancelled)
    };
    record.bytes_from_client = leftover_len + from_client.get_ref().bytes();
    record.bytes_to_client = from_server.get_ref().bytes();
    match down_done {
        // Nothing reached the guest yet: it is told in a refusal of our own.
        Some(Down::Unavailable(message)) => {
            let unavailable = RejectReason::Unavailable;
            refused(shared, &mut from_client, &mut w, unavailable, message).await
        }
        Some(Down::Done(Some(message), _)) => format!("refused by the server: {message}"),
        _ if cancelled => "relay shutting down".to_owned(),
        Some(Down::Done(None, Err(e))) => format!("connection error: {e}"),
        _ => match up_done {
            Some(Err(e)) => format!("connection error: {e}"),
            _ => "closed".to_owned(),
        },
    }
}

/// How the server-to-guest direction ended.
enum Down {
    /// The server never answered the handshake properly.
    Unavailable(String),
    /// Forwarding ended; with the server's refusal, if it refused.
    Done(Option<String>, std::io::Result<()>),
}

/// Reads one whole frame as raw bytes (length prefix included) and decodes a copy of it.
/// `Ok(None)` when the server closed the connection before sending anything.
async fn read_raw_frame<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
) -> std::io::Result<Option<(Vec<u8>, Option<ServerFrame>)>> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_SERVER_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes announced, over the limit of {MAX_SERVER_FRAME}"),
        ));
    }
    // Grown as the bytes arrive, not allocated at the size the peer announces.
    let mut bytes = header.to_vec();
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() < 4 + len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let frame = decode_payload::<ServerFrame>(&bytes[4..]).ok();
    Ok(Some((bytes, frame)))
}

/// Sends the guest a `Rejected` frame and closes; returns the log's ending.
async fn refused<R, W>(
    shared: &Shared,
    r: &mut R,
    w: &mut W,
    reason: RejectReason,
    message: String,
) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
    refuse(r, w, reason, &message).await;
    format!("refused: {message}")
}

/// Writes the refusal, closes the write side, and lets the guest read it before the socket
/// goes (closing with unread input would reset the connection and lose the refusal).
async fn refuse<R, W>(r: &mut R, w: &mut W, reason: RejectReason, message: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let frame = ServerFrame::Rejected(Rejected {
        reason,
        message: message.to_owned(),
    });
    let linger = async {
        if let Ok(bytes) = encode_frame(&frame, MAX_SERVER_FRAME) {
            w.write_all(&bytes).await?;
        }
        w.shutdown().await?;
        let mut sink = [0u8; 1024];
        while r.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        _ => e.to_string(),
    }
}
