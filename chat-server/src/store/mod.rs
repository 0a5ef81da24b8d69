//! Persistent state: accounts, rooms, the rooms each account is in, every message, and the
//! private messages waiting for offline accounts.
//!
//! [`Store`] is the seam: [`SqliteStore`] implements it today (a file in WAL mode, or an
//! in-memory database), and a PostgreSQL implementation for deployments with several servers
//! would implement the same trait. A store is used by exactly one thread, the store thread
//! started by [`StoreHandle::spawn`]. That thread takes the writes waiting for it in one go and
//! commits them as **one transaction** (group commit): while one batch is being synced to disk
//! the next one accumulates, so a burst of messages costs one sync, not one per message. Only
//! after the commit returns does it report the batch's writes done, and only then does the hub
//! acknowledge messages to their senders (docs/architecture.md, "Durability").
//!
//! Reads run on the same thread between batches, so a read sees every write queued before it.

mod backup;
pub mod moderation;
pub mod notes;
pub use search::SearchScope;
mod prune;
mod search;
mod sqlite;

use std::fmt;
use std::thread::JoinHandle;
use std::time::Duration;

use chat_core::protocol::{ChatMessage, MessageId, Timestamp};
use tokio::sync::mpsc;

use crate::event::SharedMessage;
use crate::login::HashedPassword;

pub use backup::{BackupReport, backup};
pub use moderation::{AdminAction, AdminEvent, ModWrite, Moderation};
pub use notes::{Edit, Notes};
pub use prune::{Pruned, delete_room};
pub use sqlite::SqliteStore;

/// Most jobs waiting for the store thread. When it is full the hub refuses new messages with a
/// "busy" error instead of waiting (the hub never waits).
pub const STORE_QUEUE: usize = 16 * 1024;
/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 4096;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database was written by a newer server.
    #[error(
        "the database has schema version {found}, newer than this server's {known}: \
         upgrade the server"
    )]
    TooNew {
        /// The database's version.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// A stored value could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store thread has stopped.
    #[error("the store has stopped")]
    Stopped,
    /// The database's folder could not be created.
    #[error("cannot create its folder: {0}")]
    Io(#[from] std::io::Error),
}

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The nickname as registered.
    pub nick: String,
    /// The Argon2id hash (PHC string).
    pub hash: HashedPassword,
    /// Keys of the rooms it is in besides `lobby`.
    pub rooms: Vec<String>,
    /// Its latest login before this one, if one was recorded.
    pub last_login: Option<LastLogin>,
}

/// An account's login, as stored: the mentions of the account are listed from its previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastLogin {
    /// When.
    pub at: Timestamp,
    /// The id the next message got then: later messages have this id or a larger one.
    pub first_id: MessageId,
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    /// The case-folded name.
    pub key: String,
    /// The name.
    pub name: String,
    /// The topic; may be empty.
    pub topic: String,
    /// A guest created it (empty ones nobody's account is in expire sooner).
    pub by_guest: bool,
}

/// How a room has been used, as far as the store knows, for expiring it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomUse {
    /// Its last message, or its creation if it has none.
    pub last_used: chrono::DateTime<chrono::Utc>,
    /// Accounts that are in it (they come back to it at login).
    pub accounts: u32,
}

/// How long messages and rooms are kept (`--retain-days` and the others; the store deletes
/// what is past them when it starts and then every so often).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Messages older than this are deleted; `None` keeps them.
    pub max_age: Option<Duration>,
    /// Messages kept per room, and per account for private ones; `None`: no limit.
    pub per_room: Option<u32>,
    /// Bytes of message text kept in all, the oldest deleted first; `None`: no limit.
    pub max_bytes: Option<u64>,
    /// An empty room no account has joined expires this long after its last use.
    pub room_expiry: Option<Duration>,
    /// The same for a room a guest created.
    pub guest_room_expiry: Option<Duration>,
    /// How often rooms are expired and the retention applied (and once at start).
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        let day = Duration::from_secs(86_400);
        Retention {
            max_age: Some(day * 365),
            per_room: Some(20_000),
            max_bytes: Some(1 << 30),
            room_expiry: Some(day * 30),
            guest_room_expiry: Some(Duration::from_secs(24 * 3600)),
            every: Duration::from_secs(600),
        }
    }
}

/// What the server needs in memory at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The id the next message gets (ids stay increasing across restarts).
    pub next_message_id: MessageId,
    /// Every account's nickname.
    pub accounts: Vec<String>,
    /// Every room, and how it has been used.
    pub rooms: Vec<(StoredRoom, RoomUse)>,
    /// The most recent messages of each room that has any: the room's key, the messages
    /// (oldest first), and whether older ones exist.
    pub recent: Vec<(String, Vec<SharedMessage>, bool)>,
    /// Operators, locked topics and bans.
    pub moderation: Moderation,
    /// The edits and reactions of the messages in `recent` that have any.
    pub notes: Vec<(MessageId, Notes)>,
    /// Every message that expires, with when (those already expired were deleted).
    pub expiring: Vec<(MessageId, Timestamp)>,
}

/// One change to the stored state.
#[derive(Debug, Clone)]
pub enum Write {
    /// A room or private message (`room` is the room's key, `None` for a private message),
    /// and the accounts it waits for because they are offline.
    Message {
        /// The message, without a tag (the record the hub's other sinks share).
        message: SharedMessage,
        /// The room's key, `None` for a private message.
        room: Option<String>,
        /// Keys of the offline accounts it is queued for.
        offline_for: Vec<String>,
    },
    /// A room was created or its topic changed.
    Room(StoredRoom),
    /// An account was registered.
    Account {
        /// Its key (the case-folded nickname).
        key: String,
        /// Its nickname.
        nick: String,
        /// The password hash.
        hash: HashedPassword,
    },
    /// An account logged in (what mentions it since is listed at its next login).
    LoggedIn {
        /// The account's key.
        key: String,
        /// When.
        at: Timestamp,
        /// The id the next message gets.
        first_id: MessageId,
    },
    /// An account's password changed.
    Password {
        /// The account's key.
        key: String,
        /// The new hash.
        hash: HashedPassword,
    },
    /// The account received its kept private messages up to this id: they are no longer kept.
    OfflineReceived {
        /// The account's key.
        account: String,
        /// The last message id received.
        up_to: MessageId,
    },
    /// A room expired or was deleted: it goes, with its messages and memberships.
    DeleteRoom {
        /// The room's key.
        key: String,
    },
    /// An account joined (`true`) or left a room.
    Membership {
        /// The account's key.
        account: String,
        /// The room's key.
        room: String,
        /// Joined or left.
        joined: bool,
    },
    /// Operators, locked topics, bans.
    Moderation(ModWrite),
    /// A message was deleted: its text goes, and it is no longer kept for anyone.
    DeleteMessage {
        /// Its id.
        id: MessageId,
    },
    /// A message's text was replaced; the earlier text is not kept.
    EditMessage {
        /// Its id.
        id: MessageId,
        /// The new text.
        text: String,
        /// Who edited it.
        by: String,
        /// When.
        at: chat_core::protocol::Timestamp,
    },
    /// Someone reacted to a message (`add`), or took their reaction back.
    React {
        /// The message's id.
        id: MessageId,
        /// The emoji.
        emoji: String,
        /// Who.
        nick: String,
        /// Added or taken back.
        add: bool,
        /// When.
        at: chat_core::protocol::Timestamp,
    },
}

/// Persistent storage. Methods are called from the store thread only; see the module
/// documentation.
pub trait Store: Send + fmt::Debug {
    /// Loads what the server keeps in memory, with up to `recent` messages per room.
    fn load(&mut self, recent: usize) -> Result<Snapshot, StoreError>;
    /// Applies the writes atomically and durably: when this returns `Ok`, all of them survive
    /// a crash of the process (and, with the default settings, of the machine); on `Err`, none
    /// of them was applied.
    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError>;
    /// The account registered under this key, with its rooms.
    fn account(&mut self, key: &str) -> Result<Option<Account>, StoreError>;
    /// Up to `limit` messages of a room older than `before` (all when `None`), oldest first,
    /// and whether older ones exist.
    fn history(
        &mut self,
        room: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, bool), StoreError>;
    /// The message with this id, if it is stored, and its room's key (`None`: private).
    fn message(
        &mut self,
        id: MessageId,
    ) -> Result<Option<(Option<String>, ChatMessage)>, StoreError>;
    /// The edits and reactions of those of messages `ids` that have any.
    fn notes(&mut self, ids: &[MessageId]) -> Result<Vec<(MessageId, Notes)>, StoreError>;
    /// The stored messages `scope` may read that match `query`, newest first, below
    /// `before`: at most `limit`, and where to go on for older ones (`None`: none left).
    fn search(
        &mut self,
        scope: &SearchScope,
        query: &crate::search::Query,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, Option<MessageId>), StoreError>;
    /// Adds up to `max` of the messages stored since the last time to the search index;
    /// how many it added (0: the index is up to date).
    fn index(&mut self, max: usize) -> Result<usize, StoreError>;
    /// How many stored messages wait to be indexed.
    fn index_backlog(&mut self) -> Result<u64, StoreError>;
    /// A page of the private conversation of `account` (a key) with the nicknames `with`:
    /// up to `limit` messages below `before`, oldest first, sent since the account exists;
    /// and whether older ones exist.
    fn private_history(
        &mut self,
        account: &str,
        with: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, bool), StoreError>;
    /// Up to `limit` of the private messages kept for an account, oldest first.
    fn offline(&mut self, account: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError>;
    /// What `chat-server admin` changed after event `after`.
    fn admin_events(&mut self, after: i64) -> Result<Vec<AdminEvent>, StoreError>;
    /// Whether another program (`chat-server admin`) changed the database since the last call.
    fn changed_elsewhere(&mut self) -> Result<bool, StoreError>;
    /// Deletes what `retention` no longer keeps at `now` (a bounded amount per call).
    fn prune(
        &mut self,
        retention: &Retention,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Pruned, StoreError>;
}

/// A read (or a read-and-delete) run on the store thread between batches.
type ReadJob = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// Work for the store thread.
enum Job<T> {
    /// A write, and what to report once it is committed.
    Write(Write, Option<T>),
    /// A read, run between batches.
    Read(ReadJob),
}

impl<T> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Job::Write(w, _) => f.debug_tuple("Write").field(w).finish(),
            Job::Read(_) => f.write_str("Read"),
        }
    }
}

/// Called on the store thread after each batch with the commit's outcome and the reports of
/// the batch's writes, in the order they were queued.
pub type OnCommit<T> = Box<dyn FnMut(Result<(), StoreError>, Vec<T>) + Send>;

/// The sending side of the store thread. Cloning it is cheap; the thread ends when every
/// handle is dropped, after finishing the jobs already queued.
#[derive(Debug)]
pub struct StoreHandle<T> {
    tx: mpsc::Sender<Job<T>>,
}

impl<T> StoreHandle<T> {
    /// Something that tells whether the store thread still takes writes, without keeping it
    /// running: the thread ends once every handle is dropped, whoever holds a watch.
    pub fn watch(&self) -> StoreWatch<T> {
        StoreWatch(self.tx.downgrade())
    }
}

/// Whether the store thread still takes writes (for `/readyz`), from [`StoreHandle::watch`].
#[derive(Debug)]
pub struct StoreWatch<T>(mpsc::WeakSender<Job<T>>);

impl<T> StoreWatch<T> {
    /// True while a handle exists and the thread has not stopped.
    pub fn is_running(&self) -> bool {
        self.0.upgrade().is_some_and(|tx| !tx.is_closed())
    }
}

impl<T> Clone for StoreHandle<T> {
    fn clone(&self) -> Self {
        StoreHandle {
            tx: self.tx.clone(),
        }
    }
}

/// Why a write was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The store thread is behind; try later.
    Full,
    /// The store thread has stopped.
    Stopped,
}

impl<T: Send + 'static> StoreHandle<T> {
    /// Starts the store thread over `store`.
    pub fn spawn(
        store: Box<dyn Store>,
        on_commit: OnCommit<T>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(STORE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("chat-store".into())
            .spawn(move || run(store, rx, on_commit))?;
        Ok((StoreHandle { tx }, thread))
    }

    /// Whether `n` more jobs fit in the queue right now.
    pub fn has_room(&self, n: usize) -> bool {
        self.tx.capacity() >= n
    }

    /// Queues a write without waiting; `report` comes back through `on_commit`.
    pub fn try_write(&self, write: Write, report: Option<T>) -> Result<(), QueueError> {
        self.tx
            .try_send(Job::Write(write, report))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Stopped,
            })
    }

    /// Reserves room for a write, so that it can be queued later without failing. The permit
    /// borrows nothing: its holder may go on changing whatever owns this handle.
    pub fn try_reserve(&self) -> Result<WritePermit<T>, QueueError> {
        self.tx
            .clone()
            .try_reserve_owned()
            .map(WritePermit)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Stopped,
            })
    }

    /// Runs `f` on the store thread after the writes queued so far, without waiting for it.
    pub fn try_read(
        &self,
        f: impl FnOnce(&mut dyn Store) + Send + 'static,
    ) -> Result<(), QueueError> {
        self.tx
            .try_send(Job::Read(Box::new(f)))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Stopped,
            })
    }

    /// Runs `f` on the store thread after the writes queued so far and returns its result.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job::Read(Box::new(move |store: &mut dyn Store| {
            let _ = reply.send(f(store));
        }));
        self.tx.send(job).await.map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)
    }

    /// Queues a write, waiting for room; for callers that may wait (not the hub).
    pub async fn write(&self, write: Write, report: Option<T>) -> Result<(), StoreError> {
        self.tx
            .send(Job::Write(write, report))
            .await
            .map_err(|_| StoreError::Stopped)
    }
}

/// Room for one write in the store's queue (see [`StoreHandle::try_reserve`]).
#[derive(Debug)]
pub struct WritePermit<T>(mpsc::OwnedPermit<Job<T>>);

impl<T> WritePermit<T> {
    /// Queues the write.
    pub fn write(self, write: Write, report: Option<T>) {
        self.0.send(Job::Write(write, report));
    }
}

/// The store thread: group commit of the writes, reads in between.
fn run<T>(mut store: Box<dyn Store>, mut rx: mpsc::Receiver<Job<T>>, mut on_commit: OnCommit<T>) {
    // Grown by the batches that need it, not sized for the largest one in advance.
    let mut jobs = Vec::new();
    let mut writes = Vec::new();
    let mut reports = Vec::new();
    let mut reads = Vec::new();
    // Whatever waited to be indexed when the server stopped.
    let mut unindexed = store.index_backlog().unwrap_or(0);
    index_when_idle(store.as_mut(), &rx, &mut unindexed);
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        for job in jobs.drain(..) {
            match job {
                Job::Write(write, report) => {
                    writes.push(write);
                    reports.extend(report);
                }
                Job::Read(read) => reads.push(read),
            }
        }
        if !writes.is_empty() {
            unindexed += writes.len() as u64;
            let result = store.apply(&writes);
            if let Err(e) = &result {
                tracing::error!("could not store {} changes: {e}", writes.len());
            }
            writes.clear();
            on_commit(result, std::mem::take(&mut reports));
        }
        for read in reads.drain(..) {
            read(store.as_mut());
        }
        index_when_idle(store.as_mut(), &rx, &mut unindexed);
    }
}

/// Indexes the messages stored since the last time (see migration 7): while nothing else
/// waits, in batches; or, when too many wait, one batch even though more jobs do.
/// `unindexed` counts the writes since the index was last up to date: at least as many as the
/// messages that wait.
fn index_when_idle<T>(store: &mut dyn Store, rx: &mpsc::Receiver<Job<T>>, unindexed: &mut u64) {
    let busy = !rx.is_empty();
    if busy && *unindexed < search::INDEX_BACKLOG {
        return;
    }
    loop {
        match store.index(search::INDEX_BATCH) {
            Ok(0) => {
                *unindexed = 0;
                return;
            }
            Ok(n) => *unindexed = unindexed.saturating_sub(n as u64),
            Err(e) => {
                tracing::error!("could not index messages for search: {e}");
                return;
            }
        }
        if !rx.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
