//! Group commit for audit entries that have no transaction of their own (reads, refused access,
//! failed logins). Each caller waits until its entry is durably committed, so a response is never
//! sent for an access that was not recorded; many callers share one transaction and one fsync.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Event;
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::{Store, audit, audit_index};

/// What the writer is asked to do.
enum Request {
    /// Commit an event (with others waiting) and answer when it is durable.
    Record(Event, oneshot::Sender<Result<(), String>>),
    /// Bring the search indexes up to date ([`audit_index::index_entries`]) and answer with
    /// how many entries it indexed.
    Index(oneshot::Sender<Result<u64, String>>),
}

/// Handle for recording audit events outside a change transaction.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Request>,
}

const MAX_BATCH: usize = 512;

impl AuditSink {
    /// Starts the writer and returns a task that ends with it; it stops when every handle is
    /// dropped. On SQLite the writer has a thread of its own, driven by a single-threaded
    /// runtime, and commits each group there, blocking it for the commit's fdatasync
    /// ([`audit::append_committed`]): through sqlx every group commit cost two hand-offs to the
    /// connection's worker thread and back, and every audited read waits for its group. The
    /// search indexes are brought up to date on the same thread and connection, between groups
    /// ([`AuditSink::index`]). PostgreSQL connections belong to the runtime that opened them, so
    /// there the writer stays a task.
    pub fn spawn(
        store: Store,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Request>(8192);
        if store.backend() == crate::store::Backend::Postgres {
            return Ok((Self { tx }, tokio::spawn(write_groups(store, clock, rx))));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, finished) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("wardline-audit".into())
            .spawn(move || {
                runtime.block_on(async move {
                    write_groups(store, clock, rx).await;
                    // The pool takes its connection back on a task of this runtime.
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                });
                let _ = done.send(());
            })?;
        let handle = tokio::spawn(async move {
            let _ = finished.await;
        });
        Ok((Self { tx }, handle))
    }

    /// Records an event and waits until it is committed. Fails closed: when the trail cannot be
    /// written, the caller must not proceed.
    pub async fn record(&self, event: Event) -> Result<()> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Request::Record(event, reply))
            .await
            .map_err(|_| Error::Internal("audit writer stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("audit write failed: {e}"))),
            Err(_) => Err(Error::Internal("audit writer stopped".into())),
        }
    }
}

impl AuditSink {
    /// Brings the audit trail's search indexes up to date and returns how many entries it
    /// indexed ([`audit_index::index_entries`]; `audit::indexer` asks once a second). On SQLite
    /// the writer runs it between two groups on its own connection; on PostgreSQL, where the
    /// copy does not block appends, beside them.
    pub async fn index(&self) -> Result<u64> {
        let (reply, wait) = oneshot::channel();
        self.tx
            .send(Request::Index(reply))
            .await
            .map_err(|_| Error::Internal("audit writer stopped".into()))?;
        match wait.await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(Error::Internal(format!("audit indexing failed: {e}"))),
            Err(_) => Err(Error::Internal("audit writer stopped".into())),
        }
    }
}

/// The writer: each turn takes every request waiting (up to [`MAX_BATCH`]), commits their
/// events in one transaction and answers each, then runs any indexing asked for.
async fn write_groups(
    store: Store,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let (mut events, mut replies, mut index) = (Vec::new(), Vec::new(), Vec::new());
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for request in batch.drain(..) {
            match request {
                Request::Record(event, reply) => {
                    events.push(event);
                    replies.push(reply);
                }
                Request::Index(reply) => index.push(reply),
            }
        }
        if !events.is_empty() {
            // How well commits are shared: entries per commit is the grouping achieved.
            metrics::counter!("wardline_audit_group_commits_total").increment(1);
            metrics::counter!("wardline_audit_grouped_entries_total").increment(events.len() as u64);
            let result = audit::append_committed(&store, &events, clock.now().timestamp_millis()).await;
            if let Err(e) = &result {
                metrics::counter!("wardline_audit_write_errors_total").increment(1);
                tracing::error!(error = %e, count = events.len(), "audit entries not written");
            }
            for reply in replies.drain(..) {
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
            events.clear();
        }
        for reply in index.drain(..) {
            let run = {
                let store = store.clone();
                async move {
                    let indexed = audit_index::index_entries(&store).await;
                    let _ = reply.send(indexed.map_err(|e| e.to_string()));
                }
            };
            // On SQLite between two groups, on this thread's connection; on PostgreSQL beside
            // the groups (the copy does not block appends there).
            if store.inline().is_some() {
                run.await;
            } else {
                tokio::spawn(run);
            }
        }
    }
}

/// Which outcomes of a role gate are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Only refusals (the permitted action audits itself).
    Refusals,
    /// Refusals and permitted uses (the gate is the only record of the access).
    Always,
}

impl AuditSink {
    /// The one role gate: lets `who` through when they hold any of `roles`. Every refusal (and,
    /// with [`Record::Always`], every permitted use) is on the record before the answer is given.
    pub async fn gate(
        &self,
        who: &Principal,
        roles: &[Role],
        action: &str,
        entity: (&str, Option<String>),
        record: Record,
    ) -> Result<()> {
        let allowed = roles.iter().any(|r| who.has(*r));
        if allowed && record == Record::Refusals {
            return Ok(());
        }
        let event =
            Event::new(Some(who.user_id), action, entity.0, entity.1).from_source(who.source.as_deref());
        self.record(if allowed { event } else { event.failed() }).await?;
        if allowed {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(Error::Forbidden(format!(
                "the {} role is required",
                names.join(" or ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// On SQLite the writer commits groups and indexes on its own thread and connection, one
    /// after the other: every recorded event is on an intact chain, each index request indexes
    /// exactly the entries not indexed yet, and the writer stops when its handles are gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_commits_groups_and_indexes_between_them() {
        let (_dir, store) = crate::store::temp_sqlite("sink.db").await;
        store.migrate().await.expect("migrate");
        let (sink, task) =
            AuditSink::spawn(store.clone(), Arc::new(crate::clock::SystemClock)).expect("writer");
        let view = |id: String| Event::new(None, "test.view", "Patient", Some(id));
        let records = (0..20).map(|i| {
            let sink = sink.clone();
            async move { sink.record(view(format!("p{i}"))).await }
        });
        for recorded in futures_util::future::join_all(records).await {
            recorded.expect("recorded");
        }
        assert_eq!(sink.index().await.expect("index"), 20);
        sink.record(view("p20".into())).await.expect("one more");
        assert_eq!(sink.index().await.expect("index"), 1);
        assert_eq!(sink.index().await.expect("index"), 0);
        let report = crate::audit::chain::verify(&store).await.expect("verify");
        assert!(report.intact && report.head_seq == 21, "{report:?}");
        drop(sink);
        task.await.expect("the writer stops");
        store.close().await;
    }
}
