-- On-call (SPEC §7): roster shifts per service and tier, and the escalation timers of urgent
-- messages sent to a role. Timers are rows, so they survive restarts; a node claims a due row
-- (PostgreSQL: FOR UPDATE SKIP LOCKED) so each step fires once across nodes.
CREATE TABLE oncall_shifts (
    id          TEXT PRIMARY KEY,
    service     TEXT NOT NULL,
    tier        BIGINT NOT NULL CHECK (tier >= 1),
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    upload_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX oncall_shifts_service ON oncall_shifts(service, starts_at);

CREATE TABLE oncall_escalations (
    id           TEXT PRIMARY KEY,
    message_id   TEXT NOT NULL UNIQUE REFERENCES messages(id),
    room_id      TEXT NOT NULL REFERENCES rooms(id),
    service      TEXT NOT NULL,
    tier         BIGINT NOT NULL,
    notified_id  TEXT REFERENCES users(id),
    due_at       BIGINT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('waiting', 'acknowledged', 'exhausted')),
    steps        BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX oncall_escalations_due ON oncall_escalations(state, due_at);

-- Where on-call notifications are sent (no other use).
ALTER TABLE users ADD COLUMN email TEXT;
