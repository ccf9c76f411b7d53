//! Patient and Encounter writes through the ADT event table: a Patient upsert is the A31 an HL7
//! feed would send, an Encounter write becomes the A01/A02/A03/A04/A05/A06/A07/A08/A11/A13 events
//! that turn the stored encounter into the one written (`input::encounter_events`), applied in
//! one transaction by `Hl7::apply_direct`. Rooms, membership and system messages follow exactly
//! as for HL7.

use axum::http::StatusCode;
use serde_json::Value;
use wardline_fhir_wire::Kind;

use super::http::find_by_id;
use super::input;
use super::outcome::{FhirError, FhirResult};
use super::request::FhirRequest;
use super::scopes::Context;
use super::write::Written;
use crate::error::Error;
use crate::hl7::model::{Adt, Demographics, Patient, Trigger};
use crate::http::AppState;
use crate::store::fhir as q;

fn unprocessable(msg: impl Into<String>) -> FhirError {
    FhirError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", msg)
}

/// Patient create (upsert by MRN) or update of `id`.
pub async fn patient(
    state: &AppState,
    req: &FhirRequest,
    v: &Value,
    id: Option<&str>,
) -> FhirResult<Written> {
    let mrn_system = &state.config.hl7.mrn_system;
    let patient = input::patient(v, mrn_system)?;
    let mut conn = state.store.read().await?;
    let holder = q::patient_by_identifier(&mut conn, mrn_system, &patient.mrn).await?;
    if let Some(id) = id {
        if q::identifier_of(&mut conn, id, mrn_system).await?.is_none() {
            return Err(FhirError::not_found("Patient", id));
        }
        if holder.as_ref().map(|h| h.row.id.as_str()) != Some(id) {
            return Err(unprocessable(
                "Patient.identifier: the MRN is not this patient's; a change of MRN is a merge",
            ));
        }
    }
    drop(conn);
    let event = Adt {
        trigger: Trigger::A31,
        event_at: state.clock.now(),
        patient,
        visit: None,
        prior_mrn: None,
    };
    let outcome = state
        .hl7
        .apply_direct(&[event], Some(req.who.user_id), req.who.source.as_deref(), "fhir")
        .await?;
    let pid = outcome
        .patient_id
        .ok_or_else(|| FhirError::from(Error::Internal("upsert gave no patient".into())))?;
    Ok(Written {
        resource: find_by_id(state, req, Kind::Patient, Context::System, &pid).await?,
        created: holder.is_none(),
        outcome: None,
    })
}

/// Encounter create or update of `id`.
pub async fn encounter(
    state: &AppState,
    req: &FhirRequest,
    v: &Value,
    id: Option<&str>,
) -> FhirResult<Written> {
    let cfg = &state.config.hl7;
    let wanted = input::encounter(v, &cfg.visit_system)?;
    let mut conn = state.store.read().await?;
    let mrn = q::identifier_of(&mut conn, &wanted.patient_id, &cfg.mrn_system)
        .await?
        .ok_or_else(|| unprocessable("Encounter.subject names no patient known here"))?;
    let current = q::encounter_by_visit(&mut conn, &cfg.visit_system, &wanted.visit_number).await?;
    if let Some(id) = id {
        match &current {
            Some(c) if c.row.id == id => {}
            Some(_) => {
                return Err(unprocessable(
                    "Encounter.identifier: the visit number belongs to another encounter",
                ));
            }
            None if q::encounters(
                &mut conn,
                &q::EncounterQuery {
                    id: Some(id.into()),
                    ..Default::default()
                },
                None,
                q::Page { offset: 0, count: 1 },
            )
            .await?
            .0 == 0 =>
            {
                return Err(FhirError::not_found("Encounter", id));
            }
            None => {
                return Err(unprocessable(
                    "Encounter.identifier: the visit number cannot change",
                ));
            }
        }
    }
    if let Some(c) = &current
        && c.row.patient_id != wanted.patient_id
    {
        return Err(unprocessable(
            "Encounter.subject cannot change; move encounters with a patient merge",
        ));
    }
    drop(conn);
    let triggers = input::encounter_events(&wanted, current.as_ref().map(|c| &c.row))?;
    // Demographics stay as held: an Encounter write changes the visit, not the person.
    let patient = Patient {
        mrn,
        other_ids: Vec::new(),
        demographics: Demographics::default(),
    };
    let events = input::adt_events(&triggers, &wanted, &patient, state.clock.now());
    let outcome = state
        .hl7
        .apply_direct(&events, Some(req.who.user_id), req.who.source.as_deref(), "fhir")
        .await?;
    let eid = outcome
        .encounter_id
        .ok_or_else(|| FhirError::from(Error::Internal("no encounter applied".into())))?;
    Ok(Written {
        resource: find_by_id(state, req, Kind::Encounter, Context::System, &eid).await?,
        created: current.is_none(),
        outcome: None,
    })
}
