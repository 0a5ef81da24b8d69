//! A chat message: as a client sends it (`Outgoing`), where it goes (`Target`), what it says
//! (`Body`, `MessageAttr`), and as it is delivered (`ChatMessage`).

use serde::{Deserialize, Serialize};

use super::{MessageId, Timestamp};

/// A message as a client sends it.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
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
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Everyone in a room.
    Room(String),
    /// Only these users (a private message).
    Users(Vec<String>),
}

impl Target {
    /// The room, for a public message.
    pub fn room(&self) -> Option<&str> {
        match self {
            Target::Room(room) => Some(room),
            Target::Users(_) => None,
        }
    }

    /// The recipients, for a private message (empty for a public one).
    pub fn users(&self) -> &[String] {
        match self {
            Target::Room(_) => &[],
            Target::Users(users) => users,
        }
    }

    /// The room or the recipients, flattened for display: exactly one of the two is `Some`.
    pub fn into_parts(self) -> (Option<String>, Option<Vec<String>>) {
        match self {
            Target::Room(room) => (Some(room), None),
            Target::Users(users) => (None, Some(users)),
        }
    }
}

/// The content of a message.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
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

    /// Whether it is an action (`/me`).
    pub fn is_action(&self) -> bool {
        matches!(self, Body::Action(_))
    }

    /// The text, and whether it is an action, flattened for display.
    pub fn into_parts(self) -> (String, bool) {
        match self {
            Body::Text(text) => (text, false),
            Body::Action(text) => (text, true),
        }
    }
}

/// Optional attributes of a message. New kinds are added at the end.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageAttr {
    /// The message answers the message with this id.
    ReplyTo(MessageId),
    /// The message expires this many seconds after its timestamp (at most
    /// [`MAX_EXPIRY_SECS`]): since 6 the server deletes it then, from the store and from every
    /// client (`Deleted` with an empty `by`); older clients hide it themselves.
    ExpiresIn(u32),
}

/// The longest life an expiring message may ask for: 30 days.
pub const MAX_EXPIRY_SECS: u32 = 30 * 24 * 3600;
/// The longest reaction, in bytes of UTF-8 (an emoji with its modifiers and joiners).
pub const MAX_REACTION_LEN: usize = 32;
/// The most different reactions one message may have.
pub const MAX_REACTIONS: usize = 20;

/// The longest pattern a server search takes, in bytes.
pub const MAX_SEARCH_PATTERN: usize = 256;

/// The most matches one server search answers with.
pub const MAX_SEARCH_RESULTS: u32 = 100;

/// One emoji given to a message, with who gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Who reacted with it (nicknames), in the order they did.
    pub nicks: Vec<String>,
}

impl MessageAttr {
    /// The message this one answers, among `attrs`.
    pub fn reply_to(attrs: &[MessageAttr]) -> Option<MessageId> {
        attrs.iter().find_map(|a| match a {
            MessageAttr::ReplyTo(id) => Some(*id),
            MessageAttr::ExpiresIn(_) => None,
        })
    }

    /// The seconds after which the message expires, among `attrs`.
    pub fn expires_in(attrs: &[MessageAttr]) -> Option<u32> {
        attrs.iter().find_map(|a| match a {
            MessageAttr::ExpiresIn(secs) => Some(*secs),
            MessageAttr::ReplyTo(_) => None,
        })
    }
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
