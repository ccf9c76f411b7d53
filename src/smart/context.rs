//! From the EHR's context to a room (SPEC §5 steps 5–6): find Wardline's record of the patient
//! (through the encounter's visit number, else the MRN), require the two-identifier match, make
//! sure the EHR's encounter is the patient's, create the encounter (and, for a patient Wardline
//! has never heard of, the patient) from the EHR's data when no ADT has arrived yet, and let the
//! clinician into the room.

use serde_json::{Value, json};
use uuid::Uuid;

use super::matching::{self, Identifier, Identity, Policy, Verdict};
use super::pages::LaunchError;
use super::patient::{ehr_identity, encounter_is_of};
use crate::auth::Principal;
use crate::fhir::input;
use crate::hl7::model::{Demographics, Patient};
use crate::http::AppState;
use crate::store::{fhir as q, parse_id, rooms};

/// How the room came to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// Wardline's record matched on these two identifiers.
    Matched([Identifier; 2]),
    /// Wardline had no record of the patient; it was created from the EHR's data.
    CreatedFromEhr,
}

/// The room to open.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The encounter's room.
    pub room_id: Uuid,
    /// Why it may open.
    pub basis: Basis,
    /// Whether the encounter was created from the EHR's data just now.
    pub encounter_created: bool,
}

fn ehr_data(e: impl std::fmt::Display) -> LaunchError {
    LaunchError::EhrData(format!("the EHR's data cannot be used: {e}"))
}

/// The visit number the EHR gives its encounter in `system`.
fn visit_number(encounter: &Value, system: &str) -> Option<String> {
    encounter["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"].as_str() == Some(system))
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

/// Opens the room for the EHR's `patient` (with EHR id `patient_id`) and `encounter`, as `who`.
pub async fn open(
    state: &AppState,
    who: &Principal,
    patient_id: &str,
    patient: &Value,
    encounter: Option<&Value>,
) -> Result<Opened, LaunchError> {
    let cfg = &state.config;
    let mrn_system = cfg.smart.mrn_system.as_deref().unwrap_or(&cfg.hl7.mrn_system);
    let visit_system = cfg.smart.visit_system.as_deref().unwrap_or(&cfg.hl7.visit_system);
    let ehr = ehr_identity(patient, mrn_system);
    if let Some(enc) = encounter
        && !encounter_is_of(enc, patient_id)
    {
        return Err(LaunchError::EncounterNotOfPatient);
    }
    let visit = match encounter {
        Some(enc) => Some(visit_number(enc, visit_system).ok_or_else(|| {
            ehr_data(format_args!(
                "the Encounter has no identifier with system {visit_system}"
            ))
        })?),
        None => None,
    };
    let our_encounter = match &visit {
        Some(number) => q::encounter_by_visit(&mut *state.store.read().await?, &cfg.hl7.visit_system, number)
            .await?
            .map(|e| e.row),
        None => None,
    };
    // Wardline's record: the patient of the encounter it already knows, else the MRN's holder.
    let ours = match (&our_encounter, &ehr.mrn) {
        (Some(e), _) => {
            find_patient(
                state,
                q::PatientQuery {
                    id: Some(e.patient_id.clone()),
                    ..Default::default()
                },
                ehr.mrn.as_deref(),
            )
            .await?
        }
        (None, Some(mrn)) => {
            find_patient(
                state,
                q::PatientQuery {
                    identifier_system: Some(cfg.hl7.mrn_system.clone()),
                    identifier_value: Some(mrn.clone()),
                    ..Default::default()
                },
                Some(mrn),
            )
            .await?
        }
        (None, None) => None,
    };
    let policy = Policy {
        name_as_second: cfg.smart.name_as_second,
    };
    let basis = match &ours {
        Some((_, identity)) => match matching::decide(&ehr, identity, policy) {
            Verdict::Match(ids) => Basis::Matched(ids),
            Verdict::Refuse(reason) => return Err(LaunchError::Mismatch(reason)),
        },
        // Wardline knows the encounter but not (any more) a patient with an MRN for it: refuse
        // rather than open a room without a comparison.
        None if our_encounter.is_some() => return Err(LaunchError::Mismatch(matching::Refusal::MrnMissing)),
        None => {
            // Nothing here to disagree with: the EHR's record becomes Wardline's, but only a
            // complete one (MRN and a second identifier), so a later ADT has something to match.
            match matching::decide(&ehr, &ehr, policy) {
                Verdict::Match(_) => Basis::CreatedFromEhr,
                Verdict::Refuse(reason) => return Err(LaunchError::Mismatch(reason)),
            }
        }
    };
    let mut encounter_created = false;
    let encounter_id = match (&our_encounter, encounter, &visit) {
        (Some(e), _, _) => e.id.clone(),
        (None, Some(enc), Some(number)) => {
            encounter_created = true;
            create_encounter(
                state,
                who,
                enc,
                number,
                &ehr,
                patient["gender"].as_str(),
                ours.as_ref().map(|(mrn, _)| mrn.as_str()),
            )
            .await?
        }
        _ => match &ours {
            Some((mrn, _)) => current_encounter(state, mrn).await?,
            None => return Err(LaunchError::NoRoom),
        },
    };
    let mut conn = state.store.read().await?;
    let room = rooms::room_for_encounter(&mut conn, &encounter_id)
        .await?
        .ok_or(LaunchError::NoRoom)?;
    let member = rooms::is_member(&mut *conn, room.id, who.user_id).await?;
    drop(conn);
    if !member && !cfg.smart.join_on_launch {
        return Err(LaunchError::NotMember);
    }
    let note = encounter_created.then_some(
        "Room opened from the EHR: this encounter's context came from the EHR; no ADT message has been received for it yet.",
    );
    state.chat.join_from_ehr(who, room.id, note).await?;
    Ok(Opened {
        room_id: room.id,
        basis,
        encounter_created,
    })
}

/// Wardline's patient for `query` (following a merge to the survivor): its MRN and identity.
async fn find_patient(
    state: &AppState,
    query: q::PatientQuery,
    prefer: Option<&str>,
) -> Result<Option<(String, Identity)>, LaunchError> {
    let mut conn = state.store.read().await?;
    let mut query = query;
    for _ in 0..4 {
        let Some(p) = q::patients(&mut conn, &query, None, q::Page { offset: 0, count: 1 })
            .await?
            .1
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        if let Some(survivor) = p.row.merged_into.clone() {
            query = q::PatientQuery {
                id: Some(survivor),
                ..Default::default()
            };
            continue;
        }
        // A survivor of a merge holds several MRNs: the EHR's, if it is one of them, is ours.
        let mrns = q::identifiers_in(&mut conn, &p.row.id, &state.config.hl7.mrn_system).await?;
        let mrn = match prefer {
            Some(m) if mrns.iter().any(|x| x == m) => Some(m.to_string()),
            _ => mrns.into_iter().next(),
        };
        let identity = Identity {
            mrn: mrn.clone(),
            birth_date: p.row.birth_date.clone(),
            family: p.row.family_name.clone(),
            given: p.row.given_name.clone(),
        };
        return Ok(mrn.map(|m| (m, identity)));
    }
    Ok(None)
}

/// The newest in-progress encounter of the patient holding `mrn` (a launch without encounter
/// context).
async fn current_encounter(state: &AppState, mrn: &str) -> Result<String, LaunchError> {
    let cfg = &state.config.hl7;
    let mut conn = state.store.read().await?;
    let patient = q::patient_by_identifier(&mut conn, &cfg.mrn_system, mrn)
        .await?
        .ok_or(LaunchError::NoRoom)?;
    let query = q::EncounterQuery {
        patient_id: Some(patient.row.id),
        status: Some("in-progress".into()),
        ..Default::default()
    };
    q::encounters(
        &mut conn,
        &query,
        None,
        q::Page {
            offset: 0,
            count: 200,
        },
    )
    .await?
    .1
    .into_iter()
    .next_back()
    .map(|e| e.row.id)
    .ok_or(LaunchError::NoRoom)
}

/// Creates the encounter (and the patient when `known_mrn` is absent) from the EHR's data through
/// the ADT event table, as an ADT feed would have; returns the encounter id.
async fn create_encounter(
    state: &AppState,
    who: &Principal,
    encounter: &Value,
    visit: &str,
    ehr: &Identity,
    gender: Option<&str>,
    known_mrn: Option<&str>,
) -> Result<String, LaunchError> {
    let cfg = &state.config.hl7;
    // Only what identifies the visit: the EHR's practitioner ids and locations mean nothing here.
    let wanted = json!({
        "resourceType": "Encounter",
        "identifier": [{"system": cfg.visit_system, "value": visit}],
        "status": encounter["status"],
        "class": encounter["class"],
        "subject": {"reference": "Patient/ehr"},
        "period": encounter["period"],
    });
    let wanted = input::encounter(&wanted, &cfg.visit_system).map_err(ehr_data)?;
    let triggers = input::encounter_events(&wanted, None).map_err(ehr_data)?;
    let patient = match known_mrn {
        Some(mrn) => Patient {
            mrn: mrn.to_string(),
            other_ids: Vec::new(),
            demographics: Demographics::default(),
        },
        None => Patient {
            mrn: ehr
                .mrn
                .clone()
                .ok_or_else(|| ehr_data("the Patient has no MRN"))?,
            other_ids: Vec::new(),
            demographics: Demographics {
                family: ehr.family.clone(),
                given: ehr.given.clone(),
                birth_date: ehr.birth_date.clone(),
                sex: gender
                    .filter(|g| ["male", "female", "other", "unknown"].contains(g))
                    .map(str::to_string),
            },
        },
    };
    let events = input::adt_events(&triggers, &wanted, &patient, state.clock.now());
    let outcome = state
        .hl7
        .apply_direct(&events, Some(who.user_id), who.source.as_deref(), "smart")
        .await
        .map_err(|e| match e {
            crate::error::Error::Invalid(msg) => ehr_data(msg),
            other => LaunchError::Internal(other),
        })?;
    let id = outcome.encounter_id.ok_or(LaunchError::NoRoom)?;
    parse_id(&id)?;
    Ok(id)
}
