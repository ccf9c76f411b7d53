//! Role-based access and break-glass.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    only_clinical_roles_chat,
    break_glass_is_stated_visible_audited_and_reviewed
);

async fn only_clinical_roles_chat(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    for (name, role) in [("audrey", "auditor"), ("ivan", "integration"), ("ada", "admin")] {
        let u = app.user(name, &[role]).await;
        // Even as a member, a non-clinical account reads no conversation.
        app.post(
            &app.admin_token,
            &format!("/api/v1/rooms/{room}/members"),
            &json!({"user_id": u.id}),
        )
        .await;
        for path in [
            "/api/v1/rooms".to_string(),
            format!("/api/v1/rooms/{room}/messages"),
            "/api/v1/messages".into(),
        ] {
            assert_eq!(app.get(&u.token, &path).await.status(), 403, "{role} {path}");
        }
        let r = app
            .post(
                &u.token,
                &format!("/api/v1/rooms/{room}/messages"),
                &json!({"body": "hello"}),
            )
            .await;
        assert_eq!(r.status(), 403, "{role} send");
        let url = format!("ws://{}/api/v1/ws?access_token={}", app.addr, u.token);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
            other => panic!("{role} websocket not refused: {:?}", other.map(|_| ())),
        }
        let refusals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE actor_id = $1 AND outcome = 'failure'")
                .bind(u.id.to_string())
                .fetch_one(&mut app.db().await)
                .await
                .unwrap();
        assert!(refusals >= 5, "{role}: every refusal is audited ({refusals})");
    }
    let sched = app.user("sched", &["scheduler"]).await;
    assert_eq!(
        app.get(&sched.token, "/api/v1/rooms").await.status(),
        200,
        "schedulers coordinate over chat"
    );
}

async fn break_glass_is_stated_visible_audited_and_reviewed(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let carol = app.user("carol", &["clinician"]).await;
    let auditor = app.user("audrey", &["auditor"]).await;
    let room = app.room(&alice, &[&bob]).await;
    app.send(&alice, room, "Rapid response called").await;
    let history = format!("/api/v1/rooms/{room}/messages");
    let bg = format!("/api/v1/rooms/{room}/break-glass");
    assert_eq!(app.get(&carol.token, &history).await.status(), 403);

    // A reason is required, and only clinicians may break the glass.
    assert_eq!(app.post(&carol.token, &bg, &json!({})).await.status(), 422);
    assert_eq!(
        app.post(&carol.token, &bg, &json!({"reason": "urgent"}))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.post(
            &auditor.token,
            &bg,
            &json!({"reason": "I would like to read this"})
        )
        .await
        .status(),
        403
    );

    let refused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'room.break_glass' AND outcome = 'failure' AND actor_id = $1",
    )
    .bind(carol.id.to_string())
    .fetch_one(&mut app.db().await)
    .await
    .unwrap();
    assert_eq!(
        refused, 2,
        "both refusals for a missing or short reason are audited"
    );
    let (mut alice_ws, _) = app.ws(&alice, None).await;
    let reason = "Covering for Dr Osei, patient coding in bed 12";
    let r = app.post(&carol.token, &bg, &json!({"reason": reason})).await;
    assert_eq!(r.status(), 201);
    let grant: Value = r.json().await.unwrap();
    assert_eq!(
        app.get(&carol.token, &history).await.status(),
        200,
        "access is immediate"
    );
    let member = alice_ws.next_of("member").await;
    assert_eq!(
        (
            member["user_id"].as_str().unwrap(),
            member["reason"].as_str().unwrap()
        ),
        (carol.id.to_string().as_str(), "break_glass")
    );
    alice_ws.close().await;
    assert_eq!(
        app.post(&carol.token, &bg, &json!({"reason": reason}))
            .await
            .status(),
        409
    );
    let direct: Value = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "direct", "members": [bob.id]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .post(
            &carol.token,
            &format!("/api/v1/rooms/{}/break-glass", direct["id"].as_str().unwrap()),
            &json!({"reason": reason}),
        )
        .await;
    assert_eq!(r.status(), 422, "direct messages are not break-glass targets");

    // Audited with the grant id only; the reason is sealed at rest.
    let mut db = app.db().await;
    let (detail,): (String,) = sqlx::query_as(
        "SELECT detail FROM audit_log WHERE action = 'room.break_glass' AND outcome = 'success'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(detail.contains(grant["grant_id"].as_str().unwrap()) && !detail.contains("coding"));
    let (sealed,): (Vec<u8>,) = sqlx::query_as("SELECT reason FROM break_glass")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"coding"));

    // Review: auditors only; the reason is shown to them; a grant is reviewed once.
    assert_eq!(app.get(&carol.token, "/api/v1/break-glass").await.status(), 403);
    let pending: Vec<Value> = app
        .get(&auditor.token, "/api/v1/break-glass")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["reason"], reason);
    assert_eq!(pending[0]["user_id"], carol.id.to_string());
    let review = format!(
        "/api/v1/break-glass/{}/review",
        grant["grant_id"].as_str().unwrap()
    );
    assert_eq!(
        app.post(&auditor.token, &review, &json!({"outcome": "justified"}))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.post(&auditor.token, &review, &json!({"outcome": "justified"}))
            .await
            .status(),
        409
    );
    let pending: Vec<Value> = app
        .get(&auditor.token, "/api/v1/break-glass")
        .await
        .json()
        .await
        .unwrap();
    assert!(pending.is_empty());
    let all: Vec<Value> = app
        .get(&auditor.token, "/api/v1/break-glass?pending=false")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all[0]["review_outcome"], "justified");
    assert_eq!(all[0]["reviewed_by"], auditor.id.to_string());
}
