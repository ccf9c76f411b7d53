//! The inbox seen by an interface analyst: which messages failed and why (never their content),
//! and replaying them after a mapping fix. A replay re-reads the stored text with the current
//! configuration and applies it under the same ordering rules as a live message.

use serde::Serialize;
use serde_json::json;

use super::ack::Verdict;
use super::apply::Context;
use super::ingest::{Hl7, fill_outcome, inbox_aad, prepare, run};
use crate::audit::Event;
use crate::chat::model::from_ms;
use crate::crypto;
use crate::error::{Error, Result};
use crate::store::hl7::{self as store, InboxRecord};
use crate::store::{Store, audit};

/// One inbox entry as listed: metadata only.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Inbox id (give it to `wardline hl7 replay --id`).
    pub id: String,
    /// When it arrived.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// MSH-3.
    pub sender: String,
    /// MSH-4.
    pub facility: String,
    /// MSH-10.
    pub control_id: String,
    /// `ADT^A01`.
    pub message_type: String,
    /// `applied`, `ignored`, `stale` or `error`.
    pub outcome: String,
    /// HL7 table 0357 code.
    pub error_code: Option<String>,
    /// `PID-3`.
    pub error_location: Option<String>,
    /// Reason.
    pub error_text: Option<String>,
    /// Mapping gaps.
    pub warnings: Vec<String>,
    /// Times applied.
    pub attempts: i64,
}

impl From<&InboxRecord> for Entry {
    fn from(r: &InboxRecord) -> Self {
        Self {
            id: r.id.clone(),
            received_at: from_ms(r.received_at),
            sender: r.sending_app.clone(),
            facility: r.sending_facility.clone(),
            control_id: r.control_id.clone(),
            message_type: r.message_type.clone(),
            outcome: r.outcome.clone(),
            error_code: r.error_code.clone(),
            error_location: r.error_location.clone(),
            error_text: r.error_text.clone(),
            warnings: r
                .warnings
                .as_deref()
                .and_then(|w| serde_json::from_str(w).ok())
                .unwrap_or_default(),
            attempts: r.attempts,
        }
    }
}

/// Stored messages whose content could not be applied, oldest first.
pub async fn errors(store: &Store, limit: i64) -> Result<Vec<Entry>> {
    let rows = store::with_outcome(&mut *store.read().await?, "error", limit).await?;
    Ok(rows.iter().map(Entry::from).collect())
}

/// Applied messages whose mapping had gaps (unknown practitioner, unit without a team).
pub async fn warnings(store: &Store, limit: i64) -> Result<Vec<Entry>> {
    let rows = store::with_warnings(&mut *store.read().await?, limit).await?;
    Ok(rows.iter().map(Entry::from).collect())
}

impl Hl7 {
    /// Replays the given inbox entries (or, with none given, every errored one), oldest first;
    /// returns each entry as it stands afterwards.
    pub async fn replay(&self, ids: &[String]) -> Result<Vec<Entry>> {
        let mut records = Vec::new();
        if ids.is_empty() {
            records = store::with_outcome(&mut *self.chat.store.read().await?, "error", 10_000).await?;
        } else {
            for id in ids {
                let rec = store::by_id(&mut *self.chat.store.read().await?, id)
                    .await?
                    .ok_or(Error::NotFound("inbox entry"))?;
                records.push(rec);
            }
            records.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        }
        let mut out = Vec::with_capacity(records.len());
        for rec in records {
            out.push(self.replay_one(rec).await?);
        }
        Ok(out)
    }

    async fn replay_one(&self, mut rec: InboxRecord) -> Result<Entry> {
        let chat = &self.chat;
        let cipher = chat.keys.by_id(&rec.body_key_id).await?;
        let text = crypto::open(&cipher, &rec.body, &inbox_aad(&rec.id))?;
        let now_ms = chat.clock.now().timestamp_millis();
        let _in_order = chat.delivery_order().await;
        let mut tx = chat.store.begin().await?;
        let pending = chat.keys.pending();
        rec.processed_at = now_ms;
        rec.attempts += 1;
        let users = Default::default();
        let inbox_id = rec.id.clone();
        let (verdict, applied) = match prepare(&text, &self.cfg, self.zone) {
            Ok(prepared) => {
                rec.event_at = super::ingest::event_at(&prepared.action);
                let ctx = Context {
                    chat,
                    cfg: &self.cfg,
                    timing: self.timing(),
                    actor: None,
                    source: None,
                    inbox_id: &inbox_id,
                    now_ms,
                    users: &users,
                    via: "hl7",
                };
                run(&ctx, &mut tx, &prepared.action, &mut rec, None).await?
            }
            Err(refused) => {
                let verdict = Verdict::Error {
                    code: refused.rejection.code,
                    location: refused.rejection.location,
                    reason: refused.rejection.reason,
                };
                let applied = Default::default();
                fill_outcome(&mut rec, "error", &verdict, &applied);
                store::save(&mut tx, &rec).await?;
                (verdict, applied)
            }
        };
        let outcome = rec.outcome.clone();
        let mut events = applied.audit;
        events.push(
            Event::new(None, "hl7.replay", "hl7_message", Some(rec.id.clone())).with_detail(json!({
                "outcome": outcome, "ack": verdict.code(), "attempt": rec.attempts,
            })),
        );
        audit::append(&mut tx, &events, now_ms).await?;
        if let Err(e) = tx.commit().await {
            chat.forget_uncommitted(&applied.messages);
            return Err(e.into());
        }
        pending.committed();
        chat.deliver_committed(&applied.messages).await;
        for (target, frame) in applied.frames {
            chat.bus.publish(target, &frame).await;
        }
        Ok(Entry::from(&rec))
    }
}
