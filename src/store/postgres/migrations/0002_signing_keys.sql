-- The identity signing keys every replica signs with, sealed (AES-256-GCM) with a key-encryption
-- key the database never sees. `version` grows by one per change; replicas compare it to reload.
CREATE TABLE signing_keys (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version bigint NOT NULL,
    sealed bytea NOT NULL
);
