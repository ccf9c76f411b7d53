//! Data-loss prevention before send: warn (confirm to send), block, redact, per room kind; the
//! audit trail records the kinds found, never the text.

use serde_json::{Value, json};
use wardline::chat::dlp::Action;

use crate::helpers::{Backend, TestApp, spawn_app_with};

const RISKY: &str = "Pt wife asked to update card 4111 1111 1111 1111, SSN 123-45-6789";

async fn run(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.dlp.actions.insert("care_team".into(), Action::Warn);
        c.dlp.actions.insert("direct".into(), Action::Block);
        c.dlp.actions.insert("role".into(), Action::Redact);
        c.dlp.patterns.insert("badge".into(), r"BADGE-\d{6}".into());
    })
    .await;
    warn_then_confirm(&app).await;
    block_and_redact(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlp_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlp_postgres() {
    run(Backend::Postgres).await;
}

async fn stored_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap()
}

async fn warn_then_confirm(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let r = app.post(&alice.token, &path, &json!({"body": RISKY})).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:wardline:problem:dlp-warning");
    assert!(p["detail"].as_str().unwrap().contains("card, ssn"), "{p}");
    assert!(
        !p.to_string().contains("6789"),
        "the problem never echoes the match"
    );
    assert_eq!(stored_count(app).await, 0);

    // Over the WebSocket the same warning arrives as an error frame the client can branch on.
    let (mut ws, _) = app.ws(&alice, None).await;
    ws.send(json!({"type": "send", "room_id": room, "body": RISKY, "idempotency_key": "d-1"}))
        .await;
    let e = ws.next_of("error").await;
    assert_eq!(
        (e["problem"].as_str().unwrap(), e["status"].as_u64().unwrap()),
        ("urn:wardline:problem:dlp-warning", 422)
    );
    ws.send(json!({"type": "send", "room_id": room, "body": RISKY, "idempotency_key": "d-1", "confirm_dlp": true})).await;
    assert_eq!(ws.next_of("sent").await["idempotency_key"], "d-1");
    ws.close().await;

    let r = app
        .post(
            &alice.token,
            &path,
            &json!({"body": "BADGE-004512 left in 4B", "confirm_dlp": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(stored_count(app).await, 2);
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT outcome, detail FROM audit_log WHERE action = 'message.send'")
            .fetch_all(&mut app.db().await)
            .await
            .unwrap();
    let warned: Vec<&(String, String)> = rows.iter().filter(|(o, _)| o == "failure").collect();
    assert_eq!(warned.len(), 2);
    assert!(
        warned[0].1.contains(r#""kinds":["card","ssn"]"#),
        "{}",
        warned[0].1
    );
    assert!(
        rows.iter()
            .all(|(_, d)| !d.contains("6789") && !d.contains("4111"))
    );
}

async fn block_and_redact(app: &TestApp) {
    let bob = app.user("bob", &["clinician"]).await;
    let carol = app.user("carol", &["clinician"]).await;
    let sched = app.user("sched", &["scheduler", "clinician"]).await;
    let r = app
        .post(
            &bob.token,
            "/api/v1/rooms",
            &json!({"kind": "direct", "members": [carol.id]}),
        )
        .await;
    let direct = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            &bob.token,
            &format!("/api/v1/rooms/{direct}/messages"),
            &json!({"body": RISKY, "confirm_dlp": true}),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "urn:wardline:problem:dlp-blocked"
    );

    let r = app
        .post(
            &sched.token,
            "/api/v1/rooms",
            &json!({"kind": "role", "role_key": "oncall:billing"}),
        )
        .await;
    let role = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            &sched.token,
            &format!("/api/v1/rooms/{role}/messages"),
            &json!({"body": RISKY}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    assert_eq!(
        m["body"],
        "Pt wife asked to update card [REDACTED:card], SSN [REDACTED:ssn]"
    );
    let page: Value = app
        .get(&sched.token, &format!("/api/v1/rooms/{role}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"][0]["body"], m["body"],
        "only the redacted text was stored"
    );
}
