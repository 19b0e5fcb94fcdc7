-- Migration 5's statement triggers kept the slots right but were the dearest part of a sign-in's
-- begin and of its complete: a PL/pgSQL call and two transition tables per statement, ~0.1 ms of
-- server CPU each. The statements that add or delete ceremonies now keep the slots themselves,
-- in the same statement (`store/postgres/ceremonies.rs`, the only place that writes the table).
DROP TRIGGER ceremony_slots_added ON ceremonies;
DROP TRIGGER ceremony_slots_removed ON ceremonies;
DROP FUNCTION ceremony_slots_added();
DROP FUNCTION ceremony_slots_removed();
