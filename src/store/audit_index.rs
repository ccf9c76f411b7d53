//! The audit trail's index by entity, built in bulk (migration 0011): appends leave it alone,
//! and [`index_entities`] (run about once a second by [`crate::audit::indexer`]) copies every
//! entry up to the committed head into it. Searches by entity read the index and scan the
//! entries after its point (`store::audit`), so they are complete whether or not it has run.

use super::Store;
use crate::error::Result;

/// Entries indexed by one run of [`index_entities`] at most: a run holds the writer, so a
/// backlog (after a pause or a burst) is worked off in bounded pieces.
pub const INDEX_BATCH: i64 = 20_000;

/// Copies the entity of the entries up to the committed head into `audit_entity_index`, in
/// index order, and moves `audit_indexed` past them; returns how many it indexed. Appends leave
/// the index alone (see the migration): this bulk copy puts many entries in each index leaf
/// instead of costing one leaf per entry in every group commit. Taking the `audit_indexed` row
/// first serialises runs from several nodes; the head read after it only counts committed
/// entries (appenders hold the head row until they commit).
pub async fn index_entities(store: &Store) -> Result<u64> {
    let mut tx = store.begin().await?;
    let (from,): (i64,) = sqlx::query_as("UPDATE audit_indexed SET seq = seq WHERE id = 1 RETURNING seq")
        .fetch_one(&mut *tx)
        .await?;
    let (head, _) = super::audit::head(&mut tx).await?;
    let upto = head.min(from.saturating_add(INDEX_BATCH));
    if upto <= from {
        tx.rollback().await?;
        return Ok(0);
    }
    let indexed = sqlx::query(
        "INSERT INTO audit_entity_index (entity_type, entity_id, seq) \
         SELECT entity_type, COALESCE(entity_id, ''), seq FROM audit_log \
         WHERE seq > $1 AND seq <= $2 ORDER BY entity_type, COALESCE(entity_id, ''), seq",
    )
    .bind(from)
    .bind(upto)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE audit_indexed SET seq = $1 WHERE id = 1")
        .bind(upto)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(indexed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Event;
    use crate::store::audit::{self, Filter};

    fn about(kind: &str, id: Option<&str>) -> Event {
        Event::new(None, "test.view", kind, id.map(str::to_string))
    }

    /// What a search by entity finds: its total and the positions, newest first.
    async fn found(store: &Store, kind: Option<&str>, id: Option<&str>) -> (i64, Vec<i64>) {
        let f = Filter {
            entity_type: kind.map(str::to_string),
            entity_id: id.map(str::to_string),
            ..Filter::default()
        };
        let mut conn = store.read().await.expect("reader");
        let total = audit::count(&mut conn, &f).await.expect("count");
        let entries = audit::search(&mut conn, &f, 100, 0).await.expect("search");
        (total, entries.into_iter().map(|e| e.seq).collect())
    }

    /// The four entries [`assert_found`] expects first: seq 1 to 4.
    async fn append_first_four(store: &Store) {
        let events = [
            about("Patient", Some("a")),
            about("Patient", Some("b")),
            about("audit_log", None),
            about("Patient", Some("a")),
        ];
        audit::append_committed(store, &events, 1_000)
            .await
            .expect("append");
    }

    /// Every kind of search by entity, with the answers expected for the four entries the
    /// tests write first and, with `fifth`, one more about Patient/a.
    async fn assert_found(store: &Store, fifth: bool, when: &str) {
        let a = if fifth { vec![5, 4, 1] } else { vec![4, 1] };
        let patients = if fifth { vec![5, 4, 2, 1] } else { vec![4, 2, 1] };
        let cases: [(Option<&str>, Option<&str>, Vec<i64>); 6] = [
            (Some("Patient"), Some("a"), a),
            (Some("Patient"), None, patients),
            (Some("Patient"), Some("c"), vec![]),
            (Some("audit_log"), None, vec![3]),
            (Some("audit_log"), Some(""), vec![3]),
            (None, Some("b"), vec![2]),
        ];
        for (kind, id, want) in cases {
            let got = found(store, kind, id).await;
            assert_eq!(got, (want.len() as i64, want), "{kind:?} {id:?} {when}");
        }
    }

    /// Searches by entity give the same answers before the index has caught up, after it has,
    /// and when the answer is partly indexed; each run indexes every entry once, and the index
    /// only grows.
    #[tokio::test]
    async fn searches_by_entity_are_complete_before_and_after_indexing() {
        let (_dir, store) = super::super::temp_sqlite("index.db").await;
        store.migrate().await.expect("migrate");
        append_first_four(&store).await;
        assert_found(&store, false, "before indexing").await;
        assert_eq!(index_entities(&store).await.expect("index"), 4);
        assert_eq!(index_entities(&store).await.expect("index again"), 0);
        assert_found(&store, false, "indexed").await;

        audit::append_committed(&store, &[about("Patient", Some("a"))], 2_000)
            .await
            .expect("append");
        assert_found(&store, true, "partly indexed").await;
        assert_eq!(index_entities(&store).await.expect("index"), 1);
        assert_found(&store, true, "indexed again").await;

        let mut tx = store.begin().await.expect("begin");
        let deleted = sqlx::query("DELETE FROM audit_entity_index")
            .execute(&mut *tx)
            .await;
        assert!(deleted.is_err(), "the index is append-only");
        drop(tx);
        store.close().await;
    }

    /// The migration that introduced the index took in the entries already on the trail and
    /// started the indexer after them.
    #[tokio::test]
    async fn the_migration_indexes_the_existing_trail() {
        let (dir, store) = super::super::temp_sqlite("upgrade.db").await;
        let earlier = dir.path().join("earlier");
        std::fs::create_dir(&earlier).expect("dir");
        for file in std::fs::read_dir("migrations/sqlite").expect("migrations") {
            let file = file.expect("entry");
            if file.file_name().to_string_lossy().as_ref() < "0011" {
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
        assert_eq!(index_entities(&store).await.expect("index"), 0, "already indexed");
        assert_found(&store, false, "after the upgrade").await;
        store.close().await;
    }
}
