//! Moderation: who is an operator (of the server, an account flag; of a room, its creator and
//! whoever its operators add), and what operators do: kick, ban, mute, grant and revoke
//! operator, lock a room's topic. Every action is told to the room it concerns (to the
//! operator and the target for the server's), recorded as an event, and stored when it is to
//! outlive the connection (bans, operators, topic locks; mutes are kept in memory).

mod actions;
mod admin;
mod mutes;
mod ops;

use chat_core::protocol::{ClientFrame, ErrorCode, ModAction, ModNotice, ServerFrame, Timestamp};
use chrono::Utc;

use super::Hub;
use super::conn::ConnId;
use super::fanout::encode;
use super::model::room_key;
use crate::event::EventKind;
use crate::store::Moderation;

pub(super) use mutes::Mutes;

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
            ClientFrame::Delete { id } => {
                self.message_op(Some(conn), id, super::message_ops::Op::Delete);
            }
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
        let kind = EventKind::Moderation {
            by,
            action: act.action.as_str(),
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

    /// The keys of the rooms `conn` is in.
    pub(super) fn rooms_of(&self, conn: ConnId) -> Vec<String> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.has(conn))
            .map(|(k, _)| k.clone())
            .collect()
    }
}
