//! Rooms: entering (creating) and leaving them, topics, rosters, the list of rooms, and
//! history (the recent messages the room keeps, older pages read from the store).

use chat_core::names;
use chat_core::protocol::{
    ChatMessage, DEFAULT_ROOM, DisconnectReason, ErrorCode, MAX_SERVER_FRAME, MessageId, RoomInfo,
    ServerFrame, UserInfo,
};
use chrono::Utc;

use super::Hub;
use super::conn::ConnId;
use super::fanout::encode;
use super::frames::HistoryFrame;
use super::model::{Room, room_key};
use super::replay::{newest_that_fit, size};
use super::roster;
use crate::config::MAX_HISTORY_PAGE;
use crate::event::EventKind;
use crate::stats::Stats;
use crate::store::{StoredRoom, Write};

impl Hub {
    /// Puts `conn` in a room, creating it (and storing it) if it does not exist: the members
    /// are told, the newcomer gets `Entered`, the roster and the recent history. `remember`
    /// adds the room to the connection's account (not when the account's rooms are restored).
    pub(super) fn enter_room(&mut self, conn: ConnId, room: &str, remember: bool) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let name = room.strip_prefix('#').unwrap_or(room);
        if let Err(rule) = names::validate_room(name) {
            let message = format!("invalid room name {room:?}: {rule}");
            self.error(conn, None, ErrorCode::InvalidRoom(room.to_owned()), message);
            return;
        }
        let key = room_key(name);
        let account = member.account_key().filter(|_| remember);
        let nick = member.nick.clone();
        let user = UserInfo {
            nick: nick.clone(),
            relayed: member.relayed,
        };
        let outbox = member.outbox.clone();
        if self.rooms.get(&key).is_some_and(|r| r.has(conn)) {
            // Already in: the answer is the room's state again (a client rejoining its
            // rooms after a reconnect, when the server restored them at login already).
            self.send_room_state(conn, &key);
            return;
        }
        // What must be stored is refused now rather than lost later.
        let creates = !self.rooms.contains_key(&key);
        if (creates || account.is_some()) && !self.store_has_room(conn) {
            return;
        }
        if creates && !self.create_room(conn, &key, name) {
            return;
        }
        let now = Utc::now();
        let Some(r) = self.rooms.get(&key) else {
            return;
        };
        let joined = ServerFrame::Joined {
            room: r.name.clone(),
            user,
            at: now,
        };
        self.fanout
            .broadcast(&self.rooms, &key, &joined, None, false);
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        r.members.insert(conn, outbox);
        r.last_used = now;
        if account.is_some() {
            r.accounts += 1;
        }
        if let Some(member) = self.clients.get(&conn) {
            r.order.insert(conn, &member.keys.folded, &self.clients);
        }
        let event = EventKind::RoomJoin {
            nick,
            room: r.name.clone(),
        };
        self.fanout.entered(&key, conn);
        self.send_room_state(conn, &key);
        self.replay(conn, &key);
        self.sinks.record(event, now);
        if let Some(account) = account {
            self.durable.write(Write::Membership {
                account,
                room: key,
                joined: true,
            });
        }
    }

    /// Creates room `key` named `name` for `conn`, within its share (per guest, per address)
    /// and `--max-rooms` (making way by deleting the unused room unused longest, if there is
    /// one); false (with `conn` told) otherwise.
    fn create_room(&mut self, conn: ConnId, key: &str, name: &str) -> bool {
        if let Err(message) = self.may_create_room(conn) {
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return false;
        }
        if self.rooms.len() >= self.config.max_rooms && !self.make_way() {
            let message = format!(
                "this server has reached its limit of {} rooms, all in use: join an existing \
                 one (/rooms lists them)",
                self.config.max_rooms
            );
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return false;
        }
        let by_guest = self.clients.get_mut(&conn).is_some_and(|m| {
            m.rooms_created += 1;
            !m.logged_in()
        });
        let mut room = Room::new(name.to_owned(), String::new());
        room.by_guest = by_guest;
        self.rooms.insert(key.to_owned(), room);
        self.creator_is_op(conn, key);
        self.durable.write(Write::Room(StoredRoom {
            key: key.to_owned(),
            name: name.to_owned(),
            topic: String::new(),
            by_guest,
        }));
        true
    }

    /// `Entered` (the room's name and topic) and its roster, for a member of room `key`.
    fn send_room_state(&mut self, conn: ConnId, key: &str) {
        let Some(r) = self.rooms.get(key) else {
            return;
        };
        let entered = ServerFrame::Entered {
            room: r.name.clone(),
            topic: r.topic.clone(),
        };
        let roster = roster::roster(&r.name, &r.order, &self.clients, MAX_SERVER_FRAME);
        self.push_to(conn, &entered);
        self.queue_to(conn, roster);
        self.after_roster(conn, key);
    }

    /// Takes `conn` out of a room (never the lobby, where everyone stays).
    pub(super) fn part_room(&mut self, conn: ConnId, room: &str) {
        if !self.clients.contains_key(&conn) {
            return;
        }
        let key = room_key(room);
        if key == DEFAULT_ROOM {
            let message = format!("everyone stays in #{DEFAULT_ROOM}");
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        }
        if !self.rooms.get(&key).is_some_and(|r| r.has(conn)) {
            self.not_in_room(conn, None, room);
            return;
        }
        self.leave_room(conn, &key, DisconnectReason::LeftRoom, String::new());
    }

    /// Takes member `conn` out of room `key` (`/part`, or a kick): it gets `Parted`, the
    /// others `Left` with `reason` and `message`, and its account no longer comes back to it.
    pub(super) fn leave_room(
        &mut self,
        conn: ConnId,
        key: &str,
        reason: DisconnectReason,
        message: String,
    ) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let nick = member.nick.clone();
        let account = member.account_key();
        self.fanout.before_direct(&self.rooms, conn);
        let Some(r) = self.rooms.get_mut(key).filter(|r| r.has(conn)) else {
            return;
        };
        r.members.remove(&conn);
        r.order.remove(conn);
        // A guest who leaves is no longer the room's operator.
        r.guest_ops.remove(&conn);
        let name = r.name.clone();
        r.last_used = Utc::now();
        if account.is_some() {
            r.accounts = r.accounts.saturating_sub(1);
        }
        self.push_to(conn, &ServerFrame::Parted { room: name.clone() });
        let now = Utc::now();
        // Rooms other than the lobby have no version 1 members.
        let frame = ServerFrame::Left {
            room: name.clone(),
            nick: nick.clone(),
            reason: reason.for_version(2),
            message,
            at: now,
        };
        self.fanout.broadcast(&self.rooms, key, &frame, None, false);
        self.sinks
            .record(EventKind::RoomPart { nick, room: name }, now);
        if let Some(account) = account {
            self.durable.write(Write::Membership {
                account,
                room: key.to_owned(),
                joined: false,
            });
        }
    }

    /// Sets a room's topic (members only) and tells its members who know topics.
    pub(super) fn set_topic(&mut self, conn: ConnId, room: &str, topic: String) {
        let key = room_key(room);
        let Some(by) = self.clients.get(&conn).map(|m| m.nick.clone()) else {
            return;
        };
        if !self.rooms.get(&key).is_some_and(|r| r.has(conn)) {
            self.not_in_room(conn, None, room);
            return;
        }
        if self.rooms.get(&key).is_some_and(|r| r.topic_locked) && !self.room_op(conn, &key) {
            let name = self
                .rooms
                .get(&key)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            let message = format!("the topic of #{name} is locked: only its operators may set it");
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        }
        if let Some(refusal) = self.muted(conn, Some(&key)) {
            self.error(conn, None, ErrorCode::NotAllowed, refusal);
            return;
        }
        if !self.store_has_room(conn) {
            return;
        }
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        r.topic.clone_from(&topic);
        let name = r.name.clone();
        let members: Vec<ConnId> = r.members.keys().copied().collect();
        let by_guest = r.by_guest;
        self.durable.write(Write::Room(StoredRoom {
            key,
            name: name.clone(),
            topic: topic.clone(),
            by_guest,
        }));
        let now = Utc::now();
        let event = EventKind::Topic {
            nick: by.clone(),
            room: name.clone(),
            topic: topic.clone(),
        };
        self.sinks.record(event, now);
        let frame = ServerFrame::Topic {
            room: name,
            topic,
            by,
            at: now,
        };
        let Some(bytes) = encode(&frame) else {
            return;
        };
        for id in members {
            if self.clients.get(&id).is_some_and(|m| m.caps.rooms()) {
                self.queue_to(id, Ok(bytes.clone()));
            }
        }
    }

    /// Sends `conn` the room's recent messages (up to the configured replay), as history.
    pub(super) fn replay(&mut self, conn: ConnId, key: &str) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let len = room.recent.len();
        let kept = self.config.history_replay.min(len);
        if kept == 0 {
            return;
        }
        let sizes = room.recent.range(len - kept..).map(|m| size(m));
        let skip = len - newest_that_fit(sizes, self.history_budget()).min(kept);
        let frame = HistoryFrame {
            room: &room.name,
            messages: room.recent.range(skip..),
            more: skip > 0 || room.older,
        };
        let bytes = chat_core::frame::encode_frame(&frame, MAX_SERVER_FRAME);
        let notes = room_notes(room, skip..len);
        self.queue_to(conn, bytes);
        self.send_notes(conn, notes);
    }

    /// Sends a page of a room's history, read by the store thread (members only).
    pub(super) fn history(
        &mut self,
        conn: ConnId,
        room: &str,
        before: Option<MessageId>,
        limit: u32,
    ) {
        let key = room_key(room);
        let Some(r) = self.rooms.get(&key).filter(|r| r.has(conn)) else {
            self.not_in_room(conn, None, room);
            return;
        };
        let name = r.name.clone();
        let limit = (limit as usize).clamp(1, MAX_HISTORY_PAGE);
        let budget = self.history_budget();
        if !self.durable.exists() {
            // No store: what the room keeps in memory is all there is.
            let older = r
                .recent
                .partition_point(|m| before.is_none_or(|b| m.id < b));
            let page = limit.min(older);
            let sizes = r.recent.range(older - page..older).map(|m| size(m));
            let skip = older - newest_that_fit(sizes, budget).min(page);
            let frame = HistoryFrame {
                room: &name,
                messages: r.recent.range(skip..older),
                more: skip > 0,
            };
            let bytes = chat_core::frame::encode_frame(&frame, MAX_SERVER_FRAME);
            let notes = room_notes(r, skip..older);
            self.queue_to(conn, bytes);
            self.send_notes(conn, notes);
            return;
        }
        self.send_page(
            conn,
            Some(name.clone()),
            move |store| store.history(&key, before, limit),
            move |messages, more| ServerFrame::History {
                room: name,
                messages,
                more,
            },
        );
    }

    /// Whether the store's queue has room for a change `conn` asks for; if not, `conn` is told
    /// to try again and nothing is changed.
    pub(super) fn store_has_room(&mut self, conn: ConnId) -> bool {
        if self.durable.has_room(2) {
            return true;
        }
        Stats::add(&self.stats.store_busy, 1);
        self.busy(conn, "store this");
        false
    }

    pub(super) fn who(&mut self, conn: ConnId, room: &str) {
        let key = room_key(room);
        match self.rooms.get(&key) {
            Some(r) => {
                let frame = roster::roster(&r.name, &r.order, &self.clients, MAX_SERVER_FRAME);
                self.queue_to(conn, frame);
                self.after_roster(conn, &key);
            }
            None => {
                let message = format!("there is no room named {room:?}");
                self.error(conn, None, ErrorCode::NoSuchRoom(room.to_owned()), message);
            }
        }
    }

    pub(super) fn room_list(&self) -> Vec<RoomInfo> {
        let mut rooms: Vec<RoomInfo> = self
            .rooms
            .values()
            .map(|r| RoomInfo {
                name: r.name.clone(),
                topic: r.topic.clone(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
            })
            .collect();
        rooms.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        rooms
    }
}

/// The edits and reactions of `room`'s recent messages in `range`, as frames.
fn room_notes(room: &Room, range: std::ops::Range<usize>) -> Vec<ServerFrame> {
    if room.notes.is_empty() {
        return Vec::new();
    }
    let page: Vec<&ChatMessage> = room.recent.range(range).map(|m| &**m).collect();
    Hub::notes_frames(Some(&room.name), &page, |id| room.notes.get(&id).cloned())
}
