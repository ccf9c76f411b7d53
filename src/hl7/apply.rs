//! Carries out one ADT event inside the caller's transaction: patient upsert or merge, the
//! encounter decided by [`super::adt::plan`], its room, membership and system message. What must
//! reach clients after commit (messages, frames) and the audit events are returned, not sent.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::adt::{self, Decision, EncounterPlan, Practitioners, RoomAction, Timing};
use super::mapping::{Hl7Config, PractitionerKey};
use super::message::{Adt, Problem, Trigger};
use crate::audit::Event;
use crate::chat::Chat;
use crate::chat::bus::Target;
use crate::chat::frames::{MemberChange, ServerFrame};
use crate::chat::model::{MemberReason, Message, Room, RoomKind, RoomStatus, from_ms};
use crate::error::Error;
use crate::store::patients::{self, PatientRow};
use crate::store::{encounters, parse_id, rooms, users};

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
}

impl Context<'_> {
    fn event(&self, action: &str, entity: &str, id: &str, detail: serde_json::Value) -> Event {
        Event::new(self.actor, action, entity, Some(id.to_string()))
            .from_source(self.source)
            .with_detail(detail)
    }
}

fn full_name(p: &PatientRow) -> String {
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

async fn upsert_patient(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    adt: &Adt,
    out: &mut Applied,
) -> Result<Option<PatientRow>, ApplyError> {
    let cfg = ctx.cfg;
    let at = adt.event_at.timestamp_millis();
    let mut found = patients::patient_by_identifier(conn, &cfg.mrn_system, &adt.patient.mrn).await?;
    let writes_demographics = matches!(
        adt.trigger,
        Trigger::A01 | Trigger::A04 | Trigger::A05 | Trigger::A08 | Trigger::A31 | Trigger::A40
    );
    let d = &adt.patient.demographics;
    let row = match found.take() {
        Some(p) if p.merged_into.is_some() => {
            out.warnings.push(
                "PID-3: the MRN belongs to a patient merged into another; the survivor was used".into(),
            );
            let survivor = p.merged_into.clone().unwrap_or_default();
            let row: Option<PatientRow> = patients_by_id(conn, &survivor).await?;
            row.unwrap_or(p)
        }
        Some(p) => p,
        None if writes_demographics => {
            let row = PatientRow {
                id: Uuid::now_v7().to_string(),
                family_name: d.family.clone(),
                given_name: d.given.clone(),
                birth_date: d.birth_date.clone(),
                sex: d.sex.clone(),
                merged_into: None,
                demographics_at: Some(at),
            };
            patients::save_patient(conn, &row, ctx.now_ms).await?;
            patients::add_identifier(conn, &cfg.mrn_system, &adt.patient.mrn, &row.id).await?;
            add_other_ids(conn, adt, &row.id, out).await?;
            out.audit
                .push(ctx.event("patient.create", "patient", &row.id, json!({"via": "hl7"})));
            out.patient_id = Some(row.id.clone());
            return Ok(Some(row));
        }
        None => return Ok(None),
    };
    out.patient_id = Some(row.id.clone());
    if writes_demographics && adt::demographics_win(row.demographics_at, at) {
        let next = PatientRow {
            family_name: d.family.clone().or(row.family_name.clone()),
            given_name: d.given.clone().or(row.given_name.clone()),
            birth_date: d.birth_date.clone().or(row.birth_date.clone()),
            sex: d.sex.clone().or(row.sex.clone()),
            demographics_at: Some(at),
            ..row.clone()
        };
        let changed = (&next.family_name, &next.given_name, &next.birth_date, &next.sex)
            != (&row.family_name, &row.given_name, &row.birth_date, &row.sex);
        patients::save_patient(conn, &next, ctx.now_ms).await?;
        add_other_ids(conn, adt, &row.id, out).await?;
        if changed {
            rooms::rename_patient_rooms(conn, &row.id, &full_name(&next)).await?;
            out.audit
                .push(ctx.event("patient.update", "patient", &row.id, json!({"via": "hl7"})));
        }
        return Ok(Some(next));
    } else if writes_demographics {
        out.warnings
            .push("PID: demographics older than those held were not applied".into());
    }
    Ok(Some(row))
}

async fn patients_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<PatientRow>, ApplyError> {
    Ok(patients::patient_by_id(conn, id).await?)
}

async fn add_other_ids(
    conn: &mut AnyConnection,
    adt: &Adt,
    patient_id: &str,
    out: &mut Applied,
) -> Result<(), ApplyError> {
    for (authority, kind, value) in &adt.patient.other_ids {
        let system = format!("urn:wardline:hl7:{authority}:{kind}");
        let ok = patients::add_identifier(conn, &system, value, patient_id).await?;
        if !ok && !patients::identifier_is(conn, &system, value, patient_id).await? {
            out.warnings.push(format!(
                "PID-3: an identifier of type {kind} already belongs to another patient"
            ));
        }
    }
    Ok(())
}

async fn merge(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    adt: &Adt,
    survivor: &PatientRow,
    out: &mut Applied,
) -> Result<(), ApplyError> {
    let prior_mrn = adt.prior_mrn.as_deref().unwrap_or_default();
    let Some(prior) = patients::patient_by_identifier(conn, &ctx.cfg.mrn_system, prior_mrn).await? else {
        return Err(ApplyError::Problem(Problem {
            code: "204",
            location: Some(("MRG".into(), 1, 1)),
            reason: "MRG-1 names no patient known to Wardline".into(),
        }));
    };
    if prior.id == survivor.id || prior.merged_into.as_deref() == Some(survivor.id.as_str()) {
        out.warnings
            .push("MRG-1: already merged into this patient".into());
        return Ok(());
    }
    let (ids, moved) = patients::merge_into(conn, &prior.id, &survivor.id, ctx.now_ms).await?;
    let merge_id = Uuid::now_v7().to_string();
    patients::record_merge(
        conn,
        &merge_id,
        (&survivor.id, &prior.id),
        (&ids, &moved),
        Some(ctx.inbox_id),
        ctx.now_ms,
    )
    .await?;
    rooms::rename_patient_rooms(conn, &survivor.id, &full_name(survivor)).await?;
    for enc in &moved {
        if let Some(room) = rooms::room_for_encounter(conn, enc).await? {
            let note = "Patient records merged: this encounter now belongs to the surviving record.";
            out.messages
                .push(ctx.chat.post_system(conn, room.id, note, ctx.now_ms).await?);
        }
    }
    out.audit.push(ctx.event(
        "patient.merge",
        "patient",
        &survivor.id,
        json!({"via": "hl7", "prior_id": prior.id, "merge_id": merge_id, "encounters": moved.len()}),
    ));
    Ok(())
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
        json!({"via": "hl7", "trigger": trigger}),
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
            json!({"via": "hl7", "kind": "patient_encounter", "encounter_id": next.id}),
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
    let Some(room) = room else {
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
        rooms::set_lifecycle(conn, room.id, status, (ro, ar), ctx.now_ms).await?;
        if status != room.status.as_str() {
            out.audit.push(ctx.event(
                "room.status",
                "room",
                &room.id.to_string(),
                json!({"via": "hl7", "status": status}),
            ));
        }
    }
    let mut desired: BTreeMap<Uuid, MemberReason> = BTreeMap::new();
    if practitioners_changed {
        let named = Practitioners::from_json(&next.practitioners);
        for (field, ids, reason) in [
            ("PV1-9", &named.consulting, MemberReason::Consulting),
            ("PV1-17", &named.admitting, MemberReason::Admitting),
            ("PV1-7", &named.attending, MemberReason::Attending),
        ] {
            for id in ids {
                match practitioner(ctx.cfg, conn, id).await? {
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
            team_out = unit_team(ctx.cfg, conn, from, &mut Vec::new()).await?;
        }
        if let Some(to) = to {
            for user in unit_team(ctx.cfg, conn, to, &mut out.warnings).await? {
                team_out.remove(&user);
                desired.entry(user).or_insert(MemberReason::UnitTeam);
            }
        }
    }
    let added = sync_members(
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
        out.messages
            .push(ctx.chat.post_system(conn, room.id, &note, ctx.now_ms).await?);
    }
    if let Some(room) = rooms::room_by_id(&mut *conn, room.id).await? {
        if !added.is_empty() {
            let frame = ServerFrame::Room { room: room.clone() };
            out.frames.push((Target::Users(added), frame));
        }
        out.frames
            .push((Target::Room(room.id), ServerFrame::Room { room }));
    }
    Ok(())
}

/// Removes feed-managed members who are no longer named and adds those who now are; members
/// who joined for other reasons (invited, break-glass...) are never touched. Returns who was
/// added (they are sent the room after commit).
async fn sync_members(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    room_id: Uuid,
    practitioners_changed: bool,
    team_out: &BTreeSet<Uuid>,
    desired: &BTreeMap<Uuid, MemberReason>,
    out: &mut Applied,
) -> Result<Vec<Uuid>, ApplyError> {
    let mut added = Vec::new();
    let current = rooms::member_reasons(conn, room_id).await?;
    let practitioner_reasons = ["attending", "consulting", "admitting"];
    for (user, reason) in &current {
        if desired.contains_key(user) {
            continue;
        }
        let stale_practitioner = practitioners_changed && practitioner_reasons.contains(&reason.as_str());
        let left_unit = reason == "unit_team" && team_out.contains(user);
        if (stale_practitioner || left_unit) && rooms::remove_member(conn, room_id, *user).await? {
            out.audit.push(ctx.event(
                "room.member.remove",
                "room",
                &room_id.to_string(),
                json!({"via": "hl7", "user_id": user, "reason": reason}),
            ));
            let frame = ServerFrame::Member {
                room_id,
                user_id: *user,
                change: MemberChange::Removed,
                reason: None,
            };
            out.frames.push((Target::Room(room_id), frame.clone()));
            out.frames.push((Target::Users(vec![*user]), frame));
        }
    }
    for (user, reason) in desired {
        if rooms::add_member(conn, room_id, *user, *reason, ctx.actor, ctx.now_ms).await? {
            out.audit.push(ctx.event(
                "room.member.add",
                "room",
                &room_id.to_string(),
                json!({"via": "hl7", "user_id": user, "reason": reason.as_str()}),
            ));
            out.frames.push((
                Target::Room(room_id),
                ServerFrame::Member {
                    room_id,
                    user_id: *user,
                    change: MemberChange::Added,
                    reason: Some(*reason),
                },
            ));
            added.push(*user);
        }
    }
    Ok(added)
}

async fn practitioner(
    cfg: &Hl7Config,
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Uuid>, ApplyError> {
    let found = match cfg.practitioners.get(id) {
        Some(username) => users::active_user_id(conn, username, false).await?,
        None => users::active_user_id(conn, id, cfg.practitioner_key == PractitionerKey::Npi).await?,
    };
    Ok(found.as_deref().map(parse_id).transpose()?)
}

async fn unit_team(
    cfg: &Hl7Config,
    conn: &mut AnyConnection,
    unit: &str,
    warnings: &mut Vec<String>,
) -> Result<BTreeSet<Uuid>, ApplyError> {
    let Some(names) = cfg.unit_teams.get(unit) else {
        warnings.push(format!("PV1-3.1: unit {unit} has no unit team in hl7.unit_teams"));
        return Ok(BTreeSet::new());
    };
    let mut team = BTreeSet::new();
    for name in names {
        match users::active_user_id(conn, name, false).await? {
            Some(id) => {
                team.insert(parse_id(&id)?);
            }
            None => warnings.push(format!(
                "hl7.unit_teams.{unit}: user {name} does not exist or is inactive"
            )),
        }
    }
    Ok(team)
}
