//! Group commit for audit entries that have no transaction of their own (reads, refused access,
//! failed logins). Each caller waits until its entry is durably committed, so a response is never
//! sent for an access that was not recorded; many callers share one transaction and one fsync.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Event;
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};
use crate::store::{Store, audit};

type Request = (Event, oneshot::Sender<Result<(), String>>);

/// Handle for recording audit events outside a change transaction.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Request>,
}

const MAX_BATCH: usize = 512;

impl AuditSink {
    /// Starts the writer and returns a task that ends with it; it stops when every handle is
    /// dropped. On SQLite the writer has a thread of its own, driven by a single-threaded
    /// runtime: a group commit hands its statements to the connection's thread twice and
    /// waits for each, and every audited read waits for the group; on the shared runtime each
    /// of those wake-ups queued behind every runnable HTTP task, and the reads waiting for the
    /// group waited with it (docs/benchmarks.md, 2026-12-07: a small gain, within the noise). PostgreSQL connections belong to the runtime that opened them, so there
    /// the writer stays a task.
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
            .send((event, reply))
            .await
            .map_err(|_| Error::Internal("audit writer stopped".into()))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Internal(format!("audit write failed: {e}"))),
            Err(_) => Err(Error::Internal("audit writer stopped".into())),
        }
    }
}

/// The writer: each turn takes every request waiting (up to [`MAX_BATCH`]), commits them in
/// one transaction and answers each.
async fn write_groups(
    store: Store,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    mut rx: mpsc::Receiver<Request>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // How well commits are shared: entries per commit is the grouping achieved.
        metrics::counter!("wardline_audit_group_commits_total").increment(1);
        metrics::counter!("wardline_audit_grouped_entries_total").increment(batch.len() as u64);
        let events: Vec<Event> = batch.iter().map(|(e, _)| e.clone()).collect();
        let result = audit::append_committed(&store, &events, clock.now().timestamp_millis()).await;
        if let Err(e) = &result {
            metrics::counter!("wardline_audit_write_errors_total").increment(1);
            tracing::error!(error = %e, count = events.len(), "audit entries not written");
        }
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
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
