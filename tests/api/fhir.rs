//! The FHIR R4 API end to end over real HTTP on SQLite and PostgreSQL: data that arrived over a
//! real MLLP connection read back as FHIR resources, SMART scopes and room membership deciding
//! what each caller sees, errors as OperationOutcomes, and every response body checked by two
//! independent R4 validators (the HL7 R4 JSON schema and Python `fhir.resources` 6.4.0).

use serde_json::Value;

use crate::both_backends;
use crate::fhir_support::{account, entries, fhir_get, validate};
use crate::helpers::TestApp;
use crate::hl7_support::{Mllp, fixture, staff};

async fn fhir_reads_and_searches(app: &TestApp) {
    let staff = staff(app).await;
    let mut mllp = Mllp::connect(app.mllp).await;
    for f in ["a01_admit", "a02_transfer"] {
        let ack = mllp.send(&fixture(f)).await;
        assert!(ack.contains("MSA|AA"), "{f}: {ack}");
    }
    let engine = account(app, "ehr", &["integration"], &[]).await;
    let outsider = account(app, "dr.elsewhere", &["clinician"], &[]).await;
    let mut served = Vec::new();

    let (status, cap) = fhir_get(app, None, "metadata", &[]).await;
    assert_eq!((status, cap["fhirVersion"].as_str()), (200, Some("4.0.1")));
    let types: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Patient",
            "Encounter",
            "CareTeam",
            "Communication",
            "Practitioner",
            "PractitionerRole",
            "AuditEvent"
        ]
    );
    served.push(cap);

    // The patient the feed admitted, found by MRN, read by id.
    let (status, found) = fhir_get(app, Some(&engine.token), "Patient?identifier=MRN-100234", &[]).await;
    assert_eq!((status, found["total"].as_i64()), (200, Some(1)), "{found}");
    let patient = entries(&found)[0].clone();
    let mrn = patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["value"] == "MRN-100234")
        .unwrap();
    assert_eq!(mrn["type"]["coding"][0]["code"], "MR");
    let pid = patient["id"].as_str().unwrap().to_string();
    let system = mrn["system"].as_str().unwrap();
    let (_, by_token) = fhir_get(
        app,
        Some(&engine.token),
        &format!("Patient?identifier={system}|MRN-100234"),
        &[],
    )
    .await;
    assert_eq!(by_token["total"], 1);
    let (_, other_system) = fhir_get(
        app,
        Some(&engine.token),
        "Patient?identifier=urn:other|MRN-100234",
        &[],
    )
    .await;
    assert_eq!(other_system["total"], 0);
    let (status, read) = fhir_get(app, Some(&engine.token), &format!("Patient/{pid}"), &[]).await;
    assert_eq!((status, &read), (200, &patient));
    let (_, by_id) = fhir_get(app, Some(&engine.token), &format!("Patient?_id={pid}"), &[]).await;
    assert_eq!(
        (by_id["total"].as_i64(), &entries(&by_id)[0]),
        (Some(1), &patient)
    );
    let (_, unknown) = fhir_get(app, Some(&engine.token), "Patient?_id=no-such-patient", &[]).await;
    assert_eq!((unknown["total"].as_i64(), unknown.get("entry")), (Some(0), None));
    served.extend([found, read]);

    // Its encounter, moved by the A02, with the attending from PV1-7.
    let (_, encs) = fhir_get(
        app,
        Some(&engine.token),
        &format!("Encounter?patient=Patient/{pid}"),
        &[],
    )
    .await;
    assert_eq!(encs["total"], 1, "{encs}");
    let enc = entries(&encs)[0].clone();
    assert_eq!(
        (enc["status"].as_str(), enc["class"]["code"].as_str()),
        (Some("in-progress"), Some("IMP"))
    );
    assert_eq!(enc["subject"]["reference"], format!("Patient/{pid}"));
    assert!(
        enc["location"][0]["location"]["display"]
            .as_str()
            .unwrap()
            .starts_with("5E"),
        "{enc}"
    );
    let attending = format!("Practitioner/{}", staff.osei.id);
    assert!(
        enc["participant"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["individual"]["reference"] == attending.as_str())
    );
    let eid = enc["id"].as_str().unwrap().to_string();
    let (_, by_unit) = fhir_get(
        app,
        Some(&engine.token),
        "Encounter?location=5E&status=in-progress",
        &[],
    )
    .await;
    assert_eq!(by_unit["total"], 1);
    served.push(encs);

    // `_include`: the patient and the practitioners come along, marked as included.
    let (status, with) = fhir_get(
        app,
        Some(&engine.token),
        &format!("Encounter?patient=Patient/{pid}&_include=Encounter:subject&_include=Encounter:participant"),
        &[],
    )
    .await;
    assert_eq!((status, &with["total"]), (200, &serde_json::json!(1)), "{with}");
    let list = with["entry"].as_array().unwrap();
    let included: Vec<String> = list
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert!(included.contains(&format!("Patient/{pid}")), "{included:?}");
    assert!(included.contains(&attending), "{included:?}");
    assert!(
        list.iter()
            .all(|e| e["fullUrl"].as_str().unwrap().ends_with(&format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )))
    );
    assert!(
        with["link"][0]["url"]
            .as_str()
            .unwrap()
            .contains("_include=Encounter%3Asubject"),
        "{with}"
    );
    let strict = [("prefer", "handling=strict")];
    let (status, oo) = fhir_get(
        app,
        Some(&engine.token),
        "Encounter?_include=Encounter:location",
        &strict,
    )
    .await;
    assert_eq!(
        (status, oo["resourceType"].as_str()),
        (400, Some("OperationOutcome")),
        "{oo}"
    );
    served.extend([with, oo]);

    // The room as a CareTeam; its messages (the feed's system notes and a clinician's message).
    let (_, teams) = fhir_get(
        app,
        Some(&engine.token),
        &format!("CareTeam?encounter=Encounter/{eid}"),
        &[],
    )
    .await;
    assert_eq!(teams["total"], 1, "{teams}");
    let team = entries(&teams)[0].clone();
    assert!(
        team["participant"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["member"]["reference"] == attending.as_str())
    );
    let room: uuid::Uuid = team["id"].as_str().unwrap().parse().unwrap();
    app.send(&staff.osei, room, "Please review the morning labs.")
        .await;
    let (_, comms) = fhir_get(
        app,
        Some(&engine.token),
        &format!("Communication?encounter=Encounter/{eid}"),
        &[],
    )
    .await;
    let comms_list = entries(&comms);
    assert!(comms["total"].as_i64().unwrap() >= 3, "{comms}");
    assert_eq!(
        comms_list[0]["payload"][0]["contentString"],
        "Please review the morning labs."
    );
    assert_eq!(comms_list[0]["sender"]["reference"], attending.as_str());
    assert_eq!(comms_list[0]["subject"]["reference"], format!("Patient/{pid}"));
    assert!(
        comms_list
            .iter()
            .any(|c| c["category"][0]["coding"][0]["code"] == "notification")
    );
    let (_, by_sender) = fhir_get(
        app,
        Some(&engine.token),
        &format!("Communication?sender={attending}&priority=routine"),
        &[],
    )
    .await;
    assert_eq!(by_sender["total"], 1);
    served.extend([teams, comms]);

    // Directory: by NPI, and paging with `next` links over everyone.
    let (_, by_npi) = fhir_get(
        app,
        Some(&engine.token),
        "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893",
        &[],
    )
    .await;
    assert_eq!(entries(&by_npi)[0]["id"], staff.osei.id.to_string());
    let (_, first) = fhir_get(app, Some(&engine.token), "Practitioner?_count=2", &[]).await;
    let total = first["total"].as_i64().unwrap();
    assert!(total >= 5, "{first}");
    let mut seen: Vec<String> = entries(&first)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let mut next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .map(|l| l["url"].as_str().unwrap().to_string());
    served.extend([by_npi, first]);
    while let Some(url) = next {
        let page: Value = app
            .client
            .get(&url)
            .bearer_auth(&engine.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(
            entries(&page)
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string()),
        );
        next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
    }
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        (seen.len() as i64, unique.len() as i64),
        (total, total),
        "pages overlap or miss: {seen:?}"
    );

    // user/ scopes: the attending sees the patient; a clinician outside the room sees nothing.
    let (_, mine) = fhir_get(app, Some(&staff.osei.token), "Patient", &[]).await;
    assert_eq!(mine["total"], 1);
    let (status, own) = fhir_get(app, Some(&staff.osei.token), &format!("Patient/{pid}"), &[]).await;
    assert_eq!(
        (status, own["id"].as_str(), &own["identifier"]),
        (200, Some(pid.as_str()), &entries(&mine)[0]["identifier"]),
        "a member of the patient's room reads it by id as the search shows it"
    );
    for path in ["Patient", "Encounter", "CareTeam", "Communication"] {
        let (status, none) = fhir_get(app, Some(&outsider.token), path, &[]).await;
        assert_eq!((status, none["total"].as_i64()), (200, Some(0)), "{path}: {none}");
        served.push(none);
    }
    let (status, hidden) = fhir_get(app, Some(&outsider.token), &format!("Patient/{pid}"), &[]).await;
    assert_eq!(
        (status, hidden["resourceType"].as_str()),
        (404, Some("OperationOutcome"))
    );
    served.push(hidden);

    // A token narrowed to one SMART scope can do that and nothing else.
    let narrow = account(app, "lab-feed", &["integration"], &["system/Patient.r"]).await;
    assert_eq!(
        fhir_get(app, Some(&narrow.token), &format!("Patient/{pid}"), &[])
            .await
            .0,
        200
    );
    assert_eq!(fhir_get(app, Some(&narrow.token), "Patient", &[]).await.0, 403);
    assert_eq!(
        fhir_get(app, Some(&narrow.token), &format!("Encounter/{eid}"), &[])
            .await
            .0,
        403
    );
    validate(&served);
}

/// Token, path, extra headers, expected status, expected issue code.
type Case<'a> = (Option<&'a str>, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

async fn fhir_errors_are_operation_outcomes(app: &TestApp) {
    let clinician = account(app, "dr.a", &["clinician"], &[]).await;
    let engine = account(app, "ehr", &["integration"], &[]).await;
    let auditor = account(app, "audit", &["auditor"], &[]).await;
    let t = Some(engine.token.as_str());
    let mut outcomes = Vec::new();
    let cases: Vec<Case> = vec![
        (None, "Patient", vec![], 401, "login"),
        (
            Some(clinician.token.as_str()),
            "AuditEvent",
            vec![],
            403,
            "forbidden",
        ),
        (
            Some(app.admin_token.as_str()),
            "Patient",
            vec![],
            403,
            "forbidden",
        ),
        (
            t,
            "Patient/00000000-0000-0000-0000-000000000000",
            vec![],
            404,
            "not-found",
        ),
        (t, "Observation", vec![], 404, "not-supported"),
        (
            t,
            "Patient",
            vec![("accept", "application/fhir+xml")],
            406,
            "not-supported",
        ),
        (t, "Patient?_format=xml", vec![], 406, "not-supported"),
        (
            t,
            "Patient?colour=blue",
            vec![("prefer", "handling=strict")],
            400,
            "invalid",
        ),
        (t, "Patient?family:exact=X", vec![], 400, "invalid"),
        (t, "Patient?birthdate=yesterday", vec![], 400, "invalid"),
        (t, "Encounter?status=arrived", vec![], 400, "invalid"),
        (t, "Patient/x/y/z", vec![], 404, "not-found"),
    ];
    for (token, path, headers, status, code) in cases {
        let (got, body) = fhir_get(app, token, path, &headers).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}");
        assert_eq!(body["issue"][0]["code"], code, "{path}: {body}");
        outcomes.push(body);
    }
    let resp = app
        .client
        .get(format!("{}/fhir/Patient", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let resp = app
        .client
        .delete(format!("{}/fhir/Patient/x", app.base))
        .bearer_auth(&engine.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    outcomes.push(resp.json().await.unwrap());

    // Lenient by default: the unknown parameter is ignored and left out of the self link.
    let (status, lenient) = fhir_get(app, t, "Patient?colour=blue&_count=5", &[]).await;
    assert_eq!(status, 200);
    let self_link = lenient["link"][0]["url"].as_str().unwrap();
    assert!(
        !self_link.contains("colour") && self_link.contains("_count=5"),
        "{self_link}"
    );
    outcomes.push(lenient);

    // Every read and search was audited, the refusals as failures, without parameter values.
    let (status, audit) = fhir_get(
        app,
        Some(&auditor.token),
        "AuditEvent?subtype=fhir.search&_count=200",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let events = entries(&audit);
    assert!(
        events.iter().any(|e| e["outcome"] == "4"),
        "a refused search is recorded as a failure"
    );
    assert!(events.iter().any(|e| e["outcome"] == "0"));
    let text = audit.to_string();
    assert!(
        !text.contains("blue") && !text.contains("yesterday"),
        "parameter values stay out of the audit trail"
    );
    let (_, views) = fhir_get(
        app,
        Some(&auditor.token),
        "AuditEvent?subtype=fhir.view&outcome=4",
        &[],
    )
    .await;
    assert!(
        views["total"].as_i64().unwrap() >= 1,
        "the 404 read is audited: {views}"
    );
    let first_id = entries(&views)[0]["id"].as_str().unwrap().to_string();
    let (status, one) = fhir_get(app, Some(&auditor.token), &format!("AuditEvent/{first_id}"), &[]).await;
    assert_eq!((status, one["id"].as_str()), (200, Some(first_id.as_str())));
    outcomes.extend([audit, one]);
    validate(&outcomes);
}

both_backends!(using crate::hl7_support::hl7_app; fhir_reads_and_searches, fhir_errors_are_operation_outcomes);
