//! The `[hl7]` configuration: the listener's limits and the site-specific mapping an interface
//! analyst sets up once per hospital (which identifier is the MRN, which is the visit number, how
//! practitioner ids find users, which location belongs to which unit team). Everything has a
//! default that works with the fixtures, so a fresh install accepts a feed at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// HL7 v2 interface settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Hl7Config {
    /// Whether `serve` opens the MLLP listener at all.
    pub enabled: bool,
    /// PID-3 / MRG-1 assigning authority (CX.4) of the MRN; empty accepts any authority.
    pub mrn_authority: String,
    /// Identifier type code (CX.5) of the MRN; empty accepts any type.
    pub mrn_type: String,
    /// FHIR identifier system under which MRNs are stored (also used by SMART matching).
    pub mrn_system: String,
    /// Assigning authority (CX.4) that PV1-19 must carry; empty accepts any.
    pub visit_authority: String,
    /// FHIR identifier system under which visit numbers are stored.
    pub visit_system: String,
    /// What XCN.1 of PV1-7/9/17 is matched against when no explicit mapping names it.
    pub practitioner_key: PractitionerKey,
    /// Explicit practitioner id (XCN.1) → Wardline username; wins over `practitioner_key`.
    pub practitioners: BTreeMap<String, String>,
    /// Point of care (PV1-3.1) → usernames of that unit's care team.
    pub unit_teams: BTreeMap<String, Vec<String>>,
    /// IANA time zone for HL7 times that carry no offset.
    pub timezone: String,
    /// What to do with ADT events outside the supported table.
    pub unsupported_events: UnsupportedEvents,
    /// After discharge, the room stays writable this long, then becomes read-only.
    pub discharge_grace_secs: u64,
    /// After discharge, the room is archived this long later (retention counts from then).
    pub archive_after_secs: u64,
    /// Largest accepted MLLP frame in bytes.
    pub max_frame_bytes: usize,
    /// An MLLP connection silent this long is closed.
    pub idle_timeout_secs: u64,
    /// Most concurrent MLLP connections; more wait in the accept queue.
    pub max_connections: usize,
    /// Most messages committed in one transaction by the ingest writer.
    pub max_batch: usize,
    /// TLS for the MLLP listener (rustls); plain TCP when unset.
    pub tls: crate::config::TlsConfig,
}

/// The user attribute a practitioner id is looked up by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PractitionerKey {
    /// The user's NPI.
    Npi,
    /// The user's username.
    Username,
}

/// Accept-and-ignore or reject ADT events Wardline does not act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedEvents {
    /// AA, recorded as ignored (SPEC default).
    Accept,
    /// AR with code 200.
    Reject,
}

impl Default for Hl7Config {
    fn default() -> Self {
        Self {
            enabled: true,
            mrn_authority: String::new(),
            mrn_type: "MR".into(),
            mrn_system: "urn:wardline:mrn".into(),
            visit_authority: String::new(),
            visit_system: "urn:wardline:visit".into(),
            practitioner_key: PractitionerKey::Npi,
            practitioners: BTreeMap::new(),
            unit_teams: BTreeMap::new(),
            timezone: "UTC".into(),
            unsupported_events: UnsupportedEvents::Accept,
            discharge_grace_secs: 24 * 3600,
            archive_after_secs: 30 * 24 * 3600,
            max_frame_bytes: 1024 * 1024,
            idle_timeout_secs: 300,
            max_connections: 256,
            max_batch: 256,
            tls: Default::default(),
        }
    }
}

impl Hl7Config {
    /// The configured zone, or an error naming the bad value (checked at start-up).
    pub fn zone(&self) -> Result<chrono_tz::Tz, String> {
        self.timezone
            .parse()
            .map_err(|_| format!("hl7.timezone {:?} is not an IANA time zone", self.timezone))
    }

    /// Whether a CX identifier (value, authority CX.4.1, type CX.5) is the MRN.
    pub fn is_mrn(&self, authority: &str, type_code: &str) -> bool {
        (self.mrn_authority.is_empty() || self.mrn_authority.eq_ignore_ascii_case(authority))
            && (self.mrn_type.is_empty() || self.mrn_type.eq_ignore_ascii_case(type_code))
    }

    /// Whether a visit number's authority is acceptable.
    pub fn is_visit_authority(&self, authority: &str) -> bool {
        self.visit_authority.is_empty() || self.visit_authority.eq_ignore_ascii_case(authority)
    }

    /// Where TLS files are, when both are set.
    pub fn tls_files(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.tls.cert_file.as_ref().zip(self.tls.key_file.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrn_selection_by_authority_and_type() {
        let mut c = Hl7Config::default();
        assert!(c.is_mrn("GENHOSP", "MR"));
        assert!(c.is_mrn("OTHER", "mr"));
        assert!(!c.is_mrn("GENHOSP", "PI"));
        c.mrn_authority = "GENHOSP".into();
        assert!(!c.is_mrn("OTHER", "MR"));
        c.mrn_type.clear();
        assert!(c.is_mrn("GENHOSP", "PI"));
    }

    #[test]
    fn timezone_is_checked() {
        let mut c = Hl7Config::default();
        assert!(c.zone().is_ok());
        c.timezone = "Europe/Berlin".into();
        assert_eq!(c.zone().unwrap(), chrono_tz::Europe::Berlin);
        c.timezone = "Mars/Olympus".into();
        assert!(c.zone().unwrap_err().contains("Mars/Olympus"));
    }
}
