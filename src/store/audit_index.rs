//! The audit trail's search indexes, built in bulk (migrations 0011 and 0012): appends leave
//! them alone, and [`index_entries`] (run about once a second by [`crate::audit::indexer`])
//! copies every entry up to the committed head into them. Searches read an index and scan the
//! entries after its point (`store::audit`), so they are complete whether or not it has run.

use super::Store;
use crate::error::Result;

/// Entries indexed by one run of [`index_entries`] at most: a run holds the writer, so a
/// backlog (after a pause or a burst) is worked off in bounded pieces.
pub const INDEX_BATCH: i64 = 20_000;

/// One index table's bulk copy of the entries in `($1, $2]`, in the index's own order (many
/// entries per leaf).
const COPIES: [&str; 4] = [
    "INSERT INTO audit_entity_index (entity_type, entity_id, seq) \
     SELECT entity_type, COALESCE(entity_id, ''), seq FROM audit_log \
     WHERE seq > $1 AND seq <= $2 ORDER BY entity_type, COALESCE(entity_id, ''), seq",
    "INSERT INTO audit_actor_index (actor_id, seq) SELECT actor_id, seq FROM audit_log \
     WHERE seq > $1 AND seq <= $2 AND actor_id IS NOT NULL ORDER BY actor_id, seq",
    "INSERT INTO audit_action_index (action, seq) SELECT action, seq FROM audit_log \
     WHERE seq > $1 AND seq <= $2 ORDER BY action, seq",
    "INSERT INTO audit_time_index (at, seq) SELECT at, seq FROM audit_log \
     WHERE seq > $1 AND seq <= $2 ORDER BY at, seq",
];

/// Takes the `audit_indexed` row (serialising runs from several nodes) and returns its point.
const TAKE_POINT: &str = "UPDATE audit_indexed SET seq = seq WHERE id = 1 RETURNING seq";
/// Moves the point past the entries just copied.
const MOVE_POINT: &str = "UPDATE audit_indexed SET seq = $1 WHERE id = 1";
/// The committed head (appenders hold the head row until they commit).
const HEAD: &str = "SELECT seq FROM audit_head WHERE id = 1";

/// Where one run copies up to, or `None` when nothing is new.
fn run_upto(from: i64, head: i64) -> Option<i64> {
    let upto = head.min(from.saturating_add(INDEX_BATCH));
    (upto > from).then_some(upto)
}

/// Copies the entries up to the committed head into the entity, actor, action and time
/// indexes, and moves `audit_indexed` past them, in one transaction; returns how many entries
/// it indexed. Appends leave the indexes alone (see the migrations): this bulk copy puts many
/// entries in each index leaf instead of costing leaves in every group commit.
///
/// On SQLite it runs on the calling thread (the audit sink's, [`crate::audit::sink`]) through
/// the same connection as the sink's group commits ([`super::inline::Inline::write`]): SQLite
/// drops a connection's page cache whenever another connection has written, so an indexer on a
/// connection of its own started cold every second, and the group commit after it too.
pub async fn index_entries(store: &Store) -> Result<u64> {
    let Some(inline) = store.inline() else {
        return index_entries_pooled(store).await;
    };
    let mut turn = store.write.acquire().await?;
    inline.write(&mut turn, |tx| {
        let from: i64 = tx.query_row(TAKE_POINT, [], |r| r.get(0))?;
        let head: i64 = tx.query_row(HEAD, [], |r| r.get(0))?;
        let Some(upto) = run_upto(from, head) else {
            return Ok(0);
        };
        for copy in COPIES {
            tx.prepare_cached(copy)?.execute([from, upto])?;
        }
        tx.execute(MOVE_POINT, [upto])?;
        Ok(u64::try_from(upto - from).unwrap_or(0))
    })
}

/// [`index_entries`] through sqlx (PostgreSQL).
async fn index_entries_pooled(store: &Store) -> Result<u64> {
    let mut tx = store.begin().await?;
    let (from,): (i64,) = sqlx::query_as(TAKE_POINT).fetch_one(&mut *tx).await?;
    let (head,): (i64,) = sqlx::query_as(HEAD).fetch_one(&mut *tx).await?;
    let Some(upto) = run_upto(from, head) else {
        tx.rollback().await?;
        return Ok(0);
    };
    for copy in COPIES {
        sqlx::query(copy).bind(from).bind(upto).execute(&mut *tx).await?;
    }
    sqlx::query(MOVE_POINT).bind(upto).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(u64::try_from(upto - from).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;
    use crate::store::audit::{self, Filter};

    const A: uuid::Uuid = uuid::Uuid::from_u128(0xa);
    const B: uuid::Uuid = uuid::Uuid::from_u128(0xb);

    fn event(actor: Option<uuid::Uuid>, action: &str, kind: &str, id: Option<&str>) -> Event {
        Event::new(actor, action, kind, id.map(str::to_string))
    }

    /// What a search finds: its total and the positions, newest first.
    async fn found(store: &Store, f: &Filter) -> (i64, Vec<i64>) {
        let mut conn = store.read().await.expect("reader");
        let total = audit::count(&mut conn, f).await.expect("count");
        let entries = audit::search(&mut conn, f, 100, 0).await.expect("search");
        (total, entries.into_iter().map(|e| e.seq).collect())
    }

    /// The four entries [`assert_found`] expects first: seq 1 to 4, at 1,000 ms.
    async fn append_first_four(store: &Store) {
        let events = [
            event(Some(A), "test.view", "Patient", Some("a")),
            event(Some(B), "test.view", "Patient", Some("b")),
            event(None, "test.verify", "audit_log", None),
            event(Some(A), "test.change", "Patient", Some("a")),
        ];
        audit::append_committed(store, &events, 1_000)
            .await
            .expect("append");
    }

    /// The fifth: A views Patient/a at 2,000 ms.
    async fn append_fifth(store: &Store) {
        let fifth = event(Some(A), "test.view", "Patient", Some("a"));
        audit::append_committed(store, &[fifth], 2_000)
            .await
            .expect("append");
    }

    /// A filter from `key=value` pairs (`A` and `B` name the two actors).
    fn filter(query: &str) -> Filter {
        let mut f = Filter::default();
        for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
            let text = Some(match value {
                "A" => A.to_string(),
                "B" => B.to_string(),
                other => other.to_string(),
            });
            let ms = value.parse().ok();
            match key {
                "entity_type" => f.entity_type = text,
                "entity_id" => f.entity_id = text,
                "actor" => f.actor_id = text,
                "action" => f.action = text,
                "from" => f.from_ms = ms,
                "to" => f.to_ms = ms,
                _ => panic!("no such key {key}"),
            }
        }
        f
    }

    /// Every indexed key alone and some together, with the answers expected for the first four
    /// entries and, with `fifth`, also the fifth (listed first when it matches too).
    async fn assert_found(store: &Store, fifth: bool, when: &str) {
        let cases: [(&str, &[i64], bool); 15] = [
            ("entity_type=Patient&entity_id=a", &[4, 1], true),
            ("entity_type=Patient", &[4, 2, 1], true),
            ("entity_type=Patient&entity_id=c", &[], false),
            ("entity_type=audit_log", &[3], false),
            ("entity_type=audit_log&entity_id=", &[3], false),
            ("entity_id=b", &[2], false),
            ("actor=A", &[4, 1], true),
            ("actor=B", &[2], false),
            ("actor=", &[], false),
            ("action=test.view", &[2, 1], true),
            ("action=test.view&actor=A", &[1], true),
            ("from=1500", &[], true),
            ("to=1500", &[4, 3, 2, 1], false),
            ("from=1000&to=1001", &[4, 3, 2, 1], false),
            ("from=1001&to=2001&action=test.view", &[], true),
        ];
        for (query, first_four, matches_fifth) in cases {
            let mut want = first_four.to_vec();
            if fifth && matches_fifth {
                want.insert(0, 5);
            }
            let got = found(store, &filter(query)).await;
            assert_eq!(got, (want.len() as i64, want), "{query} {when}");
        }
    }

    /// Searches by every indexed key give the same answers before the indexes have caught up,
    /// after they have, and when the answer is partly indexed; each run indexes every entry
    /// once, and the indexes only grow.
    #[tokio::test]
    async fn searches_are_complete_before_and_after_indexing() {
        let (_dir, store) = super::super::temp_sqlite("index.db").await;
        store.migrate().await.expect("migrate");
        append_first_four(&store).await;
        assert_found(&store, false, "before indexing").await;
        assert_eq!(index_entries(&store).await.expect("index"), 4);
        assert_eq!(index_entries(&store).await.expect("index again"), 0);
        assert_found(&store, false, "indexed").await;

        append_fifth(&store).await;
        assert_found(&store, true, "partly indexed").await;
        assert_eq!(index_entries(&store).await.expect("index"), 1);
        assert_found(&store, true, "indexed again").await;

        for table in [
            "audit_entity_index",
            "audit_actor_index",
            "audit_action_index",
            "audit_time_index",
        ] {
            let mut tx = store.begin().await.expect("begin");
            let deleted = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await;
            assert!(deleted.is_err(), "{table} is append-only");
        }
        store.close().await;
    }

    /// The migrations that moved the indexes out of audit_log took in the entries already on
    /// the trail (0011 the entity, 0012 the other keys of the entries 0011 had indexed) and left
    /// the newer ones to the indexer: upgrading from before 0011, and from between the two
    /// with entries 0011 never saw.
    #[tokio::test]
    async fn the_migrations_index_the_existing_trail() {
        for (cut, left_to_the_indexer) in [("0011", 0), ("0012", 4)] {
            let (dir, store) = super::super::temp_sqlite("upgrade.db").await;
            let earlier = dir.path().join("earlier");
            std::fs::create_dir(&earlier).expect("dir");
            for file in std::fs::read_dir("migrations/sqlite").expect("migrations") {
                let file = file.expect("entry");
                if file.file_name().to_string_lossy().as_ref() < cut {
                    std::fs::copy(file.path(), earlier.join(file.file_name())).expect("copy");
                }
            }
            sqlx::migrate::Migrator::new(earlier.as_path())
                .await
                .expect("earlier migrations")
                .run(&store.write)
                .await
                .expect("run them");
            append_first_four(&store).await;
            store.migrate().await.expect("the rest");
            assert_found(&store, false, &format!("upgraded from before {cut}")).await;
            let indexed = index_entries(&store).await.expect("index");
            assert_eq!(indexed, left_to_the_indexer, "upgraded from before {cut}");
            assert_found(&store, false, &format!("upgraded from before {cut}, indexed")).await;
            store.close().await;
        }
    }
}
