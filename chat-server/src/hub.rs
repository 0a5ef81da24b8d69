//! The hub: one task that owns every piece of shared chat state (who is online, nicknames,
//! rooms) and decides what each command means.
//!
//! Sessions send it [`Cmd`]s over a bounded channel. It never awaits a client: delivering a
//! message means encoding it once and pushing the same bytes into each recipient's
//! [`Outbox`], which either accepts them at once or reports that the client has fallen too
//! far behind, in which case the hub disconnects that client. Because one task handles every
//! command in order, all clients see messages in the same order and no lock is ever held
//! across an await. Every decision also produces one [`Event`] for the log (and the monitor).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use chat_core::frame::encode_frame;
use chat_core::names::{self, MAX_NICK_CHARS, NickKeys};
use chat_core::protocol::{
    ChatMessage, DEFAULT_ROOM, DisconnectReason, ErrorCode, ErrorFrame, Limits, MAX_SERVER_FRAME,
    NickChange, Outgoing, RoomInfo, ServerFrame, Target, Timestamp, UserInfo, Welcome,
};
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, EventKind};
use crate::eventlog::LogSender;
use crate::monitor::Monitor;
use crate::outbox::{Outbox, PushError};
use crate::stats::Stats;

/// Identifies one connection for its whole life.
pub(crate) type ConnId = u64;

/// Commands sessions send to the hub.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A connection completed the handshake.
    Join(Box<JoinRequest>),
    /// A validated message from a client.
    Send { conn: ConnId, msg: Outgoing },
    /// A roster request.
    Who { conn: ConnId, room: String },
    /// A client was muted by its rate limiter.
    RateLimited { conn: ConnId, retry_after_ms: u64 },
    /// A connection ended (quit, closed, protocol error, flooding).
    Leave {
        conn: ConnId,
        reason: DisconnectReason,
        message: String,
    },
    /// An event produced outside the hub (refused handshakes, periodic stats).
    Record(EventKind),
}

/// Everything the hub needs to admit a connection.
#[derive(Debug)]
pub(crate) struct JoinRequest {
    pub conn: ConnId,
    pub version: u16,
    pub nick: String,
    pub client: String,
    pub addr: SocketAddr,
    pub relayed: bool,
    pub outbox: Arc<Outbox>,
    /// Answered once the Welcome is queued; dropped if the client is not admitted.
    pub joined: oneshot::Sender<()>,
}

#[derive(Debug)]
struct Member {
    nick: String,
    keys: NickKeys,
    addr: SocketAddr,
    relayed: bool,
    outbox: Arc<Outbox>,
}

#[derive(Debug)]
struct Room {
    name: String,
    topic: String,
    /// Members and their queues, so fan-out needs no second lookup.
    members: HashMap<ConnId, Arc<Outbox>>,
}

/// The hub's state. See the module documentation.
#[derive(Debug)]
pub(crate) struct Hub {
    config: Arc<Config>,
    stats: Arc<Stats>,
    clients: HashMap<ConnId, Member>,
    /// Every uniqueness key of every online nickname.
    nicks: HashMap<(u8, String), ConnId>,
    /// Rooms by folded name.
    rooms: HashMap<String, Room>,
    next_msg_id: u64,
    next_seq: u64,
    log: Option<LogSender>,
    monitor: Option<Arc<Monitor>>,
    /// Clients whose queue overflowed while handling the current command.
    overflowed: Vec<ConnId>,
    /// Everyone has been told goodbye; nobody new is admitted.
    closing: bool,
    /// The log queue was full at the last record.
    log_behind: bool,
}

const SERVER_NAME: &str = concat!("chat-server/", env!("CARGO_PKG_VERSION"));

impl Hub {
    pub(crate) fn new(
        config: Arc<Config>,
        stats: Arc<Stats>,
        log: Option<LogSender>,
        monitor: Option<Arc<Monitor>>,
    ) -> Self {
        let mut rooms = HashMap::new();
        rooms.insert(
            DEFAULT_ROOM.to_owned(),
            Room {
                name: DEFAULT_ROOM.to_owned(),
                topic: String::new(),
                members: HashMap::new(),
            },
        );
        Hub {
            config,
            stats,
            clients: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
            next_msg_id: 1,
            next_seq: 1,
            log,
            overflowed: Vec::new(),
            closing: false,
            log_behind: false,
            monitor,
        }
    }

    /// Handles commands until every session is gone (or `stop` fires). When `shutdown` fires
    /// it first handles what sessions had already read, then says `Bye` to everyone and admits
    /// nobody new, but keeps recording events (refused handshakes, late disconnects) until the
    /// sessions have finished.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        shutdown: CancellationToken,
        stop: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = shutdown.cancelled(), if !self.closing => {
                    while let Ok(cmd) = rx.try_recv() {
                        self.handle(cmd);
                    }
                    self.say_goodbye();
                }
                n = rx.recv_many(&mut batch, 64) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in batch.drain(..) {
                        self.handle(cmd);
                    }
                }
            }
        }
        while let Ok(cmd) = rx.try_recv() {
            self.handle(cmd);
        }
        self.say_goodbye();
    }

    fn say_goodbye(&mut self) {
        self.closing = true;
        let everyone: Vec<ConnId> = self.clients.keys().copied().collect();
        for conn in everyone {
            self.remove(
                conn,
                DisconnectReason::ServerShutdown,
                "the server is shutting down".to_owned(),
                false,
            );
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Join(req) => self.join(*req),
            Cmd::Send { conn, msg } => self.send(conn, msg),
            Cmd::Who { conn, room } => self.who(conn, &room),
            Cmd::RateLimited {
                conn,
                retry_after_ms,
            } => {
                if let Some(m) = self.clients.get(&conn) {
                    let kind = EventKind::RateLimited {
                        nick: m.nick.clone(),
                        addr: m.addr.to_string(),
                        retry_after_ms,
                    };
                    self.emit(kind, Utc::now());
                }
            }
            Cmd::Leave {
                conn,
                reason,
                message,
            } => self.remove(conn, reason, message, true),
            Cmd::Record(kind) => self.emit(kind, Utc::now()),
        }
        // Disconnecting a slow client announces its departure, which can overflow another
        // queue: keep going until nobody is left over.
        while let Some(conn) = self.overflowed.pop() {
            let limit = self.config.send_queue_bytes;
            self.remove(
                conn,
                DisconnectReason::SendQueueExceeded,
                format!("send queue exceeded ({limit} bytes waiting): the client is not reading"),
                true,
            );
        }
    }

    fn join(&mut self, req: JoinRequest) {
        if self.closing {
            // Not admitted: the handshake's answer is a refusal (the session sends it when
            // the `joined` sender is dropped here).
            return;
        }
        let now = Utc::now();
        let (nick, nick_change) = self.assign_nick(&req.nick);
        let keys = names::nick_keys(&nick);
        for (kind, key) in keys.tagged() {
            self.nicks.insert((kind, key.to_owned()), req.conn);
        }
        let online = self.stats.clients_now.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats.clients_peak.fetch_max(online, Ordering::Relaxed);

        let user = UserInfo {
            nick: nick.clone(),
            relayed: req.relayed,
        };
        let lobby = DEFAULT_ROOM.to_owned();
        self.broadcast(
            &lobby,
            &ServerFrame::Joined {
                room: lobby.clone(),
                user,
                at: now,
            },
            None,
        );
        self.clients.insert(
            req.conn,
            Member {
                nick: nick.clone(),
                keys,
                addr: req.addr,
                relayed: req.relayed,
                outbox: req.outbox.clone(),
            },
        );
        if let Some(room) = self.rooms.get_mut(&lobby) {
            room.members.insert(req.conn, req.outbox.clone());
        }

        let welcome = ServerFrame::Welcome(Welcome {
            version: req.version,
            server: SERVER_NAME.to_owned(),
            nick: nick.clone(),
            requested_nick: req.nick.clone(),
            nick_change,
            server_time: now,
            room: lobby.clone(),
            rooms: self.room_list(),
            roster: self.roster(&lobby),
            limits: Limits {
                max_frame: u32::try_from(self.config.max_frame).unwrap_or(u32::MAX),
                max_message_len: u32::try_from(self.config.max_message_len).unwrap_or(u32::MAX),
                max_targets: u32::try_from(self.config.max_targets).unwrap_or(u32::MAX),
                rate_burst: self.config.rate.burst,
                rate_interval_ms: self.config.rate.interval_ms(),
            },
        });
        self.push_to(req.conn, &welcome);
        let _ = req.joined.send(());

        self.emit(
            EventKind::Join {
                nick: nick.clone(),
                addr: req.addr.to_string(),
                relayed: req.relayed,
                client: req.client,
            },
            now,
        );
        if nick_change.is_some() {
            self.emit(
                EventKind::NickChanged {
                    requested: req.nick,
                    nick,
                    reason: "taken",
                },
                now,
            );
        }
    }

    fn nick_free(&self, nick: &str) -> bool {
        let keys = names::nick_keys(nick);
        keys.tagged()
            .iter()
            .all(|&(kind, key)| !self.nicks.contains_key(&(kind, key.to_owned())))
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

    fn send(&mut self, conn: ConnId, msg: Outgoing) {
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
        let mut missing = Vec::new();
        let (to, recipients) = match to {
            Target::Room(room) => {
                let key = room_key(&room);
                match self.rooms.get(&key) {
                    Some(r) if r.members.contains_key(&conn) => {
                        (Target::Room(r.name.clone()), Recipients::Room(key))
                    }
                    _ => {
                        let message = format!("you are not in a room named {room:?}");
                        self.error(conn, Some(tag), ErrorCode::NoSuchRoom(room), message);
                        return;
                    }
                }
            }
            Target::Users(nicks) => {
                let mut ids: Vec<ConnId> = Vec::with_capacity(nicks.len());
                for nick in nicks {
                    match self.nicks.get(&(0, names::fold(&nick))) {
                        Some(&id) if !ids.contains(&id) => ids.push(id),
                        Some(_) => {}
                        None => missing.push(nick),
                    }
                }
                if ids.is_empty() {
                    self.no_such_user(conn, tag, missing);
                    return;
                }
                let names = ids
                    .iter()
                    .filter_map(|id| self.clients.get(id).map(|m| m.nick.clone()))
                    .collect();
                (Target::Users(names), Recipients::Users(ids))
            }
        };
        let (id, at) = self.next_message();
        let frame = ServerFrame::Message(ChatMessage {
            id,
            at,
            from,
            to,
            body,
            attrs,
            tag: None,
        });
        let delivered = match recipients {
            Recipients::Room(key) => self.broadcast(&key, &frame, Some(conn)),
            Recipients::Users(ids) => self.deliver(&ids, &frame, conn),
        };
        if !missing.is_empty() {
            self.no_such_user(conn, tag, missing);
        }
        self.echo_and_log(conn, tag, frame, delivered);
    }

    /// Encodes `frame` once and queues it for each of `ids` except `except`.
    fn deliver(&mut self, ids: &[ConnId], frame: &ServerFrame, except: ConnId) -> u64 {
        let Some(bytes) = encode(frame) else {
            return 0;
        };
        let mut n = 0;
        for &id in ids.iter().filter(|&&id| id != except) {
            if let Some(m) = self.clients.get(&id) {
                n += push(&m.outbox, bytes.clone(), id, &mut self.overflowed);
            }
        }
        n
    }

    /// Sends the sender its copy (with its tag: the acknowledgement), counts the deliveries
    /// and turns the message into its log record.
    fn echo_and_log(&mut self, conn: ConnId, tag: u64, frame: ServerFrame, delivered: u64) {
        let ServerFrame::Message(mut message) = frame else {
            return;
        };
        message.tag = Some(tag);
        let echo = ServerFrame::Message(message);
        self.push_to(conn, &echo);
        Stats::add(&self.stats.messages_in, 1);
        Stats::add(&self.stats.deliveries, delivered + 1);
        if let ServerFrame::Message(message) = echo {
            let at = message.at;
            self.emit(EventKind::message(message), at);
        }
    }

    fn no_such_user(&mut self, conn: ConnId, tag: u64, missing: Vec<String>) {
        let message = format!("not online: {}", missing.join(", "));
        self.error(conn, Some(tag), ErrorCode::NoSuchUser(missing), message);
    }

    fn who(&mut self, conn: ConnId, room: &str) {
        let key = room_key(room);
        match self.rooms.get(&key) {
            Some(r) => {
                let frame = ServerFrame::Roster {
                    room: r.name.clone(),
                    users: self.roster(&key),
                };
                self.push_to(conn, &frame);
            }
            None => {
                let message = format!("there is no room named {room:?}");
                self.error(conn, None, ErrorCode::NoSuchRoom(room.to_owned()), message);
            }
        }
    }

    /// Takes a client out of the chat: frees its nickname, tells it `Bye` (last frame, after
    /// whatever is still queued unless it overflowed), and optionally announces it to others.
    fn remove(&mut self, conn: ConnId, reason: DisconnectReason, message: String, announce: bool) {
        let Some(member) = self.clients.remove(&conn) else {
            return;
        };
        for (kind, key) in member.keys.tagged() {
            let k = (kind, key.to_owned());
            if self.nicks.get(&k) == Some(&conn) {
                self.nicks.remove(&k);
            }
        }
        self.stats.clients_now.fetch_sub(1, Ordering::Relaxed);
        let now = Utc::now();
        let mut left_rooms = Vec::new();
        for (key, room) in &mut self.rooms {
            if room.members.remove(&conn).is_some() {
                left_rooms.push((key.clone(), room.name.clone()));
            }
        }
        if announce {
            let shown = if reason == DisconnectReason::Quit {
                message.clone()
            } else {
                reason.describe().to_owned()
            };
            for (key, name) in left_rooms {
                let frame = ServerFrame::Left {
                    room: name,
                    nick: member.nick.clone(),
                    reason,
                    message: shown.clone(),
                    at: now,
                };
                self.broadcast(&key, &frame, None);
            }
        }
        let overflowed = reason == DisconnectReason::SendQueueExceeded;
        if overflowed {
            Stats::add(&self.stats.slow_dropped, 1);
        }
        let bye = encode(&ServerFrame::Bye {
            reason,
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
                reason: reason.describe().to_owned(),
                message,
            }
        };
        self.emit(kind, now);
    }

    /// Encodes `frame` once and queues it for every member of the room except `except`;
    /// returns how many queues took it.
    fn broadcast(&mut self, room_key: &str, frame: &ServerFrame, except: Option<ConnId>) -> u64 {
        let Some(room) = self.rooms.get(room_key) else {
            return 0;
        };
        let Some(bytes) = encode(frame) else {
            return 0;
        };
        let mut n = 0;
        for (&id, outbox) in &room.members {
            if Some(id) != except {
                n += push(outbox, bytes.clone(), id, &mut self.overflowed);
            }
        }
        n
    }

    fn push_to(&mut self, conn: ConnId, frame: &ServerFrame) {
        if let (Some(m), Some(bytes)) = (self.clients.get(&conn), encode(frame)) {
            push(&m.outbox, bytes, conn, &mut self.overflowed);
        }
    }

    fn error(&mut self, conn: ConnId, tag: Option<u64>, code: ErrorCode, message: String) {
        self.push_to(conn, &ServerFrame::Error(ErrorFrame { tag, code, message }));
    }

    fn roster(&self, room_key: &str) -> Vec<UserInfo> {
        let Some(room) = self.rooms.get(room_key) else {
            return Vec::new();
        };
        let mut users: Vec<(&str, UserInfo)> = room
            .members
            .keys()
            .filter_map(|id| self.clients.get(id))
            .map(|m| {
                (
                    m.keys.folded.as_str(),
                    UserInfo {
                        nick: m.nick.clone(),
                        relayed: m.relayed,
                    },
                )
            })
            .collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        users.into_iter().map(|(_, u)| u).collect()
    }

    fn room_list(&self) -> Vec<RoomInfo> {
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

    fn next_message(&mut self) -> (u64, Timestamp) {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        (id, Utc::now())
    }

    fn emit(&mut self, kind: EventKind, ts: Timestamp) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let event = Arc::new(Event { seq, ts, kind });
        if let Some(monitor) = &self.monitor {
            monitor.publish(&event);
        }
        if let Some(log) = &self.log {
            match log.try_send(event) {
                Ok(()) => self.log_behind = false,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Stats::add(&self.stats.log_dropped, 1);
                    if !self.log_behind {
                        tracing::warn!(
                            "the message log cannot keep up with the disk: dropping records \
                             (counted as log_dropped)"
                        );
                        self.log_behind = true;
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// The key a room is stored under: the name without `#`, case-folded. Names already in
/// canonical form (the usual case, e.g. `lobby`) skip the Unicode folding.
fn room_key(room: &str) -> String {
    let name = room.strip_prefix('#').unwrap_or(room);
    let canonical = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    if canonical {
        name.to_owned()
    } else {
        names::fold(name)
    }
}

/// Who receives a message.
enum Recipients {
    /// Every member of the room with this key.
    Room(String),
    /// These connections.
    Users(Vec<ConnId>),
}

/// Encodes a server frame; a frame too large to send is a server bug, logged and skipped.
fn encode(frame: &ServerFrame) -> Option<Bytes> {
    match encode_frame(frame, MAX_SERVER_FRAME) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!("cannot encode a server frame: {e}");
            None
        }
    }
}

/// Queues `bytes`; on overflow remembers the client for disconnection. Returns 1 if queued.
fn push(outbox: &Outbox, bytes: Bytes, conn: ConnId, overflowed: &mut Vec<ConnId>) -> u64 {
    match outbox.push(bytes) {
        Ok(()) => 1,
        Err(PushError::Full) => {
            if !overflowed.contains(&conn) {
                overflowed.push(conn);
            }
            0
        }
        Err(PushError::Closed) => 0,
    }
}
