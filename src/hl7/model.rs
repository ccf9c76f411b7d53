//! The typed ADT message that reading produces and the event table consumes: headers, events,
//! patients, visits, and the two kinds of refusal (AR [`Rejection`], AE [`Problem`]).

use chrono::{DateTime, Utc};

use super::er7::Delimiters;

/// The MSH facts an ACK and the duplicate check need, owned so they outlive the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Delimiters declared in MSH-1/MSH-2, reused in the ACK.
    pub delimiters: Delimiters,
    /// MSH-3 as sent.
    pub sending_application: String,
    /// MSH-4 as sent.
    pub sending_facility: String,
    /// MSH-5 as sent.
    pub receiving_application: String,
    /// MSH-6 as sent.
    pub receiving_facility: String,
    /// MSH-10 as sent.
    pub control_id: String,
    /// MSH-9.1, e.g. `ADT`.
    pub message_type: String,
    /// MSH-9.2, or EVN-1 when MSH-9.2 is empty.
    pub trigger: String,
    /// MSH-12.
    pub version: String,
    /// MSH-11 (`P`, `T`, `D`), echoed in the ACK.
    pub processing_id: String,
}

impl Header {
    /// `ADT^A01`-style label for listings (no patient data).
    pub fn type_label(&self) -> String {
        format!("{}^{}", self.message_type, self.trigger)
    }
}

/// An AR: the message cannot be taken at all (nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HL7 table 0357 code.
    pub code: &'static str,
    /// The MSH field at fault, when one is.
    pub location: Option<(String, u32, u32)>,
    /// Reason for the interface analyst.
    pub reason: String,
}

/// An AE: the message was read but its content cannot be applied (it is stored as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// HL7 table 0357 code: 100 segment, 101 required field missing, 102 data type, 204 unknown key.
    pub code: &'static str,
    /// Segment id, its position from 1, and the field.
    pub location: Option<(String, u32, u32)>,
    /// Reason naming fields, never their values (no PHI in ACKs and logs).
    pub reason: String,
}

impl Rejection {
    pub(super) fn at(code: &'static str, field: u32, reason: impl Into<String>) -> Self {
        Self {
            code,
            location: Some(("MSH".into(), 1, field)),
            reason: reason.into(),
        }
    }
}

impl Problem {
    pub(super) fn at(code: &'static str, segment: &str, field: u32, reason: impl Into<String>) -> Self {
        Self {
            code,
            location: Some((segment.into(), 1, field)),
            reason: reason.into(),
        }
    }
}

/// The ADT events Wardline acts on (SPEC §3 event table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Trigger {
    A01,
    A02,
    A03,
    A04,
    A05,
    A06,
    A07,
    A08,
    A11,
    A12,
    A13,
    A31,
    A40,
}

impl Trigger {
    pub(super) fn parse(code: &str) -> Option<Self> {
        Some(match code.to_ascii_uppercase().as_str() {
            "A01" => Self::A01,
            "A02" => Self::A02,
            "A03" => Self::A03,
            "A04" => Self::A04,
            "A05" => Self::A05,
            "A06" => Self::A06,
            "A07" => Self::A07,
            "A08" => Self::A08,
            "A11" => Self::A11,
            "A12" => Self::A12,
            "A13" => Self::A13,
            "A31" => Self::A31,
            "A40" => Self::A40,
            _ => return None,
        })
    }

    /// Whether the event is about an encounter (needs PV1-19).
    pub fn needs_visit(self) -> bool {
        !matches!(self, Self::A08 | Self::A31 | Self::A40)
    }
}

/// Encounter class from PV1-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `I`, and `P` (pre-admit of an inpatient stay).
    Inpatient,
    /// `O`, `R` (recurring), `B` (obstetrics outpatient).
    Outpatient,
    /// `E`.
    Emergency,
}

impl Class {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Inpatient => "inpatient",
            Class::Outpatient => "outpatient",
            Class::Emergency => "emergency",
        }
    }
}

/// A point of care (PV1-3): unit, room, bed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// PL.1 point of care (the unit).
    pub unit: Option<String>,
    /// PL.2 room.
    pub room: Option<String>,
    /// PL.3 bed.
    pub bed: Option<String>,
}

impl Location {
    /// `4W 412 A`-style text for system messages; `unknown location` when empty.
    pub fn label(&self) -> String {
        let parts: Vec<&str> = [&self.unit, &self.room, &self.bed]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            "unknown location".into()
        } else {
            parts.join(" ")
        }
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.unit.is_none() && self.room.is_none() && self.bed.is_none()
    }
}

/// Demographics from PID (name from the first PID-5 repetition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demographics {
    /// XPN.1.1 surname.
    pub family: Option<String>,
    /// XPN.2.
    pub given: Option<String>,
    /// FHIR date from PID-7.
    pub birth_date: Option<String>,
    /// FHIR administrative gender from PID-8.
    pub sex: Option<String>,
}

/// The patient named by PID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    /// The MRN chosen by the mapping.
    pub mrn: String,
    /// Every other PID-3 identifier, as (authority, type, value).
    pub other_ids: Vec<(String, String, String)>,
    /// Name, birth date, sex.
    pub demographics: Demographics,
}

/// The visit named by PV1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visit {
    /// PV1-19 CX.1.
    pub number: Option<String>,
    /// PV1-2, when present and known.
    pub class: Option<Class>,
    /// PV1-3.
    pub location: Location,
    /// PV1-7 ids (XCN.1), all repetitions.
    pub attending: Vec<String>,
    /// PV1-9 ids.
    pub consulting: Vec<String>,
    /// PV1-17 ids.
    pub admitting: Vec<String>,
    /// PV1-44.
    pub admitted_at: Option<DateTime<Utc>>,
    /// PV1-45.
    pub discharged_at: Option<DateTime<Utc>>,
}

/// A readable, applicable ADT event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adt {
    /// What happened.
    pub trigger: Trigger,
    /// EVN-2, else MSH-7: decides which of two events about the same thing is newer.
    pub event_at: DateTime<Utc>,
    /// The patient (for A40, the survivor).
    pub patient: Patient,
    /// The visit, when PV1 is present.
    pub visit: Option<Visit>,
    /// A40: the MRN of the patient merged away (MRG-1).
    pub prior_mrn: Option<String>,
}

/// What a readable ADT message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An event of the table.
    Event(Box<Adt>),
    /// An ADT trigger outside the table (e.g. A28), recorded as ignored.
    Unsupported(String),
}
