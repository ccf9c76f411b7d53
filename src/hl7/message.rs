//! From ER7 text to a typed ADT event (parse, don't validate): once [`read_content`] returns an
//! [`Adt`], every field the event table needs is present and well-formed, and anything else is
//! an AR ([`Rejection`]) or an AE ([`Problem`]) that names the segment and field. No I/O here.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::dtm;
use super::er7::Er7;
use super::mapping::Hl7Config;
pub use super::model::*;

const VERSIONS: [&str; 6] = ["2.3", "2.4", "2.5", "2.6", "2.7", "2.8"];

/// Reads MSH: anything unusable here is an AR.
pub fn read_header(m: &Er7<'_>) -> Result<Header, Rejection> {
    let raw = |f| m.raw_field("MSH", 0, f).unwrap_or_default().to_string();
    let control_id = raw(10);
    if control_id.is_empty() {
        return Err(Rejection::at(
            "101",
            10,
            "MSH-10 (message control id) is required",
        ));
    }
    let message_type = m.component("MSH", 0, 9, 1).unwrap_or_default();
    let trigger = m
        .component("MSH", 0, 9, 2)
        .or_else(|| m.value("EVN", 1))
        .unwrap_or_default()
        .to_ascii_uppercase();
    let version = m.value("MSH", 12).unwrap_or_default();
    let header = Header {
        delimiters: m.delimiters(),
        sending_application: raw(3),
        sending_facility: raw(4),
        receiving_application: raw(5),
        receiving_facility: raw(6),
        control_id,
        message_type: message_type.to_ascii_uppercase(),
        trigger,
        version,
        processing_id: m.value("MSH", 11).unwrap_or_default(),
    };
    Ok(header)
}

/// Checks that the message is one this interface accepts (AR otherwise).
pub fn check_supported(h: &Header) -> Result<(), Rejection> {
    if h.message_type != "ADT" {
        return Err(Rejection::at(
            "200",
            9,
            format!(
                "message type {:?} is not supported; this interface accepts ADT",
                h.message_type
            ),
        ));
    }
    let supported = VERSIONS
        .iter()
        .any(|v| h.version == *v || h.version.starts_with(&format!("{v}.")));
    if !supported {
        return Err(Rejection::at(
            "203",
            12,
            format!("HL7 version {:?} is not supported; use 2.3 to 2.8", h.version),
        ));
    }
    if h.trigger.is_empty() {
        return Err(Rejection::at("101", 9, "MSH-9.2 (trigger event) is required"));
    }
    Ok(())
}

/// Reads the content of an accepted ADT message (AE on any problem).
pub fn read_content(m: &Er7<'_>, h: &Header, cfg: &Hl7Config, zone: Tz) -> Result<Content, Problem> {
    let Some(trigger) = Trigger::parse(&h.trigger) else {
        return Ok(Content::Unsupported(h.trigger.clone()));
    };
    let event_at = match m.value("EVN", 2) {
        Some(v) => dtm::parse_instant(&v, zone).map_err(|e| Problem::at("102", "EVN", 2, e.to_string()))?,
        None => {
            let v = m
                .value("MSH", 7)
                .ok_or_else(|| Problem::at("101", "EVN", 2, "EVN-2 or MSH-7 (event time) is required"))?;
            dtm::parse_instant(&v, zone).map_err(|e| Problem::at("102", "MSH", 7, e.to_string()))?
        }
    };
    if m.count("PID") == 0 {
        return Err(Problem {
            code: "100",
            location: Some(("PID".into(), 1, 0)),
            reason: "the PID segment is required".into(),
        });
    }
    let patient = read_patient(m, cfg)?;
    let visit = if m.count("PV1") > 0 {
        Some(read_visit(m, cfg, zone)?)
    } else {
        None
    };
    if trigger.needs_visit() && visit.as_ref().and_then(|v| v.number.as_ref()).is_none() {
        return Err(Problem::at(
            "101",
            "PV1",
            19,
            "PV1-19 (visit number) is required for this event",
        ));
    }
    let prior_mrn = if trigger == Trigger::A40 {
        let ids = m.repetitions("MRG", 0, 1);
        let mrn = pick_mrn(&ids, cfg).ok_or_else(|| {
            Problem::at(
                "101",
                "MRG",
                1,
                "MRG-1 holds no identifier that is an MRN under this interface's mapping",
            )
        })?;
        Some(mrn)
    } else {
        None
    };
    Ok(Content::Event(Box::new(Adt {
        trigger,
        event_at,
        patient,
        visit,
        prior_mrn,
    })))
}

fn pick_mrn(ids: &[Vec<String>], cfg: &Hl7Config) -> Option<String> {
    ids.iter().find_map(|cx| {
        let value = cx.first().map(String::as_str).unwrap_or_default().trim();
        let authority = authority_of(cx);
        let type_code = cx.get(4).map(String::as_str).unwrap_or_default();
        (!value.is_empty() && cfg.is_mrn(authority, type_code)).then(|| value.to_string())
    })
}

/// CX.4 is an HD (`namespace&oid&type`): its first subcomponent is the authority's name. The
/// components are already decoded, so a literal `&` here was a subcomponent separator.
fn authority_of(cx: &[String]) -> &str {
    cx.get(3)
        .map(|a| a.split('&').next().unwrap_or_default())
        .unwrap_or_default()
}

fn read_patient(m: &Er7<'_>, cfg: &Hl7Config) -> Result<Patient, Problem> {
    let ids = m.repetitions("PID", 0, 3);
    let mrn = pick_mrn(&ids, cfg).ok_or_else(|| {
        Problem::at(
            "101",
            "PID",
            3,
            "PID-3 holds no identifier that is an MRN under this interface's mapping",
        )
    })?;
    let other_ids = ids
        .iter()
        .filter_map(|cx| {
            let value = cx.first()?.trim();
            (!value.is_empty() && value != mrn).then(|| {
                (
                    authority_of(cx).to_string(),
                    cx.get(4).cloned().unwrap_or_default(),
                    value.to_string(),
                )
            })
        })
        .collect();
    let family = m.subcomponent_1("PID", 5, 1);
    let given = m.component("PID", 0, 5, 2);
    let birth_date = match m.value("PID", 7) {
        Some(v) => Some(dtm::parse_date(&v).map_err(|e| Problem::at("102", "PID", 7, e.to_string()))?),
        None => None,
    };
    let sex = m.value("PID", 8).map(|s| {
        match s.to_ascii_uppercase().as_str() {
            "M" => "male",
            "F" => "female",
            "U" => "unknown",
            _ => "other",
        }
        .to_string()
    });
    Ok(Patient {
        mrn,
        other_ids,
        demographics: Demographics {
            family,
            given,
            birth_date,
            sex,
        },
    })
}

fn read_visit(m: &Er7<'_>, cfg: &Hl7Config, zone: Tz) -> Result<Visit, Problem> {
    let number = match m.repetitions("PV1", 0, 19).first() {
        Some(cx) if cx.first().is_some_and(|v| !v.trim().is_empty()) => {
            if !cfg.is_visit_authority(authority_of(cx)) {
                return Err(Problem::at(
                    "103",
                    "PV1",
                    19,
                    "PV1-19.4 is not the configured visit-number authority",
                ));
            }
            Some(cx[0].trim().to_string())
        }
        _ => None,
    };
    let class = m
        .value("PV1", 2)
        .and_then(|c| match c.to_ascii_uppercase().as_str() {
            "I" | "P" => Some(Class::Inpatient),
            "O" | "R" | "B" => Some(Class::Outpatient),
            "E" => Some(Class::Emergency),
            _ => None,
        });
    let location = Location {
        unit: m.component("PV1", 0, 3, 1),
        room: m.component("PV1", 0, 3, 2),
        bed: m.component("PV1", 0, 3, 3),
    };
    let ids = |field| -> Vec<String> {
        let mut out: Vec<String> = m
            .repetitions("PV1", 0, field)
            .into_iter()
            .filter_map(|xcn| xcn.into_iter().next())
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        out.dedup();
        out
    };
    let time = |field: u32| -> Result<Option<DateTime<Utc>>, Problem> {
        match m.value("PV1", field as usize) {
            Some(v) => dtm::parse_instant(&v, zone)
                .map(Some)
                .map_err(|e| Problem::at("102", "PV1", field, e.to_string())),
            None => Ok(None),
        }
    };
    Ok(Visit {
        number,
        class,
        location,
        attending: ids(7),
        consulting: ids(9),
        admitting: ids(17),
        admitted_at: time(44)?,
        discharged_at: time(45)?,
    })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
