//! `POST [base]` with a `transaction` Bundle (SPEC §4, §7), applied all or nothing: either
//! Patient and Encounter creates — turned into one list of ADT events and applied by the event
//! table in a single database transaction (an Encounter may reference a Patient of the same
//! Bundle by its `fullUrl`) — or PractitionerRole creates, which replace on-call periods.
//! Other mixes are refused with 422 naming the entry.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use wardline_fhir_wire::{Kind, from_wire};

use super::input;
use super::outcome::{FhirError, FhirResult, fhir_response};
use super::request::FhirRequest;
use super::scopes::Op;
use crate::error::Error;
use crate::hl7::model::{Adt, Demographics, Patient, Trigger};
use crate::http::AppState;
use crate::store::fhir as q;

fn unprocessable(msg: impl Into<String>) -> FhirError {
    FhirError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", msg)
}

/// `POST [base]`.
pub async fn transaction(
    State(state): State<AppState>,
    req: FhirRequest,
    headers: HeaderMap,
    bytes: Bytes,
) -> FhirResult<Response> {
    let event = req.who.event("fhir.transaction", "Bundle", "-");
    let result = async {
        super::write::check_media_type(&headers)?;
        let bundle = from_wire(Kind::Bundle, &bytes)?;
        if bundle["type"].as_str() != Some("transaction") {
            return Err(FhirError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "POST [base] takes a Bundle of type transaction",
            ));
        }
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            return Err(unprocessable("the transaction has no entries"));
        }
        for (i, e) in entries.iter().enumerate() {
            if e["request"]["method"].as_str() != Some("POST") {
                return Err(unprocessable(format!("Bundle.entry[{i}]: only POST (create) entries are supported")));
            }
        }
        let types: Vec<&str> = entries.iter().map(|e| e["resource"]["resourceType"].as_str().unwrap_or("")).collect();
        if types.iter().all(|t| *t == "PractitionerRole") {
            req.allowed(Kind::PractitionerRole, Op::Create)?;
            super::write_roster::replace_periods(&state, &req, &entries).await
        } else if let Some(i) = types.iter().position(|t| *t != "Patient" && *t != "Encounter") {
            Err(unprocessable(format!(
                "Bundle.entry[{i}]: a transaction holds Patient and Encounter creates, or PractitionerRole creates"
            )))
        } else {
            adt(&state, &req, &entries).await
        }
    }
    .await;
    match result {
        Ok(body) => {
            state.audit.record(event).await?;
            Ok(fhir_response(StatusCode::OK, body))
        }
        Err(e) => {
            state.audit.record(event.failed()).await?;
            Err(e)
        }
    }
}

/// Patient and Encounter creates as one run of the ADT event table.
async fn adt(state: &AppState, req: &FhirRequest, entries: &[Value]) -> FhirResult<Value> {
    let cfg = &state.config.hl7;
    let mut conn = state.store.read().await?;
    let now = state.clock.now();
    let mut events = Vec::new();
    // fullUrl (and Patient/{id}) of the Bundle's patients → their MRN.
    let mut in_bundle: HashMap<String, String> = HashMap::new();
    let mut answers = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let r = &e["resource"];
        let at = |err: FhirError| unprocessable(format!("Bundle.entry[{i}]: {}", err.diagnostics));
        if r["resourceType"] == "Patient" {
            req.allowed(Kind::Patient, Op::Create)?;
            let patient = input::patient(r, &cfg.mrn_system).map_err(|e| at(e.into()))?;
            if let Some(url) = e["fullUrl"].as_str() {
                in_bundle.insert(url.to_string(), patient.mrn.clone());
            }
            answers.push(("Patient", patient.mrn.clone()));
            events.push(Adt {
                trigger: Trigger::A31,
                event_at: now,
                patient,
                visit: None,
                prior_mrn: None,
            });
            continue;
        }
        req.allowed(Kind::Encounter, Op::Create)?;
        let mut resource = r.clone();
        let subject = r["subject"]["reference"].as_str().unwrap_or_default().to_string();
        let bundled = in_bundle.get(&subject).cloned();
        if bundled.is_some() {
            resource["subject"] = json!({"reference": "Patient/in-bundle"});
        }
        let wanted = input::encounter(&resource, &cfg.visit_system).map_err(|e| at(e.into()))?;
        let mrn = match bundled {
            Some(mrn) => mrn,
            None => q::identifier_of(&mut conn, &wanted.patient_id, &cfg.mrn_system)
                .await?
                .ok_or_else(|| {
                    at(unprocessable(
                        "Encounter.subject names no patient known here or in the Bundle",
                    ))
                })?,
        };
        let current = q::encounter_by_visit(&mut conn, &cfg.visit_system, &wanted.visit_number).await?;
        if let Some(c) = &current
            && q::identifier_of(&mut conn, &c.row.patient_id, &cfg.mrn_system)
                .await?
                .as_deref()
                != Some(mrn.as_str())
        {
            return Err(at(unprocessable(
                "Encounter.subject cannot change; move encounters with a patient merge",
            )));
        }
        let triggers =
            input::encounter_events(&wanted, current.as_ref().map(|c| &c.row)).map_err(|e| at(e.into()))?;
        let patient = Patient {
            mrn,
            other_ids: Vec::new(),
            demographics: Demographics::default(),
        };
        events.extend(input::adt_events(&triggers, &wanted, &patient, now));
        answers.push(("Encounter", wanted.visit_number.clone()));
    }
    drop(conn);
    state
        .hl7
        .apply_direct(&events, Some(req.who.user_id), req.who.source.as_deref(), "fhir")
        .await
        .map_err(|e| match e {
            Error::Invalid(msg) => unprocessable(msg),
            other => other.into(),
        })?;
    // Committed: say where each entry's resource is now.
    let mut conn = state.store.read().await?;
    let mut response = Vec::with_capacity(answers.len());
    for (kind, key) in answers {
        let id = if kind == "Patient" {
            q::patient_by_identifier(&mut conn, &cfg.mrn_system, &key)
                .await?
                .map(|p| p.row.id)
        } else {
            q::encounter_by_visit(&mut conn, &cfg.visit_system, &key)
                .await?
                .map(|e| e.row.id)
        };
        let id =
            id.ok_or_else(|| FhirError::from(Error::Internal("a committed entry is not found".into())))?;
        response.push(json!({"response": {"status": "200 OK", "location": format!("{kind}/{id}")}}));
    }
    Ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": response}))
}
