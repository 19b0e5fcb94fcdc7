-- Appends no longer lock `event_clock`: each held that row through its transaction's commit (its
-- WAL flush included), which queued every audited write of every replica behind one another
-- (sign-ins flat at ~200/s whatever the concurrency). A row now gets a private `key` from a
-- sequence when written, and its public `id` (gapless, in the order rows become visible) after
-- its commit, from the numberer in `store/postgres/events.rs`: the only holder of `event_clock`,
-- one at a time under an advisory lock, numbering every committed row not numbered yet.
CREATE SEQUENCE event_keys;
ALTER TABLE events ADD COLUMN key bigint;
UPDATE events SET key = id;
SELECT setval('event_keys', (SELECT GREATEST(COALESCE(max(id), 0), 1) FROM events));
ALTER TABLE events ALTER COLUMN key SET NOT NULL;
ALTER TABLE events ALTER COLUMN key SET DEFAULT nextval('event_keys');
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (key);
ALTER TABLE events ALTER COLUMN id DROP NOT NULL;
CREATE UNIQUE INDEX events_by_id ON events (id);
CREATE INDEX events_to_number ON events (key) WHERE id IS NULL;
-- A tally names its row by key: the row may not be numbered yet.
ALTER TABLE event_tallies RENAME COLUMN event_id TO event_key;
