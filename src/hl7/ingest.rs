//! The ingest pipeline. Reading a message ([`prepare`]) is pure and runs on the caller's task,
//! so connections parse in parallel; storing it runs on one writer task per node that commits
//! many messages in one transaction (group commit: one fsync for the batch), each inside its own
//! savepoint so one message's failure never touches another's. Every caller waits for its ACK,
//! which is built only after the commit: AA never precedes durability.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono_tz::Tz;
use sqlx::{AnyConnection, Connection};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ack::{self, Verdict};
use super::adt::Timing;
use super::apply::{self, Applied, ApplyError, Context};
use super::mapping::Hl7Config;
use super::members::Users;
use super::message::Header;
pub use super::read::{Action, Prepared, Refused, prepare};
use crate::audit::Event;
use crate::chat::Chat;
use crate::chat::model::Message;
use crate::crypto;
use crate::error::{Error, Result};
use crate::store::audit;
use crate::store::hl7::{self as inbox, InboxRecord};

/// The data-key scope that seals the inbox.
pub const INBOX_SCOPE: &str = "hl7:inbox";

struct Job {
    prepared: Prepared,
    source: Option<String>,
    actor: Option<Uuid>,
    reply: oneshot::Sender<String>,
}

/// The HL7 service: reads, queues and answers messages; shared by MLLP and `POST /hl7`.
pub struct Hl7 {
    pub(crate) chat: Arc<Chat>,
    pub(crate) cfg: Arc<Hl7Config>,
    pub(crate) zone: Tz,
    queue: mpsc::Sender<Job>,
}

impl Hl7 {
    /// Starts the writer; it stops when the last handle is dropped.
    pub fn spawn(chat: Arc<Chat>, cfg: Hl7Config) -> Result<(Arc<Self>, JoinHandle<()>)> {
        let zone = cfg.zone().map_err(Error::Invalid)?;
        let (queue, rx) = mpsc::channel(cfg.max_batch.max(1) * 8);
        let cfg = Arc::new(cfg);
        let writer = tokio::spawn(writer(chat.clone(), cfg.clone(), rx));
        Ok((
            Arc::new(Self {
                chat,
                cfg,
                zone,
                queue,
            }),
            writer,
        ))
    }

    /// Answers one frame (bytes between the MLLP start and end blocks, or an HTTP body).
    pub async fn handle(&self, raw: &[u8], source: Option<String>, actor: Option<Uuid>) -> String {
        let now = self.chat.clock.now();
        let control_id = ack_control_id();
        let prepared = match prepare(raw, &self.cfg, self.zone) {
            Ok(p) => p,
            Err(refused) => {
                metrics::counter!("wardline_hl7_messages_total", "ack" => "AR").increment(1);
                self.audit_refusal(&refused, source.as_deref(), actor).await;
                let verdict = Verdict::from(refused.rejection);
                return ack::build(refused.header.as_deref(), &verdict, &control_id, now);
            }
        };
        let header = prepared.header.clone();
        let (reply, answer) = oneshot::channel();
        let job = Job {
            prepared,
            source,
            actor,
            reply,
        };
        if self.queue.send(job).await.is_ok()
            && let Ok(ack) = answer.await
        {
            return ack;
        }
        metrics::counter!("wardline_hl7_messages_total", "ack" => "AR").increment(1);
        ack::build(Some(&header), &Verdict::unavailable(), &control_id, now)
    }

    async fn audit_refusal(&self, refused: &Refused, source: Option<&str>, actor: Option<Uuid>) {
        let h = refused.header.as_deref();
        let event = Event::new(
            actor,
            "hl7.receive",
            "hl7_message",
            h.map(|h| h.control_id.clone()),
        )
        .from_source(source)
        .failed()
        .with_detail(serde_json::json!({
            "ack": "AR",
            "code": refused.rejection.code,
            "sender": h.map(|h| h.sending_application.clone()),
            "facility": h.map(|h| h.sending_facility.clone()),
            "type": h.map(Header::type_label),
        }));
        if let Err(e) = self.chat.audit.record(event).await {
            tracing::error!(error = %e, "refused HL7 message not audited");
        }
    }

    /// Discharge timing from configuration.
    pub(crate) fn timing(&self) -> Timing {
        timing(&self.cfg)
    }
}

fn timing(cfg: &Hl7Config) -> Timing {
    let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    Timing {
        discharge_grace_ms: ms(cfg.discharge_grace_secs),
        archive_after_ms: ms(cfg.archive_after_secs),
    }
}

/// A fresh MSH-10 for an ACK: 20 characters, as HL7 2.3 allows.
fn ack_control_id() -> String {
    let id = Uuid::now_v7().simple().to_string();
    format!("W{}", &id[13..])
}

/// What one message's processing left to do after the batch commits.
struct Done {
    ack: String,
    messages: Vec<Message>,
    frames: Vec<(crate::chat::bus::Target, crate::chat::frames::ServerFrame)>,
    audit: Vec<Event>,
    code: &'static str,
}

async fn writer(chat: Arc<Chat>, cfg: Arc<Hl7Config>, mut rx: mpsc::Receiver<Job>) {
    let max = cfg.max_batch.max(1);
    let mut received = Vec::with_capacity(max);
    while rx.recv_many(&mut received, max).await > 0 {
        let mut batch: VecDeque<Job> = received.drain(..).collect();
        commit_batch(&chat, &cfg, &mut batch).await;
    }
}

async fn commit_batch(chat: &Chat, cfg: &Hl7Config, batch: &mut VecDeque<Job>) {
    let _in_order = chat.delivery_order().await;
    let now = chat.clock.now();
    let now_ms = now.timestamp_millis();
    let started = std::time::Instant::now();
    let mut results: Vec<(Job, std::result::Result<Done, Error>)> = Vec::with_capacity(batch.len());
    let committed = async {
        let mut tx = chat.store.begin().await?;
        let users = Users::default();
        while let Some(job) = batch.pop_front() {
            let done = process(chat, cfg, &users, &mut tx, &job, now_ms).await;
            // A store error may have aborted the whole transaction (PostgreSQL does so for an
            // error outside a savepoint): never commit after one; the batch is answered AR.
            let failed = done.as_ref().err().map(ToString::to_string);
            results.push((job, done));
            if let Some(e) = failed {
                return Err(Error::Internal(format!("a message could not be stored: {e}")));
            }
        }
        let events: Vec<Event> = results
            .iter_mut()
            .filter_map(|(_, r)| r.as_mut().ok())
            .flat_map(|d| std::mem::take(&mut d.audit))
            .collect();
        audit::append(&mut tx, &events, now_ms).await?;
        tx.commit().await?;
        Ok::<(), Error>(())
    }
    .await;
    let staged: Vec<Message> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|d| d.messages.iter().cloned())
        .collect();
    if let Err(e) = committed {
        tracing::error!(error = %e, count = results.len() + batch.len(), "HL7 batch not committed; answering AR");
        chat.forget_uncommitted(&staged);
        for job in batch.drain(..).chain(results.into_iter().map(|(j, _)| j)) {
            let ack = ack::build(
                Some(&job.prepared.header),
                &Verdict::unavailable(),
                &ack_control_id(),
                now,
            );
            metrics::counter!("wardline_hl7_messages_total", "ack" => "AR").increment(1);
            let _ = job.reply.send(ack);
        }
        return;
    }
    metrics::histogram!("wardline_hl7_batch_seconds").record(started.elapsed().as_secs_f64());
    let mut frames = Vec::new();
    for (job, done) in results {
        let ack = match done {
            Ok(d) => {
                metrics::counter!("wardline_hl7_messages_total", "ack" => d.code).increment(1);
                frames.extend(d.frames);
                d.ack
            }
            Err(e) => {
                tracing::error!(error = %e, "HL7 message not stored; answering AR");
                metrics::counter!("wardline_hl7_messages_total", "ack" => "AR").increment(1);
                ack::build(
                    Some(&job.prepared.header),
                    &Verdict::unavailable(),
                    &ack_control_id(),
                    now,
                )
            }
        };
        let _ = job.reply.send(ack);
    }
    chat.deliver_committed(&staged).await;
    for (target, frame) in frames {
        chat.bus.publish(target, &frame).await;
    }
}

/// Seals ER7 text for the inbox; the row id is bound in, so a body cannot be moved to another row.
pub(crate) fn inbox_aad(id: &str) -> Vec<u8> {
    format!("wardline:hl7-inbox:{id}").into_bytes()
}

async fn process(
    chat: &Chat,
    cfg: &Hl7Config,
    users: &Users,
    tx: &mut AnyConnection,
    job: &Job,
    now_ms: i64,
) -> Result<Done> {
    let h = &job.prepared.header;
    let key = (
        h.sending_application.as_str(),
        h.sending_facility.as_str(),
        h.control_id.as_str(),
    );
    let receive = |outcome: &str, code: &str, id: Option<String>| {
        Event::new(job.actor, "hl7.receive", "hl7_message", id)
            .from_source(job.source.as_deref())
            .with_detail(serde_json::json!({
                "sender": h.sending_application, "facility": h.sending_facility,
                "control_id": h.control_id, "type": h.type_label(), "outcome": outcome, "ack": code,
            }))
    };
    if let Some(original) = inbox::ack_for(&mut *tx, key).await? {
        return Ok(Done {
            ack: original,
            messages: vec![],
            frames: vec![],
            audit: vec![receive("duplicate", "original", None)],
            code: "duplicate",
        });
    }
    let id = Uuid::now_v7().to_string();
    let (key_id, cipher) = chat.keys.for_scope(tx, INBOX_SCOPE, now_ms).await?;
    let ctx = Context {
        chat,
        cfg,
        timing: timing(cfg),
        actor: job.actor,
        source: job.source.as_deref(),
        inbox_id: &id,
        now_ms,
        users,
        via: "hl7",
    };
    let mut record = InboxRecord {
        id: id.clone(),
        sending_app: h.sending_application.clone(),
        sending_facility: h.sending_facility.clone(),
        control_id: h.control_id.clone(),
        message_type: h.type_label(),
        event_at: event_at(&job.prepared.action),
        received_at: now_ms,
        source: job.source.clone(),
        body: crypto::seal(&cipher, job.prepared.text.as_bytes(), &inbox_aad(&id)),
        body_key_id: key_id,
        attempts: 1,
        processed_at: now_ms,
        ..InboxRecord::default()
    };
    let answer = |v: &Verdict| ack::build(Some(h), v, &ack_control_id(), chat.clock.now());
    let (verdict, applied) = run(&ctx, tx, &job.prepared.action, &mut record, Some(&answer)).await?;
    let mut audit = applied.audit;
    audit.push(receive(&record.outcome, verdict.code(), Some(id)));
    Ok(Done {
        ack: record.ack,
        messages: applied.messages,
        frames: applied.frames,
        audit,
        code: verdict.code(),
    })
}

pub(crate) fn event_at(action: &Action) -> Option<i64> {
    match action {
        Action::Apply(adt) => Some(adt.event_at.timestamp_millis()),
        _ => None,
    }
}

/// Builds the ACK of a new inbox entry from its verdict (replays keep the original).
pub(crate) type Answer<'a> = &'a (dyn Fn(&Verdict) -> String + Sync);

/// Applies an action and saves its inbox entry inside one savepoint, so a failure leaves the
/// rest of the batch untouched; a content problem rolls back only the apply, and the entry is
/// then saved as an error.
pub(crate) async fn run(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    action: &Action,
    record: &mut InboxRecord,
    answer: Option<Answer<'_>>,
) -> Result<(Verdict, Applied)> {
    let finish = |record: &mut InboxRecord, outcome: &str, verdict: &Verdict, applied: &Applied| {
        fill_outcome(record, outcome, verdict, applied);
        if let Some(answer) = answer {
            record.ack_code = verdict.code().into();
            record.ack = answer(verdict);
        }
    };
    let mut sp = conn.begin().await?;
    let (verdict, applied, outcome) = match action {
        Action::Ignore => (Verdict::Accept, Applied::default(), "ignored"),
        Action::Fail(p) => (Verdict::from(p.clone()), Applied::default(), "error"),
        Action::Apply(adt) => match apply::apply(ctx, &mut sp, adt).await {
            Ok(applied) => {
                let outcome = if applied.stale { "stale" } else { "applied" };
                (Verdict::Accept, applied, outcome)
            }
            Err(ApplyError::Problem(p)) => {
                sp.rollback().await?;
                ctx.chat.keys.forget_uncommitted();
                sp = conn.begin().await?;
                (Verdict::from(p), Applied::default(), "error")
            }
            Err(ApplyError::Store(e)) => return Err(e),
        },
    };
    finish(record, outcome, &verdict, &applied);
    inbox::save(&mut sp, record).await?;
    sp.commit().await?;
    Ok((verdict, applied))
}

pub(crate) fn fill_outcome(record: &mut InboxRecord, outcome: &str, verdict: &Verdict, applied: &Applied) {
    record.outcome = outcome.into();
    record.patient_id = applied.patient_id.clone();
    record.encounter_id = applied.encounter_id.clone();
    record.warnings =
        (!applied.warnings.is_empty()).then(|| serde_json::to_string(&applied.warnings).unwrap_or_default());
    if let Verdict::Error {
        code,
        location,
        reason,
    } = verdict
    {
        record.error_code = Some((*code).into());
        record.error_location = location.as_ref().map(|(s, _, f)| format!("{s}-{f}"));
        record.error_text = Some(reason.clone());
    } else {
        record.error_code = None;
        record.error_location = None;
        record.error_text = None;
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
