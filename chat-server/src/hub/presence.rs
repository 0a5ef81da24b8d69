//! Presence: changing nickname (`/nick`), being away (`/away`), and `whois`.

use std::collections::HashSet;

use chat_core::names;
use chat_core::protocol::{DisconnectReason, ErrorCode, ServerFrame, UserInfo, WhoisInfo};
use chrono::Utc;

use super::Hub;
use super::conn::ConnId;
use super::fanout::encode;
use super::model::Away;
use crate::event::EventKind;

/// Most senders remembered as told someone's away message (then they are told again).
const MAX_TOLD: usize = 1024;

impl Hub {
    /// Everyone who shares a room with `conn`, `conn` included.
    fn sharing(&self, conn: ConnId) -> Vec<ConnId> {
        let mut seen = HashSet::new();
        seen.insert(conn);
        for room in self.rooms.values().filter(|r| r.has(conn)) {
            seen.extend(room.members.keys().copied());
        }
        seen.into_iter().collect()
    }

    /// The nickname `conn` would get for `requested`, or why not.
    fn new_nick(&self, conn: ConnId, requested: &str) -> Result<String, String> {
        let member = self.clients.get(&conn).ok_or("gone")?;
        let nick = if member.relayed {
            // A relayed guest stays starred.
            names::relayed_nick(
                requested
                    .strip_prefix(names::RELAY_PREFIX)
                    .unwrap_or(requested),
            )
            .map_err(|rule| format!("invalid nickname {requested:?}: {rule}"))?
        } else if requested.starts_with(names::RELAY_PREFIX) {
            return Err("nicknames starting with '*' are reserved for guests of a relay".into());
        } else {
            names::validate_nick(requested)
                .map_err(|rule| format!("invalid nickname {requested:?}: {rule}"))?;
            requested.to_owned()
        };
        if nick == member.nick {
            return Err(format!("you are {nick} already"));
        }
        let keys = names::nick_keys(&nick);
        // An account holder may take back the account's own nickname.
        let own = member.account.as_deref() == Some(keys.folded.as_str());
        for (kind, key) in keys.tagged() {
            if self.holder(kind, key).is_some_and(|c| c != conn) {
                return Err(format!(
                    "{nick} (or a nickname that looks the same) is taken"
                ));
            }
            if !own && self.accounts.reserves(kind, key) {
                return Err(format!(
                    "{nick} (or a nickname that looks the same) is a registered account's"
                ));
            }
        }
        Ok(nick)
    }

    /// `/nick`: renames `conn`, and tells everyone who shares a room with it (those of version
    /// 3 or older see it leave and come back under the new name).
    pub(super) fn rename(&mut self, conn: ConnId, requested: &str) {
        let nick = match self.new_nick(conn, requested) {
            Ok(nick) => nick,
            Err(message) => {
                self.error(conn, None, ErrorCode::NotAllowed, message);
                return;
            }
        };
        let keys = names::nick_keys(&nick);
        let next_id = self.next_msg_id;
        let Some(member) = self.clients.get_mut(&conn) else {
            return;
        };
        let old = std::mem::replace(&mut member.nick, nick.clone());
        let old_keys = std::mem::replace(&mut member.keys, keys.clone());
        member.nick_from_id = next_id;
        let relayed = member.relayed;
        self.nicks.remove(conn, &old_keys);
        let clients = &self.clients;
        self.nicks
            .insert(conn, &keys, |c| clients.get(&c).map(|m| &m.keys));
        let rooms = self.rooms_of(conn);
        for key in &rooms {
            if let Some(room) = self.rooms.get_mut(key) {
                room.order.remove(conn);
                room.order.insert(conn, &keys.folded, &self.clients);
            }
        }
        let now = Utc::now();
        let modern = encode(&ServerFrame::NickChanged {
            old: old.clone(),
            new: nick.clone(),
            at: now,
        });
        for other in self.sharing(conn) {
            let Some(caps) = self.clients.get(&other).map(|m| m.caps) else {
                continue;
            };
            if caps.moderation() {
                if let Some(bytes) = modern.clone() {
                    self.queue_modern(other, bytes);
                }
                continue;
            }
            let version = caps.version();
            for key in &rooms {
                let Some(room) = self.rooms.get(key).filter(|r| r.has(other)) else {
                    continue;
                };
                if key != chat_core::protocol::DEFAULT_ROOM && !caps.rooms() {
                    continue;
                }
                let name = room.name.clone();
                let left = ServerFrame::Left {
                    room: name.clone(),
                    nick: old.clone(),
                    reason: DisconnectReason::Renamed.for_version(version),
                    message: format!("is now {nick}"),
                    at: now,
                };
                let joined = ServerFrame::Joined {
                    room: name,
                    user: UserInfo {
                        nick: nick.clone(),
                        relayed,
                    },
                    at: now,
                };
                self.push_to(other, &left);
                self.push_to(other, &joined);
            }
        }
        for key in &rooms {
            self.send_ops(key);
        }
        self.sinks
            .record(EventKind::Renamed { old, new: nick }, now);
    }

    /// `/away`: marks `conn` away with `message`, or back (empty), and tells everyone who
    /// shares a room with it.
    pub(super) fn set_away(&mut self, conn: ConnId, message: String) {
        let Some(member) = self.clients.get_mut(&conn) else {
            return;
        };
        let message = (!message.is_empty()).then_some(message);
        member.away = message.clone().map(|message| {
            Box::new(Away {
                message,
                told: HashSet::new(),
            })
        });
        let nick = member.nick.clone();
        if message.is_some() {
            self.away.insert(conn);
        } else {
            self.away.remove(&conn);
        }
        let frame = ServerFrame::Away {
            nick: nick.clone(),
            message: message.clone(),
        };
        if let Some(bytes) = encode(&frame) {
            for other in self.sharing(conn) {
                self.queue_modern(other, bytes.clone());
            }
        }
        self.sinks
            .record(EventKind::Away { nick, message }, Utc::now());
    }

    /// After a private message from `from` to `online`: the away messages of those who are
    /// away, each once per sender.
    pub(super) fn tell_away(&mut self, from: ConnId, online: &[ConnId]) {
        if self.away.is_empty() {
            return;
        }
        let mut frames = Vec::new();
        for to in online {
            let Some(m) = self.clients.get_mut(to) else {
                continue;
            };
            let nick = m.nick.clone();
            let Some(away) = m.away.as_mut() else {
                continue;
            };
            if away.told.len() >= MAX_TOLD {
                away.told.clear();
            }
            if away.told.insert(from) {
                frames.push(ServerFrame::Away {
                    nick,
                    message: Some(away.message.clone()),
                });
            }
        }
        for frame in frames {
            if let Some(bytes) = encode(&frame) {
                self.queue_modern(from, bytes);
            }
        }
    }

    /// `/whois`: who `nick` is, to `conn`.
    pub(super) fn whois(&mut self, conn: ConnId, nick: &str) {
        let Some(target) = self.target(conn, nick) else {
            return;
        };
        let Some(m) = self.clients.get(&target) else {
            return;
        };
        let mut rooms_in_common: Vec<String> = self
            .rooms
            .values()
            .filter(|r| r.has(conn) && r.has(target))
            .map(|r| r.name.clone())
            .collect();
        rooms_in_common.sort_unstable();
        let info = WhoisInfo {
            nick: m.nick.clone(),
            account: m.account.is_some(),
            relayed: m.relayed,
            operator: self.server_op(target),
            since: m.since,
            idle_secs: u64::try_from((Utc::now() - m.last_active).num_seconds()).unwrap_or(0),
            rooms_in_common,
            away: m.away.as_ref().map(|a| a.message.clone()),
        };
        self.push_to(conn, &ServerFrame::Whois(info));
    }
}
