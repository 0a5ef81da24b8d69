//! What moderation keeps: server operators (a flag on accounts), room operators, locked topics
//! and bans. Used by the store thread, and by `chat-server admin` on the same file while the
//! server runs or not (the server notices the change: [`Store::changed_elsewhere`]).
//!
//! [`Store::changed_elsewhere`]: super::Store::changed_elsewhere

use chrono::DateTime;
use rusqlite::{Connection, params};

use super::StoreError;
use crate::bans::Ban;

/// The moderation state as stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moderation {
    /// Keys of the accounts that are server operators.
    pub operators: Vec<String>,
    /// (room key, account key) of every room operator.
    pub room_ops: Vec<(String, String)>,
    /// Keys of the rooms whose topic is locked.
    pub locked_topics: Vec<String>,
    /// Every ban, expired ones included.
    pub bans: Vec<Ban>,
    /// The last of the [`AdminEvent`]s, already reflected in the rest.
    pub admin_seen: i64,
}

/// Something `chat-server admin` changed, for a running server to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEvent {
    /// Its position.
    pub id: i64,
    /// What was done.
    pub action: AdminAction,
    /// To what: an account's or a room's key, or a ban's target.
    pub target: String,
}

/// What `chat-server admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// Deleted an account.
    DeleteAccount,
    /// Deleted a room.
    DeleteRoom,
    /// Lifted a ban.
    Unban,
    /// Made an account a server operator.
    Op,
    /// Took it back.
    Deop,
}

impl AdminAction {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminAction::DeleteAccount => "delete_account",
            AdminAction::DeleteRoom => "delete_room",
            AdminAction::Unban => "unban",
            AdminAction::Op => "op",
            AdminAction::Deop => "deop",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            AdminAction::DeleteAccount,
            AdminAction::DeleteRoom,
            AdminAction::Unban,
            AdminAction::Op,
            AdminAction::Deop,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// The admin events after `after`, oldest first (unknown actions, from a newer admin tool,
/// are skipped).
pub fn admin_events(db: &Connection, after: i64) -> Result<Vec<AdminEvent>, StoreError> {
    let rows = db
        .prepare_cached("SELECT id, action, target FROM admin_events WHERE id > ?1 ORDER BY id")?
        .query_map([after], |r| {
            Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })?
        .collect::<Result<Vec<(i64, String, String)>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, action, target)| {
            AdminAction::parse(&action).map(|action| AdminEvent { id, action, target })
        })
        .collect())
}

/// Records an admin event (in the admin tool's transaction), and forgets those older than a
/// day (a server that was running has applied them; one that starts reads the state itself).
pub fn record_admin_event(
    tx: &Connection,
    action: AdminAction,
    target: &str,
) -> Result<(), StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    tx.execute(
        "DELETE FROM admin_events WHERE at_ms < ?1",
        [now - 86_400_000],
    )?;
    tx.execute(
        "INSERT INTO admin_events (action, target, at_ms) VALUES (?1, ?2, ?3)",
        params![action.as_str(), target, now],
    )?;
    Ok(())
}

/// A change to the moderation state.
#[derive(Debug, Clone)]
pub enum ModWrite {
    /// A ban, new or replacing one on the same target.
    Ban(Ban),
    /// A ban lifted (or expired).
    Unban {
        /// Its target.
        target: String,
    },
    /// An account became a server operator, or stopped being one.
    Operator {
        /// The account's key.
        account: String,
        /// Granted or revoked.
        grant: bool,
    },
    /// An account became an operator of a room, or stopped being one.
    RoomOp {
        /// The room's key.
        room: String,
        /// The account's key.
        account: String,
        /// Granted or revoked.
        grant: bool,
    },
    /// A room's topic was locked or unlocked.
    TopicLock {
        /// The room's key.
        key: String,
        /// Its name (the lobby has no row until something about it is stored).
        name: String,
        /// Locked or not.
        locked: bool,
    },
}

/// Reads the moderation state.
pub fn load(db: &Connection) -> Result<Moderation, StoreError> {
    let strings = |sql: &str| -> Result<Vec<String>, StoreError> {
        Ok(db
            .prepare(sql)?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    };
    let room_ops = db
        .prepare("SELECT room, account FROM room_ops ORDER BY room, account")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Moderation {
        operators: strings("SELECT key FROM accounts WHERE operator != 0 ORDER BY key")?,
        room_ops,
        locked_topics: strings("SELECT key FROM rooms WHERE topic_locked != 0 ORDER BY key")?,
        bans: bans(db)?,
        admin_seen: db.query_row("SELECT coalesce(max(id), 0) FROM admin_events", [], |r| {
            r.get(0)
        })?,
    })
}

/// Every ban, the newest first.
pub fn bans(db: &Connection) -> Result<Vec<Ban>, StoreError> {
    Ok(db
        .prepare(
            "SELECT target, by_nick, reason, at_ms, until_ms FROM bans \
             ORDER BY at_ms DESC, target",
        )?
        .query_map([], |r| {
            let until: Option<i64> = r.get(4)?;
            Ok(Ban {
                target: r.get(0)?,
                by: r.get(1)?,
                reason: r.get(2)?,
                at: DateTime::from_timestamp_millis(r.get(3)?).unwrap_or_default(),
                until: until.and_then(DateTime::from_timestamp_millis),
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// Applies one change (inside the caller's transaction).
pub fn apply(tx: &Connection, write: &ModWrite) -> Result<(), StoreError> {
    match write {
        ModWrite::Ban(ban) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO bans (target, by_nick, reason, at_ms, until_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                ban.target,
                ban.by,
                ban.reason,
                ban.at.timestamp_millis(),
                ban.until.map(|u| u.timestamp_millis())
            ])?;
        }
        ModWrite::Unban { target } => {
            tx.prepare_cached("DELETE FROM bans WHERE target = ?1")?
                .execute([target])?;
        }
        ModWrite::Operator { account, grant } => {
            tx.prepare_cached("UPDATE accounts SET operator = ?2 WHERE key = ?1")?
                .execute(params![account, grant])?;
        }
        ModWrite::RoomOp {
            room,
            account,
            grant,
        } => {
            let sql = if *grant {
                "INSERT OR IGNORE INTO room_ops (room, account) VALUES (?1, ?2)"
            } else {
                "DELETE FROM room_ops WHERE room = ?1 AND account = ?2"
            };
            tx.prepare_cached(sql)?.execute(params![room, account])?;
        }
        ModWrite::TopicLock { key, name, locked } => {
            tx.prepare_cached(
                "INSERT INTO rooms (key, name, created_ms, topic_locked) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET topic_locked = excluded.topic_locked",
            )?
            .execute(params![
                key,
                name,
                chrono::Utc::now().timestamp_millis(),
                locked
            ])?;
        }
    }
    Ok(())
}

/// Whether another connection (`chat-server admin`) committed to the database since the last
/// call on `db` (SQLite's `data_version`; the first call only records it).
pub fn changed_elsewhere(db: &Connection, seen: &mut Option<i64>) -> Result<bool, StoreError> {
    let now: i64 = db.query_row("PRAGMA data_version", [], |r| r.get(0))?;
    let changed = seen.is_some_and(|before| before != now);
    *seen = Some(now);
    Ok(changed)
}
