//! Membership that follows the ADT feed: practitioners named in PV1 and the unit care team of
//! the patient's location. Only members the feed added are ever removed by it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::apply::{Applied, ApplyError, Context};
use super::mapping::{Hl7Config, PractitionerKey};
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
    let leaving: Vec<(Uuid, &str)> = current
        .iter()
        .filter(|(user, reason)| {
            let stale_practitioner = practitioners_changed && practitioner_reasons.contains(&reason.as_str());
            let left_unit = reason == "unit_team" && team_out.contains(user);
            !desired.contains_key(user) && (stale_practitioner || left_unit)
        })
        .map(|(user, reason)| (*user, reason.as_str()))
        .collect();
    let ids: Vec<Uuid> = leaving.iter().map(|(u, _)| *u).collect();
    let gone: BTreeSet<Uuid> = rooms::remove_members(conn, room_id, &ids)
        .await?
        .into_iter()
        .collect();
    let mut removed = Vec::new();
    for (user, reason) in leaving.into_iter().filter(|(u, _)| gone.contains(u)) {
        out.audit.push(ctx.event(
            "room.member.remove",
            "room",
            &room_id.to_string(),
            json!({"via": ctx.via, "user_id": user, "reason": reason}),
        ));
        audience.remove(&user);
        removed.push(user);
    }
    let joining: Vec<(Uuid, MemberReason)> = desired
        .iter()
        .filter(|(user, _)| !audience.contains(user))
        .map(|(u, r)| (*u, *r))
        .collect();
    let new: BTreeSet<Uuid> = rooms::add_members(conn, room_id, &joining, ctx.actor, ctx.now_ms)
        .await?
        .into_iter()
        .collect();
    let mut added = Vec::new();
    for (user, reason) in joining.into_iter().filter(|(u, _)| new.contains(u)) {
        out.audit.push(ctx.event(
            "room.member.add",
            "room",
            &room_id.to_string(),
            json!({"via": ctx.via, "user_id": user, "reason": reason.as_str()}),
        ));
        audience.insert(user);
        added.push((user, reason));
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
    /// Looks up, in one statement, every name not yet known (usernames, and NPIs when
    /// `by_npi`), so the lookups that follow are answered from memory; a name not found is
    /// remembered as absent.
    async fn prefetch(
        &self,
        conn: &mut AnyConnection,
        usernames: &[&str],
        npis: &[&str],
    ) -> Result<(), ApplyError> {
        let unknown = |names: &[&str], by_npi: bool| -> Vec<String> {
            let known = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let mut v: Vec<String> = names
                .iter()
                .filter(|n| !known.contains_key(&(by_npi, n.to_string())))
                .map(|n| n.to_string())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let (usernames, npis) = (unknown(usernames, false), unknown(npis, true));
        if usernames.is_empty() && npis.is_empty() {
            return Ok(());
        }
        let u: Vec<&str> = usernames.iter().map(String::as_str).collect();
        let n: Vec<&str> = npis.iter().map(String::as_str).collect();
        let found = users::active_by_names(conn, &u, &n).await?;
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for name in usernames {
            let hit = found.iter().find(|(_, un, _)| *un == name);
            known.insert((false, name), hit.map(|(id, _, _)| parse_id(id)).transpose()?);
        }
        for npi in npis {
            let hit = found.iter().find(|(_, _, n)| n.as_deref() == Some(npi.as_str()));
            known.insert((true, npi), hit.map(|(id, _, _)| parse_id(id)).transpose()?);
        }
        Ok(())
    }

    async fn find(
        &self,
        conn: &mut AnyConnection,
        value: &str,
        by_npi: bool,
    ) -> Result<Option<Uuid>, ApplyError> {
        let key = (by_npi, value.to_string());
        let cached = |users: &Self| {
            users
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .copied()
        };
        if let Some(hit) = cached(self) {
            return Ok(hit);
        }
        let (usernames, npis) = if by_npi {
            (vec![], vec![value])
        } else {
            (vec![value], vec![])
        };
        self.prefetch(conn, &usernames, &npis).await?;
        Ok(cached(self).flatten())
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
    let (by_npi, value) = lookup_key(cfg, id);
    ctx.users.find(conn, value, by_npi).await
}

/// How a practitioner id from the feed is looked up: through the configured id → username map,
/// else by NPI or username as `hl7.practitioner_key` says. Returns `(by_npi, value)`.
fn lookup_key<'a>(cfg: &'a Hl7Config, id: &'a str) -> (bool, &'a str) {
    match cfg.practitioners.get(id) {
        Some(username) => (false, username),
        None => (cfg.practitioner_key == PractitionerKey::Npi, id),
    }
}

/// Reads every user an event's practitioners and units may name in one statement, before the
/// per-name lookups of [`practitioner`] and [`unit_team`].
pub(super) async fn prefetch(
    ctx: &Context<'_>,
    conn: &mut AnyConnection,
    practitioners: &[&String],
    units: &[&String],
) -> Result<(), ApplyError> {
    let cfg = ctx.cfg;
    let mut usernames: Vec<&str> = Vec::new();
    let mut npis: Vec<&str> = Vec::new();
    for id in practitioners.iter().filter(|id| !id.starts_with(USER_ID_PREFIX)) {
        match lookup_key(cfg, id) {
            (true, npi) => npis.push(npi),
            (false, username) => usernames.push(username),
        }
    }
    for unit in units {
        if let Some(names) = cfg.unit_teams.get(unit.as_str()) {
            usernames.extend(names.iter().map(String::as_str));
        }
    }
    ctx.users.prefetch(conn, &usernames, &npis).await
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
