-- Private history: who took part in each private message (its sender and recipients), so that
-- an account can page back through a conversation. `party` is the nickname in ASCII lower
-- case (SQLite's lower()), the same in every row written later (chat-server/src/store/private.rs).

CREATE TABLE parties (
    party       TEXT NOT NULL,
    message     INTEGER NOT NULL,   -- messages.id
    PRIMARY KEY (party, message)
) WITHOUT ROWID;

CREATE INDEX parties_by_message ON parties (message);

-- The private messages stored before this version: their recipients are one per line.
WITH RECURSIVE split(message, rest, nick) AS (
    SELECT id, recipients || char(10), sender FROM messages WHERE recipients IS NOT NULL
    UNION ALL
    SELECT message, substr(rest, instr(rest, char(10)) + 1), substr(rest, 1, instr(rest, char(10)) - 1)
    FROM split WHERE rest <> ''
)
INSERT OR IGNORE INTO parties (party, message)
SELECT lower(nick), message FROM split WHERE nick <> '';

CREATE TRIGGER messages_take_their_parties AFTER DELETE ON messages
BEGIN
    DELETE FROM parties WHERE message = old.id;
END;
