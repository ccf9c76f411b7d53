//! Storing rosters, answering "who is on call", and routing a message to a role: the role's room
//! `oncall:{service}` always has the current tier-1 person as a member (reason on_call), so a
//! message posted there reaches them; urgent ones are then watched by the escalation job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::OncallConfig;
use super::mail::Mailer;
use super::roster::{self, Report, RowError, ShiftIn};
use crate::auth::Principal;
use crate::chat::Chat;
use crate::chat::model::{MemberReason, Message, Priority, Room, RoomKind};
use crate::chat::service::Draft;
use crate::error::{Error, Result};
use crate::store::users;
use crate::store::{audit, oncall as store, parse_id, rooms};

/// The on-call service of one node.
pub struct Oncall {
    pub(crate) chat: Arc<Chat>,
    pub(crate) cfg: OncallConfig,
    pub(crate) zone: Tz,
    pub(crate) mailer: Option<Mailer>,
    pub(crate) public_url: String,
}

/// What an upload changed, per service, and its validation report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// One entry per service in the upload.
    #[schema(value_type = Vec<Object>)]
    pub services: Vec<serde_json::Value>,
    /// Gaps (nobody on tier 1) and overlaps (a tier double-booked).
    #[schema(value_type = Object)]
    pub report: Report,
    /// The ids of the stored shifts, in the order they were sent.
    pub shift_ids: Vec<String>,
}

/// Who holds one tier now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnCallTier {
    /// Tier (1 = primary).
    pub tier: u32,
    /// The user.
    pub user_id: Uuid,
    /// Their name.
    pub display_name: String,
    /// Shift start.
    pub start: DateTime<Utc>,
    /// Shift end (exclusive).
    pub end: DateTime<Utc>,
}

impl Oncall {
    /// The service for `cfg`; `public_url` is the base of the links in emails.
    pub fn new(chat: Arc<Chat>, cfg: OncallConfig, public_url: String) -> Result<Self> {
        let zone: Tz = cfg.time_zone.parse().map_err(|_| {
            Error::Invalid(format!(
                "oncall.time_zone '{}' is not an IANA zone",
                cfg.time_zone
            ))
        })?;
        let mailer = Mailer::from_config(&cfg.smtp)?;
        Ok(Self {
            chat,
            cfg,
            zone,
            mailer,
            public_url,
        })
    }

    /// The zone for roster times without an offset.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Stores an upload: per service, the shifts starting inside its period are replaced, all in
    /// one transaction; unknown practitioners refuse the whole upload with their row numbers.
    pub async fn upload(&self, who: &Principal, shifts: Vec<ShiftIn>) -> Result<Uploaded> {
        let mut conn = self.chat.store.read().await?;
        let mut users_of = Vec::with_capacity(shifts.len());
        let mut unknown = Vec::new();
        for (i, s) in shifts.iter().enumerate() {
            match resolve_person(&mut conn, &s.practitioner).await? {
                Some(id) => users_of.push(id),
                None => unknown.push(RowError {
                    row: i + 1,
                    error: "practitioner_id names no active person".into(),
                }),
            }
        }
        drop(conn);
        if !unknown.is_empty() {
            return Err(Error::Invalid(row_errors(&unknown)));
        }
        let report = roster::validate(&shifts);
        let mut services: Vec<&str> = shifts.iter().map(|s| s.service.as_str()).collect();
        services.sort_unstable();
        services.dedup();
        let now = self.chat.clock.now().timestamp_millis();
        let upload_id = Uuid::now_v7().to_string();
        let shift_ids: Vec<String> = shifts.iter().map(|_| Uuid::now_v7().to_string()).collect();
        let mut tx = self.chat.store.begin().await?;
        let mut summary = Vec::new();
        let mut events = Vec::new();
        for service in &services {
            let Some((from, to)) = roster::period(&shifts, service) else {
                continue;
            };
            let new: Vec<store::NewShift> = shifts
                .iter()
                .zip(&users_of)
                .zip(&shift_ids)
                .filter(|((s, _), _)| s.service == *service)
                .map(|((s, user), id)| store::NewShift {
                    id: id.clone(),
                    service,
                    tier: s.tier,
                    start_ms: s.start.timestamp_millis(),
                    end_ms: s.end.timestamp_millis(),
                    user_id: user.clone(),
                })
                .collect();
            let period = (from.timestamp_millis(), to.timestamp_millis());
            let replaced = store::replace(&mut tx, service, period, &new, &upload_id, now).await?;
            let detail = json!({"service": service, "from": from, "to": to, "shifts": new.len(), "replaced": replaced,
                "gaps": report.gaps.iter().filter(|g| g.service == *service).count(),
                "overlaps": report.overlaps.iter().filter(|o| o.service == *service).count()});
            events.push(
                who.event("roster.upload", "roster", &upload_id)
                    .with_detail(detail.clone()),
            );
            summary.push(detail);
        }
        audit::append(&mut tx, &events, now).await?;
        tx.commit().await?;
        Ok(Uploaded {
            services: summary,
            report,
            shift_ids,
        })
    }

    /// Who holds each tier of `service` at `at`.
    pub async fn on_call(&self, service: &str, at: DateTime<Utc>) -> Result<Vec<OnCallTier>> {
        let mut conn = self.chat.store.read().await?;
        if !store::service_exists(&mut conn, service).await? {
            return Err(Error::NotFound("on-call service"));
        }
        let at_ms = at.timestamp_millis();
        let shifts = store::covering(&mut conn, service, at_ms).await?;
        let mut tiers: Vec<u32> = shifts.iter().map(|s| s.tier).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let mut out = Vec::new();
        for tier in tiers {
            if let Some(h) = roster::holder(&shifts, tier, at_ms) {
                let user_id = parse_id(&h.user_id)?;
                let display_name = users::user_by_id(&mut conn, user_id)
                    .await?
                    .map(|u| u.display_name)
                    .unwrap_or_default();
                let t = |ms| DateTime::from_timestamp_millis(ms).unwrap_or_default();
                out.push(OnCallTier {
                    tier,
                    user_id,
                    display_name,
                    start: t(h.start_ms),
                    end: t(h.end_ms),
                });
            }
        }
        Ok(out)
    }

    /// The current holder of `tier` of `service`, as a user id.
    pub(crate) async fn holder(&self, service: &str, tier: u32, at_ms: i64) -> Result<Option<String>> {
        let shifts = store::covering(&mut *self.chat.store.read().await?, service, at_ms).await?;
        Ok(roster::holder(&shifts, tier, at_ms).map(|h| h.user_id.clone()))
    }

    /// Posts `body` to the role `oncall:{service}` as `who`: the room is created on first use,
    /// the sender joins it (to follow the answer) and the tier-1 person on call now is a member.
    pub async fn message_role(
        &self,
        who: &Principal,
        service: &str,
        body: String,
        priority: Priority,
        idempotency_key: Option<String>,
    ) -> Result<Message> {
        self.chat.require_clinical(who, "oncall.message").await?;
        if !store::service_exists(&mut *self.chat.store.read().await?, service).await? {
            return Err(Error::NotFound("on-call service"));
        }
        let room = self.role_room(service, Some(who.user_id)).await?;
        let now = self.chat.clock.now().timestamp_millis();
        let mut tx = self.chat.store.begin().await?;
        let mut events = Vec::new();
        if rooms::add_member(
            &mut tx,
            room.id,
            who.user_id,
            MemberReason::Invited,
            Some(who.user_id),
            now,
        )
        .await?
        {
            events.push(
                who.event("room.member.add", "room", room.id)
                    .with_detail(json!({"user_id": who.user_id, "reason": "invited", "via": "oncall"})),
            );
        }
        if let Some(holder) = self.holder(service, 1, now).await?
            && rooms::add_member(
                &mut tx,
                room.id,
                parse_id(&holder)?,
                MemberReason::OnCall,
                None,
                now,
            )
            .await?
        {
            events.push(
                who.event("room.member.add", "room", room.id)
                    .with_detail(json!({"user_id": holder, "reason": "on_call", "via": "oncall"})),
            );
        }
        audit::append(&mut tx, &events, now).await?;
        tx.commit().await?;
        let draft = Draft {
            room_id: room.id,
            body,
            priority,
            idempotency_key,
            confirm_dlp: false,
            attachment_ids: Vec::new(),
        };
        let (message, _) = self.chat.send(who, draft).await?;
        Ok(message)
    }

    /// The room of `service`'s role, created on first use.
    pub(crate) async fn role_room(&self, service: &str, creator: Option<Uuid>) -> Result<Room> {
        let key = format!("oncall:{service}");
        let found = rooms::room_by_role_key(&mut *self.chat.store.read().await?, &key).await?;
        if let Some(room) = found {
            return Ok(room);
        }
        let now = self.chat.clock.now().timestamp_millis();
        let mut tx = self.chat.store.begin().await?;
        let name = format!("On call: {service}");
        let new = rooms::NewRoom {
            id: Uuid::now_v7(),
            kind: RoomKind::Role,
            name: &name,
            encounter_id: None,
            role_key: Some(&key),
            direct_key: None,
            created_by: creator,
        };
        match rooms::insert_room(&mut tx, &new, now).await {
            Ok(()) => tx.commit().await?,
            // Another request or node created it meanwhile: use theirs.
            Err(e) if e.is_unique_violation() => drop(tx),
            Err(e) => return Err(e),
        }
        rooms::room_by_role_key(&mut *self.chat.store.read().await?, &key)
            .await?
            .ok_or(Error::Internal("role room vanished".into()))
    }

    /// The link in emails: the room in the web app.
    pub(crate) fn link(&self, room_id: &str) -> String {
        format!("{}/app/#room={room_id}", self.public_url.trim_end_matches('/'))
    }
}

/// A roster's `practitioner_id`: a Wardline user id, an NPI or a login name of an active person.
pub(crate) async fn resolve_person(
    conn: &mut sqlx::AnyConnection,
    reference: &str,
) -> Result<Option<String>> {
    if let Ok(id) = reference.parse::<Uuid>() {
        return Ok(users::user_by_id(conn, id)
            .await?
            .filter(|u| u.active && u.kind == "person")
            .map(|u| u.id.to_string()));
    }
    Ok(
        users::person_by_npi_or_username(conn, Some(reference), Some(reference))
            .await?
            .filter(|u| u.active)
            .map(|u| u.id.to_string()),
    )
}

/// Row errors as one message: `row 3: ...; row 5: ...`.
pub fn row_errors(errors: &[RowError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.row == 0 {
                e.error.clone()
            } else {
                format!("row {}: {}", e.row, e.error)
            }
        })
        .collect();
    format!("the roster was not stored: {}", parts.join("; "))
}
