-- Search: a full-text index (FTS5) of the messages' text. It holds no copy of the text
-- (content is `messages`), only its words; `secure-delete` takes a deleted or edited message's
-- words out of the index at once rather than at the next merge.
--
-- Messages are indexed by the store thread in large batches, when it has nothing else to do (or
-- when many wait), not one commit at a time: `search_progress.up_to` is the largest message id
-- indexed. Triggers keep what is indexed in step with deletions and edits.

CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2',
    -- Which messages have a word, nothing more: the pattern itself checks where (phrases and
    -- NEAR are not needed), and the index is smaller and cheaper to keep.
    detail = 'none',
    columnsize = 0
);

INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

CREATE TABLE search_progress (up_to INTEGER NOT NULL);
INSERT INTO search_progress (up_to) VALUES (0);

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.id <= (SELECT up_to FROM search_progress)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
WHEN old.id <= (SELECT up_to FROM search_progress)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
