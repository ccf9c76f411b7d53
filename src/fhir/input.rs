//! What Wardline reads from a client's FHIR resources, and which ADT events an Encounter write
//! amounts to. Pure: the resource has already passed the R4 structure check
//! (`wardline_fhir_wire::from_wire`); these functions apply Wardline's own rules and name the
//! element at fault (never its value) when one is broken.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::hl7::members::USER_ID_PREFIX;
use crate::hl7::model::{Adt, Class, Demographics, Location, Patient, Trigger, Visit};
use crate::store::encounters::EncounterRow;

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// The value of the first identifier with `system`.
fn identifier_with(v: &Value, system: &str) -> Option<String> {
    v["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == system)
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

/// The id in a reference text `Patient/123` (or an absolute URL ending so) to a `target`.
pub fn id_in<'a>(text: &'a str, target: &str) -> Option<&'a str> {
    let (prefix, id) = text.rsplit_once('/')?;
    (prefix == target || prefix.ends_with(&format!("/{target}"))).then_some(id)
}

/// The id a Reference element (`{"reference": "Patient/123"}`) points at.
pub fn reference_id(reference: &Value, target: &str) -> Option<String> {
    id_in(reference["reference"].as_str()?, target).map(str::to_string)
}

/// A Patient write: the MRN (the identifier with the configured MRN system) and demographics.
pub fn patient(v: &Value, mrn_system: &str) -> Result<Patient> {
    let mrn = identifier_with(v, mrn_system).ok_or_else(|| {
        invalid(format!(
            "Patient.identifier: an identifier with system {mrn_system} (the MRN) is required"
        ))
    })?;
    let names = v["name"].as_array().cloned().unwrap_or_default();
    let name = names.iter().find(|n| n["use"] == "official").or(names.first());
    let given: Vec<&str> = name
        .and_then(|n| n["given"].as_array())
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let demographics = Demographics {
        family: name.and_then(|n| n["family"].as_str()).map(str::to_string),
        given: (!given.is_empty()).then(|| given.join(" ")),
        birth_date: v["birthDate"].as_str().map(str::to_string),
        sex: v["gender"].as_str().map(str::to_string),
    };
    Ok(Patient {
        mrn,
        other_ids: Vec::new(),
        demographics,
    })
}

/// An Encounter write as Wardline keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncounterIn {
    /// `Encounter.subject` patient id.
    pub patient_id: String,
    /// Visit number (identifier with the configured visit system).
    pub visit_number: String,
    /// `planned`, `in-progress`, `finished` or `cancelled`.
    pub status: String,
    /// Wardline's class.
    pub class: Class,
    /// Point of care.
    pub location: Location,
    /// The visit as the event table reads it (practitioners as user ids).
    pub visit: Visit,
}

fn class_of(code: &str) -> Option<Class> {
    Some(match code {
        "IMP" | "ACUTE" | "NONAC" => Class::Inpatient,
        "EMER" => Class::Emergency,
        "AMB" | "OBSENC" | "PRENC" | "SS" | "VR" | "HH" | "FLD" => Class::Outpatient,
        _ => return None,
    })
}

fn instant(v: &Value, path: &str) -> Result<Option<DateTime<Utc>>> {
    match v.as_str() {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| invalid(format!("{path} must be a dateTime with a time and zone"))),
    }
}

/// Reads an Encounter write; location comes from `location[0].location.identifier` (the unit)
/// and the room and bed from its `display` in Wardline's `UNIT ROOM-BED` form.
pub fn encounter(v: &Value, visit_system: &str) -> Result<EncounterIn> {
    let visit_number = identifier_with(v, visit_system).ok_or_else(|| {
        invalid(format!(
            "Encounter.identifier: an identifier with system {visit_system} (the visit number) is required"
        ))
    })?;
    let patient_id = reference_id(&v["subject"], "Patient")
        .ok_or_else(|| invalid("Encounter.subject must reference the Patient (Patient/{id})"))?;
    let status = v["status"].as_str().unwrap_or_default().to_string();
    if !["planned", "in-progress", "finished", "cancelled"].contains(&status.as_str()) {
        return Err(invalid(
            "Encounter.status must be planned, in-progress, finished or cancelled",
        ));
    }
    let code = v["class"]["code"].as_str().unwrap_or_default();
    let class = class_of(code)
        .ok_or_else(|| invalid("Encounter.class must be a v3 ActCode such as IMP, AMB or EMER"))?;
    let mut location = Location::default();
    if let Some(loc) = v["location"].as_array().and_then(|l| l.first()) {
        let unit = loc["location"]["identifier"]["value"]
            .as_str()
            .map(str::to_string);
        if let (Some(unit), Some(display)) = (&unit, loc["location"]["display"].as_str())
            && let Some(rest) = display.strip_prefix(&format!("{unit} "))
        {
            let (room, bed) = match rest.split_once('-') {
                Some((r, b)) => (Some(r.to_string()), Some(b.to_string())),
                None => (Some(rest.to_string()), None),
            };
            location.room = room;
            location.bed = bed;
        }
        location.unit = unit;
    }
    let mut visit = Visit {
        number: Some(visit_number.clone()),
        class: Some(class),
        location: location.clone(),
        admitted_at: instant(&v["period"]["start"], "Encounter.period.start")?,
        discharged_at: instant(&v["period"]["end"], "Encounter.period.end")?,
        ..Visit::default()
    };
    for (i, p) in v["participant"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(user) = reference_id(&p["individual"], "Practitioner") else {
            return Err(invalid(format!(
                "Encounter.participant[{i}].individual must reference a Practitioner"
            )));
        };
        let code = p["type"][0]["coding"][0]["code"].as_str().unwrap_or("ATND");
        let list = match code {
            "ATND" => &mut visit.attending,
            "CON" => &mut visit.consulting,
            "ADM" => &mut visit.admitting,
            _ => {
                return Err(invalid(format!(
                    "Encounter.participant[{i}].type must be ATND, CON or ADM"
                )));
            }
        };
        list.push(format!("{USER_ID_PREFIX}{user}"));
    }
    Ok(EncounterIn {
        patient_id,
        visit_number,
        status,
        class,
        location,
        visit,
    })
}

/// The ADT events that turn `current` (absent: a new encounter) into `input`, in the order the
/// event table must see them: a transfer before a discharge, and an A08 last so participants and
/// class follow the resource.
pub fn encounter_events(input: &EncounterIn, current: Option<&EncounterRow>) -> Result<Vec<Trigger>> {
    let open = |class: Class| {
        if class == Class::Inpatient {
            Trigger::A01
        } else {
            Trigger::A04
        }
    };
    let Some(cur) = current else {
        return match input.status.as_str() {
            "planned" => Ok(vec![Trigger::A05]),
            "in-progress" => Ok(vec![open(input.class)]),
            "finished" => Ok(vec![open(input.class), Trigger::A03]),
            _ => Err(invalid(
                "a new Encounter must be planned, in-progress or finished",
            )),
        };
    };
    let mut out = Vec::new();
    let moved = !input.location.is_empty()
        && (
            cur.location_unit.as_deref(),
            cur.location_room.as_deref(),
            cur.location_bed.as_deref(),
        ) != (
            input.location.unit.as_deref(),
            input.location.room.as_deref(),
            input.location.bed.as_deref(),
        );
    let held_class = cur.class.as_str();
    if held_class != input.class.as_str() {
        out.push(if input.class == Class::Inpatient {
            Trigger::A06
        } else {
            Trigger::A07
        });
    }
    let status_change = match (cur.status.as_str(), input.status.as_str()) {
        (a, b) if a == b => None,
        ("planned", "in-progress") => Some(open(input.class)),
        ("in-progress" | "planned", "finished") => Some(Trigger::A03),
        ("finished", "in-progress") => Some(Trigger::A13),
        ("planned" | "in-progress", "cancelled") => Some(Trigger::A11),
        (from, to) => {
            return Err(invalid(format!(
                "Encounter.status cannot change from {from} to {to}"
            )));
        }
    };
    if moved && status_change != Some(Trigger::A11) {
        out.push(Trigger::A02);
    }
    out.extend(status_change);
    if cur.status != "cancelled" && input.status != "cancelled" {
        out.push(Trigger::A08);
    }
    Ok(out)
}

/// The events as the event table takes them.
pub fn adt_events(
    triggers: &[Trigger],
    input: &EncounterIn,
    patient: &Patient,
    now: DateTime<Utc>,
) -> Vec<Adt> {
    triggers
        .iter()
        .map(|t| Adt {
            trigger: *t,
            event_at: now,
            patient: patient.clone(),
            visit: Some(input.visit.clone()),
            prior_mrn: None,
        })
        .collect()
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
