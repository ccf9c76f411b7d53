-- The audit trail's index by entity (who touched Patient/x), maintained in bulk (SPEC §8, §10).
-- Kept in audit_log itself, the index cost one random B-tree leaf per appended entry. A
-- background task now copies the entity of every entry up to the committed head into this table
-- about once a second; audit_indexed records how far it got, and a search by entity also scans
-- the entries after that point, so nothing recorded is ever missing from a search. Several
-- nodes may run the task: each run takes the audit_indexed row first. docs/benchmarks.md
-- (2026-12-07).
-- An entry without an entity id is indexed under ''.
CREATE TABLE audit_entity_index (
    entity_type  TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, seq)
);

CREATE TABLE audit_indexed (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL
);

LOCK TABLE audit_head IN EXCLUSIVE MODE;
INSERT INTO audit_entity_index (entity_type, entity_id, seq)
SELECT entity_type, COALESCE(entity_id, ''), seq FROM audit_log;
INSERT INTO audit_indexed (id, seq) SELECT 1, seq FROM audit_head WHERE id = 1;

DROP INDEX audit_log_entity;

CREATE FUNCTION audit_entity_index_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_entity_index is append-only';
END;
$$;
CREATE TRIGGER audit_entity_index_no_change BEFORE UPDATE OR DELETE ON audit_entity_index
FOR EACH ROW EXECUTE FUNCTION audit_entity_index_append_only();
