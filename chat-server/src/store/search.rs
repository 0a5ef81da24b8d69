//! Searching the stored messages (migration 7's full-text index): the index gives, newest
//! first, the messages that have the pattern's words and that the searcher may read; each must
//! then match the pattern. At most [`SCAN`] of them are read per request, so a pattern whose
//! words are everywhere costs a bounded amount: the answer then says where to go on.

use std::collections::HashMap;

use chat_core::names::fold;
use chat_core::protocol::{ChatMessage, MessageId, Target};
use rusqlite::{Connection, params};

use super::StoreError;
use super::sqlite::{MESSAGE_COLUMNS, Row, account_party, id_param, message_from_row};
use crate::search::Query;

/// Messages read from the index per request, at most.
pub const SCAN: usize = 2_000;

/// What a searcher may read.
#[derive(Debug, Clone, Default)]
pub struct SearchScope {
    /// The rooms it is in: key to name.
    pub rooms: HashMap<String, String>,
    /// Its account's key, whose private conversations it may read (since the account exists).
    pub account: Option<String>,
}

/// The most indexed words a prefix is looked up as (more: as a prefix).
const MAX_EXPANSION: usize = 32;

/// Messages indexed per transaction while the store thread is idle.
pub const INDEX_BATCH: usize = 5_000;

/// Messages that may wait to be indexed: past this, the store thread indexes them even while
/// busy (and a search first indexes what waits, at most this many).
pub const INDEX_BACKLOG: u64 = 20_000;

/// Indexes up to `max` of the messages stored since the last time, in one transaction;
/// returns how many there were.
pub(super) fn index(db: &mut Connection, max: usize) -> Result<usize, StoreError> {
    let tx = db.transaction()?;
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let (count, last): (i64, Option<i64>) = tx.query_row(
        "SELECT count(*), max(id) FROM (SELECT id FROM messages \
         WHERE id > (SELECT up_to FROM search_progress) ORDER BY id LIMIT ?1)",
        [max],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some(last) = last else {
        return Ok(0);
    };
    tx.execute(
        "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages \
         WHERE id > (SELECT up_to FROM search_progress) AND id <= ?1",
        [last],
    )?;
    tx.execute("UPDATE search_progress SET up_to = ?1", [last])?;
    tx.commit()?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// How many stored messages wait to be indexed.
pub(super) fn backlog(db: &Connection) -> Result<u64, StoreError> {
    let n: i64 = db.query_row(
        "SELECT count(*) FROM messages WHERE id > (SELECT up_to FROM search_progress)",
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn search(
    db: &Connection,
    scope: &SearchScope,
    query: &Query,
    before: Option<MessageId>,
    limit: usize,
) -> Result<(Vec<ChatMessage>, Option<MessageId>), StoreError> {
    let rooms: Vec<&String> = scope.rooms.keys().collect();
    let rooms = serde_json::to_string(&rooms).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The account's nickname as `parties` keeps it, and since when it exists.
    let found = match &scope.account {
        Some(key) => account_party(db, key)?,
        None => None,
    };
    let (me, since_ms) = found.map_or((None, i64::MAX), |(me, since)| (Some(me), since));
    let columns = MESSAGE_COLUMNS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Whether the searcher may read each message is a column, not a condition: every message
    // the index gives counts against `SCAN`, those of other rooms too.
    let mut statement = db.prepare_cached(&format!(
        "SELECT {columns}, CASE WHEN m.room IS NOT NULL \
         THEN m.room IN (SELECT value FROM json_each(?3)) AND (?7 = 0 OR m.at_ms >= ?5) \
         ELSE ?4 IS NOT NULL AND m.at_ms >= ?5 \
             AND EXISTS (SELECT 1 FROM parties p WHERE p.party = ?4 AND p.message = m.id) \
         END \
         FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid \
         WHERE messages_fts MATCH ?1 AND messages_fts.rowid < ?2 AND messages_fts.rowid >= ?6 \
         ORDER BY messages_fts.rowid DESC"
    ))?;
    let before = before.map_or(i64::MAX, id_param);
    let from = id_param(query.from_id);
    let mut expanded = HashMap::new();
    for (word, _) in query.words.iter().filter(|(_, prefix)| *prefix) {
        expanded.insert(word.as_str(), words_beginning(db, word)?);
    }
    let words = query.fts(|w| expanded.get(w).cloned().flatten());
    let since_account = query.since_account;
    let mut rows = statement.query(params![
        words,
        before,
        rooms,
        me,
        since_ms,
        from,
        since_account
    ])?;
    let mut found = Vec::new();
    let mut scanned = 0;
    while let Some(row) = rows.next()? {
        let visible: bool = row.get(8)?;
        let row: Row = message_from_row(row, None)?;
        let mut message = row.into_message()?;
        let id = message.id;
        scanned += 1;
        let by_them = query
            .not_from
            .as_ref()
            .is_some_and(|n| *n == fold(&message.from));
        if visible && !by_them && query.regex.is_match(message.body.text()) {
            if let Target::Room(key) = &message.to
                && let Some(name) = scope.rooms.get(key)
            {
                message.to = Target::Room(name.clone());
            }
            found.push(message);
        }
        if found.len() >= limit || scanned >= SCAN {
            // Perhaps more below the last one read.
            return Ok((found, Some(id)));
        }
    }
    Ok((found, None))
}

/// The indexed words that begin with `prefix`, when there are at most [`MAX_EXPANSION`]
/// (`None` when there are more, or when `prefix` is not ASCII: the index keeps words without
/// their accents, which a range of bytes would miss). FTS5 gives a prefix's matches only after
/// merging the lists of all its words whole, which takes tens of milliseconds when one of them
/// is in half of all messages; those words as alternatives give the newest matches at once.
/// (The vocabulary table counts each word's messages as it lists it, which costs a fraction
/// of that.)
pub(super) fn words_beginning(
    db: &Connection,
    prefix: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    if !prefix.is_ascii() {
        return Ok(None);
    }
    let end = format!("{prefix}{}", char::MAX);
    let limit = i64::try_from(MAX_EXPANSION + 1).unwrap_or(i64::MAX);
    let words = db
        .prepare_cached(
            "SELECT term FROM messages_fts_words WHERE term >= ?1 AND term < ?2 LIMIT ?3",
        )?
        .query_map(params![prefix, end, limit], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok((words.len() <= MAX_EXPANSION).then_some(words))
}
