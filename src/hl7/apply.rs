//! Carries out one ADT event inside the caller's transaction: patient upsert or merge, the
//! encounter decided by [`super::adt::plan`], its room, membership and system message. What must
//! reach clients after commit (messages, frames) and the audit events are returned, not sent.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::adt::{self, Decision, EncounterPlan, Practitioners, RoomAction, Timing};
use super::mapping::Hl7Config;
use super::members::{practitioner, prefetch, sync_members, unit_team};
use super::message::{Adt, Problem, Trigger};
use super::patients::{merge, upsert_patient};
use crate::audit::Event;
use crate::chat::Chat;
use crate::chat::bus::Target;
use crate::chat::frames::ServerFrame;
use crate::chat::model::{MemberReason, Message, Room, RoomKind, RoomStatus, from_ms};
use crate::error::Error;
use crate::store::patients::{self, PatientRow};
use crate::store::{encounters, parse_id, rooms};

/// What applying produced.
#[derive(Default)]
pub struct Applied {
    /// Whether the event was older than the state it would change.
    pub stale: bool,
    /// Patient concerned.
    pub patient_id: Option<String>,
    /// Encounter concerned.
    pub encounter_id: Option<String>,
    /// Mapping gaps (field and code, no patient data).
    pub warnings: Vec<String>,
    /// System messages to deliver after commit.
    pub messages: Vec<Message>,
    /// Frames to publish after commit.
    pub frames: Vec<(Target, ServerFrame)>,
    /// Audit events to append with the message.
    pub audit: Vec<Event>,
}

/// Why an event could not be applied.
#[derive(Debug)]
pub enum ApplyError {
    /// The content cannot be applied (AE).
    Problem(Problem),
    /// The database failed (AR, retry).
    Store(Error),
}

impl From<Error> for ApplyError {
    fn from(e: Error) -> Self {
        Self::Store(e)
    }
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Everything applying needs besides the connection.
pub struct Context<'a> {
    /// The chat core (system messages, keys).
    pub chat: &'a Chat,
    /// Mapping.
    pub cfg: &'a Hl7Config,
    /// Discharge timing.
    pub timing: Timing,
    /// Who sent it: the service account of `POST /hl7`, none for MLLP.
    pub actor: Option<Uuid>,
    /// Peer address.
    pub source: Option<&'a str>,
    /// The inbox entry, named in audit details.
    pub inbox_id: &'a str,
    /// Unix ms.
    pub now_ms: i64,
    /// User lookups shared by the messages of one transaction.
    pub users: &'a super::members::Users,
    /// The interface the event came through (`hl7`, `fhir`), named in audit details.
    pub via: &'static str,
}

impl Context<'_> {
    pub(super) fn event(&self, action: &str, entity: &str, id: &str, detail: serde_json::Value) -> Event {
        Event::new(self.actor, action, entity, Some(id.to_string()))
            .from_source(self.source)
            .with_detail(detail)
    }
}

pub(super) fn full_name(p: &PatientRow) -> String {
    match (p.family_name.as_deref(), p.given_name.as_deref()) {
        (Some(f), Some(g)) => format!("{f}, {g}"),
        (Some(f), None) => f.to_string(),
        (None, Some(g)) => g.to_string(),
        (None, None) => "Patient".to_string(),
    }
}

/// Applies one event.
pub async fn apply(ctx: &Context<'_>, conn: &mut AnyConnection, adt: &Adt) -> Result<Applied, ApplyError> {
    let mut out = Applied::default();
    let patient = upsert_patient(ctx, conn, adt, &mut out).await?;
    if adt.trigger == Trigger::A40 {
        let survivor = patient.ok_or_else(|| ApplyError::Store(Error::Internal("no survivor".into())))?;
        merge(ctx, conn, adt, &survivor, &mut out).await?;
        return Ok(out);
    }
    let Some(number) = adt.visit.as_ref().and_then(|v| v.number.as_deref()) else {
        return Ok(out);
    };
    let current = encounters::by_visit(conn, &ctx.cfg.visit_system, number).await?;
    let plan = match adt::plan(adt, current.as_ref(), &ctx.cfg.visit_system, ctx.timing)
        .map_err(ApplyError::Problem)?
    {
        Decision::Stale => {
            out.stale = true;
            out.encounter_id = current.map(|c| c.id);
            return Ok(out);
        }
        Decision::NoEncounter => return Ok(out),
        Decision::Apply(plan) => plan,
    };
    let patient = match (&current, patient) {
        (Some(cur), p) => (cur.patient_id.clone(), p.filter(|p| p.id == cur.patient_id)),
        (None, Some(p)) => (p.id.clone(), Some(p)),
        (None, None) => {
            return Err(ApplyError::Store(Error::Internal(
                "admission without patient".into(),
            )));
        }
    };
    encounter(ctx, conn, adt, *plan, patient, &mut out).await?;
    Ok(out)
}

async fn encounter(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    adt: &Adt,
    plan: EncounterPlan,
    (patient_id, patient): (String, Option<PatientRow>),
    out: &mut Applied,
) -> Result<(), ApplyError> {
    let EncounterPlan {
        mut next,
        is_new,
        room: action,
        mut practitioners_changed,
        mut unit_change,
        note,
    } = plan;
    let trigger = format!("{:?}", adt.trigger);
    if is_new {
        next.id = Uuid::now_v7().to_string();
        next.patient_id = patient_id;
    }
    encounters::save(conn, &next, ctx.now_ms).await?;
    out.audit.push(ctx.event(
        if is_new {
            "encounter.create"
        } else {
            "encounter.update"
        },
        "encounter",
        &next.id,
        json!({"via": ctx.via, "trigger": trigger}),
    ));
    out.encounter_id = Some(next.id.clone());
    let mut room = rooms::room_for_encounter(conn, &next.id).await?;
    let created = room.is_none() && action == RoomAction::Open;
    if created {
        let id = Uuid::now_v7();
        let patient = match patient {
            Some(p) => Some(p),
            None => patients::patient_by_id(conn, &next.patient_id).await?,
        };
        let name = match patient {
            Some(p) => format!("{} · {}", full_name(&p), next.visit_number),
            None => format!("Encounter {}", next.visit_number),
        };
        let new = rooms::NewRoom {
            id,
            kind: RoomKind::PatientEncounter,
            name: &name,
            encounter_id: Some(parse_id(&next.id)?),
            role_key: None,
            direct_key: None,
            created_by: None,
        };
        rooms::insert_room(conn, &new, ctx.now_ms).await?;
        out.audit.push(ctx.event(
            "room.create",
            "room",
            &id.to_string(),
            json!({"via": ctx.via, "kind": "patient_encounter", "encounter_id": next.id}),
        ));
        practitioners_changed = true;
        unit_change = Some((None, next.location_unit.clone()));
        room = Some(Room {
            id,
            kind: RoomKind::PatientEncounter,
            name,
            status: RoomStatus::Active,
            encounter_id: Some(parse_id(&next.id)?),
            role_key: None,
            created_at: from_ms(ctx.now_ms),
        });
    }
    let Some(mut room) = room else {
        return Ok(());
    };
    let lifecycle = match action {
        RoomAction::Keep => None,
        RoomAction::Open | RoomAction::Reopen => Some(("active", None, None)),
        RoomAction::Schedule {
            read_only_at,
            archive_at,
        } => Some(("active", Some(read_only_at), Some(archive_at))),
        RoomAction::CloseNow { archive_at } => Some(("read_only", None, Some(archive_at))),
    };
    if let Some((status, ro, ar)) = lifecycle.filter(|_| !created) {
        let changed = rooms::set_lifecycle(conn, room.id, status, (ro, ar), ctx.now_ms).await?;
        if status != room.status.as_str() {
            out.audit.push(ctx.event(
                "room.status",
                "room",
                &room.id.to_string(),
                json!({"via": ctx.via, "status": status}),
            ));
        }
        if changed {
            room.status = status.parse()?;
        }
    }
    let mut desired: BTreeMap<Uuid, MemberReason> = BTreeMap::new();
    let named = Practitioners::from_json(&next.practitioners);
    let names: Vec<&String> = if practitioners_changed {
        named
            .consulting
            .iter()
            .chain(&named.admitting)
            .chain(&named.attending)
            .collect()
    } else {
        Vec::new()
    };
    let units: Vec<&String> = unit_change
        .iter()
        .flat_map(|(from, to)| from.iter().chain(to))
        .collect();
    prefetch(ctx, conn, &names, &units).await?;
    if practitioners_changed {
        for (field, ids, reason) in [
            ("PV1-9", &named.consulting, MemberReason::Consulting),
            ("PV1-17", &named.admitting, MemberReason::Admitting),
            ("PV1-7", &named.attending, MemberReason::Attending),
        ] {
            for id in ids {
                match practitioner(ctx, conn, id).await? {
                    Some(user) => {
                        desired.insert(user, reason);
                    }
                    None => out.warnings.push(format!(
                        "{field}: practitioner {id} is not mapped to a Wardline user"
                    )),
                }
            }
        }
    }
    let mut team_out = BTreeSet::new();
    if let Some((from, to)) = &unit_change {
        if let Some(from) = from {
            team_out = unit_team(ctx, conn, from, &mut Vec::new()).await?;
        }
        if let Some(to) = to {
            for user in unit_team(ctx, conn, to, &mut out.warnings).await? {
                team_out.remove(&user);
                desired.entry(user).or_insert(MemberReason::UnitTeam);
            }
        }
    }
    let (added, audience) = sync_members(
        ctx,
        conn,
        room.id,
        practitioners_changed,
        &team_out,
        &desired,
        out,
    )
    .await?;
    if let Some(note) = note {
        out.messages.push(
            ctx.chat
                .post_system_to(conn, room.id, Some(audience.clone()), &note, ctx.now_ms)
                .await?,
        );
    }
    // The room as it now stands is known here (name from the patient upsert above, status just
    // set), so the frames need no second read.
    if !added.is_empty() {
        let frame = ServerFrame::Room { room: room.clone() };
        out.frames.push((Target::Users(added), frame));
    }
    out.frames
        .push((Target::Users(audience), ServerFrame::Room { room }));
    Ok(())
}
