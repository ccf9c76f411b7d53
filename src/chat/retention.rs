//! Retention and legal hold (SPEC §8). Retention runs per room kind from the moment a room is
//! archived; a legal hold on the room or on its patient blocks purging. Purging crypto-shreds the
//! room (its data key is destroyed, so any copy of its ciphertext — backups included — is
//! unreadable) and deletes its content; the room row and the audit trail remain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::Chat;
use crate::audit::Event;
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::crypto::datakeys::room_scope;
use crate::error::{Error, Result};
use crate::store::retention::{self, HoldRecord};
use crate::store::{audit, parse_id, rooms};

/// Retention policy (`[retention]` in the TOML file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Days to keep a room's content after it is archived, per room kind.
    pub days: BTreeMap<String, u32>,
    /// How often the purge job runs, in seconds (0 disables the job; `POST /api/v1/retention/run`
    /// still works).
    pub purge_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = [
            ("patient_encounter", 2190),
            ("care_team", 365),
            ("direct", 365),
            ("role", 365),
        ]
        .into_iter()
        .map(|(k, d)| (k.to_string(), d))
        .collect();
        Self {
            days,
            purge_interval_secs: 3600,
        }
    }
}

/// Whether a room of `kind` archived at `archived_at_ms` is due for purging at `now_ms`. Kinds
/// without a configured period are kept forever (the safe default for unknown kinds).
pub fn due(policy: &RetentionConfig, kind: &str, archived_at_ms: i64, now_ms: i64) -> bool {
    match policy.days.get(kind) {
        Some(days) => now_ms - archived_at_ms >= i64::from(*days) * 86_400_000,
        None => false,
    }
}

/// A legal hold as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Hold {
    /// Id.
    pub id: Uuid,
    /// `room` or `patient`.
    pub scope_type: String,
    /// The room or patient held.
    pub scope_id: Uuid,
    /// Case or matter reference (no patient data).
    pub reference: String,
    /// Who placed it.
    pub placed_by: Uuid,
    /// When.
    pub placed_at: DateTime<Utc>,
    /// When it was released.
    pub released_at: Option<DateTime<Utc>>,
}

impl Chat {
    async fn require_compliance(&self, who: &Principal, action: &str) -> Result<()> {
        let roles = [Role::Auditor, Role::Admin];
        self.audit
            .gate(who, &roles, action, ("legal_hold", None), Record::Refusals)
            .await
    }

    /// Archives a room (admins): no new messages; retention starts now.
    pub async fn archive(&self, who: &Principal, room_id: Uuid) -> Result<()> {
        let room_entity = ("room", Some(room_id.to_string()));
        self.audit
            .gate(who, &[Role::Admin], "room.archive", room_entity, Record::Refusals)
            .await?;
        rooms::room_by_id(&mut *self.store.read().await?, room_id)
            .await?
            .ok_or(Error::NotFound("room"))?;
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.begin().await?;
        if !retention::set_status(&mut tx, &room_id.to_string(), "archived", now).await? {
            return Err(Error::Conflict("the room was purged".into()));
        }
        audit::append(&mut tx, &[who.event("room.archive", "room", room_id)], now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Places a legal hold on a room or a patient (auditors and admins).
    pub async fn place_hold(
        &self,
        who: &Principal,
        scope_type: &str,
        scope_id: Uuid,
        reference: &str,
    ) -> Result<Uuid> {
        self.require_compliance(who, "legal_hold.place").await?;
        let reference = reference.trim();
        if reference.is_empty() || reference.chars().count() > 200 {
            return Err(Error::Invalid(
                "reference (a case or matter number) is required, at most 200 characters".into(),
            ));
        }
        let exists = match scope_type {
            "room" => rooms::room_by_id(&mut *self.store.read().await?, scope_id)
                .await?
                .is_some(),
            "patient" => {
                retention::patient_exists(&mut *self.store.read().await?, &scope_id.to_string()).await?
            }
            _ => return Err(Error::Invalid("a hold names a room_id or a patient_id".into())),
        };
        if !exists {
            return Err(Error::NotFound(if scope_type == "room" {
                "room"
            } else {
                "patient"
            }));
        }
        let id = Uuid::now_v7();
        let now = self.clock.now().timestamp_millis();
        let hold = HoldRecord {
            id: id.to_string(),
            scope_type: scope_type.into(),
            scope_id: scope_id.to_string(),
            reference: reference.into(),
            placed_by: who.user_id.to_string(),
            placed_at: now,
            released_at: None,
        };
        let mut tx = self.store.begin().await?;
        retention::place_hold(&mut tx, &hold).await?;
        let event = who
            .event("legal_hold.place", "legal_hold", id)
            .with_detail(json!({"scope_type": scope_type, "scope_id": scope_id}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Releases a legal hold (auditors and admins).
    pub async fn release_hold(&self, who: &Principal, id: Uuid) -> Result<()> {
        self.require_compliance(who, "legal_hold.release").await?;
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.begin().await?;
        if !retention::release_hold(&mut tx, &id.to_string(), &who.user_id.to_string(), now).await? {
            return Err(Error::NotFound("active legal hold"));
        }
        audit::append(&mut tx, &[who.event("legal_hold.release", "legal_hold", id)], now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// All legal holds (auditors and admins).
    pub async fn holds(&self, who: &Principal) -> Result<Vec<Hold>> {
        self.require_compliance(who, "legal_hold.list").await?;
        retention::holds(&mut *self.store.read().await?)
            .await?
            .into_iter()
            .map(|h| {
                Ok(Hold {
                    id: parse_id(&h.id)?,
                    scope_type: h.scope_type,
                    scope_id: parse_id(&h.scope_id)?,
                    reference: h.reference,
                    placed_by: parse_id(&h.placed_by)?,
                    placed_at: super::model::from_ms(h.placed_at),
                    released_at: h.released_at.map(super::model::from_ms),
                })
            })
            .collect()
    }

    /// Purges every archived room whose retention has run out and that is not held. Safe to run
    /// on several nodes at once: each room is claimed in its own transaction.
    pub async fn purge_due(&self, policy: &RetentionConfig) -> Result<Vec<Uuid>> {
        let now = self.clock.now().timestamp_millis();
        let mut purged = Vec::new();
        let candidates = retention::candidates(&mut *self.store.read().await?).await?;
        for c in candidates {
            if !due(policy, &c.kind, c.archived_at, now) {
                continue;
            }
            let room_id = parse_id(&c.id)?;
            let mut tx = self.store.begin().await?;
            if !retention::claim_purge(&mut tx, &c.id, now).await? {
                continue;
            }
            let deleted = retention::shred(&mut tx, &c.id, &room_scope(room_id), now).await?;
            let event = Event::new(None, "room.purge", "room", Some(c.id.clone()))
                .from_source(Some("retention-job"))
                .with_detail(json!({"kind": c.kind, "messages_deleted": deleted, "data_key": "destroyed"}));
            audit::append(&mut tx, &[event], now).await?;
            tx.commit().await?;
            self.keys.forget_scope(&room_scope(room_id));
            purged.push(room_id);
        }
        Ok(purged)
    }
}

/// Runs [`Chat::purge_due`] periodically until shutdown.
pub fn spawn_purge_job(
    chat: Arc<Chat>,
    policy: RetentionConfig,
    shutdown: CancellationToken,
) -> Option<JoinHandle<()>> {
    if policy.purge_interval_secs == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(policy.purge_interval_secs));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match chat.purge_due(&policy).await {
                Ok(p) if !p.is_empty() => tracing::info!(rooms = p.len(), "retention purge"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention purge failed; will retry"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn retention_runs_from_archive_per_kind() {
        let p = RetentionConfig::default();
        let archived = 1_700_000_000_000;
        assert!(!due(&p, "care_team", archived, archived + 364 * DAY));
        assert!(due(&p, "care_team", archived, archived + 365 * DAY));
        assert!(!due(&p, "patient_encounter", archived, archived + 365 * DAY));
        assert!(due(&p, "patient_encounter", archived, archived + 2190 * DAY));
        assert!(
            !due(&p, "something_new", archived, archived + 100_000 * DAY),
            "unknown kinds are kept"
        );
        let mut zero = RetentionConfig::default();
        zero.days.insert("direct".into(), 0);
        assert!(due(&zero, "direct", archived, archived));
    }
}
