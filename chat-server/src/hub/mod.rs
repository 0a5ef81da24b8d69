//! The hub: one task that owns every piece of shared chat state (who is online, nicknames,
//! rooms, accounts) and decides what each command means.
//!
//! Sessions send it [`Cmd`]s over a bounded channel. It never awaits a client: delivering a
//! message means encoding it once and pushing the same bytes into each recipient's
//! [`Outbox`](crate::outbox::Outbox), which either accepts them at once or reports that the
//! client has fallen too far behind, in which case the hub disconnects that client. Because
//! one task handles every command in order, all clients see messages in the same order and no
//! lock is ever held across an await. Every decision also produces one event record for the
//! sinks (the log, the monitor, the counters).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Hub`]: its state, the run loop, dispatching commands, ending a batch |
//! | `cmd.rs` | [`Cmd`], [`JoinRequest`], [`Login`], [`Ack`]: what the hub is asked |
//! | `conn.rs` | [`ConnId`], `Caps`: a connection and what its protocol version allows |
//! | `model.rs` | `Member`, `Room`: the state of the chat |
//! | `admit.rs` | admitting a connection (the Welcome, nickname policy) and removing one |
//! | `messages.rs` | accepting a message, delivering it, acknowledging it once stored |
//! | `rooms.rs` | entering and leaving rooms, topics, rosters, history |
//! | `accounts.rs` | registered nicknames, registration, passwords, offline messages |
//! | `moderation.rs` | operators, kicks, bans, mutes, topic locks; `Mutes` |
//! | `presence.rs` | `/nick`, `/away`, `whois` |
//! | `message_ops.rs` | deleting, editing, reacting to and expiring a message |
//! | `expiry.rs` | `Expiries`: when each expiring message goes |
//! | `files.rs` | `Transfers`: file offers, answers, chunks under flow control, their ends |
//! | `fanout.rs` | `Fanout`: frames encoded once, batched per room, queued in order |
//! | `frames.rs`, `roster.rs` | frames encoded from borrowed state (messages, history, rosters) |
//! | `nick_index.rs` | which online member holds each nickname key |
//! | `durable.rs` | `Durable`: the link to the store thread |
//! | `sinks.rs` | `Sinks`: the monitor, the log and the counters derived from events |

mod accounts;
mod admit;
mod cmd;
mod conn;
mod durable;
mod expiry;
mod fanout;
mod files;
mod frames;
mod message_ops;
mod messages;
mod model;
mod moderation;
mod nick_index;
mod presence;
mod private;
mod replay;
mod rooms;
mod roster;
mod sinks;
#[cfg(test)]
mod tests;
mod upkeep;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use chat_core::frame::{FrameError, encode_frame};
use chat_core::protocol::{
    DEFAULT_ROOM, DisconnectReason, ErrorCode, ErrorFrame, MAX_SERVER_FRAME, ServerFrame,
};
use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) use cmd::{Ack, Cmd, JoinRequest, Login};
pub(crate) use conn::ConnId;
pub(crate) use message_ops::Op;

use self::accounts::Accounts;
use self::durable::Durable;
use self::fanout::Fanout;
use self::model::{Members, Room, Rooms};
use self::moderation::Mutes;
use self::nick_index::NickIndex;
use self::replay::Replays;
use self::sinks::Sinks;
use self::upkeep::RoomBuckets;
use crate::bans::Bans;
use crate::config::Config;
use crate::event::EventKind;
use crate::eventlog::LogSender;
use crate::monitor::Monitor;
use crate::stats::{Delivered, Stats};
use crate::store::{Snapshot, StoreHandle, StoredRoom};

/// How often the queues of clients still owed parts of their replay are looked at, when no
/// command comes (a client reading its replay frees room in its queue without telling).
const REPLAY_TICK: std::time::Duration = std::time::Duration::from_millis(20);

/// How often the hub asks whether `chat-server admin` changed the database.
const ADMIN_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// How often file transfers are checked for offers nobody answered and stalls.
const FILE_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// How long shutdown waits for the store to confirm the messages accepted before it.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

const SERVER_NAME: &str = concat!("chat-server/", env!("CARGO_PKG_VERSION"));

/// The hub's state. See the module documentation.
#[derive(Debug)]
pub(crate) struct Hub {
    config: Arc<Config>,
    stats: Arc<Stats>,
    /// Everyone online.
    clients: Members,
    /// Every uniqueness key of every online nickname.
    nicks: NickIndex,
    /// Rooms by key.
    rooms: Rooms,
    /// Registered nicknames.
    accounts: Accounts,
    fanout: Fanout,
    /// The messages of the current batch, for the delivery latency.
    delivered: Delivered,
    durable: Durable,
    sinks: Sinks,
    /// What newcomers are still to be sent after their Welcome.
    replays: Replays,
    /// Rooms each address created lately.
    room_buckets: RoomBuckets,
    /// Keys of the accounts that are server operators.
    operators: HashSet<String>,
    /// Who online is logged in to each account (by key): after `/nick`, the nickname no
    /// longer tells.
    by_account: HashMap<String, ConnId>,
    /// The bans in force, shared with the sessions.
    bans: Arc<Bans>,
    /// Who may not speak, where.
    mutes: Mutes,
    /// The last `chat-server admin` change applied.
    admin_seen: i64,
    /// Members who are away.
    away: HashSet<ConnId>,
    /// File transfers under way.
    transfers: files::Transfers,
    /// When each expiring message goes.
    expiries: expiry::Expiries,
    next_msg_id: u64,
    /// Members not logged in to an account.
    guests: usize,
    /// Everyone has been told goodbye; nobody new is admitted.
    closing: bool,
    /// Shutting down, waiting for the store to confirm what was accepted: new messages and
    /// newcomers are refused (they would be confirmed after the goodbyes, or never).
    draining: bool,
}

impl Hub {
    pub(crate) fn new(
        config: Arc<Config>,
        stats: Arc<Stats>,
        log: Option<LogSender>,
        monitor: Option<Arc<Monitor>>,
    ) -> Self {
        let mut rooms = Rooms::new();
        rooms.insert(
            DEFAULT_ROOM.to_owned(),
            Room::new(DEFAULT_ROOM.to_owned(), String::new()),
        );
        Hub {
            config,
            clients: Members::new(),
            nicks: NickIndex::default(),
            rooms,
            accounts: Accounts::default(),
            fanout: Fanout::new(stats.clone()),
            delivered: Delivered::default(),
            durable: Durable::none(stats.clone()),
            sinks: Sinks::new(stats.clone(), log, monitor),
            replays: Replays::default(),
            room_buckets: RoomBuckets::default(),
            operators: HashSet::new(),
            by_account: HashMap::new(),
            bans: Arc::new(Bans::default()),
            mutes: Mutes::default(),
            admin_seen: 0,
            away: HashSet::new(),
            transfers: files::Transfers::default(),
            expiries: expiry::Expiries::default(),
            stats,
            next_msg_id: 1,
            guests: 0,
            closing: false,
            draining: false,
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
        for (stored, usage) in snapshot.rooms {
            let StoredRoom {
                key,
                name,
                topic,
                by_guest,
            } = stored;
            let room = self
                .rooms
                .entry(key)
                .or_insert_with(|| Room::new(name, String::new()));
            room.topic = topic;
            room.by_guest = by_guest;
            room.last_used = usage.last_used;
            room.accounts = usage.accounts;
        }
        for (key, messages, older) in snapshot.recent {
            if let Some(room) = self.rooms.get_mut(&key) {
                room.recent = messages.into();
                room.older = older;
            }
        }
        if !snapshot.notes.is_empty() {
            let home: HashMap<u64, String> = self
                .rooms
                .iter()
                .flat_map(|(key, r)| r.recent.iter().map(move |m| (m.id, key.clone())))
                .collect();
            for (id, notes) in snapshot.notes {
                if let Some(room) = home.get(&id).and_then(|key| self.rooms.get_mut(key)) {
                    room.notes.insert(id, notes);
                }
            }
        }
        for (id, at) in snapshot.expiring {
            self.expiries.add_at(id, at);
        }
        for nick in snapshot.accounts {
            self.accounts.add(nick);
        }
        self.restore_moderation(snapshot.moderation);
        self.durable.attach(store, me);
        self
    }

    /// Makes `conn` logged in to `account` (`None`: a guest again), keeping the index of who
    /// holds each account.
    fn set_account(&mut self, conn: ConnId, account: Option<String>) {
        let Some(m) = self.clients.get_mut(&conn) else {
            return;
        };
        if let Some(old) = m.account.take()
            && self.by_account.get(&old) == Some(&conn)
        {
            self.by_account.remove(&old);
        }
        if let Some(key) = &account {
            self.by_account.insert(key.clone(), conn);
        }
        m.account = account;
    }

    /// The bans in force, which sessions check at each `Hello`.
    pub(crate) fn bans(&self) -> Arc<Bans> {
        self.bans.clone()
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
        // Rooms expire, and the store applies the retention, at start and then regularly.
        let mut upkeep = tokio::time::interval(self.config.retention.every);
        upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut admin_check = tokio::time::interval(ADMIN_CHECK);
        admin_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut file_check = tokio::time::interval(FILE_CHECK);
        file_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // While shutting down: when to stop waiting for the store's last acknowledgements.
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            let drain_deadline = draining.unwrap_or_else(tokio::time::Instant::now);
            let acks_due = self.transfers.next_release();
            let expiry_due = self.expiries.next();
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
                    if self.durable.barrier() {
                        draining = Some(tokio::time::Instant::now() + DRAIN_WAIT);
                        self.draining = true;
                    } else {
                        if self.durable.exists() {
                            tracing::warn!(
                                "the store is too far behind to confirm the last messages \
                                 before the goodbyes"
                            );
                        }
                        self.say_goodbye();
                    }
                }
                () = tokio::time::sleep(REPLAY_TICK), if self.replays.waiting() => self.settle(),
                _ = upkeep.tick(), if !self.closing && draining.is_none() => self.upkeep(),
                _ = admin_check.tick(), if !self.closing && draining.is_none() => {
                    self.check_elsewhere();
                }
                () = tokio::time::sleep_until(acks_due.unwrap_or_else(tokio::time::Instant::now)),
                    if acks_due.is_some() =>
                {
                    self.release_acks();
                    self.settle();
                }
                () = tokio::time::sleep_until(expiry_due.unwrap_or_else(tokio::time::Instant::now)),
                    if expiry_due.is_some() =>
                {
                    for id in self.expiries.take_due(tokio::time::Instant::now()) {
                        self.message_op(None, id, message_ops::Op::Expire);
                    }
                    self.settle();
                }
                _ = file_check.tick(), if !self.transfers.is_empty() => {
                    self.transfers_idle();
                    self.settle();
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
            self.fanout.flush(&self.rooms);
            let Some(conn) = self.fanout.next_overflowed() else {
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
        self.fanout.write_deferred();
        // What the hub had to write is written (or left to slow clients' own writers): the
        // messages of this batch are delivered as far as the hub goes.
        self.delivered.observe(&self.stats);
        // The sockets took what they could: those owed more of their replay may have room.
        if self.replays.waiting() {
            self.pump_all();
            self.fanout.flush(&self.rooms);
            self.fanout.write_deferred();
        }
    }

    /// What a command means while shutting down, if it is refused: `None` lets it through.
    fn refuse_while_draining(&mut self, cmd: Cmd) -> Option<Cmd> {
        match cmd {
            // Not admitted: the session tells the client the server is shutting down.
            Cmd::Join(_) => {}
            Cmd::Send { conn, msg, .. } => {
                let message =
                    "the server is shutting down: this message was not delivered".to_owned();
                self.error(conn, Some(msg.tag), ErrorCode::Busy, message);
            }
            // Its confirmation could not come before the goodbyes: not done at all.
            Cmd::Register { conn, .. } | Cmd::SetPassword { conn, .. } => {
                let message =
                    "the server is shutting down: your password was not changed".to_owned();
                self.error(conn, None, ErrorCode::Busy, message);
            }
            cmd => return Some(cmd),
        }
        None
    }

    pub(crate) fn handle(&mut self, cmd: Cmd) {
        let cmd = if self.draining {
            match self.refuse_while_draining(cmd) {
                Some(cmd) => cmd,
                None => return,
            }
        } else {
            cmd
        };
        match cmd {
            Cmd::Join(req) => self.join(*req),
            Cmd::Send { conn, msg, arrived } => self.send(conn, msg, arrived),
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
                    self.sinks.record(kind, Utc::now());
                }
            }
            Cmd::Leave {
                conn,
                reason,
                message,
            } => self.remove(conn, reason, message, true),
            Cmd::Record(kind) => self.sinks.record(kind, Utc::now()),
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
            Cmd::PrivateHistory {
                conn,
                with,
                before,
                limit,
            } => self.private_history(conn, with, before, limit),
            Cmd::Search {
                conn,
                query,
                before,
                limit,
            } => self.search(conn, *query, before, limit),
            Cmd::Mentions {
                conn,
                before,
                limit,
            } => self.mentions(conn, before, limit),
            Cmd::MayRegister { conn, answer } => self.may_register(conn, answer),
            Cmd::Register { conn, hash } => self.register(conn, hash),
            Cmd::SetPassword { conn, hash } => self.set_password(conn, hash),
            Cmd::Stored { result, acks } => self.stored(result, acks),
            Cmd::Reply { conn, frame } => self.push_to(conn, &frame),
            Cmd::Offline { conn, messages } => self.offline_loaded(conn, messages),
            Cmd::Barrier => {}
            Cmd::Pruned(result) => self.pruned(result),
            Cmd::AckOffline { conn, up_to } => self.ack_offline(conn, up_to),
            Cmd::Moderate { conn, frame } => self.moderate(conn, frame),
            Cmd::MessageOp { conn, id, op } => self.message_op(Some(conn), id, op),
            Cmd::Found {
                conn,
                id,
                op,
                found,
            } => self.message_found(conn, id, op, found),
            Cmd::HistoryPage { conn, frame, notes } => {
                self.push_to(conn, &frame);
                self.send_notes(conn, notes);
            }
            Cmd::File { conn, frame } => self.file(conn, frame),
            Cmd::Admin(Ok(events)) => {
                for event in events {
                    self.admin_event(event);
                }
            }
            Cmd::Admin(Err(e)) => {
                tracing::error!("could not read what chat-server admin changed: {e}");
            }
        }
    }

    fn push_to(&mut self, conn: ConnId, frame: &ServerFrame) {
        self.queue_to(conn, encode_frame(frame, MAX_SERVER_FRAME));
    }

    /// Queues an encoded frame for `conn` alone.
    fn queue_to(&mut self, conn: ConnId, frame: Result<Bytes, FrameError>) {
        let Some(bytes) = fanout::logged(frame) else {
            return;
        };
        if let Some(m) = self.clients.get(&conn) {
            self.fanout.queue(&self.rooms, conn, &m.outbox, bytes);
        }
    }

    /// Tells `conn` it is not in `room` (or that there is no such room).
    fn not_in_room(&mut self, conn: ConnId, tag: Option<u64>, room: &str) {
        let message = format!("you are not in a room named {room:?}");
        self.error(conn, tag, ErrorCode::NoSuchRoom(room.to_owned()), message);
    }

    fn error(&mut self, conn: ConnId, tag: Option<u64>, code: ErrorCode, message: String) {
        let code = match self.clients.get(&conn) {
            Some(m) => m.caps.code(code),
            None => code.for_version(1),
        };
        self.push_to(conn, &ServerFrame::Error(ErrorFrame { tag, code, message }));
    }

    /// Asks the store whether `chat-server admin` changed the database; if it did, the
    /// changes are read and applied.
    fn check_elsewhere(&mut self) {
        let after = self.admin_seen;
        self.durable.read(move |store| {
            let events = match store.changed_elsewhere() {
                Ok(false) => Ok(Vec::new()),
                Ok(true) => store.admin_events(after),
                Err(e) => Err(e),
            };
            Cmd::Admin(events.map_err(|e| e.to_string()))
        });
    }

    /// Tells `conn` the store is too busy for `what`; nothing was changed.
    fn busy(&mut self, conn: ConnId, what: &str) {
        let message = format!("the server is too busy to {what} now; try again");
        self.error(conn, None, ErrorCode::Busy, message);
    }
}
