//! Retention: deleting the messages past `--retain-days`, past `--retain-messages-per-room`
//! in each room, and the oldest ones beyond `--retain-mb` in all; and rooms that expired.
//! Each run deletes at most [`MAX_DELETE`] messages per rule, so that it never holds the
//! store thread long; the next run goes on where it stopped.
//!
//! Freed pages are reused by SQLite: the file stops growing once retention deletes as much
//! as is written, but it does not shrink by itself (`VACUUM` does, offline).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Retention, StoreError};
use chat_core::protocol::MessageId;

/// Most messages one rule deletes in one run.
pub const MAX_DELETE: i64 = 20_000;

/// What a run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Messages deleted.
    pub messages: u64,
    /// Every message with an id up to this one was deleted (by age or by size): a room's
    /// recent messages up to it are gone. `None` when none were deleted that way.
    pub up_to: Option<MessageId>,
}

/// Applies `retention` at `now`, in one transaction.
pub fn prune(
    db: &mut Connection,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Pruned, StoreError> {
    let tx = db.transaction()?;
    let mut pruned = Pruned::default();
    let mut up_to: Option<i64> = None;
    if let Some(age) = retention.max_age {
        let cutoff = now.timestamp_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let last: Option<i64> = tx.query_row(
            "SELECT max(id) FROM (SELECT id FROM messages WHERE at_ms < ?1 ORDER BY id LIMIT ?2)",
            params![cutoff, MAX_DELETE],
            |r| r.get(0),
        )?;
        up_to = up_to.max(last);
    }
    if let Some(max_bytes) = retention.max_bytes {
        up_to = up_to.max(beyond_bytes(&tx, max_bytes)?);
    }
    if let Some(last) = up_to {
        tx.execute("DELETE FROM offline WHERE message <= ?1", [last])?;
        pruned.messages += tx.execute("DELETE FROM messages WHERE id <= ?1", [last])? as u64;
        pruned.up_to = u64::try_from(last).ok();
    }
    if let Some(per_room) = retention.per_room {
        pruned.messages += per_room_excess(&tx, i64::from(per_room))?;
    }
    // Expiring messages are deleted by the hub when they expire; this catches any it could
    // not keep track of.
    pruned.messages += super::notes::delete_expired(&tx, now, MAX_DELETE)?;
    tx.commit()?;
    Ok(pruned)
}

/// The id up to which the oldest messages must go for the text kept to fit in `max_bytes`
/// (at most [`MAX_DELETE`] of them per run).
fn beyond_bytes(tx: &Connection, max_bytes: u64) -> Result<Option<i64>, StoreError> {
    let total: i64 = tx.query_row(
        "SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM messages",
        [],
        |r| r.get(0),
    )?;
    let mut excess = total - i64::try_from(max_bytes).unwrap_or(i64::MAX);
    if excess <= 0 {
        return Ok(None);
    }
    let mut last = None;
    let mut stmt =
        tx.prepare("SELECT id, length(CAST(body AS BLOB)) FROM messages ORDER BY id LIMIT ?1")?;
    let mut rows = stmt.query([MAX_DELETE])?;
    while excess > 0
        && let Some(row) = rows.next()?
    {
        last = Some(row.get::<_, i64>(0)?);
        excess -= row.get::<_, i64>(1)?;
    }
    Ok(last)
}

/// Deletes the messages of each room past its newest `keep`.
fn per_room_excess(tx: &Connection, keep: i64) -> Result<u64, StoreError> {
    let crowded: Vec<String> = tx
        .prepare(
            "SELECT room FROM messages WHERE room IS NOT NULL GROUP BY room \
             HAVING count(*) > ?1",
        )?
        .query_map([keep], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut deleted = 0;
    for room in crowded {
        deleted += tx.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE room = ?1 \
             AND id <= (SELECT id FROM messages WHERE room = ?1 ORDER BY id DESC \
             LIMIT 1 OFFSET ?2) ORDER BY id LIMIT ?3)",
            params![room, keep, MAX_DELETE],
        )? as u64;
    }
    Ok(deleted)
}

/// Deletes a room, its messages and its memberships.
pub fn delete_room(tx: &Connection, key: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM messages WHERE room = ?1", [key])?;
    tx.execute("DELETE FROM account_rooms WHERE room = ?1", [key])?;
    tx.execute("DELETE FROM room_ops WHERE room = ?1", [key])?;
    tx.execute("DELETE FROM rooms WHERE key = ?1", [key])?;
    Ok(())
}
