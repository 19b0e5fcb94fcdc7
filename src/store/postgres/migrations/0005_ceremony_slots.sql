-- Counting the ceremonies row by row on every begin (migration 3) visited every dead row too:
-- each sign-in inserts one ceremony and deletes it, so between two autovacuums the table held
-- thousands of dead rows for a handful of live ones, and the count cost milliseconds of server
-- CPU per begin under load (and more the harder a flood pushed). The count now lives in 64 slot
-- rows kept by statement triggers: an insert or delete adds to one slot picked at random, so two
-- begins rarely wait on one row (none waits on a single one, as with migration 1's counter),
-- and the cap sums 64 rows. A slot may go below zero; only the sum means anything.
-- Lock order: whatever deletes a ceremony does it before locking a user or passkey row.
CREATE TABLE ceremony_slots (
    slot smallint PRIMARY KEY,
    live bigint NOT NULL
);
INSERT INTO ceremony_slots SELECT s, 0 FROM generate_series(0, 63) AS s;
UPDATE ceremony_slots SET live = (SELECT count(*) FROM ceremonies) WHERE slot = 0;

CREATE FUNCTION ceremony_slots_added() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- Drawn once: in the WHERE clause random() would be drawn again for every row.
    pick smallint := floor(random() * 64)::smallint;
BEGIN
    UPDATE ceremony_slots SET live = live + (SELECT count(*) FROM added) WHERE slot = pick;
    RETURN NULL;
END
$$;

CREATE FUNCTION ceremony_slots_removed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- Drawn once: in the WHERE clause random() would be drawn again for every row.
    pick smallint := floor(random() * 64)::smallint;
BEGIN
    UPDATE ceremony_slots SET live = live - (SELECT count(*) FROM removed) WHERE slot = pick;
    RETURN NULL;
END
$$;

CREATE TRIGGER ceremony_slots_added AFTER INSERT ON ceremonies
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION ceremony_slots_added();
CREATE TRIGGER ceremony_slots_removed AFTER DELETE ON ceremonies
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION ceremony_slots_removed();
