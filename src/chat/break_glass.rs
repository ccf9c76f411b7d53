//! Break-glass: a clinician who is not a member may open a patient or care-team room in an
//! emergency by stating a reason. The access is immediate, visible to the room's members,
//! audited, and queued for review by an auditor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::bus::Target;
use super::frames::{MemberChange, ServerFrame};
use super::model::{MemberReason, RoomKind, from_ms};
use super::service::Chat;
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::crypto::{self, datakeys::room_scope};
use crate::error::{Error, Result};
use crate::store::{audit, break_glass, rooms};

/// A break-glass grant as reviewers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Grant {
    /// Grant id.
    pub id: Uuid,
    /// The room opened.
    pub room_id: Uuid,
    /// Its name.
    pub room_name: String,
    /// Who broke the glass.
    pub user_id: Uuid,
    /// Their display name.
    pub display_name: String,
    /// The reason they gave.
    pub reason: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Reviewer, once reviewed.
    pub reviewed_by: Option<Uuid>,
    /// When it was reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The reviewer's finding.
    pub review_outcome: Option<ReviewOutcome>,
}

/// A reviewer's finding.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// The access was appropriate.
    Justified,
    /// The access was not appropriate (follow up under the hospital's policy).
    Unjustified,
}

impl ReviewOutcome {
    fn as_str(self) -> &'static str {
        match self {
            ReviewOutcome::Justified => "justified",
            ReviewOutcome::Unjustified => "unjustified",
        }
    }
}

const MIN_REASON: usize = 10;
const MAX_REASON: usize = 1000;

fn reason_aad(grant_id: &str, room_id: &str) -> Vec<u8> {
    format!("wardline:break-glass:{grant_id}:{room_id}").into_bytes()
}

impl Chat {
    /// Opens a room the caller is not a member of, for a stated emergency reason.
    pub async fn break_glass(&self, who: &Principal, room_id: Uuid, reason: &str) -> Result<Uuid> {
        let reason = reason.trim();
        if !who.has(Role::Clinician) {
            self.audit
                .record(who.event("room.break_glass", "room", room_id).failed())
                .await?;
            return Err(Error::Forbidden("break-glass access is for clinicians".into()));
        }
        let chars = reason.chars().count();
        if !(MIN_REASON..=MAX_REASON).contains(&chars) {
            let event = who
                .event("room.break_glass", "room", room_id)
                .failed()
                .with_detail(json!({"refused": "reason"}));
            self.audit.record(event).await?;
            return Err(Error::Invalid(format!(
                "a reason of {MIN_REASON} to {MAX_REASON} characters is required for break-glass access"
            )));
        }
        let room = rooms::room_by_id(&mut *self.store.read().await?, room_id)
            .await?
            .ok_or(Error::NotFound("room"))?;
        if !matches!(room.kind, RoomKind::PatientEncounter | RoomKind::CareTeam) {
            return Err(Error::Invalid(
                "break-glass applies to patient and care-team rooms only".into(),
            ));
        }
        let grant_id = Uuid::now_v7();
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.begin().await?;
        if rooms::is_member(&mut *tx, room_id, who.user_id).await? {
            return Err(Error::Conflict("you are already a member of this room".into()));
        }
        let pending = self.keys.pending();
        let (key_id, cipher) = self.keys.for_scope(&mut tx, &room_scope(room_id), now).await?;
        let sealed = crypto::seal(
            &cipher,
            reason.as_bytes(),
            &reason_aad(&grant_id.to_string(), &room_id.to_string()),
        );
        break_glass::insert(
            &mut tx,
            &grant_id.to_string(),
            &room_id.to_string(),
            &who.user_id.to_string(),
            &sealed,
            &key_id,
            now,
        )
        .await?;
        rooms::add_member(
            &mut tx,
            room_id,
            who.user_id,
            MemberReason::BreakGlass,
            Some(who.user_id),
            now,
        )
        .await?;
        let event = who
            .event("room.break_glass", "room", room_id)
            .with_detail(json!({"grant_id": grant_id}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        pending.committed();
        let frame = ServerFrame::Member {
            room_id,
            user_id: who.user_id,
            change: MemberChange::Added,
            reason: Some(MemberReason::BreakGlass),
        };
        self.bus.publish(Target::Room(room_id), &frame).await;
        self.bus
            .publish(Target::Users(vec![who.user_id]), &ServerFrame::Room { room })
            .await;
        Ok(grant_id)
    }

    async fn require_auditor(&self, who: &Principal, action: &str) -> Result<()> {
        self.audit
            .gate(
                who,
                &[Role::Auditor],
                action,
                ("break_glass", None),
                Record::Always,
            )
            .await
    }

    /// Grants for review (auditors only), oldest first.
    pub async fn break_glass_grants(&self, who: &Principal, pending_only: bool) -> Result<Vec<Grant>> {
        self.require_auditor(who, "break_glass.list").await?;
        let mut out = Vec::new();
        let grants = break_glass::list(&mut *self.store.read().await?, pending_only, 500).await?;
        for g in grants {
            let cipher = self.keys.by_id(&g.reason_key_id).await?;
            let reason = crypto::open(&cipher, &g.reason, &reason_aad(&g.id, &g.room_id))?;
            let parse = crate::store::parse_id;
            out.push(Grant {
                id: parse(&g.id)?,
                room_id: parse(&g.room_id)?,
                room_name: g.room_name,
                user_id: parse(&g.user_id)?,
                display_name: g.display_name,
                reason: String::from_utf8(reason).map_err(|_| Error::Crypto("reason is not UTF-8".into()))?,
                created_at: from_ms(g.created_at),
                reviewed_by: g.reviewed_by.as_deref().map(parse).transpose()?,
                reviewed_at: g.reviewed_at.map(from_ms),
                review_outcome: g.review_outcome.map(|o| {
                    if o == "justified" {
                        ReviewOutcome::Justified
                    } else {
                        ReviewOutcome::Unjustified
                    }
                }),
            });
        }
        Ok(out)
    }

    /// Records an auditor's finding on a grant.
    pub async fn review_break_glass(
        &self,
        who: &Principal,
        grant_id: Uuid,
        outcome: ReviewOutcome,
    ) -> Result<()> {
        self.require_auditor(who, "break_glass.review").await?;
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.begin().await?;
        if !break_glass::review(
            &mut tx,
            &grant_id.to_string(),
            &who.user_id.to_string(),
            outcome.as_str(),
            now,
        )
        .await?
        {
            return Err(Error::Conflict("no unreviewed grant with this id".into()));
        }
        let event = who
            .event("break_glass.review", "break_glass", grant_id)
            .with_detail(json!({"outcome": outcome.as_str()}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        Ok(())
    }
}
