-- Break-glass access (SPEC §8): emergency membership with a stated reason, flagged for review.
-- The reason may mention the patient, so it is sealed with the room's data key.
CREATE TABLE break_glass (
    id              TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL REFERENCES rooms(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    reason          BYTEA NOT NULL,
    reason_key_id   TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    reviewed_by     TEXT REFERENCES users(id),
    reviewed_at     BIGINT,
    review_outcome  TEXT CHECK (review_outcome IN ('justified', 'unjustified'))
);
CREATE INDEX break_glass_review ON break_glass(reviewed_at, created_at);
