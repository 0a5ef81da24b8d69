-- Private messages waiting for a registered user who was offline when they were sent.

CREATE TABLE offline (
    account     TEXT NOT NULL,      -- accounts.key of the recipient
    message     INTEGER NOT NULL,   -- messages.id
    PRIMARY KEY (account, message)
) WITHOUT ROWID;
