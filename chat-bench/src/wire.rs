//! The two protocols the load generator speaks, behind one interface: the chat protocol (log
//! in, send to the lobby, read messages) and Redis pub/sub (SUBSCRIBE and PUBLISH on one
//! channel), for measuring the chat server against Redis with the same generator.
//!
//! Reading is the generator's hot path (it reads every delivery of every subscriber), so both
//! parsers work in place on a connection's read buffer and allocate nothing per delivery.

use bytes::{BufMut, BytesMut};
use chat_core::client::{ConnectOptions, connect};
use chat_core::codec;
use chat_core::frame::{LEN_PREFIX, decode_payload, encode_frame_into};
use chat_core::protocol::{
    Body, ClientFrame, DEFAULT_ROOM, MAX_SERVER_FRAME, MessageAttr, Outgoing, ServerFrame, Target,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

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
#[derive(Debug)]
pub struct Conn {
    pub read: OwnedReadHalf,
    pub write: OwnedWriteHalf,
    /// Received bytes not yet parsed.
    pub buf: BytesMut,
}

/// What a parser found in the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A message published by someone (its text).
    Delivery(&'a str),
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
    pub async fn connect(self, server: &str, name: &str, subscribe: bool) -> Result<Conn, String> {
        match self {
            Protocol::Chat => {
                let opts = ConnectOptions::new(name).client("chat-bench");
                let client = connect(server, &opts)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                let (read, buf) = client.events.into_parts();
                Ok(Conn {
                    read,
                    write: client.sender.into_inner(),
                    buf,
                })
            }
            Protocol::Redis => {
                let stream = TcpStream::connect(server)
                    .await
                    .map_err(|e| format!("{server}: {e}"))?;
                let _ = stream.set_nodelay(true);
                let (read, mut write) = stream.into_split();
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

/// The wire layout of `ServerFrame::Message`, borrowing its strings (checked by a test against
/// the real type).
#[derive(Debug, Deserialize)]
struct MessageRef<'a> {
    _variant: u32,
    _id: u64,
    _at: i64,
    #[serde(borrow)]
    _from: &'a str,
    #[serde(borrow)]
    _to: TargetRef<'a>,
    #[serde(borrow)]
    body: BodyRef<'a>,
    _attrs: Vec<MessageAttr>,
    tag: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[expect(dead_code, reason = "read only to step over it")]
enum TargetRef<'a> {
    Room(#[serde(borrow)] &'a str),
    Users(#[serde(borrow)] Vec<&'a str>),
}

#[derive(Debug, Deserialize)]
enum BodyRef<'a> {
    Text(&'a str),
    Action(&'a str),
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
        let m: MessageRef<'_> = codec::decode_borrowed(payload).map_err(|e| e.to_string())?;
        let item = match (m.tag, m.body) {
            (Some(_), _) => Item::Ack,
            (None, BodyRef::Text(t) | BodyRef::Action(t)) => Item::Delivery(t),
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
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], end + 2))
}

fn resp_int(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad RESP number {:?}", String::from_utf8_lossy(line)))
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
                Item::Delivery(std::str::from_utf8(parts[2]).map_err(|e| e.to_string())?)
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
    use chat_core::protocol::ChatMessage;

    fn message(tag: Option<u64>, to: Target, body: Body) -> ServerFrame {
        ServerFrame::Message(ChatMessage {
            id: 42,
            at: chrono::Utc::now(),
            from: "alice".into(),
            to,
            body,
            attrs: vec![MessageAttr::ReplyTo(7)],
            tag,
        })
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
            .scan(&buf, |i| items.push(format!("{i:?}")))
            .expect("scan");
        assert_eq!(used, whole);
        assert_eq!(
            items,
            [
                "Delivery(\"0:1:2:x\")",
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
            .scan(buf, |i| items.push(format!("{i:?}")))
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
