//! PractitionerRole writes end to end on SQLite and PostgreSQL (SPEC §7): a `transaction` Bundle
//! replaces a service's on-call period atomically and answers with the gap/overlap report;
//! single shifts are created, updated and deleted; on-call lookup follows; refusals are
//! OperationOutcomes; everything served passes both R4 validators.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::fhir_support::validate;
use crate::fhir_write::send;
use crate::helpers::TestApp;

const TIER: &str = "urn:wardline:fhir:oncall-tier";

fn role(practitioner: &str, tier: u32, start: &str, end: &str) -> Value {
    json!({"resourceType": "PractitionerRole",
        "extension": [{"url": TIER, "valueInteger": tier}],
        "period": {"start": start, "end": end},
        "practitioner": {"reference": format!("Practitioner/{practitioner}")},
        "code": [{"coding": [{"system": "urn:wardline:role", "code": "on-call"}]}],
        "specialty": [{"coding": [{"system": "urn:wardline:service", "code": "neuro"}]}]})
}

async fn transaction(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}/fhir", app.base))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
}

async fn practitioner_roles_change_the_roster(app: &TestApp) {
    let sched = app.user("sched.neuro", &["scheduler"]).await;
    let day = app.user("dr.day", &["clinician"]).await;
    let night = app.user("dr.night", &["clinician"]).await;
    let (d, n) = (day.id.to_string(), night.id.to_string());
    let mut served = Vec::new();

    // A transaction: day and night, tier 1 — replaces the period, no gaps.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": role(&d, 1, "2026-12-01T08:00:00Z", "2026-12-01T20:00:00Z"), "request": {"method": "POST", "url": "PractitionerRole"}},
        {"resource": role(&n, 1, "2026-12-01T20:00:00Z", "2026-12-02T08:00:00Z"), "request": {"method": "POST", "url": "PractitionerRole"}}
    ]});
    let (status, answer) = transaction(app, &sched.token, bundle.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "transaction-response");
    let entries = answer["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["response"]["status"], "201 Created");
    assert_eq!(
        entries[0]["response"]["outcome"]["issue"][0]["severity"],
        "information"
    );
    let first = entries[0]["response"]["location"].as_str().unwrap().to_string();
    served.push(answer.clone());
    // Sent again, it replaces rather than doubles.
    let (status, _) = transaction(app, &sched.token, bundle).await;
    assert_eq!(status, 200);
    let (_, found) =
        crate::fhir_support::fhir_get(app, Some(&sched.token), "PractitionerRole?service=neuro", &[]).await;
    assert_eq!(found["total"], 2, "{found}");
    let (status, _) = crate::fhir_support::fhir_get(app, Some(&sched.token), &first, &[]).await;
    assert_eq!(status, 404, "the first upload's shift was replaced");
    served.push(found);

    // One more shift, double-booking tier 1: created, and the report says so.
    let extra = role(&n, 1, "2026-12-01T10:00:00Z", "2026-12-01T12:00:00Z");
    let prefer = [("prefer", "return=OperationOutcome")];
    let (status, headers, oo) = send(
        app,
        Method::POST,
        &sched.token,
        "PractitionerRole",
        &extra,
        &prefer,
    )
    .await;
    assert_eq!(status, 201, "{oo}");
    assert!(
        oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["diagnostics"].as_str().unwrap().contains("overlap")),
        "{oo}"
    );
    let location = headers["location"].to_str().unwrap().to_string();
    let id = location.rsplit('/').next().unwrap().to_string();
    served.push(oo);

    // Updated to tier 2: no longer an overlap.
    let mut as_tier2 = role(&n, 2, "2026-12-01T10:00:00Z", "2026-12-01T12:00:00Z");
    as_tier2["id"] = json!(id);
    let (status, _, updated) = send(
        app,
        Method::PUT,
        &sched.token,
        &format!("PractitionerRole/{id}"),
        &as_tier2,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["extension"][0]["valueInteger"], 2);
    served.push(updated);
    let on_call: Value = app
        .get(&day.token, "/api/v1/oncall/neuro?at=2026-12-01T11:00:00Z")
        .await
        .json()
        .await
        .unwrap();
    let holders: Vec<(i64, String)> = on_call
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tier"].as_i64().unwrap(),
                t["user_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(holders, vec![(1, d.clone()), (2, n.clone())], "{on_call}");

    // Deleted: 200 with the report; again: 404.
    let (status, _, report) = send(
        app,
        Method::DELETE,
        &sched.token,
        &format!("PractitionerRole/{id}"),
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(
        (status, report["resourceType"].as_str()),
        (200, Some("OperationOutcome")),
        "{report}"
    );
    served.push(report);
    let (status, _, gone) = send(
        app,
        Method::DELETE,
        &sched.token,
        &format!("PractitionerRole/{id}"),
        &json!({}),
        &[],
    )
    .await;
    assert_eq!(status, 404, "{gone}");

    // Refusals.
    let (status, _, oo) = send(app, Method::DELETE, &sched.token, "Patient/x", &json!({}), &[]).await;
    assert_eq!(status, 405, "{oo}");
    let (status, oo) = transaction(
        app,
        &sched.token,
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]}),
    )
    .await;
    assert_eq!(
        status, 403,
        "a scheduler's transaction cannot create patients: {oo}"
    );
    let mut no_service = role(&d, 1, "2026-12-03T08:00:00Z", "2026-12-03T20:00:00Z");
    no_service.as_object_mut().unwrap().remove("specialty");
    let (status, _, oo) = send(
        app,
        Method::POST,
        &sched.token,
        "PractitionerRole",
        &no_service,
        &[],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("specialty"),
        "{oo}"
    );
    served.push(oo);
    let (status, _, oo) = send(
        app,
        Method::POST,
        &day.token,
        "PractitionerRole",
        &role(&d, 1, "2026-12-03T08:00:00Z", "2026-12-03T20:00:00Z"),
        &[],
    )
    .await;
    assert_eq!(status, 403, "a clinician cannot change the roster: {oo}");
    validate(&served);
}

both_backends!(practitioner_roles_change_the_roster);

/// A transaction of Patient and Encounter creates runs as one ADT application: the encounter may
/// name the Bundle's patient by fullUrl; a bad entry keeps nothing; other mixes are refused.
async fn patient_and_encounter_transactions(app: &TestApp) {
    let ehr = app.user("ehr.tx", &["integration"]).await;
    let patient = |mrn: &str| {
        json!({"resourceType": "Patient", "identifier": [{"system": "urn:wardline:mrn", "value": mrn}],
            "name": [{"family": "Adeyemi", "given": ["Tolu"]}], "birthDate": "1980-02-02"})
    };
    let encounter = |visit: &str, class: &str| {
        json!({"resourceType": "Encounter", "identifier": [{"system": "urn:wardline:visit", "value": visit}],
            "status": "in-progress", "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
            "subject": {"reference": "urn:uuid:6a1c4a3e-0000-4000-8000-000000000001"}})
    };
    let bundle = |p: Value, e: Value| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:6a1c4a3e-0000-4000-8000-000000000001", "resource": p, "request": {"method": "POST", "url": "Patient"}},
            {"resource": e, "request": {"method": "POST", "url": "Encounter"}}]})
    };
    let (status, answer) =
        transaction(app, &ehr.token, bundle(patient("T-1"), encounter("TV-1", "IMP"))).await;
    assert_eq!(status, 200, "{answer}");
    let location = answer["entry"][1]["response"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(location.starts_with("Encounter/"), "{answer}");
    let (status, enc) = crate::fhir_support::fhir_get(app, Some(&ehr.token), &location, &[]).await;
    assert_eq!(status, 200);
    let pid = answer["entry"][0]["response"]["location"].as_str().unwrap();
    assert_eq!(enc["subject"]["reference"], pid);
    let (_, teams) = crate::fhir_support::fhir_get(
        app,
        Some(&ehr.token),
        &format!("CareTeam?encounter={location}"),
        &[],
    )
    .await;
    assert_eq!(teams["total"], 1, "the admission opened the room: {teams}");

    // An unusable entry refuses the whole Bundle: the patient of entry 0 is not kept either.
    let (status, oo) = transaction(app, &ehr.token, bundle(patient("T-2"), encounter("TV-2", "XYZ"))).await;
    assert_eq!(status, 422, "{oo}");
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Bundle.entry[1]"),
        "{oo}"
    );
    let (_, none) = crate::fhir_support::fhir_get(
        app,
        Some(&ehr.token),
        "Patient?identifier=urn:wardline:mrn|T-2",
        &[],
    )
    .await;
    assert_eq!(none["total"], 0);

    // Messages are not part of transactions.
    let mixed = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("T-3"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Communication", "status": "completed"}, "request": {"method": "POST", "url": "Communication"}}]});
    let (status, oo2) = transaction(app, &ehr.token, mixed).await;
    assert_eq!(status, 422, "{oo2}");
    validate(&[answer, enc, oo, oo2]);
}

both_backends!(patient_and_encounter_transactions);
