//! HL7 v2 ADT end to end: a real MLLP client on a real TCP socket sends the fixtures, and the
//! rooms, members and system messages are then checked through the REST API, on SQLite and
//! PostgreSQL.

use serde_json::Value;
use sqlx::Row;

use crate::both_backends;
use crate::helpers::{TestApp, TestUser};
pub use crate::hl7_support::*;

async fn room_of(app: &TestApp, who: &TestUser) -> Value {
    let rooms: Value = app.get(&who.token, "/api/v1/rooms").await.json().await.unwrap();
    rooms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "patient_encounter")
        .cloned()
        .unwrap_or(Value::Null)
}

async fn members(app: &TestApp, who: &TestUser, room: &str) -> Vec<(String, String)> {
    let list: Value = app
        .get(&who.token, &format!("/api/v1/rooms/{room}/members"))
        .await
        .json()
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["display_name"].as_str().unwrap().to_string(),
                        m["reason"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn system_notes(app: &TestApp, who: &TestUser, room: &str) -> Vec<String> {
    let page: Value = app
        .get(&who.token, &format!("/api/v1/rooms/{room}/messages?limit=50"))
        .await
        .json()
        .await
        .unwrap();
    let mut notes: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "system")
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect();
    notes.reverse();
    notes
}

fn pair(name: &str, reason: &str) -> (String, String) {
    (name.to_string(), reason.to_string())
}

async fn the_adt_story_drives_the_room(app: &TestApp) {
    let s = staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;

    let ack = engine.send(&fixture("a01_admit")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    assert_eq!(field(&ack, "MSA", 2), "GH000101");
    assert_eq!(field(&ack, "MSH", 9), "ACK^A01^ACK");
    let room = room_of(app, &s.osei).await;
    assert_eq!(room["status"], "active");
    assert_eq!(room["name"], "MÜLLER, ANNA · V-9001");
    let room_id = room["id"].as_str().unwrap().to_string();
    assert_eq!(
        members(app, &s.osei, &room_id).await,
        vec![
            pair("dr.lindqvist", "consulting"),
            pair("dr.osei", "attending"),
            pair("rn.patel", "unit_team")
        ]
    );
    assert_eq!(
        room_of(app, &s.kim).await,
        Value::Null,
        "5E's nurse is not in a 4W room"
    );

    let ack = engine.send(&fixture("a02_transfer")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    assert_eq!(
        members(app, &s.osei, &room_id).await,
        vec![
            pair("dr.lindqvist", "consulting"),
            pair("dr.osei", "attending"),
            pair("rn.kim", "unit_team")
        ],
        "the unit team follows the patient"
    );
    assert_eq!(
        field(&engine.send(&fixture("a12_cancel_transfer")).await, "MSA", 1),
        "AA"
    );
    assert!(
        members(app, &s.osei, &room_id)
            .await
            .contains(&pair("rn.patel", "unit_team"))
    );

    assert_eq!(
        field(&engine.send(&fixture("a03_discharge")).await, "MSA", 1),
        "AA"
    );
    assert_eq!(
        room_of(app, &s.osei).await["status"],
        "active",
        "writable during the grace period"
    );
    let run: Value = app
        .post(&app.admin_token, "/api/v1/retention/run", &Value::Null)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["lifecycle"][0]["status"], "read_only", "{run}");
    assert_eq!(room_of(app, &s.osei).await["status"], "read_only");
    let refused = app
        .post(
            &s.osei.token,
            &format!("/api/v1/rooms/{room_id}/messages"),
            &serde_json::json!({"body": "late note"}),
        )
        .await;
    assert_eq!(refused.status(), 409);

    assert_eq!(
        field(&engine.send(&fixture("a13_cancel_discharge")).await, "MSA", 1),
        "AA"
    );
    assert_eq!(room_of(app, &s.osei).await["status"], "active", "re-opened");
    assert_eq!(
        system_notes(app, &s.osei, &room_id).await,
        vec![
            "Admitted to 4W 412 A.",
            "Transferred from 4W 412 A to 5E 510 B.",
            "Transfer cancelled; back in 4W 412 A.",
            "Discharged. This room becomes read-only after the grace period.",
            "Discharge cancelled. This room is open again.",
        ]
    );

    // The encounter as stored, and the inbox.
    let mut db = app.db().await;
    let row = sqlx::query(
        "SELECT status, class, location_unit, discharged_at FROM encounters WHERE visit_number = 'V-9001'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "in-progress");
    assert_eq!(row.get::<String, _>(2), "4W");
    assert_eq!(row.get::<Option<i64>, _>(3), None);
    let outcomes: Vec<(String,)> = sqlx::query_as("SELECT outcome FROM hl7_inbox ORDER BY received_at, id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes.iter().all(|(o,)| o == "applied"), "{outcomes:?}");
}

async fn duplicates_get_the_original_ack_and_change_nothing(app: &TestApp) {
    staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    let first = engine.send(&fixture("a01_admit")).await;
    let again = engine.send(&fixture("a01_admit")).await;
    assert_eq!(first, again, "byte-for-byte the original ACK");
    // From another connection (another node behind a balancer would see the same).
    let mut other = Mllp::connect(app.mllp).await;
    assert_eq!(other.send(&fixture("a01_admit")).await, first);
    let mut db = app.db().await;
    for (table, n) in [("hl7_inbox", 1), ("encounters", 1), ("rooms", 1), ("patients", 1)] {
        let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(count, n, "{table}");
    }
    let (messages,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(messages, 1, "one admission note");
    let (dups,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'hl7.receive' AND detail LIKE '%duplicate%'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(dups, 2, "every receipt is audited, duplicates too");
}

async fn bad_messages_get_ae_or_ar_naming_the_field(app: &TestApp) {
    staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    let ack = engine.send(&fixture("err_missing_mrn")).await;
    assert_eq!(field(&ack, "MSA", 1), "AE", "{ack}");
    assert_eq!(field(&ack, "ERR", 2), "PID^1^3");
    assert!(field(&ack, "ERR", 3).starts_with("101^"));
    let ack = engine.send(&fixture("err_unknown_merge_target")).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "ERR", 2)),
        ("AE".into(), "MRG^1^1".into())
    );
    let ack = engine.send(&fixture("err_unsupported_type")).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "ERR", 2)),
        ("AR".into(), "MSH^1^9".into())
    );
    assert_eq!(field(&ack, "MSA", 2), "GH000903");
    let ack = engine.send(&fixture("err_unsupported_version")).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "ERR", 2)),
        ("AR".into(), "MSH^1^12".into())
    );
    let ack = engine.send(&fixture("ignored_a28")).await;
    assert_eq!(field(&ack, "MSA", 1), "AA");
    let ack = engine.send(&fixture("a02_transfer")).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "ERR", 2)),
        ("AE".into(), "PV1^1^19".into())
    );
    let ack = engine.send("this is not HL7").await;
    assert_eq!(field(&ack, "MSA", 1), "AR");
    // The connection survives all of it.
    assert_eq!(field(&engine.send(&fixture("a01_admit")).await, "MSA", 1), "AA");

    let mut db = app.db().await;
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT control_id, outcome, error_location FROM hl7_inbox ORDER BY received_at, id")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let expected = [
        ("GH000901", "error", Some("PID-3")),
        ("GH000902", "error", Some("MRG-1")),
        ("GH000128", "ignored", None),
        ("GH000102", "error", Some("PV1-19")),
        ("GH000101", "applied", None),
    ];
    let got: Vec<(&str, &str, Option<&str>)> = rows
        .iter()
        .map(|(c, o, l)| (c.as_str(), o.as_str(), l.as_deref()))
        .collect();
    assert_eq!(got, expected, "AR'd messages are not stored; everything else is");
}

async fn late_events_are_recorded_but_change_nothing(app: &TestApp) {
    staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    for f in ["a01_admit", "a02_transfer", "a07_in_to_out"] {
        assert_eq!(field(&engine.send(&fixture(f)).await, "MSA", 1), "AA", "{f}");
    }
    let mut db = app.db().await;
    let (class, unit): (String, String) =
        sqlx::query_as("SELECT class, location_unit FROM encounters WHERE visit_number = 'V-9001'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(
        (class.as_str(), unit.as_str()),
        ("inpatient", "5E"),
        "the older A07 did not apply"
    );
    let (outcome,): (String,) = sqlx::query_as("SELECT outcome FROM hl7_inbox WHERE control_id = 'GH000107'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(outcome, "stale");
}

async fn merge_moves_encounters_and_rooms_to_the_survivor(app: &TestApp) {
    let s = staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    for f in [
        "a04_register_duplicate",
        "a01_admit",
        "a40_merge",
        "a31_update_person",
    ] {
        assert_eq!(field(&engine.send(&fixture(f)).await, "MSA", 1), "AA", "{f}");
    }
    let mut db = app.db().await;
    let survivors: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT e.patient_id FROM encounters e WHERE e.visit_number IN ('V-9000', 'V-9001')",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(survivors.len(), 1, "both encounters belong to the survivor");
    let (merged,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM patients WHERE merged_into = $1")
        .bind(&survivors[0].0)
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(merged, 1);
    let (records,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM patient_merges")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(records, 1, "a reversible record is kept");
    let rooms: Value = app
        .get(&s.osei.token, "/api/v1/rooms")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"MÜLLER-WEBER, ANNA · V-9000"), "{names:?}");
    assert!(names.contains(&"MÜLLER-WEBER, ANNA · V-9001"), "{names:?}");
}

async fn audit_records_every_message_without_phi(app: &TestApp) {
    staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    for f in [
        "a01_admit",
        "escapes_non_ascii",
        "err_missing_mrn",
        "err_unsupported_type",
    ] {
        engine.send(&fixture(f)).await;
    }
    let mut db = app.db().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, outcome, detail FROM audit_log WHERE action LIKE 'hl7.%' ORDER BY seq",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[3].1, "failure", "the AR is audited as a failure");
    let all: Vec<(String,)> = sqlx::query_as("SELECT detail FROM audit_log")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for (detail,) in all {
        for phi in [
            "MÜLLER",
            "ANNA",
            "MRN-100234",
            "19580314",
            "1958-03-14",
            "Ñúñez",
            "Zoë",
            "OAK RIDGE",
        ] {
            assert!(!detail.contains(phi), "PHI {phi:?} in audit detail {detail}");
        }
    }
    let sealed: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT body FROM hl7_inbox")
        .fetch_all(&mut db)
        .await
        .unwrap();
    for (body,) in sealed {
        assert!(
            !String::from_utf8_lossy(&body).contains("MRN-100"),
            "the inbox is encrypted"
        );
    }
}

both_backends!(
    using crate::hl7::hl7_app;
    the_adt_story_drives_the_room,
    duplicates_get_the_original_ack_and_change_nothing,
    bad_messages_get_ae_or_ar_naming_the_field,
    late_events_are_recorded_but_change_nothing,
    merge_moves_encounters_and_rooms_to_the_survivor,
    audit_records_every_message_without_phi,
);
