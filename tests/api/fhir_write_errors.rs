//! Refused FHIR writes: each gets the FHIR status and an OperationOutcome naming the element,
//! never its value; on SQLite and PostgreSQL.

use serde_json::{Value, json};

use crate::both_backends;
use crate::fhir_support::validate;
use crate::fhir_write::{encounter_body, patient_body, send};
use crate::helpers::TestApp;

async fn fhir_write_errors(app: &TestApp) {
    use reqwest::Method;
    let ehr = app.user("ehr", &["integration"]).await;
    let clinician = app.user("dr.b", &["clinician"]).await;
    let mut outcomes = Vec::new();
    let (_, _, p) = send(
        app,
        Method::POST,
        &ehr.token,
        "Patient",
        &patient_body("E-1"),
        &[],
    )
    .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let mut wrong_id = patient_body("E-1");
    wrong_id["id"] = json!("someone-else");
    let mut other_mrn = patient_body("E-2");
    other_mrn["id"] = json!(pid);
    let mut unknown = patient_body("E-3");
    unknown["id"] = json!("00000000-0000-0000-0000-000000000000");
    let this = format!("Patient/{pid}");
    let comm_path = format!("Communication/{pid}");
    let cases: Vec<(Method, &str, &str, Value, u16, &str)> = vec![
        (
            Method::POST,
            &clinician.token,
            "Patient",
            patient_body("E-9"),
            403,
            "forbidden",
        ),
        (
            Method::POST,
            &ehr.token,
            "Patient",
            json!({"resourceType": "Patient", "nickname": "x"}),
            400,
            "structure",
        ),
        (
            Method::POST,
            &ehr.token,
            "Patient",
            json!({"resourceType": "Encounter"}),
            400,
            "invalid",
        ),
        (
            Method::POST,
            &ehr.token,
            "Patient",
            json!({"resourceType": "Patient", "birthDate": "4 July"}),
            400,
            "structure",
        ),
        (
            Method::POST,
            &ehr.token,
            "Patient",
            json!({"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}]}),
            422,
            "business-rule",
        ),
        (Method::PUT, &ehr.token, &this, wrong_id, 400, "invalid"),
        (Method::PUT, &ehr.token, &this, other_mrn, 422, "business-rule"),
        (
            Method::PUT,
            &ehr.token,
            "Patient/00000000-0000-0000-0000-000000000000",
            unknown,
            404,
            "not-found",
        ),
        (
            Method::POST,
            &ehr.token,
            "Encounter",
            encounter_body("nobody", "in-progress", "4W", "4W 1", "x"),
            422,
            "business-rule",
        ),
        (
            Method::POST,
            &ehr.token,
            "Encounter",
            encounter_body(&pid, "cancelled", "4W", "4W 1", "x"),
            422,
            "business-rule",
        ),
        (
            Method::PUT,
            &ehr.token,
            &comm_path,
            json!({"resourceType": "Communication"}),
            405,
            "not-supported",
        ),
        (
            Method::POST,
            &ehr.token,
            "CareTeam",
            json!({"resourceType": "CareTeam"}),
            405,
            "not-supported",
        ),
    ];
    for (method, token, path, body, status, code) in cases {
        let (got, _, oo) = send(app, method.clone(), token, path, &body, &[]).await;
        assert_eq!(
            (got, oo["issue"][0]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {oo}"
        );
        assert!(
            !oo.to_string().contains("E-2"),
            "no identifier values in errors: {oo}"
        );
        outcomes.push(oo);
    }
    // Not FHIR JSON → 415.
    let resp = app
        .client
        .post(format!("{}/fhir/Patient", app.base))
        .bearer_auth(&ehr.token)
        .header("content-type", "application/xml")
        .body("<Patient/>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    outcomes.push(resp.json().await.unwrap());
    // Conditional create matching two → 412; a clashing NPI → 409.
    for (npi, user) in [("1111111112", "dup.one"), ("2222222224", "dup.two")] {
        let doc = json!({"resourceType": "Practitioner", "identifier": [
            {"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}, {"system": "urn:wardline:username", "value": user}],
            "name": [{"text": format!("Dup {user}")}]});
        assert_eq!(
            send(app, Method::POST, &ehr.token, "Practitioner", &doc, &[])
                .await
                .0,
            201
        );
    }
    let doc = json!({"resourceType": "Practitioner", "identifier": [{"system": "urn:wardline:username", "value": "dup.three"}], "name": [{"text": "Dup three"}]});
    let (status, _, oo) = send(
        app,
        Method::POST,
        &ehr.token,
        "Practitioner",
        &doc,
        &[("if-none-exist", "name=dup")],
    )
    .await;
    assert_eq!(
        (status, oo["issue"][0]["code"].as_str()),
        (412, Some("multiple-matches"))
    );
    outcomes.push(oo);
    let users: Value = app
        .get(&app.admin_token, "/api/v1/users")
        .await
        .json()
        .await
        .unwrap();
    let one = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "dup.one")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let clash = json!({"resourceType": "Practitioner", "id": one, "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "2222222224"}], "name": [{"text": "Dup one"}]});
    let (status, _, oo) = send(
        app,
        Method::PUT,
        &ehr.token,
        &format!("Practitioner/{one}"),
        &clash,
        &[],
    )
    .await;
    assert_eq!(
        (status, oo["issue"][0]["code"].as_str()),
        (409, Some("conflict")),
        "{oo}"
    );
    outcomes.push(oo);
    // Posting into a room one does not belong to.
    let (_, _, enc) = send(
        app,
        Method::POST,
        &ehr.token,
        "Encounter",
        &encounter_body(&pid, "in-progress", "4W", "4W 1", &clinician.id.to_string()),
        &[],
    )
    .await;
    let outsider = app.user("dr.c", &["clinician"]).await;
    let comm = json!({"resourceType": "Communication", "status": "completed", "encounter": {"reference": format!("Encounter/{}", enc["id"].as_str().unwrap())}, "payload": [{"contentString": "hello"}]});
    let (status, _, oo) = send(app, Method::POST, &outsider.token, "Communication", &comm, &[]).await;
    assert_eq!(status, 422, "{oo}");
    outcomes.push(oo);
    let (status, _, ok) = send(app, Method::POST, &clinician.token, "Communication", &comm, &[]).await;
    assert_eq!(status, 201, "the attending may post: {ok}");
    outcomes.push(ok);
    validate(&outcomes);
}

both_backends!(fhir_write_errors);
