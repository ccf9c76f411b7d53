//! PractitionerRole writes (SPEC §7): one on-call shift per resource — the service in
//! `specialty` (system `urn:wardline:service`), `code` on-call, `period`, the tier in the
//! `urn:wardline:fhir:oncall-tier` extension (default 1) and the `practitioner`. Create, update
//! and delete change the roster; a `transaction` Bundle of creates replaces each named service's
//! period atomically (the roster upload). Each answer carries the validation report (gaps,
//! overlaps) as an OperationOutcome.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wardline_fhir_wire::Kind;

use super::http::find_by_id;
use super::input::reference_id;
use super::outcome::{FhirError, FhirResult, fhir_response};
use super::request::FhirRequest;
use super::resources::{ROLE_SYSTEM, SERVICE_SYSTEM, TIER_EXTENSION};
use super::scopes::{Context, Op};
use super::write::Written;
use crate::http::AppState;
use crate::oncall::roster::{Report, ShiftIn};

fn invalid(msg: impl Into<String>) -> FhirError {
    FhirError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", msg)
}

fn instant(v: &Value, path: &str) -> FhirResult<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| invalid(format!("{path} must be a dateTime with a time and zone")))
}

/// Reads one shift from a PractitionerRole.
pub fn shift_in(v: &Value) -> FhirResult<ShiftIn> {
    let service = v["specialty"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["coding"].as_array().into_iter().flatten())
        .find(|c| c["system"].as_str() == Some(SERVICE_SYSTEM))
        .and_then(|c| c["code"].as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "PractitionerRole.specialty must name the service (system {SERVICE_SYSTEM})"
            ))
        })?;
    let on_call = v["code"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["coding"].as_array().into_iter().flatten())
        .any(|c| c["system"].as_str() == Some(ROLE_SYSTEM) && c["code"].as_str() == Some("on-call"));
    if !on_call {
        return Err(invalid(format!(
            "PractitionerRole.code must be on-call ({ROLE_SYSTEM})"
        )));
    }
    let start = instant(&v["period"]["start"], "PractitionerRole.period.start")?;
    let end = instant(&v["period"]["end"], "PractitionerRole.period.end")?;
    if end <= start {
        return Err(invalid("PractitionerRole.period must end after it starts"));
    }
    let tier = match v["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"].as_str() == Some(TIER_EXTENSION))
    {
        None => 1,
        Some(e) => e["valueInteger"]
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| (1..=9).contains(t))
            .ok_or_else(|| invalid("the on-call tier extension must be a valueInteger from 1 to 9"))?,
    };
    let practitioner = reference_id(&v["practitioner"], "Practitioner")
        .ok_or_else(|| invalid("PractitionerRole.practitioner must reference a Practitioner"))?;
    Ok(ShiftIn {
        service: service.to_string(),
        tier,
        start,
        end,
        practitioner,
    })
}

/// The validation report as an OperationOutcome: a warning per gap and overlap, or one
/// informational issue when there are none.
pub fn report_outcome(report: &Report) -> Value {
    let mut issues: Vec<Value> = report
        .gaps
        .iter()
        .map(|g| {
            json!({"severity": "warning", "code": "business-rule", "diagnostics": format!(
                "gap: nobody on tier 1 of {} from {} to {}", g.service, g.start.to_rfc3339(), g.end.to_rfc3339())})
        })
        .chain(report.overlaps.iter().map(|o| {
            json!({"severity": "warning", "code": "business-rule", "diagnostics": format!(
                "overlap: tier {} of {} is double-booked from {} to {}", o.tier, o.service, o.start.to_rfc3339(), o.end.to_rfc3339())})
        }))
        .collect();
    if issues.is_empty() {
        issues.push(
            json!({"severity": "information", "code": "informational", "diagnostics": "no gaps or overlaps"}),
        );
    }
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

/// Create (`id` absent) or update of one shift.
pub async fn put(
    state: &AppState,
    req: &FhirRequest,
    v: &Value,
    id: Option<&str>,
) -> FhirResult<(Written, Value)> {
    let shift = shift_in(v)?;
    let (shift_id, report) = state.oncall.put_shift(&req.who, id, &shift).await?;
    let resource = find_by_id(state, req, Kind::PractitionerRole, Context::System, &shift_id).await?;
    Ok((
        Written {
            resource,
            created: id.is_none(),
            outcome: None,
        },
        report_outcome(&report),
    ))
}

/// `DELETE [base]/PractitionerRole/{id}`: 200 with the report of the service around it.
pub async fn delete(
    State(state): State<AppState>,
    req: FhirRequest,
    Path((type_name, id)): Path<(String, String)>,
) -> FhirResult<Response> {
    if Kind::parse(&type_name) != Some(Kind::PractitionerRole) {
        return Err(FhirError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("{type_name} cannot be deleted (see /fhir/metadata)"),
        ));
    }
    let result = async {
        req.allowed(Kind::PractitionerRole, Op::Delete)?;
        Ok::<_, FhirError>(state.oncall.delete_shift(&req.who, &id).await?)
    }
    .await;
    let event = req.who.event("fhir.delete", "PractitionerRole", &id);
    match result {
        Ok(report) => {
            state.audit.record(event).await?;
            Ok(fhir_response(StatusCode::OK, report_outcome(&report)))
        }
        Err(e) => {
            state.audit.record(event.failed()).await?;
            Err(e)
        }
    }
}

/// The PractitionerRole creates of a transaction: per service, the shifts starting inside the
/// Bundle's period are replaced by the Bundle's, all or nothing (the roster upload); the report
/// rides in the first entry's `response.outcome`.
pub async fn replace_periods(state: &AppState, req: &FhirRequest, entries: &[Value]) -> FhirResult<Value> {
    let mut shifts = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        shifts.push(
            shift_in(&e["resource"]).map_err(|e| invalid(format!("Bundle.entry[{i}]: {}", e.diagnostics)))?,
        );
    }
    let uploaded = state.oncall.upload(&req.who, shifts).await?;
    let outcome = report_outcome(&uploaded.report);
    let response: Vec<Value> = uploaded
        .shift_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut r = json!({"status": "201 Created", "location": format!("PractitionerRole/{id}")});
            if i == 0 {
                r["outcome"] = outcome.clone();
            }
            json!({"response": r})
        })
        .collect();
    Ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": response}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> Value {
        json!({"resourceType": "PractitionerRole",
            "extension": [{"url": TIER_EXTENSION, "valueInteger": 2}],
            "period": {"start": "2026-11-25T08:00:00+01:00", "end": "2026-11-25T20:00:00+01:00"},
            "practitioner": {"reference": "Practitioner/dr.osei"},
            "code": [{"coding": [{"system": ROLE_SYSTEM, "code": "on-call"}]}],
            "specialty": [{"coding": [{"system": SERVICE_SYSTEM, "code": "cardiology"}]}]})
    }

    #[test]
    fn a_practitioner_role_is_one_shift() {
        let s = shift_in(&role()).unwrap();
        assert_eq!(
            (s.service.as_str(), s.tier, s.practitioner.as_str()),
            ("cardiology", 2, "dr.osei")
        );
        assert_eq!(s.start.to_rfc3339(), "2026-11-25T07:00:00+00:00");
        let mut no_tier = role();
        no_tier["extension"] = json!([]);
        assert_eq!(shift_in(&no_tier).unwrap().tier, 1);
    }

    #[test]
    fn incomplete_shifts_are_refused_by_element() {
        for (path, value, expect) in [
            ("specialty", json!([]), "specialty"),
            (
                "code",
                json!([{"coding": [{"system": ROLE_SYSTEM, "code": "attending"}]}]),
                "code",
            ),
            (
                "period",
                json!({"start": "2026-11-25T08:00:00Z", "end": "2026-11-25T07:00:00Z"}),
                "period",
            ),
            (
                "period",
                json!({"start": "2026-11-25", "end": "2026-11-26"}),
                "period.start",
            ),
            (
                "extension",
                json!([{"url": TIER_EXTENSION, "valueInteger": 0}]),
                "tier",
            ),
            ("practitioner", json!({"reference": "Patient/1"}), "practitioner"),
        ] {
            let mut r = role();
            r[path] = value;
            let e = shift_in(&r).unwrap_err();
            assert!(e.diagnostics.contains(expect), "{path}: {}", e.diagnostics);
        }
    }

    #[test]
    fn the_report_becomes_warnings() {
        let t = |h: u32| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 25, h, 0, 0).unwrap();
        let report = Report {
            gaps: vec![crate::oncall::roster::Gap {
                service: "cardiology".into(),
                start: t(1),
                end: t(2),
            }],
            overlaps: Vec::new(),
        };
        let oo = report_outcome(&report);
        assert_eq!(oo["issue"][0]["severity"], "warning");
        assert!(oo["issue"][0]["diagnostics"].as_str().unwrap().contains("gap"));
        assert_eq!(
            report_outcome(&Report::default())["issue"][0]["severity"],
            "information"
        );
    }
}
