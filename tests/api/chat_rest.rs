//! Messages over REST: durable send, history paging, idempotency, receipts, acknowledgements and
//! every kind of bad input.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    send_and_page_history,
    idempotent_retries_store_once,
    bad_input_is_a_clear_problem,
    receipts_and_acknowledgements
);

async fn send_and_page_history(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let room = app.room(&alice, &[&bob]).await;
    let mut sent = Vec::new();
    for i in 0..7 {
        let m = app
            .send(
                if i % 2 == 0 { &alice } else { &bob },
                room,
                &format!("note {i} — Zöe’s ✓"),
            )
            .await;
        assert_eq!(m["room_id"], room.to_string());
        assert_eq!(m["priority"], "routine");
        sent.push(m);
    }
    let id: Uuid = sent[0]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7, "message ids are UUIDv7");

    // Newest first, three per page, cursor until exhausted; nothing missing or repeated.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/rooms/{room}/messages?limit=3");
        if let Some(c) = &cursor {
            path.push_str(&format!("&before={c}"));
        }
        let page: Value = app.get(&bob.token, &path).await.json().await.unwrap();
        for m in page["items"].as_array().unwrap() {
            seen.push(m["body"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("note {i} — Zöe’s ✓")).collect();
    assert_eq!(seen, expected);

    // Catch-up across rooms, oldest first, after a given message.
    let after = sent[4]["id"].as_str().unwrap();
    let rest: Vec<Value> = app
        .get(&bob.token, &format!("/api/v1/messages?after={after}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["note 5 — Zöe’s ✓", "note 6 — Zöe’s ✓"]
    );
}

async fn idempotent_retries_store_once(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let body = json!({"body": "Hold metoprolol", "priority": "urgent", "idempotency_key": "k-1"});
    let first = app.post(&alice.token, &path, &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app.post(&alice.token, &path, &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    // The header form is the same key.
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(&alice.token)
        .header("Idempotency-Key", "k-1")
        .json(&json!({"body": "Hold metoprolol", "priority": "urgent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Same key, different content: a conflict, not a silent overwrite or a second message.
    let r = app
        .post(
            &alice.token,
            &path,
            &json!({"body": "Give metoprolol", "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Concurrent duplicates race into one stored message.
    let race = json!({"body": "race", "idempotency_key": "k-race"});
    let futs = (0..8).map(|_| app.post(&alice.token, &path, &race));
    let statuses: Vec<u16> = futures_util::future::join_all(futs)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 200), "{statuses:?}");

    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(stored, 2);
}

async fn bad_input_is_a_clear_problem(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    let path = format!("/api/v1/rooms/{room}/messages");
    let url = format!("{}{path}", app.base);
    let c = &app.client;

    let expect = |status: u16, r: reqwest::Response| async move {
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["status"], status);
        assert!(!p["detail"].as_str().unwrap().is_empty());
    };
    // Malformed JSON, wrong content type, wrong field types, unknown fields.
    let r = c
        .post(&url)
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{\"body\": ")
        .send()
        .await
        .unwrap();
    expect(400, r).await;
    let r = c
        .post(&url)
        .bearer_auth(&alice.token)
        .body("hello")
        .send()
        .await
        .unwrap();
    expect(415, r).await;
    expect(422, app.post(&alice.token, &path, &json!({"body": 5})).await).await;
    expect(
        422,
        app.post(&alice.token, &path, &json!({"body": "x", "priority": "asap"}))
            .await,
    )
    .await;
    expect(
        422,
        app.post(
            &alice.token,
            &path,
            &json!({"body": "x", "sender_id": Uuid::now_v7()}),
        )
        .await,
    )
    .await;
    // Empty and overlong text; an oversize request body.
    expect(422, app.post(&alice.token, &path, &json!({"body": "   "})).await).await;
    expect(
        422,
        app.post(&alice.token, &path, &json!({"body": "é".repeat(4001)}))
            .await,
    )
    .await;
    expect(
        413,
        app.post(&alice.token, &path, &json!({"body": "x".repeat(70 * 1024)}))
            .await,
    )
    .await;
    // Unknown room, bad cursor.
    expect(
        404,
        app.post(
            &alice.token,
            &format!("/api/v1/rooms/{}/messages", Uuid::now_v7()),
            &json!({"body": "x"}),
        )
        .await,
    )
    .await;
    expect(
        400,
        app.get(&alice.token, &format!("{path}?before=yesterday")).await,
    )
    .await;
    expect(400, app.get(&alice.token, &format!("{path}?limit=-1")).await).await;

    // Nothing was stored by any of it, and the exact limit is still accepted.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let r = app
        .post(&alice.token, &path, &json!({"body": "é".repeat(4000)}))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["body"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        4000
    );
}

async fn receipts_and_acknowledgements(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let carol = app.user("carol", &["clinician"]).await;
    let room = app.room(&alice, &[&bob, &carol]).await;
    let routine = app.send(&alice, room, "FYI").await;
    let r = app
        .post(
            &alice.token,
            &format!("/api/v1/rooms/{room}/messages"),
            &json!({"body": "BP 80/40", "priority": "stat"}),
        )
        .await;
    let stat: Value = r.json().await.unwrap();
    assert_eq!(stat["requires_ack"], true);
    let stat_id = stat["id"].as_str().unwrap();

    // Bob reads the routine message: his receipt shows read, carol's is pending.
    let r = app
        .post(
            &bob.token,
            &format!("/api/v1/messages/{}/read", routine["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let receipts: Vec<Value> = app
        .get(
            &alice.token,
            &format!("/api/v1/messages/{}/receipts", routine["id"].as_str().unwrap()),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipts.len(), 2, "one per other member");
    let of = |u: &Uuid| {
        receipts
            .iter()
            .find(|r| r["user_id"] == u.to_string())
            .unwrap()
            .clone()
    };
    assert!(of(&bob.id)["read_at"].is_string() && of(&bob.id)["delivered_at"].is_string());
    assert!(of(&carol.id)["read_at"].is_null());

    // Routine messages are not acknowledged; nor are your own.
    let path = |id: &str| format!("/api/v1/messages/{id}/ack");
    assert_eq!(
        app.post(&bob.token, &path(routine["id"].as_str().unwrap()), &json!({}))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.post(&alice.token, &path(stat_id), &json!({})).await.status(),
        422
    );
    // Carol acknowledges (twice: idempotent); history shows it.
    let r = app.post(&carol.token, &path(stat_id), &json!({})).await;
    assert_eq!(r.status(), 200);
    let ack: Value = r.json().await.unwrap();
    let again: Value = app
        .post(&carol.token, &path(stat_id), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack, again);
    let page: Value = app
        .get(&alice.token, &format!("/api/v1/rooms/{room}/messages"))
        .await
        .json()
        .await
        .unwrap();
    let shown = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == stat["id"])
        .unwrap();
    assert_eq!(shown["acks"].as_array().unwrap().len(), 1);
    assert_eq!(shown["acks"][0]["user_id"], carol.id.to_string());
    assert_eq!(
        app.post(&carol.token, &path(&Uuid::now_v7().to_string()), &json!({}))
            .await
            .status(),
        404
    );
}
