-- Envelope encryption (SPEC §8): one data key per scope (a room, or a stream such as the HL7
-- inbox), stored only wrapped by a key-encryption key named by kek_id. Destroying a key
-- (crypto-shredding) erases `wrapped` and sets destroyed_at.
CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY,
    scope         TEXT NOT NULL UNIQUE,
    kek_id        TEXT NOT NULL,
    wrapped       BLOB,
    created_at    BIGINT NOT NULL,
    rotated_at    BIGINT,
    destroyed_at  BIGINT
);
