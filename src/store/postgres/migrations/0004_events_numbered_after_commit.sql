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

-- Whoever gives event ids holds this lock until its transaction ends: the numberer, and
-- `store migrate` copying numbered events in.
CREATE FUNCTION hold_event_numbering() RETURNS void LANGUAGE sql AS
    $$ SELECT pg_advisory_xact_lock(8100682116316951917) $$;  -- "pkgw-num"

-- One numbering, in one statement's transaction (one round trip): under the lock, the oldest
-- committed rows without an id (at most `batch`) get the next ids in key order, and times raised
-- to a running maximum so `at` never goes backwards; then returns the ids and times of the rows
-- `wanted` that have one, whoever numbered them. The statement after the lock sees every numbering
-- committed before it: in READ COMMITTED a volatile function's statements each take a new
-- snapshot. With nothing to number it writes nothing, so its commit costs no WAL flush.
CREATE FUNCTION number_events(wanted bigint[], batch integer)
RETURNS TABLE (event_key bigint, event_id bigint, event_at bigint)
LANGUAGE plpgsql AS $$
DECLARE
    given_count bigint;
BEGIN
    PERFORM hold_event_numbering();
    WITH todo AS (
        SELECT e.key, e.at FROM events e WHERE e.id IS NULL ORDER BY e.key LIMIT batch
    ), numbered AS (
        SELECT t.key,
               c.last_id + row_number() OVER (ORDER BY t.key) AS id,
               GREATEST(c.last_at, max(t.at) OVER (ORDER BY t.key)) AS at
        FROM todo t CROSS JOIN event_clock c
    ), given AS (
        UPDATE events e SET id = n.id, at = n.at FROM numbered n
        WHERE e.key = n.key AND e.id IS NULL
        RETURNING e.key
    ), ticked AS (
        UPDATE event_clock SET last_id = (SELECT max(n.id) FROM numbered n),
                               last_at = (SELECT max(n.at) FROM numbered n)
        WHERE EXISTS (SELECT 1 FROM numbered)
    )
    SELECT count(*) INTO given_count FROM given;
    RETURN QUERY SELECT e.key, e.id, e.at FROM events e
                 WHERE e.key = ANY(wanted) AND e.id IS NOT NULL;
END $$;
