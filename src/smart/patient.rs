//! Reading what the EHR sent (pure): the identity of its Patient for the match, whether its
//! Encounter belongs to that Patient, and which resource `fhirUser` names.

use serde_json::Value;

use super::matching::Identity;
use crate::fhir::input::{id_in, reference_id};

/// The identifiers of an EHR Patient: the MRN is the identifier with `mrn_system`; the name is
/// the `official` one, else the first.
pub fn ehr_identity(patient: &Value, mrn_system: &str) -> Identity {
    let mrn = patient["identifier"].as_array().and_then(|ids| {
        ids.iter()
            .find(|i| i["system"].as_str() == Some(mrn_system))
            .and_then(|i| i["value"].as_str())
            .map(str::to_string)
    });
    let names = patient["name"].as_array().cloned().unwrap_or_default();
    let name = names
        .iter()
        .find(|n| n["use"].as_str() == Some("official"))
        .or_else(|| names.first());
    Identity {
        mrn,
        birth_date: patient["birthDate"].as_str().map(str::to_string),
        family: name.and_then(|n| n["family"].as_str()).map(str::to_string),
        given: name.and_then(|n| n["given"][0].as_str()).map(str::to_string),
    }
}

/// Whether the EHR's Encounter is about the EHR's Patient `patient_id` (SPEC §5 step 6: the
/// encounter from the token must belong to the matched patient).
pub fn encounter_is_of(encounter: &Value, patient_id: &str) -> bool {
    reference_id(&encounter["subject"], "Patient").as_deref() == Some(patient_id)
}

/// The Practitioner id in a `fhirUser` claim (`Practitioner/123` or an absolute URL ending so);
/// other resource types (Patient, RelatedPerson) are not clinicians and get nothing.
pub fn practitioner_id(fhir_user: &str) -> Option<&str> {
    id_in(fhir_user, "Practitioner").filter(|id| !id.is_empty())
}

/// The absolute URL of `fhir_user` at the EHR whose FHIR base is `iss`; `None` for an absolute
/// URL outside that base (one trusted EHR must not name a user another EHR's directory links).
pub fn fhir_user_url(fhir_user: &str, iss: &str) -> Option<String> {
    let base = format!("{}/", iss.trim_end_matches('/'));
    if fhir_user.contains("://") {
        fhir_user.starts_with(&base).then(|| fhir_user.to_string())
    } else {
        Some(format!("{base}{}", fhir_user.trim_start_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identity_comes_from_the_mrn_system_and_the_official_name() {
        let p = json!({
            "resourceType": "Patient",
            "identifier": [
                {"system": "urn:other", "value": "X1"},
                {"system": "urn:mrn", "value": "MRN-1"}
            ],
            "name": [{"use": "nickname", "family": "Bob"}, {"use": "official", "family": "Müller", "given": ["Anna", "B"]}],
            "birthDate": "1970-01-02"
        });
        let id = ehr_identity(&p, "urn:mrn");
        assert_eq!(id.mrn.as_deref(), Some("MRN-1"));
        assert_eq!(id.family.as_deref(), Some("Müller"));
        assert_eq!(id.given.as_deref(), Some("Anna"));
        assert_eq!(id.birth_date.as_deref(), Some("1970-01-02"));
        let none = ehr_identity(&json!({"resourceType": "Patient"}), "urn:mrn");
        assert_eq!(none, Identity::default());
    }

    #[test]
    fn encounter_subject_must_be_the_patient() {
        let e = json!({"subject": {"reference": "Patient/p1"}});
        assert!(encounter_is_of(&e, "p1"));
        assert!(!encounter_is_of(&e, "p2"));
        let abs = json!({"subject": {"reference": "https://ehr.example/fhir/Patient/p1"}});
        assert!(encounter_is_of(&abs, "p1"));
        assert!(!encounter_is_of(&json!({}), "p1"));
    }

    #[test]
    fn fhir_user_urls_stay_under_the_ehr() {
        let iss = "https://ehr.example/fhir/";
        assert_eq!(
            fhir_user_url("Practitioner/7", iss).as_deref(),
            Some("https://ehr.example/fhir/Practitioner/7")
        );
        assert_eq!(
            fhir_user_url("https://ehr.example/fhir/Practitioner/7", iss).as_deref(),
            Some("https://ehr.example/fhir/Practitioner/7")
        );
        assert_eq!(
            fhir_user_url("https://other.example/fhir/Practitioner/7", iss),
            None
        );
        assert_eq!(
            fhir_user_url("https://ehr.example/fhirx/Practitioner/7", iss),
            None
        );
    }

    #[test]
    fn fhir_user_names_a_practitioner() {
        assert_eq!(practitioner_id("Practitioner/abc"), Some("abc"));
        assert_eq!(
            practitioner_id("https://ehr.example/fhir/Practitioner/abc"),
            Some("abc")
        );
        assert_eq!(practitioner_id("Patient/abc"), None);
        assert_eq!(practitioner_id("Practitioner/"), None);
        assert_eq!(practitioner_id("abc"), None);
    }
}
