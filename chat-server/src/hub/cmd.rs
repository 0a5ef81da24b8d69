//! What sessions (and the store thread) ask of the hub, and what the hub keeps to answer once
//! a write is durable.

use std::net::SocketAddr;
use std::sync::Arc;

use chat_core::protocol::{
    ChatMessage, ClientFrame, DisconnectReason, ErrorFrame, MessageId, Outgoing, Rejected,
    ServerFrame,
};
use tokio::sync::oneshot;

use super::conn::ConnId;
use crate::event::{EventKind, SharedMessage};
use crate::login::HashedPassword;
use crate::outbox::Outbox;
use crate::store::Account;

/// Commands sessions send to the hub.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A connection completed the handshake.
    Join(Box<JoinRequest>),
    /// A validated message from a client, read from its socket at `arrived`.
    Send {
        conn: ConnId,
        msg: Outgoing,
        arrived: tokio::time::Instant,
    },
    /// A roster request.
    Who { conn: ConnId, room: String },
    /// A client was muted by its rate limiter.
    RateLimited { conn: ConnId, retry_after_ms: u64 },
    /// A connection ended (quit, closed, protocol error, flooding).
    Leave {
        conn: ConnId,
        reason: DisconnectReason,
        message: String,
    },
    /// An event produced outside the hub (refused handshakes, periodic stats).
    Record(EventKind),
    /// Enter a room (creating it).
    EnterRoom { conn: ConnId, room: String },
    /// Leave a room.
    PartRoom { conn: ConnId, room: String },
    /// List every room.
    ListRooms { conn: ConnId },
    /// Set a room's topic.
    SetTopic {
        conn: ConnId,
        room: String,
        topic: String,
    },
    /// Fetch a page of a room's history.
    History {
        conn: ConnId,
        room: String,
        before: Option<MessageId>,
        limit: u32,
    },
    /// Fetch a page of the connection's account's private conversation with `with`.
    PrivateHistory {
        conn: ConnId,
        with: Vec<String>,
        before: Option<MessageId>,
        limit: u32,
    },
    /// Search the stored messages the connection may read.
    Search {
        conn: ConnId,
        query: Box<crate::search::Query>,
        before: Option<MessageId>,
        limit: u32,
    },
    /// List the stored messages that mention the connection's account.
    Mentions {
        conn: ConnId,
        before: Option<MessageId>,
        limit: u32,
    },
    /// Whether the connection's nickname could be registered now, asked before its password
    /// is hashed (hashing costs tens of milliseconds of CPU: only what could be carried out
    /// is hashed).
    MayRegister {
        conn: ConnId,
        answer: oneshot::Sender<Result<(), ErrorFrame>>,
    },
    /// Register the connection's nickname (the password already hashed by the session).
    Register { conn: ConnId, hash: HashedPassword },
    /// Change the logged-in account's password (already hashed).
    SetPassword { conn: ConnId, hash: HashedPassword },
    /// The store committed a batch (or failed to): acknowledge its writes.
    Stored {
        result: Result<(), String>,
        acks: Vec<Ack>,
    },
    /// A frame the store thread prepared for one connection (a history page).
    Reply { conn: ConnId, frame: ServerFrame },
    /// Everything queued for the store before has been committed (see `Durable::barrier`).
    Barrier,
    /// The store applied the retention.
    Pruned(Result<crate::store::Pruned, String>),
    /// The client received its kept private messages up to this id.
    AckOffline { conn: ConnId, up_to: MessageId },
    /// The private messages an account received while offline, read from the store.
    Offline {
        conn: ConnId,
        messages: Result<Vec<ChatMessage>, String>,
    },
    /// A moderation or presence request (checked by the session): `Kick`, `Ban`, `Unban`,
    /// `ListBans`, `Mute`, `Unmute`, `Op`, `LockTopic`, `Nick`, `Away`, `Whois`, `Delete`.
    Moderate { conn: ConnId, frame: ClientFrame },
    /// A file transfer's frame (offer, answer, chunk, acknowledgement, cancel, done).
    File { conn: ConnId, frame: ClientFrame },
    /// Delete, edit or react to a message (checked by the session).
    MessageOp {
        conn: ConnId,
        id: MessageId,
        op: super::message_ops::Op,
    },
    /// A message to change, looked up in the store (`conn` is `None` for an expiry).
    Found {
        conn: Option<ConnId>,
        id: MessageId,
        op: super::message_ops::Op,
        found: super::message_ops::Lookup,
    },
    /// A page of history the store read, and the edits and reactions of its messages.
    HistoryPage {
        conn: ConnId,
        frame: ServerFrame,
        notes: Vec<ServerFrame>,
    },
    /// What `chat-server admin` changed in the database since the last look.
    Admin(Result<Vec<crate::store::AdminEvent>, String>),
}

/// What to tell a client once its write is durable.
#[derive(Debug)]
pub(crate) struct Ack {
    pub(super) conn: ConnId,
    pub(super) what: Acked,
}

/// The kinds of write a client waits for.
#[derive(Debug)]
pub(super) enum Acked {
    /// A message: its echo is the shared record with the sender's tag, followed by the
    /// offline accounts it was queued for.
    Message {
        message: SharedMessage,
        tag: u64,
        queued_for: Vec<String>,
    },
    /// The connection's nickname became an account.
    Registered { key: String, nick: String },
    /// The account's password changed.
    PasswordChanged,
}

/// An account the session verified (or is creating) for a connection.
#[derive(Debug)]
pub(crate) struct Login {
    /// The account as stored (its nickname and rooms).
    pub account: Account,
    /// The password hash of an account being created at this login (`--guests deny`).
    pub create: Option<HashedPassword>,
}

/// Everything the hub needs to admit a connection.
#[derive(Debug)]
pub(crate) struct JoinRequest {
    pub conn: ConnId,
    pub version: u16,
    pub nick: String,
    pub client: String,
    pub addr: SocketAddr,
    pub relayed: bool,
    /// The relay's address, for a relayed guest (`addr` is what the relay says is the
    /// guest's).
    pub via: Option<SocketAddr>,
    pub outbox: Arc<Outbox>,
    /// The account logged in to, if any.
    pub login: Option<Login>,
    /// Answered once the Welcome is queued (or with the refusal); dropped if the server is
    /// shutting down.
    pub joined: oneshot::Sender<Result<(), Rejected>>,
}
