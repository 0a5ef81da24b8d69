//! The hub: one task that owns every piece of shared chat state (who is online, nicknames,
//! rooms) and decides what each command means.
//!
//! Sessions send it [`Cmd`]s over a bounded channel. It never awaits a client: delivering a
//! message means encoding it once and pushing the same bytes into each recipient's
//! [`Outbox`], which either accepts them at once or reports that the client has fallen too
//! far behind, in which case the hub disconnects that client. Because one task handles every
//! command in order, all clients see messages in the same order and no lock is ever held
//! across an await. Every decision also produces one [`Event`] for the log (and the monitor).
//!
//! Fan-out is batched: the hub takes the commands waiting for it in one go, and consecutive
//! broadcasts to the same room are encoded back to back into one buffer (a [`Run`]) that is
//! queued once per member when the batch ends, or earlier whenever something else must reach
//! one of those members first. A message to 1,000 members costs 1,000 queue pushes only when
//! it is alone; a burst of 50 costs the same 1,000, not 50,000.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use chat_core::frame::{FrameError, encode_frame, encode_frame_into};
use chat_core::names::{self, MAX_NICK_CHARS, NickKeys};
use chat_core::protocol::{
    ChatMessage, DEFAULT_ROOM, DisconnectReason, ErrorCode, ErrorFrame, Limits, MAX_SERVER_FRAME,
    NickChange, Outgoing, RoomInfo, ServerFrame, Target, Timestamp, UserInfo,
};
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::{Event, EventKind};
use crate::eventlog::LogSender;
use crate::monitor::Monitor;
use crate::outbox::{Outbox, PushError};
use crate::roster::{self, Listed, Order, WelcomeHead};
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

/// Room broadcasts waiting to be queued: their frames are in `Hub::run_buf`, back to back.
#[derive(Debug)]
struct Run {
    /// The room's key.
    room: String,
    /// The member who does not get these frames (a message's sender, who gets an echo).
    except: Option<ConnId>,
    /// Members who joined the room after the run started: each gets only the frames added
    /// after it joined (a slice of the same buffer).
    late: Vec<Late>,
    /// How many of the frames are chat messages (counted as deliveries).
    messages: u64,
}

/// A member who joined a room while a run for it was being built.
#[derive(Debug)]
struct Late {
    conn: ConnId,
    /// The run's length in bytes when it joined.
    offset: usize,
    /// The run's message count when it joined.
    messages: u64,
}

/// A run is queued once it holds this many bytes, so that one piece stays small next to a
/// client's send queue and latency does not wait for a huge batch.
const RUN_BYTES: usize = 64 * 1024;

#[derive(Debug)]
struct Room {
    name: String,
    topic: String,
    /// Members and their queues, so fan-out needs no second lookup.
    members: HashMap<ConnId, Arc<Outbox>>,
    /// The same members in roster order.
    order: Order,
}

impl Listed for Member {
    fn sort_key(&self) -> &str {
        &self.keys.folded
    }
    fn nick(&self) -> &str {
        &self.nick
    }
    fn relayed(&self) -> bool {
        self.relayed
    }
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
    /// Clients whose queue overflowed; disconnected once the current batch is handled.
    overflowed: Vec<ConnId>,
    /// Broadcasts encoded but not queued yet, and their frames.
    run: Option<Run>,
    run_buf: BytesMut,
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
                order: Order::default(),
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
            run: None,
            run_buf: BytesMut::new(),
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
                    self.settle();
                    self.say_goodbye();
                }
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in batch.drain(..) {
                        self.handle(cmd);
                    }
                    self.settle();
                }
            }
        }
        while let Ok(cmd) = rx.try_recv() {
            self.handle(cmd);
        }
        self.settle();
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
        self.settle();
    }

    /// Ends a batch: queues the pending run and disconnects clients whose queue overflowed.
    /// Announcing a departure can overflow another queue: keep going until nobody is left.
    pub(crate) fn settle(&mut self) {
        loop {
            self.flush();
            let Some(conn) = self.overflowed.pop() else {
                break;
            };
            let limit = self.config.send_queue_bytes;
            self.remove(
                conn,
                DisconnectReason::SendQueueExceeded,
                format!("send queue exceeded ({limit} bytes waiting): the client is not reading"),
                true,
            );
        }
    }

    pub(crate) fn handle(&mut self, cmd: Cmd) {
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
            false,
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
            if let Some(member) = self.clients.get(&req.conn) {
                room.order
                    .insert(req.conn, &member.keys.folded, &self.clients);
            }
            if let Some(run) = self.run.as_mut().filter(|r| r.room == lobby) {
                run.late.push(Late {
                    conn: req.conn,
                    offset: self.run_buf.len(),
                    messages: run.messages,
                });
            }
        }

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
            nick: &nick,
            requested_nick: &req.nick,
            nick_change,
            server_time: now,
            room: &lobby,
            rooms: &rooms,
            limits: &limits,
        };
        let nobody = Order::default();
        let order = self.rooms.get(&lobby).map_or(&nobody, |room| &room.order);
        let welcome = roster::welcome(&head, order, &self.clients, MAX_SERVER_FRAME);
        self.queue_to(req.conn, welcome);
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
        match recipients {
            Recipients::Room(key) => {
                self.broadcast(&key, &frame, Some(conn), true);
            }
            Recipients::Users(ids) => self.deliver(&ids, &frame, conn),
        }
        if !missing.is_empty() {
            self.no_such_user(conn, tag, missing);
        }
        self.echo_and_log(conn, tag, frame);
    }

    /// Encodes `frame` once and queues it for each of `ids` except `except`.
    fn deliver(&mut self, ids: &[ConnId], frame: &ServerFrame, except: ConnId) {
        let Some(bytes) = encode(frame) else {
            return;
        };
        let mut n = 0;
        for &id in ids.iter().filter(|&&id| id != except) {
            self.flush_before_direct(id);
            if let Some(m) = self.clients.get(&id) {
                n += push(&m.outbox, bytes.clone(), id, &mut self.overflowed);
            }
        }
        Stats::add(&self.stats.deliveries, n);
    }

    /// Sends the sender its copy (with its tag: the acknowledgement), counts it and turns the
    /// message into its log record.
    fn echo_and_log(&mut self, conn: ConnId, tag: u64, frame: ServerFrame) {
        let ServerFrame::Message(mut message) = frame else {
            return;
        };
        message.tag = Some(tag);
        let echo = ServerFrame::Message(message);
        self.push_to(conn, &echo);
        Stats::add(&self.stats.messages_in, 1);
        Stats::add(&self.stats.deliveries, 1);
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
                let frame = roster::roster(&r.name, &r.order, &self.clients, MAX_SERVER_FRAME);
                self.queue_to(conn, frame);
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
        if !self.clients.contains_key(&conn) {
            return;
        }
        // What the member was due gets queued before its `Bye`.
        self.flush_before_direct(conn);
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
                room.order.remove(conn);
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
                self.broadcast(&key, &frame, None, false);
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

    /// Encodes `frame` once for every member of the room except `except`, appending it to
    /// the pending run when that run has the same room and exception (see [`Run`]).
    /// `message` says whether it counts as a delivered chat message.
    fn broadcast(
        &mut self,
        room_key: &str,
        frame: &ServerFrame,
        except: Option<ConnId>,
        message: bool,
    ) {
        if !self.rooms.contains_key(room_key) {
            return;
        }
        let same = self
            .run
            .as_ref()
            .is_some_and(|r| r.room == room_key && r.except == except);
        if !same {
            self.flush();
            self.run = Some(Run {
                room: room_key.to_owned(),
                except,
                late: Vec::new(),
                messages: 0,
            });
        }
        if let Err(e) = encode_frame_into(frame, MAX_SERVER_FRAME, &mut self.run_buf) {
            tracing::error!("cannot encode a server frame: {e}");
            return;
        }
        if message && let Some(run) = self.run.as_mut() {
            run.messages += 1;
        }
        if self.run_buf.len() >= RUN_BYTES {
            self.flush();
        }
    }

    /// Queues the pending run for its room's members, as one piece each.
    fn flush(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        if self.run_buf.is_empty() {
            return;
        }
        let bytes = self.run_buf.split().freeze();
        let Some(room) = self.rooms.get(&run.room) else {
            return;
        };
        let mut late = run.late;
        late.sort_unstable_by_key(|l| l.conn);
        let mut delivered = 0;
        for (&id, outbox) in &room.members {
            if Some(id) == run.except {
                continue;
            }
            // Whoever joined during the run gets what came after its join.
            let (piece, messages) = match late.binary_search_by_key(&id, |l| l.conn) {
                Err(_) => (bytes.clone(), run.messages),
                Ok(i) if late[i].offset < bytes.len() => (
                    bytes.slice(late[i].offset..),
                    run.messages - late[i].messages,
                ),
                Ok(_) => continue,
            };
            delivered += messages * push(outbox, piece, id, &mut self.overflowed);
        }
        Stats::add(&self.stats.deliveries, delivered);
    }

    /// Before something is queued for `conn` alone, queues the pending run if `conn` is one of
    /// its recipients, so that everything reaches it in the order it happened.
    fn flush_before_direct(&mut self, conn: ConnId) {
        let Some(run) = &self.run else {
            return;
        };
        let joined_after_all = run
            .late
            .iter()
            .any(|l| l.conn == conn && l.offset == self.run_buf.len());
        if run.except == Some(conn) || joined_after_all {
            return;
        }
        if self
            .rooms
            .get(&run.room)
            .is_some_and(|r| r.members.contains_key(&conn))
        {
            self.flush();
        }
    }

    fn push_to(&mut self, conn: ConnId, frame: &ServerFrame) {
        self.queue_to(conn, encode_frame(frame, MAX_SERVER_FRAME));
    }

    /// Queues an encoded frame for `conn` alone.
    fn queue_to(&mut self, conn: ConnId, frame: Result<Bytes, FrameError>) {
        let Some(bytes) = logged(frame) else {
            return;
        };
        self.flush_before_direct(conn);
        if let Some(m) = self.clients.get(&conn) {
            push(&m.outbox, bytes, conn, &mut self.overflowed);
        }
    }

    fn error(&mut self, conn: ConnId, tag: Option<u64>, code: ErrorCode, message: String) {
        self.push_to(conn, &ServerFrame::Error(ErrorFrame { tag, code, message }));
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
    logged(encode_frame(frame, MAX_SERVER_FRAME))
}

/// The encoded frame, or `None` with the failure logged.
fn logged(frame: Result<Bytes, FrameError>) -> Option<Bytes> {
    match frame {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::frame::{LEN_PREFIX, decode_payload};
    use chat_core::protocol::Body;

    fn hub() -> Hub {
        Hub::new(
            Arc::new(Config::default()),
            Arc::new(Stats::default()),
            None,
            None,
        )
    }

    fn join(hub: &mut Hub, conn: ConnId, nick: &str) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox::new(1 << 20));
        let (joined, _rx) = oneshot::channel();
        hub.handle(Cmd::Join(Box::new(JoinRequest {
            conn,
            version: chat_core::protocol::PROTOCOL_VERSION,
            nick: nick.to_owned(),
            client: "test".to_owned(),
            addr: "127.0.0.1:1".parse().expect("addr"),
            relayed: false,
            outbox: outbox.clone(),
            joined,
        })));
        outbox
    }

    fn say(conn: ConnId, to: Target, text: &str) -> Cmd {
        Cmd::Send {
            conn,
            msg: Outgoing {
                tag: 1,
                to,
                body: Body::Text(text.to_owned()),
                attrs: Vec::new(),
            },
        }
    }

    fn lobby() -> Target {
        Target::Room(DEFAULT_ROOM.to_owned())
    }

    /// Every frame queued for `outbox`, described briefly, and how many pieces they came in.
    fn frames(outbox: &Outbox) -> (Vec<String>, usize) {
        let pieces = outbox.queued();
        let mut out = Vec::new();
        for piece in &pieces {
            let mut rest = &piece[..];
            while !rest.is_empty() {
                let len = u32::from_be_bytes(rest[..LEN_PREFIX].try_into().expect("prefix"));
                let end = LEN_PREFIX + len as usize;
                let frame: ServerFrame = decode_payload(&rest[LEN_PREFIX..end]).expect("decode");
                out.push(match frame {
                    ServerFrame::Welcome(w) => format!("welcome {}", w.nick),
                    ServerFrame::Joined { user, .. } => format!("joined {}", user.nick),
                    ServerFrame::Message(m) => format!("{} {}", m.from, m.body.text()),
                    ServerFrame::Left { nick, .. } => format!("left {nick}"),
                    other => format!("{other:?}"),
                });
                rest = &rest[end..];
            }
        }
        (out, pieces.len())
    }

    #[test]
    fn a_burst_to_a_room_is_one_piece_per_member_in_order() {
        let mut hub = hub();
        let alice = join(&mut hub, 1, "alice");
        let bob = join(&mut hub, 2, "bob");
        hub.settle();
        let before = frames(&bob).1;
        for i in 0..50 {
            hub.handle(say(1, lobby(), &format!("m{i}")));
        }
        hub.settle();
        let (seen, pieces) = frames(&bob);
        assert_eq!(pieces, before + 1, "one piece for the whole burst");
        let said: Vec<String> = (0..50).map(|i| format!("alice m{i}")).collect();
        assert_eq!(seen[seen.len() - 50..], said[..]);
        // The sender gets its echoes, not the broadcast.
        assert_eq!(
            frames(&alice).0.iter().filter(|f| *f == "alice m0").count(),
            1
        );
        assert_eq!(hub.stats.snapshot().deliveries, 100);
    }

    #[test]
    fn private_messages_and_room_messages_keep_their_order() {
        let mut hub = hub();
        let _alice = join(&mut hub, 1, "alice");
        let bob = join(&mut hub, 2, "bob");
        hub.handle(say(1, lobby(), "one"));
        hub.handle(say(1, Target::Users(vec!["bob".into()]), "two"));
        hub.handle(say(1, lobby(), "three"));
        hub.settle();
        let (seen, _) = frames(&bob);
        assert_eq!(
            seen,
            ["welcome bob", "alice one", "alice two", "alice three"]
        );
    }

    #[test]
    fn joins_in_one_batch_are_announced_in_one_piece() {
        let mut hub = hub();
        let alice = join(&mut hub, 1, "alice");
        hub.settle();
        let before = frames(&alice).1;
        let newcomers: Vec<Arc<Outbox>> = (2..12)
            .map(|i| join(&mut hub, i, &format!("n{i}")))
            .collect();
        hub.settle();
        let (seen, pieces) = frames(&alice);
        assert_eq!(pieces, before + 1);
        assert_eq!(seen.len(), 1 + 10);
        // Each newcomer: its welcome, then the joins that came after its own.
        for (i, outbox) in newcomers.iter().enumerate() {
            let (seen, _) = frames(outbox);
            assert_eq!(seen.len(), 1 + (9 - i), "{seen:?}");
            assert_eq!(seen[0], format!("welcome n{}", i + 2));
        }
    }

    #[test]
    fn who_joins_in_the_middle_of_a_batch_sees_nothing_from_before() {
        let mut hub = hub();
        let _alice = join(&mut hub, 1, "alice");
        let bob = join(&mut hub, 2, "bob");
        hub.handle(say(1, lobby(), "before"));
        let carol = join(&mut hub, 3, "carol");
        let dave = join(&mut hub, 4, "dave");
        hub.handle(say(1, lobby(), "after"));
        hub.handle(Cmd::Leave {
            conn: 2,
            reason: DisconnectReason::Quit,
            message: "bye".into(),
        });
        hub.settle();
        assert_eq!(
            frames(&carol).0,
            ["welcome carol", "joined dave", "alice after", "left bob"]
        );
        assert_eq!(frames(&dave).0, ["welcome dave", "alice after", "left bob"]);
        // Bob got everything up to his departure, then his goodbye.
        let (seen, _) = frames(&bob);
        assert_eq!(
            seen[1..],
            [
                "alice before",
                "joined carol",
                "joined dave",
                "alice after",
                "Bye { reason: Quit, message: \"bye\" }"
            ]
        );
    }
}
