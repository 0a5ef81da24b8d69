//! The monitor's HTTP server (hyper): the page and its assets (embedded from `web/`), `/stats`
//! (JSON), `/metrics` (Prometheus text), and the live feed at `/ws`; plus the WebSocket-only
//! listener (tokio-tungstenite) on the feed port. Everything needs the token; WebSocket
//! upgrades from another origin are refused.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chat_service::tls::Reloadable;
use chat_service::tls::tokio_rustls::TlsAcceptor;
use chat_service::{Secret, accept};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Monitor;
use super::metrics::{METRICS_TYPE, metrics, registry};
use super::slots::{HEADER_TIMEOUT, Slots};
use crate::stats::Stats;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// A viewer whose socket accepts nothing for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the monitor's handlers share.
pub struct MonitorState {
    /// The live feed.
    pub monitor: Arc<Monitor>,
    /// The server's counters.
    pub stats: Arc<Stats>,
    /// The access token.
    pub token: Secret,
    /// The HTTP port as bound (WebSocket origins must be the page's own).
    pub http_port: u16,
    /// When the server started.
    pub started: Instant,
    /// Who may hold the monitor's connections.
    pub slots: Arc<Slots>,
    /// The certificate for HTTPS and WSS; `None` serves plain HTTP (on loopback).
    pub tls: Option<Arc<Reloadable>>,
    /// A token that reads `/metrics` and nothing else.
    pub metrics_token: Option<Secret>,
    /// What `/metrics` shows.
    pub registry: Registry,
    /// Whether the server can serve (`/readyz`): why not, if not.
    pub ready: Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>,
}

impl std::fmt::Debug for MonitorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorState")
            .field("http_port", &self.http_port)
            .field("secure", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MonitorState {
    /// The state for a monitor with this feed, counters and token.
    pub fn new(
        monitor: Arc<Monitor>,
        stats: Arc<Stats>,
        token: Secret,
        http_port: u16,
        max_viewers: usize,
    ) -> Self {
        MonitorState {
            registry: registry(stats.clone(), monitor.clone()),
            monitor,
            stats,
            token,
            http_port,
            started: Instant::now(),
            slots: Arc::new(Slots::new(max_viewers)),
            tls: None,
            metrics_token: None,
            ready: Arc::new(|| Ok(())),
        }
    }

    /// The scheme of the page's own origin.
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// A monitor connection: TCP, or TLS over it.
trait MonitorStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> MonitorStream for T {}

/// `stream`, with TLS when the monitor serves it; `None` when the handshake failed or took
/// longer than a request's headers may.
async fn secured(stream: TcpStream, state: &MonitorState) -> Option<Box<dyn MonitorStream>> {
    let Some(tls) = &state.tls else {
        return Some(Box::new(stream));
    };
    let accept = TlsAcceptor::from(tls.config()).accept(stream);
    match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        _ => None,
    }
}

type Reply = Response<Full<Bytes>>;

/// The answer to a connection over the monitor's limits.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 48\r\nConnection: close\r\n\r\ntoo many monitor connections; try again shortly\n";

/// Serves HTTP on `listener` until `shutdown`.
pub async fn serve_http(
    listener: TcpListener,
    state: Arc<MonitorState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    while let Some((stream, peer)) = accept(&listener, &shutdown).await {
        let Some(slot) = state.slots.enter(peer.ip()) else {
            // Over the limit: told so in a few bytes, and closed at once.
            let _ = stream.try_write(BUSY);
            continue;
        };
        let state = state.clone();
        let stop = shutdown.clone();
        let shutdown = shutdown.clone();
        let tasks = tracker.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let Some(stream) = secured(stream, &state).await else {
                return;
            };
            let service = service_fn(move |req| {
                let reply = handle(req, &state, &shutdown, &tasks);
                async move { Ok::<_, Infallible>(reply) }
            });
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}

/// Serves the WebSocket-only feed port until `shutdown`.
pub async fn serve_ws(
    listener: TcpListener,
    state: Arc<MonitorState>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    while let Some((stream, peer)) = accept(&listener, &shutdown).await {
        let Some(slot) = state.slots.enter(peer.ip()) else {
            continue;
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let Some(stream) = secured(stream, &state).await else {
                return;
            };
            // The callback's type is tungstenite's; its error is the HTTP refusal itself.
            #[allow(clippy::result_large_err)]
            let check = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                match refusal(req.uri(), req.headers(), &state) {
                    None => Ok(resp),
                    Some((status, why)) => {
                        let mut r = Response::new(Some(why.to_owned()));
                        *r.status_mut() = status;
                        Err(r)
                    }
                }
            };
            let handshake = tokio_tungstenite::accept_hdr_async(stream, check);
            if let Ok(Ok(ws)) = tokio::time::timeout(HEADER_TIMEOUT, handshake).await {
                drop(_slot);
                let place = state.slots.viewer();
                viewer(ws, place, state, shutdown).await;
            }
        });
    }
}

fn handle(
    req: Request<Incoming>,
    state: &Arc<MonitorState>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Reply {
    let path = req.uri().path();
    let asset = match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/style.css" => Some(("text/css; charset=utf-8", STYLE_CSS)),
        _ => None,
    };
    let known =
        asset.is_some() || matches!(path, "/stats" | "/metrics" | "/ws" | "/healthz" | "/readyz");
    if !known {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n",
        );
    }
    if path == "/ws" {
        if let Some((status, why)) = refusal(req.uri(), req.headers(), state) {
            return reply(status, "text/plain; charset=utf-8", why);
        }
        return upgrade(req, state.clone(), shutdown.clone(), tracker);
    }
    // Health: the process answers; readiness: it can serve. Neither says anything private.
    match path {
        "/healthz" => return reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => {
            return match (state.ready)() {
                Ok(()) => reply(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
                Err(why) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("not ready: {why}\n"),
                ),
            };
        }
        _ => {}
    }
    // The metrics token reads the metrics and nothing else.
    if path == "/metrics"
        && let Some(metrics_token) = &state.metrics_token
        && authorized(req.uri(), req.headers(), metrics_token)
    {
        return reply(StatusCode::OK, METRICS_TYPE, metrics(&state.registry));
    }
    // The script and the style sheet hold nothing secret; the page and the data need the token.
    let public = matches!(path, "/app.js" | "/style.css");
    if !public && !authorized(req.uri(), req.headers(), &state.token) {
        return reply(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "a token is needed: open the monitor with the URL chat-server printed at start \
             (http://HOST:PORT/?token=...)\n",
        );
    }
    match (path, asset) {
        (_, Some((content_type, body))) => reply(StatusCode::OK, content_type, body),
        ("/stats", _) => reply(
            StatusCode::OK,
            "application/json",
            stats_json(state).to_string(),
        ),
        _ => reply(StatusCode::OK, METRICS_TYPE, metrics(&state.registry)),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // One request per connection (the feed's upgrade aside): an idle connection kept alive
    // would hold a place.
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Why a feed request must be refused, if it must.
fn refusal(
    uri: &Uri,
    headers: &HeaderMap,
    state: &MonitorState,
) -> Option<(StatusCode, &'static str)> {
    if !authorized(uri, headers, &state.token) {
        return Some((StatusCode::UNAUTHORIZED, "a token is needed\n"));
    }
    if !same_origin(headers, state.scheme(), state.http_port) {
        return Some((
            StatusCode::FORBIDDEN,
            "WebSocket connections are accepted only from the monitor's own page\n",
        ));
    }
    None
}

fn query_token(uri: &Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// The token, from `?token=` or `Authorization: Bearer`.
fn authorized(uri: &Uri, headers: &HeaderMap, token: &Secret) -> bool {
    let matches = |given: &str| {
        !given.is_empty() && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
    };
    if query_token(uri).is_some_and(matches) {
        return true;
    }
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if header_str(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(matches)
    {
        return true;
    }
    false
}

/// A browser's `Origin` must be the monitor page itself: its scheme, the same host as
/// requested, the HTTP port. Requests without `Origin` (not from a browser page) pass: the
/// token still applies.
fn same_origin(headers: &HeaderMap, scheme: &str, http_port: u16) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_only)
    else {
        return false;
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    origin == format!("{scheme}://{host}:{http_port}")
        || (http_port == default_port && origin == format!("{scheme}://{host}"))
}

/// `example.org:8765` → `example.org`; `[::1]:8765` → `[::1]`.
fn host_only(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

fn upgrade(
    mut req: Request<Incoming>,
    state: Arc<MonitorState>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Reply {
    let header_has = |name, value: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let ok = header_has(header::UPGRADE, "websocket") && header_has(header::CONNECTION, "upgrade");
    let Some(key) = key.filter(|_| ok) else {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "this address is the monitor's WebSocket feed\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgraded = hyper::upgrade::on(&mut req);
    tracker.spawn(async move {
        if let Ok(io) = upgraded.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
            let place = state.slots.viewer();
            viewer(ws, place, state, shutdown).await;
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// One viewer: the backlog, then the live records, as JSON text messages (the log's format);
/// or, without a `place`, a close frame saying why not.
async fn viewer<S>(
    mut ws: WebSocketStream<S>,
    place: Result<OwnedSemaphorePermit, String>,
    state: Arc<MonitorState>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _place = match place {
        Ok(place) => place,
        Err(why) => {
            let frame = CloseFrame {
                code: CloseCode::Again,
                reason: why.into(),
            };
            let _ = tokio::time::timeout(SEND_TIMEOUT, ws.close(Some(frame))).await;
            return;
        }
    };
    let monitor = &state.monitor;
    monitor.viewers.fetch_add(1, Ordering::Relaxed);
    let mut sub = monitor.subscribe();
    let text = |ev: &crate::event::SharedEvent| {
        Message::text(serde_json::to_string(&**ev).unwrap_or_default())
    };
    let backlog = async {
        for ev in &sub.backlog {
            ws.feed(text(ev)).await?;
        }
        ws.flush().await
    };
    let mut ok = matches!(
        tokio::time::timeout(SEND_TIMEOUT, backlog).await,
        Ok(Ok(()))
    );
    let mut close: Option<(CloseCode, &str)> = None;
    while ok {
        tokio::select! {
            ev = sub.live.recv() => match ev {
                // Dropped for falling behind: what is still queued would only delay the news.
                Some(_) if sub.too_slow.load(Ordering::Relaxed) => {
                    close = Some((
                        CloseCode::Policy,
                        "too slow: the viewer could not keep up with the feed",
                    ));
                    break;
                }
                Some(ev) => {
                    ok = matches!(
                        tokio::time::timeout(SEND_TIMEOUT, ws.send(text(&ev))).await,
                        Ok(Ok(()))
                    );
                }
                None => {
                    close = Some(if sub.too_slow.load(Ordering::Relaxed) {
                        (CloseCode::Policy, "too slow: the viewer could not keep up with the feed")
                    } else {
                        (CloseCode::Away, "the server is shutting down")
                    });
                    break;
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => {
                close = Some((CloseCode::Away, "the server is shutting down"));
                break;
            }
        }
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, ws.close(Some(frame))).await;
    }
    monitor.viewers.fetch_sub(1, Ordering::Relaxed);
}

fn stats_json(state: &MonitorState) -> serde_json::Value {
    let mut v = serde_json::to_value(state.stats.snapshot()).unwrap_or_default();
    v["uptime_s"] = state.started.elapsed().as_secs().into();
    v["monitor_viewers"] = state.monitor.viewers.load(Ordering::Relaxed).into();
    v["monitor_viewers_dropped"] = state.monitor.viewers_dropped.load(Ordering::Relaxed).into();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(
            same_origin(&h, "http", 8000),
            "no Origin: not a browser page"
        );
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8765"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8000"),
        );
        assert!(same_origin(&h, "http", 8000));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h, "http", 8000));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9999"),
        );
        assert!(!same_origin(&h, "http", 8000));
        // Served over HTTPS, the page's origin is https: an http page is another origin.
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8000"),
        );
        assert!(same_origin(&h, "https", 8000));
        assert!(!same_origin(&h, "http", 8000));
        assert_eq!(host_only("[::1]:8000"), "[::1]");
        assert_eq!(host_only("[::1]"), "[::1]");
        assert_eq!(host_only("example.org"), "example.org");
    }

    #[test]
    fn tokens_from_query_or_header() {
        let token = Secret::from("abc123");
        let none = HeaderMap::new();
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        assert!(authorized(&uri("/?token=abc123"), &none, &token));
        assert!(authorized(&uri("/?x=1&token=abc123"), &none, &token));
        assert!(!authorized(&uri("/?token=abc12"), &none, &token));
        assert!(!authorized(&uri("/"), &none, &token));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc123"),
        );
        assert!(authorized(&uri("/metrics"), &h, &token));
        let empty = Secret::from("");
        assert!(
            !authorized(&uri("/?token="), &none, &empty),
            "an empty token opens nothing"
        );
    }
}
