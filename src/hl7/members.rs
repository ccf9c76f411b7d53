//! Membership that follows the ADT feed: practitioners named in PV1 and the unit care team of
//! the patient's location. Only members the feed added are ever removed by it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::apply::{Applied, ApplyError, Context};
use super::mapping::PractitionerKey;
use crate::chat::bus::Target;
use crate::chat::frames::{MemberChange, ServerFrame};
use crate::chat::model::MemberReason;
use crate::store::{parse_id, rooms, users};

/// Removes feed-managed members who are no longer named and adds those who now are; members
/// who joined for other reasons (invited, break-glass...) are never touched. Returns who was
/// added (they are sent the room after commit) and who the members are afterwards.
pub(super) async fn sync_members(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    room_id: Uuid,
    practitioners_changed: bool,
    team_out: &BTreeSet<Uuid>,
    desired: &BTreeMap<Uuid, MemberReason>,
    out: &mut Applied,
) -> Result<(Vec<Uuid>, Vec<Uuid>), ApplyError> {
    let current = rooms::member_reasons(conn, room_id).await?;
    let mut audience: BTreeSet<Uuid> = current.iter().map(|(u, _)| *u).collect();
    let practitioner_reasons = ["attending", "consulting", "admitting"];
    let mut removed = Vec::new();
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
                json!({"via": ctx.via, "user_id": user, "reason": reason}),
            ));
            audience.remove(user);
            removed.push(*user);
        }
    }
    let mut added = Vec::new();
    for (user, reason) in desired {
        if audience.contains(user) {
            continue;
        }
        if rooms::add_member(conn, room_id, *user, *reason, ctx.actor, ctx.now_ms).await? {
            out.audit.push(ctx.event(
                "room.member.add",
                "room",
                &room_id.to_string(),
                json!({"via": ctx.via, "user_id": user, "reason": reason.as_str()}),
            ));
            audience.insert(*user);
            added.push((*user, *reason));
        }
    }
    // The members are known here: frames go to them directly, without reading them again.
    let audience: Vec<Uuid> = audience.into_iter().collect();
    for user in &removed {
        let frame = ServerFrame::Member {
            room_id,
            user_id: *user,
            change: MemberChange::Removed,
            reason: None,
        };
        out.frames.push((Target::Users(audience.clone()), frame.clone()));
        out.frames.push((Target::Users(vec![*user]), frame));
    }
    for (user, reason) in &added {
        let frame = ServerFrame::Member {
            room_id,
            user_id: *user,
            change: MemberChange::Added,
            reason: Some(*reason),
        };
        out.frames.push((Target::Users(audience.clone()), frame));
    }
    Ok((added.into_iter().map(|(u, _)| u).collect(), audience))
}

/// User lookups for one group commit: the feed names the same practitioners and unit teams over
/// and over, and the users table does not change within a transaction of the feed's own.
#[derive(Default)]
pub struct Users(Mutex<HashMap<(bool, String), Option<Uuid>>>);

impl Users {
    async fn find(
        &self,
        conn: &mut AnyConnection,
        value: &str,
        by_npi: bool,
    ) -> Result<Option<Uuid>, ApplyError> {
        let key = (by_npi, value.to_string());
        if let Some(hit) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*hit);
        }
        let found = users::active_user_id(conn, value, by_npi)
            .await?
            .as_deref()
            .map(parse_id)
            .transpose()?;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, found);
        Ok(found)
    }
}

/// Prefix of a practitioner id that is a Wardline user id (used by events from the FHIR API,
/// whose participants are `Practitioner/{user id}` references).
pub const USER_ID_PREFIX: &str = "urn:wardline:user:";

pub(super) async fn practitioner(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Uuid>, ApplyError> {
    let cfg = ctx.cfg;
    // Events from the FHIR API name Wardline users directly.
    if let Some(user_id) = id.strip_prefix(USER_ID_PREFIX) {
        return Ok(users::active_user_by_id(conn, user_id)
            .await?
            .as_deref()
            .map(parse_id)
            .transpose()?);
    }
    match cfg.practitioners.get(id) {
        Some(username) => ctx.users.find(conn, username, false).await,
        None => {
            ctx.users
                .find(conn, id, cfg.practitioner_key == PractitionerKey::Npi)
                .await
        }
    }
}

pub(super) async fn unit_team(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    unit: &str,
    warnings: &mut Vec<String>,
) -> Result<BTreeSet<Uuid>, ApplyError> {
    let Some(names) = ctx.cfg.unit_teams.get(unit) else {
        warnings.push(format!("PV1-3.1: unit {unit} has no unit team in hl7.unit_teams"));
        return Ok(BTreeSet::new());
    };
    let mut team = BTreeSet::new();
    for name in names {
        match ctx.users.find(conn, name, false).await? {
            Some(id) => {
                team.insert(id);
            }
            None => warnings.push(format!(
                "hl7.unit_teams.{unit}: user {name} does not exist or is inactive"
            )),
        }
    }
    Ok(team)
}
