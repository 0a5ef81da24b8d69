//! What the store keeps about a message beyond its text: who last edited it and when, its
//! reactions, and when it expires. The latest text is the message's `body`: an edit replaces
//! it, and nothing of the earlier text is kept.

use std::collections::HashMap;

use chat_core::names::fold;
use chat_core::protocol::{MessageId, Reaction, Timestamp};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::StoreError;
use super::sqlite::id_param;

/// An edit: who made it, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The nickname of whoever edited it.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// What a message has beyond its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notes {
    /// Its last edit, if it was edited.
    pub edited: Option<Edit>,
    /// Its reactions, each emoji in the order it was first given.
    pub reactions: Vec<Reaction>,
}

impl Notes {
    /// Nothing to tell.
    pub fn is_empty(&self) -> bool {
        self.edited.is_none() && self.reactions.is_empty()
    }

    /// Adds `nick`'s `emoji`, or takes it back if it is there; whether it was added.
    pub fn toggle(&mut self, emoji: &str, nick: &str) -> bool {
        let key = fold(nick);
        let Some(at) = self.reactions.iter().position(|r| r.emoji == emoji) else {
            self.reactions.push(Reaction {
                emoji: emoji.to_owned(),
                nicks: vec![nick.to_owned()],
            });
            return true;
        };
        let nicks = &mut self.reactions[at].nicks;
        if let Some(i) = nicks.iter().position(|n| fold(n) == key) {
            nicks.remove(i);
            if nicks.is_empty() {
                self.reactions.remove(at);
            }
            false
        } else {
            nicks.push(nick.to_owned());
            true
        }
    }
}

/// The notes of those of messages `ids` that have any, in the order of `ids` (two queries,
/// whatever the number of ids).
pub fn notes(db: &Connection, ids: &[MessageId]) -> Result<Vec<(MessageId, Notes)>, StoreError> {
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut by_id: HashMap<MessageId, Notes> = HashMap::new();
    let mut edits = db.prepare_cached(
        "SELECT m.id, m.edited_by, m.edited_ms FROM json_each(?1) j \
         JOIN messages m ON m.id = j.value WHERE m.edited_ms IS NOT NULL",
    )?;
    let mut rows = edits.query([&list])?;
    while let Some(row) = rows.next()? {
        by_id.entry(message_id(row.get(0)?)).or_default().edited = Some(Edit {
            by: row.get(1)?,
            at: DateTime::from_timestamp_millis(row.get(2)?).unwrap_or_default(),
        });
    }
    let mut reactions = db.prepare_cached(
        "SELECT r.message, r.emoji, r.nick FROM json_each(?1) j \
         JOIN reactions r ON r.message = j.value ORDER BY r.message, r.at_ms, r.emoji, r.who",
    )?;
    let mut rows = reactions.query([&list])?;
    while let Some(row) = rows.next()? {
        let notes = by_id.entry(message_id(row.get(0)?)).or_default();
        let emoji: String = row.get(1)?;
        let nick: String = row.get(2)?;
        match notes.reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(r) => r.nicks.push(nick),
            None => notes.reactions.push(Reaction {
                emoji,
                nicks: vec![nick],
            }),
        }
    }
    Ok(ids
        .iter()
        .filter_map(|id| by_id.remove(id).map(|notes| (*id, notes)))
        .collect())
}

/// A message id as stored (never negative).
fn message_id(id: i64) -> MessageId {
    MessageId::try_from(id).unwrap_or_default()
}

/// Replaces message `id`'s text.
pub fn edit(
    tx: &Connection,
    id: MessageId,
    text: &str,
    by: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE messages SET body = ?2, edited_by = ?3, edited_ms = ?4 WHERE id = ?1",
    )?
    .execute(params![id_param(id), text, by, at.timestamp_millis()])?;
    Ok(())
}

/// Adds (`add`) or takes back `nick`'s `emoji` on message `id`.
pub fn react(
    tx: &Connection,
    id: MessageId,
    emoji: &str,
    nick: &str,
    add: bool,
    at: Timestamp,
) -> Result<(), StoreError> {
    if add {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO reactions (message, emoji, who, nick, at_ms) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?1)",
        )?
        .execute(params![
            id_param(id),
            emoji,
            fold(nick),
            nick,
            at.timestamp_millis()
        ])?;
    } else {
        tx.prepare_cached("DELETE FROM reactions WHERE message = ?1 AND emoji = ?2 AND who = ?3")?
            .execute(params![id_param(id), emoji, fold(nick)])?;
    }
    Ok(())
}

/// The messages that expire, with when, soonest first.
pub fn expiring(db: &Connection) -> Result<Vec<(MessageId, Timestamp)>, StoreError> {
    let rows = db
        .prepare(
            "SELECT id, expires_ms FROM messages WHERE expires_ms IS NOT NULL \
             ORDER BY expires_ms",
        )?
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(id, ms)| {
            let at = DateTime::from_timestamp_millis(ms).unwrap_or_default();
            (u64::try_from(id).unwrap_or(0), at)
        })
        .collect())
}

/// Deletes the messages that expired by `now` (at most `max`); how many.
pub fn delete_expired(tx: &Connection, now: DateTime<Utc>, max: i64) -> Result<u64, StoreError> {
    let ms = now.timestamp_millis();
    tx.execute(
        "DELETE FROM offline WHERE message IN (SELECT id FROM messages \
         WHERE expires_ms IS NOT NULL AND expires_ms <= ?1 LIMIT ?2)",
        params![ms, max],
    )?;
    let deleted = tx.execute(
        "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
         WHERE expires_ms IS NOT NULL AND expires_ms <= ?1 LIMIT ?2)",
        params![ms, max],
    )?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaction_toggles_and_an_emoji_nobody_gives_goes() {
        let mut notes = Notes::default();
        assert!(notes.toggle("👍", "alice"));
        assert!(notes.toggle("👍", "Bob"));
        assert!(notes.toggle("🎉", "bob"));
        assert_eq!(notes.reactions[0].nicks, ["alice", "Bob"]);
        assert!(
            !notes.toggle("👍", "BOB"),
            "the same person, whatever the case"
        );
        assert!(!notes.toggle("👍", "alice"));
        assert_eq!(notes.reactions.len(), 1);
        assert_eq!(notes.reactions[0].emoji, "🎉");
        assert!(!notes.is_empty());
    }
}
