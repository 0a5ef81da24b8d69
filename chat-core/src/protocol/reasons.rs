//! Why things fail: a refused handshake (`Rejected`), a failed request (`ErrorFrame`), an
//! ended connection (`DisconnectReason`), and how each reaches a peer of an older version.

use serde::{Deserialize, Serialize};

use super::PROTOCOL_VERSION;
use crate::names::NickError;

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
    /// The password does not match the account. Since 2.
    BadPassword,
    /// A password was given for a nickname that has no account. Since 2.
    NoSuchAccount,
    /// The server admits only logged-in accounts (`--guests deny`). Since 2.
    GuestsNotAllowed,
    /// Accounts cannot be used through a relay. Since 2.
    NoAccountsThroughRelay,
    /// The connection is not encrypted, and the server accepts unencrypted connections only
    /// from its own machine: connect with TLS. Since 3.
    TlsRequired,
    /// The address or the account is banned (the message has the reason). Since 4.
    Banned {
        /// When the ban ends; `None`: until an operator lifts it.
        #[serde(with = "chrono::serde::ts_milliseconds_option")]
        until: Option<super::Timestamp>,
    },
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
    /// The same account logged in on another connection. Since 2.
    LoggedInElsewhere,
    /// The user left this room only (`/part`); it stays connected. Since 2.
    LeftRoom,
    /// An operator kicked the user (out of a room only, in `Left`; off the server, in `Bye`).
    /// Since 4.
    Kicked,
    /// An operator banned the user. Since 4.
    Banned,
    /// The user changed nickname (in `Left` to a peer of version 3 or older, followed by a
    /// `Joined` under the new nickname). Since 4.
    Renamed,
}

impl ErrorCode {
    /// This code as a peer speaking `version` can decode it: codes added in version 2 become
    /// `Unsupported` for a version 1 peer (the message still says what happened).
    pub fn for_version(self, version: u16) -> ErrorCode {
        match self {
            ErrorCode::NotAllowed
            | ErrorCode::Busy
            | ErrorCode::InvalidRoom(_)
            | ErrorCode::InvalidPassword
                if version < 2 =>
            {
                ErrorCode::Unsupported
            }
            other => other,
        }
    }
}

impl RejectReason {
    /// This reason as a client speaking `version` can decode it: the account refusals added
    /// in version 2 reach a version 1 client as a version mismatch (accounts need version 2),
    /// and the nickname rules added in version 3 reach older clients as the nearest older rule.
    pub fn for_version(self, version: u16) -> RejectReason {
        match self {
            RejectReason::InvalidNick(rule) => RejectReason::InvalidNick(rule.for_version(version)),
            RejectReason::TlsRequired if version < 3 => RejectReason::Malformed,
            // No older reason means "banned"; the message says it, and a client does not
            // retry a malformed handshake.
            RejectReason::Banned { .. } if version < 4 => RejectReason::Malformed,
            RejectReason::BadPassword
            | RejectReason::NoSuchAccount
            | RejectReason::GuestsNotAllowed
            | RejectReason::NoAccountsThroughRelay
                if version < 2 =>
            {
                RejectReason::VersionMismatch {
                    client: version,
                    server_min: 2,
                    server_max: PROTOCOL_VERSION,
                }
            }
            other => other,
        }
    }
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
    /// The request is not allowed for this connection (registering through a relay, a
    /// nickname already registered, changing a password without being logged in). Since 2.
    NotAllowed,
    /// The server cannot store the message right now; it was not delivered: send it again.
    /// Since 2.
    Busy,
    /// The room name breaks a rule. Since 2.
    InvalidRoom(String),
    /// The password is empty or too long. Since 2.
    InvalidPassword,
}

impl DisconnectReason {
    /// This reason as a peer speaking `version` can decode it: reasons added in version 2
    /// become `ConnectionClosed` for a version 1 peer.
    pub fn for_version(self, version: u16) -> DisconnectReason {
        match self {
            DisconnectReason::LoggedInElsewhere | DisconnectReason::LeftRoom if version < 2 => {
                DisconnectReason::ConnectionClosed
            }
            // A kick out of a room (in `Left`) reads as leaving it (`bye_for_version` makes it
            // `ConnectionClosed` in a `Bye`).
            DisconnectReason::Kicked | DisconnectReason::Renamed if version < 4 => {
                if version < 2 {
                    DisconnectReason::ConnectionClosed
                } else {
                    DisconnectReason::LeftRoom
                }
            }
            DisconnectReason::Banned if version < 4 => DisconnectReason::ConnectionClosed,
            other => other,
        }
    }

    /// This reason in a `Bye` to a peer speaking `version`: a reason the peer cannot decode
    /// is `ConnectionClosed` (the `Bye`'s message says what happened).
    pub fn bye_for_version(self, version: u16) -> DisconnectReason {
        match self.for_version(version) {
            same if same == self => same,
            _ => DisconnectReason::ConnectionClosed,
        }
    }

    /// A short phrase for logs and user interfaces.
    pub fn describe(self) -> &'static str {
        match self {
            DisconnectReason::Quit => "quit",
            DisconnectReason::ConnectionClosed => "connection closed",
            DisconnectReason::ProtocolError => "protocol error",
            DisconnectReason::Flooding => "flooding",
            DisconnectReason::SendQueueExceeded => "send queue exceeded",
            DisconnectReason::ServerShutdown => "server shutting down",
            DisconnectReason::LoggedInElsewhere => "logged in elsewhere",
            DisconnectReason::LeftRoom => "left the room",
            DisconnectReason::Kicked => "kicked",
            DisconnectReason::Banned => "banned",
            DisconnectReason::Renamed => "changed nickname",
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}
