//! FHIR writes end to end on SQLite and PostgreSQL: an EHR that pushes Patient and Encounter
//! instead of HL7 gets the same rooms, membership and system messages; Communication create posts
//! into the room; Practitioner keeps the directory; conditional create; every refusal is an
//! OperationOutcome with the FHIR status; every resource passes both R4 validators.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::both_backends;
use crate::fhir_support::validate;
use crate::helpers::TestApp;
use crate::helpers::system_notes as notes;
use crate::hl7_support::staff;

const MRN: &str = "urn:wardline:mrn";
const VISIT: &str = "urn:wardline:visit";

pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let mut req = app
        .client
        .request(method, format!("{}/fhir/{path}", app.base))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

pub fn patient_body(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": "Okafor", "given": ["Chidi"]}], "birthDate": "1961-07-04", "gender": "male"})
}

pub fn encounter_body(pid: &str, status: &str, unit: &str, display: &str, attending: &str) -> Value {
    json!({"resourceType": "Encounter", "identifier": [{"system": VISIT, "value": "FV-1"}], "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": format!("Patient/{pid}")},
        "participant": [{"type": [{"coding": [{"code": "ATND"}]}], "individual": {"reference": format!("Practitioner/{attending}")}}],
        "location": [{"location": {"identifier": {"system": "urn:wardline:unit", "value": unit}, "display": display}}]})
}

async fn member_names(app: &TestApp, token: &str, room: &str) -> Vec<String> {
    let list: Value = app
        .get(token, &format!("/api/v1/rooms/{room}/members"))
        .await
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["display_name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn fhir_writes_run_the_adt_logic(app: &TestApp) {
    use reqwest::Method;
    let staff = staff(app).await;
    let ehr = app.user("ehr", &["integration"]).await;
    let mut served = Vec::new();

    let (status, headers, p) = send(
        app,
        Method::POST,
        &ehr.token,
        "Patient",
        &patient_body("F-1001"),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/fhir/Patient/{pid}"))
    );
    assert_eq!(p["name"][0]["family"], "Okafor");
    // Conditional create finds it; a plain create with the same MRN upserts the same patient.
    let criteria = format!("identifier={MRN}|F-1001");
    let (status, _, again) = send(
        app,
        Method::POST,
        &ehr.token,
        "Patient",
        &patient_body("F-1001"),
        &[("if-none-exist", &criteria)],
    )
    .await;
    assert_eq!((status, again["id"].as_str()), (200, Some(pid.as_str())));
    let mut renamed = patient_body("F-1001");
    renamed["id"] = json!(pid);
    renamed["name"][0]["family"] = json!("Okafor-Bello");
    let (status, _, updated) = send(
        app,
        Method::PUT,
        &ehr.token,
        &format!("Patient/{pid}"),
        &renamed,
        &[],
    )
    .await;
    assert_eq!(
        (status, updated["name"][0]["family"].as_str()),
        (200, Some("Okafor-Bello"))
    );
    served.extend([p, again, updated]);

    // Admission: the room opens with the attending and the 4W unit team, and says so.
    let osei = staff.osei.id.to_string();
    let (status, _, enc) = send(
        app,
        Method::POST,
        &ehr.token,
        "Encounter",
        &encounter_body(&pid, "in-progress", "4W", "4W 412-A", &osei),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{enc}");
    let eid = enc["id"].as_str().unwrap().to_string();
    assert_eq!(enc["status"], "in-progress");
    let rooms: Value = app
        .get(&staff.osei.token, "/api/v1/rooms")
        .await
        .json()
        .await
        .unwrap();
    let room = rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "patient_encounter")
        .expect("a room for the encounter");
    let room_id = room["id"].as_str().unwrap().to_string();
    assert!(
        room["name"].as_str().unwrap().starts_with("OKAFOR-BELLO, CHIDI")
            || room["name"].as_str().unwrap().contains("Okafor-Bello"),
        "{room}"
    );
    assert_eq!(
        member_names(app, &staff.osei.token, &room_id).await,
        ["dr.osei", "rn.patel"]
    );
    assert_eq!(
        notes(app, &staff.osei.token, &room_id).await,
        ["Admitted to 4W 412 A."]
    );

    // Transfer: a PUT with a new location is the A02: notes, and the unit teams swap.
    let mut moved = encounter_body(&pid, "in-progress", "5E", "5E 501-B", &osei);
    moved["id"] = json!(eid);
    let (status, _, enc2) = send(
        app,
        Method::PUT,
        &ehr.token,
        &format!("Encounter/{eid}"),
        &moved,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{enc2}");
    assert_eq!(
        member_names(app, &staff.osei.token, &room_id).await,
        ["dr.osei", "rn.kim"]
    );
    assert!(
        notes(app, &staff.osei.token, &room_id)
            .await
            .contains(&"Transferred from 4W 412 A to 5E 501 B.".to_string())
    );

    // A clinician posts over FHIR; a retry with the same identifier stores nothing twice.
    let comm = json!({"resourceType": "Communication", "status": "completed", "identifier": [{"value": "ehr-msg-1"}],
        "encounter": {"reference": format!("Encounter/{eid}")}, "priority": "urgent",
        "payload": [{"contentString": "Potassium 6.1, please review."}]});
    let (status, _, c1) = send(app, Method::POST, &staff.osei.token, "Communication", &comm, &[]).await;
    assert_eq!((status, c1["priority"].as_str()), (201, Some("urgent")), "{c1}");
    let (status, _, c2) = send(app, Method::POST, &staff.osei.token, "Communication", &comm, &[]).await;
    assert_eq!((status, &c2["id"]), (200, &c1["id"]));
    let page: Value = app
        .get(
            &staff.osei.token,
            &format!("/api/v1/rooms/{room_id}/messages?limit=50"),
        )
        .await
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "user")
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Potassium 6.1, please review."]);

    // Discharge: finished is the A03.
    let mut done = encounter_body(&pid, "finished", "5E", "5E 501-B", &osei);
    done["id"] = json!(eid);
    let (status, _, enc3) = send(
        app,
        Method::PUT,
        &ehr.token,
        &format!("Encounter/{eid}"),
        &done,
        &[],
    )
    .await;
    assert_eq!((status, enc3["status"].as_str()), (200, Some("finished")));
    assert!(enc3["period"]["end"].is_string());
    assert!(
        notes(app, &staff.osei.token, &room_id)
            .await
            .iter()
            .any(|n| n.starts_with("Discharged."))
    );

    // Directory sync: a new practitioner by NPI, then updated by id.
    let doc = json!({"resourceType": "Practitioner", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1003000126"}],
        "name": [{"family": "Adeyemi", "given": ["Tunde"]}], "active": true});
    let (status, _, pr) = send(app, Method::POST, &ehr.token, "Practitioner", &doc, &[]).await;
    assert_eq!(
        (status, pr["name"][0]["text"].as_str()),
        (201, Some("Tunde Adeyemi")),
        "{pr}"
    );
    let mut off = doc.clone();
    off["id"] = pr["id"].clone();
    off["active"] = json!(false);
    let (status, _, pr2) = send(
        app,
        Method::PUT,
        &ehr.token,
        &format!("Practitioner/{}", pr["id"].as_str().unwrap()),
        &off,
        &[],
    )
    .await;
    assert_eq!((status, pr2["active"].as_bool()), (200, Some(false)));
    served.extend([enc, enc2, enc3, c1, c2, pr, pr2]);
    validate(&served);
}

both_backends!(using crate::hl7_support::hl7_app; fhir_writes_run_the_adt_logic);
