//! ADT events that arrive through another interface (the FHIR API) applied by the same event
//! table, so an EHR that pushes FHIR Patient and Encounter gets exactly the rooms, membership and
//! system messages an HL7 feed would give. No inbox entry and no ACK: the caller answers in its
//! own protocol. Several events (an update that both transfers and discharges) commit together.

use uuid::Uuid;

use super::apply::{ApplyError, Context, apply};
use super::ingest::Hl7;
use super::model::Adt;
use crate::error::{Error, Result};
use crate::store::audit;

/// What a batch of direct events changed.
#[derive(Debug, Default)]
pub struct DirectOutcome {
    /// The patient concerned.
    pub patient_id: Option<String>,
    /// The encounter concerned.
    pub encounter_id: Option<String>,
    /// Whether some event was older than the state it would change (and changed nothing).
    pub stale: bool,
    /// Mapping gaps (no patient data).
    pub warnings: Vec<String>,
}

impl Hl7 {
    /// Applies `events` in order in one transaction as `actor`; a content problem (what HL7 would
    /// answer with AE) is an [`Error::Invalid`] naming the field, and nothing is kept.
    pub async fn apply_direct(
        &self,
        events: &[Adt],
        actor: Option<Uuid>,
        source: Option<&str>,
        via: &'static str,
    ) -> Result<DirectOutcome> {
        let chat = &self.chat;
        let now_ms = chat.clock.now().timestamp_millis();
        let _in_order = chat.delivery_order().await;
        let mut tx = chat.store.begin().await?;
        let pending = chat.keys.pending();
        let users = Default::default();
        let reference = format!("{via}:{}", Uuid::now_v7());
        let ctx = Context {
            chat,
            cfg: &self.cfg,
            timing: self.timing(),
            actor,
            source,
            inbox_id: &reference,
            now_ms,
            users: &users,
            via,
        };
        let mut outcome = DirectOutcome::default();
        let (mut messages, mut frames, mut events_audit) = (Vec::new(), Vec::new(), Vec::new());
        for adt in events {
            let applied = match apply(&ctx, &mut tx, adt).await {
                Ok(applied) => applied,
                Err(e) => {
                    chat.forget_uncommitted(&messages);
                    return Err(match e {
                        ApplyError::Problem(p) => Error::Invalid(p.reason),
                        ApplyError::Store(e) => e,
                    });
                }
            };
            outcome.stale |= applied.stale;
            outcome.patient_id = applied.patient_id.or(outcome.patient_id);
            outcome.encounter_id = applied.encounter_id.or(outcome.encounter_id);
            outcome.warnings.extend(applied.warnings);
            messages.extend(applied.messages);
            frames.extend(applied.frames);
            events_audit.extend(applied.audit);
        }
        audit::append(&mut tx, &events_audit, now_ms).await?;
        if let Err(e) = tx.commit().await {
            chat.forget_uncommitted(&messages);
            return Err(e.into());
        }
        pending.committed();
        chat.deliver_committed(&messages).await;
        for (target, frame) in frames {
            chat.bus.publish(target, &frame).await;
        }
        Ok(outcome)
    }
}
