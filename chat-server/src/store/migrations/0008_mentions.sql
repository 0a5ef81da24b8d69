-- Mentions (ClientFrame::Mentions): each account's latest login, so that at the next one the
-- server lists what mentioned it since. `login_id` is the id the next message would get at
-- that login: what mentions it since then has this id or a larger one. NULL: no login recorded
-- yet (an account from before this version).

ALTER TABLE accounts ADD COLUMN login_ms INTEGER;
ALTER TABLE accounts ADD COLUMN login_id INTEGER;
