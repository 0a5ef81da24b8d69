//! The wire protocol: every frame a client or a server can send.
//!
//! Compatibility rules (see `docs/protocol.md`):
//! - enums grow only by adding variants **at the end**; existing variants and struct fields are
//!   never reordered, removed or changed;
//! - a peer only sends variants that exist in the protocol version the other side announced
//!   (`Hello::version` / `Welcome::version`), so an older peer never has to decode a variant it
//!   does not know;
//! - [`Hello`] keeps its layout forever: it is how versions are negotiated.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::NickError;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// The oldest protocol version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// The room every user is in.
pub const DEFAULT_ROOM: &str = "lobby";
/// Default upper bound of a frame's payload, in bytes.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// Upper bound of a frame's payload before the handshake has completed, in bytes.
pub const HANDSHAKE_MAX_FRAME: usize = 4 * 1024;

/// Largest frame a client accepts from a server. Server frames are not bound by the server's
/// own `max_frame`: a `Welcome` or `Roster` with thousands of users can be larger.
pub const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Server-assigned message identifier, unique and increasing within one server run.
pub type MessageId = u64;

/// A UTC instant, carried on the wire as milliseconds since the Unix epoch (signed varint).
pub type Timestamp = DateTime<Utc>;

/// Everything a client can send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// First frame of every client connection.
    Hello(Hello),
    /// First frame of a connection opened by a relay on behalf of a guest; a `Hello` follows.
    RelayHello(RelayHello),
    /// A message to a room or to one or several users.
    Send(Outgoing),
    /// Asks for the members of a room; answered with [`ServerFrame::Roster`].
    Who {
        /// The room to list.
        room: String,
    },
    /// Asks for a [`ServerFrame::Pong`] carrying the same nonce (round-trip measurement).
    Ping {
        /// Opaque value echoed back.
        nonce: u64,
    },
    /// Leaves the chat; the server answers with [`ServerFrame::Bye`] and closes.
    Quit {
        /// Shown to the others; may be empty.
        reason: String,
    },
}

/// The handshake frame. Its layout never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub version: u16,
    /// The nickname the client asks for.
    pub nick: String,
    /// Client software name and version, e.g. `chat-tui/0.1.0`.
    pub client: String,
    /// Account password (accounts are planned; servers without accounts ignore it).
    pub password: Option<String>,
}

/// Sent by a relay before the guest's `Hello`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayHello {
    /// The secret shared between the relay and the server.
    pub secret: String,
    /// The guest's real address (`ip:port`), used for logging and rate limiting.
    pub peer_addr: String,
    /// Relay software name and version.
    pub relay: String,
}

impl std::fmt::Debug for RelayHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHello")
            .field("secret", &"<redacted>")
            .field("peer_addr", &self.peer_addr)
            .field("relay", &self.relay)
            .finish()
    }
}

/// A message as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Chosen by the client; echoed in the sender's copy of the message and in any error or
    /// rate-limit answer about it, so the client can match answers to what it sent.
    pub tag: u64,
    /// Where it goes.
    pub to: Target,
    /// What it says.
    pub body: Body,
    /// Optional attributes (replies, expiry, ...).
    pub attrs: Vec<MessageAttr>,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Everyone in a room.
    Room(String),
    /// Only these users (a private message).
    Users(Vec<String>),
}

/// The content of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Plain text; may contain newlines and tabs but no other control characters.
    Text(String),
    /// An action (`/me waves`), displayed as `* nick waves`.
    Action(String),
}

impl Body {
    /// The text of the body.
    pub fn text(&self) -> &str {
        match self {
            Body::Text(t) | Body::Action(t) => t,
        }
    }
}

/// Optional attributes of a message. New kinds are added at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageAttr {
    /// The message answers the message with this id.
    ReplyTo(MessageId),
    /// Clients hide the message this many seconds after its timestamp.
    ExpiresIn(u32),
}

/// Everything a server can send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The handshake succeeded.
    Welcome(Welcome),
    /// The handshake failed; the server closes the connection after this frame.
    Rejected(Rejected),
    /// A public or private message (also the sender's acknowledgement).
    Message(ChatMessage),
    /// Someone joined a room.
    Joined {
        /// The room.
        room: String,
        /// Who joined.
        user: UserInfo,
        /// When.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        at: Timestamp,
    },
    /// Someone left a room or the server.
    Left {
        /// The room.
        room: String,
        /// Who left.
        nick: String,
        /// Why.
        reason: DisconnectReason,
        /// Quit message or detail; may be empty.
        message: String,
        /// When.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        at: Timestamp,
    },
    /// The members of a room, answering [`ClientFrame::Who`].
    Roster {
        /// The room.
        room: String,
        /// Its members, sorted by nickname.
        users: Vec<UserInfo>,
    },
    /// A request could not be carried out; the connection stays open.
    Error(ErrorFrame),
    /// A message was refused because the sender is over its rate limit.
    RateLimited {
        /// The tag of the refused message.
        tag: Option<u64>,
        /// How long until messages are accepted again, in milliseconds.
        retry_after_ms: u32,
    },
    /// Answer to [`ClientFrame::Ping`].
    Pong {
        /// The nonce of the ping.
        nonce: u64,
        /// The server's clock.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        server_time: Timestamp,
    },
    /// The server is closing this connection; nothing follows.
    Bye {
        /// Why.
        reason: DisconnectReason,
        /// Human-readable detail.
        message: String,
    },
}

/// Handshake result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the server will speak on this connection.
    pub version: u16,
    /// Server software name and version.
    pub server: String,
    /// The nickname assigned to this connection.
    pub nick: String,
    /// The nickname that was asked for.
    pub requested_nick: String,
    /// Why `nick` differs from `requested_nick`, if it does.
    pub nick_change: Option<NickChange>,
    /// The server's clock.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub server_time: Timestamp,
    /// The room the client is in (`lobby`).
    pub room: String,
    /// Rooms on the server.
    pub rooms: Vec<RoomInfo>,
    /// Members of `room`, sorted, including this client.
    pub roster: Vec<UserInfo>,
    /// Limits that apply to this connection.
    pub limits: Limits,
}

/// Why the server assigned a different nickname.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NickChange {
    /// Someone online already uses this nickname or one that looks the same.
    Taken,
}

/// A room as listed in `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Name, without `#`.
    pub name: String,
    /// Topic; may be empty.
    pub topic: String,
    /// Number of members.
    pub members: u32,
}

/// A user as shown in rosters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Nickname.
    pub nick: String,
    /// Connected through a relay (the nickname starts with `*`).
    pub relayed: bool,
}

/// Limits the server enforces on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame payload accepted, in bytes.
    pub max_frame: u32,
    /// Largest message text accepted, in bytes of UTF-8.
    pub max_message_len: u32,
    /// Most recipients of one private message.
    pub max_targets: u32,
    /// Messages that may be sent back to back.
    pub rate_burst: u32,
    /// After the burst, one more message every this many milliseconds.
    pub rate_interval_ms: u32,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned id.
    pub id: MessageId,
    /// Server time of acceptance.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: Timestamp,
    /// Sender's nickname.
    pub from: String,
    /// The room, or every recipient of a private message (canonical nicknames).
    pub to: Target,
    /// Content.
    pub body: Body,
    /// Attributes as sent.
    pub attrs: Vec<MessageAttr>,
    /// The sender's tag: present only in the copy echoed to the sender.
    pub tag: Option<u64>,
}

/// Handshake refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable explanation.
    pub message: String,
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The client's protocol version is outside what the server supports.
    VersionMismatch {
        /// Version the client announced.
        client: u16,
        /// Oldest version the server accepts.
        server_min: u16,
        /// Newest version the server speaks.
        server_max: u16,
    },
    /// The nickname breaks a rule.
    InvalidNick(NickError),
    /// `*` nicknames are reserved for guests connecting through a relay.
    NickReservedForRelay,
    /// A relay handshake was refused (wrong secret, or relays not enabled).
    RelayRefused,
    /// The first frame was not `Hello` (or `RelayHello` then `Hello`).
    ExpectedHello,
    /// No `Hello` arrived in time.
    HelloTimeout,
    /// The server has reached its connection limit.
    ServerFull,
    /// A frame exceeded the size limit.
    FrameTooLarge,
    /// A frame could not be decoded.
    Malformed,
    /// The server is shutting down.
    ShuttingDown,
    /// Sent by a relay: the chat server cannot be reached through it right now.
    Unavailable,
}

/// Why a connection ended (in `Bye` to the client, in `Left` to the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisconnectReason {
    /// The user quit.
    Quit,
    /// The connection closed or failed without a `Quit`.
    ConnectionClosed,
    /// The client sent a frame that was too large or could not be decoded.
    ProtocolError,
    /// The client kept sending while rate-limited.
    Flooding,
    /// The client did not read fast enough and its send queue filled up.
    SendQueueExceeded,
    /// The server is shutting down.
    ServerShutdown,
}

/// A request that failed; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The tag of the message this is about, if any.
    pub tag: Option<u64>,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// These private-message targets are not online.
    NoSuchUser(Vec<String>),
    /// There is no such room, or the sender is not in it.
    NoSuchRoom(String),
    /// The text is longer than `Limits::max_message_len`.
    MessageTooLong {
        /// The limit, in bytes.
        max: u32,
    },
    /// The text is empty or contains forbidden control characters.
    InvalidText,
    /// More private-message targets than `Limits::max_targets`, or none.
    BadTargets {
        /// The limit.
        max: u32,
    },
    /// The server does not support this request.
    Unsupported,
}

impl DisconnectReason {
    /// A short phrase for logs and user interfaces.
    pub fn describe(self) -> &'static str {
        match self {
            DisconnectReason::Quit => "quit",
            DisconnectReason::ConnectionClosed => "connection closed",
            DisconnectReason::ProtocolError => "protocol error",
            DisconnectReason::Flooding => "flooding",
            DisconnectReason::SendQueueExceeded => "send queue exceeded",
            DisconnectReason::ServerShutdown => "server shutting down",
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}
