-- Foundation schema: identities, tokens, patients/encounters (minimal), rooms, messages.
-- Times are Unix milliseconds (BIGINT) and ids are UUID text so that the same SQL runs on
-- SQLite and PostgreSQL through sqlx's Any driver. Flags are BIGINT 0/1 for the same reason.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('person', 'service')),
    roles         TEXT NOT NULL DEFAULT '',
    npi           TEXT UNIQUE,
    idp_subject   TEXT UNIQUE,
    active        BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    token_hash    TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE patients (
    id            TEXT PRIMARY KEY,
    family_name   TEXT,
    given_name    TEXT,
    birth_date    TEXT,
    sex           TEXT,
    merged_into   TEXT REFERENCES patients(id),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE patient_identifiers (
    system        TEXT NOT NULL,
    value         TEXT NOT NULL,
    patient_id    TEXT NOT NULL REFERENCES patients(id),
    PRIMARY KEY (system, value)
);
CREATE INDEX patient_identifiers_patient ON patient_identifiers(patient_id);

CREATE TABLE encounters (
    id             TEXT PRIMARY KEY,
    patient_id     TEXT NOT NULL REFERENCES patients(id),
    visit_system   TEXT NOT NULL,
    visit_number   TEXT NOT NULL,
    class          TEXT NOT NULL CHECK (class IN ('inpatient', 'outpatient', 'emergency')),
    status         TEXT NOT NULL CHECK (status IN ('planned', 'in-progress', 'finished', 'cancelled')),
    location_unit  TEXT,
    location_room  TEXT,
    location_bed   TEXT,
    admitted_at    BIGINT,
    discharged_at  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (visit_system, visit_number)
);
CREATE INDEX encounters_patient ON encounters(patient_id);

CREATE TABLE rooms (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('patient_encounter', 'care_team', 'direct', 'role')),
    name          TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'read_only', 'archived')),
    encounter_id  TEXT UNIQUE REFERENCES encounters(id),
    role_key      TEXT UNIQUE,
    direct_key    TEXT UNIQUE,
    created_by    TEXT REFERENCES users(id),
    created_at    BIGINT NOT NULL,
    archived_at   BIGINT
);

CREATE TABLE room_members (
    room_id       TEXT NOT NULL REFERENCES rooms(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    reason        TEXT NOT NULL CHECK (reason IN ('attending', 'consulting', 'admitting', 'unit_team',
                                                  'on_call', 'invited', 'break_glass', 'creator')),
    added_by      TEXT,
    added_at      BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members(user_id);

-- One row: the global, commit-ordered position of the message stream. Every message takes the
-- next value inside its own transaction, so a reader resuming "after seq N" can never miss a
-- message that commits later with a smaller position.
CREATE TABLE stream_position (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    seq           BIGINT NOT NULL
);
INSERT INTO stream_position (id, seq) VALUES (1, 0);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    seq             BIGINT NOT NULL UNIQUE,
    room_id         TEXT NOT NULL REFERENCES rooms(id),
    sender_id       TEXT REFERENCES users(id),
    kind            TEXT NOT NULL CHECK (kind IN ('user', 'system')),
    priority        TEXT NOT NULL CHECK (priority IN ('routine', 'urgent', 'stat')),
    body            BLOB NOT NULL,
    body_key_id     TEXT,
    idempotency_key TEXT,
    request_hash    TEXT,
    created_at      BIGINT NOT NULL,
    edited_at       BIGINT,
    redacted_at     BIGINT,
    UNIQUE (sender_id, idempotency_key)
);
CREATE INDEX messages_room_seq ON messages(room_id, seq);

CREATE TABLE message_receipts (
    message_id    TEXT NOT NULL REFERENCES messages(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    delivered_at  BIGINT,
    read_at       BIGINT,
    PRIMARY KEY (message_id, user_id)
);

CREATE TABLE message_acks (
    message_id    TEXT NOT NULL REFERENCES messages(id),
    user_id       TEXT NOT NULL REFERENCES users(id),
    acked_at      BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
