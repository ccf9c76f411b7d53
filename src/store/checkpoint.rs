//! SQLite WAL checkpoints, kept off the commit path.
//!
//! Left to its defaults, the connection that commits also copies the WAL back into the database
//! file (a checkpoint, with two fsyncs) whenever the WAL has grown past 1,000 pages, and that
//! commit returns only afterwards. Every few hundred commits one of them therefore takes
//! milliseconds longer, and with it everything waiting on it: a group of audited reads, a batch
//! of HL7 ACKs. Here a background task checkpoints from a reader connection instead, on its own
//! thread, so commits only append to the WAL. The writer still checkpoints by itself if the WAL
//! ever outgrows 25,000 pages, about 100 MiB ([`PRAGMAS`]): a stalled task must not let the file
//! grow without bound.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How often the task checkpoints. At the FHIR read benchmark's write rate (audit entries only)
/// the WAL gains a few thousand pages a second, so it stays at tens of megabytes; an up-to-date
/// WAL makes the check a no-op when idle. Checkpointing every 100 ms instead (smaller copies,
/// less time for a page to be rewritten first) measured a worse p99 for the benchmark's reads
/// (docs/benchmarks.md).
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// The pragmas every SQLite connection gets for this scheme: the committing connection
/// checkpoints by itself only past 25,000 pages (the safety net, not the normal path), and the
/// WAL file is cut back to 64 MiB when it restarts after a peak.
pub(crate) const PRAGMAS: [&str; 2] = [
    "PRAGMA wal_autocheckpoint = 25000",
    "PRAGMA journal_size_limit = 67108864",
];

/// Starts the checkpoint task on `read`; it stops when the returned guard (held by every clone
/// of the store) is dropped or the pool is closed.
pub(crate) fn spawn(read: AnyPool) -> Arc<DropGuard> {
    let stop = CancellationToken::new();
    let guard = Arc::new(stop.clone().drop_guard());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if read.is_closed() {
                return;
            }
            // PASSIVE: copies what no reader still needs, never waits for or blocks anyone.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&read).await {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying in a second");
            }
        }
    });
    guard
}

#[cfg(test)]
mod tests {
    use super::super::Store;

    /// Data written reaches the database file within a few checkpoint periods although no commit
    /// came near the writer's own limit: the background task checkpointed it.
    #[tokio::test]
    async fn commits_are_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ckpt.db");
        let store = Store::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .expect("open SQLite");
        let mut tx = store.begin().await.expect("begin");
        sqlx::query("CREATE TABLE filler (body TEXT NOT NULL)")
            .execute(&mut *tx)
            .await
            .expect("create");
        tx.commit().await.expect("commit");
        let before = std::fs::metadata(&path).expect("db file").len();
        // About 2 MiB in 64 commits: 500 pages, far below the writer's own limit.
        for _ in 0..64 {
            let mut tx = store.begin().await.expect("begin");
            for _ in 0..8 {
                sqlx::query("INSERT INTO filler (body) VALUES ($1)")
                    .bind("x".repeat(4000))
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
            }
            tx.commit().await.expect("commit");
        }
        let deadline = std::time::Instant::now() + super::EVERY * 5;
        let mut after = before;
        while std::time::Instant::now() < deadline {
            after = std::fs::metadata(&path).expect("db file").len();
            if after >= before + 2_000_000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(
            after >= before + 2_000_000,
            "the database file grew from {before} to only {after} bytes: no checkpoint ran"
        );
        store.close().await;
    }
}
