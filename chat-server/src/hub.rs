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

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use chat_core::frame::{FrameError, encode_frame, encode_frame_into};
use chat_core::names::{self, MAX_NICK_CHARS, NickKeys};
use chat_core::protocol::{
    ChatMessage, DEFAULT_ROOM, DisconnectReason, ErrorCode, ErrorFrame, Limits, MAX_SERVER_FRAME,
    MessageId, NickChange, Outgoing, RejectReason, Rejected, RoomInfo, ServerFrame, Target,
    Timestamp, UserInfo,
};
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, GuestPolicy, MAX_HISTORY_PAGE};
use crate::event::{Event, EventKind};
use crate::eventlog::LogSender;
use crate::login::HashedPassword;
use crate::monitor::Monitor;
use crate::nick_index::NickIndex;
use crate::outbox::{Outbox, PushError};
use crate::roster::{self, Listed, Order, WelcomeHead};
use crate::stats::Stats;
use crate::store::{Account, QueueError, Snapshot, StoreHandle, StoredRoom, Write};

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
    /// Enter a room (creating it).
    EnterRoom { conn: ConnId, room: String },
    /// Leave a room.
    PartRoom { conn: ConnId, room: String },
    /// List every room.
    ListRooms { conn: ConnId },
    /// Set a room's topic.
    SetTopic {
        conn: ConnId,
        room: String,
        topic: String,
    },
    /// Fetch a page of a room's history.
    History {
        conn: ConnId,
        room: String,
        before: Option<MessageId>,
        limit: u32,
    },
    /// Register the connection's nickname (the password already hashed by the session).
    Register { conn: ConnId, hash: HashedPassword },
    /// Change the logged-in account's password (already hashed).
    SetPassword { conn: ConnId, hash: HashedPassword },
    /// The store committed a batch (or failed to): acknowledge its writes.
    Stored {
        result: Result<(), String>,
        acks: Vec<Ack>,
    },
    /// A frame the store thread prepared for one connection (a history page).
    Reply { conn: ConnId, frame: ServerFrame },
    /// Everything queued for the store before has been committed (see `Hub::barrier`).
    Barrier,
    /// The client received its kept private messages up to this id.
    AckOffline { conn: ConnId, up_to: MessageId },
    /// The private messages an account received while offline, read from the store.
    Offline {
        conn: ConnId,
        messages: Result<Vec<ChatMessage>, String>,
    },
}

/// What to tell a client once its write is durable.
#[derive(Debug)]
pub(crate) struct Ack {
    conn: ConnId,
    what: Acked,
}

#[derive(Debug)]
enum Acked {
    /// A message: its echo (with the sender's tag), and the offline accounts it was queued for.
    Message {
        echo: ChatMessage,
        queued_for: Vec<String>,
    },
    /// The connection's nickname became an account.
    Registered { key: String, nick: String },
    /// The account's password changed.
    PasswordChanged,
}

/// An account the session verified (or is creating) for a connection.
#[derive(Debug)]
pub(crate) struct Login {
    /// The account as stored (its nickname and rooms).
    pub account: Account,
    /// The password hash of an account being created at this login (`--guests deny`).
    pub create: Option<HashedPassword>,
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
    /// The account logged in to, if any.
    pub login: Option<Login>,
    /// Answered once the Welcome is queued (or with the refusal); dropped if the server is
    /// shutting down.
    pub joined: oneshot::Sender<Result<(), Rejected>>,
}

#[derive(Debug)]
struct Member {
    nick: String,
    keys: NickKeys,
    addr: SocketAddr,
    relayed: bool,
    outbox: Arc<Outbox>,
    /// The protocol version spoken on this connection.
    version: u16,
    /// Logged in to the account of this nickname (whose key is `keys.folded`).
    logged_in: bool,
}

impl Member {
    /// The account's key when logged in (a copy: callers keep it while they change the hub).
    fn account_key(&self) -> Option<String> {
        self.logged_in.then(|| self.keys.folded.clone())
    }
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

/// Kept private messages per `Offline` frame, at most, and their text's size: a page is sent
/// when the previous one is acknowledged, so a backlog never fills a client's send queue.
const OFFLINE_PAGE: usize = 100;
const OFFLINE_PAGE_BYTES: usize = 128 * 1024;

/// How long shutdown waits for the store to confirm the messages accepted before it.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

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
    /// Its latest messages, oldest first, replayed to whoever enters.
    recent: VecDeque<ChatMessage>,
    /// Older messages than `recent` are stored.
    older: bool,
}

impl Room {
    fn new(name: String, topic: String) -> Self {
        Room {
            name,
            topic,
            members: HashMap::new(),
            order: Order::default(),
            recent: VecDeque::new(),
            older: false,
        }
    }
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
    /// Boxed: a map grows by doubling, and its empty slots then cost 16 bytes each rather
    /// than a whole member (memory per connection, docs/architecture.md).
    clients: HashMap<ConnId, Box<Member>>,
    /// Every uniqueness key of every online nickname.
    nicks: NickIndex,
    /// Rooms by folded name.
    rooms: HashMap<String, Room>,
    next_msg_id: u64,
    next_seq: u64,
    log: Option<LogSender>,
    monitor: Option<Arc<Monitor>>,
    /// Clients whose queue overflowed; disconnected once the current batch is handled.
    overflowed: Vec<ConnId>,
    /// Queues the hub writes to their sockets itself once the current batch is handled
    /// ([`Outbox::push_deferred`]).
    deferred: Vec<Arc<Outbox>>,
    /// Broadcasts encoded but not queued yet, and their frames.
    run: Option<Run>,
    run_buf: BytesMut,
    /// Everyone has been told goodbye; nobody new is admitted.
    closing: bool,
    /// The log queue was full at the last record.
    log_behind: bool,
    /// Shutting down, waiting for the store to confirm what was accepted: new messages and
    /// newcomers are refused (they would be confirmed after the goodbyes, or never).
    draining: bool,
    /// Where messages, rooms and accounts are stored; `None` keeps nothing (unit tests).
    store: Option<StoreHandle<Ack>>,
    /// The hub's own queue, for answers from the store thread.
    me: Option<mpsc::WeakSender<Cmd>>,
    /// Registered accounts: case-folded key to nickname.
    accounts: HashMap<String, String>,
    /// Every uniqueness key of every registered nickname: guests cannot have them.
    reserved: HashSet<(u8, String)>,
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
            Room::new(DEFAULT_ROOM.to_owned(), String::new()),
        );
        Hub {
            config,
            stats,
            clients: HashMap::new(),
            nicks: NickIndex::default(),
            rooms,
            next_msg_id: 1,
            next_seq: 1,
            log,
            overflowed: Vec::new(),
            deferred: Vec::new(),
            run: None,
            run_buf: BytesMut::new(),
            closing: false,
            log_behind: false,
            draining: false,
            monitor,
            store: None,
            me: None,
            accounts: HashMap::new(),
            reserved: HashSet::new(),
        }
    }

    /// Attaches the store: restores rooms, accounts and recent history from `snapshot`, and
    /// from now on stores every change and acknowledges messages once they are durable.
    pub(crate) fn with_store(
        mut self,
        store: StoreHandle<Ack>,
        snapshot: Snapshot,
        me: mpsc::WeakSender<Cmd>,
    ) -> Self {
        // Messages that were sent out but not yet stored when the last run ended (a crash) had
        // ids above the largest stored one, at most a full store queue and batch of them:
        // starting past those means an id seen once is never given to another message.
        // (An empty database has had no messages to lose.)
        let unstored = (crate::store::STORE_QUEUE + crate::store::MAX_BATCH) as u64;
        let next = match snapshot.next_message_id {
            0 | 1 => 1,
            n => n.saturating_add(unstored),
        };
        self.next_msg_id = self.next_msg_id.max(next);
        for StoredRoom { key, name, topic } in snapshot.rooms {
            let room = self
                .rooms
                .entry(key)
                .or_insert_with(|| Room::new(name, String::new()));
            room.topic = topic;
        }
        for (key, messages, older) in snapshot.recent {
            if let Some(room) = self.rooms.get_mut(&key) {
                room.recent = messages.into();
                room.older = older;
            }
        }
        for nick in snapshot.accounts {
            self.add_account(nick);
        }
        self.store = Some(store);
        self.me = Some(me);
        self
    }

    fn add_account(&mut self, nick: String) {
        let keys = names::nick_keys(&nick);
        for (kind, key) in keys.tagged() {
            self.reserved.insert((kind, key.to_owned()));
        }
        self.accounts.insert(keys.folded, nick);
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
        // While shutting down: when to stop waiting for the store's last acknowledgements.
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            let drain_deadline = draining.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = shutdown.cancelled(), if !self.closing && draining.is_none() => {
                    while let Ok(cmd) = rx.try_recv() {
                        self.handle(cmd);
                    }
                    self.settle();
                    // Messages already accepted are acknowledged before the goodbyes, once
                    // the store has committed them.
                    if self.barrier() {
                        draining = Some(tokio::time::Instant::now() + DRAIN_WAIT);
                        self.draining = true;
                    } else {
                        if self.store.is_some() {
                            tracing::warn!(
                                "the store is too far behind to confirm the last messages \
                                 before the goodbyes"
                            );
                        }
                        self.say_goodbye();
                    }
                }
                () = tokio::time::sleep_until(drain_deadline), if draining.is_some() => {
                    tracing::warn!("the store did not confirm the last messages in time");
                    draining = None;
                    self.say_goodbye();
                }
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in batch.drain(..) {
                        if matches!(cmd, Cmd::Barrier) {
                            if draining.take().is_some() {
                                self.settle();
                                self.say_goodbye();
                            }
                            continue;
                        }
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

    /// Asks the store thread to answer [`Cmd::Barrier`] once everything queued before is
    /// committed (and acknowledged); false without a store.
    fn barrier(&self) -> bool {
        let (Some(store), Some(me)) = (&self.store, &self.me) else {
            return false;
        };
        let me = me.clone();
        store
            .try_read(move |_| {
                if let Some(hub) = me.upgrade() {
                    let _ = hub.blocking_send(Cmd::Barrier);
                }
            })
            .is_ok()
    }

    fn say_goodbye(&mut self) {
        self.closing = true;
        self.draining = false;
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

    /// Ends a batch: queues the pending run, disconnects clients whose queue overflowed, then
    /// writes what it queued to the sockets it is to write itself. Announcing a departure can
    /// overflow another queue: keep going until nobody is left.
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
        let mut deferred = std::mem::take(&mut self.deferred);
        for outbox in deferred.drain(..) {
            outbox.write_deferred(&self.stats);
        }
        self.deferred = deferred;
    }

    pub(crate) fn handle(&mut self, cmd: Cmd) {
        if self.draining {
            match cmd {
                // Not admitted: the session tells the client the server is shutting down.
                Cmd::Join(_) => return,
                Cmd::Send { conn, msg } => {
                    let message =
                        "the server is shutting down: this message was not delivered".to_owned();
                    self.error(conn, Some(msg.tag), ErrorCode::Busy, message);
                    return;
                }
                // Its confirmation could not come before the goodbyes: not done at all.
                Cmd::Register { conn, .. } | Cmd::SetPassword { conn, .. } => {
                    let message =
                        "the server is shutting down: your password was not changed".to_owned();
                    self.error(conn, None, ErrorCode::Busy, message);
                    return;
                }
                _ => {}
            }
        }
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
            Cmd::EnterRoom { conn, room } => self.enter_room(conn, &room, true),
            Cmd::PartRoom { conn, room } => self.part_room(conn, &room),
            Cmd::ListRooms { conn } => {
                let rooms = self.room_list();
                self.push_to(conn, &ServerFrame::Rooms(rooms));
            }
            Cmd::SetTopic { conn, room, topic } => self.set_topic(conn, &room, topic),
            Cmd::History {
                conn,
                room,
                before,
                limit,
            } => self.history(conn, &room, before, limit),
            Cmd::Register { conn, hash } => self.register(conn, hash),
            Cmd::SetPassword { conn, hash } => self.set_password(conn, hash),
            Cmd::Stored { result, acks } => self.stored(result, acks),
            Cmd::Reply { conn, frame } => self.push_to(conn, &frame),
            Cmd::Offline { conn, messages } => self.offline_loaded(conn, messages),
            Cmd::Barrier => {}
            Cmd::AckOffline { conn, up_to } => {
                if let Some(account) = self.clients.get(&conn).and_then(|m| m.account_key()) {
                    self.store_write(Write::OfflineReceived {
                        account: account.clone(),
                        up_to,
                    });
                    // The next page, if any (read after that write).
                    self.deliver_offline(conn, account);
                }
            }
        }
    }

    fn join(&mut self, mut req: JoinRequest) {
        if self.closing {
            // Not admitted: the handshake's answer is a refusal (the session sends it when
            // the `joined` sender is dropped here).
            return;
        }
        let now = Utc::now();
        let login = req.login.take();
        let (nick, nick_change) = match &login {
            Some(login) => {
                let nick = login.account.nick.clone();
                if login.create.is_some() && !self.nick_unreserved(&nick) {
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
                let (nick, change) = self.assign_nick(&req.nick);
                // An old client knows only `Taken`.
                let registered = change.is_some()
                    && req.version >= 2
                    && !self.nick_unreserved(&req.nick)
                    && self.nick_online(&req.nick).is_none();
                (
                    nick,
                    change.map(|c| {
                        if registered {
                            NickChange::Registered
                        } else {
                            c
                        }
                    }),
                )
            }
        };
        let keys = names::nick_keys(&nick);
        let account = login.as_ref().map(|_| keys.folded.clone());
        let clients = &self.clients;
        self.nicks
            .insert(req.conn, &keys, |c| clients.get(&c).map(|m| &m.keys));
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
            Box::new(Member {
                nick: nick.clone(),
                keys,
                addr: req.addr,
                relayed: req.relayed,
                outbox: req.outbox.clone(),
                version: req.version,
                logged_in: account.is_some(),
            }),
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
        let _ = req.joined.send(Ok(()));
        if req.version >= 2 {
            self.replay(req.conn, &lobby);
        }

        self.emit(
            EventKind::Join {
                nick: nick.clone(),
                addr: req.addr.to_string(),
                relayed: req.relayed,
                client: req.client,
            },
            now,
        );
        if let Some(change) = nick_change {
            let reason = match change {
                NickChange::Taken => "taken",
                NickChange::Registered => "registered",
            };
            self.emit(
                EventKind::NickChanged {
                    requested: req.nick,
                    nick: nick.clone(),
                    reason,
                },
                now,
            );
        }
        let (Some(login), Some(key)) = (login, account) else {
            return;
        };
        if let Some(hash) = login.create {
            // Created at this login (`--guests deny`): confirmed like a /register once stored.
            let write = Write::Account {
                key: key.clone(),
                nick: nick.clone(),
                hash,
            };
            let ack = Ack {
                conn: req.conn,
                what: Acked::Registered {
                    key: key.clone(),
                    nick: nick.clone(),
                },
            };
            if self.store_acked(req.conn, write, ack) {
                self.add_account(nick.clone());
            } else {
                // Only accounts may stay, and this one cannot be stored now.
                self.remove(
                    req.conn,
                    DisconnectReason::ConnectionClosed,
                    "the server is too busy to store your new account; try again later".into(),
                    true,
                );
                return;
            }
        }
        // An old client (version 1) knows only the lobby.
        if req.version >= 2 {
            for room in &login.account.rooms {
                if self.rooms.contains_key(room) {
                    self.enter_room(req.conn, room, false);
                }
            }
        }
        self.deliver_offline(req.conn, key);
    }

    /// Asks the store for the private messages `account` got while offline; they come back
    /// as [`Cmd::Offline`]. The store reads after the writes queued before, so every message
    /// queued for the account before this login is among them.
    fn deliver_offline(&mut self, conn: ConnId, account: String) {
        let (Some(store), Some(me)) = (&self.store, &self.me) else {
            return;
        };
        let me = me.clone();
        let queued = store.try_read(move |store| {
            let messages = store
                .offline(&account, OFFLINE_PAGE)
                .map_err(|e| e.to_string());
            if let Some(hub) = me.upgrade() {
                let _ = hub.blocking_send(Cmd::Offline { conn, messages });
            }
        });
        if queued.is_err() {
            let message = "the server is too busy to fetch your offline messages now; they \
                           stay queued for your next login"
                .to_owned();
            self.error(conn, None, ErrorCode::Busy, message);
        }
    }

    fn offline_loaded(&mut self, conn: ConnId, messages: Result<Vec<ChatMessage>, String>) {
        let Some((version, account)) = self
            .clients
            .get(&conn)
            .map(|m| (m.version, m.account_key()))
        else {
            return;
        };
        // One page at a time, of bounded size, so that a long backlog never fills the client's
        // send queue: the next page is read when this one is acknowledged.
        let page = messages.map(|mut messages| {
            let mut bytes = 0;
            let keep = messages
                .iter()
                .take_while(|m| {
                    bytes += m.body.text().len() + 64;
                    bytes <= OFFLINE_PAGE_BYTES
                })
                .count()
                .max(1);
            messages.truncate(keep);
            messages
        });
        match page {
            Ok(messages) if messages.is_empty() => {}
            // Kept until the client says it has them (`AckOffline`).
            Ok(messages) if version >= 2 => self.push_to(conn, &ServerFrame::Offline(messages)),
            Ok(messages) => {
                // A version 1 client cannot say so: they count as received once queued, and
                // the next page follows.
                let up_to = messages.last().map_or(0, |m| m.id);
                for m in messages {
                    self.push_to(conn, &ServerFrame::Message(m));
                }
                if let Some(account) = account
                    && !self.overflowed.contains(&conn)
                {
                    self.store_write(Write::OfflineReceived {
                        account: account.clone(),
                        up_to,
                    });
                    self.deliver_offline(conn, account);
                }
            }
            Err(e) => {
                let message = format!("could not read your offline messages: {e}");
                self.error(conn, None, ErrorCode::Busy, message);
            }
        }
    }

    /// Disconnects whoever online holds `nick` or a look-alike: an account that logs in
    /// takes its nickname back (from its own older connection).
    fn evict_holders(&mut self, nick: &str) {
        let keys = names::nick_keys(nick);
        let holders: Vec<ConnId> = keys
            .tagged()
            .iter()
            .filter_map(|&(kind, key)| self.holder(kind, key))
            .collect();
        for conn in holders {
            self.remove(
                conn,
                DisconnectReason::LoggedInElsewhere,
                format!("{nick} logged in from another connection"),
                true,
            );
        }
    }

    /// Who online holds the uniqueness key `key` of kind `kind` (see [`NickKeys::tagged`]).
    fn holder(&self, kind: u8, key: &str) -> Option<ConnId> {
        self.nicks
            .get(kind, key, |c| self.clients.get(&c).map(|m| &m.keys))
    }

    /// Who online has `nick` or a look-alike, if anyone.
    fn nick_online(&self, nick: &str) -> Option<ConnId> {
        let keys = names::nick_keys(nick);
        keys.tagged()
            .iter()
            .find_map(|&(kind, key)| self.holder(kind, key))
    }

    /// Nobody registered `nick` or a look-alike.
    fn nick_unreserved(&self, nick: &str) -> bool {
        let keys = names::nick_keys(nick);
        keys.tagged()
            .iter()
            .all(|&(kind, key)| !self.reserved.contains(&(kind, key.to_owned())))
    }

    /// Sends `conn` the room's recent messages (up to the configured replay), as history.
    fn replay(&mut self, conn: ConnId, key: &str) {
        let Some(room) = self.rooms.get(key) else {
            return;
        };
        let skip = room.recent.len().saturating_sub(self.config.history_replay);
        let messages: Vec<ChatMessage> = room.recent.iter().skip(skip).cloned().collect();
        if messages.is_empty() {
            return;
        }
        let frame = ServerFrame::History {
            room: room.name.clone(),
            more: skip > 0 || room.older,
            messages,
        };
        self.push_to(conn, &frame);
    }

    /// Queues a write that nobody waits for (rooms, memberships, accounts created at login).
    fn store_write(&mut self, write: Write) {
        if let Some(store) = &self.store
            && let Err(e) = store.try_write(write, None)
        {
            Stats::add(&self.stats.store_busy, 1);
            tracing::warn!("a change could not be queued for storage ({e:?}); it is not kept");
        }
    }

    /// Nobody online has `nick` (or a look-alike) and it is not a registered account's.
    fn nick_free(&self, nick: &str) -> bool {
        let keys = names::nick_keys(nick);
        keys.tagged().iter().all(|&(kind, key)| {
            self.holder(kind, key).is_none() && !self.reserved.contains(&(kind, key.to_owned()))
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
        let mut offline: Vec<(String, String)> = Vec::new();
        let (to, recipients) = match to {
            Target::Room(room) => {
                let key = room_key(&room);
                match self.rooms.get(&key) {
                    Some(r) if r.members.contains_key(&conn) => {
                        (Target::Room(r.name.clone()), Recipients::Room(key))
                    }
                    _ => {
                        self.not_in_room(conn, Some(tag), &room);
                        return;
                    }
                }
            }
            Target::Users(nicks) => {
                let mut ids: Vec<ConnId> = Vec::with_capacity(nicks.len());
                for nick in nicks {
                    let folded = names::fold(&nick);
                    match self.holder(0, &folded) {
                        Some(id) if !ids.contains(&id) => ids.push(id),
                        Some(_) => {}
                        None => match self.accounts.get(&folded) {
                            // Registered and offline: stored for the next login.
                            Some(account) if self.store.is_some() => {
                                if !offline.iter().any(|(key, _)| *key == folded) {
                                    offline.push((folded, account.clone()));
                                }
                            }
                            _ => missing.push(nick),
                        },
                    }
                }
                if ids.is_empty() && offline.is_empty() {
                    self.no_such_user(conn, tag, missing);
                    return;
                }
                let names = ids
                    .iter()
                    .filter_map(|id| self.clients.get(id).map(|m| m.nick.clone()))
                    .chain(offline.iter().map(|(_, nick)| nick.clone()))
                    .collect();
                (Target::Users(names), Recipients::Users(ids))
            }
        };
        // Room in the store's queue comes first: a message that cannot be stored is refused
        // whole, before anyone sees it.
        let store = self.store.take();
        let (permit, busy) = match store.as_ref().map(StoreHandle::try_reserve).transpose() {
            Ok(permit) => (permit, None),
            Err(e) => (None, Some(e)),
        };
        if let Some(e) = busy {
            drop(permit);
            self.store = store;
            Stats::add(&self.stats.store_busy, 1);
            let message = match e {
                QueueError::Full => {
                    "the server cannot store messages fast enough right now; this one was \
                     not delivered: send it again"
                }
                QueueError::Stopped => {
                    "the server cannot store messages; this one was not \
                                        delivered"
                }
            };
            self.error(conn, Some(tag), ErrorCode::Busy, message.to_owned());
            return;
        }
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
        let room = match &recipients {
            Recipients::Room(key) => {
                self.broadcast(key, &frame, Some(conn), true);
                Some(key.clone())
            }
            Recipients::Users(ids) => {
                self.deliver(ids, &frame, conn);
                None
            }
        };
        if !missing.is_empty() {
            self.no_such_user(conn, tag, missing);
        }
        let ServerFrame::Message(message) = frame else {
            unreachable!("built as a message above")
        };
        if let Some(key) = &room {
            self.remember(key, &message);
        }
        let mut echo = message.clone();
        echo.tag = Some(tag);
        Stats::add(&self.stats.messages_in, 1);
        self.emit(EventKind::message(echo.clone()), at);
        let (offline_for, queued_for): (Vec<String>, Vec<String>) = offline.into_iter().unzip();
        let ack = Ack {
            conn,
            what: Acked::Message { echo, queued_for },
        };
        let mut permit = permit;
        match permit.take() {
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
        // The permit borrows `store`: it must be gone before the store is put back.
        drop(permit);
        self.store = store;
    }

    /// Keeps a room message among the room's latest, for replay.
    fn remember(&mut self, key: &str, message: &ChatMessage) {
        let keep = self.config.history_replay;
        if keep == 0 {
            return;
        }
        if let Some(room) = self.rooms.get_mut(key) {
            if room.recent.len() >= keep {
                room.recent.pop_front();
                room.older = true;
            }
            room.recent.push_back(message.clone());
        }
    }

    /// A batch of writes is durable (or failed): tell each client about its own.
    fn stored(&mut self, result: Result<(), String>, acks: Vec<Ack>) {
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
            Acked::Message { echo, queued_for } => {
                let tag = echo.tag;
                self.push_to(conn, &ServerFrame::Message(echo));
                Stats::add(&self.stats.deliveries, 1);
                let modern = self.clients.get(&conn).is_some_and(|m| m.version >= 2);
                if let (Some(tag), false, true) = (tag, queued_for.is_empty(), modern) {
                    let frame = ServerFrame::Queued {
                        tag,
                        to: queued_for,
                    };
                    self.push_to(conn, &frame);
                }
            }
            Acked::Registered { nick, .. } => {
                let change = "registered";
                self.emit(
                    EventKind::Account {
                        nick: nick.clone(),
                        change,
                    },
                    Utc::now(),
                );
                // A version 1 client (an account created at its login) knows no such frame.
                if self.clients.get(&conn).is_some_and(|m| m.version >= 2) {
                    self.push_to(conn, &ServerFrame::Registered { nick });
                }
            }
            Acked::PasswordChanged => {
                if let Some(nick) = self.clients.get(&conn).map(|m| m.nick.clone()) {
                    let change = "password changed";
                    self.emit(EventKind::Account { nick, change }, Utc::now());
                }
                self.push_to(conn, &ServerFrame::PasswordChanged);
            }
        }
    }

    /// A write was not stored: the client is told, and a registration is undone.
    fn refuse_unstored(&mut self, ack: Ack, error: &str) {
        let Ack { conn, what } = ack;
        let (tag, message) = match what {
            Acked::Message { echo, .. } => {
                // Not stored: not replayed as history either.
                if let Target::Room(name) = &echo.to
                    && let Some(room) = self.rooms.get_mut(&room_key(name))
                {
                    room.recent.retain(|m| m.id != echo.id);
                }
                (
                    echo.tag,
                    format!("your message could not be stored ({error}); send it again"),
                )
            }
            Acked::Registered { key, nick } => {
                self.accounts.remove(&key);
                let keys = names::nick_keys(&nick);
                for (kind, k) in keys.tagged() {
                    self.reserved.remove(&(kind, k.to_owned()));
                }
                if let Some(m) = self.clients.get_mut(&conn) {
                    m.logged_in = false;
                }
                if self.config.guests == GuestPolicy::Deny {
                    // Only accounts may stay, and this one does not exist.
                    self.remove(
                        conn,
                        DisconnectReason::ConnectionClosed,
                        format!("your account could not be stored ({error}); try again later"),
                        true,
                    );
                    return;
                }
                (
                    None,
                    format!("the registration could not be stored ({error})"),
                )
            }
            Acked::PasswordChanged => (
                None,
                format!("the new password could not be stored ({error}); the old one stays"),
            ),
        };
        self.error(conn, tag, ErrorCode::Busy, message);
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
                n += push(
                    &m.outbox,
                    bytes.clone(),
                    id,
                    &mut self.overflowed,
                    &mut self.deferred,
                );
            }
        }
        Stats::add(&self.stats.deliveries, n);
    }

    fn no_such_user(&mut self, conn: ConnId, tag: u64, missing: Vec<String>) {
        let message = format!("not online: {}", missing.join(", "));
        self.error(conn, Some(tag), ErrorCode::NoSuchUser(missing), message);
    }

    /// Puts `conn` in a room, creating it (and storing it) if it does not exist: the members
    /// are told, the newcomer gets `Entered`, the roster and the recent history. `remember`
    /// adds the room to the connection's account (not when the account's rooms are restored).
    fn enter_room(&mut self, conn: ConnId, room: &str, remember: bool) {
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
        let account = member.account_key();
        let nick = member.nick.clone();
        let user = UserInfo {
            nick: nick.clone(),
            relayed: member.relayed,
        };
        let outbox = member.outbox.clone();
        if let Some(r) = self
            .rooms
            .get(&key)
            .filter(|r| r.members.contains_key(&conn))
        {
            // Already in: the answer is the room's state again (a client rejoining its
            // rooms after a reconnect, when the server restored them at login already).
            let entered = ServerFrame::Entered {
                room: r.name.clone(),
                topic: r.topic.clone(),
            };
            let roster = roster::roster(&r.name, &r.order, &self.clients, MAX_SERVER_FRAME);
            self.push_to(conn, &entered);
            self.queue_to(conn, roster);
            return;
        }
        // What must be stored is refused now rather than lost later.
        let creates = !self.rooms.contains_key(&key);
        let account = account.filter(|_| remember);
        if (creates || account.is_some()) && !self.store_has_room(conn) {
            return;
        }
        if !self.rooms.contains_key(&key) {
            if self.rooms.len() >= self.config.max_rooms {
                let message = format!(
                    "this server has reached its limit of {} rooms: join an existing one \
                     (/rooms lists them)",
                    self.config.max_rooms
                );
                self.error(conn, None, ErrorCode::NotAllowed, message);
                return;
            }
            self.rooms
                .insert(key.clone(), Room::new(name.to_owned(), String::new()));
            self.store_write(Write::Room(StoredRoom {
                key: key.clone(),
                name: name.to_owned(),
                topic: String::new(),
            }));
        }
        let now = Utc::now();
        let shown = self
            .rooms
            .get(&key)
            .map_or_else(String::new, |r| r.name.clone());
        self.broadcast(
            &key,
            &ServerFrame::Joined {
                room: shown.clone(),
                user,
                at: now,
            },
            None,
            false,
        );
        let Some(r) = self.rooms.get_mut(&key) else {
            return;
        };
        r.members.insert(conn, outbox);
        if let Some(member) = self.clients.get(&conn) {
            r.order.insert(conn, &member.keys.folded, &self.clients);
        }
        if let Some(run) = self.run.as_mut().filter(|run| run.room == key) {
            // Left and entered again within the run: only the latest entry counts.
            run.late.retain(|l| l.conn != conn);
            run.late.push(Late {
                conn,
                offset: self.run_buf.len(),
                messages: run.messages,
            });
        }
        let entered = ServerFrame::Entered {
            room: r.name.clone(),
            topic: r.topic.clone(),
        };
        let roster = roster::roster(&r.name, &r.order, &self.clients, MAX_SERVER_FRAME);
        let event = EventKind::RoomJoin {
            nick: nick.clone(),
            room: r.name.clone(),
        };
        self.push_to(conn, &entered);
        self.queue_to(conn, roster);
        self.replay(conn, &key);
        self.emit(event, now);
        if let Some(account) = account {
            self.store_write(Write::Membership {
                account,
                room: key,
                joined: true,
            });
        }
    }

    /// Takes `conn` out of a room (never the lobby, where everyone stays).
    fn part_room(&mut self, conn: ConnId, room: &str) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let key = room_key(room);
        let nick = member.nick.clone();
        let account = member.account_key();
        if key == DEFAULT_ROOM {
            let message = format!("everyone stays in #{DEFAULT_ROOM}");
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        }
        self.flush_before_direct(conn);
        let Some(r) = self.rooms.get_mut(&key) else {
            self.not_in_room(conn, None, room);
            return;
        };
        if r.members.remove(&conn).is_none() {
            self.not_in_room(conn, None, room);
            return;
        }
        r.order.remove(conn);
        let name = r.name.clone();
        self.push_to(conn, &ServerFrame::Parted { room: name.clone() });
        let now = Utc::now();
        let frame = ServerFrame::Left {
            room: name.clone(),
            nick: nick.clone(),
            reason: DisconnectReason::LeftRoom,
            message: String::new(),
            at: now,
        };
        self.broadcast(&key, &frame, None, false);
        self.emit(EventKind::RoomPart { nick, room: name }, now);
        if let Some(account) = account {
            self.store_write(Write::Membership {
                account,
                room: key,
                joined: false,
            });
        }
    }

    /// Sets a room's topic (members only) and tells its members who speak version 2.
    fn set_topic(&mut self, conn: ConnId, room: &str, topic: String) {
        let key = room_key(room);
        let Some(by) = self.clients.get(&conn).map(|m| m.nick.clone()) else {
            return;
        };
        let member = self
            .rooms
            .get(&key)
            .is_some_and(|r| r.members.contains_key(&conn));
        if !member {
            self.not_in_room(conn, None, room);
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
        self.store_write(Write::Room(StoredRoom {
            key,
            name: name.clone(),
            topic: topic.clone(),
        }));
        let now = Utc::now();
        self.emit(
            EventKind::Topic {
                nick: by.clone(),
                room: name.clone(),
                topic: topic.clone(),
            },
            now,
        );
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
            if self.clients.get(&id).is_some_and(|m| m.version >= 2) {
                self.queue_to(id, Ok(bytes.clone()));
            }
        }
    }

    /// Sends a page of a room's history, read by the store thread (members only).
    fn history(&mut self, conn: ConnId, room: &str, before: Option<MessageId>, limit: u32) {
        let key = room_key(room);
        let Some(r) = self
            .rooms
            .get(&key)
            .filter(|r| r.members.contains_key(&conn))
        else {
            self.not_in_room(conn, None, room);
            return;
        };
        let name = r.name.clone();
        let limit = (limit as usize).clamp(1, MAX_HISTORY_PAGE);
        let (Some(store), Some(me)) = (&self.store, &self.me) else {
            // No store: what the room keeps in memory is all there is.
            let messages: Vec<ChatMessage> = r
                .recent
                .iter()
                .filter(|m| before.is_none_or(|b| m.id < b))
                .cloned()
                .collect();
            let skip = messages.len().saturating_sub(limit);
            let frame = ServerFrame::History {
                room: name,
                more: skip > 0,
                messages: messages[skip..].to_vec(),
            };
            self.push_to(conn, &frame);
            return;
        };
        let me = me.clone();
        let queued = store.try_read(move |store| {
            let frame = match store.history(&key, before, limit) {
                Ok((messages, more)) => ServerFrame::History {
                    room: name,
                    messages,
                    more,
                },
                Err(e) => ServerFrame::Error(ErrorFrame {
                    tag: None,
                    code: ErrorCode::Busy,
                    message: format!("could not read the history: {e}"),
                }),
            };
            if let Some(hub) = me.upgrade() {
                let _ = hub.blocking_send(Cmd::Reply { conn, frame });
            }
        });
        if queued.is_err() {
            Stats::add(&self.stats.store_busy, 1);
            let message = "the server is too busy to read history now; try again".to_owned();
            self.error(conn, None, ErrorCode::Busy, message);
        }
    }

    /// Makes the connection's nickname an account (answered once it is stored).
    fn register(&mut self, conn: ConnId, hash: HashedPassword) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let refusal = if member.relayed {
            Some("guests connected through a relay cannot register".to_owned())
        } else if member.logged_in {
            Some(format!(
                "{} is registered already; /password changes its password",
                member.nick
            ))
        } else if !self.nick_unreserved(&member.nick) {
            Some(format!(
                "{} looks too much like a registered nickname to be registered",
                member.nick
            ))
        } else if self.store.is_none() {
            Some("this server keeps no accounts".to_owned())
        } else {
            None
        };
        if let Some(message) = refusal {
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        }
        let nick = member.nick.clone();
        let key = member.keys.folded.clone();
        let rooms: Vec<String> = self
            .rooms
            .iter()
            .filter(|(k, r)| k.as_str() != DEFAULT_ROOM && r.members.contains_key(&conn))
            .map(|(k, _)| k.clone())
            .collect();
        let write = Write::Account {
            key: key.clone(),
            nick: nick.clone(),
            hash,
        };
        let ack = Ack {
            conn,
            what: Acked::Registered {
                key: key.clone(),
                nick: nick.clone(),
            },
        };
        if !self.store_acked(conn, write, ack) {
            return;
        }
        self.add_account(nick);
        if let Some(m) = self.clients.get_mut(&conn) {
            m.logged_in = true;
        }
        for room in rooms {
            self.store_write(Write::Membership {
                account: key.clone(),
                room,
                joined: true,
            });
        }
    }

    /// Changes the logged-in account's password (answered once it is stored).
    fn set_password(&mut self, conn: ConnId, hash: HashedPassword) {
        let Some(member) = self.clients.get(&conn) else {
            return;
        };
        let Some(key) = member.account_key() else {
            let message = "you are not logged in to an account: /register first".to_owned();
            self.error(conn, None, ErrorCode::NotAllowed, message);
            return;
        };
        let ack = Ack {
            conn,
            what: Acked::PasswordChanged,
        };
        self.store_acked(conn, Write::Password { key, hash }, ack);
    }

    /// Whether the store's queue has room for a change `conn` asks for; if not, `conn` is told
    /// to try again and nothing is changed.
    fn store_has_room(&mut self, conn: ConnId) -> bool {
        if self.store.as_ref().is_none_or(|s| s.has_room(2)) {
            return true;
        }
        Stats::add(&self.stats.store_busy, 1);
        let message = "the server is too busy to store this now; try again".to_owned();
        self.error(conn, None, ErrorCode::Busy, message);
        false
    }

    /// Queues a write whose client waits for the answer; false (the client told) if the
    /// store cannot take it.
    fn store_acked(&mut self, conn: ConnId, write: Write, ack: Ack) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        if store.try_write(write, Some(ack)).is_err() {
            Stats::add(&self.stats.store_busy, 1);
            let message = "the server is too busy to store your password now; try again".to_owned();
            self.error(conn, None, ErrorCode::Busy, message);
            return false;
        }
        true
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
        self.nicks.remove(conn, &member.keys);
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
                self.broadcast(&key, &frame, None, false);
            }
        }
        let overflowed = reason == DisconnectReason::SendQueueExceeded;
        if overflowed {
            Stats::add(&self.stats.slow_dropped, 1);
        }
        let bye = encode(&ServerFrame::Bye {
            reason: reason.for_version(member.version),
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
            delivered +=
                messages * push(outbox, piece, id, &mut self.overflowed, &mut self.deferred);
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
            push(
                &m.outbox,
                bytes,
                conn,
                &mut self.overflowed,
                &mut self.deferred,
            );
        }
    }

    /// Tells `conn` it is not in `room` (or that there is no such room).
    fn not_in_room(&mut self, conn: ConnId, tag: Option<u64>, room: &str) {
        let message = format!("you are not in a room named {room:?}");
        self.error(conn, tag, ErrorCode::NoSuchRoom(room.to_owned()), message);
    }

    fn error(&mut self, conn: ConnId, tag: Option<u64>, code: ErrorCode, message: String) {
        let version = self.clients.get(&conn).map_or(1, |m| m.version);
        let code = code.for_version(version);
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

/// Queues `bytes`; on overflow remembers the client for disconnection, and a queue the hub is
/// to write itself in `deferred`. Returns 1 if queued.
fn push(
    outbox: &Arc<Outbox>,
    bytes: Bytes,
    conn: ConnId,
    overflowed: &mut Vec<ConnId>,
    deferred: &mut Vec<Arc<Outbox>>,
) -> u64 {
    match outbox.push_deferred(bytes) {
        Ok(write) => {
            if write {
                deferred.push(outbox.clone());
            }
            1
        }
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
            login: None,
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
                    ServerFrame::History { messages, .. } => {
                        format!("history {}", messages.len())
                    }
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
            [
                "welcome carol",
                "history 1",
                "joined dave",
                "alice after",
                "left bob"
            ]
        );
        assert_eq!(
            frames(&dave).0,
            ["welcome dave", "history 1", "alice after", "left bob"]
        );
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

    #[test]
    fn leaving_and_entering_a_room_within_one_batch_gets_only_what_came_after() {
        let mut hub = hub();
        let _alice = join(&mut hub, 1, "alice");
        let bob = join(&mut hub, 2, "bob");
        let room = || Target::Room("r".into());
        let enter = |conn| Cmd::EnterRoom {
            conn,
            room: "r".into(),
        };
        hub.handle(enter(1));
        hub.handle(enter(2));
        hub.settle();
        let before = frames(&bob).0.len();
        hub.handle(say(1, room(), "one"));
        hub.handle(Cmd::PartRoom {
            conn: 2,
            room: "r".into(),
        });
        hub.handle(say(1, room(), "two"));
        hub.handle(enter(2));
        hub.handle(Cmd::PartRoom {
            conn: 2,
            room: "r".into(),
        });
        hub.handle(enter(2));
        hub.handle(say(1, room(), "three"));
        hub.settle();
        let seen = frames(&bob).0;
        let live: Vec<&String> = seen[before..]
            .iter()
            .filter(|f| f.starts_with("alice "))
            .collect();
        // "two" was said while bob was out: he gets it only in the history replayed when he
        // came back, never live, and nothing twice.
        assert_eq!(live, ["alice one", "alice three"], "{seen:?}");
    }

    /// The echo (the acknowledgement) leaves the hub only with the store's report that the
    /// message was committed; a failed commit turns it into an error and out of the replay.
    #[test]
    fn a_message_is_acknowledged_only_once_its_commit_is_reported() {
        let (reports_tx, reports) = std::sync::mpsc::channel();
        let store = crate::store::SqliteStore::in_memory().expect("store");
        let (handle, _thread) = StoreHandle::spawn(
            Box::new(store),
            Box::new(move |result, acks| {
                let _ = reports_tx.send((result.map_err(|e| e.to_string()), acks));
            }),
        )
        .expect("store thread");
        let (me, _rx) = mpsc::channel(8);
        let mut hub = hub().with_store(handle, Snapshot::default(), me.downgrade());
        let alice = join(&mut hub, 1, "alice");
        let bob = join(&mut hub, 2, "bob");
        hub.settle();
        let echoes = |outbox: &Outbox| {
            frames(outbox)
                .0
                .iter()
                .filter(|f| f.starts_with("alice "))
                .count()
        };
        hub.handle(say(1, lobby(), "stored"));
        hub.settle();
        // Bob has it at once; Alice's echo waits for the commit.
        assert!(frames(&bob).0.contains(&"alice stored".to_owned()));
        assert_eq!(echoes(&alice), 0);
        let (result, acks) = reports
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the commit is reported");
        assert_eq!(result, Ok(()));
        hub.handle(Cmd::Stored { result, acks });
        hub.settle();
        assert_eq!(echoes(&alice), 1);

        hub.handle(say(1, lobby(), "lost"));
        hub.settle();
        let (_, acks) = reports
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the commit is reported");
        hub.handle(Cmd::Stored {
            result: Err("disk full".into()),
            acks,
        });
        hub.settle();
        assert_eq!(
            echoes(&alice),
            1,
            "no echo for a message that was not stored"
        );
        assert!(
            frames(&alice)
                .0
                .iter()
                .any(|f| f.contains("Busy") && f.contains("disk full"))
        );
        let replay: Vec<&str> = hub.rooms[DEFAULT_ROOM]
            .recent
            .iter()
            .map(|m| m.body.text())
            .collect();
        assert_eq!(replay, ["stored"]);
    }
}
