//! The two protocols the load generator speaks, behind one interface: the chat protocol (log
//! in, send to the lobby, read messages) and Redis pub/sub (SUBSCRIBE and PUBLISH on one
//! channel), for measuring the chat server against Redis with the same generator.
//!
//! Reading is the generator's hot path (it reads every delivery of every subscriber), so both
//! parsers work in place on a connection's read buffer and allocate nothing per delivery.

use std::sync::{Arc, Mutex};

use bytes::{BufMut, BytesMut};
use chat_core::Connection;
use chat_core::client::{ConnectOptions, handshake};
use chat_core::frame::{LEN_PREFIX, decode_payload, encode_frame_into};
use chat_core::protocol::{
    Body, ClientFrame, DEFAULT_ROOM, HANDSHAKE_MAX_FRAME, MAX_SERVER_FRAME, Outgoing, ServerFrame,
    Target,
};
use chat_core::tls::tokio_rustls::TlsConnector;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The reading side of a connection (TCP or TLS).
pub type ReadSide = Box<dyn AsyncRead + Unpin + Send>;
/// The writing side of a connection (TCP or TLS).
pub type WriteSide = Box<dyn AsyncWrite + Unpin + Send>;

/// How the generator reaches the server: plain TCP, or TLS.
#[derive(Clone, Default)]
pub struct Transport {
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.tls.is_some() { "tls" } else { "plain" })
    }
}

impl Transport {
    /// Plain TCP.
    pub fn plain() -> Self {
        Transport::default()
    }

    /// TLS, trusting a certificate that chains to the web's roots or has the fingerprint
    /// `pinned` (as `chat-server fingerprint` prints it).
    pub fn tls(pinned: Option<String>) -> Result<Self, String> {
        let seen = Arc::new(Mutex::new(None));
        let config = chat_core::tls::client_config(pinned, seen).map_err(|e| e.to_string())?;
        Ok(Transport {
            tls: Some(TlsConnector::from(Arc::new(config))),
        })
    }

    /// Whether this is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection to `server`, past the TLS handshake if any.
    pub async fn open(&self, server: &str) -> Result<(ReadSide, WriteSide), String> {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            let (r, w) = stream.into_split();
            return Ok((Box::new(r), Box::new(w)));
        };
        let name = chat_core::tls::server_name(server)
            .ok_or_else(|| format!("{server}: not a host name or an address"))?;
        let stream = tls.connect(name, stream).await.map_err(|e| {
            format!(
                "{server}: TLS: {e} (give the certificate's fingerprint with --trust-fingerprint)"
            )
        })?;
        let (r, w) = tokio::io::split(stream);
        Ok((Box::new(r), Box::new(w)))
    }
}

/// Which server the generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// A chat server or relay: everyone in the lobby.
    Chat,
    /// A Redis server: SUBSCRIBE and PUBLISH on the channel `lobby`.
    Redis,
}

/// The Redis channel standing in for the lobby.
const CHANNEL: &str = "lobby";

/// One open connection, past its handshake, read and written as raw bytes.
pub struct Conn {
    pub read: ReadSide,
    pub write: WriteSide,
    /// Received bytes not yet parsed.
    pub buf: BytesMut,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// What a parser found in the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A message published by someone (its text, not checked to be UTF-8).
    Delivery(&'a [u8]),
    /// The server accepted one of this connection's messages (chat: the echo; Redis: the
    /// PUBLISH reply).
    Ack,
    /// The server refused something or is closing: the run cannot go on.
    Refused(String),
    /// Anything else (joins, leaves, pongs).
    Other,
}

impl Protocol {
    /// Opens a connection: logs in as `name` (chat) or subscribes to the channel (Redis, when
    /// `subscribe`; a publisher only publishes).
    pub async fn connect(
        self,
        transport: &Transport,
        server: &str,
        name: &str,
        subscribe: bool,
    ) -> Result<Conn, String> {
        let (read, mut write) = transport.open(server).await?;
        match self {
            Protocol::Chat => {
                let opts = ConnectOptions::new(name).client("chat-bench");
                let conn = Connection::new(read, write, HANDSHAKE_MAX_FRAME);
                let client = tokio::time::timeout(opts.timeout, handshake(conn, None, &opts))
                    .await
                    .map_err(|_| format!("{name}: no answer from {server}"))?
                    .map_err(|e| format!("{name}: {e}"))?;
                let (read, buf) = client.events.into_parts();
                Ok(Conn {
                    read,
                    write: client.sender.into_inner(),
                    buf,
                })
            }
            Protocol::Redis => {
                if subscribe {
                    let cmd = format!(
                        "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{CHANNEL}\r\n",
                        CHANNEL.len()
                    );
                    write
                        .write_all(cmd.as_bytes())
                        .await
                        .map_err(|e| format!("{server}: {e}"))?;
                }
                let mut conn = Conn {
                    read,
                    write,
                    buf: BytesMut::with_capacity(1024),
                };
                if subscribe {
                    // The confirmation: ["subscribe", channel, count].
                    loop {
                        if let Some((used, confirmed)) = resp_subscribed(&conn.buf)? {
                            bytes::Buf::advance(&mut conn.buf, used);
                            if confirmed {
                                break;
                            }
                            continue;
                        }
                        let n = conn
                            .read
                            .read_buf(&mut conn.buf)
                            .await
                            .map_err(|e| format!("{server}: {e}"))?;
                        if n == 0 {
                            return Err(format!("{server}: closed before SUBSCRIBE was confirmed"));
                        }
                    }
                }
                Ok(conn)
            }
        }
    }

    /// Appends the command that publishes `text` to the lobby (chat: a message tagged `tag`).
    pub fn publish(self, text: &str, tag: u64, out: &mut BytesMut) -> Result<(), String> {
        match self {
            Protocol::Chat => {
                let frame = ClientFrame::Send(Outgoing {
                    tag,
                    to: Target::Room(DEFAULT_ROOM.to_owned()),
                    body: Body::Text(text.to_owned()),
                    attrs: Vec::new(),
                });
                encode_frame_into(&frame, MAX_SERVER_FRAME, out).map_err(|e| e.to_string())
            }
            Protocol::Redis => {
                out.put_slice(b"*3\r\n$7\r\nPUBLISH\r\n");
                bulk(out, CHANNEL.as_bytes());
                bulk(out, text.as_bytes());
                Ok(())
            }
        }
    }

    /// Calls `f` for every complete item at the start of `buf`; returns the bytes used.
    pub fn scan(self, buf: &[u8], mut f: impl FnMut(Item<'_>)) -> Result<usize, String> {
        let mut pos = 0;
        loop {
            let step = match self {
                Protocol::Chat => chat_item(&buf[pos..])?,
                Protocol::Redis => resp_item(&buf[pos..])?,
            };
            let Some((used, item)) = step else {
                return Ok(pos);
            };
            f(item);
            pos += used;
        }
    }
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.put_u8(b'$');
    out.put_slice(data.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// `ServerFrame::Message`'s variant index on the wire (checked by a test).
const MESSAGE_VARIANT: u8 = 2;

/// Reads the fields of a `ServerFrame::Message` payload as docs/protocol.md lays them out, to
/// find its body and tag without building the frame: the generator does this for every
/// delivery of every subscriber, on the machine it shares with the server, so it must cost as
/// little as possible. Strings are not checked to be UTF-8. A test checks it against frames
/// encoded from the real type.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.buf.split_at_checked(n)?;
        self.buf = rest;
        Some(head)
    }

    /// An unsigned varint (an `i64` is zigzagged first; it is only stepped over here).
    fn varint(&mut self) -> Option<u64> {
        let first = *self.take(1)?.first()?;
        let le = |bytes: &[u8]| {
            let mut word = [0u8; 8];
            word[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(word)
        };
        match first {
            0..=250 => Some(u64::from(first)),
            251 => self.take(2).map(le),
            252 => self.take(4).map(le),
            253 => self.take(8).map(le),
            _ => None,
        }
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    /// `(tag, body)` of a whole `Message` payload; `None` if it is laid out otherwise.
    fn message(mut self) -> Option<(Option<u64>, &'a [u8])> {
        if self.varint()? != u64::from(MESSAGE_VARIANT) {
            return None;
        }
        self.varint()?; // id
        self.varint()?; // at
        self.bytes()?; // from
        match self.varint()? {
            0 => {
                self.bytes()?; // Target::Room
            }
            1 => {
                for _ in 0..self.varint()? {
                    self.bytes()?; // Target::Users
                }
            }
            _ => return None,
        }
        let body = match self.varint()? {
            0 | 1 => self.bytes()?, // Body::Text, Body::Action
            _ => return None,
        };
        for _ in 0..self.varint()? {
            match self.varint()? {
                0 | 1 => self.varint()?, // MessageAttr::ReplyTo, MessageAttr::ExpiresIn
                _ => return None,
            };
        }
        let tag = match self.take(1)? {
            [0] => None,
            [1] => Some(self.varint()?),
            _ => return None,
        };
        self.buf.is_empty().then_some((tag, body))
    }
}

fn chat_item(buf: &[u8]) -> Result<Option<(usize, Item<'_>)>, String> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix) as usize;
    let Some(payload) = buf.get(LEN_PREFIX..LEN_PREFIX + len) else {
        return Ok(None);
    };
    let used = LEN_PREFIX + len;
    if payload.first() == Some(&MESSAGE_VARIANT) {
        let (tag, body) = Fields { buf: payload }
            .message()
            .ok_or("a message frame the generator cannot read")?;
        let item = match tag {
            Some(_) => Item::Ack,
            None => Item::Delivery(body),
        };
        return Ok(Some((used, item)));
    }
    let frame: ServerFrame = decode_payload(payload).map_err(|e| e.to_string())?;
    let item = match frame {
        ServerFrame::Error(e) => Item::Refused(e.message),
        ServerFrame::RateLimited { .. } => Item::Refused(
            "the server rate-limits the publishers: start it with --rate-burst 1000000 \
             --rate-per-sec 1000000"
                .to_owned(),
        ),
        ServerFrame::Bye { message, .. } => Item::Refused(format!("disconnected: {message}")),
        _ => Item::Other,
    };
    Ok(Some((used, item)))
}

/// One RESP line (without its CRLF) and the bytes it takes.
fn resp_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let mut from = 0;
    loop {
        let end = from + buf[from..].iter().position(|&b| b == b'\r')?;
        match buf.get(end + 1) {
            Some(b'\n') => return Some((&buf[..end], end + 2)),
            Some(_) => from = end + 1,
            None => return None,
        }
    }
}

fn resp_int(line: &[u8]) -> Result<i64, String> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    let value = decimal(digits)
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| format!("bad RESP number {:?}", String::from_utf8_lossy(line)))?;
    Ok(if negative { -value } else { value })
}

/// A non-empty run of ASCII digits as a number; `None` for anything else or on overflow.
pub fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// One RESP value that is a bulk string or an integer: its bytes and the bytes it takes.
fn resp_scalar(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    let Some((line, head)) = resp_line(buf) else {
        return Ok(None);
    };
    match line.first() {
        Some(b'$') => {
            let len = usize::try_from(resp_int(&line[1..])?).map_err(|e| e.to_string())?;
            if buf.len() < head + len + 2 {
                return Ok(None);
            }
            Ok(Some((&buf[head..head + len], head + len + 2)))
        }
        Some(b':') => Ok(Some((&line[1..], head))),
        _ => Err(format!(
            "unexpected RESP value {:?}",
            String::from_utf8_lossy(line)
        )),
    }
}

fn resp_item(buf: &[u8]) -> Result<Option<(usize, Item<'_>)>, String> {
    let Some((line, head)) = resp_line(buf) else {
        return Ok(None);
    };
    match line.first() {
        Some(b':') => Ok(Some((head, Item::Ack))),
        Some(b'-') => Ok(Some((
            head,
            Item::Refused(String::from_utf8_lossy(&line[1..]).into_owned()),
        ))),
        Some(b'*') => {
            let count = resp_int(&line[1..])?;
            let mut pos = head;
            let mut parts: [&[u8]; 3] = [b""; 3];
            for i in 0..count {
                let Some((value, used)) = resp_scalar(&buf[pos..])? else {
                    return Ok(None);
                };
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| parts.get_mut(i)) {
                    *slot = value;
                }
                pos += used;
            }
            let item = if count == 3 && parts[0] == b"message" {
                Item::Delivery(parts[2])
            } else {
                Item::Other
            };
            Ok(Some((pos, item)))
        }
        _ => Err(format!(
            "unexpected RESP reply {:?}",
            String::from_utf8_lossy(line)
        )),
    }
}

/// A subscription confirmation at the start of `buf`: `Some((used, true))` for one,
/// `Some((used, false))` for anything else complete.
fn resp_subscribed(buf: &[u8]) -> Result<Option<(usize, bool)>, String> {
    Ok(resp_item(buf)?.map(|(used, item)| match item {
        Item::Other => (used, buf.starts_with(b"*3\r\n$9\r\nsubscribe\r\n")),
        Item::Refused(_) | Item::Ack | Item::Delivery(_) => (used, false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::frame::encode_frame;
    use chat_core::protocol::{ChatMessage, MessageAttr};

    /// Ids, times, attributes and tags of every varint width.
    fn message(tag: Option<u64>, to: Target, body: Body) -> ServerFrame {
        ServerFrame::Message(ChatMessage {
            id: u64::MAX - 1,
            at: chrono::Utc::now(),
            from: "alice".into(),
            to,
            body,
            attrs: vec![
                MessageAttr::ReplyTo(7),
                MessageAttr::ReplyTo(70_000),
                MessageAttr::ExpiresIn(300),
            ],
            tag,
        })
    }

    #[test]
    fn a_message_frame_laid_out_otherwise_is_an_error() {
        let frame = encode_frame(
            &message(None, Target::Room("lobby".into()), Body::Text("hi".into())),
            MAX_SERVER_FRAME,
        )
        .expect("encode");
        let payload = &frame[LEN_PREFIX..];
        assert!(Fields { buf: payload }.message().is_some());
        // One byte short, or one byte too many.
        assert!(
            Fields {
                buf: &payload[..payload.len() - 1]
            }
            .message()
            .is_none()
        );
        let mut longer = payload.to_vec();
        longer.push(0);
        assert!(Fields { buf: &longer }.message().is_none());
        let mut buf = BytesMut::new();
        buf.put_u32(u32::try_from(longer.len()).expect("small"));
        buf.put_slice(&longer);
        assert!(Protocol::Chat.scan(&buf, |_| {}).is_err());
    }

    fn show(item: &Item<'_>) -> String {
        match item {
            Item::Delivery(text) => format!("Delivery({:?})", String::from_utf8_lossy(text)),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn numbers_parse_from_ascii_digits_only() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616"), None);
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"12a"), None);
        assert_eq!(decimal(b"+1"), None);
        assert_eq!(resp_int(b"-42"), Ok(-42));
        assert_eq!(resp_int(b"1000"), Ok(1000));
        assert!(resp_int(b"-").is_err());
        assert_eq!(resp_line(b"ab\rc\r\nrest"), Some((&b"ab\rc"[..], 6)));
        assert_eq!(resp_line(b"ab\r"), None);
    }

    #[test]
    fn the_borrowed_layout_reads_real_message_frames() {
        let mut buf = BytesMut::new();
        for frame in [
            message(
                None,
                Target::Room("lobby".into()),
                Body::Text("0:1:2:x".into()),
            ),
            message(
                Some(9),
                Target::Room("lobby".into()),
                Body::Text("mine".into()),
            ),
            message(
                Some(1 << 40),
                Target::Room("lobby".into()),
                Body::Text("mine too".into()),
            ),
            message(
                None,
                Target::Users(vec!["bob".into(), "carol".into()]),
                Body::Action("waves".into()),
            ),
            ServerFrame::Pong {
                nonce: 3,
                server_time: chrono::Utc::now(),
            },
        ] {
            buf.extend_from_slice(&encode_frame(&frame, MAX_SERVER_FRAME).expect("encode"));
        }
        let whole = buf.len();
        buf.extend_from_slice(&[0, 0, 0, 9, 2]); // the start of another frame
        let mut items = Vec::new();
        let used = Protocol::Chat
            .scan(&buf, |i| items.push(show(&i)))
            .expect("scan");
        assert_eq!(used, whole);
        assert_eq!(
            items,
            [
                "Delivery(\"0:1:2:x\")",
                "Ack",
                "Ack",
                "Delivery(\"waves\")",
                "Other"
            ]
        );
    }

    #[test]
    fn resp_replies_and_messages_parse_in_place() {
        let buf = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nlobby\r\n:1\r\n:1000\r\n\
                    *3\r\n$7\r\nmessage\r\n$5\r\nlobby\r\n$7\r\n0:1:2:x\r\n-ERR nope\r\n*3\r\n$7\r\nmes";
        let mut items = Vec::new();
        let used = Protocol::Redis
            .scan(buf, |i| items.push(show(&i)))
            .expect("scan");
        assert_eq!(&buf[used..], b"*3\r\n$7\r\nmes");
        assert_eq!(
            items,
            [
                "Other",
                "Ack",
                "Delivery(\"0:1:2:x\")",
                "Refused(\"ERR nope\")"
            ]
        );
        assert_eq!(resp_subscribed(buf).expect("parse"), Some((34, true)));
    }

    #[test]
    fn publish_commands_are_well_formed() {
        let mut out = BytesMut::new();
        Protocol::Redis.publish("hi", 1, &mut out).expect("encode");
        assert_eq!(
            &out[..],
            b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nlobby\r\n$2\r\nhi\r\n"
        );
        let mut out = BytesMut::new();
        Protocol::Chat.publish("hi", 5, &mut out).expect("encode");
        let frame: ClientFrame = decode_payload(&out[LEN_PREFIX..]).expect("decode");
        assert!(matches!(frame, ClientFrame::Send(o) if o.tag == 5 && o.body.text() == "hi"));
    }
}
