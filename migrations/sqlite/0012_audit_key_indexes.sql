-- The audit trail's other search keys (actor, action, time), maintained in bulk like the entity
-- index of 0011 (SPEC §8, §10). Kept in audit_log itself, each cost every group commit at least
-- one B-tree leaf, and the actor index one leaf per distinct user in the group: half of each
-- commit's WAL bytes and a quarter of its CPU once the entity index had moved out
-- (docs/benchmarks.md, 2026-12-07). The indexer copies every entry up to the committed head into
-- all four index tables in one transaction and moves audit_indexed past them; a search also
-- scans the entries after that point, so nothing recorded is ever missing from a search.
-- Entries without an actor (the system's own) are not indexed by actor: no actor matches them.
CREATE TABLE audit_actor_index (
    actor_id  TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (actor_id, seq)
) WITHOUT ROWID;

CREATE TABLE audit_action_index (
    action  TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (action, seq)
) WITHOUT ROWID;

CREATE TABLE audit_time_index (
    at   BIGINT NOT NULL,
    seq  BIGINT NOT NULL,
    PRIMARY KEY (at, seq)
) WITHOUT ROWID;

-- The entries the entity index already holds; the indexer takes the rest.
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
CREATE TRIGGER audit_actor_index_no_update BEFORE UPDATE ON audit_actor_index
BEGIN SELECT RAISE(ABORT, 'audit_actor_index is append-only'); END;
CREATE TRIGGER audit_actor_index_no_delete BEFORE DELETE ON audit_actor_index
BEGIN SELECT RAISE(ABORT, 'audit_actor_index is append-only'); END;
CREATE TRIGGER audit_action_index_no_update BEFORE UPDATE ON audit_action_index
BEGIN SELECT RAISE(ABORT, 'audit_action_index is append-only'); END;
CREATE TRIGGER audit_action_index_no_delete BEFORE DELETE ON audit_action_index
BEGIN SELECT RAISE(ABORT, 'audit_action_index is append-only'); END;
CREATE TRIGGER audit_time_index_no_update BEFORE UPDATE ON audit_time_index
BEGIN SELECT RAISE(ABORT, 'audit_time_index is append-only'); END;
CREATE TRIGGER audit_time_index_no_delete BEFORE DELETE ON audit_time_index
BEGIN SELECT RAISE(ABORT, 'audit_time_index is append-only'); END;
