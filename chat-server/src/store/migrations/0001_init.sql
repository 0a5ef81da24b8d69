-- Accounts, rooms, the rooms each account is in, and every message.

CREATE TABLE accounts (
    key         TEXT PRIMARY KEY,   -- the case-folded nickname
    nick        TEXT NOT NULL,      -- the nickname as registered
    hash        TEXT NOT NULL,      -- Argon2id, PHC string (parameters and salt included)
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE rooms (
    key         TEXT PRIMARY KEY,   -- the case-folded name
    name        TEXT NOT NULL,
    topic       TEXT NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE account_rooms (
    account     TEXT NOT NULL,      -- accounts.key
    room        TEXT NOT NULL,      -- rooms.key
    PRIMARY KEY (account, room)
) WITHOUT ROWID;

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,  -- the id clients see
    at_ms       INTEGER NOT NULL,     -- when the server accepted it
    sender      TEXT NOT NULL,
    room        TEXT,                 -- rooms.key; NULL for a private message
    recipients  TEXT,                 -- private message: nicknames, one per line
    action      INTEGER NOT NULL,     -- 1 for `/me`
    body        TEXT NOT NULL,
    attrs       TEXT                  -- JSON array of attributes; NULL when none
);

CREATE INDEX messages_by_room ON messages (room, id) WHERE room IS NOT NULL;
