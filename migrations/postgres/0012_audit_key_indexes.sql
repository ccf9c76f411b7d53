-- The audit trail's other search keys (actor, action, time), maintained in bulk like the entity
-- index of 0011 (SPEC §8, §10). Kept in audit_log itself, each cost every group commit at least
-- one B-tree leaf, and the actor index one leaf per distinct user in the group. The indexer
-- copies every entry up to the committed head into all four index tables in one transaction and
-- moves audit_indexed past them; a search also scans the entries after that point, so nothing
-- recorded is ever missing from a search. docs/benchmarks.md (2026-12-07).
-- Entries without an actor (the system's own) are not indexed by actor: no actor matches them.
CREATE TABLE audit_actor_index (
    actor_id  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (actor_id, seq)
);

CREATE TABLE audit_action_index (
    action  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (action, seq)
);

CREATE TABLE audit_time_index (
    at   BIGINT NOT NULL,
    seq  BIGINT NOT NULL,
    PRIMARY KEY (at, seq)
);

-- The entries the entity index already holds (no indexer run meanwhile); the indexer takes the
-- rest.
LOCK TABLE audit_indexed IN EXCLUSIVE MODE;
INSERT INTO audit_actor_index (actor_id, seq)
SELECT actor_id, seq FROM audit_log
WHERE actor_id IS NOT NULL AND seq <= (SELECT seq FROM audit_indexed WHERE id = 1);
INSERT INTO audit_action_index (action, seq)
SELECT action, seq FROM audit_log WHERE seq <= (SELECT seq FROM audit_indexed WHERE id = 1);
INSERT INTO audit_time_index (at, seq)
SELECT at, seq FROM audit_log WHERE seq <= (SELECT seq FROM audit_indexed WHERE id = 1);

DROP INDEX audit_log_actor;
DROP INDEX audit_log_action;
DROP INDEX audit_log_at;

-- Like the trail, its indexes only grow.
CREATE FUNCTION audit_index_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_actor_index_no_change BEFORE UPDATE OR DELETE ON audit_actor_index
FOR EACH ROW EXECUTE FUNCTION audit_index_append_only();
CREATE TRIGGER audit_action_index_no_change BEFORE UPDATE OR DELETE ON audit_action_index
FOR EACH ROW EXECUTE FUNCTION audit_index_append_only();
CREATE TRIGGER audit_time_index_no_change BEFORE UPDATE OR DELETE ON audit_time_index
FOR EACH ROW EXECUTE FUNCTION audit_index_append_only();
