//! The SQLite store: one file in WAL mode with `synchronous = FULL` (a commit is on disk when it
//! returns), or an in-memory database for tests and `--db :memory:`.
//!
//! The schema is created and upgraded by the migrations in `migrations/`, embedded in the
//! binary and applied in order at start; `PRAGMA user_version` records how many have run.

use std::path::Path;

use chat_core::protocol::{Body, ChatMessage, DEFAULT_ROOM, MessageAttr, MessageId, Target};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Account, LastLogin, Pruned, Retention, RoomUse, Snapshot, Store, StoreError, StoredRoom, Write,
};
use crate::login::HashedPassword;

/// The migrations, in order. A database at version `n` has had the first `n` applied.
pub const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_offline.sql"),
    include_str!("migrations/0003_rooms.sql"),
    include_str!("migrations/0004_moderation.sql"),
    include_str!("migrations/0005_message_ops.sql"),
    include_str!("migrations/0006_private_history.sql"),
    include_str!("migrations/0007_search.sql"),
    include_str!("migrations/0008_mentions.sql"),
    include_str!("migrations/0009_search_words.sql"),
];

/// SQLite behind the [`Store`] trait.
#[derive(Debug)]
pub struct SqliteStore {
    db: Connection,
    /// The database's `data_version` when last looked at.
    data_version: Option<i64>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        let db = Connection::open(path)?;
        // WAL: readers never block the writer; FULL: a commit is durable when it returns.
        let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                "the database at {} is in {mode} mode, not WAL",
                path.display()
            );
        }
        db.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")?;
        Self::with(db, MIGRATIONS.len())
    }

    /// A database in memory: nothing survives the process.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::with(Connection::open_in_memory()?, MIGRATIONS.len())
    }

    /// Opens the file and applies only the first `version` migrations (to build databases of
    /// an older schema in tests).
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, version: usize) -> Result<Self, StoreError> {
        Self::with(Connection::open(path)?, version)
    }

    fn with(mut db: Connection, version: usize) -> Result<Self, StoreError> {
        migrate(&mut db, version)?;
        Ok(SqliteStore {
            db,
            data_version: None,
        })
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.db.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// The database connection itself (`chat-server admin` works on it directly).
    pub fn into_connection(self) -> Connection {
        self.db
    }

    /// Direct access to the database, for tests that build old data.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.db
    }
}

/// Creates the database file readable by its owner only (it holds private messages and
/// password hashes); SQLite gives its `-wal` and `-shm` files the same permissions. An
/// existing file is left as it is.
pub(super) fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(e)),
    }
}

/// Applies the migrations the database has not had, up to `target`, each in its own
/// transaction with the version bump.
fn migrate(db: &mut Connection, target: usize) -> Result<(), StoreError> {
    let found: u32 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX);
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target)
        .skip(found as usize)
    {
        let tx = db.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
        tracing::debug!("database migrated to schema version {}", i + 1);
    }
    Ok(())
}

pub(super) const MESSAGE_COLUMNS: &str = "id, at_ms, sender, room, recipients, action, body, attrs";

/// A page of history from `rows` read newest first, one more than `limit` asked for: the
/// messages oldest first, and whether older ones exist.
fn page(mut rows: Vec<Row>, limit: usize) -> Result<(Vec<ChatMessage>, bool), StoreError> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    rows.reverse();
    let messages = rows
        .into_iter()
        .map(Row::into_message)
        .collect::<Result<_, _>>()?;
    Ok((messages, more))
}

/// The parties of a private message from `sender` to `to`, as `parties` keeps them: each
/// nickname once, in ASCII lower case (as SQLite's `lower()` makes them in migration 6).
fn parties(sender: &str, to: &[String]) -> Vec<String> {
    let mut all: Vec<String> = std::iter::once(sender)
        .chain(to.iter().map(String::as_str))
        .map(str::to_ascii_lowercase)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// Account `key` as a party of private messages: its nickname as `parties` keeps it, and
/// since when it exists (its private history and searches start there).
pub(super) fn account_party(
    db: &Connection,
    key: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    Ok(db
        .prepare_cached("SELECT nick, created_ms FROM accounts WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
        .optional()?
        .map(|(nick, since)| (nick.to_ascii_lowercase(), since)))
}

/// A message from a row of [`MESSAGE_COLUMNS`] (`room_name` is shown instead of the key).
pub(super) fn message_from_row(
    row: &rusqlite::Row<'_>,
    room_name: Option<&str>,
) -> rusqlite::Result<Row> {
    Ok(Row {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        sender: row.get(2)?,
        room: room_name.map(str::to_owned).or(row.get(3)?),
        recipients: row.get(4)?,
        action: row.get(5)?,
        body: row.get(6)?,
        attrs: row.get(7)?,
    })
}

/// A `messages` row as read.
pub(super) struct Row {
    id: i64,
    at_ms: i64,
    sender: String,
    room: Option<String>,
    recipients: Option<String>,
    action: bool,
    body: String,
    attrs: Option<String>,
}

impl Row {
    pub(super) fn into_message(self) -> Result<ChatMessage, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("message {}: {what}", self.id));
        let at = DateTime::<Utc>::from_timestamp_millis(self.at_ms)
            .ok_or_else(|| corrupt("timestamp out of range"))?;
        let to = match (self.room, self.recipients) {
            (Some(room), _) => Target::Room(room),
            (None, Some(users)) => Target::Users(users.lines().map(str::to_owned).collect()),
            (None, None) => return Err(corrupt("neither room nor recipients")),
        };
        let attrs: Vec<MessageAttr> = match &self.attrs {
            Some(json) => serde_json::from_str(json).map_err(|e| corrupt(&e.to_string()))?,
            None => Vec::new(),
        };
        let body = if self.action {
            Body::Action(self.body)
        } else {
            Body::Text(self.body)
        };
        Ok(ChatMessage {
            id: u64::try_from(self.id).map_err(|_| corrupt("negative id"))?,
            at,
            from: self.sender,
            to,
            body,
            attrs,
            tag: None,
        })
    }
}

pub(super) fn id_param(id: MessageId) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

impl Store for SqliteStore {
    fn load(&mut self, recent: usize) -> Result<Snapshot, StoreError> {
        // The largest id before what expired while the server was stopped goes (before anything
        // is loaded): ids are not given out twice.
        let last: Option<i64> = self
            .db
            .query_row("SELECT max(id) FROM messages", [], |r| r.get(0))?;
        super::notes::delete_expired(&self.db, Utc::now(), i64::MAX)?;
        let accounts = self
            .db
            .prepare("SELECT nick FROM accounts ORDER BY key")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let rooms = self
            .db
            .prepare(
                "SELECT key, name, topic, by_guest, \
                 max(created_ms, coalesce((SELECT max(at_ms) FROM messages \
                     WHERE messages.room = rooms.key), 0)), \
                 (SELECT count(*) FROM account_rooms WHERE account_rooms.room = rooms.key) \
                 FROM rooms ORDER BY key",
            )?
            .query_map([], |r| {
                let room = StoredRoom {
                    key: r.get(0)?,
                    name: r.get(1)?,
                    topic: r.get(2)?,
                    by_guest: r.get(3)?,
                };
                let last_used = DateTime::from_timestamp_millis(r.get(4)?).unwrap_or_default();
                let accounts = r.get(5)?;
                Ok((
                    room,
                    RoomUse {
                        last_used,
                        accounts,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut recent_by_room = Vec::with_capacity(rooms.len() + 1);
        if recent > 0 {
            // The lobby has a row only once its topic was set.
            let lobby = (!rooms.iter().any(|(r, _)| r.key == DEFAULT_ROOM)).then_some(DEFAULT_ROOM);
            let keys = rooms.iter().map(|(r, _)| r.key.as_str()).chain(lobby);
            for key in keys {
                let (messages, older) = self.history(key, None, recent)?;
                if !messages.is_empty() {
                    let shared: Vec<_> = messages.into_iter().map(std::sync::Arc::new).collect();
                    recent_by_room.push((key.to_owned(), shared, older));
                }
            }
        }
        let moderation = super::moderation::load(&self.db)?;
        super::moderation::changed_elsewhere(&self.db, &mut self.data_version)?;
        let ids: Vec<MessageId> = recent_by_room
            .iter()
            .flat_map(|(_, messages, _)| messages.iter().map(|m| m.id))
            .collect();
        Ok(Snapshot {
            next_message_id: u64::try_from(last.unwrap_or(0)).unwrap_or(0) + 1,
            accounts,
            rooms,
            recent: recent_by_room,
            moderation,
            notes: super::notes::notes(&self.db, &ids)?,
            expiring: super::notes::expiring(&self.db)?,
        })
    }

    fn apply(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let tx = self.db.transaction()?;
        for write in writes {
            match write {
                Write::Message {
                    message,
                    room,
                    offline_for,
                } => {
                    let recipients = match &message.to {
                        Target::Users(users) => Some(users.join("\n")),
                        Target::Room(_) => None,
                    };
                    let attrs = if message.attrs.is_empty() {
                        None
                    } else {
                        Some(
                            serde_json::to_string(&message.attrs)
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        )
                    };
                    let id = id_param(message.id);
                    let expires_ms = MessageAttr::expires_in(&message.attrs)
                        .map(|secs| message.at.timestamp_millis() + i64::from(secs) * 1000);
                    tx.prepare_cached(
                        "INSERT INTO messages (id, at_ms, sender, room, recipients, action, \
                         body, attrs, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        id,
                        message.at.timestamp_millis(),
                        message.from,
                        room,
                        recipients,
                        matches!(message.body, Body::Action(_)),
                        message.body.text(),
                        attrs,
                        expires_ms,
                    ])?;
                    if let Target::Users(users) = &message.to {
                        for party in parties(&message.from, users) {
                            tx.prepare_cached(
                                "INSERT OR IGNORE INTO parties (party, message) VALUES (?1, ?2)",
                            )?
                            .execute(params![party, id])?;
                        }
                    }
                    for account in offline_for {
                        tx.prepare_cached(
                            "INSERT INTO offline (account, message) VALUES (?1, ?2)",
                        )?
                        .execute(params![account, id])?;
                    }
                }
                Write::Room(room) => {
                    tx.prepare_cached(
                        "INSERT INTO rooms (key, name, topic, created_ms, by_guest) \
                         VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (key) DO UPDATE SET topic = excluded.topic",
                    )?
                    .execute(params![
                        room.key,
                        room.name,
                        room.topic,
                        Utc::now().timestamp_millis(),
                        room.by_guest
                    ])?;
                }
                Write::Account { key, nick, hash } => {
                    tx.prepare_cached(
                        "INSERT INTO accounts (key, nick, hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![key, nick, hash.as_str(), Utc::now().timestamp_millis()])?;
                }
                Write::Password { key, hash } => {
                    tx.prepare_cached("UPDATE accounts SET hash = ?2 WHERE key = ?1")?
                        .execute(params![key, hash.as_str()])?;
                }
                Write::LoggedIn { key, at, first_id } => {
                    tx.prepare_cached(
                        "UPDATE accounts SET login_ms = ?2, login_id = ?3 WHERE key = ?1",
                    )?
                    .execute(params![
                        key,
                        at.timestamp_millis(),
                        id_param(*first_id)
                    ])?;
                }
                Write::OfflineReceived { account, up_to } => {
                    tx.prepare_cached("DELETE FROM offline WHERE account = ?1 AND message <= ?2")?
                        .execute(params![account, id_param(*up_to)])?;
                }
                Write::DeleteRoom { key } => super::prune::delete_room(&tx, key)?,
                Write::Membership {
                    account,
                    room,
                    joined,
                } => {
                    let sql = if *joined {
                        "INSERT OR IGNORE INTO account_rooms (account, room) VALUES (?1, ?2)"
                    } else {
                        "DELETE FROM account_rooms WHERE account = ?1 AND room = ?2"
                    };
                    tx.prepare_cached(sql)?.execute(params![account, room])?;
                }
                Write::Moderation(write) => super::moderation::apply(&tx, write)?,
                Write::DeleteMessage { id } => {
                    tx.prepare_cached("DELETE FROM offline WHERE message = ?1")?
                        .execute([id_param(*id)])?;
                    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
                        .execute([id_param(*id)])?;
                }
                Write::EditMessage { id, text, by, at } => {
                    super::notes::edit(&tx, *id, text, by, *at)?;
                }
                Write::React {
                    id,
                    emoji,
                    nick,
                    add,
                    at,
                } => super::notes::react(&tx, *id, emoji, nick, *add, *at)?,
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn account(&mut self, key: &str) -> Result<Option<Account>, StoreError> {
        let found = self
            .db
            .prepare_cached("SELECT nick, hash, login_ms, login_id FROM accounts WHERE key = ?1")?
            .query_row([key], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })
            .optional()?;
        let Some((nick, hash, login_ms, login_id)) = found else {
            return Ok(None);
        };
        let last_login = match (login_ms.and_then(DateTime::from_timestamp_millis), login_id) {
            (Some(at), Some(first_id)) => Some(LastLogin {
                at,
                first_id: u64::try_from(first_id).unwrap_or(0),
            }),
            _ => None,
        };
        let rooms = self
            .db
            .prepare_cached("SELECT room FROM account_rooms WHERE account = ?1 ORDER BY room")?
            .query_map([key], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(Some(Account {
            nick,
            hash: HashedPassword::from_stored(hash),
            rooms,
            last_login,
        }))
    }

    fn history(
        &mut self,
        room: &str,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, bool), StoreError> {
        let name: Option<String> = self
            .db
            .prepare_cached("SELECT name FROM rooms WHERE key = ?1")?
            .query_row([room], |r| r.get(0))
            .optional()?;
        let name = name.unwrap_or_else(|| room.to_owned());
        // One more than asked for tells whether older messages exist.
        let want = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = self
            .db
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ?1 AND id < ?2 \
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(
                params![room, before.map_or(i64::MAX, id_param), want],
                |r| message_from_row(r, Some(&name)),
            )?
            .collect::<Result<Vec<Row>, _>>()?;
        page(rows, limit)
    }

    fn message(
        &mut self,
        id: MessageId,
    ) -> Result<Option<(Option<String>, ChatMessage)>, StoreError> {
        let row = self
            .db
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS}, (SELECT name FROM rooms WHERE key = messages.room) \
                 FROM messages WHERE id = ?1"
            ))?
            .query_row([id_param(id)], |r| {
                let key: Option<String> = r.get(3)?;
                let name: Option<String> = r.get(8)?;
                let row = message_from_row(r, name.as_deref().or(key.as_deref()))?;
                Ok((key, row))
            })
            .optional()?;
        row.map(|(key, row)| row.into_message().map(|m| (key, m)))
            .transpose()
    }

    fn private_history(
        &mut self,
        account: &str,
        with: &[String],
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, bool), StoreError> {
        let Some((me, since_ms)) = account_party(&self.db, account)? else {
            return Ok((Vec::new(), false));
        };
        let others = parties(&me, with);
        let others: Vec<String> = others.into_iter().filter(|p| *p != me).collect();
        if others.is_empty() {
            return Ok((Vec::new(), false));
        }
        // The messages whose parties are exactly `me` and `others`, sent since the account
        // exists (not a guest's of the same name before it), newest first.
        let mut sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM parties p JOIN messages m ON m.id = p.message \
             WHERE p.party = ?1 AND p.message < ?2 AND m.at_ms >= ?3 \
             AND (SELECT count(*) FROM parties q WHERE q.message = p.message) = ?4"
        );
        for i in 0..others.len() {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM parties q WHERE q.message = p.message \
                 AND q.party = ?{})",
                i + 6
            ));
        }
        sql.push_str(" ORDER BY p.message DESC LIMIT ?5");
        let want = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let count = i64::try_from(others.len() + 1).unwrap_or(i64::MAX);
        let before = before.map_or(i64::MAX, id_param);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&me, &before, &since_ms, &count, &want];
        values.extend(others.iter().map(|o| o as &dyn rusqlite::ToSql));
        let rows = self
            .db
            .prepare_cached(&sql)?
            .query_map(values.as_slice(), |r| message_from_row(r, None))?
            .collect::<Result<Vec<Row>, _>>()?;
        page(rows, limit)
    }

    fn search(
        &mut self,
        scope: &super::SearchScope,
        query: &crate::search::Query,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, Option<MessageId>), StoreError> {
        // What waits to be indexed first: at most the backlog the store thread lets build up
        // (more only right after an upgrade, while the older messages are being indexed).
        super::search::index(&mut self.db, super::search::INDEX_BACKLOG as usize)?;
        super::search::search(&self.db, scope, query, before, limit)
    }

    fn index(&mut self, max: usize) -> Result<usize, StoreError> {
        super::search::index(&mut self.db, max)
    }

    fn index_backlog(&mut self) -> Result<u64, StoreError> {
        super::search::backlog(&self.db)
    }

    fn notes(&mut self, ids: &[MessageId]) -> Result<Vec<(MessageId, super::Notes)>, StoreError> {
        super::notes::notes(&self.db, ids)
    }

    fn offline(&mut self, account: &str, limit: usize) -> Result<Vec<ChatMessage>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN \
                 (SELECT message FROM offline WHERE account = ?1) ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![account, limit], |r| message_from_row(r, None))?
            .collect::<Result<Vec<Row>, _>>()?;
        rows.into_iter().map(Row::into_message).collect()
    }

    fn admin_events(&mut self, after: i64) -> Result<Vec<super::AdminEvent>, StoreError> {
        super::moderation::admin_events(&self.db, after)
    }

    fn changed_elsewhere(&mut self) -> Result<bool, StoreError> {
        super::moderation::changed_elsewhere(&self.db, &mut self.data_version)
    }

    fn prune(&mut self, retention: &Retention, now: DateTime<Utc>) -> Result<Pruned, StoreError> {
        super::prune::prune(&mut self.db, retention, now)
    }
}
