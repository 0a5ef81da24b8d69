-- Working with messages: edits (the latest text is in `body`; who edited it and when here),
-- expiring messages (deleted by the server at `expires_ms`) and reactions.

ALTER TABLE messages ADD COLUMN edited_ms INTEGER;   -- NULL: never edited
ALTER TABLE messages ADD COLUMN edited_by TEXT;
ALTER TABLE messages ADD COLUMN expires_ms INTEGER;  -- NULL: never expires

CREATE INDEX messages_expiring ON messages (expires_ms) WHERE expires_ms IS NOT NULL;

CREATE TABLE reactions (
    message     INTEGER NOT NULL,   -- messages.id
    emoji       TEXT NOT NULL,
    who         TEXT NOT NULL,      -- the case-folded nickname
    nick        TEXT NOT NULL,      -- the nickname as shown
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (message, emoji, who)
) WITHOUT ROWID;

-- A message that goes (deleted, expired, past the retention, its room deleted) takes its
-- reactions with it.
CREATE TRIGGER messages_take_their_reactions AFTER DELETE ON messages
BEGIN
    DELETE FROM reactions WHERE message = old.id;
END;
