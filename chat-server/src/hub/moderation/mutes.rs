//! Mutes: who may not speak, where, until when.

use std::collections::HashMap;

use chat_core::protocol::{ModAction, Timestamp};
use chrono::{TimeDelta, Utc};

use super::Act;
use crate::bans::{self};
use crate::hub::Hub;
use crate::hub::conn::ConnId;

/// Most mutes kept at once (expired ones are dropped first).
const MAX_MUTES: usize = 10_000;

/// Who may not speak: by room key (`None`: anywhere) and identity (an account or an address,
/// [`Member::identity`](super::model::Member::identity)), so that a new nickname or connection
/// does not escape it.
#[derive(Debug, Default)]
pub(in crate::hub) struct Mutes {
    by: HashMap<(Option<String>, String), Muted>,
}

#[derive(Debug, Clone)]
struct Muted {
    by: String,
    until: Option<Timestamp>,
    reason: String,
}

impl Mutes {
    fn is_empty(&self) -> bool {
        self.by.is_empty()
    }

    /// Why `identity` may not speak in room `key` (or, for `None`, in private), if it may not.
    fn refusal(&mut self, identity: &str, room: Option<&str>, now: Timestamp) -> Option<String> {
        // The room's mute first, then the server-wide one.
        let scopes = room.map(|r| Some(r.to_owned())).into_iter().chain([None]);
        for scope in scopes {
            let at = (scope, identity.to_owned());
            let Some(muted) = self.by.get(&at) else {
                continue;
            };
            if muted.until.is_some_and(|until| until <= now) {
                self.by.remove(&at);
                continue;
            }
            let muted = muted.clone();
            let place = match &at.0 {
                Some(room) => format!("in #{room}"),
                None => "on this server".to_owned(),
            };
            let mut line = format!("you are muted {place} by {}", muted.by);
            match muted.until {
                Some(until) => {
                    line.push_str(&format!(" for {} more", bans::time_left(until - now)))
                }
                None => line.push_str(" until an operator unmutes you"),
            }
            if !muted.reason.is_empty() {
                line.push_str(&format!(" ({})", muted.reason));
            }
            return Some(line);
        }
        None
    }

    fn insert(&mut self, scope: Option<String>, identity: String, muted: Muted) -> bool {
        let now = Utc::now();
        if self.by.len() >= MAX_MUTES {
            self.by.retain(|_, m| m.until.is_none_or(|u| u > now));
        }
        if self.by.len() >= MAX_MUTES {
            return false;
        }
        self.by.insert((scope, identity), muted);
        true
    }

    fn remove(&mut self, scope: Option<String>, identity: String) -> bool {
        self.by.remove(&(scope, identity)).is_some()
    }
}

impl Hub {
    /// The scope of a mute `conn` asks for: a room (as its key and name) or the server, if
    /// `conn` may mute there.
    pub(super) fn mute_scope(
        &mut self,
        conn: ConnId,
        room: Option<String>,
    ) -> Option<Option<(String, String)>> {
        match room {
            Some(r) => self.moderated_room(conn, &r, "mute").map(Some),
            None => self
                .require_server_op(conn, "mute on the whole server")
                .then_some(None),
        }
    }

    pub(super) fn mute(
        &mut self,
        conn: ConnId,
        room: Option<String>,
        nick: &str,
        duration: Option<u64>,
        reason: String,
    ) {
        let Some(scope) = self.mute_scope(conn, room) else {
            return;
        };
        let Some(target) = self.target(conn, nick) else {
            return;
        };
        if !self.may_act_on(conn, target, "mute") {
            return;
        }
        let now = Utc::now();
        let until = duration.map(|secs| now + TimeDelta::seconds(i64::try_from(secs).unwrap_or(0)));
        let by = self.nick_of(conn);
        let victim = self.nick_of(target);
        let identity = self
            .clients
            .get(&target)
            .map(|m| m.identity())
            .unwrap_or_default();
        let muted = Muted {
            by: by.clone(),
            until,
            reason: reason.clone(),
        };
        if !self
            .mutes
            .insert(scope.as_ref().map(|(k, _)| k.clone()), identity, muted)
        {
            self.refuse(conn, format!("too many people are muted ({MAX_MUTES})"));
            return;
        }
        let (to, place) = match &scope {
            Some((key, name)) => (self.members_of(key), format!("in #{name}")),
            None => (vec![conn, target], "on this server".to_owned()),
        };
        let fallback = format!("{by} muted you {place}: you can read but not speak");
        let act = Act {
            action: ModAction::Mute,
            target: victim,
            room: scope.map(|(_, name)| name),
            reason,
            until,
        };
        self.announce(conn, act, &to, Some(fallback));
    }

    pub(super) fn unmute(&mut self, conn: ConnId, room: Option<String>, nick: &str) {
        let Some(scope) = self.mute_scope(conn, room) else {
            return;
        };
        let Some(target) = self.target(conn, nick) else {
            return;
        };
        let victim = self.nick_of(target);
        let identity = self
            .clients
            .get(&target)
            .map(|m| m.identity())
            .unwrap_or_default();
        if !self
            .mutes
            .remove(scope.as_ref().map(|(k, _)| k.clone()), identity)
        {
            self.refuse(conn, format!("{victim} is not muted there"));
            return;
        }
        let to = match &scope {
            Some((key, _)) => self.members_of(key),
            None => vec![conn, target],
        };
        let act = Act {
            action: ModAction::Unmute,
            target: victim,
            room: scope.map(|(_, name)| name),
            reason: String::new(),
            until: None,
        };
        self.announce(conn, act, &to, Some("you may speak again".to_owned()));
    }

    /// Why `conn` may not send to room `room` (a key; `None`: a private message), if it is
    /// muted.
    pub(in crate::hub) fn muted(&mut self, conn: ConnId, room: Option<&str>) -> Option<String> {
        if self.mutes.is_empty() {
            return None;
        }
        let identity = self.clients.get(&conn)?.identity();
        self.mutes.refusal(&identity, room, Utc::now())
    }
}
