//! Working with a message once it is sent: deleting it, editing it (its author may, and so may
//! an operator of its room; a server operator, any message), reacting to it (whoever can see
//! it) and expiring it. The message is found among its room's recent ones at once, or else in
//! the store; then the change goes to the store, to the room's recent messages, and to
//! whoever can see the message.

use chat_core::names::fold;
use chat_core::protocol::{
    Body, ChatMessage, ErrorCode, MAX_REACTIONS, MessageId, ServerFrame, Target,
};
use chrono::Utc;
use std::sync::Arc;

use super::Hub;
use super::cmd::Cmd;
use super::conn::{Caps, ConnId};
use super::fanout::encode;
use crate::event::EventKind;
use crate::store::{Edit, Notes, Write};

/// What is done to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Deleted by its author or an operator.
    Delete,
    /// Its text replaced, by its author or an operator.
    Edit(String),
    /// A reaction added or taken back, by whoever can see it.
    React(String),
    /// It expired: deleted by the server.
    Expire,
}

/// A message as found: its room's key (`None`: private), the message and its notes.
#[derive(Debug)]
pub(crate) struct Found {
    key: Option<String>,
    message: ChatMessage,
    notes: Notes,
}

/// What the store found of a message.
pub(crate) type Lookup = Result<Option<Found>, String>;

impl Hub {
    /// `op` on message `id`, asked by `conn` (`None`: the server, for an expiry): carried out
    /// at once for a message among a room's recent ones, else once the store has found it.
    pub(super) fn message_op(&mut self, conn: Option<ConnId>, id: MessageId, op: Op) {
        let recent = self.rooms.iter().find_map(|(key, room)| {
            let message = room.recent.iter().find(|m| m.id == id)?;
            Some(Found {
                key: Some(key.clone()),
                message: ChatMessage::clone(message),
                notes: room.notes.get(&id).cloned().unwrap_or_default(),
            })
        });
        if let Some(found) = recent {
            self.message_found(conn, id, op, Ok(Some(found)));
            return;
        }
        let read = self.durable.read(move |store| {
            let found = store.message(id).and_then(|found| {
                let Some((key, message)) = found else {
                    return Ok(None);
                };
                let notes = store.notes(&[id])?.pop().map(|(_, n)| n);
                Ok(Some(Found {
                    key,
                    message,
                    notes: notes.unwrap_or_default(),
                }))
            });
            Cmd::Found {
                conn,
                id,
                op,
                found: found.map_err(|e| e.to_string()),
            }
        });
        if !read && let Some(conn) = conn {
            self.busy(conn, "look that message up");
        }
    }

    /// `op` on message `id`, as found, if whoever asks may.
    pub(super) fn message_found(
        &mut self,
        conn: Option<ConnId>,
        id: MessageId,
        op: Op,
        found: Lookup,
    ) {
        let found = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                if let Some(conn) = conn {
                    let message = format!("there is no message {id} (deleted, or too old)");
                    self.error(conn, None, ErrorCode::NotAllowed, message);
                }
                return;
            }
            Err(e) => {
                tracing::error!("could not read message {id}: {e}");
                if let Some(conn) = conn {
                    self.busy(conn, "look that message up");
                }
                return;
            }
        };
        let Some(conn) = conn else {
            self.delete(None, found, String::new());
            return;
        };
        let Some(by) = self.clients.get(&conn).map(|m| m.nick.clone()) else {
            return;
        };
        match op {
            Op::Delete | Op::Edit(_) if !self.may_change(conn, &found) => {
                let what = if op == Op::Delete { "delete" } else { "edit" };
                let whose = match &found.message.to {
                    Target::Room(room) => format!("its author or an operator of #{room}"),
                    Target::Users(_) => "its author".to_owned(),
                };
                let text = format!("only {whose} may {what} message {id}");
                self.error(conn, None, ErrorCode::NotAllowed, text);
            }
            Op::Delete | Op::Expire => self.delete(Some(conn), found, by),
            Op::Edit(text) => self.edit(conn, found, by, text),
            Op::React(emoji) => self.react(conn, found, by, emoji),
        }
    }

    /// Whether `conn` may delete or edit the message: its author, or an operator of its room
    /// (a server operator, for a private message).
    fn may_change(&self, conn: ConnId, found: &Found) -> bool {
        self.is_party(conn, &found.message.from, found.message.id)
            || match &found.key {
                Some(key) => self.room_op(conn, key),
                None => self.server_op(conn),
            }
    }

    /// Whether `conn` can see the message: a member of its room, or one of the people of a
    /// private message.
    fn may_see(&self, conn: ConnId, found: &Found) -> bool {
        match &found.key {
            Some(key) => self.rooms.get(key).is_some_and(|r| r.has(conn)),
            None => {
                let id = found.message.id;
                let mut people = found.message.to.users().iter().chain([&found.message.from]);
                people.any(|n| self.is_party(conn, n, id))
            }
        }
    }

    /// Whether `conn` is who wrote or received, as `nick`, message `id`: logged in to
    /// `nick`'s account, or a guest that has held `nick` since before the message (a nickname
    /// has one holder at a time). A guest that took the nickname of one who left is not them.
    fn is_party(&self, conn: ConnId, nick: &str, id: MessageId) -> bool {
        let Some(m) = self.clients.get(&conn) else {
            return false;
        };
        let key = fold(nick);
        m.account.as_ref() == Some(&key) || (m.keys.folded == key && m.nick_from_id <= id)
    }

    /// Everyone online who can see the message, and `conn`, sorted.
    fn audience(&self, found: &Found, conn: Option<ConnId>) -> Vec<ConnId> {
        let mut told: Vec<ConnId> = match &found.key {
            Some(key) => self.members_of(key),
            None => {
                let id = found.message.id;
                let people = found.message.to.users().iter().chain([&found.message.from]);
                people
                    .filter_map(|nick| {
                        let holder = self
                            .nick_online(nick)
                            .filter(|&c| self.is_party(c, nick, id));
                        holder.or_else(|| self.by_account.get(&fold(nick)).copied())
                    })
                    .collect()
            }
        };
        told.extend(conn);
        told.sort_unstable();
        told.dedup();
        told
    }

    /// Deletes the message (`by` empty: it expired). A client of version 4 or later is told
    /// with `Deleted`; an older one gets a notice in its place: the message again, same id,
    /// its text replaced by "(message deleted)".
    fn delete(&mut self, conn: Option<ConnId>, found: Found, by: String) {
        let id = found.message.id;
        self.durable.write(Write::DeleteMessage { id });
        self.expiries.forget(id);
        if let Some(room) = found.key.as_ref().and_then(|k| self.rooms.get_mut(k)) {
            room.recent.retain(|m| m.id != id);
            room.notes.remove(&id);
        }
        let (room, _) = found.message.to.clone().into_parts();
        let now = Utc::now();
        let frame = ServerFrame::Deleted {
            id,
            room: room.clone(),
            by: by.clone(),
            at: now,
        };
        let notice = ServerFrame::Message(ChatMessage {
            body: Body::Text(deletion_notice(&by, &found.message.from).to_owned()),
            at: now,
            attrs: Vec::new(),
            tag: None,
            ..found.message.clone()
        });
        let audience = self.audience(&found, conn);
        self.queue_by_version(&audience, &frame, &notice, Caps::moderation);
        let kind = EventKind::Deleted {
            by,
            id,
            from: found.message.from,
            room,
        };
        self.sinks.record(kind, now);
    }

    /// Replaces the message's text with `text`. A client of version 6 is told with `Edited`;
    /// an older one gets the new text as a message marked "(edit)".
    fn edit(&mut self, conn: ConnId, found: Found, by: String, text: String) {
        let id = found.message.id;
        let now = Utc::now();
        self.durable.write(Write::EditMessage {
            id,
            text: text.clone(),
            by: by.clone(),
            at: now,
        });
        let mut edited = found.message.clone();
        edited.body = match edited.body {
            Body::Text(_) => Body::Text(text.clone()),
            Body::Action(_) => Body::Action(text.clone()),
        };
        if let Some(room) = found.key.as_ref().and_then(|k| self.rooms.get_mut(k))
            && let Some(slot) = room.recent.iter_mut().find(|m| m.id == id)
        {
            *slot = Arc::new(edited.clone());
            let notes = room.notes.entry(id).or_default();
            notes.edited = Some(Edit {
                by: by.clone(),
                at: now,
            });
        }
        let (room, _) = found.message.to.clone().into_parts();
        let frame = ServerFrame::Edited {
            id,
            room: room.clone(),
            text: text.clone(),
            by: by.clone(),
            at: now,
        };
        let fallback = ServerFrame::Message(ChatMessage {
            body: match edited.body {
                Body::Text(t) => Body::Text(format!("(edit) {t}")),
                Body::Action(t) => Body::Action(format!("(edit) {t}")),
            },
            at: now,
            attrs: Vec::new(),
            tag: None,
            ..edited
        });
        let audience = self.audience(&found, Some(conn));
        self.queue_by_version(&audience, &frame, &fallback, Caps::message_ops);
        let kind = EventKind::Edited {
            by,
            id,
            from: found.message.from,
            room,
            text,
        };
        self.sinks.record(kind, now);
    }

    /// Adds `by`'s reaction `emoji` to the message, or takes it back.
    fn react(&mut self, conn: ConnId, mut found: Found, by: String, emoji: String) {
        let id = found.message.id;
        if !self.may_see(conn, &found) {
            let text = format!("you cannot see message {id}: only who can may react to it");
            self.error(conn, None, ErrorCode::NotAllowed, text);
            return;
        }
        let new_emoji = !found.notes.reactions.iter().any(|r| r.emoji == emoji);
        if new_emoji && found.notes.reactions.len() >= MAX_REACTIONS {
            let text = format!(
                "message {id} has {MAX_REACTIONS} different reactions already: add one of those"
            );
            self.error(conn, None, ErrorCode::NotAllowed, text);
            return;
        }
        let add = found.notes.toggle(&emoji, &by);
        let now = Utc::now();
        self.durable.write(Write::React {
            id,
            emoji: emoji.clone(),
            nick: by.clone(),
            add,
            at: now,
        });
        if let Some(room) = found.key.as_ref().and_then(|k| self.rooms.get_mut(k))
            && room.recent.iter().any(|m| m.id == id)
        {
            if found.notes.is_empty() {
                room.notes.remove(&id);
            } else {
                room.notes.insert(id, found.notes.clone());
            }
        }
        let (room, _) = found.message.to.clone().into_parts();
        let frame = ServerFrame::Reactions {
            id,
            room: room.clone(),
            reactions: found.notes.reactions.clone(),
        };
        if let Some(bytes) = encode(&frame) {
            for c in self.audience(&found, Some(conn)) {
                self.queue_if(c, bytes.clone(), Caps::message_ops);
            }
        }
        let kind = EventKind::Reacted {
            by,
            id,
            from: found.message.from,
            room,
            emoji,
            added: add,
        };
        self.sinks.record(kind, now);
    }

    /// Queues `frame` for each of `audience` whose version `knows` it, `older` for the others.
    fn queue_by_version(
        &mut self,
        audience: &[ConnId],
        frame: &ServerFrame,
        older: &ServerFrame,
        knows: fn(Caps) -> bool,
    ) {
        let (Some(bytes), Some(older)) = (encode(frame), encode(older)) else {
            return;
        };
        for &c in audience {
            let Some(m) = self.clients.get(&c) else {
                continue;
            };
            let bytes = if knows(m.caps) {
                bytes.clone()
            } else {
                older.clone()
            };
            let outbox = m.outbox.clone();
            self.fanout.queue(&self.rooms, c, &outbox, bytes);
        }
    }

    /// What a client of version 6 is told after a page of history: the edits and reactions
    /// of its messages that have any.
    pub(super) fn notes_frames(
        room: Option<&str>,
        messages: &[&ChatMessage],
        mut notes: impl FnMut(MessageId) -> Option<Notes>,
    ) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        for m in messages {
            let Some(n) = notes(m.id) else { continue };
            if let Some(edit) = n.edited {
                frames.push(ServerFrame::Edited {
                    id: m.id,
                    room: room.map(str::to_owned),
                    text: m.body.text().to_owned(),
                    by: edit.by,
                    at: edit.at,
                });
            }
            if !n.reactions.is_empty() {
                frames.push(ServerFrame::Reactions {
                    id: m.id,
                    room: room.map(str::to_owned),
                    reactions: n.reactions,
                });
            }
        }
        frames
    }

    /// Sends `conn` the notes of a history page, if it speaks version 6.
    pub(super) fn send_notes(&mut self, conn: ConnId, frames: Vec<ServerFrame>) {
        if self
            .clients
            .get(&conn)
            .is_some_and(|m| m.caps.message_ops())
        {
            for frame in frames {
                self.push_to(conn, &frame);
            }
        }
    }
}

/// The text an older client (version 3 or earlier) gets in place of a deleted message.
fn deletion_notice(by: &str, author: &str) -> &'static str {
    if by.is_empty() {
        "(message expired)"
    } else if fold(by) == fold(author) {
        "(message deleted)"
    } else {
        "(message deleted by an operator)"
    }
}
