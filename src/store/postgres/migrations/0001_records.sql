-- The gateway's records. Each table keeps what it is looked up, joined or constrained by as
-- real columns, and the whole serde record in `record` (jsonb): fields added to a record with
-- `#[serde(default)]` need no migration. Times are unix seconds (bigint), as in the records.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    username text NOT NULL UNIQUE,
    record jsonb NOT NULL
);

CREATE TABLE passkeys (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id bytea NOT NULL UNIQUE,
    created_at bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

CREATE TABLE ceremonies (
    id uuid PRIMARY KEY,
    expires_at bigint NOT NULL,
    record jsonb NOT NULL
);

-- How many ceremonies are stored, kept by a trigger, so the cap is checked without a count(*).
CREATE TABLE ceremony_count (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    n bigint NOT NULL
);
INSERT INTO ceremony_count VALUES (true, 0);

CREATE FUNCTION ceremony_count_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE ceremony_count SET n = n + 1;
    ELSE
        UPDATE ceremony_count SET n = n - 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ceremony_count_keep AFTER INSERT OR DELETE ON ceremonies
    FOR EACH ROW EXECUTE FUNCTION ceremony_count_keep();

CREATE TABLE enrollments (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX enrollments_by_user ON enrollments (user_id);

-- `last_seen` lives in its column only (written in batches, never backwards); the record's copy
-- is replaced by it on every read.
CREATE TABLE sessions (
    id_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    passkey_id uuid NOT NULL REFERENCES passkeys (id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    last_seen bigint NOT NULL,
    record jsonb NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_passkey ON sessions (passkey_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_last_seen ON sessions (last_seen);

CREATE TABLE events (
    id bigint PRIMARY KEY,
    at bigint NOT NULL,
    record jsonb NOT NULL
);

-- The last event id and time handed out. Appending an event locks this row until commit, so
-- ids increase by one in commit order and `at` never goes backwards, across replicas.
CREATE TABLE event_clock (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_id bigint NOT NULL,
    last_at bigint NOT NULL
);
INSERT INTO event_clock VALUES (true, 0, 0);

-- "{period:016x}/{kind}/{client}/{user}" -> the event that tallies those failures.
CREATE TABLE event_tallies (
    key text PRIMARY KEY,
    event_id bigint NOT NULL
);
