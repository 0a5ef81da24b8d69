-- Search: the words of the full-text index, so that a pattern's last word, looked up as the
-- beginning of a word, can be looked up as the few indexed words that begin so
-- (chat-server/src/store/search.rs says why). A view of the index; it stores nothing.

CREATE VIRTUAL TABLE messages_fts_words USING fts5vocab(messages_fts, 'row');
