//! Moderation and presence (since 4): operators' actions, bans, nickname changes, away
//! messages and `whois`.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// What an operator did.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModAction {
    /// Put out of a room, or off the server when `room` is `None`.
    Kick,
    /// Banned from the server.
    Ban,
    /// A ban was lifted.
    Unban,
    /// May read but not speak (in a room, or anywhere when `room` is `None`).
    Mute,
    /// May speak again.
    Unmute,
    /// Made an operator (of a room, or of the server when `room` is `None`).
    Op,
    /// No longer an operator.
    Deop,
    /// Only the room's operators may set its topic now.
    LockTopic,
    /// Every member may set the room's topic again.
    UnlockTopic,
}

impl ModAction {
    /// Its name in logs and JSON: `kick`, `ban`, `unban`, `mute`, `unmute`, `op`, `deop`,
    /// `lock_topic`, `unlock_topic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModAction::Kick => "kick",
            ModAction::Ban => "ban",
            ModAction::Unban => "unban",
            ModAction::Mute => "mute",
            ModAction::Unmute => "unmute",
            ModAction::Op => "op",
            ModAction::Deop => "deop",
            ModAction::LockTopic => "lock_topic",
            ModAction::UnlockTopic => "unlock_topic",
        }
    }

    /// The past-tense verb, for notices ("alice kicked bob").
    pub fn verb(self) -> &'static str {
        match self {
            ModAction::Kick => "kicked",
            ModAction::Ban => "banned",
            ModAction::Unban => "unbanned",
            ModAction::Mute => "muted",
            ModAction::Unmute => "unmuted",
            ModAction::Op => "made an operator:",
            ModAction::Deop => "removed an operator:",
            ModAction::LockTopic => "locked the topic of",
            ModAction::UnlockTopic => "unlocked the topic of",
        }
    }
}

/// An operator's action, as the people it concerns are told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModNotice {
    /// What was done.
    pub action: ModAction,
    /// The operator who did it.
    pub by: String,
    /// Whom (a nickname, an address or an account) or, for the topic lock, the room.
    pub target: String,
    /// The room it applies to; `None` for the whole server.
    pub room: Option<String>,
    /// The operator's reason; may be empty.
    pub reason: String,
    /// When it ends by itself (a ban's or a mute's end); `None`: until lifted.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub until: Option<Timestamp>,
    /// When.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: Timestamp,
}

impl ModNotice {
    /// One line for people: "alice kicked bob from #rust (spamming)".
    pub fn describe(&self) -> String {
        let mut line = format!("{} {} {}", self.by, self.action.verb(), self.target);
        if let Some(room) = &self.room
            && !matches!(self.action, ModAction::LockTopic | ModAction::UnlockTopic)
        {
            let preposition = match self.action {
                ModAction::Kick => "from",
                _ => "in",
            };
            line.push_str(&format!(" {preposition} #{room}"));
        }
        if let Some(until) = self.until {
            line.push_str(&format!(" until {}", until.format("%Y-%m-%d %H:%M UTC")));
        }
        if !self.reason.is_empty() {
            line.push_str(&format!(" ({})", self.reason));
        }
        line
    }
}

/// A ban, as `/bans` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    /// What is banned: `address 203.0.113.7`, `address 2001:db8::/64` or `account bob`.
    pub target: String,
    /// Who banned it.
    pub by: String,
    /// Why; may be empty.
    pub reason: String,
    /// Since when.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub at: Timestamp,
    /// Until when; `None`: until lifted.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub until: Option<Timestamp>,
}

/// What `whois` tells about someone online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoisInfo {
    /// Their nickname.
    pub nick: String,
    /// Logged in to the account of that nickname (a guest otherwise).
    pub account: bool,
    /// Connected through a relay.
    pub relayed: bool,
    /// A server operator.
    pub operator: bool,
    /// Online since.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub since: Timestamp,
    /// Seconds since they last sent a message (or since they connected).
    pub idle_secs: u64,
    /// Rooms both of you are in.
    pub rooms_in_common: Vec<String>,
    /// Their away message, when they are away.
    pub away: Option<String>,
}
