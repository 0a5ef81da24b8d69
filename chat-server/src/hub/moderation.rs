//! Moderation: who is an operator (of the server, an account flag; of a room, its creator and
//! whoever its operators add), and what operators do: kick, ban, mute, grant and revoke
//! operator, lock a room's topic. Every action is told to the room it concerns (to the
//! operator and the target for the server's), recorded as an event, and stored when it is to
//! outlive the connection (bans, operators, topic locks; mutes are kept in memory).

use std::collections::HashMap;

use chat_core::names;
use chat_core::protocol::{
    ClientFrame, DEFAULT_ROOM, DisconnectReason, ErrorCode, ModAction, ModNotice, ServerFrame,
    Timestamp,
};
use chrono::{TimeDelta, Utc};

use super::Hub;
use super::conn::ConnId;
use super::fanout::encode;
use super::model::room_key;
use crate::bans::{self, Ban};
use crate::event::EventKind;
use crate::store::{AdminAction, AdminEvent, ModWrite, Moderation, Write};

/// Most mutes kept at once (expired ones are dropped first).
const MAX_MUTES: usize = 10_000;

/// Who may not speak: by room key (`None`: anywhere) and identity (an account or an address,
/// [`Member::identity`](super::model::Member::identity)), so that a new nickname or connection
/// does not escape it.
#[derive(Debug, Default)]
pub(super) struct Mutes {
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
        let scopes = [room.map(str::to_owned), None];
        for scope in scopes.into_iter().take(if room.is_some() { 2 } else { 1 }) {
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

/// An action's details before it is told.
struct Act {
    action: ModAction,
    target: String,
    room: Option<String>,
    reason: String,
    until: Option<Timestamp>,
}

impl Hub {
    /// Carries out a moderation or presence request from `conn`.
    pub(super) fn moderate(&mut self, conn: ConnId, frame: ClientFrame) {
        match frame {
            ClientFrame::Kick { room, nick, reason } => self.kick(conn, room, &nick, reason),
            ClientFrame::Ban {
                target,
                duration_secs,
                reason,
            } => self.ban(conn, &target, duration_secs, reason),
            ClientFrame::Unban { target } => self.unban(conn, &target),
            ClientFrame::ListBans => self.list_bans(conn),
            ClientFrame::Mute {
                room,
                nick,
                duration_secs,
                reason,
            } => self.mute(conn, room, &nick, duration_secs, reason),
            ClientFrame::Unmute { room, nick } => self.unmute(conn, room, &nick),
            ClientFrame::Op { room, nick, grant } => self.op(conn, room, &nick, grant),
            ClientFrame::LockTopic { room, locked } => self.lock_topic(conn, &room, locked),
            ClientFrame::Nick { nick } => self.rename(conn, &nick),
            ClientFrame::Away { message } => self.set_away(conn, message),
            ClientFrame::Whois { nick } => self.whois(conn, &nick),
            _ => {}
        }
    }

    /// Restores the stored moderation state (at start, and after `chat-server admin`).
    pub(super) fn restore_moderation(&mut self, stored: Moderation) {
        self.operators = stored.operators.into_iter().collect();
        for room in self.rooms.values_mut() {
            room.ops.clear();
            room.topic_locked = false;
        }
        for (room, account) in stored.room_ops {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.ops.insert(account);
            }
        }
        for key in stored.locked_topics {
            if let Some(r) = self.rooms.get_mut(&key) {
                r.topic_locked = true;
            }
        }
        self.bans.replace(stored.bans);
        self.admin_seen = stored.admin_seen;
    }

    /// A server operator: logged in to an account with the flag.
    pub(super) fn server_op(&self, conn: ConnId) -> bool {
        self.clients
            .get(&conn)
            .and_then(|m| m.account.as_ref())
            .is_some_and(|key| self.operators.contains(key))
    }

    /// An operator of room `key` (every server operator is).
    pub(super) fn room_op(&self, conn: ConnId, key: &str) -> bool {
        if self.server_op(conn) {
            return true;
        }
        let Some(room) = self.rooms.get(key) else {
            return false;
        };
        room.guest_ops.contains(&conn)
            || self
                .clients
                .get(&conn)
                .and_then(|m| m.account.as_ref())
                .is_some_and(|key| room.ops.contains(key))
    }

    fn require_server_op(&mut self, conn: ConnId, what: &str) -> bool {
        let allowed = self.server_op(conn);
        if !allowed {
            self.refuse(conn, format!("only server operators may {what}"));
        }
        allowed
    }

    fn refuse(&mut self, conn: ConnId, message: String) {
        self.error(conn, None, ErrorCode::NotAllowed, message);
    }

    /// The online member called `nick`, or `conn` told there is none.
    pub(super) fn target(&mut self, conn: ConnId, nick: &str) -> Option<ConnId> {
        let found = self.nick_online(nick);
        if found.is_none() {
            let code = ErrorCode::NoSuchUser(vec![nick.to_owned()]);
            self.error(conn, None, code, format!("nobody online is called {nick}"));
        }
        found
    }

    fn nick_of(&self, conn: ConnId) -> String {
        self.clients
            .get(&conn)
            .map(|m| m.nick.clone())
            .unwrap_or_default()
    }

    /// Checks that `actor` may act on `target` in a room (or on the server for `None`): not
    /// on themselves, and on a server operator only as one.
    fn may_act_on(&mut self, actor: ConnId, target: ConnId, what: &str) -> bool {
        if actor == target {
            self.refuse(actor, format!("you cannot {what} yourself"));
            return false;
        }
        if self.server_op(target) && !self.server_op(actor) {
            let nick = self.nick_of(target);
            self.refuse(actor, format!("{nick} is a server operator"));
            return false;
        }
        true
    }

    /// Tells an action to `to` (those of version 4; older ones get `fallback`, if any), and
    /// records it.
    fn announce(&mut self, by: ConnId, act: Act, to: &[ConnId], fallback: Option<String>) {
        let now = Utc::now();
        let by = self.nick_of(by);
        let notice = ModNotice {
            action: act.action,
            by: by.clone(),
            target: act.target.clone(),
            room: act.room.clone(),
            reason: act.reason.clone(),
            until: act.until,
            at: now,
        };
        let modern = encode(&ServerFrame::Moderation(notice));
        for &conn in to {
            let Some(m) = self.clients.get(&conn) else {
                continue;
            };
            if m.caps.moderation() {
                if let Some(bytes) = modern.clone() {
                    let outbox = m.outbox.clone();
                    self.fanout.queue(&self.rooms, conn, &outbox, bytes);
                }
            } else if let Some(message) = &fallback {
                self.error(conn, None, ErrorCode::NotAllowed, message.clone());
            }
        }
        let action = match act.action {
            ModAction::Kick => "kick",
            ModAction::Ban => "ban",
            ModAction::Unban => "unban",
            ModAction::Mute => "mute",
            ModAction::Unmute => "unmute",
            ModAction::Op => "op",
            ModAction::Deop => "deop",
            ModAction::LockTopic => "lock_topic",
            ModAction::UnlockTopic => "unlock_topic",
        };
        let kind = EventKind::Moderation {
            by,
            action,
            target: act.target,
            room: act.room,
            reason: act.reason,
            until: act.until,
        };
        self.sinks.record(kind, now);
    }

    /// The members of room `key`.
    pub(super) fn members_of(&self, key: &str) -> Vec<ConnId> {
        self.rooms
            .get(key)
            .map(|r| r.members.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The room `conn` names, as a key and a name, if `conn` may moderate it; `None` (with
    /// `conn` told) otherwise.
    fn moderated_room(&mut self, conn: ConnId, room: &str, what: &str) -> Option<(String, String)> {
        let key = room_key(room);
        let Some(name) = self.rooms.get(&key).map(|r| r.name.clone()) else {
            let message = format!("there is no room named {room:?}");
            self.error(conn, None, ErrorCode::NoSuchRoom(room.to_owned()), message);
            return None;
        };
        if !self.room_op(conn, &key) {
            self.refuse(conn, format!("only operators of #{name} may {what}"));
            return None;
        }
        Some((key, name))
    }

    fn kick(&mut self, conn: ConnId, room: Option<String>, nick: &str, reason: String) {
        // The lobby cannot be left: a kick from it is a kick off the server.
        let room = room.filter(|r| room_key(r) != DEFAULT_ROOM);
        let permitted = match &room {
            Some(r) => self.moderated_room(conn, r, "kick").map(Some),
            None if self.room_op(conn, DEFAULT_ROOM) => Some(None),
            None => {
                self.refuse(
                    conn,
                    "only server operators may kick someone off the server".into(),
                );
                None
            }
        };
        let (Some(place), Some(target)) = (permitted, self.target(conn, nick)) else {
            return;
        };
        if !self.may_act_on(conn, target, "kick") {
            return;
        }
        let by = self.nick_of(conn);
        let victim = self.nick_of(target);
        let because = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        match place {
            Some((key, name)) => {
                if !self.rooms.get(&key).is_some_and(|r| r.has(target)) {
                    self.refuse(conn, format!("{victim} is not in #{name}"));
                    return;
                }
                let act = Act {
                    action: ModAction::Kick,
                    target: victim,
                    room: Some(name.clone()),
                    reason,
                    until: None,
                };
                let fallback = format!("{by} kicked you from #{name}{because}");
                self.announce(conn, act, &self.members_of(&key), Some(fallback));
                self.leave_room(
                    target,
                    &key,
                    DisconnectReason::Kicked,
                    format!("kicked by {by}{because}"),
                );
            }
            None => {
                let act = Act {
                    action: ModAction::Kick,
                    target: victim,
                    room: None,
                    reason,
                    until: None,
                };
                self.announce(conn, act, &[conn, target], None);
                let message = format!("kicked by {by}{because}");
                self.remove(target, DisconnectReason::Kicked, message, true);
            }
        }
    }

    /// What a ban request names: its targets, in canonical form, or `None` (with `conn` told).
    fn ban_targets(&mut self, conn: ConnId, given: &str) -> Option<Vec<String>> {
        if let Some(target) = bans::parse_target(given) {
            return Some(vec![target]);
        }
        if let Some(victim) = self.nick_online(given) {
            if !self.may_act_on(conn, victim, "ban") {
                return None;
            }
            let m = self.clients.get(&victim)?;
            let mut targets = vec![bans::address_target(m.addr.ip())];
            targets.extend(m.account.as_deref().map(bans::account_target));
            return Some(targets);
        }
        if !self.accounts.unreserved(given) {
            return Some(vec![bans::account_target(&names::nick_keys(given).folded)]);
        }
        let code = ErrorCode::NoSuchUser(vec![given.to_owned()]);
        let message = format!(
            "{given} is neither online, nor an account, nor an address (203.0.113.7, \
             2001:db8::1, account:NAME)"
        );
        self.error(conn, None, code, message);
        None
    }

    fn ban(&mut self, conn: ConnId, given: &str, duration: Option<u64>, reason: String) {
        if !self.require_server_op(conn, "ban") {
            return;
        }
        let Some(targets) = self.ban_targets(conn, given) else {
            return;
        };
        let own = self.clients.get(&conn).map(|m| {
            let mut own = vec![bans::address_target(m.addr.ip())];
            own.extend(m.account.as_deref().map(bans::account_target));
            own
        });
        if let Some(t) = targets
            .iter()
            .find(|t| own.as_ref().is_some_and(|o| o.contains(t)))
        {
            self.refuse(conn, format!("that would ban you too ({t})"));
            return;
        }
        let now = Utc::now();
        let until = duration.map(|secs| now + TimeDelta::seconds(i64::try_from(secs).unwrap_or(0)));
        let by = self.nick_of(conn);
        for target in &targets {
            let ban = Ban {
                target: target.clone(),
                by: by.clone(),
                reason: reason.clone(),
                at: now,
                until,
            };
            if !self.bans.insert(ban.clone()) {
                let message = format!("the ban list is full ({} bans)", bans::MAX_BANS);
                self.refuse(conn, message);
                return;
            }
            self.durable.write(Write::Moderation(ModWrite::Ban(ban)));
        }
        let act = Act {
            action: ModAction::Ban,
            target: given.to_owned(),
            room: None,
            reason: reason.clone(),
            until,
        };
        let hit: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(c, m)| {
                !self.server_op(**c)
                    && self
                        .bans
                        .check(m.addr.ip(), m.account.as_deref(), now)
                        .is_some()
            })
            .map(|(c, _)| *c)
            .collect();
        let mut told = hit.clone();
        told.push(conn);
        self.announce(conn, act, &told, None);
        for victim in hit {
            let message = match self
                .clients
                .get(&victim)
                .and_then(|m| self.bans.check(m.addr.ip(), m.account.as_deref(), now))
            {
                Some(ban) => ban.refusal(now),
                None => continue,
            };
            self.remove(victim, DisconnectReason::Banned, message, true);
        }
    }

    fn list_bans(&mut self, conn: ConnId) {
        if self.require_server_op(conn, "list the bans") {
            let list = self.bans.list(Utc::now()).iter().map(Ban::info).collect();
            self.push_to(conn, &ServerFrame::Bans(list));
        }
    }

    fn unban(&mut self, conn: ConnId, given: &str) {
        if !self.require_server_op(conn, "lift bans") {
            return;
        }
        let target = bans::parse_target(given)
            .unwrap_or_else(|| bans::account_target(&names::nick_keys(given).folded));
        if self.bans.remove(&target).is_none() {
            self.refuse(
                conn,
                format!("there is no ban on {given} (/bans lists them)"),
            );
            return;
        }
        self.durable.write(Write::Moderation(ModWrite::Unban {
            target: target.clone(),
        }));
        let act = Act {
            action: ModAction::Unban,
            target,
            room: None,
            reason: String::new(),
            until: None,
        };
        self.announce(conn, act, &[conn], None);
    }

    /// The scope of a mute `conn` asks for: a room (as its key and name) or the server, if
    /// `conn` may mute there.
    fn mute_scope(
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

    fn mute(
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

    fn unmute(&mut self, conn: ConnId, room: Option<String>, nick: &str) {
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
    pub(super) fn muted(&mut self, conn: ConnId, room: Option<&str>) -> Option<String> {
        if self.mutes.is_empty() {
            return None;
        }
        let identity = self.clients.get(&conn)?.identity();
        self.mutes.refusal(&identity, room, Utc::now())
    }

    fn op(&mut self, conn: ConnId, room: Option<String>, nick: &str, grant: bool) {
        let scope = match room {
            Some(r) => match self.moderated_room(conn, &r, "name operators") {
                Some(place) => Some(place),
                None => return,
            },
            None if self.require_server_op(conn, "name server operators") => None,
            None => return,
        };
        let Some(target) = self.target(conn, nick) else {
            return;
        };
        let victim = self.nick_of(target);
        let account = self.clients.get(&target).and_then(|m| m.account.clone());
        let action = if grant {
            ModAction::Op
        } else {
            ModAction::Deop
        };
        match scope {
            Some((key, name)) => {
                let Some(r) = self.rooms.get_mut(&key).filter(|r| r.has(target)) else {
                    self.refuse(conn, format!("{victim} is not in #{name}"));
                    return;
                };
                let changed = match &account {
                    Some(a) if grant => r.ops.insert(a.clone()),
                    Some(a) => r.ops.remove(a) | r.guest_ops.remove(&target),
                    None if grant => r.guest_ops.insert(target),
                    None => r.guest_ops.remove(&target),
                };
                if !changed {
                    let already = if grant { "already" } else { "not" };
                    self.refuse(
                        conn,
                        format!("{victim} is {already} an operator of #{name}"),
                    );
                    return;
                }
                if let Some(account) = account {
                    self.durable.write(Write::Moderation(ModWrite::RoomOp {
                        room: key.clone(),
                        account,
                        grant,
                    }));
                }
                let act = Act {
                    action,
                    target: victim,
                    room: Some(name),
                    reason: String::new(),
                    until: None,
                };
                self.announce(conn, act, &self.members_of(&key), None);
                self.send_ops(&key);
            }
            None => {
                let Some(account) = account else {
                    self.refuse(
                        conn,
                        format!("{victim} is a guest: only accounts can be server operators"),
                    );
                    return;
                };
                let changed = if grant {
                    self.operators.insert(account.clone())
                } else {
                    self.operators.remove(&account)
                };
                if !changed {
                    let already = if grant { "already" } else { "not" };
                    self.refuse(conn, format!("{victim} is {already} a server operator"));
                    return;
                }
                self.durable
                    .write(Write::Moderation(ModWrite::Operator { account, grant }));
                let act = Act {
                    action,
                    target: victim,
                    room: None,
                    reason: String::new(),
                    until: None,
                };
                self.announce(conn, act, &[conn, target], None);
                for key in self.rooms_of(target) {
                    self.send_ops(&key);
                }
            }
        }
    }

    fn lock_topic(&mut self, conn: ConnId, room: &str, locked: bool) {
        let what = if locked {
            "lock its topic"
        } else {
            "unlock its topic"
        };
        let Some((key, name)) = self.moderated_room(conn, room, what) else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(&key) {
            r.topic_locked = locked;
        }
        self.durable.write(Write::Moderation(ModWrite::TopicLock {
            key: key.clone(),
            name: name.clone(),
            locked,
        }));
        let act = Act {
            action: if locked {
                ModAction::LockTopic
            } else {
                ModAction::UnlockTopic
            },
            target: format!("#{name}"),
            room: Some(name),
            reason: String::new(),
            until: None,
        };
        self.announce(conn, act, &self.members_of(&key), None);
    }

    /// The keys of the rooms `conn` is in.
    pub(super) fn rooms_of(&self, conn: ConnId) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.has(conn))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The operators among room `key`'s members, sorted.
    fn ops_frame(&self, key: &str) -> Option<ServerFrame> {
        let room = self.rooms.get(key)?;
        if room.ops.is_empty() && room.guest_ops.is_empty() && self.operators.is_empty() {
            // Nobody to look for among the members.
            return Some(ServerFrame::Ops {
                room: room.name.clone(),
                ops: Vec::new(),
            });
        }
        let mut ops: Vec<String> = room
            .members
            .keys()
            .filter(|&&c| self.room_op(c, key))
            .filter_map(|c| self.clients.get(c).map(|m| m.nick.clone()))
            .collect();
        ops.sort_unstable_by_key(|n| names::fold(n));
        Some(ServerFrame::Ops {
            room: room.name.clone(),
            ops,
        })
    }

    /// Tells room `key`'s members (of version 4) who its operators are.
    pub(super) fn send_ops(&mut self, key: &str) {
        let Some(bytes) = self.ops_frame(key).and_then(|f| encode(&f)) else {
            return;
        };
        for conn in self.members_of(key) {
            self.queue_modern(conn, bytes.clone());
        }
    }

    /// Queues `bytes` for `conn` if it speaks version 4.
    pub(super) fn queue_modern(&mut self, conn: ConnId, bytes: bytes::Bytes) {
        if let Some(m) = self.clients.get(&conn).filter(|m| m.caps.moderation()) {
            let outbox = m.outbox.clone();
            self.fanout.queue(&self.rooms, conn, &outbox, bytes);
        }
    }

    /// What a member of version 4 gets after a room's roster: its operators, and who in it is
    /// away.
    pub(super) fn after_roster(&mut self, conn: ConnId, key: &str) {
        if !self.clients.get(&conn).is_some_and(|m| m.caps.moderation()) {
            return;
        }
        // A room without operators online needs no frame: a client knows none until told.
        if let Some(frame) = self
            .ops_frame(key)
            .filter(|f| matches!(f, ServerFrame::Ops { ops, .. } if !ops.is_empty()))
        {
            self.push_to(conn, &frame);
        }
        if self.away == 0 {
            return;
        }
        let away: Vec<ServerFrame> = self
            .rooms
            .get(key)
            .into_iter()
            .flat_map(|r| r.members.keys())
            .filter_map(|c| self.clients.get(c))
            .filter_map(|m| {
                m.away.as_ref().map(|a| ServerFrame::Away {
                    nick: m.nick.clone(),
                    message: Some(a.message.clone()),
                })
            })
            .collect();
        for frame in away {
            self.push_to(conn, &frame);
        }
    }

    /// Makes `conn`, who created room `key`, its operator.
    pub(super) fn creator_is_op(&mut self, conn: ConnId, key: &str) {
        let account = self.clients.get(&conn).and_then(|m| m.account.clone());
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        match account {
            Some(account) => {
                room.ops.insert(account.clone());
                self.durable.write(Write::Moderation(ModWrite::RoomOp {
                    room: key.to_owned(),
                    account,
                    grant: true,
                }));
            }
            None => {
                room.guest_ops.insert(conn);
            }
        }
    }

    /// Forgets what moderation kept about a connection that ended.
    pub(super) fn forget_ops(&mut self, conn: ConnId) {
        for room in self.rooms.values_mut() {
            room.guest_ops.remove(&conn);
        }
    }

    /// Applies what `chat-server admin` changed in the database to what the hub keeps: the
    /// account's holder is disconnected, the room's members put out of it, the ban lifted, the
    /// operator named or not.
    pub(super) fn admin_event(&mut self, event: AdminEvent) {
        if event.id <= self.admin_seen {
            return;
        }
        self.admin_seen = event.id;
        let key = event.target;
        let (action, room) = match event.action {
            AdminAction::DeleteAccount => {
                if let Some(nick) = self.accounts.nick(&key).cloned() {
                    self.accounts.forget(&key, &nick);
                }
                self.operators.remove(&key);
                for room in self.rooms.values_mut() {
                    room.ops.remove(&key);
                }
                let holder = self
                    .clients
                    .iter()
                    .find(|(_, m)| m.account.as_deref() == Some(key.as_str()))
                    .map(|(c, _)| *c);
                if let Some(conn) = holder {
                    let message = "your account was deleted by an administrator".to_owned();
                    self.remove(conn, DisconnectReason::ConnectionClosed, message, true);
                }
                ("delete_account", None)
            }
            AdminAction::DeleteRoom => {
                self.close_room(&key);
                ("delete_room", Some(key.clone()))
            }
            AdminAction::Unban => {
                self.bans.remove(&key);
                ("unban", None)
            }
            AdminAction::Op | AdminAction::Deop => {
                let grant = event.action == AdminAction::Op;
                if grant {
                    self.operators.insert(key.clone());
                } else {
                    self.operators.remove(&key);
                }
                let holder = self
                    .clients
                    .iter()
                    .find(|(_, m)| m.account.as_deref() == Some(key.as_str()))
                    .map(|(c, _)| *c);
                for room in holder.map(|c| self.rooms_of(c)).unwrap_or_default() {
                    self.send_ops(&room);
                }
                (if grant { "op" } else { "deop" }, None)
            }
        };
        let kind = EventKind::Moderation {
            by: "admin".to_owned(),
            action,
            target: key,
            room,
            reason: String::new(),
            until: None,
        };
        self.sinks.record(kind, Utc::now());
    }

    /// Deletes room `key` (`chat-server admin delete-room`): its members are put out of it.
    fn close_room(&mut self, key: &str) {
        if key == DEFAULT_ROOM {
            return;
        }
        for conn in self.members_of(key) {
            let name = self
                .rooms
                .get(key)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            let message = format!("#{name} was deleted by an administrator");
            self.error(conn, None, ErrorCode::NoSuchRoom(name), message);
            self.leave_room(
                conn,
                key,
                DisconnectReason::LeftRoom,
                "the room was deleted".into(),
            );
        }
        self.rooms.remove(key);
    }
}
