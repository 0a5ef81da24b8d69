//! Messages: accepting one (its recipients, its id, room in the store's queue), delivering the
//! one shared record to everyone it is for, and acknowledging it to its sender once it is
//! stored (or telling the sender it was not).

use std::sync::Arc;

use chat_core::frame::encode_frame;
use chat_core::names;
use chat_core::protocol::{
    ChatMessage, ErrorCode, MAX_SERVER_FRAME, MessageAttr, Outgoing, ServerFrame, Target, Timestamp,
};
use chrono::Utc;

use super::Hub;
use super::cmd::{Ack, Acked};
use super::conn::ConnId;
use super::durable::Permit;
use super::fanout::encode;
use super::frames::MessageFrame;
use super::model::room_key;
use crate::event::{EventKind, SharedMessage};
use crate::stats::Stats;
use crate::store::{QueueError, Write};

/// Who receives a message.
enum Recipients {
    /// Every member of the room with this key.
    Room(String),
    /// These connections, and the offline accounts (key, nickname) it is kept for.
    Users {
        online: Vec<ConnId>,
        offline: Vec<(String, String)>,
        /// Nicknames nobody online or registered has: named in an error once the message
        /// is delivered to the others.
        missing: Vec<String>,
    },
}

impl Hub {
    pub(super) fn send(&mut self, conn: ConnId, msg: Outgoing, arrived: tokio::time::Instant) {
        let Some(sender) = self.clients.get(&conn) else {
            return;
        };
        let from = sender.nick.clone();
        let Outgoing {
            tag,
            to,
            body,
            attrs,
        } = msg;
        // Resolve who receives it; refuse before assigning an id if nobody can.
        let Some((to, recipients)) = self.recipients(conn, tag, to) else {
            return;
        };
        let room = match &recipients {
            Recipients::Room(key) => Some(key.as_str()),
            Recipients::Users { .. } => None,
        };
        if let Some(refusal) = self.muted(conn, room) {
            self.error(conn, Some(tag), ErrorCode::NotAllowed, refusal);
            return;
        }
        let expires = MessageAttr::expires_in(&attrs);
        let counted = expires.and_then(|_| self.counted_address(conn));
        if expires.is_some()
            && let Some(message) = self.expiries.refusal(counted, &self.config.limits)
        {
            self.error(conn, Some(tag), ErrorCode::Busy, message);
            return;
        }
        // Room in the store's queue comes first: a message that cannot be stored is refused
        // whole, before anyone sees it.
        let permit = match self.durable.reserve() {
            Ok(permit) => permit,
            Err(e) => {
                let message = match e {
                    QueueError::Full => {
                        "the server cannot store messages fast enough right now; this one was \
                         not delivered: send it again"
                    }
                    QueueError::Stopped => {
                        "the server cannot store messages; this one was not delivered"
                    }
                };
                self.error(conn, Some(tag), ErrorCode::Busy, message.to_owned());
                return;
            }
        };
        let (id, at) = self.next_message();
        if let Some(sender) = self.clients.get_mut(&conn) {
            sender.last_active = at;
        }
        if let Some(secs) = expires {
            self.expiries.add(id, secs, counted);
        }
        let message: SharedMessage = Arc::new(ChatMessage {
            id,
            at,
            from,
            to,
            body,
            attrs,
            tag: None,
        });
        let frame = MessageFrame {
            message: &message,
            tag: None,
        };
        let (room, offline) = match recipients {
            Recipients::Room(key) => {
                self.fanout
                    .broadcast(&self.rooms, &key, &frame, Some(conn), true);
                self.remember(&key, &message);
                (Some(key), Vec::new())
            }
            Recipients::Users {
                online,
                offline,
                missing,
            } => {
                self.deliver(&online, &frame, conn);
                self.tell_away(conn, &online);
                if !missing.is_empty() {
                    self.no_such_user(conn, tag, missing);
                }
                (None, offline)
            }
        };
        self.sinks.record(EventKind::Message(message.clone()), at);
        self.delivered.arrived(arrived);
        let (offline_for, queued_for): (Vec<String>, Vec<String>) = offline.into_iter().unzip();
        let ack = Ack {
            conn,
            what: Acked::Message {
                message: message.clone(),
                tag,
                queued_for,
            },
        };
        self.store_message(permit, message, room, offline_for, ack);
    }

    /// Where a message to `to` goes: the room (if `conn` is in it), or the recipients online
    /// and the offline accounts it is kept for. `None` once `conn` is told nobody can get it;
    /// a recipient who cannot is named in an error after the message is delivered to the rest.
    fn recipients(&mut self, conn: ConnId, tag: u64, to: Target) -> Option<(Target, Recipients)> {
        match to {
            Target::Room(room) => {
                let key = room_key(&room);
                match self.rooms.get(&key) {
                    Some(r) if r.has(conn) => {
                        Some((Target::Room(r.name.clone()), Recipients::Room(key)))
                    }
                    _ => {
                        self.not_in_room(conn, Some(tag), &room);
                        None
                    }
                }
            }
            Target::Users(nicks) => {
                let mut online: Vec<ConnId> = Vec::with_capacity(nicks.len());
                let mut offline: Vec<(String, String)> = Vec::new();
                let mut missing = Vec::new();
                for nick in nicks {
                    let folded = names::fold(&nick);
                    match self.holder(0, &folded) {
                        Some(id) if !online.contains(&id) => online.push(id),
                        Some(_) => {}
                        None => match self.accounts.nick(&folded) {
                            // Registered and offline: stored for the next login.
                            Some(account) if self.durable.exists() => {
                                if !offline.iter().any(|(key, _)| *key == folded) {
                                    offline.push((folded, account.clone()));
                                }
                            }
                            _ => missing.push(nick),
                        },
                    }
                }
                if online.is_empty() && offline.is_empty() {
                    self.no_such_user(conn, tag, missing);
                    return None;
                }
                let names = online
                    .iter()
                    .filter_map(|id| self.clients.get(id).map(|m| m.nick.clone()))
                    .chain(offline.iter().map(|(_, nick)| nick.clone()))
                    .collect();
                let users = Recipients::Users {
                    online,
                    offline,
                    missing,
                };
                Some((Target::Users(names), users))
            }
        }
    }

    /// Queues the message's write, acknowledged to its sender once committed; without a
    /// store it is acknowledged at once.
    fn store_message(
        &mut self,
        permit: Option<Permit>,
        message: SharedMessage,
        room: Option<String>,
        offline_for: Vec<String>,
        ack: Ack,
    ) {
        match permit {
            Some(permit) => permit.write(
                Write::Message {
                    message,
                    room,
                    offline_for,
                },
                Some(ack),
            ),
            None => self.acknowledge(ack),
        }
    }

    /// Keeps a room message among the room's latest, for replay.
    fn remember(&mut self, key: &str, message: &SharedMessage) {
        let Some(room) = self.rooms.get_mut(key) else {
            return;
        };
        room.last_used = message.at;
        // Never more than the store keeps of the room either.
        let per_room = self
            .config
            .retention
            .per_room
            .map_or(usize::MAX, |n| n as usize);
        let keep = self.config.history_replay.min(per_room);
        if keep == 0 {
            return;
        }
        {
            if room.recent.len() >= keep {
                if let Some(gone) = room.recent.pop_front() {
                    // Notes are kept for recent messages only.
                    room.notes.remove(&gone.id);
                }
                room.older = true;
            }
            room.recent.push_back(message.clone());
        }
    }

    /// A batch of writes is durable (or failed): tell each client about its own.
    pub(super) fn stored(&mut self, result: Result<(), String>, acks: Vec<Ack>) {
        for ack in acks {
            match &result {
                Ok(()) => self.acknowledge(ack),
                Err(e) => self.refuse_unstored(ack, e),
            }
        }
    }

    fn acknowledge(&mut self, ack: Ack) {
        let Ack { conn, what } = ack;
        match what {
            Acked::Message {
                message,
                tag,
                queued_for,
            } => {
                let echo = MessageFrame {
                    message: &message,
                    tag: Some(tag),
                };
                self.queue_to(conn, encode_frame(&echo, MAX_SERVER_FRAME));
                Stats::add(&self.stats.deliveries, 1);
                let modern = self.clients.get(&conn).is_some_and(|m| m.caps.accounts());
                if !queued_for.is_empty() && modern {
                    let frame = ServerFrame::Queued {
                        tag,
                        to: queued_for,
                    };
                    self.push_to(conn, &frame);
                }
            }
            Acked::Registered { nick, .. } => self.registered(conn, nick),
            Acked::PasswordChanged => self.password_changed(conn),
        }
    }

    /// A write was not stored: the client is told, and a registration is undone.
    fn refuse_unstored(&mut self, ack: Ack, error: &str) {
        let Ack { conn, what } = ack;
        let (tag, message) = match what {
            Acked::Message { message, tag, .. } => {
                // Not stored: not replayed as history either.
                if let Target::Room(name) = &message.to
                    && let Some(room) = self.rooms.get_mut(&room_key(name))
                {
                    room.recent.retain(|m| m.id != message.id);
                }
                (
                    Some(tag),
                    format!("your message could not be stored ({error}); send it again"),
                )
            }
            Acked::Registered { key, nick } => match self.unregistered(conn, &key, &nick, error) {
                Some(message) => (None, message),
                None => return,
            },
            Acked::PasswordChanged => (
                None,
                format!("the new password could not be stored ({error}); the old one stays"),
            ),
        };
        self.error(conn, tag, ErrorCode::Busy, message);
    }

    /// Encodes `frame` once and queues it for each of `ids` except `except`.
    fn deliver(&mut self, ids: &[ConnId], frame: &MessageFrame<'_>, except: ConnId) {
        let Some(bytes) = encode(frame) else {
            return;
        };
        let mut n = 0;
        for &id in ids.iter().filter(|&&id| id != except) {
            if let Some(m) = self.clients.get(&id) {
                n += self.fanout.queue(&self.rooms, id, &m.outbox, bytes.clone());
            }
        }
        Stats::add(&self.stats.deliveries, n);
    }

    fn no_such_user(&mut self, conn: ConnId, tag: u64, missing: Vec<String>) {
        let message = format!("not online: {}", missing.join(", "));
        self.error(conn, Some(tag), ErrorCode::NoSuchUser(missing), message);
    }

    fn next_message(&mut self) -> (u64, Timestamp) {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        (id, Utc::now())
    }
}
