//! On-call end to end on SQLite and PostgreSQL, on a clock the test moves: roster upload (CSV and
//! JSON, validation report) → who is on call → a message to the role reaches the tier-1 person →
//! unacknowledged, it climbs to tier 2 and the fallback, each notified by a real email (aiosmtpd
//! on loopback) that carries no patient data → an acknowledgement stops it; at shift change a
//! waiting urgent message moves to the incoming person. Two nodes on one PostgreSQL take each
//! step once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wardline::clock::ManualClock;
use wardline::config::Config;

use crate::fhir_support::{entries, fhir_get, validate};
use crate::helpers::system_notes as notes;
use crate::helpers::{Backend, TestApp, TestUser, spawn_app_clocked, spawn_node_clocked};
use crate::smtp_support::SmtpSink;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn configure(port: u16) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.oncall.time_zone = "America/New_York".into();
        c.oncall.tick_ms = 100;
        c.oncall.smtp.host = Some("127.0.0.1".into());
        c.oncall.smtp.port = port;
        c.oncall.smtp.security = wardline::oncall::SmtpSecurity::None;
        c.oncall.services.insert(
            "cardiology".into(),
            wardline::oncall::ServicePolicy {
                timeout_secs: Some(300),
                tiers: Some(2),
                fallback: Some("dr.chief".into()),
            },
        );
    }
}

async fn person(app: &TestApp, name: &str, roles: &[&str]) -> TestUser {
    app.user_from(
        json!({"username": name, "display_name": format!("Dr {name}"), "roles": roles,
        "email": format!("{name}@hospital.test")}),
    )
    .await
}

async fn upload(app: &TestApp, token: &str, ctype: &str, body: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}/api/v1/rosters", app.base))
        .bearer_auth(token)
        .header("content-type", ctype)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Mails addressed to `who`.
fn to(mails: &[String], who: &str) -> usize {
    mails
        .iter()
        .filter(|m| m.starts_with(&format!("X-Rcpt-To: {who}@hospital.test")))
        .count()
}

async fn wait_until<F: AsyncFn() -> bool>(what: &str, check: F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

const ROSTER: &str = "service,tier,start,end,practitioner_id\n\
    cardiology,1,2026-03-07T07:00,2026-03-07T19:00,dr.day\n\
    cardiology,1,2026-03-07T19:00,2026-03-08T07:00,dr.night\n\
    cardiology,2,2026-03-07T07:00,2026-03-08T07:00,dr.backup\n";

async fn roster_routing_escalation(backend: Backend) {
    let smtp = SmtpSink::start();
    // 08:00 in New York (EST) on Saturday 2026-03-07.
    let clock = Arc::new(ManualClock::new(at("2026-03-07T13:00:00Z")));
    let app = spawn_app_clocked(backend, configure(smtp.port), clock.clone()).await;
    let day = person(&app, "dr.day", &["clinician"]).await;
    let night = person(&app, "dr.night", &["clinician"]).await;
    let _backup = person(&app, "dr.backup", &["clinician"]).await;
    let chief = person(&app, "dr.chief", &["clinician"]).await;
    let nurse = person(&app, "rn.ward", &["clinician"]).await;
    let scheduler = person(&app, "sched", &["scheduler"]).await;

    // Upload: refused for non-schedulers and for bad rows; stored with its report otherwise.
    assert_eq!(upload(&app, &nurse.token, "text/csv", ROSTER).await.0, 403);
    for (extra, error) in [
        (
            "cardiology,1,2026-03-08T02:30,2026-03-08T07:00,dr.day",
            "row 4: start does not exist in America/New_York",
        ),
        (
            "cardiology,1,2026-03-08T07:00,2026-03-08T19:00,nobody",
            "row 4: practitioner_id names no active person",
        ),
    ] {
        let (status, problem) =
            upload(&app, &scheduler.token, "text/csv", &format!("{ROSTER}{extra}\n")).await;
        assert_eq!(status, 422, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(error), "{problem}");
    }
    let (status, stored) = upload(&app, &scheduler.token, "text/csv", ROSTER).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["report"], json!({"gaps": [], "overlaps": []}));
    let neuro = json!({"shifts": [
        {"service": "neurology", "tier": 1, "start": "2026-03-07T08:00", "end": "2026-03-07T12:00", "practitioner_id": "dr.day"},
        {"service": "neurology", "tier": 1, "start": "2026-03-07T13:00:00-05:00", "end": "2026-03-07T17:00", "practitioner_id": night.id}]});
    let (status, stored) = upload(&app, &scheduler.token, "application/json", &neuro.to_string()).await;
    assert_eq!(status, 201);
    assert_eq!(
        stored["report"]["gaps"],
        json!([{"service": "neurology", "start": "2026-03-07T17:00:00Z", "end": "2026-03-07T18:00:00Z"}])
    );

    // Who is on call, now and tonight.
    let now: Value = app
        .get(&nurse.token, "/api/v1/oncall/cardiology")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (now[0]["tier"].as_u64(), now[0]["display_name"].as_str()),
        (Some(1), Some("Dr dr.day")),
        "{now}"
    );
    assert_eq!(now[1]["display_name"], "Dr dr.backup");
    let tonight: Value = app
        .get(&nurse.token, "/api/v1/oncall/cardiology?at=2026-03-07T20:00")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tonight[0]["display_name"], "Dr dr.night");
    assert_eq!(
        app.get(&nurse.token, "/api/v1/oncall/dermatology").await.status(),
        404
    );

    // The same read out as FHIR PractitionerRole: who is on call now, with period and tier.
    let (status, roles) = fhir_get(
        &app,
        Some(&nurse.token),
        "PractitionerRole?service=cardiology&active=true",
        &[],
    )
    .await;
    assert_eq!((status, roles["total"].as_i64()), (200, Some(2)), "{roles}");
    let tier1 = entries(&roles)
        .into_iter()
        .find(|r| r["extension"][0]["valueInteger"] == 1)
        .expect("tier 1");
    assert_eq!(
        tier1["practitioner"]["reference"],
        format!("Practitioner/{}", day.id)
    );
    assert_eq!(tier1["period"]["start"], "2026-03-07T12:00:00Z");
    let (_, nights) = fhir_get(
        &app,
        Some(&nurse.token),
        &format!(
            "PractitionerRole?practitioner=Practitioner/{}&active=false",
            night.id
        ),
        &[],
    )
    .await;
    assert_eq!(
        nights["total"], 2,
        "the night shift and the neurology afternoon: {nights}"
    );
    validate(&[roles, nights]);

    // A message to the role reaches the tier-1 person, who is emailed without patient data.
    let body = json!({"body": "Chest pain in bed 4, troponin rising (MRN-100234)", "priority": "urgent"});
    let resp = app
        .post(&nurse.token, "/api/v1/oncall/cardiology/messages", &body)
        .await;
    assert_eq!(resp.status(), 201);
    let message: Value = resp.json().await.unwrap();
    let room = message["room_id"].as_str().unwrap().to_string();
    let mails = smtp.wait_for(1).await;
    assert_eq!(to(&mails, "dr.day"), 1, "{mails:?}");
    for m in &mails {
        assert!(
            !m.contains("troponin") && !m.contains("MRN") && !m.contains("Chest"),
            "PHI in email: {m}"
        );
        assert!(m.contains(&format!("/app/#room={room}")), "{m}");
    }
    let rooms: Value = app.get(&day.token, "/api/v1/rooms").await.json().await.unwrap();
    assert!(rooms.as_array().unwrap().iter().any(|r| r["id"] == room.as_str()));

    // Five minutes without an acknowledgement: tier 2; five more: the fallback.
    clock.advance(chrono::Duration::seconds(301));
    let mails = smtp.wait_for(2).await;
    assert_eq!(to(&mails, "dr.backup"), 1);
    assert!(
        notes(&app, &day.token, &room)
            .await
            .iter()
            .any(|n| n == "Not acknowledged after 5 min: escalated to tier 2 (Dr dr.backup).")
    );
    clock.advance(chrono::Duration::seconds(301));
    let mails = smtp.wait_for(3).await;
    assert_eq!(to(&mails, "dr.chief"), 1);
    // The fallback acknowledges: nothing more happens.
    let resp = app
        .post(
            &chief.token,
            &format!("/api/v1/messages/{}/ack", message["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    clock.advance(chrono::Duration::seconds(301));
    let ran: Value = app
        .post(&app.admin_token, "/api/v1/oncall/run", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ran["escalated"], 0, "{ran}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(smtp.mails().len(), 3);

    // Shift change: an unacknowledged urgent message moves to the incoming person.
    let body = json!({"body": "Second patient, STEMI alert", "priority": "stat"});
    assert_eq!(
        app.post(&nurse.token, "/api/v1/oncall/cardiology/messages", &body)
            .await
            .status(),
        201
    );
    smtp.wait_for(4).await;
    clock.advance(at("2026-03-08T00:01:00Z") - clock_now(&clock));
    let mails = smtp.wait_for(5).await;
    assert_eq!(to(&mails, "dr.night"), 1, "{mails:?}");
    let room_notes = notes(&app, &night.token, &room).await;
    assert!(
        room_notes
            .iter()
            .any(|n| n == "Shift change: an unacknowledged urgent message now goes to Dr dr.night."),
        "{room_notes:?}"
    );
    wait_until("the outgoing doctor leaves the role room", async || {
        let rooms: Value = app.get(&day.token, "/api/v1/rooms").await.json().await.unwrap();
        !rooms.as_array().unwrap().iter().any(|r| r["id"] == room.as_str())
    })
    .await;

    // FHIR Communication to the role reaches the same room (and whoever is on call now).
    let comm = json!({"resourceType": "Communication", "status": "completed", "priority": "routine",
        "recipient": [{"identifier": {"system": "urn:wardline:service", "value": "cardiology"}}],
        "payload": [{"contentString": "Routine question for cardiology"}]});
    let resp = app
        .client
        .post(format!("{}/fhir/Communication", app.base))
        .bearer_auth(&nurse.token)
        .header("content-type", "application/fhir+json")
        .body(comm.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let sent: Value = resp.json().await.unwrap();
    assert_eq!(sent["recipient"][0]["reference"], format!("CareTeam/{room}"));
    validate(&[sent]);

    // Every step is in the audit trail, without the message text.
    let mut db = app.db().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, detail FROM audit_log WHERE action LIKE 'oncall.%' OR action = 'roster.upload'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let count = |a: &str| rows.iter().filter(|(action, _)| action == a).count();
    // Three uploads: the refused one (a failure entry) and the two stored.
    assert_eq!(
        (
            count("roster.upload"),
            count("oncall.notify"),
            count("oncall.escalate"),
            count("oncall.handover")
        ),
        (3, 2, 2, 1),
        "{rows:?}"
    );
    assert!(count("oncall.email") >= 5);
    assert!(
        rows.iter()
            .all(|(_, d)| !d.contains("troponin") && !d.contains("STEMI"))
    );
    drop(db);
    app.stop().await;
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use wardline::clock::Clock;
    clock.now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_routing_escalation_sqlite() {
    roster_routing_escalation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_routing_escalation_postgres() {
    roster_routing_escalation(Backend::Postgres).await;
}

/// Two nodes on one PostgreSQL, both running the timer loop, restarted mid-escalation: each step
/// happens once, and the restarted nodes carry on from the stored timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_take_each_escalation_step_once() {
    let smtp = SmtpSink::start();
    let clock = Arc::new(ManualClock::new(at("2026-03-07T13:00:00Z")));
    let app = spawn_app_clocked(Backend::Postgres, configure(smtp.port), clock.clone()).await;
    let second = spawn_node_clocked(&app.database_url, configure(smtp.port), clock.clone()).await;
    for name in ["dr.day", "dr.night", "dr.backup", "dr.chief"] {
        person(&app, name, &["clinician"]).await;
    }
    let nurse = person(&app, "rn.ward", &["clinician"]).await;
    let scheduler = person(&app, "sched", &["scheduler"]).await;
    assert_eq!(upload(&app, &scheduler.token, "text/csv", ROSTER).await.0, 201);
    let body = json!({"body": "urgent", "priority": "urgent"});
    assert_eq!(
        second
            .post(&nurse.token, "/api/v1/oncall/cardiology/messages", &body)
            .await
            .status(),
        201
    );
    smtp.wait_for(1).await;
    clock.advance(chrono::Duration::seconds(301));
    smtp.wait_for(2).await;
    // Both nodes restart while the message waits at tier 2: the timer is a row, so the new nodes
    // take the next step.
    second.stop().await;
    let url = app.database_url.clone();
    let mut restarted = spawn_node_clocked(&url, configure(smtp.port), clock.clone()).await;
    app.restart_into(&mut restarted).await;
    let app = restarted;
    let second = spawn_node_clocked(&url, configure(smtp.port), clock.clone()).await;
    clock.advance(chrono::Duration::seconds(301));
    let mails = smtp.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.mails().len(), 3, "one email per step: {mails:?}");
    assert_eq!(
        (
            to(&mails, "dr.day"),
            to(&mails, "dr.backup"),
            to(&mails, "dr.chief")
        ),
        (1, 1, 1)
    );
    let mut db = app.db().await;
    let (steps,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'oncall.escalate'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(steps, 2);
    let (notifies,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'oncall.notify'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(notifies, 1);
    drop(db);
    second.stop().await;
    app.stop().await;
}
