//! Deleting a message: its author may, and so may an operator of its room (a server operator,
//! any message). The text goes from the room's recent messages and from the store; whoever
//! can see the message is told it was deleted.

use chat_core::names::fold;
use chat_core::protocol::{ChatMessage, ErrorCode, MessageId, ServerFrame, Target};
use chrono::Utc;

use super::Hub;
use super::cmd::Cmd;
use super::conn::ConnId;
use super::fanout::encode;
use crate::event::EventKind;
use crate::store::Write;

/// A message looked up for deletion, and its room's key (`None`: private).
pub(crate) type Found = Result<Option<(Option<String>, ChatMessage)>, String>;

impl Hub {
    /// `Delete`: decided at once for a message among a room's recent ones, else once the store
    /// has found it.
    pub(super) fn delete_message(&mut self, conn: ConnId, id: MessageId) {
        let recent = self.rooms.iter().find_map(|(key, room)| {
            room.recent
                .iter()
                .find(|m| m.id == id)
                .map(|m| (Some(key.clone()), ChatMessage::clone(m)))
        });
        if let Some(found) = recent {
            self.delete_found(conn, id, Ok(Some(found)));
        } else if !self.durable.read(move |store| Cmd::Found {
            conn,
            id,
            found: store.message(id).map_err(|e| e.to_string()),
        }) {
            self.busy(conn, "look that message up");
        }
    }

    /// Deletes message `id`, as found, if `conn` may.
    pub(super) fn delete_found(&mut self, conn: ConnId, id: MessageId, found: Found) {
        let (key, message) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                let message = format!("there is no message {id} (deleted, or too old)");
                self.error(conn, None, ErrorCode::NotAllowed, message);
                return;
            }
            Err(e) => {
                tracing::error!("could not read message {id} to delete it: {e}");
                self.busy(conn, "look that message up");
                return;
            }
        };
        let Some(by) = self.clients.get(&conn).map(|m| m.nick.clone()) else {
            return;
        };
        let author = fold(&message.from) == fold(&by);
        let allowed = author
            || match &key {
                Some(key) => self.room_op(conn, key),
                None => self.server_op(conn),
            };
        if !allowed {
            let whose = match &message.to {
                Target::Room(room) => format!("its author or an operator of #{room}"),
                Target::Users(_) => "its author".to_owned(),
            };
            let text = format!("only {whose} may delete message {id}");
            self.error(conn, None, ErrorCode::NotAllowed, text);
            return;
        }
        self.durable.write(Write::DeleteMessage { id });
        let told: Vec<ConnId> = match &key {
            Some(key) => {
                if let Some(room) = self.rooms.get_mut(key) {
                    room.recent.retain(|m| m.id != id);
                }
                let mut members = self.members_of(key);
                members.push(conn);
                members
            }
            None => {
                let people = message.to.users().iter().chain([&message.from]);
                let mut online: Vec<ConnId> =
                    people.filter_map(|nick| self.nick_online(nick)).collect();
                online.push(conn);
                online
            }
        };
        let (room, _) = message.to.clone().into_parts();
        let now = Utc::now();
        let frame = ServerFrame::Deleted {
            id,
            room: room.clone(),
            by: by.clone(),
            at: now,
        };
        if let Some(bytes) = encode(&frame) {
            let mut told = told;
            told.sort_unstable();
            told.dedup();
            for c in told {
                self.queue_modern(c, bytes.clone());
            }
        }
        let kind = EventKind::Deleted {
            by,
            id,
            from: message.from,
            room,
        };
        self.sinks.record(kind, now);
    }
}
