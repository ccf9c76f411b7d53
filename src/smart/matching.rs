//! The two-identifier patient match (Joint Commission NPSG.01.01.01, SPEC §5 step 6): the room of
//! the patient the EHR launched with opens only when at least two independent identifiers agree
//! between the EHR's Patient and Wardline's record — the MRN and the birth date, or, where the
//! site allows it, the MRN and the normalised name. Any identifier that is compared and differs
//! refuses the match, whatever else agrees; location is never an identifier.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// What one side knows about the patient.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The identifier with the configured MRN system.
    pub mrn: Option<String>,
    /// FHIR date; only a full `YYYY-MM-DD` date counts as an identifier.
    pub birth_date: Option<String>,
    /// Family name.
    pub family: Option<String>,
    /// Given names (the first is compared).
    pub given: Option<String>,
}

/// The site's matching rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Whether the normalised name may be the second identifier when a birth date is missing.
    pub name_as_second: bool,
}

/// An identifier that took part in the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identifier {
    /// Medical record number.
    Mrn,
    /// Date of birth.
    BirthDate,
    /// Family and first given name, normalised.
    Name,
}

/// Why the room stays closed (audited as `patient-match-failure`; no values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The EHR's Patient has no MRN in the configured system, or Wardline has none.
    MrnMissing,
    /// The MRNs differ.
    MrnDiffers,
    /// The birth dates differ.
    BirthDateDiffers,
    /// The names differ (when names are compared).
    NameDiffers,
    /// Only the MRN could be compared: no second identifier on both sides.
    OnlyOneIdentifier,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Two identifiers agree and none conflicts: open the room.
    Match([Identifier; 2]),
    /// Keep the room closed.
    Refuse(Refusal),
}

/// A full FHIR date (`YYYY-MM-DD`), the only birth date precise enough to identify.
fn full_date(d: Option<&str>) -> Option<&str> {
    d.filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
}

/// Name normalisation: compatibility decomposition, accents removed, letters only, upper case
/// (`Müller-Lüdenscheidt` = `MULLERLUDENSCHEIDT`, `O'Brien` = `OBRIEN`).
pub fn normalise(name: &str) -> String {
    name.nfkd()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_uppercase)
        .collect()
}

fn name_key(id: &Identity) -> Option<(String, String)> {
    let family = normalise(id.family.as_deref()?);
    let given = normalise(id.given.as_deref()?.split_whitespace().next()?);
    (!family.is_empty() && !given.is_empty()).then_some((family, given))
}

/// Decides whether the EHR's patient is Wardline's patient.
pub fn decide(ehr: &Identity, ours: &Identity, policy: Policy) -> Verdict {
    let (Some(a), Some(b)) = (
        ehr.mrn.as_deref().map(str::trim),
        ours.mrn.as_deref().map(str::trim),
    ) else {
        return Verdict::Refuse(Refusal::MrnMissing);
    };
    if a.is_empty() || b.is_empty() {
        return Verdict::Refuse(Refusal::MrnMissing);
    }
    if a != b {
        return Verdict::Refuse(Refusal::MrnDiffers);
    }
    let dates = (
        full_date(ehr.birth_date.as_deref()),
        full_date(ours.birth_date.as_deref()),
    );
    let names = if policy.name_as_second {
        (name_key(ehr), name_key(ours))
    } else {
        (None, None)
    };
    // Any compared identifier that conflicts refuses, even if another agrees.
    if let (Some(x), Some(y)) = dates
        && x != y
    {
        return Verdict::Refuse(Refusal::BirthDateDiffers);
    }
    if let (Some(x), Some(y)) = &names
        && x != y
    {
        return Verdict::Refuse(Refusal::NameDiffers);
    }
    match (dates, names) {
        ((Some(_), Some(_)), _) => Verdict::Match([Identifier::Mrn, Identifier::BirthDate]),
        (_, (Some(_), Some(_))) => Verdict::Match([Identifier::Mrn, Identifier::Name]),
        _ => Verdict::Refuse(Refusal::OnlyOneIdentifier),
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
