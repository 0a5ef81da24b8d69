//! Kicks, bans and topic locks.

use chat_core::names;
use chat_core::protocol::{DEFAULT_ROOM, DisconnectReason, ErrorCode, ModAction, ServerFrame};
use chrono::{TimeDelta, Utc};

use super::Act;
use crate::bans::{self, Ban};
use crate::hub::Hub;
use crate::hub::conn::ConnId;
use crate::hub::model::room_key;
use crate::store::{ModWrite, Write};

impl Hub {
    pub(super) fn kick(&mut self, conn: ConnId, room: Option<String>, nick: &str, reason: String) {
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
    pub(super) fn ban_targets(&mut self, conn: ConnId, given: &str) -> Option<Vec<String>> {
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

    pub(super) fn ban(&mut self, conn: ConnId, given: &str, duration: Option<u64>, reason: String) {
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
        // Whoever online the new bans cover (server operators aside), with what they are told.
        let hit: Vec<(ConnId, String)> = self
            .clients
            .iter()
            .filter(|(c, _)| !self.server_op(**c))
            .filter_map(|(c, m)| {
                let ban = self.bans.check(m.addr.ip(), m.account.as_deref(), now)?;
                Some((*c, ban.refusal(now)))
            })
            .collect();
        let mut told: Vec<ConnId> = hit.iter().map(|(c, _)| *c).collect();
        told.push(conn);
        self.announce(conn, act, &told, None);
        for (victim, message) in hit {
            self.remove(victim, DisconnectReason::Banned, message, true);
        }
    }

    pub(super) fn list_bans(&mut self, conn: ConnId) {
        if self.require_server_op(conn, "list the bans") {
            let list = self.bans.list(Utc::now()).iter().map(Ban::info).collect();
            self.push_to(conn, &ServerFrame::Bans(list));
        }
    }

    pub(super) fn unban(&mut self, conn: ConnId, given: &str) {
        if !self.require_server_op(conn, "lift bans") {
            return;
        }
        let target = bans::lift_target(given);
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

    pub(super) fn lock_topic(&mut self, conn: ConnId, room: &str, locked: bool) {
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
}
