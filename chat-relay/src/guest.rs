//! One guest's connection: its `Hello` checked and rewritten, the relay's own connection to the
//! server opened with the relay's secret and the guest's address, then both directions copied
//! unchanged until either side ends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use chat_core::FrameReader;
use chat_core::client::NetStream;
use chat_core::frame::{FrameError, decode_payload, encode_frame, encode_frame_into};
use chat_core::names::relayed_nick;
use chat_core::protocol::{
    ClientFrame, HANDSHAKE_MAX_FRAME, Hello, MAX_SERVER_FRAME, RejectReason, Rejected, RelayHello,
    ServerFrame,
};
use chat_service::tls::TLS_HANDSHAKE_BYTE;
use chat_service::tls::tokio_rustls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// A guest's or the server's connection, plain or TLS.
type Stream = Box<dyn NetStream>;
/// What is read from a [`Stream`].
type Reading = ReadHalf<Stream>;
/// What is written to a [`Stream`].
type Writing = WriteHalf<Stream>;
use tokio_util::sync::CancellationToken;

use crate::growbuf::GrowingBufReader;
use crate::log::LogRecord;
use crate::metered::{self, Metered};
use crate::{CLOSE_GRACE, COPY_BUFFER, COPY_BUFFER_MIN, Config, REFUSAL_LINGER, Shared};

/// Why a guest's connection ended before forwarding began.
enum Early {
    /// Nothing to tell the guest (gone, or the relay stopping): the log's ending.
    End(String),
    /// The guest is refused with this reason and message.
    Refuse(RejectReason, String),
}

/// Handshake, then forwarding. Returns how the connection ended, for the log.
pub(crate) async fn relay(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    token: &CancellationToken,
    record: &mut LogRecord,
) -> String {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let (stream, encrypted) = match open_guest(stream, shared).await {
        Ok(opened) => opened,
        Err(end) => return end,
    };
    let (r, mut w) = tokio::io::split(stream);
    let mut reader: FrameReader<Reading, ClientFrame> = FrameReader::new(r, HANDSHAKE_MAX_FRAME);
    let opened = async {
        // 1. The guest's Hello, and the nickname as the server will see it.
        let mut hello = guest_hello(&mut reader, config, token).await?;
        let plain_allowed = config.tls.as_ref().is_none_or(|tls| {
            tls.plaintext_from
                .allows(peer.ip(), config.loopback_is_remote)
        });
        if !encrypted && !plain_allowed {
            let reason = RejectReason::TlsRequired.for_version(hello.version);
            let message = "this relay accepts unencrypted connections only from its own \
                           machine: connect with TLS (chat-tui does so unless --plaintext is \
                           given)";
            return Err(Early::Refuse(reason, message.to_owned()));
        }
        record.requested = Some(hello.nick.clone());
        hello.nick = relayed_nick(&hello.nick).map_err(|rule| {
            let message = format!("invalid nickname {:?}: {rule}", hello.nick);
            Early::Refuse(RejectReason::InvalidNick(rule), message)
        })?;
        record.nick = Some(hello.nick.clone());
        // 2. Our own connection to the server.
        let upstream = connect(config, token).await?;
        Ok((hello, upstream))
    };
    let (hello, upstream) = match opened.await {
        Ok(opened) => opened,
        Err(Early::End(end)) => return end,
        Err(Early::Refuse(reason, message)) => {
            let mut r = reader.into_parts().0;
            return refused(shared, &mut r, &mut w, reason, message).await;
        }
    };
    // 3. RelayHello and the rewritten Hello, then whatever the guest sent after its Hello.
    let (mut client_read, leftover) = reader.into_parts();
    let leftover_len = leftover.len() as u64;
    shared
        .stats
        .bytes_up
        .fetch_add(leftover_len, Ordering::Relaxed);
    let server = match present(upstream, peer, hello, &leftover, config).await {
        Ok(server) => server,
        Err(message) => {
            let unavailable = RejectReason::Unavailable;
            return refused(shared, &mut client_read, &mut w, unavailable, message).await;
        }
    };
    // 4. Both directions at once, bytes unchanged.
    forward(client_read, w, server, leftover_len, shared, token, record).await
}

/// The guest's connection: TLS when its first byte starts a TLS handshake, plain otherwise
/// (whether plain is allowed from there is checked on its `Hello`); the log's ending when
/// there is none.
async fn open_guest(stream: TcpStream, shared: &Shared) -> Result<(Stream, bool), String> {
    let Some(tls) = &shared.tls else {
        return Ok((Box::new(stream), false));
    };
    let timeout = shared.config.handshake_timeout;
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_BYTE => {}
        // Plain, silent or gone: the plain path says so as it would.
        _ => return Ok((Box::new(stream), false)),
    }
    let accept = TlsAcceptor::from(tls.config()).accept(stream);
    match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(stream)) => Ok((Box::new(stream), true)),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err(format!("no TLS handshake within {} s", timeout.as_secs())),
    }
}

/// Reads the guest's first frame, which must be a `Hello`, within the handshake timeout.
async fn guest_hello(
    reader: &mut FrameReader<Reading, ClientFrame>,
    config: &Config,
    token: &CancellationToken,
) -> Result<Hello, Early> {
    let first = tokio::select! {
        res = tokio::time::timeout(config.handshake_timeout, reader.recv()) => res,
        () = token.cancelled() => return Err(Early::End("relay shutting down".to_owned())),
    };
    let refuse = |reason, message: String| Err(Early::Refuse(reason, message));
    match first {
        Ok(Ok(Some(ClientFrame::Hello(hello)))) => Ok(hello),
        Err(_) => refuse(
            RejectReason::HelloTimeout,
            format!(
                "no Hello received within {} s",
                config.handshake_timeout.as_secs()
            ),
        ),
        Ok(Ok(Some(_))) => refuse(
            RejectReason::ExpectedHello,
            "the first frame must be Hello".to_owned(),
        ),
        Ok(Ok(None)) => Err(Early::End("closed before Hello".to_owned())),
        Ok(Err(FrameError::TooLarge { len, max })) => refuse(
            RejectReason::FrameTooLarge,
            format!("the first frame announces {len} bytes; the limit is {max}"),
        ),
        Ok(Err(ref e)) if e.is_protocol_violation() => refuse(
            RejectReason::Malformed,
            format!("the first frame is not a valid Hello: {e}"),
        ),
        Ok(Err(e)) => Err(Early::End(format!("connection error before Hello: {e}"))),
    }
}

/// Connects to the server within the connect timeout: with TLS (verified as a client
/// verifies it: the web's roots, or `--server-fingerprint`) unless the server is on this
/// machine, where the relay's secret crosses no network.
async fn connect(config: &Config, token: &CancellationToken) -> Result<Stream, Early> {
    let attempt = async {
        let stream = TcpStream::connect(&config.server).await?;
        let _ = stream.set_nodelay(true);
        let local = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
        if !config.server_tls.unwrap_or(!local) {
            return Ok(Box::new(stream) as Stream);
        }
        let pinned = config.server_fingerprint.clone();
        match chat_core::client::tls_handshake(stream, &config.server, pinned).await {
            Ok(tls) => Ok(Box::new(tls) as Stream),
            Err(e) => Err(std::io::Error::other(untrusted_server(e))),
        }
    };
    let connect = tokio::time::timeout(config.connect_timeout, attempt);
    let upstream = tokio::select! {
        res = connect => res,
        () = token.cancelled() => return Err(Early::End("relay shutting down".to_owned())),
    };
    let message = match upstream {
        Ok(Ok(s)) => return Ok(s),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Other => e.to_string(),
        Ok(Err(e)) => format!(
            "the relay cannot reach the chat server: {}",
            describe_io(&e)
        ),
        Err(_) => format!(
            "the chat server did not answer the relay within {} s",
            config.connect_timeout.as_secs()
        ),
    };
    Err(Early::Refuse(RejectReason::Unavailable, message))
}

/// Presents the relay and the guest to the server: `RelayHello`, the rewritten `Hello`, and
/// what the guest sent after its `Hello`. Returns the server's two halves, or why not.
async fn present(
    upstream: Stream,
    peer: SocketAddr,
    hello: Hello,
    leftover: &[u8],
    config: &Config,
) -> Result<(Reading, Writing), String> {
    let mut opening = BytesMut::new();
    let relay_hello = ClientFrame::RelayHello(RelayHello {
        secret: config.secret.expose().to_owned(),
        peer_addr: peer.to_string(),
        relay: concat!("chat-relay/", env!("CARGO_PKG_VERSION")).to_owned(),
    });
    encode_frame_into(&relay_hello, HANDSHAKE_MAX_FRAME, &mut opening)
        .and_then(|()| {
            let hello = ClientFrame::Hello(hello);
            encode_frame_into(&hello, HANDSHAKE_MAX_FRAME, &mut opening)
        })
        // Only an over-long secret can get here.
        .map_err(|e| format!("the relay cannot present itself to the server: {e}"))?;
    opening.extend_from_slice(leftover);
    let (server_read, mut server_write) = tokio::io::split(upstream);
    server_write
        .write_all(&opening)
        .await
        .map_err(|e| format!("the connection to the chat server failed: {e}"))?;
    Ok((server_read, server_write))
}

/// What the guest is told when the server's TLS failed: an untrusted certificate names the
/// flag that trusts it.
fn untrusted_server(e: chat_core::ClientError) -> String {
    match e {
        chat_core::ClientError::Untrusted { fingerprint, .. } => format!(
            "the relay does not trust the chat server's certificate ({fingerprint}): if it is \
             the server's, start the relay with --server-fingerprint {fingerprint}"
        ),
        e => format!("the relay cannot reach the chat server: {e}"),
    }
}

/// How the server-to-guest direction ended.
enum Down {
    /// The server never answered the handshake properly.
    Unavailable(String),
    /// Forwarding ended; with the server's refusal, if it refused.
    Done(Option<String>, std::io::Result<()>),
}

/// Copies both directions, bytes unchanged, until both end (or the relay stops). Going down,
/// the server's first frame (`Welcome` or `Rejected`) is read whole first, noted for the log,
/// and forwarded as is. Returns how the connection ended, for the log.
async fn forward(
    client_read: Reading,
    w: Writing,
    (server_read, mut server_write): (Reading, Writing),
    leftover_len: u64,
    shared: &Shared,
    token: &CancellationToken,
    record: &mut LogRecord,
) -> String {
    let config = &shared.config;
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
    let up = async {
        let res = tokio::io::copy_buf(&mut from_client, &mut server_write).await;
        // The guest is done sending (or gone): the server sees the end of its input.
        let _ = server_write.shutdown().await;
        res.map(drop)
    };
    let handshake_timeout = config.handshake_timeout;
    let server_nick = &mut record.server_nick;
    let down = async {
        let first = tokio::time::timeout(handshake_timeout, read_raw_frame(&mut from_server)).await;
        let (bytes, frame) = match first {
            Ok(Ok(Some(answer))) => answer,
            Err(_) => {
                return Down::Unavailable(format!(
                    "the chat server did not answer within {} s",
                    handshake_timeout.as_secs()
                ));
            }
            Ok(Err(e)) if e.kind() != std::io::ErrorKind::ConnectionReset => {
                return Down::Unavailable(format!(
                    "the chat server's answer could not be read: {e}"
                ));
            }
            _ => return Down::Unavailable("the chat server closed the connection".to_owned()),
        };
        let refused_by_server = match frame {
            Some(ServerFrame::Welcome(welcome)) => {
                *server_nick = Some(welcome.nick);
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
    let (up_done, down_done, cancelled) = both_ways(up, down, token).await;
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

/// Runs both directions until both end, the server's side fails to reach the guest, the guest
/// does not close within a grace period after the server did, or the relay stops (the last
/// value: true).
async fn both_ways(
    up: impl Future<Output = std::io::Result<()>>,
    down: impl Future<Output = Down>,
    token: &CancellationToken,
) -> (Option<std::io::Result<()>>, Option<Down>, bool) {
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
}

/// The server's first frame is read whole (and decoded for the log) up to this size; a
/// larger one (a `Welcome` with a long roster) is read only this far, its nickname taken from
/// that start, and the rest is forwarded as it comes. A guest's handshake never holds more.
const FIRST_FRAME_HELD: usize = 4 * 1024;

/// Reads the server's first frame, or its first [`FIRST_FRAME_HELD`] bytes (the length
/// prefix included), and what the log needs of it: the frame decoded when it is whole, or,
/// for a longer `Welcome`, a `Welcome` with just the nickname filled in. `Ok(None)` when the
/// server closed the connection before sending anything.
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
    let held = len.min(FIRST_FRAME_HELD);
    let mut bytes = header.to_vec();
    (&mut *stream)
        .take(held as u64)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() < 4 + held {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let frame = if held == len {
        decode_payload::<ServerFrame>(&bytes[4..]).ok()
    } else {
        welcome_nick(&bytes[4..]).map(|nick| ServerFrame::Welcome(welcome_named(nick)))
    };
    Ok(Some((bytes, frame)))
}

/// A `Welcome` that says only who the guest is, for the log.
fn welcome_named(nick: String) -> chat_core::protocol::Welcome {
    chat_core::protocol::Welcome {
        version: 0,
        server: String::new(),
        nick,
        requested_nick: String::new(),
        nick_change: None,
        server_time: chrono::DateTime::default(),
        room: String::new(),
        rooms: Vec::new(),
        roster: Vec::new(),
        limits: chat_core::protocol::Limits {
            max_frame: 0,
            max_message_len: 0,
            max_targets: 0,
            rate_burst: 0,
            rate_interval_ms: 0,
        },
    }
}

/// The nickname in the start of a `Welcome` payload (docs/protocol.md: the variant, then the
/// version, the server's name and the nickname, each as bincode lays them out).
fn welcome_nick(payload: &[u8]) -> Option<String> {
    let mut rest = payload;
    if varint(&mut rest)? != 0 {
        return None;
    }
    varint(&mut rest)?;
    let server = usize::try_from(varint(&mut rest)?).ok()?;
    rest = rest.get(server..)?;
    let len = usize::try_from(varint(&mut rest)?).ok()?;
    String::from_utf8(rest.get(..len)?.to_vec()).ok()
}

/// Reads one bincode variable-length integer: one byte below 251, else a marker (251, 252,
/// 253) and 2, 4 or 8 little-endian bytes.
fn varint(rest: &mut &[u8]) -> Option<u64> {
    let (&first, tail) = rest.split_first()?;
    let width = match first {
        0..=250 => {
            *rest = tail;
            return Some(u64::from(first));
        }
        251 => 2,
        252 => 4,
        253 => 8,
        _ => return None,
    };
    let bytes = tail.get(..width)?;
    *rest = &tail[width..];
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(value))
}

/// Sends the guest a `Rejected` frame and closes; returns the log's ending.
pub(crate) async fn refused<R, W>(
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
pub(crate) async fn refuse<R, W>(r: &mut R, w: &mut W, reason: RejectReason, message: &str)
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

#[cfg(test)]
mod tests {
    use chat_core::frame::encode_frame;
    use chat_core::protocol::UserInfo;

    use super::*;

    #[tokio::test]
    async fn a_long_welcome_is_held_only_in_part_and_still_names_the_guest() {
        for roster_len in [0, 3, 20_000] {
            let mut welcome = welcome_named("*guest".into());
            welcome.server = "chat-server/test".into();
            welcome.roster = (0..roster_len)
                .map(|i| UserInfo {
                    nick: format!("member{i}"),
                    relayed: false,
                })
                .collect();
            let frame = ServerFrame::Welcome(welcome);
            let bytes = encode_frame(&frame, MAX_SERVER_FRAME).expect("encode");
            let mut reader = &bytes[..];
            let (held, seen) = read_raw_frame(&mut reader)
                .await
                .expect("read")
                .expect("a frame");
            assert!(held.len() <= 4 + FIRST_FRAME_HELD);
            assert_eq!(
                held.len() + reader.len(),
                bytes.len(),
                "the rest is left to copy"
            );
            match seen {
                Some(ServerFrame::Welcome(w)) => assert_eq!(w.nick, "*guest"),
                other => panic!("{other:?}"),
            }
        }
    }
}
