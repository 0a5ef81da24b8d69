//! What `chat-server admin` changed in the database, applied to what the hub keeps.

use chat_core::protocol::{DEFAULT_ROOM, DisconnectReason, ErrorCode};
use chrono::Utc;

use crate::event::EventKind;
use crate::hub::Hub;
use crate::store::{AdminAction, AdminEvent};

impl Hub {
    /// Applies what `chat-server admin` changed in the database to what the hub keeps: the
    /// account's holder is disconnected, the room's members put out of it, the ban lifted, the
    /// operator named or not.
    pub(in crate::hub) fn admin_event(&mut self, event: AdminEvent) {
        if event.id <= self.admin_seen {
            return;
        }
        self.admin_seen = event.id;
        let key = event.target;
        let holder = self.by_account.get(&key).copied();
        let room = match event.action {
            AdminAction::DeleteAccount => {
                if let Some(nick) = self.accounts.nick(&key).cloned() {
                    self.accounts.forget(&key, &nick);
                }
                self.operators.remove(&key);
                for room in self.rooms.values_mut() {
                    room.ops.remove(&key);
                }
                if let Some(conn) = holder {
                    let message = "your account was deleted by an administrator".to_owned();
                    self.remove(conn, DisconnectReason::ConnectionClosed, message, true);
                }
                None
            }
            AdminAction::DeleteRoom => {
                self.close_room(&key);
                Some(key.clone())
            }
            AdminAction::Unban => {
                self.bans.remove(&key);
                None
            }
            AdminAction::Op | AdminAction::Deop => {
                let grant = event.action == AdminAction::Op;
                if grant {
                    self.operators.insert(key.clone());
                } else {
                    self.operators.remove(&key);
                }
                for room in holder.map(|c| self.rooms_of(c)).unwrap_or_default() {
                    self.send_ops(&room);
                }
                None
            }
        };
        let kind = EventKind::Moderation {
            by: "admin".to_owned(),
            action: event.action.as_str(),
            target: key,
            room,
            reason: String::new(),
            until: None,
        };
        self.sinks.record(kind, Utc::now());
    }

    /// Deletes room `key` (`chat-server admin delete-room`): its members are put out of it.
    pub(super) fn close_room(&mut self, key: &str) {
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
