//! `GET [base]/metadata`: the CapabilityStatement, built from the same tables the handlers use
//! (supported types, interactions and search parameters), so it lists exactly what is served.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use wardline_fhir_wire::Kind;

use super::outcome::fhir_response;
use super::request::Negotiated;
use super::search;
use crate::http::AppState;

/// The resource types served and the interactions each supports.
pub fn interactions(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Patient | Kind::Encounter | Kind::Practitioner => &["read", "search-type", "create", "update"],
        Kind::Communication => &["read", "search-type", "create"],
        Kind::PractitionerRole => &["read", "search-type", "create", "update", "delete"],
        Kind::CareTeam | Kind::AuditEvent => &["read", "search-type"],
        _ => &[],
    }
}

/// The CapabilityStatement for `base`.
pub fn statement(base: &str, software_version: &str) -> Value {
    let resources: Vec<Value> = Kind::ALL
        .into_iter()
        .filter(|k| !interactions(*k).is_empty())
        .map(|k| {
            let params: Vec<Value> = search::supported(k)
                .iter()
                .map(|(name, ty, doc)| json!({"name": name, "type": ty, "documentation": doc}))
                .collect();
            let mut r = json!({
                "type": k.as_str(),
                "interaction": interactions(k).iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "searchParam": params,
            });
            let includes = super::include::supported(k);
            if !includes.is_empty() {
                r["searchInclude"] = json!(includes);
            }
            r["readHistory"] = json!(false);
            r["updateCreate"] = json!(false);
            r["conditionalCreate"] = json!(interactions(k).contains(&"create"));
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "Wardline",
        "kind": "instance",
        "software": {"name": "Wardline", "version": software_version},
        "implementation": {"description": "Wardline care-team messaging", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Bearer tokens with SMART App Launch v2 scopes (system/, user/); results under user/ scopes are limited to the caller's rooms. Unknown search parameters are ignored unless the request says Prefer: handling=strict. Patient and Encounter writes run the same ADT event table as the HL7 v2 feed (Patient upserts by MRN). Communication create posts a message into the encounter's room. Every read, search and write is audited.",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "description": "OAuth2 bearer tokens; SMART v2 scopes.",
            },
            "resource": resources,
            "interaction": [{"code": "transaction", "documentation": "All or nothing: a Bundle of Patient and Encounter creates runs the ADT event table in one database transaction (an Encounter may name the Bundle's Patient by fullUrl); a Bundle of PractitionerRole creates replaces each named service's on-call period."}],
        }],
    })
}

/// `GET [base]/metadata` (no token needed, as FHIR requires).
pub async fn metadata(State(_state): State<AppState>, neg: Negotiated) -> Response {
    fhir_response(StatusCode::OK, statement(&neg.base, env!("CARGO_PKG_VERSION")))
}
