//! What the line client (`--plain`) shows: server frames turned into [`LineEvent`]s, each
//! rendered either as one human-readable line (`12:04:31 <alice> hi`, made in
//! `line_event/text.rs`) or as one JSON object. (The full-screen client's own events are
//! `tui::app::Event`.)

use chat_core::protocol::{
    ChatMessage, DisconnectReason, MessageAttr, NickChange, RoomInfo, ServerFrame, Welcome,
};
use chrono::{DateTime, Utc};

use serde::Serialize;

mod changes;
mod files;
mod text;

pub use changes::{Found, ReactionLine};

/// One thing to show the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LineEvent {
    /// Connected.
    Welcome {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        /// The address connected to.
        address: String,
        /// Server software.
        server: String,
        nick: String,
        requested_nick: String,
        /// Why the nickname differs from the requested one.
        nick_changed: Option<&'static str>,
        roster: Vec<String>,
    },
    /// A public or private message (our own included: that is the server's acknowledgement).
    Message {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        from: String,
        /// The room of a public message.
        room: Option<String>,
        /// Recipients of a private message.
        to: Option<Vec<String>>,
        text: String,
        action: bool,
        /// Sent by us.
        own: bool,
        /// Replayed from the server's history (or kept for us while we were offline), not
        /// live: `time` is when it was originally sent.
        history: bool,
        /// The id of the message it answers.
        reply_to: Option<u64>,
        /// Seconds after `time` when the server deletes it.
        expires_in: Option<u32>,
        /// The start of the message it answers, `nick: text…`, when this run saw it.
        #[serde(skip_serializing_if = "Option::is_none")]
        quote: Option<String>,
    },
    /// We are now in a room (it becomes the current room of the line client).
    Entered {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        topic: String,
    },
    /// We left a room.
    Parted {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
    },
    /// Every room (answer to `/rooms`).
    Rooms {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        rooms: Vec<RoomLine>,
    },
    /// A room's topic was set.
    Topic {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        topic: String,
        by: String,
    },
    /// The end of a page of history: whether older messages exist.
    HistoryEnd {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        count: usize,
        more: bool,
    },
    /// The end of a page of a private conversation's history (answer to `/history NICK`):
    /// how many messages it had, and whether older ones exist.
    PrivateHistoryEnd {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        with: Vec<String>,
        count: usize,
        more: bool,
    },
    /// A private message was kept for offline users.
    Queued {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        to: Vec<String>,
    },
    /// Our nickname is now a registered account.
    Registered {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        nick: String,
    },
    /// Our password was changed.
    PasswordChanged {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
    },
    /// The current room changed (`/room`, `/join`, `/part`).
    CurrentRoom {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
    },
    /// Someone joined.
    Join {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        nick: String,
        relayed: bool,
    },
    /// Someone left.
    Leave {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        nick: String,
        reason: DisconnectReason,
        message: String,
    },
    /// Answer to `/who`.
    Roster {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        users: Vec<String>,
    },
    /// A request failed.
    Error {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        message: String,
    },
    /// A message was refused by the rate limit.
    RateLimited {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        retry_after_ms: u32,
        /// The message is sent again by itself once `retry_after_ms` has passed (the line
        /// mode does so for every message it sends).
        retrying: bool,
    },
    /// The server closed the connection, or it was lost.
    Disconnected {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        reason: String,
        message: String,
    },
    /// Local help text.
    Help { lines: Vec<String> },
    /// An operator acted: `action` is `kick`, `ban`, `unban`, `mute`, `unmute`, `op`, `deop`,
    /// `lock_topic` or `unlock_topic`; `text` says it in a sentence.
    Moderation {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        action: &'static str,
        by: String,
        target: String,
        room: Option<String>,
        reason: String,
        /// When it ends by itself (RFC 3339); absent: until lifted.
        until: Option<String>,
        text: String,
    },
    /// Someone (or we) changed nickname.
    NickChanged {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        old: String,
        new: String,
    },
    /// Someone went away (`message`), or came back (none).
    Away {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        nick: String,
        message: Option<String>,
    },
    /// The operators of a room.
    Ops {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        room: String,
        ops: Vec<String>,
    },
    /// The bans (answer to `/bans`).
    Bans {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        bans: Vec<BanLine>,
    },
    /// Who someone is (answer to `/whois`).
    Whois {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        nick: String,
        account: bool,
        relayed: bool,
        operator: bool,
        #[serde(serialize_with = "millis")]
        since: DateTime<Utc>,
        idle_secs: u64,
        rooms_in_common: Vec<String>,
        away: Option<String>,
    },
    /// A message was deleted (by its author or an operator), or it expired (`expired`, and
    /// `by` is empty).
    Deleted {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        room: Option<String>,
        by: String,
        expired: bool,
    },
    /// A message's text was replaced (by its author or an operator).
    Edited {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        room: Option<String>,
        text: String,
        by: String,
    },
    /// A message's reactions, whole (empty: none left).
    Reactions {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        room: Option<String>,
        reactions: Vec<ReactionLine>,
    },
    /// The messages seen in this run that match a pattern (answer to `/search`), oldest
    /// first; or, `server`, the stored ones (answer to `/search -s`), newest first, `next`
    /// saying that `/search -s` goes on with older ones.
    Search {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        pattern: String,
        matches: Vec<Found>,
        server: bool,
        next: Option<u64>,
    },
    /// The stored messages that mentioned us since `since`, our previous login (`None`: since
    /// the account exists), newest first (answer to `/mentions`); `next`: `/mentions more`
    /// goes on with older ones.
    Mentions {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        #[serde(serialize_with = "millis_option")]
        since: Option<DateTime<Utc>>,
        matches: Vec<Found>,
        next: Option<u64>,
    },
    /// Whom we ignore (after `/ignore`, `/unignore`).
    Ignored {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        nicks: Vec<String>,
    },
    /// A file offered to us (`outgoing` false: `/accept ID` or `/decline ID`), or our offer
    /// passed on to its recipient (`outgoing` true).
    FileOffer {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        outgoing: bool,
        from: String,
        to: String,
        name: String,
        size: u64,
        sha256: Option<String>,
    },
    /// A transfer moved: `done` of `size` bytes.
    FileProgress {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        outgoing: bool,
        peer: String,
        name: String,
        done: u64,
        size: u64,
        percent: u8,
        bytes_per_sec: u64,
    },
    /// A transfer completed: sent and verified by the recipient, or received, verified and
    /// saved at `path`.
    FileDone {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: u64,
        outgoing: bool,
        peer: String,
        name: String,
        size: u64,
        path: Option<String>,
    },
    /// A transfer or an offer ended without the file (declined, cancelled, refused, damaged,
    /// lost); `id` is absent when the offer never got one.
    FileFailed {
        #[serde(serialize_with = "millis")]
        time: DateTime<Utc>,
        id: Option<u64>,
        outgoing: bool,
        peer: String,
        name: String,
        reason: String,
    },
}

/// A ban in the answer to `/bans`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BanLine {
    pub target: String,
    pub by: String,
    pub reason: String,
    /// RFC 3339; absent: until lifted.
    pub until: Option<String>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A room in the answer to `/rooms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomLine {
    pub name: String,
    pub members: u32,
    pub topic: String,
}

impl From<RoomInfo> for RoomLine {
    fn from(r: RoomInfo) -> Self {
        RoomLine {
            name: r.name,
            members: r.members,
            topic: r.topic,
        }
    }
}

impl LineEvent {
    /// A local error (not from the server), stamped now.
    pub fn error(message: impl Into<String>) -> Self {
        LineEvent::Error {
            time: Utc::now(),
            message: message.into(),
        }
    }

    /// The welcome from the server at `address`, as an event.
    pub fn welcome(w: &Welcome, address: &str) -> Self {
        LineEvent::Welcome {
            time: w.server_time,
            address: address.to_owned(),
            server: w.server.clone(),
            nick: w.nick.clone(),
            requested_nick: w.requested_nick.clone(),
            nick_changed: w.nick_change.map(|c| match c {
                NickChange::Taken => "taken",
                NickChange::Registered => "registered",
            }),
            roster: w.roster.iter().map(|u| u.nick.clone()).collect(),
        }
    }

    /// A chat message as an event; `history` marks a replayed one.
    pub fn message(m: ChatMessage, me: &str, history: bool) -> Self {
        let (room, to) = m.to.into_parts();
        let (text, action) = m.body.into_parts();
        LineEvent::Message {
            reply_to: MessageAttr::reply_to(&m.attrs),
            expires_in: MessageAttr::expires_in(&m.attrs),
            quote: None,
            time: m.at,
            id: m.id,
            own: m.from == me,
            from: m.from,
            room,
            to,
            text,
            action,
            history,
        }
    }

    /// Turns a server frame into the events it shows (none for frames not shown).
    pub fn from_frame(frame: ServerFrame, me: &str) -> Vec<Self> {
        let now = Utc::now();
        vec![match frame {
            ServerFrame::Message(m) => LineEvent::message(m, me, false),
            ServerFrame::Joined { room, user, at } => LineEvent::Join {
                time: at,
                room,
                nick: user.nick,
                relayed: user.relayed,
            },
            ServerFrame::Left {
                room,
                nick,
                reason,
                message,
                at,
            } => LineEvent::Leave {
                time: at,
                room,
                nick,
                reason,
                message,
            },
            ServerFrame::Roster { room, users } => LineEvent::Roster {
                time: now,
                room,
                users: users.into_iter().map(|u| u.nick).collect(),
            },
            ServerFrame::Error(e) => LineEvent::Error {
                time: now,
                message: e.message,
            },
            ServerFrame::RateLimited { retry_after_ms, .. } => LineEvent::RateLimited {
                time: now,
                retry_after_ms,
                retrying: false,
            },
            ServerFrame::Bye { reason, message } => LineEvent::Disconnected {
                time: now,
                reason: reason.describe().to_owned(),
                message,
            },
            ServerFrame::Rejected(r) => LineEvent::Disconnected {
                time: now,
                reason: "rejected".to_owned(),
                message: r.message,
            },
            ServerFrame::Welcome(w) => LineEvent::welcome(&w, ""),
            ServerFrame::Pong { .. } => return Vec::new(),
            // The file agent's (`crate::files`), which never passes them on.
            ServerFrame::FileOffered { .. }
            | ServerFrame::FileOffer(_)
            | ServerFrame::FileAnswer { .. }
            | ServerFrame::FileChunk { .. }
            | ServerFrame::FileAck { .. }
            | ServerFrame::FileCancelled { .. }
            | ServerFrame::FileDone { .. } => return Vec::new(),
            ServerFrame::Entered { room, topic } => LineEvent::Entered {
                time: now,
                room,
                topic,
            },
            ServerFrame::Parted { room } => LineEvent::Parted { time: now, room },
            ServerFrame::Rooms(rooms) => LineEvent::Rooms {
                time: now,
                rooms: rooms.into_iter().map(RoomLine::from).collect(),
            },
            ServerFrame::Topic {
                room,
                topic,
                by,
                at,
            } => LineEvent::Topic {
                time: at,
                room,
                topic,
                by,
            },
            ServerFrame::History {
                room,
                messages,
                more,
            } => {
                let count = messages.len();
                let end = LineEvent::HistoryEnd {
                    time: now,
                    room,
                    count,
                    more,
                };
                return earlier(messages, me, end);
            }
            ServerFrame::Offline(messages) => {
                return messages
                    .into_iter()
                    .map(|m| LineEvent::message(m, me, true))
                    .collect();
            }
            ServerFrame::PrivateHistory {
                with,
                messages,
                more,
            } => {
                let count = messages.len();
                let end = LineEvent::PrivateHistoryEnd {
                    time: now,
                    with,
                    count,
                    more,
                };
                return earlier(messages, me, end);
            }
            ServerFrame::Queued { to, .. } => LineEvent::Queued { time: now, to },
            ServerFrame::Registered { nick } => LineEvent::Registered { time: now, nick },
            ServerFrame::PasswordChanged => LineEvent::PasswordChanged { time: now },
            ServerFrame::Moderation(n) => LineEvent::Moderation {
                time: n.at,
                action: n.action.as_str(),
                text: n.describe(),
                by: n.by,
                target: n.target,
                room: n.room,
                reason: n.reason,
                until: n.until.map(rfc3339),
            },
            ServerFrame::Bans(bans) => LineEvent::Bans {
                time: now,
                bans: bans
                    .into_iter()
                    .map(|b| BanLine {
                        target: b.target,
                        by: b.by,
                        reason: b.reason,
                        until: b.until.map(rfc3339),
                    })
                    .collect(),
            },
            ServerFrame::NickChanged { old, new, at } => {
                LineEvent::NickChanged { time: at, old, new }
            }
            ServerFrame::Away { nick, message } => LineEvent::Away {
                time: now,
                nick,
                message,
            },
            ServerFrame::Ops { room, ops } => LineEvent::Ops {
                time: now,
                room,
                ops,
            },
            ServerFrame::Deleted { id, room, by, at } => LineEvent::Deleted {
                time: at,
                id,
                room,
                expired: by.is_empty(),
                by,
            },
            frame @ (ServerFrame::Edited { .. }
            | ServerFrame::Reactions { .. }
            | ServerFrame::Found { .. }
            | ServerFrame::Mentions { .. }) => {
                return LineEvent::from_change(frame, now).into_iter().collect();
            }
            ServerFrame::Whois(w) => LineEvent::Whois {
                time: now,
                nick: w.nick,
                account: w.account,
                relayed: w.relayed,
                operator: w.operator,
                since: w.since,
                idle_secs: w.idle_secs,
                rooms_in_common: w.rooms_in_common,
                away: w.away,
            },
        }]
    }

    /// One JSON object (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"message\":\"{e}\"}}"))
    }
}

/// A page of history's messages, marked earlier, then `end`.
fn earlier(messages: Vec<ChatMessage>, me: &str, end: LineEvent) -> Vec<LineEvent> {
    let mut events: Vec<LineEvent> = messages
        .into_iter()
        .map(|m| LineEvent::message(m, me, true))
        .collect();
    events.push(end);
    events
}

fn millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn millis_option<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => millis(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests;
