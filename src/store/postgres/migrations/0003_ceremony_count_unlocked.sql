-- The ceremony cap no longer keeps a counter row: every complete deleted its ceremony first, so
-- the trigger's decrement locked that one row for the whole transaction, its commit included,
-- and serialized every sign-in of every replica behind it (lock waits past statement_timeout
-- under load). The cap is now checked by counting the rows.
DROP TRIGGER ceremony_count_keep ON ceremonies;
DROP FUNCTION ceremony_count_keep();
DROP TABLE ceremony_count;
