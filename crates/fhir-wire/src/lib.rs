//! Wardline's FHIR wire format: the one place where FHIR JSON goes through fhir-sdk's typed models.
//!
//! fhir-sdk's model crate is very large (minutes and gigabytes to compile), so everything that
//! instantiates its types lives in this small crate, which rarely changes; Wardline itself builds
//! and reads resources as `serde_json::Value` and passes them through here. Outgoing resources are
//! deserialised into the model and serialised back ([`to_wire`]), so nothing leaves the server that
//! the model would not accept (a wrong code, a missing required element, a string where an object
//! belongs); incoming resources are read strictly ([`from_wire`]): elements the model does not
//! know are reported instead of silently dropped. fhir-sdk has no R4 models; its R4B models
//! serialise the resources Wardline uses in a form R4 (4.0.1) accepts (SPEC §4).
#![forbid(unsafe_code)]

use fhir_sdk::r4b::resources as r;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a resource could not be written or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The body is not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// `resourceType` is missing or not a JSON string.
    #[error("the resource has no resourceType")]
    NoResourceType,
    /// A resource type this crate does not carry.
    #[error("resource type '{0}' is not supported")]
    Unsupported(String),
    /// `resourceType` differs from what the endpoint expects.
    #[error("expected a {expected} resource but got {found}")]
    WrongType {
        /// What the URL names.
        expected: String,
        /// What the body says.
        found: String,
    },
    /// The JSON does not fit the FHIR structure (wrong type, bad code, missing required element).
    #[error("the resource does not fit the FHIR R4 structure: {0}")]
    Structure(String),
    /// Elements the FHIR structure does not define, with their paths.
    #[error("unknown elements: {}", .0.join(", "))]
    UnknownElements(Vec<String>),
}

/// The resource types Wardline reads or writes; the list fixes which model code gets compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Demographics of a person receiving care.
    Patient,
    /// A visit: the anchor of a patient-encounter room.
    Encounter,
    /// A room's members.
    CareTeam,
    /// A chat message.
    Communication,
    /// A Wardline user who is a care-giver.
    Practitioner,
    /// An on-call shift or a role held.
    PractitionerRole,
    /// An audit trail entry.
    AuditEvent,
    /// An error or warning report.
    OperationOutcome,
    /// Search results and transactions.
    Bundle,
    /// What the server implements.
    CapabilityStatement,
}

impl Kind {
    /// Every supported type, for listing and iteration.
    pub const ALL: [Kind; 10] = [
        Kind::Patient,
        Kind::Encounter,
        Kind::CareTeam,
        Kind::Communication,
        Kind::Practitioner,
        Kind::PractitionerRole,
        Kind::AuditEvent,
        Kind::OperationOutcome,
        Kind::Bundle,
        Kind::CapabilityStatement,
    ];

    /// The FHIR spelling, as in `resourceType` and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Patient => "Patient",
            Kind::Encounter => "Encounter",
            Kind::CareTeam => "CareTeam",
            Kind::Communication => "Communication",
            Kind::Practitioner => "Practitioner",
            Kind::PractitionerRole => "PractitionerRole",
            Kind::AuditEvent => "AuditEvent",
            Kind::OperationOutcome => "OperationOutcome",
            Kind::Bundle => "Bundle",
            Kind::CapabilityStatement => "CapabilityStatement",
        }
    }

    /// The type named by a URL segment or `resourceType`; `None` when unsupported.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Serialises a resource built as JSON after passing it through its typed model; the returned
/// bytes are what the model emits. An error here is a server defect, never the client's.
pub fn to_wire(resource: Value) -> Result<Vec<u8>, WireError> {
    let kind = kind_of(&resource)?;
    match kind {
        Kind::Patient => through::<r::Patient>(resource),
        Kind::Encounter => through::<r::Encounter>(resource),
        Kind::CareTeam => through::<r::CareTeam>(resource),
        Kind::Communication => through::<r::Communication>(resource),
        Kind::Practitioner => through::<r::Practitioner>(resource),
        Kind::PractitionerRole => through::<r::PractitionerRole>(resource),
        Kind::AuditEvent => through::<r::AuditEvent>(resource),
        Kind::OperationOutcome => through::<r::OperationOutcome>(resource),
        Kind::Bundle => through::<r::Bundle>(resource),
        Kind::CapabilityStatement => through::<r::CapabilityStatement>(resource),
    }
}

/// Reads a client's resource strictly: valid JSON, the expected `resourceType`, the FHIR
/// structure, and no element the structure does not define. Returns the resource as the model
/// reads it (JSON), so Wardline works on checked data.
pub fn from_wire(expected: Kind, body: &[u8]) -> Result<Value, WireError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WireError::NotJson(e.to_string()))?;
    let found = kind_of(&value);
    match found {
        Ok(k) if k == expected => {}
        Ok(k) => {
            return Err(WireError::WrongType {
                expected: expected.as_str().into(),
                found: k.as_str().into(),
            });
        }
        Err(WireError::Unsupported(name)) => {
            return Err(WireError::WrongType {
                expected: expected.as_str().into(),
                found: name,
            });
        }
        Err(e) => return Err(e),
    }
    match expected {
        Kind::Patient => strictly::<r::Patient>(body),
        Kind::Encounter => strictly::<r::Encounter>(body),
        Kind::CareTeam => strictly::<r::CareTeam>(body),
        Kind::Communication => strictly::<r::Communication>(body),
        Kind::Practitioner => strictly::<r::Practitioner>(body),
        Kind::PractitionerRole => strictly::<r::PractitionerRole>(body),
        Kind::AuditEvent => strictly::<r::AuditEvent>(body),
        Kind::OperationOutcome => strictly::<r::OperationOutcome>(body),
        Kind::Bundle => strictly::<r::Bundle>(body),
        Kind::CapabilityStatement => strictly::<r::CapabilityStatement>(body),
    }
}

fn kind_of(v: &Value) -> Result<Kind, WireError> {
    let name = v
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(WireError::NoResourceType)?;
    Kind::parse(name).ok_or_else(|| WireError::Unsupported(name.to_string()))
}

fn through<T: DeserializeOwned + Serialize>(v: Value) -> Result<Vec<u8>, WireError> {
    let typed: T = serde_json::from_value(v).map_err(|e| WireError::Structure(e.to_string()))?;
    serde_json::to_vec(&typed).map_err(|e| WireError::Structure(e.to_string()))
}

fn strictly<T: DeserializeOwned + Serialize>(body: &[u8]) -> Result<Value, WireError> {
    let input: Value = serde_json::from_slice(body).map_err(|e| WireError::NotJson(e.to_string()))?;
    let typed: T = serde_json::from_value(input.clone()).map_err(|e| WireError::Structure(e.to_string()))?;
    let read = serde_json::to_value(&typed).map_err(|e| WireError::Structure(e.to_string()))?;
    // The model drops what it does not know (choice types are flattened, so serde cannot report
    // unknown keys itself): whatever the client sent that is missing after the round trip is an
    // element FHIR does not define there.
    let mut unknown = Vec::new();
    missing(&input, &read, String::new(), &mut unknown);
    if unknown.is_empty() {
        Ok(read)
    } else {
        Err(WireError::UnknownElements(unknown))
    }
}

/// Paths of object keys in `sent` that `kept` lacks.
fn missing(sent: &Value, kept: &Value, path: String, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (sent, kept) {
        (Value::Object(s), Value::Object(k)) => {
            for (key, value) in s {
                match k.get(key) {
                    Some(kv) => missing(value, kv, join(key), out),
                    None => out.push(join(key)),
                }
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            for (i, value) in s.iter().enumerate() {
                match k.get(i) {
                    Some(kv) => missing(value, kv, format!("{path}[{i}]"), out),
                    None => out.push(format!("{path}[{i}]")),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_patient_goes_through_unchanged() {
        let p = json!({"resourceType": "Patient", "id": "p1", "birthDate": "1950-02-03",
            "name": [{"family": "Nguyen", "given": ["Anh"]}], "gender": "female"});
        let out: Value = serde_json::from_slice(&to_wire(p.clone()).unwrap()).unwrap();
        assert_eq!(out, p);
    }

    #[test]
    fn outgoing_defects_are_caught() {
        let bad = json!({"resourceType": "Encounter", "id": "e1", "status": "admitted",
            "class": {"code": "IMP"}});
        assert!(matches!(to_wire(bad), Err(WireError::Structure(_))));
        assert_eq!(to_wire(json!({"id": "x"})), Err(WireError::NoResourceType));
        assert_eq!(
            to_wire(json!({"resourceType": "Observation"})),
            Err(WireError::Unsupported("Observation".into()))
        );
    }

    #[test]
    fn incoming_resources_are_read_strictly() {
        let ok = br#"{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"1"}]}"#;
        assert_eq!(
            from_wire(Kind::Patient, ok).unwrap()["identifier"][0]["value"],
            "1"
        );
        let unknown =
            br#"{"resourceType":"Patient","nickname":"x","name":[{"famly":"A"}],"deceasedBoolean":false}"#;
        match from_wire(Kind::Patient, unknown) {
            Err(WireError::UnknownElements(paths)) => {
                assert_eq!(paths, ["name[0].famly", "nickname"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            from_wire(Kind::Patient, b"{"),
            Err(WireError::NotJson(_))
        ));
        assert!(matches!(
            from_wire(Kind::Encounter, br#"{"resourceType":"Patient"}"#),
            Err(WireError::WrongType { .. })
        ));
        assert!(matches!(
            from_wire(
                Kind::Patient,
                br#"{"resourceType":"Patient","birthDate":"03/02/1950"}"#
            ),
            Err(WireError::Structure(_))
        ));
    }
}
