//! Operators: naming them, who they are in each room (the `Ops` frame and the roster's
//! marks), and what a version 4 client gets after a roster.

use chat_core::names;
use chat_core::protocol::{ModAction, ServerFrame};

use super::Act;
use crate::hub::Hub;
use crate::hub::conn::{Caps, ConnId};
use crate::hub::fanout::encode;
use crate::store::{ModWrite, Write};

impl Hub {
    pub(super) fn op(&mut self, conn: ConnId, room: Option<String>, nick: &str, grant: bool) {
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

    /// The operators among room `key`'s members, sorted: its guest operators, and whoever is
    /// logged in to the account of one of its operators or of a server operator (looked up by
    /// account, not by going through the members).
    pub(super) fn ops_frame(&self, key: &str) -> Option<ServerFrame> {
        let room = self.rooms.get(key)?;
        let by_account = room
            .ops
            .iter()
            .chain(&self.operators)
            .filter_map(|account| self.by_account.get(account));
        let mut conns: Vec<ConnId> = room
            .guest_ops
            .iter()
            .chain(by_account)
            .copied()
            .filter(|&c| room.has(c))
            .collect();
        conns.sort_unstable();
        conns.dedup();
        let mut ops: Vec<String> = conns
            .iter()
            .filter_map(|c| self.clients.get(c).map(|m| m.nick.clone()))
            .collect();
        ops.sort_unstable_by_key(|n| names::fold(n));
        Some(ServerFrame::Ops {
            room: room.name.clone(),
            ops,
        })
    }

    /// Tells room `key`'s members (of version 4) who its operators are.
    pub(in crate::hub) fn send_ops(&mut self, key: &str) {
        let Some(bytes) = self.ops_frame(key).and_then(|f| encode(&f)) else {
            return;
        };
        for conn in self.members_of(key) {
            self.queue_modern(conn, bytes.clone());
        }
    }

    /// Queues `bytes` for `conn` if it speaks version 4.
    pub(in crate::hub) fn queue_modern(&mut self, conn: ConnId, bytes: bytes::Bytes) {
        self.queue_if(conn, bytes, Caps::moderation);
    }

    /// Queues `bytes` for `conn` if its version `knows` them.
    pub(in crate::hub) fn queue_if(
        &mut self,
        conn: ConnId,
        bytes: bytes::Bytes,
        knows: fn(Caps) -> bool,
    ) {
        if let Some(m) = self.clients.get(&conn).filter(|m| knows(m.caps)) {
            let outbox = m.outbox.clone();
            self.fanout.queue(&self.rooms, conn, &outbox, bytes);
        }
    }

    /// What a member of version 4 gets after a room's roster: its operators, and who in it is
    /// away.
    pub(in crate::hub) fn after_roster(&mut self, conn: ConnId, key: &str) {
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
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let away: Vec<ServerFrame> = self
            .away
            .iter()
            .filter(|&&c| room.has(c))
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
    pub(in crate::hub) fn creator_is_op(&mut self, conn: ConnId, key: &str) {
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
}
