-- Moderation: server operators, room operators, locked topics and bans.

ALTER TABLE accounts ADD COLUMN operator INTEGER NOT NULL DEFAULT 0;

ALTER TABLE rooms ADD COLUMN topic_locked INTEGER NOT NULL DEFAULT 0;

CREATE TABLE room_ops (
    room        TEXT NOT NULL,      -- rooms.key
    account     TEXT NOT NULL,      -- accounts.key
    PRIMARY KEY (room, account)
) WITHOUT ROWID;

CREATE TABLE bans (
    target      TEXT PRIMARY KEY,   -- 'address 203.0.113.7', 'address 2001:db8::/64', 'account bob'
    by_nick     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    until_ms    INTEGER             -- NULL: until lifted
) WITHOUT ROWID;

-- What `chat-server admin` changed, for a running server to apply to what it keeps in memory.
CREATE TABLE admin_events (
    id          INTEGER PRIMARY KEY,
    action      TEXT NOT NULL,      -- 'delete_account', 'delete_room', 'unban', 'op', 'deop'
    target      TEXT NOT NULL,      -- an account's or a room's key, or a ban's target
    at_ms       INTEGER NOT NULL
);
