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

mod files;
mod hello;
mod message;
mod moderation;
mod reasons;
mod versions;

pub use files::{FILE_CHUNK, FILE_WINDOW, FileInfo, TransferId, sha256_hex};
pub use hello::{Hello, Password, RelayHello};
pub use message::{
    Body, ChatMessage, MAX_EXPIRY_SECS, MAX_REACTION_LEN, MAX_REACTIONS, MAX_SEARCH_PATTERN,
    MAX_SEARCH_RESULTS, MessageAttr, Outgoing, Reaction, Target,
};
pub use moderation::{BanInfo, ModAction, ModNotice, WhoisInfo};
pub use reasons::{DisconnectReason, ErrorCode, ErrorFrame, RejectReason, Rejected};

/// The protocol version this build speaks. Version 2 added rooms beyond `lobby`, history,
/// accounts and offline private messages (the variants marked "since 2"); version 3 the
/// stricter nickname rules' own refusals (`NickError`'s variants marked "since 3"); version 4
/// moderation (operators, kicks, bans, mutes, topic locks), nickname changes, away messages and
/// `whois` (the variants marked "since 4"); version 5 file transfers (the `File*` variants);
/// version 6 editing and reacting to messages (`Edit`, `Edited`, `React`, `Reactions`) and
/// expiring messages enforced by the server (`Deleted` with an empty `by`), private history and
/// search; version 7 the mentions of an account since its previous login (`Mentions`).
pub const PROTOCOL_VERSION: u16 = 7;
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

/// Server-assigned message identifier, unique and increasing, across restarts too (since 2;
/// version 1 servers numbered from 1 at every start).
pub type MessageId = u64;

/// A UTC instant, carried on the wire as milliseconds since the Unix epoch (signed varint).
pub type Timestamp = DateTime<Utc>;

/// Everything a client can send.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
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
    /// Joins a room, creating it if it does not exist; answered with
    /// [`ServerFrame::Entered`], the room's roster and its recent history. Since 2.
    Join {
        /// The room (with or without `#`).
        room: String,
    },
    /// Leaves a room; answered with [`ServerFrame::Parted`]. Since 2.
    Part {
        /// The room.
        room: String,
    },
    /// Asks for every room; answered with [`ServerFrame::Rooms`]. Since 2.
    ListRooms,
    /// Sets a room's topic (members only); everyone in it gets [`ServerFrame::Topic`]. Since 2.
    SetTopic {
        /// The room.
        room: String,
        /// The new topic; empty clears it.
        topic: String,
    },
    /// Asks for a room's messages older than `before` (the newest ones when `None`);
    /// answered with [`ServerFrame::History`]. Since 2.
    History {
        /// The room.
        room: String,
        /// Only messages with a smaller id.
        before: Option<MessageId>,
        /// At most this many (the server caps it).
        limit: u32,
    },
    /// Registers the current nickname as an account with this password; answered with
    /// [`ServerFrame::Registered`] once it is stored. Since 2.
    Register {
        /// The password.
        password: Password,
    },
    /// Changes the logged-in account's password; answered with
    /// [`ServerFrame::PasswordChanged`] once it is stored. Since 2.
    SetPassword {
        /// The new password.
        password: Password,
    },
    /// The private messages of an [`ServerFrame::Offline`] up to this id were received: the
    /// server stops keeping them. Until then they are delivered again at every login. Since 2.
    AckOffline {
        /// The id of the last message received.
        up_to: MessageId,
    },
    /// Puts someone out of a room (a room or server operator), or off the server (`room` is
    /// `None`; a server operator). Since 4.
    Kick {
        /// The room; `None`: the server.
        room: Option<String>,
        /// Who.
        nick: String,
        /// Why; may be empty.
        reason: String,
    },
    /// Bans someone online (their address, and their account if they are logged in), an
    /// address (`203.0.113.7`; an IPv6 address bans its /64) or an account (`account:bob`,
    /// or the name of an offline account), for `duration_secs` or until lifted (a server
    /// operator). Since 4.
    Ban {
        /// A nickname, an address or an account.
        target: String,
        /// How long; `None`: until lifted.
        duration_secs: Option<u64>,
        /// Why; may be empty.
        reason: String,
    },
    /// Lifts a ban: `target` as `/bans` lists it, or as it was given to `Ban`. Since 4.
    Unban {
        /// The address or account.
        target: String,
    },
    /// Lists the bans; answered with [`ServerFrame::Bans`] (a server operator). Since 4.
    ListBans,
    /// Lets someone read but not speak in a room (a room operator), or anywhere (`room` is
    /// `None`; a server operator). Since 4.
    Mute {
        /// The room; `None`: everywhere.
        room: Option<String>,
        /// Who.
        nick: String,
        /// How long; `None`: until lifted.
        duration_secs: Option<u64>,
        /// Why; may be empty.
        reason: String,
    },
    /// Lifts a mute. Since 4.
    Unmute {
        /// The room; `None`: everywhere.
        room: Option<String>,
        /// Who.
        nick: String,
    },
    /// Makes someone an operator of a room (a room operator), or of the server (`room` is
    /// `None`; a server operator, and the target must be logged in to an account), or takes
    /// it back (`grant` false). Since 4.
    Op {
        /// The room; `None`: the server.
        room: Option<String>,
        /// Who.
        nick: String,
        /// Grant or revoke.
        grant: bool,
    },
    /// Locks a room's topic so that only its operators may set it, or unlocks it (a room
    /// operator). Since 4.
    LockTopic {
        /// The room.
        room: String,
        /// Lock or unlock.
        locked: bool,
    },
    /// Changes this connection's nickname; answered with [`ServerFrame::NickChanged`]. Since 4.
    Nick {
        /// The new nickname.
        nick: String,
    },
    /// Marks this connection away with a message, or back (an empty message). Since 4.
    Away {
        /// The away message; empty: back.
        message: String,
    },
    /// Asks about someone online; answered with [`ServerFrame::Whois`]. Since 4.
    Whois {
        /// Who.
        nick: String,
    },
    /// Deletes a message: one's own, or, as an operator of its room (or of the server),
    /// anyone's. Its text is removed from the store and from later history; whoever can see it
    /// gets [`ServerFrame::Deleted`]. Since 4.
    Delete {
        /// The message's id.
        id: MessageId,
    },
    /// Offers a file to one user online; answered with [`ServerFrame::FileOffered`] (carrying
    /// the transfer's id) or an error with this `tag`. Since 5.
    FileOffer {
        /// Chosen by the client, echoed in the answer.
        tag: u64,
        /// The recipient's nickname.
        to: String,
        /// The file's name, without a directory.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// The SHA-256 of its content.
        sha256: [u8; 32],
    },
    /// The recipient accepts or declines an offer. Since 5.
    FileAnswer {
        /// The transfer.
        id: TransferId,
        /// Accept (the sender starts sending) or decline (the transfer ends).
        accept: bool,
    },
    /// The next piece of an accepted transfer's content, from its sender: at most
    /// [`FILE_WINDOW`] bytes beyond what the recipient acknowledged. Since 5.
    FileChunk {
        /// The transfer.
        id: TransferId,
        /// The bytes, following the previous chunk's.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The recipient has this many bytes of the transfer (flow control). Since 5.
    FileAck {
        /// The transfer.
        id: TransferId,
        /// Bytes received so far.
        received: u64,
    },
    /// Either side stops a transfer (or withdraws an offer). Since 5.
    FileCancel {
        /// The transfer.
        id: TransferId,
        /// Why; may be empty.
        reason: String,
    },
    /// The recipient has every byte and the SHA-256 matched: the transfer is complete.
    /// Since 5.
    FileDone {
        /// The transfer.
        id: TransferId,
    },
    /// Replaces a message's text: one's own, or, as an operator of its room (or of the
    /// server), anyone's. The store keeps the new text only; whoever can see the message gets
    /// [`ServerFrame::Edited`]. Since 6.
    Edit {
        /// The message's id.
        id: MessageId,
        /// The new text (the same rules as a message's).
        text: String,
    },
    /// Adds this user's reaction (one emoji) to a message they can see, or takes it back if
    /// it is there already; whoever can see the message gets [`ServerFrame::Reactions`].
    /// Since 6.
    React {
        /// The message's id.
        id: MessageId,
        /// The reaction: one emoji (at most [`MAX_REACTION_LEN`] bytes, no spaces).
        emoji: String,
    },
    /// Asks an account for a page of its stored private conversation with `with` (one
    /// nickname, or the others of a group): up to `limit` messages with an id below `before`
    /// (the newest without), answered by [`ServerFrame::PrivateHistory`]. Since 6.
    PrivateHistory {
        /// The other people of the conversation.
        with: Vec<String>,
        /// Only messages older than this id.
        before: Option<MessageId>,
        /// At most this many (1 to 500).
        limit: u32,
    },
    /// Searches the stored messages this user may read (its rooms, and an account's private
    /// conversations) for `pattern`, a regular expression whose words the server looks up in
    /// its index, newest first, below `before`; answered by [`ServerFrame::Found`]. Since 6.
    Search {
        /// The regular expression (at most [`MAX_SEARCH_PATTERN`] bytes).
        pattern: String,
        /// Only messages older than this id (where the previous answer stopped).
        before: Option<MessageId>,
        /// At most this many matches (1 to 100).
        limit: u32,
    },
    /// Asks an account for the stored messages that mention its nickname (as a word, sent by
    /// someone else, in the rooms it is in and its private conversations) since its previous
    /// login, newest first, below `before`; answered by [`ServerFrame::Mentions`]. Since 7.
    Mentions {
        /// Only messages older than this id (where the previous answer stopped).
        before: Option<MessageId>,
        /// At most this many (1 to 100).
        limit: u32,
    },
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
    /// This connection is now in a room (after `Join`, or at login for an account's rooms);
    /// the room's roster and history follow. Since 2.
    Entered {
        /// The room's name.
        room: String,
        /// Its topic; may be empty.
        topic: String,
    },
    /// This connection left a room. Since 2.
    Parted {
        /// The room's name.
        room: String,
    },
    /// Every room, answering [`ClientFrame::ListRooms`]. Since 2.
    Rooms(Vec<RoomInfo>),
    /// A room's topic was set. Since 2.
    Topic {
        /// The room.
        room: String,
        /// The topic; may be empty.
        topic: String,
        /// Who set it.
        by: String,
        /// When.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        at: Timestamp,
    },
    /// Stored messages of a room, oldest first: its recent history when the room is
    /// entered, or a page asked for with [`ClientFrame::History`]. Since 2.
    History {
        /// The room.
        room: String,
        /// The messages, oldest first, with their original ids and timestamps.
        messages: Vec<ChatMessage>,
        /// Older messages exist (ask with `before` = the first id here).
        more: bool,
    },
    /// Private messages sent to this account while it was offline, oldest first, with their
    /// original timestamps. They are kept until the client answers [`ClientFrame::AckOffline`]
    /// (delivered again at the next login otherwise). Since 2.
    Offline(Vec<ChatMessage>),
    /// A private message was stored for these registered users, who are offline: they get
    /// it when they next log in. Sent after the message's echo. Since 2.
    Queued {
        /// The message's tag.
        tag: u64,
        /// The offline recipients.
        to: Vec<String>,
    },
    /// The current nickname is now a registered account. Since 2.
    Registered {
        /// The account's nickname.
        nick: String,
    },
    /// The account's password was changed. Since 2.
    PasswordChanged,
    /// An operator's action, told to the room it concerns (to the operator and the target for
    /// the server's). Since 4.
    Moderation(ModNotice),
    /// Every ban, answering [`ClientFrame::ListBans`]. Since 4.
    Bans(Vec<BanInfo>),
    /// Someone (this connection too) changed nickname; told to everyone who shares a room with
    /// them. Since 4.
    NickChanged {
        /// The nickname before.
        old: String,
        /// The nickname now.
        new: String,
        /// When.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        at: Timestamp,
    },
    /// Someone went away (`message` is `Some`) or came back; told to everyone who shares a room
    /// with them, and after a roster for its members who are away. Since 4.
    Away {
        /// Who.
        nick: String,
        /// The away message; `None`: back.
        message: Option<String>,
    },
    /// The operators of a room among its members (room operators and server operators), after
    /// each roster and whenever they change. Since 4.
    Ops {
        /// The room.
        room: String,
        /// Their nicknames, sorted.
        ops: Vec<String>,
    },
    /// The answer to [`ClientFrame::Whois`]. Since 4.
    Whois(WhoisInfo),
    /// A message was deleted (by its author, or by an operator): clients show it as deleted.
    /// Told to the room's members, or to the people of a private message. Since 4.
    Deleted {
        /// The message's id.
        id: MessageId,
        /// Its room; `None` for a private message.
        room: Option<String>,
        /// Who deleted it; empty: it expired (its `ExpiresIn`, since 6).
        by: String,
        /// When.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        at: Timestamp,
    },
    /// The sender's offer was passed on: the transfer has this id. Since 5.
    FileOffered {
        /// The offer's tag.
        tag: u64,
        /// The transfer.
        id: TransferId,
        /// The recipient.
        to: String,
    },
    /// Someone offers you a file; answer with [`ClientFrame::FileAnswer`]. Since 5.
    FileOffer(FileInfo),
    /// The recipient accepted (start sending) or declined. Since 5.
    FileAnswer {
        /// The transfer.
        id: TransferId,
        /// Accepted.
        accept: bool,
    },
    /// A piece of an accepted transfer's content, for its recipient. Since 5.
    FileChunk {
        /// The transfer.
        id: TransferId,
        /// The bytes, following the previous chunk's.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// For the sender: the recipient has this many bytes. Since 5.
    FileAck {
        /// The transfer.
        id: TransferId,
        /// Bytes received so far.
        received: u64,
    },
    /// The transfer ended before completing: cancelled by `by` (a nickname, or `server` for
    /// a limit, a stall or a disconnection). Since 5.
    FileCancelled {
        /// The transfer.
        id: TransferId,
        /// Who cancelled it.
        by: String,
        /// Why.
        reason: String,
    },
    /// For the sender: the recipient has the whole file, verified. Since 5.
    FileDone {
        /// The transfer.
        id: TransferId,
    },
    /// A message's text was replaced (by its author, or by an operator): clients show the
    /// new text marked as edited. Told live to the room's members or the people of a private
    /// message, and after a `History` page for its messages that were edited. Since 6.
    Edited {
        /// The message's id.
        id: MessageId,
        /// Its room; `None` for a private message.
        room: Option<String>,
        /// The new text.
        text: String,
        /// Who edited it.
        by: String,
        /// When.
        #[serde(with = "chrono::serde::ts_milliseconds")]
        at: Timestamp,
    },
    /// A message's reactions, whole (an empty list: none left). Told live when they change,
    /// and after a `History` page for its messages that have some. Since 6.
    Reactions {
        /// The message's id.
        id: MessageId,
        /// Its room; `None` for a private message.
        room: Option<String>,
        /// Each emoji with who reacted with it, in the order they were first given.
        reactions: Vec<Reaction>,
    },
    /// A page of a private conversation, oldest first (answer to
    /// [`ClientFrame::PrivateHistory`]); `more`: older messages exist. Since 6.
    PrivateHistory {
        /// The other people of the conversation, as asked.
        with: Vec<String>,
        /// The messages, as they were delivered.
        messages: Vec<ChatMessage>,
        /// Whether older messages exist.
        more: bool,
    },
    /// Stored messages that match a [`ClientFrame::Search`], newest first. Since 6.
    Found {
        /// The pattern, as asked.
        pattern: String,
        /// The matches.
        messages: Vec<ChatMessage>,
        /// Where to go on (as the next `before`) for older matches; `None`: there are none.
        next: Option<MessageId>,
    },
    /// Stored messages that mention the account, newest first (answer to
    /// [`ClientFrame::Mentions`]). Since 7.
    Mentions {
        /// The account's previous login, since when they are listed; `None`: it had none
        /// recorded (every mention since the account exists is listed).
        #[serde(with = "chrono::serde::ts_milliseconds_option")]
        since: Option<Timestamp>,
        /// The messages.
        messages: Vec<ChatMessage>,
        /// Where to go on (as the next `before`) for older ones; `None`: there are none.
        next: Option<MessageId>,
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
    /// The nickname (or one that looks the same) is a registered account's: log in with its
    /// password to use it. Since 2.
    Registered,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug_output_and_encode_as_plain_strings() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            nick: "alice".into(),
            client: "test".into(),
            password: Some("hunter22".into()),
        };
        let register = ClientFrame::Register {
            password: "hunter22".into(),
        };
        for shown in [
            format!("{hello:?}"),
            format!("{:?}", ClientFrame::Hello(hello.clone())),
            format!("{register:?}"),
        ] {
            assert!(!shown.contains("hunter22"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let mut as_password = bytes::BytesMut::new();
        crate::codec::encode_into(&Password("hunter22".into()), &mut as_password).expect("encode");
        let mut as_string = bytes::BytesMut::new();
        crate::codec::encode_into("hunter22", &mut as_string).expect("encode");
        assert_eq!(as_password, as_string);
    }
}
