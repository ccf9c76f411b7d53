//! What a site configures for SMART EHR launch: which EHRs may launch Wardline (each with the
//! client registration it gave Wardline) and how the launched patient is matched.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::assertion::ClientKey;
use crate::config::Secret;

/// The `smart` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SmartConfig {
    /// The EHR FHIR bases allowed as `iss`; a launch naming any other is refused before any
    /// request leaves Wardline (an attacker's `iss` must not make us talk to their server).
    pub issuers: Vec<TrustedIssuer>,
    /// The identifier system of the MRN in the EHR's Patient; defaults to `hl7.mrn_system`.
    pub mrn_system: Option<String>,
    /// The identifier system of the visit number in the EHR's Encounter; defaults to
    /// `hl7.visit_system`.
    pub visit_system: Option<String>,
    /// Whether the normalised name may be the second identifier when a birth date is missing
    /// (SPEC §5 step 6: "where configured").
    pub name_as_second: bool,
    /// Shown on the refusal page: whom a clinician calls when the records disagree.
    pub contact: Option<String>,
    /// Extra origins allowed to frame the web app (`frame-ancestors`) besides each trusted
    /// `iss`'s own origin — the EHR's user interface often lives at another origin than its FHIR
    /// server (e.g. `https://ehr-ui.example.org`).
    pub frame_ancestors: Vec<String>,
    /// Whether a clinician who opens a patient's room from the EHR chart joins it (reason
    /// `ehr_launch`, visible to the room and audited) — the EHR has put them in this patient's
    /// context. Off: only existing members get in; others are pointed to break-glass.
    pub join_on_launch: bool,
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            mrn_system: None,
            visit_system: None,
            name_as_second: false,
            contact: None,
            frame_ancestors: Vec::new(),
            join_on_launch: true,
        }
    }
}

impl SmartConfig {
    /// The trusted issuer whose FHIR base is `iss` (compared without a trailing slash).
    pub fn issuer(&self, iss: &str) -> Option<&TrustedIssuer> {
        let iss = iss.trim_end_matches('/');
        self.issuers.iter().find(|i| i.iss.trim_end_matches('/') == iss)
    }
}

/// One EHR that may launch Wardline, with the registration it issued.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustedIssuer {
    /// The EHR's FHIR base URL, exactly as it sends it in `iss`.
    pub iss: String,
    /// The client id the EHR registered Wardline under.
    pub client_id: String,
    /// Set for a confidential client (sent with HTTP Basic at the token endpoint); absent for a
    /// public client, which relies on PKCE alone.
    pub client_secret: Option<Secret>,
    /// For an asymmetric confidential client (`private_key_jwt`): Wardline's PKCS#1 RSA private
    /// key; the public half is served at `/smart/jwks.json` for the EHR. Wins over the secret.
    pub client_key_file: Option<PathBuf>,
    /// The `kid` of that key (default `wardline-1`).
    pub client_key_id: Option<String>,
}

impl TrustedIssuer {
    /// The `private_key_jwt` key, when one is configured.
    pub fn client_key(&self) -> Result<Option<ClientKey>, String> {
        self.client_key_file
            .as_deref()
            .map(|path| ClientKey::load(path, self.client_key_id.as_deref().unwrap_or("wardline-1")))
            .transpose()
    }
}
