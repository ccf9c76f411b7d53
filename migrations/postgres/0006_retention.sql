-- Retention and legal hold (SPEC §8). A purged room keeps its row (and audit history) but its
-- data key is destroyed and its content deleted.
ALTER TABLE rooms ADD COLUMN purged_at BIGINT;

CREATE TABLE legal_holds (
    id           TEXT PRIMARY KEY,
    scope_type   TEXT NOT NULL CHECK (scope_type IN ('room', 'patient')),
    scope_id     TEXT NOT NULL,
    reference    TEXT NOT NULL,
    placed_by    TEXT NOT NULL REFERENCES users(id),
    placed_at    BIGINT NOT NULL,
    released_by  TEXT REFERENCES users(id),
    released_at  BIGINT
);
CREATE INDEX legal_holds_scope ON legal_holds(scope_type, scope_id);
