//! `wardline demo`: a database filled with the synthetic fixtures in `fixtures/demo.json` (embedded
//! in the binary, so the demo runs from anywhere), and a fresh token for every demo user.

pub mod ehr;
pub mod mock_ehr;

use std::collections::HashMap;

use anyhow::Context;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{self, Principal, Role};
use crate::chat::model::{MemberReason, Priority, RoomKind};
use crate::chat::{Chat, Draft};
use crate::store::patients::{self, NewEncounter, NewPatient};
use crate::store::users::{self, UserRecord};
use crate::store::{Store, rooms};

const FIXTURES: &str = include_str!("../../fixtures/demo.json");

#[derive(Deserialize)]
struct Fixtures {
    mrn_system: String,
    visit_system: String,
    #[serde(default)]
    unit_teams: std::collections::BTreeMap<String, Vec<String>>,
    users: Vec<FxUser>,
    patients: Vec<FxPatient>,
    rooms: Vec<FxRoom>,
    messages: Vec<FxMessage>,
}

#[derive(Deserialize)]
struct FxUser {
    username: String,
    display_name: String,
    kind: String,
    roles: Vec<String>,
    npi: Option<String>,
}

#[derive(Deserialize)]
struct FxPatient {
    mrn: String,
    family: String,
    given: String,
    birth_date: String,
    sex: String,
    encounters: Vec<FxEncounter>,
}

#[derive(Deserialize)]
struct FxEncounter {
    visit_number: String,
    class: String,
    status: String,
    unit: Option<String>,
    room: Option<String>,
    bed: Option<String>,
}

#[derive(Deserialize)]
struct FxRoom {
    key: String,
    kind: RoomKind,
    name: String,
    encounter: Option<String>,
    role_key: Option<String>,
    members: Vec<(String, MemberReason)>,
}

#[derive(Deserialize)]
struct FxMessage {
    room: String,
    from: String,
    priority: Priority,
    body: String,
}

/// Points the HL7 mapping at the demo's identifier systems and unit teams, so the messages in
/// `fixtures/hl7/` apply to the demo patients (explicit configuration wins).
pub fn configure(cfg: &mut crate::config::Config) -> anyhow::Result<()> {
    let fx: Fixtures = serde_json::from_str(FIXTURES).context("embedded demo fixtures")?;
    let defaults = crate::hl7::Hl7Config::default();
    if cfg.hl7.mrn_system == defaults.mrn_system {
        cfg.hl7.mrn_system = fx.mrn_system;
    }
    if cfg.hl7.visit_system == defaults.visit_system {
        cfg.hl7.visit_system = fx.visit_system;
    }
    if cfg.hl7.unit_teams.is_empty() {
        cfg.hl7.unit_teams = fx.unit_teams;
    }
    Ok(())
}

/// A demo user and the token just issued for them.
pub struct DemoLogin {
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Roles, comma-separated.
    pub roles: String,
    /// Bearer token.
    pub token: String,
}

/// Loads the fixtures unless the database already has users, then issues one token per demo user.
pub async fn load(store: &Store, chat: &Chat, now_ms: i64) -> anyhow::Result<Vec<DemoLogin>> {
    let fx: Fixtures = serde_json::from_str(FIXTURES).context("parsing fixtures/demo.json")?;
    if users::list_users(&mut *store.read().await?).await?.is_empty() {
        seed(store, chat, &fx, now_ms).await?;
    }
    let mut logins = Vec::new();
    let mut tx = store.begin().await?;
    for u in &fx.users {
        let Some(user) = users::user_by_username(&mut *store.read().await?, &u.username).await? else {
            continue;
        };
        let (_, token) = auth::issue_token(&mut tx, user.id, "demo", now_ms, None, &[]).await?;
        logins.push(DemoLogin {
            username: user.username,
            display_name: user.display_name,
            roles: user.roles.join(","),
            token,
        });
    }
    tx.commit().await?;
    Ok(logins)
}

async fn seed(store: &Store, chat: &Chat, fx: &Fixtures, now: i64) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let mut user_ids = HashMap::new();
    let mut principals = HashMap::new();
    for u in &fx.users {
        let rec = UserRecord {
            id: Uuid::now_v7(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            kind: u.kind.clone(),
            roles: u.roles.clone(),
            npi: u.npi.clone(),
            active: true,
        };
        users::insert_user(&mut tx, &rec, now).await?;
        user_ids.insert(u.username.clone(), rec.id);
        principals.insert(
            u.username.clone(),
            Principal {
                user_id: rec.id,
                username: rec.username.clone(),
                display_name: rec.display_name.clone(),
                roles: u.roles.iter().filter_map(|r| Role::parse(r).ok()).collect(),
                fhir: crate::fhir::scopes::Grant::default(),
                token_id: Uuid::nil(),
                source: Some("demo-fixtures".into()),
            },
        );
    }
    let mut encounters = HashMap::new();
    for p in &fx.patients {
        let patient_id = Uuid::now_v7();
        let np = NewPatient {
            id: patient_id,
            family: &p.family,
            given: &p.given,
            birth_date: &p.birth_date,
            sex: &p.sex,
            mrn_system: &fx.mrn_system,
            mrn: &p.mrn,
        };
        patients::insert_patient(&mut tx, &np, now).await?;
        for e in &p.encounters {
            let id = Uuid::now_v7();
            let ne = NewEncounter {
                id,
                patient_id,
                visit_system: &fx.visit_system,
                visit_number: &e.visit_number,
                class: &e.class,
                status: &e.status,
                unit: e.unit.as_deref(),
                room: e.room.as_deref(),
                bed: e.bed.as_deref(),
                admitted_at: Some(now),
            };
            patients::insert_encounter(&mut tx, &ne, now).await?;
            encounters.insert(e.visit_number.clone(), id);
        }
    }
    let mut room_ids = HashMap::new();
    for r in &fx.rooms {
        let id = Uuid::now_v7();
        let new = rooms::NewRoom {
            id,
            kind: r.kind,
            name: &r.name,
            encounter_id: r.encounter.as_ref().and_then(|v| encounters.get(v).copied()),
            role_key: r.role_key.as_deref(),
            direct_key: None,
            created_by: None,
        };
        rooms::insert_room(&mut tx, &new, now).await?;
        for (username, reason) in &r.members {
            let uid = *user_ids
                .get(username)
                .with_context(|| format!("unknown fixture user {username}"))?;
            rooms::add_member(&mut tx, id, uid, *reason, None, now).await?;
        }
        room_ids.insert(r.key.clone(), id);
    }
    tx.commit().await?;
    for m in &fx.messages {
        let who = principals
            .get(&m.from)
            .with_context(|| format!("unknown fixture user {}", m.from))?;
        let room_id = *room_ids
            .get(&m.room)
            .with_context(|| format!("unknown fixture room {}", m.room))?;
        let draft = Draft {
            room_id,
            body: m.body.clone(),
            priority: m.priority,
            idempotency_key: None,
            confirm_dlp: true,
            attachment_ids: Vec::new(),
        };
        chat.send(who, draft).await?;
    }
    Ok(())
}

/// Puts the demo cardiology service on call around `now`: Dr. Osei holds tier 1 for the next
/// eleven hours, then Dr. Lindqvist; each backs the other up on tier 2. Skipped when a roster
/// exists (a reused demo directory).
pub async fn seed_roster(
    oncall: &crate::oncall::Oncall,
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    use crate::oncall::roster::ShiftIn;
    if crate::store::oncall::service_exists(&mut *store.read().await?, "cardiology").await? {
        return Ok(());
    }
    let Some(scheduler) = users::user_by_username(&mut *store.read().await?, "sched.cardio").await? else {
        return Ok(());
    };
    let hour = chrono::Duration::hours(1);
    let start = now - hour;
    let shift = |tier, from: i32, to: i32, who: &str| ShiftIn {
        service: "cardiology".into(),
        tier,
        start: start + hour * from,
        end: start + hour * to,
        practitioner: who.into(),
    };
    let shifts = vec![
        shift(1, 0, 12, "dr.osei"),
        shift(1, 12, 24, "dr.lindqvist"),
        shift(2, 0, 12, "dr.lindqvist"),
        shift(2, 12, 24, "dr.osei"),
    ];
    let who = Principal {
        user_id: scheduler.id,
        username: scheduler.username,
        display_name: scheduler.display_name,
        roles: vec![Role::Scheduler],
        fhir: crate::fhir::scopes::Grant::default(),
        token_id: Uuid::nil(),
        source: Some("demo-fixtures".into()),
    };
    oncall.upload(&who, shifts).await?;
    Ok(())
}
