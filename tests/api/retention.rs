//! Retention per room kind, legal holds on rooms and patients, and crypto-shredding purges.

use serde_json::{Value, json};
use sqlx::Executor;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, TestUser, spawn_app_with};

async fn run(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.retention.days.insert("care_team".into(), 0);
        c.retention.days.insert("patient_encounter".into(), 0);
        c.retention.purge_interval_secs = 0;
    })
    .await;
    holds_block_purges_and_purges_shred(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_postgres() {
    run(Backend::Postgres).await;
}

async fn patient_room(app: &TestApp, member: &TestUser) -> (Uuid, Uuid) {
    let (patient, encounter) = (Uuid::now_v7(), Uuid::now_v7());
    let mut db = app.db().await;
    db.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO patients (id, family_name, given_name, birth_date, sex, created_at, updated_at)
         VALUES ('{patient}', 'Test', 'Pat', '1950-01-01', 'female', 0, 0)"
    )))
    .await
    .unwrap();
    db.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO encounters (id, patient_id, visit_system, visit_number, class, status, created_at, updated_at)
         VALUES ('{encounter}', '{patient}', 'urn:visit', 'V-{encounter}', 'inpatient', 'finished', 0, 0)"
    )))
    .await
    .unwrap();
    let r = app
        .post(&app.admin_token, "/api/v1/rooms", &json!({"kind": "patient_encounter", "name": "Bed 9", "encounter_id": encounter, "members": [member.id]}))
        .await;
    assert_eq!(r.status(), 201);
    (
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        patient,
    )
}

async fn count(app: &TestApp, sql: &str, room: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(room.to_string())
        .fetch_one(&mut app.db().await)
        .await
        .unwrap()
}

async fn purge(app: &TestApp) -> Vec<String> {
    let r = app
        .post(&app.admin_token, "/api/v1/retention/run", &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["purged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

async fn holds_block_purges_and_purges_shred(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let auditor = app.user("audrey", &["auditor"]).await;
    let (a, b, c) = (
        app.room(&alice, &[]).await,
        app.room(&alice, &[]).await,
        app.room(&alice, &[]).await,
    );
    let (p, patient) = patient_room(app, &alice).await;
    for room in [a, b, c, p] {
        app.send(&alice, room, "retained content").await;
    }
    let att = app
        .client
        .post(format!(
            "{}/api/v1/rooms/{a}/attachments?filename=n.txt",
            app.base
        ))
        .bearer_auth(&alice.token)
        .header("content-type", "text/plain")
        .body("note")
        .send()
        .await
        .unwrap();
    assert_eq!(att.status(), 201);

    // Only compliance places holds; only admins archive.
    let token = auditor.token.as_str();
    let hold = |body: Value| async move { app.post(token, "/api/v1/legal-holds", &body).await };
    assert_eq!(
        app.post(
            &alice.token,
            "/api/v1/legal-holds",
            &json!({"room_id": b, "reference": "LIT-1"})
        )
        .await
        .status(),
        403
    );
    let refused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'legal_hold.place' AND outcome = 'failure' AND actor_id = $1",
    )
    .bind(alice.id.to_string())
    .fetch_one(&mut app.db().await)
    .await
    .unwrap();
    assert_eq!(refused, 1, "the refused hold is on the record");
    assert_eq!(
        hold(json!({"room_id": b, "patient_id": patient, "reference": "x"}))
            .await
            .status(),
        422
    );
    assert_eq!(
        hold(json!({"patient_id": Uuid::now_v7(), "reference": "x"}))
            .await
            .status(),
        404
    );
    let r = hold(json!({"room_id": b, "reference": "LIT-2026-044"})).await;
    assert_eq!(r.status(), 201);
    let hold_b = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        hold(json!({"patient_id": patient, "reference": "LIT-2026-045"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.post(&alice.token, &format!("/api/v1/rooms/{a}/archive"), &json!({}))
            .await
            .status(),
        403
    );
    for room in [a, b, p] {
        assert_eq!(
            app.post(
                &app.admin_token,
                &format!("/api/v1/rooms/{room}/archive"),
                &json!({})
            )
            .await
            .status(),
            204
        );
    }
    let r = app
        .post(
            &alice.token,
            &format!("/api/v1/rooms/{a}/messages"),
            &json!({"body": "late"}),
        )
        .await;
    assert_eq!(r.status(), 409, "archived rooms take no messages");

    // A keeps a copy of its ciphertext, as a backup would.
    let (msg_id, body, key_id): (String, Vec<u8>, String) =
        sqlx::query_as("SELECT id, body, body_key_id FROM messages WHERE room_id = $1")
            .bind(a.to_string())
            .fetch_one(&mut app.db().await)
            .await
            .unwrap();

    // Only the archived, unheld room is purged (c is not archived; b and p are held).
    assert_eq!(purge(app).await, [a.to_string()]);
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM messages WHERE room_id = $1", a).await,
        0
    );
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM attachments WHERE room_id = $1", a).await,
        0
    );
    assert_eq!(
        count(
            app,
            "SELECT COUNT(*) FROM data_keys WHERE scope = 'room:' || $1 AND wrapped IS NULL",
            a
        )
        .await,
        1
    );
    for room in [b, c, p] {
        assert_eq!(
            count(app, "SELECT COUNT(*) FROM messages WHERE room_id = $1", room).await,
            1
        );
    }
    let page: Value = app
        .get(&alice.token, &format!("/api/v1/rooms/{b}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"][0]["body"], "retained content",
        "held content stays readable"
    );
    assert_eq!(purge(app).await, Vec::<String>::new(), "purging is idempotent");

    // Restoring the old ciphertext (from a backup) does not bring the text back: the key is gone.
    sqlx::query(
        "INSERT INTO messages (id, seq, room_id, sender_id, kind, priority, body, body_key_id, created_at)
         VALUES ($1, 999999, $2, $3, 'user', 'routine', $4, $5, 0)",
    )
    .bind(&msg_id)
    .bind(a.to_string())
    .bind(alice.id.to_string())
    .bind(&body)
    .bind(&key_id)
    .execute(&mut app.db().await)
    .await
    .unwrap();
    let r = app
        .get(&alice.token, &format!("/api/v1/rooms/{a}/messages"))
        .await;
    assert_eq!(r.status(), 500);
    assert!(
        r.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("destroyed")
    );

    // Releasing b's hold lets it go; the patient hold still protects p.
    assert_eq!(
        app.post(
            &auditor.token,
            &format!("/api/v1/legal-holds/{hold_b}/release"),
            &json!({})
        )
        .await
        .status(),
        204
    );
    assert_eq!(purge(app).await, [b.to_string()]);
    let holds: Vec<Value> = app
        .get(&auditor.token, "/api/v1/legal-holds")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(holds.len(), 2);
    let purges: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'room.purge'")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(purges, 2);
}
