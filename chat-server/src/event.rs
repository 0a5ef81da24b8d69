//! The event record: one type describing everything that happens on the server. The hub
//! produces each record once; the message log writes it as one JSON line (and the monitor
//! will stream the same records).

use std::sync::Arc;

use chat_core::protocol::{ChatMessage, DisconnectReason};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::stats::StatsSnapshot;

/// One thing that happened, with its sequence number and time.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Position in the server's event stream, starting at 1, without gaps.
    pub seq: u64,
    /// When it happened (UTC, millisecond precision in JSON).
    #[serde(serialize_with = "rfc3339_millis")]
    pub ts: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialized with a `"kind"` field naming the variant in snake_case.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A public or private message was accepted and delivered: the message's own record,
    /// shared with the fan-out, the room's recent history and the store. Written as its id,
    /// `from`, `room` (a public message) or `to` (the recipients of a private one), `action`
    /// (for `/me`, only when true) and `text`.
    Message(#[serde(serialize_with = "message_fields")] SharedMessage),
    /// A user completed the handshake.
    Join {
        /// Assigned nickname.
        nick: String,
        /// Real address (the guest's, for relayed users).
        addr: String,
        /// Connected through a relay.
        relayed: bool,
        /// The relay's own address, for a relayed guest: whoever vouched for `addr`.
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<String>,
        /// Client software.
        client: String,
    },
    /// The server assigned a nickname other than the one asked for.
    NickChanged {
        /// Asked for.
        requested: String,
        /// Assigned.
        nick: String,
        /// Why.
        reason: &'static str,
    },
    /// A user quit.
    Leave {
        /// Nickname.
        nick: String,
        /// Address.
        addr: String,
        /// Quit message.
        message: String,
    },
    /// A user's connection ended without a quit: closed, failed, kicked, or server shutdown.
    Disconnect {
        /// Nickname.
        nick: String,
        /// Address.
        addr: String,
        /// Why, written as a short phrase (`connection closed`, `protocol error`,
        /// `flooding`, ...).
        #[serde(serialize_with = "described")]
        reason: DisconnectReason,
        /// Detail.
        message: String,
    },
    /// A connection was refused during the handshake.
    Rejected {
        /// Address (the guest's real one if a relay vouched for it).
        addr: String,
        /// The nickname asked for, if the Hello got that far.
        #[serde(skip_serializing_if = "Option::is_none")]
        nick: Option<String>,
        /// Why.
        reason: String,
    },
    /// A user went over its rate limit and was muted.
    RateLimited {
        /// Nickname.
        nick: String,
        /// Address.
        addr: String,
        /// How long the mute lasts, in milliseconds.
        retry_after_ms: u64,
    },
    /// Periodic counters.
    Stats(StatsSnapshot),
    /// A user entered a room other than the lobby (by `/join`, or restored at login).
    RoomJoin {
        /// Nickname.
        nick: String,
        /// The room.
        room: String,
    },
    /// A user left a room (`/part`).
    RoomPart {
        /// Nickname.
        nick: String,
        /// The room.
        room: String,
    },
    /// A room's topic was set.
    Topic {
        /// Who set it.
        nick: String,
        /// The room.
        room: String,
        /// The topic; may be empty.
        topic: String,
    },
    /// An account was registered or its password changed (once stored).
    Account {
        /// The account's nickname.
        nick: String,
        /// `registered` or `password changed`.
        change: &'static str,
    },
    /// An operator acted: kick, ban, unban, mute, unmute, op, deop, lock or unlock a topic
    /// (also for bans that `chat-server admin` lifted: `by` is `admin`).
    Moderation {
        /// The operator.
        by: String,
        /// `kick`, `ban`, `unban`, `mute`, `unmute`, `op`, `deop`, `lock_topic`,
        /// `unlock_topic`.
        action: &'static str,
        /// Whom: a nickname, an address or an account (the room, for a topic lock).
        target: String,
        /// The room; absent for the whole server.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The operator's reason; may be empty.
        reason: String,
        /// When it ends by itself; absent: until lifted.
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "rfc3339_millis_option"
        )]
        until: Option<DateTime<Utc>>,
    },
    /// A user changed nickname (`/nick`).
    Renamed {
        /// The nickname before.
        old: String,
        /// The nickname now.
        new: String,
    },
    /// A message was deleted (its text is gone from the store; earlier records keep it).
    Deleted {
        /// Who deleted it: its author or an operator; empty: it expired.
        by: String,
        /// The message's id.
        id: u64,
        /// Its author.
        from: String,
        /// Its room; absent for a private message.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A message's text was replaced (the store keeps the new text only).
    Edited {
        /// Who edited it: its author or an operator.
        by: String,
        /// The message's id.
        id: u64,
        /// Its author.
        from: String,
        /// Its room; absent for a private message.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The new text.
        text: String,
    },
    /// Someone reacted to a message, or took their reaction back.
    Reacted {
        /// Who.
        by: String,
        /// The message's id.
        id: u64,
        /// Its author.
        from: String,
        /// Its room; absent for a private message.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The emoji.
        emoji: String,
        /// Added (true) or taken back.
        added: bool,
    },
    /// A user went away (with a message) or came back (no message).
    Away {
        /// Nickname.
        nick: String,
        /// The away message; absent: back.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A file transfer's step: offered, accepted, declined, done (verified by its recipient)
    /// or cancelled; its name, size and hash, never its content.
    File {
        /// `offer`, `accepted`, `declined`, `done` or `cancelled`.
        action: &'static str,
        /// The transfer.
        id: u64,
        /// The sender.
        from: String,
        /// The recipient.
        to: String,
        /// The file's name as offered.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Its SHA-256, in hexadecimal.
        sha256: String,
        /// Who cancelled it and why (`cancelled` only).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A chat message as the hub accepted it, shared by every sink that takes it: the fan-out
/// encodes it, the room keeps it among its recent messages, the store writes it, the sender's
/// echo and the event record refer to it. Its text is never copied after it is decoded.
pub type SharedMessage = Arc<ChatMessage>;

/// The fields of a message's record, borrowed from the message.
#[derive(Serialize)]
struct MessageFields<'a> {
    id: u64,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    to: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    action: bool,
    text: &'a str,
}

fn described<S: Serializer>(reason: &DisconnectReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.describe())
}

fn message_fields<S: Serializer>(m: &SharedMessage, s: S) -> Result<S::Ok, S::Error> {
    MessageFields {
        id: m.id,
        from: &m.from,
        room: m.to.room(),
        to: m.to.users(),
        action: m.body.is_action(),
        text: m.body.text(),
    }
    .serialize(s)
}

fn rfc3339_millis_option<S: Serializer>(
    ts: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => rfc3339_millis(ts, s),
        None => s.serialize_none(),
    }
}

/// Records are shared between sinks without copying.
pub type SharedEvent = Arc<Event>;

fn rfc3339_millis<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::protocol::{Body, Target};
    use chrono::TimeZone;

    #[test]
    fn json_shape() {
        let ev = Event {
            seq: 7,
            ts: Utc
                .with_ymd_and_hms(2026, 11, 21, 12, 4, 31)
                .single()
                .expect("valid time"),
            kind: EventKind::Message(Arc::new(ChatMessage {
                id: 3,
                at: Utc::now(),
                from: "alice".into(),
                to: Target::Users(vec!["bob".into()]),
                body: Body::Text("psst".into()),
                attrs: Vec::new(),
                tag: Some(9),
            })),
        };
        assert_eq!(
            serde_json::to_string(&ev).expect("json"),
            r#"{"seq":7,"ts":"2026-11-21T12:04:31.000Z","kind":"message","id":3,"from":"alice","to":["bob"],"text":"psst"}"#
        );
    }
}
