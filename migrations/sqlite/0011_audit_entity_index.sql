-- The audit trail's index by entity (who touched Patient/x), maintained in bulk (SPEC §8, §10).
-- Kept in audit_log itself, the index cost one random B-tree leaf per appended entry: with a
-- durable group commit per handful of audited reads, about 60 % of every commit's WAL
-- bytes. A background task now copies the entity of every entry up to the committed head into
-- this table about once a second, many entries per leaf; audit_indexed records how far it got,
-- and a search by entity also scans the entries after that point (at most a few seconds' worth),
-- so nothing recorded is ever missing from a search. docs/benchmarks.md (2026-12-07).
-- An entry without an entity id is indexed under ''.
CREATE TABLE audit_entity_index (
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, seq)
) WITHOUT ROWID;

CREATE TABLE audit_indexed (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL
);

INSERT INTO audit_entity_index (entity_type, entity_id, seq)
SELECT entity_type, COALESCE(entity_id, ''), seq FROM audit_log;
INSERT INTO audit_indexed (id, seq) SELECT 1, seq FROM audit_head WHERE id = 1;

DROP INDEX audit_log_entity;

-- Like the trail, its index only grows.
CREATE TRIGGER audit_entity_index_no_update BEFORE UPDATE ON audit_entity_index
BEGIN SELECT RAISE(ABORT, 'audit_entity_index is append-only'); END;
CREATE TRIGGER audit_entity_index_no_delete BEFORE DELETE ON audit_entity_index
BEGIN SELECT RAISE(ABORT, 'audit_entity_index is append-only'); END;
