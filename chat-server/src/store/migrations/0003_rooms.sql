-- Which rooms guests created: empty ones nobody's account is in expire first.

ALTER TABLE rooms ADD COLUMN by_guest INTEGER NOT NULL DEFAULT 0;
