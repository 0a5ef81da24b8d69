//! The chat suite's relay. Guests connect to the relay instead of the server; for each one the
//! relay opens its own connection to the server, presents the relay secret and the guest's
//! real address (`RelayHello`), forwards the guest's `Hello` with the nickname rewritten to
//! `*nick`, and from then on copies bytes both ways unchanged. Nothing after the `Hello` is
//! decoded, except the server's first answer (`Welcome` or `Rejected`), which is read whole,
//! noted for the log, and forwarded byte for byte.

pub mod cli;
mod growbuf;
mod guest;
mod log;
mod metered;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_core::protocol::RejectReason;
use chat_service::Secret;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use log::LogRecord;

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
    /// TLS towards guests; `None` serves plain TCP only (the library's default; the binary
    /// serves TLS).
    pub tls: Option<RelayTls>,
    /// TLS towards the server: `None` uses it unless the server is on this machine.
    pub server_tls: Option<bool>,
    /// The server's certificate fingerprint to trust (a self-signed server elsewhere); a
    /// certificate that chains to the web's roots is trusted anyway.
    pub server_fingerprint: Option<String>,
    /// Treats guests from loopback as if they came from elsewhere, for tests. Not a flag.
    #[doc(hidden)]
    pub loopback_is_remote: bool,
}

/// TLS towards guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTls {
    /// The relay's certificate: files, or one made at first start.
    pub source: chat_service::tls::CertSource,
    /// Where unencrypted guests are still served from.
    pub plaintext_from: chat_service::tls::PlaintextFrom,
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
            tls: None,
            server_tls: None,
            server_fingerprint: None,
            loopback_is_remote: false,
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
    /// The TLS certificate cannot be used.
    #[error("TLS certificate: {0}")]
    Tls(#[from] chat_service::tls::TlsError),
    /// The configuration cannot be served (a secret too short, ...).
    #[error("{0}")]
    Config(String),
}

struct Shared {
    config: Config,
    stats: Arc<Stats>,
    log: Option<log::LogSender>,
    permits: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    /// The certificate TLS guests get.
    tls: Option<Arc<chat_service::tls::Reloadable>>,
}

/// A relay whose listeners are bound, ready to [`Relay::run`].
#[derive(Debug)]
pub struct Relay {
    config: Config,
    tls: Option<Arc<chat_service::tls::Reloadable>>,
    listeners: chat_service::Listeners,
    log: Option<std::fs::File>,
    log_reopen: chat_service::jsonl::Reopen,
    stats: Arc<Stats>,
}

impl Relay {
    /// Binds every listen address and opens the log file.
    pub async fn bind(config: Config) -> Result<Relay, RelayError> {
        config
            .secret
            .check_relay_secret()
            .map_err(RelayError::Config)?;
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(chat_service::tls::Reloadable::load(
                tls.source.clone(),
            )?)),
            None => None,
        };
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
            tls,
            listeners,
            log,
            log_reopen: chat_service::jsonl::Reopen::default(),
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

    /// Asks the connection log's writer to open its file again before the next record (after
    /// logrotate renamed it; the binary does it at SIGHUP).
    pub fn log_reopen(&self) -> chat_service::jsonl::Reopen {
        self.log_reopen.clone()
    }

    /// The certificate TLS guests get (to reload it, or show its fingerprint); `None`
    /// without TLS.
    pub fn tls(&self) -> Option<Arc<chat_service::tls::Reloadable>> {
        self.tls.clone()
    }

    /// Relays until `shutdown` resolves; then closes every connection, writes their log
    /// lines and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Relay {
            config,
            tls,
            listeners,
            log,
            log_reopen,
            stats,
        } = self;
        let (log_tx, log_task) = match (log, &config.log_file) {
            (Some(file), Some(path)) => {
                let (tx, task) = log::spawn(file, path, log_reopen);
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(config.max_clients.max(1))),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            tls,
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
                    guest::refuse(&mut r, &mut w, RejectReason::ServerFull, message).await;
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
    record.end = guest::relay(stream, peer, &shared, &token, &mut record).await;
    record.duration_ms = started.elapsed().as_millis() as u64;
    shared.stats.connections_now.fetch_sub(1, Ordering::Relaxed);
    shared.log(record);
}
