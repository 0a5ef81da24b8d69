//! Binding, the accept loops, periodic statistics and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, DbLocation};
use crate::event::EventKind;
use crate::eventlog;
use crate::hub::{Cmd, Hub};
use crate::limits::{AddressBook, Refused};
use crate::monitor::http::{self, MonitorState};
use crate::monitor::{Monitor, random_token};
use crate::session::{self, Shared};
use crate::stats::Stats;
use crate::store::{Snapshot, SqliteStore, Store, StoreError, StoreHandle};
use chat_service::tls::Reloadable;
use chat_service::{ListenError, Listeners, Secret, accept};

/// Commands that may wait for the hub before sessions stop reading their sockets.
const HUB_QUEUE: usize = 4096;
/// Connections over `--max-clients` being told so at the same time; beyond, they are dropped.
const MAX_REFUSALS: usize = 64;
/// How long shutdown waits for connections to deliver their final `Bye`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A chat or monitor address could not be bound, or none was given.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The message log could not be opened.
    #[error("cannot open the message log {path}: {source}")]
    Log {
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The database could not be opened, migrated or read.
    #[error("cannot open the database {location}: {source}")]
    Store {
        /// Where it is.
        location: String,
        /// What went wrong.
        source: StoreError,
    },
    /// The TLS certificate cannot be used.
    #[error("TLS certificate: {0}")]
    Tls(#[from] chat_service::tls::TlsError),
    /// The configuration cannot be served (a relay secret too short, ...).
    #[error("{0}")]
    Config(String),
    /// The store thread could not be started.
    #[error("cannot start the store thread: {0}")]
    StoreThread(std::io::Error),
}

/// A bound server, ready to run. Binding first lets callers learn the actual ports (tests bind
/// port 0) before serving.
#[derive(Debug)]
pub struct Server {
    config: Arc<Config>,
    listeners: Listeners,
    log: Option<std::fs::File>,
    log_reopen: eventlog::Reopen,
    stats: Arc<Stats>,
    monitor: Option<BoundMonitor>,
    store: Box<dyn Store>,
    snapshot: Snapshot,
    tls: Option<Arc<Reloadable>>,
}

/// The monitor's listeners and token, bound with the server.
#[derive(Debug)]
struct BoundMonitor {
    http: TcpListener,
    ws: Option<TcpListener>,
    token: Secret,
    metrics_token: Option<Secret>,
    monitor: Arc<Monitor>,
    max_viewers: usize,
    /// The certificate the page and its feeds are served with (HTTPS, WSS): the chat port's,
    /// when the monitor listens on an address other than loopback.
    tls: Option<Arc<Reloadable>>,
}

/// Where the monitor can be reached.
#[derive(Debug, Clone)]
pub struct MonitorInfo {
    /// The HTTP listener (page, `/stats`, `/metrics`, `/ws`).
    pub http: SocketAddr,
    /// The WebSocket-only listener, if any.
    pub ws: Option<SocketAddr>,
    /// The access token.
    pub token: Secret,
    /// Served over HTTPS and WSS (the monitor listens on an address other than loopback).
    pub secure: bool,
}

impl MonitorInfo {
    /// The page's address with the token, ready to open.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!(
            "{scheme}://{}/?token={}",
            reachable(self.http, chat_service::tls::host_name()),
            self.token.expose()
        )
    }

    /// The WebSocket-only feed's address (without the token), if there is one.
    pub fn feed_url(&self) -> Option<String> {
        let scheme = if self.secure { "wss" } else { "ws" };
        let host = chat_service::tls::host_name();
        self.ws
            .map(|ws| format!("{scheme}://{}/", reachable(ws, host)))
    }
}

/// Where a browser reaches a listener bound to `addr`: a listener on every address
/// (`0.0.0.0`, `::`) by this machine's name, when it has one (the self-signed certificate is
/// made for it too), else by its address.
fn reachable(addr: SocketAddr, host: Option<String>) -> String {
    match host {
        Some(host) if addr.ip().is_unspecified() => format!("{host}:{}", addr.port()),
        _ => addr.to_string(),
    }
}

impl Server {
    /// Binds every listening address, opens the message log and the database (applying its
    /// migrations) and loads what the server keeps in memory.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        if let Some(secret) = &config.relay_secret {
            secret.check_relay_secret().map_err(ServerError::Config)?;
        }
        // The certificate first: a bad one is an error at start, naming its file.
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(Reloadable::load(tls.source.clone())?)),
            None => None,
        };
        let listeners = Listeners::bind(&config.listen).await?;
        let (store, snapshot) = open_store(&config.db, config.history_replay)?;
        let log = match &config.log_file {
            Some(path) => Some(eventlog::open(path).map_err(|source| ServerError::Log {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let monitor = match &config.monitor {
            Some(m) => {
                let http = SocketAddr::new(m.listen, m.http_port);
                let http = chat_service::bind_one(http, Some("--http-port")).await?;
                let ws = match m.ws_port {
                    Some(port) => {
                        let ws = SocketAddr::new(m.listen, port);
                        Some(chat_service::bind_one(ws, Some("--ws-port")).await?)
                    }
                    None => None,
                };
                // It shows private messages: off loopback, never in clear.
                let remote = !m.listen.is_loopback() || config.loopback_is_remote;
                let tls = if remote { tls.clone() } else { None };
                if remote && tls.is_none() {
                    tracing::warn!(
                        "the monitor listens on {} without TLS (no certificate configured)",
                        m.listen
                    );
                }
                let token = match m.token.clone() {
                    Some(token) => token,
                    None => random_token()
                        .map_err(|e| ServerError::Config(format!("monitor token: {e}")))?,
                };
                // The metrics token must not open the page of private messages.
                if m.metrics_token.as_ref() == Some(&token) {
                    return Err(ServerError::Config(
                        "--metrics-token must differ from the monitor's token (--monitor-token, \
                         or the one kept in the data folder as monitor-token)"
                            .to_owned(),
                    ));
                }
                Some(BoundMonitor {
                    http,
                    ws,
                    token,
                    metrics_token: m.metrics_token.clone(),
                    monitor: Arc::new(Monitor::new(m.backlog, m.viewer_queue)),
                    max_viewers: m.max_viewers.max(1),
                    tls,
                })
            }
            None => None,
        };
        Ok(Server {
            config: Arc::new(config),
            listeners,
            log,
            log_reopen: eventlog::Reopen::default(),
            stats: Arc::new(Stats::default()),
            monitor,
            store,
            snapshot,
            tls,
        })
    }

    /// The TLS certificate the chat port serves, to reload it (SIGHUP) or show its
    /// fingerprint; `None` without TLS.
    pub fn tls(&self) -> Option<Arc<Reloadable>> {
        self.tls.clone()
    }

    /// Asks the message log's writer to open its file again before the next record (after
    /// logrotate renamed it; the binary does it at SIGHUP).
    pub fn log_reopen(&self) -> eventlog::Reopen {
        self.log_reopen.clone()
    }

    /// The addresses actually bound (with real port numbers).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.local_addrs()
    }

    /// The server's live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Where the monitor listens, and its token; `None` without a monitor.
    pub fn monitor(&self) -> Option<MonitorInfo> {
        let m = self.monitor.as_ref()?;
        Some(MonitorInfo {
            http: m.http.local_addr().ok()?,
            ws: m.ws.as_ref().and_then(|l| l.local_addr().ok()),
            token: m.token.clone(),
            secure: m.tls.is_some(),
        })
    }

    /// Serves until `shutdown` resolves, then says `Bye` to every client, waits (briefly) for
    /// the goodbyes to be written, and flushes the message log before returning.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let info = self.monitor();
        let Server {
            config,
            listeners,
            log,
            log_reopen,
            stats,
            monitor,
            store,
            snapshot,
            tls,
        } = self;
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();

        let (log_tx, log_task) = match (log, &config.log_file) {
            (Some(file), Some(path)) => {
                let (tx, task) = eventlog::spawn(file, path.clone(), log_reopen);
                (Some(tx), Some(task))
            }
            _ => (None, None),
        };
        let (hub_tx, hub_rx) = mpsc::channel(HUB_QUEUE);
        let (store, store_thread) = match start_store(store, &hub_tx) {
            Ok(spawned) => spawned,
            Err(e) => {
                tracing::error!("{}", ServerError::StoreThread(e));
                return;
            }
        };
        let store_watch = store.watch();
        let hub = Hub::new(
            config.clone(),
            stats.clone(),
            log_tx,
            monitor.as_ref().map(|m| m.monitor.clone()),
        )
        .with_store(store.clone(), snapshot, hub_tx.downgrade());
        let bans = hub.bans();
        let hub_stop = CancellationToken::new();
        let hub_task = tokio::spawn(hub.run(hub_rx, token.clone(), hub_stop.clone()));

        let shared = Arc::new(Shared {
            config: config.clone(),
            stats: stats.clone(),
            hub: hub_tx,
            shutdown: token.clone(),
            tracker: tracker.clone(),
            next_conn: AtomicU64::new(1),
            store: Some(store),
            failures: Default::default(),
            addresses: Arc::new(AddressBook::new(config.limits.clone(), config.rate)),
            tls,
            bans,
        });
        let slots = Arc::new(Semaphore::new(config.max_clients));
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
        for listener in listeners.into_inner() {
            tracker.spawn(accept_loop(
                listener,
                shared.clone(),
                slots.clone(),
                refusals.clone(),
            ));
        }
        if let Some(every) = config.stats_interval {
            tracker.spawn(report_stats(shared.clone(), every));
        }
        let live_monitor = monitor.as_ref().map(|m| m.monitor.clone());
        if let (Some(m), Some(info)) = (monitor, info) {
            // Listening, and the store thread there to take writes.
            let ready = {
                let (token, store) = (token.clone(), store_watch);
                move || {
                    if token.is_cancelled() {
                        Err("shutting down")
                    } else if !store.is_running() {
                        Err("the database is closed")
                    } else {
                        Ok(())
                    }
                }
            };
            spawn_monitor(m, info, &stats, &token, &tracker, Arc::new(ready));
        }

        shutdown.await;
        tracing::info!("shutting down: saying goodbye to every client");
        token.cancel();
        if let Some(m) = &live_monitor {
            m.close();
        }
        drop(shared);
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "some connections did not close within {} s",
                SHUTDOWN_GRACE.as_secs()
            );
        }
        // Every session is done (or past its grace): the hub records what is left and ends,
        // dropping the log's sender; the log writer then drains, flushes and ends.
        hub_stop.cancel();
        let _ = hub_task.await;
        // With the hub and every session gone, the store thread commits what is queued and
        // ends.
        let joined = tokio::task::spawn_blocking(move || store_thread.join());
        if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
            tracing::warn!(
                "the store did not finish within {} s",
                SHUTDOWN_GRACE.as_secs()
            );
        }
        if let Some(task) = log_task {
            let _ = task.await;
        }
        tracing::info!("stopped: {}", stats.snapshot());
    }
}

/// Starts the store thread; it reports each committed batch to the hub, which acknowledges
/// it.
fn start_store(
    store: Box<dyn Store>,
    hub: &mpsc::Sender<Cmd>,
) -> std::io::Result<(StoreHandle<crate::hub::Ack>, std::thread::JoinHandle<()>)> {
    let to_hub = hub.downgrade();
    StoreHandle::spawn(
        store,
        Box::new(move |result: Result<(), StoreError>, acks| {
            if let Some(hub) = to_hub.upgrade() {
                let result = result.map_err(|e| e.to_string());
                let _ = hub.blocking_send(Cmd::Stored { result, acks });
            }
        }),
    )
}

/// Serves the monitor's page and feeds until `token` is cancelled.
fn spawn_monitor(
    m: BoundMonitor,
    info: MonitorInfo,
    stats: &Arc<Stats>,
    token: &CancellationToken,
    tracker: &TaskTracker,
    ready: Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>,
) {
    let mut state = MonitorState::new(
        m.monitor,
        stats.clone(),
        m.token,
        info.http.port(),
        m.max_viewers,
    );
    state.tls = m.tls;
    state.metrics_token = m.metrics_token;
    state.ready = ready;
    let state = Arc::new(state);
    tracker.spawn(http::serve_http(
        m.http,
        state.clone(),
        token.clone(),
        tracker.clone(),
    ));
    if let Some(ws) = m.ws {
        tracker.spawn(http::serve_ws(ws, state, token.clone(), tracker.clone()));
    }
}

/// Opens the database, brings its schema up to date and loads what the hub keeps in memory.
fn open_store(
    location: &DbLocation,
    recent: usize,
) -> Result<(Box<dyn Store>, Snapshot), ServerError> {
    let failed = |source| ServerError::Store {
        location: location.to_string(),
        source,
    };
    let mut store = match location {
        DbLocation::Memory => SqliteStore::in_memory(),
        DbLocation::File(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| failed(StoreError::Io(e)))?;
            }
            SqliteStore::open(path)
        }
    }
    .map_err(failed)?;
    let snapshot = store.load(recent).map_err(failed)?;
    Ok((Box::new(store), snapshot))
}

impl Server {
    /// Runs the server on a background task; the returned handle stops it. For tests, tools
    /// and programs that embed a server.
    pub fn spawn(self) -> RunningServer {
        let addrs = self.local_addrs();
        let stats = self.stats();
        let monitor = self.monitor();
        let tls = self.tls();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        RunningServer {
            addrs,
            stats,
            monitor,
            tls,
            stop: Some(stop),
            task,
        }
    }
}

/// A server running in the background, from [`Server::spawn`]. Dropping the handle stops the
/// server too, without waiting.
#[derive(Debug)]
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    stats: Arc<Stats>,
    monitor: Option<MonitorInfo>,
    tls: Option<Arc<Reloadable>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The TLS certificate the chat port serves (to reload it); `None` without TLS.
    pub fn tls(&self) -> Option<Arc<Reloadable>> {
        self.tls.clone()
    }

    /// The addresses the server listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first address the server listens on (there is always at least one).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The server's live counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Where the monitor listens, and its token; `None` without a monitor.
    pub fn monitor(&self) -> Option<&MonitorInfo> {
        self.monitor.as_ref()
    }

    /// Shuts the server down gracefully and waits until it has finished (log flushed).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Binds and runs a server until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await;
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
) {
    while let Some((stream, peer)) = accept(&listener, &shared.shutdown).await {
        Stats::add(&shared.stats.connections_total, 1);
        // The address's limits first: one address cannot take every place.
        let counted = shared
            .addresses
            .arrive(peer.ip(), tokio::time::Instant::now());
        let refusal = match counted {
            Ok(presence) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let session = session::serve(stream, peer, shared.clone(), permit, presence);
                    shared.tracker.spawn(session);
                    continue;
                }
                Err(_) => format!(
                    "the server is full ({} connections); try again later",
                    shared.config.max_clients
                ),
            },
            Err(Refused(message)) => {
                Stats::add(&shared.stats.address_refused, 1);
                message
            }
        };
        if let Ok(permit) = refusals.clone().try_acquire_owned() {
            let shared = shared.clone();
            shared.tracker.clone().spawn(async move {
                session::refuse_full(stream, peer, shared, refusal).await;
                drop(permit);
            });
        }
        // Beyond that, the connection is simply dropped: explaining costs more than opening a
        // socket costs an attacker.
    }
}

async fn report_stats(shared: Arc<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let snapshot = shared.stats.snapshot();
        tracing::info!("stats: {snapshot}");
        if shared
            .hub
            .send(Cmd::Record(EventKind::Stats(snapshot)))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reachable;

    #[test]
    fn a_listener_on_every_address_is_shown_by_the_machines_name() {
        let any = "0.0.0.0:8000".parse().expect("addr");
        let host = Some("chat.example.org".to_owned());
        assert_eq!(reachable(any, host.clone()), "chat.example.org:8000");
        let any6 = "[::]:8000".parse().expect("addr");
        assert_eq!(reachable(any6, host.clone()), "chat.example.org:8000");
        assert_eq!(reachable(any, None), "0.0.0.0:8000");
        let one = "192.0.2.7:8000".parse().expect("addr");
        assert_eq!(reachable(one, host), "192.0.2.7:8000");
    }
}
