//! The audit trail's storage: chained appends under the head-row lock, search, and ordered scans
//! for verification and export.

use sqlx::{AnyConnection, FromRow};

use super::Store;
use super::criteria::{Arg, Criteria, Page};
use crate::audit::{Entry, Event, next_entry};
use crate::error::{Error, Result};

#[derive(FromRow)]
struct Row {
    seq: i64,
    at: i64,
    actor_id: Option<String>,
    action: String,
    entity_type: String,
    entity_id: Option<String>,
    outcome: String,
    source: Option<String>,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl From<Row> for Entry {
    fn from(r: Row) -> Self {
        Entry {
            seq: r.seq,
            at: r.at,
            actor_id: r.actor_id,
            action: r.action,
            entity_type: r.entity_type,
            entity_id: r.entity_id,
            outcome: r.outcome,
            source: r.source,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

macro_rules! columns {
    () => {
        "seq, at, actor_id, action, entity_type, entity_id, outcome, source, detail, prev_hash, hash"
    };
}

/// Entries written by one INSERT (11 parameters each; well under both engines' limits).
const ROWS_PER_INSERT: usize = 64;

/// Reserves positions for `n` entries and returns the new head position and the hash of the
/// entry before the first of them.
const TAKE_HEAD: &str = "UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash";

/// Appends events to the chain inside the caller's transaction. Taking the head row first
/// serialises appenders, so positions are gap-free and each entry links to the one before it.
pub async fn append(conn: &mut AnyConnection, events: &[Event], at_ms: i64) -> Result<Vec<Entry>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = batch_len(events)?;
    let (new_seq, prev_hash): (i64, String) = sqlx::query_as(TAKE_HEAD).bind(n).fetch_one(&mut *conn).await?;
    let out = chain(events, new_seq - n, prev_hash, at_ms);
    insert(conn, &out).await?;
    Ok(out)
}

/// Appends events in a transaction of their own and commits it: the audit sink's group commit.
/// On SQLite it runs on the calling thread (the sink's own) through [`super::inline`]'s writing
/// connection while holding the sqlx writer: a group commit through sqlx cost two hand-offs to
/// the connection's worker thread and back, and every audited read waits for its group
/// (docs/benchmarks.md, 2026-12-07 night).
pub async fn append_committed(store: &Store, events: &[Event], at_ms: i64) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let Some(inline) = store.inline() else {
        let mut tx = store.begin().await?;
        append(&mut tx, events, at_ms).await?;
        tx.commit().await?;
        return Ok(());
    };
    let n = batch_len(events)?;
    let mut turn = store.write.acquire().await?;
    inline.write(&mut turn, |tx| {
        let (new_seq, prev_hash): (i64, String) =
            tx.query_row(TAKE_HEAD, [n], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let out = chain(events, new_seq - n, prev_hash, at_ms);
        let mut insert = tx.prepare_cached(concat!(
            "INSERT INTO audit_log (",
            columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?;
        for e in &out {
            insert.execute(rusqlite::params![
                e.seq,
                e.at,
                e.actor_id,
                e.action,
                e.entity_type,
                e.entity_id,
                e.outcome,
                e.source,
                e.detail,
                e.prev_hash,
                e.hash
            ])?;
        }
        if let Some(last) = out.last() {
            tx.execute("UPDATE audit_head SET hash = ?1 WHERE id = 1", [&last.hash])?;
        }
        Ok(())
    })
}

fn batch_len(events: &[Event]) -> Result<i64> {
    i64::try_from(events.len()).map_err(|_| Error::Internal("audit batch too large".into()))
}

/// The entries for `events`, linked after position `prev_seq` whose hash is `prev_hash`.
fn chain(events: &[Event], mut prev_seq: i64, mut prev_hash: String, at_ms: i64) -> Vec<Entry> {
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        let e = next_entry(prev_seq, &prev_hash, ev, at_ms);
        prev_seq = e.seq;
        prev_hash.clone_from(&e.hash);
        out.push(e);
    }
    out
}

/// Writes `entries` (already chained) and moves the head's hash to the last one's.
async fn insert(conn: &mut AnyConnection, entries: &[Entry]) -> Result<()> {
    let Some(last_hash) = entries.last().map(|e| e.hash.as_str()) else {
        return Ok(());
    };
    // Many rows per statement: a group commit of hundreds of entries costs a few round trips.
    // The last INSERT also moves the head's hash, in the same round trip: on PostgreSQL as a
    // data-modifying `WITH`, on SQLite as a second statement of the same query (its driver runs
    // every statement of a query in one call, binding one argument list in order).
    let postgres = super::on_postgres(conn);
    let chunks: Vec<&[Entry]> = entries.chunks(ROWS_PER_INSERT).collect();
    for (c, chunk) in chunks.iter().enumerate() {
        let mut sql = String::from(concat!("INSERT INTO audit_log (", columns!(), ") VALUES "));
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(" } else { ", (" });
            sql.push_str(&placeholders(postgres, i * 11, 11));
            sql.push(')');
        }
        let last = c + 1 == chunks.len();
        if last {
            let head = format!(
                "UPDATE audit_head SET hash = {} WHERE id = 1",
                placeholders(postgres, chunk.len() * 11, 1)
            );
            sql = if postgres {
                format!("WITH appended AS ({sql}) {head}")
            } else {
                format!("{sql}; {head}")
            };
        }
        // Only numbered placeholders are interpolated; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in *chunk {
            q = q
                .bind(e.seq)
                .bind(e.at)
                .bind(&e.actor_id)
                .bind(&e.action)
                .bind(&e.entity_type)
                .bind(&e.entity_id)
                .bind(&e.outcome)
                .bind(&e.source)
                .bind(&e.detail)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        if last {
            q = q.bind(last_hash);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `count` placeholders for the arguments after the first `before`: numbered (`$n`) for
/// PostgreSQL, anonymous (`?`, bound in order) for SQLite. SQLite's driver asks the statement for
/// each numbered parameter's name, a search through all of them: quadratic in a multi-row INSERT
/// (704 parameters for 64 entries), 4 % of the HL7 benchmark's CPU in `perf record`.
fn placeholders(postgres: bool, before: usize, count: usize) -> String {
    let one = |k: usize| {
        if postgres {
            format!("${}", before + k)
        } else {
            "?".to_string()
        }
    };
    (1..=count).map(one).collect::<Vec<_>>().join(", ")
}

/// Entries in sequence order after `after_seq` (for verification and export).
pub async fn scan(conn: &mut AnyConnection, after_seq: i64, limit: u32) -> Result<Vec<Entry>> {
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Entry::from).collect())
}

/// The newest position and hash recorded in the head row.
pub async fn head(conn: &mut AnyConnection) -> Result<(i64, String)> {
    Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?)
}

/// Search criteria for auditors; empty fields match everything.
#[derive(Debug, Default)]
pub struct Filter {
    /// Acting user.
    pub actor_id: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Entity kind.
    pub entity_type: Option<String>,
    /// Entity id.
    pub entity_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// From this time (Unix ms, inclusive).
    pub from_ms: Option<i64>,
    /// Until this time (Unix ms, exclusive).
    pub to_ms: Option<i64>,
    /// Only entries before this position (paging, newest first).
    pub before_seq: Option<i64>,
    /// Only the entry at this position.
    pub seq: Option<i64>,
}

/// A condition on the entries matching `$cond`: those the bulk index `$table` already holds,
/// and the entries after the point it has reached (at most a few seconds' worth), scanned with
/// `$scan` (the same condition as the index holds it, when the two spellings differ).
macro_rules! indexed {
    ($table:literal, $cond:literal) => {
        indexed!($table, $cond, $cond)
    };
    ($table:literal, $cond:literal, $scan:literal) => {
        concat!(
            "seq IN (SELECT seq FROM ",
            $table,
            " WHERE ",
            $cond,
            " UNION ALL SELECT seq FROM audit_log \
             WHERE seq > (SELECT seq FROM audit_indexed WHERE id = 1) AND ",
            $scan,
            ")"
        )
    };
}

/// Entries about one entity (an entry without an entity id is indexed under '').
const BY_ENTITY: &str = indexed!(
    "audit_entity_index",
    "entity_type = ?1 AND entity_id = ?2",
    "entity_type = ?1 AND COALESCE(entity_id, '') = ?2"
);
/// Entries about any entity of one kind.
const BY_ENTITY_TYPE: &str = indexed!("audit_entity_index", "entity_type = ?1");
/// Entries by one actor.
const BY_ACTOR: &str = indexed!("audit_actor_index", "actor_id = ?");
/// Entries of one action.
const BY_ACTION: &str = indexed!("audit_action_index", "action = ?");
/// Entries recorded in `[from, to)`, and the open-ended ranges.
const BETWEEN: &str = indexed!("audit_time_index", "at >= ?1 AND at < ?2");
const SINCE: &str = indexed!("audit_time_index", "at >= ?");
const UNTIL: &str = indexed!("audit_time_index", "at < ?");

/// Only the criteria given, so each can use its index (`audit_entity_index`,
/// `audit_actor_index`, `audit_action_index`, `audit_time_index`) instead of a walk over the
/// whole trail.
fn criteria(f: &Filter) -> Criteria<'_> {
    let (kind, id) = (Arg::text(&f.entity_type), Arg::text(&f.entity_id));
    let c = Criteria::new(" FROM audit_log")
        .when(BY_ACTOR, Arg::text(&f.actor_id))
        .when(BY_ACTION, Arg::text(&f.action));
    let c = match (&f.entity_type, &f.entity_id) {
        (Some(_), Some(_)) => c.when_all(BY_ENTITY, &[kind, id]),
        (Some(_), None) => c.when_all(BY_ENTITY_TYPE, &[kind]),
        (None, _) => c.when("entity_id = ?", id),
    };
    let c = match (f.from_ms, f.to_ms) {
        (Some(_), Some(_)) => c.when_all(BETWEEN, &[Arg::Int(f.from_ms), Arg::Int(f.to_ms)]),
        _ => c.when(SINCE, Arg::Int(f.from_ms)).when(UNTIL, Arg::Int(f.to_ms)),
    };
    c.when("outcome = ?", Arg::text(&f.outcome))
        .when("seq < ?", Arg::Int(f.before_seq))
        .when("seq = ?", Arg::Int(f.seq))
}

/// How many entries match (FHIR `Bundle.total`).
pub async fn count(conn: &mut AnyConnection, f: &Filter) -> Result<i64> {
    criteria(f).count(&mut *conn).await
}

/// Matching entries, newest first, skipping `offset` of them.
pub async fn search(conn: &mut AnyConnection, f: &Filter, limit: u32, offset: u32) -> Result<Vec<Entry>> {
    let page = Page { offset, count: limit };
    let select = concat!("SELECT ", columns!());
    let rows: Vec<Row> = criteria(f)
        .page(&mut *conn, select, "ORDER BY seq DESC", page)
        .await?;
    Ok(rows.into_iter().map(Entry::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> Event {
        Event::new(None, action, "test", None)
    }

    /// The SQLite group commit (on the inline writing connection, durable and with foreign keys
    /// on like sqlx's) links its entries to the head; one that fails leaves no entry, no moved
    /// head and no open transaction on either writing connection.
    #[tokio::test]
    async fn sqlite_group_commits_chain_and_failures_roll_back() {
        let (_dir, store) = super::super::temp_sqlite("audit.db").await;
        store.migrate().await.expect("migrate");
        append_committed(&store, &[event("a.one"), event("a.two")], 1_000)
            .await
            .expect("group commit");
        append_committed(&store, &[event("a.three")], 2_000)
            .await
            .expect("second group commit");
        let report = crate::audit::chain::verify(&store).await.expect("verify");
        assert!(
            report.intact && report.verified == 3 && report.head_seq == 3,
            "{report:?}"
        );

        // A row already at the next position makes the next group's INSERT fail.
        let mut tx = store.begin().await.expect("begin");
        sqlx::query(concat!(
            "INSERT INTO audit_log (",
            columns!(),
            ") VALUES (4, 0, NULL, 'x', 'x', NULL, 'success', NULL, '{}', 'p', 'h')"
        ))
        .execute(&mut *tx)
        .await
        .expect("blocking row");
        tx.commit().await.expect("commit");
        let failed = append_committed(&store, &[event("a.four")], 3_000).await;
        assert!(failed.is_err(), "the conflicting group must fail");
        let (seq, hash) = head(&mut store.read().await.expect("reader"))
            .await
            .expect("head");
        let third = scan(&mut store.read().await.expect("reader"), 2, 1)
            .await
            .expect("scan");
        assert_eq!((seq, hash), (3, third[0].hash.clone()), "the head did not move");
        let mut tx = store
            .begin()
            .await
            .expect("the writer is not left inside a transaction");
        sqlx::query("SELECT 1").execute(&mut *tx).await.expect("usable");
        tx.commit().await.expect("commit");
        let mut turn = store.write.acquire().await.expect("the writer's turn");
        let inline = store.inline().expect("SQLite writes inline");
        let (rows, synchronous, foreign_keys): (i64, i64, i64) = inline
            .write(&mut turn, |tx| {
                let one = |sql: &str| tx.query_row(sql, [], |r| r.get::<_, i64>(0));
                Ok((
                    one("SELECT COUNT(*) FROM audit_log")?,
                    one("PRAGMA synchronous")?,
                    one("PRAGMA foreign_keys")?,
                ))
            })
            .expect("the inline writer is not left inside a transaction");
        assert_eq!(
            rows, 4,
            "three entries and the blocking row, nothing of the failed group"
        );
        assert_eq!((synchronous, foreign_keys), (2, 1), "FULL, and enforced");
        drop(turn);
        store.close().await;
    }
}
