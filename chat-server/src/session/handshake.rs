//! The handshake: the optional relay frame and the `Hello`, checked within the Hello timeout;
//! and every refusal, told to the client with a `Rejected` frame and a polite close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_core::connection::FrameReader;
use chat_core::frame::{FrameError, encode_frame};
use chat_core::names;
use chat_core::protocol::{
    ClientFrame, HANDSHAKE_MAX_FRAME, Hello, MAX_SERVER_FRAME, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION, RejectReason, Rejected, ServerFrame,
};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{Counting, Reader, Shared};
use crate::config::Secret;
use crate::event::EventKind;
use crate::hub::Cmd;
use crate::limits::{Presence, Refused};
use crate::outbox::CLOSE_GRACE;
use crate::wire::WireRead;

/// After the server closes a connection it keeps reading (and discarding) for this long, so
/// that unread input does not turn the close into a reset that would destroy the final frame
/// before the client reads it.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// A refused handshake.
pub(super) struct Refusal {
    /// What to tell the client; `None` when it is gone already.
    pub(super) reason: Option<RejectReason>,
    pub(super) message: String,
    pub(super) nick: Option<String>,
    pub(super) addr: SocketAddr,
    /// Recorded in the log and on the monitor (repeated refusals of one kind from one
    /// address are summed up instead).
    pub(super) logged: bool,
}

impl Refusal {
    /// A refusal recorded in the log but not told to the client (it is gone, or its
    /// connection cannot carry one).
    pub(super) fn silent(message: impl Into<String>, addr: SocketAddr) -> Self {
        Refusal {
            reason: None,
            message: message.into(),
            nick: None,
            addr,
            logged: true,
        }
    }

    pub(super) fn new(reason: RejectReason, message: impl Into<String>, addr: SocketAddr) -> Self {
        Refusal {
            reason: Some(reason),
            message: message.into(),
            nick: None,
            addr,
            logged: true,
        }
    }
}

/// A completed handshake.
pub(super) struct Accepted {
    pub(super) hello: Hello,
    pub(super) version: u16,
    pub(super) addr: SocketAddr,
    pub(super) relayed: bool,
    /// The relay's own address, for a relayed guest.
    pub(super) via: Option<SocketAddr>,
}

/// The handshake, within the Hello timeout and unless the server shuts down.
pub(super) async fn greet(
    reader: &mut Reader,
    shared: &Shared,
    peer: SocketAddr,
    presence: &mut Presence,
) -> Result<Box<Accepted>, Box<Refusal>> {
    let timeout = shared.config.hello_timeout;
    tokio::select! {
        res = tokio::time::timeout(timeout, handshake(reader, shared, peer, presence)) => match res {
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
pub(super) async fn handshake(
    reader: &mut Reader,
    shared: &Shared,
    peer: SocketAddr,
    presence: &mut Presence,
) -> Result<Accepted, Refusal> {
    let mut addr = peer;
    let mut relayed = false;
    let mut frame = next_handshake_frame(reader, peer).await?;
    // Unencrypted from where only TLS is served: refused before anything it says is used (a
    // relay's secret, a password), in the client's version.
    let plain = matches!(reader.get_ref().inner, WireRead::Tcp(_));
    if plain && !shared.plain_allowed(peer) {
        let version = match &frame {
            ClientFrame::Hello(hello) => hello.version,
            _ => PROTOCOL_VERSION,
        };
        return Err(super::transport::tls_required(version, peer));
    }
    if let ClientFrame::RelayHello(relay) = frame {
        let Some(secret) = shared.config.relay_secret.as_ref() else {
            return Err(Refusal::new(
                RejectReason::RelayRefused,
                "this server does not accept relayed connections",
                peer,
            ));
        };
        check_relay_secret(&relay.secret, secret, peer, shared)?;
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
        // From now on the guest's own address is what is counted and limited.
        if let Err(Refused(message)) = presence.rekey(addr.ip(), Instant::now()) {
            return Err(Refusal::new(RejectReason::ServerFull, message, addr));
        }
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
            RejectReason::InvalidNick(rule.clone()).for_version(hello.version),
            format!("invalid nickname {:?}: {rule}", hello.nick),
            addr,
        )));
    }
    // Banned: refused before a password is hashed or a place taken.
    let account = hello
        .password
        .is_some()
        .then(|| names::nick_keys(&hello.nick).folded);
    let now = chrono::Utc::now();
    if let Some(ban) = shared.bans.check(addr.ip(), account.as_deref(), now) {
        return Err(with_nick(Refusal::new(
            RejectReason::Banned { until: ban.until }.for_version(hello.version),
            ban.refusal(now),
            addr,
        )));
    }
    Ok(Accepted {
        version: hello.version.min(PROTOCOL_VERSION),
        hello,
        addr,
        relayed,
        via: relayed.then_some(peer),
    })
}

/// Checks a relay's secret, throttled like a password: one check at a time per address, none
/// within the delay after a wrong one (doubling with each, up to 16 s), and the refusals
/// summed up in the log (the 1st, 2nd, 4th, 8th... of a run).
fn check_relay_secret(
    given: &str,
    secret: &Secret,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<(), Refusal> {
    let ip = peer.ip();
    let key = format!("relay secret from {}", ip.to_canonical());
    if let Err(wait) = shared.failures.begin(ip, &key) {
        let mut refusal = Refusal::new(
            RejectReason::RelayRefused,
            format!(
                "too many wrong relay secrets from this address: try again in {} s",
                wait.as_secs().max(1)
            ),
            peer,
        );
        refusal.logged = false;
        return Err(refusal);
    }
    if bool::from(given.as_bytes().ct_eq(secret.expose().as_bytes())) {
        shared.failures.succeeded(ip, &key);
        return Ok(());
    }
    let (_, failures) = shared.failures.failed_run(ip, &key);
    let mut refusal = Refusal::new(
        RejectReason::RelayRefused,
        format!("the relay's secret does not match the server's (wrong {failures} times in a row)"),
        peer,
    );
    refusal.logged = failures.is_power_of_two();
    Err(refusal)
}

pub(super) async fn next_handshake_frame(
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
            logged: true,
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
            logged: true,
        }),
        Err(e) => Err(Refusal::new(RejectReason::Malformed, e.to_string(), addr)),
    }
}

/// Tells the client why it was refused, records it, and closes.
pub(super) async fn refuse<W: AsyncWrite + Unpin>(
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
        logged,
    } = refusal;
    if logged {
        let _ = shared
            .hub
            .send(Cmd::Record(EventKind::Rejected {
                addr: addr.to_string(),
                nick,
                reason: message.clone(),
            }))
            .await;
    }
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
pub(super) async fn linger(reader: Box<Reader>) {
    let mut rest = reader.into_inner();
    let _ = tokio::time::timeout(LINGER, async {
        let mut limited = tokio::io::AsyncReadExt::take(&mut rest, 1 << 20);
        tokio::io::copy(&mut limited, &mut tokio::io::sink()).await
    })
    .await;
}

/// Refuses a connection at once (over `--max-clients`, or over its address's limits) with a
/// clear frame and the same polite close as any refusal.
pub(crate) async fn refuse_full(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    message: String,
) {
    let (r, w) = stream.into_split();
    let (r, w) = (WireRead::Tcp(r), crate::wire::WireWrite::Tcp(w));
    let reader = Box::new(FrameReader::new(
        Counting {
            inner: r,
            stats: shared.stats.clone(),
        },
        HANDSHAKE_MAX_FRAME,
    ));
    let refusal = Refusal::new(RejectReason::ServerFull, message, peer);
    refuse(reader, w, refusal, &shared).await;
}
