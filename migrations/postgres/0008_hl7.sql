-- HL7 v2 ADT ingest (SPEC §3): the durable, encrypted inbox of every accepted message with its
-- outcome and ACK (the duplicate key is (MSH-3, MSH-4, MSH-10)), event times that keep late
-- events from overwriting newer state, the location before the last transfer (for A12), the
-- practitioners named by the feed, scheduled read-only/archive times of discharged encounters'
-- rooms, and reversible merge records.
CREATE TABLE hl7_inbox (
    id                TEXT PRIMARY KEY,
    sending_app       TEXT NOT NULL,
    sending_facility  TEXT NOT NULL,
    control_id        TEXT NOT NULL,
    message_type      TEXT NOT NULL,
    event_at          BIGINT,
    received_at       BIGINT NOT NULL,
    source            TEXT,
    body              BYTEA NOT NULL,
    body_key_id       TEXT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN ('applied', 'ignored', 'stale', 'error')),
    ack_code          TEXT NOT NULL,
    error_code        TEXT,
    error_location    TEXT,
    error_text        TEXT,
    warnings          TEXT,
    patient_id        TEXT,
    encounter_id      TEXT,
    attempts          BIGINT NOT NULL DEFAULT 1,
    processed_at      BIGINT NOT NULL,
    ack               TEXT NOT NULL,
    UNIQUE (sending_app, sending_facility, control_id)
);
CREATE INDEX hl7_inbox_outcome ON hl7_inbox(outcome, received_at);

ALTER TABLE patients ADD COLUMN demographics_at BIGINT;
ALTER TABLE encounters ADD COLUMN last_event_at BIGINT;
ALTER TABLE encounters ADD COLUMN prior_unit TEXT;
ALTER TABLE encounters ADD COLUMN prior_room TEXT;
ALTER TABLE encounters ADD COLUMN prior_bed TEXT;
ALTER TABLE encounters ADD COLUMN practitioners TEXT NOT NULL DEFAULT '{}';
ALTER TABLE rooms ADD COLUMN read_only_at BIGINT;
ALTER TABLE rooms ADD COLUMN archive_at BIGINT;
CREATE INDEX rooms_read_only_at ON rooms(read_only_at);
CREATE INDEX rooms_archive_at ON rooms(archive_at);

CREATE TABLE patient_merges (
    id            TEXT PRIMARY KEY,
    survivor_id   TEXT NOT NULL REFERENCES patients(id),
    prior_id      TEXT NOT NULL REFERENCES patients(id),
    identifiers   TEXT NOT NULL,
    encounters    TEXT NOT NULL,
    inbox_id      TEXT,
    merged_at     BIGINT NOT NULL,
    undone_at     BIGINT
);
CREATE INDEX patient_merges_prior ON patient_merges(prior_id);
