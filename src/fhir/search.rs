//! FHIR search parameters, parsed without I/O into the store's query structs.
//!
//! What is supported is listed per type in [`supported`] (the CapabilityStatement is built from
//! the same list). Unknown parameters follow the FHIR rule: ignored under the default lenient
//! handling (and left out of the `self` link, so the client sees what was applied), a 400 under
//! `Prefer: handling=strict`. Modifiers (`name:exact`) and OR lists (`a,b`) are refused with 400
//! in both modes, because ignoring them would silently widen or change the result.

use wardline_fhir_wire::Kind;

use super::dates::{date_range, day};
use crate::error::{Error, Result};
use crate::store::fhir::{EncounterQuery, Page, PatientQuery};
use crate::store::fhir_chat::{MessageQuery, PractitionerQuery, TeamQuery};

/// Default and largest `_count`.
pub const DEFAULT_COUNT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_COUNT: u32 = 200;

/// `(name, FHIR type, description)` of each search parameter a resource type supports.
pub fn supported(kind: Kind) -> &'static [(&'static str, &'static str, &'static str)] {
    match kind {
        Kind::Patient => &[
            ("_id", "token", "logical id"),
            ("identifier", "token", "MRN or other identifier, system|value"),
            ("name", "string", "start of the family or given name"),
            ("family", "string", "start of the family name"),
            ("given", "string", "start of the given name"),
            ("birthdate", "date", "birth date; eq/ge/le/gt/lt"),
        ],
        Kind::Encounter => &[
            ("_id", "token", "logical id"),
            ("identifier", "token", "visit number, system|value"),
            ("patient", "reference", "Patient/{id}"),
            ("subject", "reference", "Patient/{id}"),
            ("status", "token", "planned | in-progress | finished | cancelled"),
            ("location", "reference", "unit (point of care) code"),
            ("date", "date", "period overlaps; eq/ge/le/gt/lt"),
        ],
        Kind::CareTeam => &[
            ("_id", "token", "room id"),
            ("encounter", "reference", "Encounter/{id}"),
            ("patient", "reference", "Patient/{id}"),
            ("subject", "reference", "Patient/{id}"),
            ("status", "token", "active | inactive"),
        ],
        Kind::Communication => &[
            ("_id", "token", "message id"),
            ("encounter", "reference", "Encounter/{id}"),
            ("subject", "reference", "Patient/{id}"),
            ("patient", "reference", "Patient/{id}"),
            ("sender", "reference", "Practitioner/{id}"),
            ("recipient", "reference", "CareTeam/{room id}"),
            ("priority", "token", "routine | urgent | stat"),
            ("sent", "date", "when sent; eq/ge/le/gt/lt"),
            ("_lastUpdated", "date", "same as sent (messages are not edited)"),
        ],
        Kind::Practitioner => &[
            ("_id", "token", "user id"),
            ("identifier", "token", "NPI or urn:wardline:username|login"),
            ("name", "string", "start of any word of the name"),
        ],
        Kind::PractitionerRole => &[
            ("_id", "token", "shift id"),
            ("service", "token", "on-call service, e.g. cardiology"),
            ("specialty", "token", "same as service"),
            ("practitioner", "reference", "Practitioner/{user id}"),
            ("active", "token", "true: on call now; false: not now"),
            ("date", "date", "the shift overlaps; eq/ge/le/gt/lt"),
        ],
        Kind::AuditEvent => &[
            ("_id", "token", "entry id (wardline-audit-{sequence})"),
            ("date", "date", "when recorded; eq/ge/le/gt/lt"),
            ("agent", "reference", "Practitioner/{user id} who acted"),
            ("subtype", "token", "Wardline action, e.g. fhir.view"),
            ("entity-type", "token", "kind of thing acted on"),
            ("outcome", "token", "0 (success) | 4 (failure)"),
        ],
        _ => &[],
    }
}

/// Parameters every search takes besides the type's own.
const COMMON: [&str; 3] = ["_count", "_offset", "_format"];

/// A search request after parsing.
#[derive(Debug)]
pub struct Search<Q> {
    /// The store's criteria.
    pub query: Q,
    /// The page asked for.
    pub page: Page,
    /// The parameters applied, for the `self` and `next` links (values as the client sent them).
    pub applied: Vec<(String, String)>,
}

/// The type's parameters by name after the common checks.
struct Params<'a> {
    kind: Kind,
    values: Vec<(&'a str, &'a str)>,
    page: Page,
    applied: Vec<(String, String)>,
}

impl<'a> Params<'a> {
    fn one(&self, name: &str) -> Option<&'a str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.values
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn reference(&self, names: &[&str], target: &str) -> Result<Option<String>> {
        let Some(v) = names.iter().find_map(|n| self.one(n)) else {
            return Ok(None);
        };
        // A bare id, or a reference to the right type.
        let id = if v.contains('/') {
            super::input::id_in(v, target)
        } else {
            Some(v)
        };
        let id = id.ok_or_else(|| {
            Error::BadRequest(format!(
                "{} search: '{}' must reference a {target}",
                self.kind.as_str(),
                names[0]
            ))
        })?;
        Ok(Some(id.to_string()))
    }
}

/// Splits the query into the type's parameters and the page; applies the unknown-parameter rule.
fn params<'a>(kind: Kind, pairs: &'a [(String, String)], strict: bool) -> Result<Params<'a>> {
    let known = supported(kind);
    let mut values = Vec::new();
    let mut applied = Vec::new();
    let mut page = Page {
        offset: 0,
        count: DEFAULT_COUNT,
    };
    for (name, value) in pairs {
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b, Some(m)),
            None => (name.as_str(), None),
        };
        let is_known = known.iter().any(|(n, _, _)| *n == base) || COMMON.contains(&base);
        if let Some(m) = modifier.filter(|_| is_known) {
            return Err(Error::BadRequest(format!(
                "search modifier ':{m}' on '{base}' is not supported"
            )));
        }
        if !is_known {
            if strict {
                return Err(Error::BadRequest(format!(
                    "search parameter '{name}' is not supported for {}",
                    kind.as_str()
                )));
            }
            continue;
        }
        match base {
            "_format" => continue,
            "_count" => page.count = number(name, value)?.clamp(1, MAX_COUNT),
            "_offset" => page.offset = number(name, value)?,
            _ => {
                if value.contains(',') && !matches!(base, "name" | "family" | "given") {
                    return Err(Error::BadRequest(format!(
                        "'{base}': lists of values (a,b) are not supported"
                    )));
                }
                if value.is_empty() {
                    return Err(Error::BadRequest(format!("'{base}' has no value")));
                }
                values.push((base, value.as_str()));
            }
        }
        if base != "_offset" {
            applied.push((name.clone(), value.clone()));
        }
    }
    for (n, _, ty) in known {
        if *ty != "date" && values.iter().filter(|(v, _)| v == n).count() > 1 {
            return Err(Error::BadRequest(format!("'{n}' may be given only once")));
        }
    }
    Ok(Params {
        kind,
        values,
        page,
        applied,
    })
}

fn number(name: &str, value: &str) -> Result<u32> {
    value
        .parse()
        .map_err(|_| Error::BadRequest(format!("'{name}' must be a non-negative whole number")))
}

/// `system|value`, `|value` (no system: Wardline's identifiers always have one, so the empty
/// system matches nothing) or `value` (any system).
fn token(v: &str) -> (Option<String>, String) {
    match v.split_once('|') {
        Some((system, value)) => (Some(system.to_string()), value.to_string()),
        None => (None, v.to_string()),
    }
}

/// Patient search.
pub fn patient(pairs: &[(String, String)], strict: bool) -> Result<Search<PatientQuery>> {
    let p = params(Kind::Patient, pairs, strict)?;
    let (identifier_system, identifier_value) = match p.one("identifier").map(token) {
        Some((s, v)) => (s, Some(v)),
        None => (None, None),
    };
    let (from, to) = date_range("birthdate", p.all("birthdate"))?;
    let query = PatientQuery {
        id: p.one("_id").map(str::to_string),
        identifier_system,
        identifier_value,
        name: p.one("name").map(str::to_string),
        family: p.one("family").map(str::to_string),
        given: p.one("given").map(str::to_string),
        birth_from: from.map(day),
        birth_to: to.map(day),
    };
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

/// Encounter search.
pub fn encounter(pairs: &[(String, String)], strict: bool) -> Result<Search<EncounterQuery>> {
    let p = params(Kind::Encounter, pairs, strict)?;
    let (identifier_system, identifier_value) = match p.one("identifier").map(token) {
        Some((s, v)) => (s, Some(v)),
        None => (None, None),
    };
    let (date_from, date_to) = date_range("date", p.all("date"))?;
    let status = p.one("status").map(str::to_string);
    if let Some(s) = &status
        && !["planned", "in-progress", "finished", "cancelled"].contains(&s.as_str())
    {
        return Err(Error::BadRequest(format!(
            "Encounter status '{s}' is not one Wardline keeps"
        )));
    }
    let query = EncounterQuery {
        id: p.one("_id").map(str::to_string),
        identifier_system,
        identifier_value,
        patient_id: p.reference(&["patient", "subject"], "Patient")?,
        status,
        location: p
            .one("location")
            .map(|l| l.trim_start_matches("Location/").to_string()),
        date_from,
        date_to,
    };
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

/// CareTeam search.
pub fn care_team(pairs: &[(String, String)], strict: bool) -> Result<Search<TeamQuery>> {
    let p = params(Kind::CareTeam, pairs, strict)?;
    let statuses = match p.one("status") {
        None => None,
        Some("active") => Some(("active".to_string(), "active".to_string())),
        Some("inactive") => Some(("read_only".to_string(), "archived".to_string())),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "CareTeam status '{other}' is not one Wardline keeps"
            )));
        }
    };
    let query = TeamQuery {
        id: p.one("_id").map(str::to_string),
        encounter_id: p.reference(&["encounter"], "Encounter")?,
        patient_id: p.reference(&["patient", "subject"], "Patient")?,
        statuses,
    };
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

/// Communication search.
pub fn communication(pairs: &[(String, String)], strict: bool) -> Result<Search<MessageQuery>> {
    let p = params(Kind::Communication, pairs, strict)?;
    let (sent_from, sent_to) = date_range("sent", p.all("sent").chain(p.all("_lastUpdated")))?;
    let priority = p.one("priority").map(str::to_string);
    if let Some(v) = &priority
        && !["routine", "urgent", "stat"].contains(&v.as_str())
    {
        return Err(Error::BadRequest(format!(
            "priority '{v}' is not one Wardline uses (routine, urgent, stat)"
        )));
    }
    let query = MessageQuery {
        id: p.one("_id").map(str::to_string),
        encounter_id: p.reference(&["encounter"], "Encounter")?,
        patient_id: p.reference(&["patient", "subject"], "Patient")?,
        sender_id: p.reference(&["sender"], "Practitioner")?,
        room_id: p.reference(&["recipient"], "CareTeam")?,
        priority,
        sent_from,
        sent_to,
    };
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

/// Practitioner search.
pub fn practitioner(
    pairs: &[(String, String)],
    strict: bool,
    npi_system: &str,
) -> Result<Search<PractitionerQuery>> {
    let p = params(Kind::Practitioner, pairs, strict)?;
    let mut query = PractitionerQuery {
        id: p.one("_id").map(str::to_string),
        name: p.one("name").map(str::to_string),
        ..Default::default()
    };
    match p.one("identifier").map(token) {
        Some((Some(s), v)) if s == super::resources::USERNAME_SYSTEM => query.username = Some(v),
        Some((Some(s), v)) if s == npi_system => query.npi = Some(v),
        // An identifier system Wardline does not assign matches nothing.
        Some((Some(_), _)) => query.id = Some(String::new()),
        Some((None, v)) => query.npi = Some(v),
        None => {}
    }
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

/// PractitionerRole search: on-call shifts (`active` is judged at `now_ms`).
pub fn practitioner_role(
    pairs: &[(String, String)],
    strict: bool,
    now_ms: i64,
) -> Result<Search<crate::store::oncall::ShiftQuery>> {
    let p = params(Kind::PractitionerRole, pairs, strict)?;
    let (from, to) = date_range("date", p.all("date"))?;
    let (covering, not_covering) = match p.one("active") {
        None => (None, None),
        Some("true") => (Some(now_ms), None),
        Some("false") => (None, Some(now_ms)),
        Some(_) => return Err(Error::BadRequest("'active' must be true or false".into())),
    };
    let query = crate::store::oncall::ShiftQuery {
        id: p.one("_id").map(str::to_string),
        service: p.one("service").or(p.one("specialty")).map(|t| token(t).1),
        user_id: p.reference(&["practitioner"], "Practitioner")?,
        covering,
        not_covering,
        from,
        to,
    };
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

/// AuditEvent search (auditors only; the caller checks the grant).
pub fn audit_event(pairs: &[(String, String)], strict: bool) -> Result<Search<crate::store::audit::Filter>> {
    let p = params(Kind::AuditEvent, pairs, strict)?;
    let (from, to) = date_range("date", p.all("date"))?;
    // An id that is not one of ours matches nothing (sequence 0 is never used).
    let seq = p.one("_id").map(|id| {
        id.strip_prefix("wardline-audit-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    });
    let outcome = match p.one("outcome") {
        None => None,
        Some("0") => Some("success".to_string()),
        Some("4" | "8" | "12") => Some("failure".to_string()),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "AuditEvent outcome '{other}' must be 0, 4, 8 or 12"
            )));
        }
    };
    let query = crate::store::audit::Filter {
        actor_id: p.reference(&["agent"], "Practitioner")?,
        action: p.one("subtype").map(|t| token(t).1),
        entity_type: p.one("entity-type").map(|t| token(t).1),
        outcome,
        from_ms: from,
        // The store's upper bound is exclusive.
        to_ms: to.map(|t| t + 1),
        seq,
        ..Default::default()
    };
    Ok(Search {
        query,
        page: p.page,
        applied: p.applied,
    })
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
