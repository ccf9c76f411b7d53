//! The demo's EHR: a mock EHR beside Wardline holding the demo patients (and two that show what
//! the launch does with a patient Wardline has never seen and with records that disagree), so a
//! newcomer can open a chart and watch Wardline launch inside it.

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use super::mock_ehr::{MockClient, MockEhr};
use super::{FIXTURES, Fixtures, FxEncounter, FxPatient};
use crate::smart::config::TrustedIssuer;

/// The client id the demo EHR knows Wardline by (a public client: PKCE, no secret).
pub const CLIENT_ID: &str = "wardline-demo";

/// Starts the mock EHR on `addr` (any free port if that one is taken) and trusts it in `cfg`.
pub async fn start(
    cfg: &mut crate::config::Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<Arc<MockEhr>> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        // The usual port is taken: any free one will do (the demo prints it).
        Err(_) => tokio::net::TcpListener::bind((addr.ip(), 0))
            .await
            .with_context(|| format!("binding the demo EHR to {}", addr.ip()))?,
    };
    let ehr = MockEhr::serve(listener)?;
    cfg.smart.issuers.push(TrustedIssuer {
        iss: ehr.iss(),
        client_id: CLIENT_ID.into(),
        ..Default::default()
    });
    cfg.smart.join_on_launch = true;
    if cfg.smart.contact.is_none() {
        cfg.smart.contact = Some("Health Information Management (ext. 4-4000)".into());
    }
    Ok(ehr)
}

/// Fills the mock EHR with the demo's people and patients once Wardline's address is known.
pub fn seed(ehr: &MockEhr, wardline: &str) -> anyhow::Result<()> {
    let fx: Fixtures = serde_json::from_str(FIXTURES).context("embedded demo fixtures")?;
    ehr.set_wardline(wardline);
    ehr.register(MockClient {
        id: CLIENT_ID.into(),
        secret: None,
        redirect_uri: format!("{}/smart/callback", wardline.trim_end_matches('/')),
        jwks_url: None,
    });
    for u in fx
        .users
        .iter()
        .filter(|u| u.roles.iter().any(|r| r == "clinician"))
    {
        // The EHR knows practitioners by NPI here; Wardline maps fhirUser through it.
        if let Some(npi) = &u.npi {
            ehr.practitioner(npi, &u.display_name);
        }
    }
    let visit = |number: &str| FxEncounter {
        visit_number: number.into(),
        class: "emergency".into(),
        status: "in-progress".into(),
        unit: None,
        room: None,
        bed: None,
    };
    let extra = |mrn: &str, family: &str, given: &str, birth: &str, sex: &str, number: &str| FxPatient {
        mrn: mrn.into(),
        family: family.into(),
        given: given.into(),
        birth_date: birth.into(),
        sex: sex.into(),
        encounters: vec![visit(number)],
    };
    let mut patients = fx.patients;
    // Not in Wardline yet: the launch creates the patient and the room from the EHR's data.
    patients.push(extra(
        "MRN-200417",
        "Nakamura",
        "Yuki",
        "1989-06-30",
        "female",
        "V-9107",
    ));
    // Same MRN as a Wardline patient but another birth date: the launch is refused.
    patients.push(extra(
        "MRN-100871",
        "O'Brien",
        "Sean",
        "1971-12-02",
        "male",
        "V-9002",
    ));
    for (i, p) in patients.iter().enumerate() {
        let pid = format!("pat-{}", i + 1);
        ehr.put(json!({
            "resourceType": "Patient", "id": pid,
            "identifier": [{"system": fx.mrn_system, "value": p.mrn}],
            "name": [{"use": "official", "family": p.family, "given": [p.given],
                      "text": format!("{} {}", p.given, p.family)}],
            "birthDate": p.birth_date, "gender": p.sex,
        }));
        for (j, e) in p.encounters.iter().enumerate() {
            let code = match e.class.as_str() {
                "inpatient" => "IMP",
                "emergency" => "EMER",
                _ => "AMB",
            };
            ehr.put(json!({
                "resourceType": "Encounter", "id": format!("enc-{}-{}", i + 1, j + 1),
                "identifier": [{"system": fx.visit_system, "value": e.visit_number}],
                "status": "in-progress",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code},
                "subject": {"reference": format!("Patient/{pid}")},
            }));
        }
    }
    Ok(())
}
