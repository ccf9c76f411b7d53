//! Keeps the audit trail's search indexes (entity, actor, action, time) up to date in the
//! background ([`crate::store::audit_index::index_entries`], run by the audit writer:
//! [`AuditSink::index`]). Searches never depend on it having run
//! (they also scan the entries after the indexed point); it only keeps that scan short and moves
//! the index work out of the group commits that every audited read waits for.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::sink::AuditSink;
use crate::store::audit_index;

/// How often the index catches up: about a second's entries per leaf, and at most a second of
/// entries for a search to scan.
pub const EVERY: Duration = Duration::from_secs(1);

/// Starts the task; it stops with `shutdown`. A run that fails is retried at the next tick
/// (searches stay complete meanwhile).
pub fn spawn(sink: AuditSink, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(EVERY) => {}
            }
            // A backlog (after a pause or a burst) is worked off in bounded runs, one after
            // the other, each giving the writer back in between.
            loop {
                match sink.index().await {
                    Ok(n) if n >= audit_index::INDEX_BATCH as u64 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "audit search indexes not updated; retrying");
                        break;
                    }
                }
            }
        }
    })
}
