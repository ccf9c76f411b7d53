//! `_include` where it is cheap (SPEC §4): the resources a page's matches reference through a
//! few well-known elements (an Encounter's subject, a message's sender...) come along in the same
//! Bundle as `search.mode = include`, each fetched as the caller may see it.

use std::collections::BTreeSet;

use serde_json::Value;
use wardline_fhir_wire::Kind;

use crate::error::{Error, Result};

/// One supported `_include`: on `on`, the value `name` follows the references at `paths` (a
/// trailing `[]` segment walks an array) to resources of type `target`.
pub struct Include {
    /// The searched type.
    pub on: Kind,
    /// `Type:parameter`, as the client writes it.
    pub name: &'static str,
    /// Where the references are.
    pub path: &'static [&'static str],
    /// What they point at.
    pub target: Kind,
}

const fn inc(on: Kind, name: &'static str, path: &'static [&'static str], target: Kind) -> Include {
    Include {
        on,
        name,
        path,
        target,
    }
}

/// Every supported `_include`.
pub const INCLUDES: &[Include] = &[
    inc(Kind::Encounter, "Encounter:subject", &["subject"], Kind::Patient),
    inc(Kind::Encounter, "Encounter:patient", &["subject"], Kind::Patient),
    inc(
        Kind::Encounter,
        "Encounter:participant",
        &["participant[]", "individual"],
        Kind::Practitioner,
    ),
    inc(Kind::CareTeam, "CareTeam:subject", &["subject"], Kind::Patient),
    inc(Kind::CareTeam, "CareTeam:patient", &["subject"], Kind::Patient),
    inc(
        Kind::CareTeam,
        "CareTeam:encounter",
        &["encounter"],
        Kind::Encounter,
    ),
    inc(
        Kind::CareTeam,
        "CareTeam:participant",
        &["participant[]", "member"],
        Kind::Practitioner,
    ),
    inc(
        Kind::Communication,
        "Communication:sender",
        &["sender"],
        Kind::Practitioner,
    ),
    inc(
        Kind::Communication,
        "Communication:subject",
        &["subject"],
        Kind::Patient,
    ),
    inc(
        Kind::Communication,
        "Communication:patient",
        &["subject"],
        Kind::Patient,
    ),
    inc(
        Kind::Communication,
        "Communication:encounter",
        &["encounter"],
        Kind::Encounter,
    ),
    inc(
        Kind::PractitionerRole,
        "PractitionerRole:practitioner",
        &["practitioner"],
        Kind::Practitioner,
    ),
];

/// The `_include` values `kind` supports (for the CapabilityStatement).
pub fn supported(kind: Kind) -> Vec<&'static str> {
    INCLUDES.iter().filter(|i| i.on == kind).map(|i| i.name).collect()
}

/// A search's parameters without `_include`, and the includes asked for.
pub type Split = (Vec<(String, String)>, Vec<&'static Include>);

/// Takes the `_include` parameters out of a search: the remaining parameters and the includes.
/// An unsupported one (or `_include:iterate`, `_revinclude`) is a 400 under strict handling and
/// otherwise ignored, like any unknown parameter.
pub fn split(kind: Kind, pairs: &[(String, String)], strict: bool) -> Result<Split> {
    let mut rest = Vec::new();
    let mut wanted: Vec<&'static Include> = Vec::new();
    for (name, value) in pairs {
        if name != "_include" {
            rest.push((name.clone(), value.clone()));
            continue;
        }
        match INCLUDES.iter().find(|i| i.on == kind && i.name == value) {
            Some(i) if !wanted.iter().any(|w| w.name == i.name) => wanted.push(i),
            Some(_) => {}
            None if strict => {
                return Err(Error::BadRequest(format!(
                    "_include={value} is not supported for {} (supported: {})",
                    kind.as_str(),
                    supported(kind).join(", ")
                )));
            }
            None => {}
        }
    }
    Ok((rest, wanted))
}

fn walk<'a>(v: &'a Value, path: &[&str], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = path.split_first() else {
        out.push(v);
        return;
    };
    match first.strip_suffix("[]") {
        Some(name) => {
            for item in v[name].as_array().into_iter().flatten() {
                walk(item, rest, out);
            }
        }
        None => walk(&v[*first], rest, out),
    }
}

/// The `(type, id)` pairs the includes reach from `matches`, each once, in order.
pub fn references(matches: &[Value], includes: &[&Include]) -> Vec<(Kind, String)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for include in includes {
        for m in matches {
            let mut found = Vec::new();
            walk(m, include.path, &mut found);
            for reference in found {
                if let Some(id) = super::input::reference_id(reference, include.target.as_str())
                    && seen.insert((include.target.as_str(), id.clone()))
                {
                    out.push((include.target, id));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn includes_are_split_out_and_checked() {
        let p = pairs(&[
            ("status", "in-progress"),
            ("_include", "Encounter:subject"),
            ("_include", "Encounter:subject"),
        ]);
        let (rest, inc) = split(Kind::Encounter, &p, true).unwrap();
        assert_eq!(rest, pairs(&[("status", "in-progress")]));
        assert_eq!(inc.len(), 1);
        let bad = pairs(&[("_include", "Encounter:location")]);
        assert!(split(Kind::Encounter, &bad, true).is_err());
        assert!(split(Kind::Encounter, &bad, false).unwrap().1.is_empty());
        assert!(split(Kind::Patient, &pairs(&[("_include", "Encounter:subject")]), true).is_err());
    }

    #[test]
    fn references_follow_paths_and_arrays_once() {
        let e1 = json!({"subject": {"reference": "Patient/p1"},
            "participant": [{"individual": {"reference": "Practitioner/u1"}}, {"individual": {"reference": "Practitioner/u2"}}]});
        let e2 = json!({"subject": {"reference": "Patient/p1"}, "participant": [{"individual": {"reference": "Practitioner/u2"}}]});
        let incs: Vec<&Include> = INCLUDES
            .iter()
            .filter(|i| i.name == "Encounter:subject" || i.name == "Encounter:participant")
            .collect();
        let refs = references(&[e1, e2], &incs);
        assert_eq!(
            refs,
            vec![
                (Kind::Patient, "p1".to_string()),
                (Kind::Practitioner, "u1".to_string()),
                (Kind::Practitioner, "u2".to_string())
            ]
        );
    }
}
