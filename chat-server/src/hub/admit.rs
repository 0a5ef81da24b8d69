//! Admitting a connection (its nickname, the `Welcome`, its rooms and kept messages) and
//! removing one, with the nickname policy: unique among the people online on every key of
//! [`NickKeys`](chat_core::names::NickKeys), and registered nicknames kept for their accounts.

use chat_core::names::{self, MAX_NICK_CHARS};
use chat_core::protocol::{
    DEFAULT_ROOM, DisconnectReason, Limits, MAX_SERVER_FRAME, NickChange, RejectReason, Rejected,
    ServerFrame, Timestamp, UserInfo,
};
use chrono::Utc;

use super::cmd::{JoinRequest, Login};
use super::conn::{Caps, ConnId};
use super::fanout::encode;
use super::model::Member;
use super::replay::Part;
use super::roster::{self, Order, WelcomeHead};
use super::{Hub, SERVER_NAME};
use crate::event::EventKind;

impl Hub {
    pub(super) fn join(&mut self, mut req: JoinRequest) {
        if self.closing {
            // Not admitted: the handshake's answer is a refusal (the session sends it when
            // the `joined` sender is dropped here).
            return;
        }
        let now = Utc::now();
        let caps = Caps::new(req.version);
        let login = req.login.take();
        let (nick, nick_change) = match &login {
            Some(login) => {
                let nick = login.account.nick.clone();
                if login.create.is_some() && !self.accounts.unreserved(&nick) {
                    let _ = req.joined.send(Err(Rejected {
                        reason: RejectReason::BadPassword,
                        message: format!(
                            "{nick:?} was registered by someone else a moment ago; \
                             log in with its password or choose another nickname"
                        ),
                    }));
                    return;
                }
                self.evict_holders(&nick);
                (nick, None)
            }
            None => {
                if let Some(refused) = self.guests_full() {
                    let _ = req.joined.send(Err(refused));
                    return;
                }
                self.guest_nick(&req.nick, caps)
            }
        };
        self.admit(&req, nick.clone(), caps, login.is_some(), now);
        self.welcome(&req, &nick, nick_change, now);
        let _ = req.joined.send(Ok(()));
        if caps.rooms() {
            self.replays
                .push(req.conn, Part::History(DEFAULT_ROOM.to_owned()));
        }
        self.sinks.record(
            EventKind::Join {
                nick: nick.clone(),
                addr: req.addr.to_string(),
                relayed: req.relayed,
                via: req.via.map(|v| v.to_string()),
                client: req.client,
            },
            now,
        );
        if let Some(change) = nick_change {
            let reason = match change {
                NickChange::Taken => "taken",
                NickChange::Registered => "registered",
            };
            let requested = req.nick;
            let kind = EventKind::NickChanged {
                requested,
                nick: nick.clone(),
                reason,
            };
            self.sinks.record(kind, now);
        }
        if let Some(login) = login {
            self.logged_in(req.conn, login, nick, caps);
        }
        self.pump(req.conn);
    }

    /// The refusal for a guest when guests hold every place not kept for accounts.
    fn guests_full(&self) -> Option<Rejected> {
        let places = self.config.limits.guest_places(self.config.max_clients);
        (self.guests >= places).then(|| Rejected {
            reason: RejectReason::ServerFull,
            message: format!(
                "the server is full for guests ({places} connected); accounts can still log \
                 in: try again later, or log in with a password"
            ),
        })
    }

    /// The nickname a guest gets: the one asked for if nobody online has it (or a look-alike)
    /// and it is not an account's, else that with a random suffix, and why.
    fn guest_nick(&self, requested: &str, caps: Caps) -> (String, Option<NickChange>) {
        let (nick, change) = self.assign_nick(requested);
        // An old client knows only `Taken`.
        let registered = change.is_some()
            && caps.accounts()
            && !self.accounts.unreserved(requested)
            && self.nick_online(requested).is_none();
        let change = change.map(|c| {
            if registered {
                NickChange::Registered
            } else {
                c
            }
        });
        (nick, change)
    }

    /// Makes the connection a member under `nick`, in the lobby; its arrival is announced to
    /// the lobby first.
    fn admit(
        &mut self,
        req: &JoinRequest,
        nick: String,
        caps: Caps,
        logged_in: bool,
        now: Timestamp,
    ) {
        let keys = names::nick_keys(&nick);
        let clients = &self.clients;
        self.nicks
            .insert(req.conn, &keys, |c| clients.get(&c).map(|m| &m.keys));
        let user = UserInfo {
            nick: nick.clone(),
            relayed: req.relayed,
        };
        let lobby = DEFAULT_ROOM;
        let joined = ServerFrame::Joined {
            room: lobby.to_owned(),
            user,
            at: now,
        };
        self.fanout
            .broadcast(&self.rooms, lobby, &joined, None, false);
        if !logged_in {
            self.guests += 1;
        }
        let account = logged_in.then(|| keys.folded.clone());
        if let Some(key) = &account {
            self.by_account.insert(key.clone(), req.conn);
        }
        self.clients.insert(
            req.conn,
            Box::new(Member {
                nick,
                keys,
                addr: req.addr,
                relayed: req.relayed,
                outbox: req.outbox.clone(),
                caps,
                account,
                rooms_created: 0,
                since: now,
                nick_from_id: self.next_msg_id,
                last_active: now,
                away: None,
                previous_login: None,
            }),
        );
        if let Some(room) = self.rooms.get_mut(lobby) {
            room.members.insert(req.conn, req.outbox.clone());
            if let Some(member) = self.clients.get(&req.conn) {
                room.order
                    .insert(req.conn, &member.keys.folded, &self.clients);
            }
            self.fanout.entered(lobby, req.conn);
        }
    }

    /// Queues the newcomer's `Welcome`: who it is, the rooms, the lobby's roster, the limits.
    fn welcome(
        &mut self,
        req: &JoinRequest,
        nick: &str,
        nick_change: Option<NickChange>,
        now: Timestamp,
    ) {
        let rooms = self.room_list();
        let limits = Limits {
            max_frame: u32::try_from(self.config.max_frame).unwrap_or(u32::MAX),
            max_message_len: u32::try_from(self.config.max_message_len).unwrap_or(u32::MAX),
            max_targets: u32::try_from(self.config.max_targets).unwrap_or(u32::MAX),
            rate_burst: self.config.rate.burst,
            rate_interval_ms: self.config.rate.interval_ms(),
        };
        let head = WelcomeHead {
            version: req.version,
            server: SERVER_NAME,
            nick,
            requested_nick: &req.nick,
            nick_change,
            server_time: now,
            room: DEFAULT_ROOM,
            rooms: &rooms,
            limits: &limits,
        };
        let nobody = Order::default();
        let order = self
            .rooms
            .get(DEFAULT_ROOM)
            .map_or(&nobody, |room| &room.order);
        let welcome = roster::welcome(&head, order, &self.clients, MAX_SERVER_FRAME);
        self.queue_to(req.conn, welcome);
        self.after_roster(req.conn, DEFAULT_ROOM);
    }

    /// An account logged in: created now if this login registers it (`--guests deny`), put
    /// back in its rooms, and given the private messages kept for it.
    fn logged_in(&mut self, conn: ConnId, login: Login, nick: String, caps: Caps) {
        let key = names::nick_keys(&nick).folded;
        if let Some(hash) = login.create {
            // Created at this login: confirmed like a /register once stored.
            if !self.create_account(conn, &key, nick, hash) {
                // Only accounts may stay, and this one cannot be stored now.
                self.remove(
                    conn,
                    DisconnectReason::ConnectionClosed,
                    "the server is too busy to store your new account; try again later".into(),
                    true,
                );
                return;
            }
        } else if caps.mentions() {
            self.record_login(conn, &key, login.account.last_login);
        }
        // An old client (version 1) knows only the lobby.
        if caps.rooms() {
            for room in login.account.rooms {
                self.replays.push(conn, Part::Room(room));
            }
        }
        self.replays.push(conn, Part::Offline(key));
    }

    /// Disconnects whoever online holds `nick` or a look-alike, and whoever is logged in to
    /// its account under another nickname (`/nick`): an account that logs in takes its
    /// nickname back (from its own older connection).
    fn evict_holders(&mut self, nick: &str) {
        let keys = names::nick_keys(nick);
        let mut holders: Vec<ConnId> = keys
            .tagged()
            .iter()
            .filter_map(|&(kind, key)| self.holder(kind, key))
            .collect();
        if let Some(&renamed) = self.by_account.get(&keys.folded) {
            holders.push(renamed);
        }
        holders.sort_unstable();
        holders.dedup();
        for conn in holders {
            self.remove(
                conn,
                DisconnectReason::LoggedInElsewhere,
                format!("{nick} logged in from another connection"),
                true,
            );
        }
    }

    /// Who online holds the uniqueness key `key` of kind `kind` (see
    /// [`NickKeys::tagged`](chat_core::names::NickKeys::tagged)).
    pub(super) fn holder(&self, kind: u8, key: &str) -> Option<ConnId> {
        self.nicks
            .get(kind, key, |c| self.clients.get(&c).map(|m| &m.keys))
    }

    /// Who online has `nick` or a look-alike, if anyone.
    pub(super) fn nick_online(&self, nick: &str) -> Option<ConnId> {
        let keys = names::nick_keys(nick);
        keys.tagged()
            .iter()
            .find_map(|&(kind, key)| self.holder(kind, key))
    }

    /// Nobody online has `nick` (or a look-alike) and it is not a registered account's.
    fn nick_free(&self, nick: &str) -> bool {
        let keys = names::nick_keys(nick);
        keys.tagged().iter().all(|&(kind, key)| {
            self.holder(kind, key).is_none() && !self.accounts.reserves(kind, key)
        })
    }

    /// The requested nickname if nobody online has it (or a look-alike), else the nickname
    /// with a random numeric suffix, shortened to fit the length limit.
    fn assign_nick(&self, requested: &str) -> (String, Option<NickChange>) {
        if self.nick_free(requested) {
            return (requested.to_owned(), None);
        }
        let mut attempt = 0u32;
        loop {
            let digits = (4 + attempt / 20).min(9);
            let low = 10u32.pow(digits - 1);
            let suffix = fastrand::u32(low..low * 10).to_string();
            let base: String = requested
                .chars()
                .take(MAX_NICK_CHARS - suffix.len())
                .collect();
            let candidate = format!("{base}{suffix}");
            if self.nick_free(&candidate) {
                return (candidate, Some(NickChange::Taken));
            }
            attempt += 1;
        }
    }

    /// Takes a client out of the chat: frees its nickname, tells it `Bye` (last frame, after
    /// whatever is still queued unless it overflowed), and optionally announces it to others.
    pub(super) fn remove(
        &mut self,
        conn: ConnId,
        reason: DisconnectReason,
        message: String,
        announce: bool,
    ) {
        if !self.clients.contains_key(&conn) {
            return;
        }
        // What the member was due gets queued before its `Bye`.
        self.fanout.before_direct(&self.rooms, conn);
        let Some(member) = self.clients.remove(&conn) else {
            return;
        };
        self.nicks.remove(conn, &member.keys);
        self.transfers_gone(conn, &member.nick);
        if let Some(key) = &member.account
            && self.by_account.get(key) == Some(&conn)
        {
            self.by_account.remove(key);
        }
        self.replays.forget(conn);
        if !member.logged_in() {
            self.guests = self.guests.saturating_sub(1);
        }
        self.away.remove(&conn);
        let now = Utc::now();
        let mut left_rooms = Vec::new();
        for (key, room) in &mut self.rooms {
            if room.members.remove(&conn).is_some() {
                room.order.remove(conn);
                room.guest_ops.remove(&conn);
                left_rooms.push((key.clone(), room.name.clone()));
            }
        }
        if announce {
            // A quit message, or an operator's words ("kicked by carol: enough"), say more
            // than the reason.
            let shown = match reason {
                DisconnectReason::Quit | DisconnectReason::Kicked | DisconnectReason::Banned => {
                    message.clone()
                }
                _ => reason.describe().to_owned(),
            };
            for (key, name) in left_rooms {
                // The lobby has version 1 members, who know only the first reasons (the
                // message still names the real one); other rooms have none.
                let version = if key == DEFAULT_ROOM { 1 } else { 2 };
                let frame = ServerFrame::Left {
                    room: name,
                    nick: member.nick.clone(),
                    reason: reason.for_version(version),
                    message: shown.clone(),
                    at: now,
                };
                self.fanout
                    .broadcast(&self.rooms, &key, &frame, None, false);
            }
        }
        let overflowed = reason == DisconnectReason::SendQueueExceeded;
        let bye = encode(&ServerFrame::Bye {
            reason: member.caps.reason(reason),
            message: message.clone(),
        });
        member.outbox.close(bye, overflowed);
        let addr = member.addr.to_string();
        let kind = if reason == DisconnectReason::Quit {
            EventKind::Leave {
                nick: member.nick,
                addr,
                message,
            }
        } else {
            EventKind::Disconnect {
                nick: member.nick,
                addr,
                reason,
                message,
            }
        };
        self.sinks.record(kind, now);
    }
}
