//! How Wardline's records look as FHIR R4 resources (docs/fhir.md lists the mapping). Built as
//! JSON here and passed through fhir-sdk's models by `wardline_fhir_wire::to_wire` on the way out.

use serde_json::{Value, json};

use crate::chat::model::Message;
use crate::store::encounters::EncounterRow;
use crate::store::fhir::{EncounterRecord, PatientRecord};
use crate::store::fhir_chat::{PractitionerRecord, TeamRecord};

/// Identifier system of Wardline login names on Practitioner.
pub const USERNAME_SYSTEM: &str = "urn:wardline:username";
/// Identifier system of US National Provider Identifiers.
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";
/// Identifier system of a point of care (unit) in Encounter.location.
pub const UNIT_SYSTEM: &str = "urn:wardline:unit";
/// Code system of a member's reason for being in a room (CareTeam.participant.role).
pub const MEMBER_REASON_SYSTEM: &str = "urn:wardline:member-reason";

/// FHIR `instant` text for Unix ms.
pub fn instant(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn meta(updated_ms: i64) -> Value {
    json!({"lastUpdated": instant(updated_ms)})
}

/// A Patient; `identifiers` are `(system, value)`, the MRN recognised by `mrn_system`.
pub fn patient(record: &PatientRecord, identifiers: &[(String, String)], mrn_system: &str) -> Value {
    let p = &record.row;
    let identifier: Vec<Value> = identifiers
        .iter()
        .map(|(system, value)| {
            let mut id = json!({"system": system, "value": value});
            if system == mrn_system {
                id["use"] = json!("usual");
                id["type"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}]});
            }
            id
        })
        .collect();
    let mut out = json!({
        "resourceType": "Patient",
        "id": p.id,
        "meta": meta(record.updated_at),
        "active": p.merged_into.is_none(),
    });
    if !identifier.is_empty() {
        out["identifier"] = Value::Array(identifier);
    }
    let given: Vec<&str> = p
        .given_name
        .as_deref()
        .map(|g| g.split_whitespace().collect())
        .unwrap_or_default();
    if p.family_name.is_some() || !given.is_empty() {
        let mut name = json!({"use": "official"});
        if let Some(f) = &p.family_name {
            name["family"] = json!(f);
        }
        if !given.is_empty() {
            name["given"] = json!(given);
        }
        out["name"] = json!([name]);
    }
    if let Some(g) = p
        .sex
        .as_deref()
        .filter(|g| ["male", "female", "other", "unknown"].contains(g))
    {
        out["gender"] = json!(g);
    }
    if let Some(b) = &p.birth_date {
        out["birthDate"] = json!(b);
    }
    if let Some(survivor) = &p.merged_into {
        out["link"] = json!([{"other": {"reference": format!("Patient/{survivor}")}, "type": "replaced-by"}]);
    }
    out
}

/// The v3 ActCode for Wardline's encounter class.
fn class_code(class: &str) -> (&'static str, &'static str) {
    match class {
        "inpatient" => ("IMP", "inpatient encounter"),
        "emergency" => ("EMER", "emergency"),
        _ => ("AMB", "ambulatory"),
    }
}

/// Human-readable point of care: `4W 12-A`.
fn location_text(unit: &str, room: Option<&str>, bed: Option<&str>) -> String {
    match (room, bed) {
        (Some(r), Some(b)) => format!("{unit} {r}-{b}"),
        (Some(r), None) => format!("{unit} {r}"),
        _ => unit.to_string(),
    }
}

/// An Encounter; `participants` are `(user id, member reason)` of the room's practitioners.
pub fn encounter(e: &EncounterRecord, participants: &[(String, String)]) -> Value {
    let r: &EncounterRow = &e.row;
    let (code, display) = class_code(&r.class);
    let mut out = json!({
        "resourceType": "Encounter",
        "id": r.id,
        "meta": meta(e.updated_at),
        "identifier": [{"use": "official", "system": r.visit_system, "value": r.visit_number}],
        "status": r.status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code, "display": display},
        "subject": {"reference": format!("Patient/{}", r.patient_id)},
    });
    let participant: Vec<Value> = participants
        .iter()
        .filter_map(|(user, reason)| {
            let code = match reason.as_str() {
                "attending" => "ATND",
                "consulting" => "CON",
                "admitting" => "ADM",
                _ => return None,
            };
            Some(json!({
                "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": code}]}],
                "individual": {"reference": format!("Practitioner/{user}")},
            }))
        })
        .collect();
    if !participant.is_empty() {
        out["participant"] = Value::Array(participant);
    }
    let mut period = json!({});
    if let Some(a) = r.admitted_at {
        period["start"] = json!(instant(a));
    }
    if let Some(d) = r.discharged_at {
        period["end"] = json!(instant(d));
    }
    if period.as_object().is_some_and(|p| !p.is_empty()) {
        out["period"] = period;
    }
    if let Some(unit) = &r.location_unit {
        let status = if r.status == "in-progress" || r.status == "planned" {
            "active"
        } else {
            "completed"
        };
        out["location"] = json!([{
            "location": {
                "identifier": {"system": UNIT_SYSTEM, "value": unit},
                "display": location_text(unit, r.location_room.as_deref(), r.location_bed.as_deref()),
            },
            "status": status,
        }]);
    }
    out
}

/// A room as a CareTeam; `members` are `(user id, reason)`.
pub fn care_team(t: &TeamRecord, members: &[(String, String)]) -> Value {
    let status = if t.status == "active" {
        "active"
    } else {
        "inactive"
    };
    let mut out = json!({
        "resourceType": "CareTeam",
        "id": t.id,
        "meta": meta(t.created_at),
        "status": status,
        "name": t.name,
        "category": [{"coding": [{"system": "urn:wardline:room-kind", "code": t.kind}]}],
    });
    if let Some(p) = &t.patient_id {
        out["subject"] = json!({"reference": format!("Patient/{p}")});
    }
    if let Some(e) = &t.encounter_id {
        out["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    let participant: Vec<Value> = members
        .iter()
        .map(|(user, reason)| {
            json!({
                "role": [{"coding": [{"system": MEMBER_REASON_SYSTEM, "code": reason}]}],
                "member": {"reference": format!("Practitioner/{user}")},
            })
        })
        .collect();
    if !participant.is_empty() {
        out["participant"] = Value::Array(participant);
    }
    out
}

/// A message as a Communication to its room's care team; attachments are further payloads that
/// point at their (authenticated, audited) download under `downloads`.
pub fn communication(
    m: &Message,
    encounter_id: Option<&str>,
    patient_id: Option<&str>,
    downloads: &str,
) -> Value {
    let mut out = json!({
        "resourceType": "Communication",
        "id": m.id,
        "meta": meta(m.created_at.timestamp_millis()),
        "status": "completed",
        "priority": m.priority,
        "sent": instant(m.created_at.timestamp_millis()),
        "recipient": [{"reference": format!("CareTeam/{}", m.room_id)}],
        "payload": [{"contentString": m.body}],
    });
    for a in &m.attachments {
        let attachment = json!({
            "contentType": a.content_type,
            "url": format!("{downloads}/{}", a.id),
            "size": a.size,
            "title": a.filename,
        });
        if let Some(payload) = out["payload"].as_array_mut() {
            payload.push(json!({"contentAttachment": attachment}));
        }
    }
    match m.sender_id {
        Some(sender) => out["sender"] = json!({"reference": format!("Practitioner/{sender}")}),
        None => {
            out["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/communication-category", "code": "notification"}]}]);
        }
    }
    if let Some(p) = patient_id {
        out["subject"] = json!({"reference": format!("Patient/{p}")});
    }
    if let Some(e) = encounter_id {
        out["encounter"] = json!({"reference": format!("Encounter/{e}")});
    }
    out
}

/// A person in the directory.
pub fn practitioner(u: &PractitionerRecord) -> Value {
    let mut identifier = vec![json!({"system": USERNAME_SYSTEM, "value": u.username})];
    if let Some(npi) = &u.npi {
        identifier.insert(0, json!({"system": NPI_SYSTEM, "value": npi}));
    }
    json!({
        "resourceType": "Practitioner",
        "id": u.id,
        "meta": meta(u.created_at),
        "identifier": identifier,
        "active": u.active != 0,
        "name": [{"text": u.display_name}],
    })
}

/// Code system of the on-call role code and of services (PractitionerRole).
pub const ROLE_SYSTEM: &str = "urn:wardline:role";
/// Code system of on-call services.
pub const SERVICE_SYSTEM: &str = "urn:wardline:service";
/// Extension carrying the escalation tier of an on-call shift.
pub const TIER_EXTENSION: &str = "urn:wardline:fhir:oncall-tier";

/// An on-call shift as a PractitionerRole; `active` when it covers `now_ms`.
pub fn practitioner_role(s: &crate::store::oncall::ShiftRecord, now_ms: i64) -> Value {
    json!({
        "resourceType": "PractitionerRole",
        "id": s.id,
        "meta": meta(s.created_at),
        "extension": [{"url": TIER_EXTENSION, "valueInteger": s.tier}],
        "active": s.starts_at <= now_ms && now_ms < s.ends_at,
        "period": {"start": instant(s.starts_at), "end": instant(s.ends_at)},
        "practitioner": {"reference": format!("Practitioner/{}", s.user_id)},
        "code": [{"coding": [{"system": ROLE_SYSTEM, "code": "on-call", "display": "On call"}]}],
        "specialty": [{"coding": [{"system": SERVICE_SYSTEM, "code": s.service}]}],
    })
}
