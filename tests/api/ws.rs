//! The WebSocket: live fan-out, sender confirmation after storage, receipts, acknowledgements,
//! typing, resume without gaps or duplicates, bad frames, and graceful shutdown.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    concurrent_senders_arrive_in_stream_order,
    live_fan_out_receipts_and_acks,
    resume_has_no_gaps_or_duplicates,
    bad_frames_and_auth,
    shutdown_closes_sockets
);

async fn live_fan_out_receipts_and_acks(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let eve = app.user("eve", &["clinician"]).await;
    let room = app.room(&alice, &[&bob]).await;
    let (mut a, _) = app.ws(&alice, None).await;
    let (mut b, _) = app.ws(&bob, None).await;
    let (mut e, _) = app.ws(&eve, None).await;

    a.send(json!({"type": "send", "room_id": room, "body": "Patient in 4B desaturating", "priority": "urgent", "idempotency_key": "w-1"})).await;
    let sent = a.next_of("sent").await;
    assert_eq!(sent["idempotency_key"], "w-1");
    assert_eq!(sent["replayed"], false);
    let id = sent["message_id"].as_str().unwrap().to_string();
    // Confirmed means stored: it is in the database before anyone acts on it.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE id = $1")
        .bind(&id)
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(stored, 1);

    let got = b.next_of("message").await;
    assert_eq!(got["message"]["id"], id);
    assert_eq!(got["message"]["body"], "Patient in 4B desaturating");
    assert_eq!(got["message"]["priority"], "urgent");
    // The sender's device receives its own message too, and then bob's delivery receipt.
    assert_eq!(a.next_of("message").await["message"]["id"], id);
    let delivered = a.next_of("receipt").await;
    assert_eq!(delivered["receipts"][0]["user_id"], bob.id.to_string());
    assert!(delivered["receipts"][0]["delivered_at"].is_string());

    // Typing reaches the other member.
    b.send(json!({"type": "typing", "room_id": room})).await;
    let typing = a.next_of("presence").await;
    assert_eq!(
        (
            typing["user_id"].as_str().unwrap(),
            typing["state"].as_str().unwrap()
        ),
        (bob.id.to_string().as_str(), "typing")
    );

    // Bob reads and acknowledges: alice gets a read receipt and both see the ack.
    b.send(json!({"type": "read", "message_id": id})).await;
    let read = a.next_of("receipt").await;
    assert!(read["receipts"][0]["read_at"].is_string());
    b.send(json!({"type": "ack", "message_id": id})).await;
    let ack = a.next_of("ack").await;
    assert_eq!(ack["message_id"], id);
    assert_eq!(ack["ack"]["user_id"], bob.id.to_string());
    assert_eq!(b.next_of("ack").await["message_id"], id);

    // A retried send with the same key is confirmed as a replay and not stored again.
    a.send(json!({"type": "send", "room_id": room, "body": "Patient in 4B desaturating", "priority": "urgent", "idempotency_key": "w-1"})).await;
    let again = a.next_of("sent").await;
    assert_eq!(
        (
            again["message_id"].as_str().unwrap(),
            again["replayed"].as_bool().unwrap()
        ),
        (id.as_str(), true)
    );

    // Eve, not a member, saw none of it.
    assert!(e.quiet_for("message", 300).await);
    for c in [a, b, e] {
        c.close().await;
    }
}

async fn resume_has_no_gaps_or_duplicates(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let room = app.room(&alice, &[&bob]).await;
    let first = app.send(&alice, room, "m0").await;

    // Bob saw m0, then went offline while m1..m4 were posted.
    for i in 1..5 {
        app.send(&alice, room, &format!("m{i}")).await;
    }
    let (b, ready) = app.ws(&bob, first["id"].as_str()).await;
    let bodies: Vec<&str> = b
        .replayed
        .iter()
        .map(|f| f["message"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["m1", "m2", "m3", "m4"]);
    assert_eq!(ready["replayed"], 4);
    b.close().await;

    // Now reconnect repeatedly while alice keeps posting: every message arrives exactly once.
    let total = 60;
    let sender = {
        let (base, client, token) = (app.base.clone(), app.client.clone(), alice.token.clone());
        tokio::spawn(async move {
            for i in 0..total {
                let r = client
                    .post(format!("{base}/api/v1/rooms/{room}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"body": format!("live {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        })
    };
    let mut received: Vec<String> = Vec::new();
    let mut last_id: Option<String> = Some(first["id"].as_str().unwrap().to_string());
    let mut seqs = Vec::new();
    while received.iter().filter(|b| b.starts_with("live")).count() < total {
        let (mut c, _) = app.ws(&bob, last_id.as_deref()).await;
        let mut frames: Vec<Value> = std::mem::take(&mut c.replayed);
        for _ in 0..7 {
            match c.next().await {
                Some(f) if f["type"] == "message" => frames.push(f),
                Some(_) => {}
                None => break,
            }
        }
        for f in frames {
            received.push(f["message"]["body"].as_str().unwrap().to_string());
            seqs.push(f["message"]["seq"].as_i64().unwrap());
            last_id = Some(f["message"]["id"].as_str().unwrap().to_string());
        }
        c.close().await;
    }
    sender.await.unwrap();
    let live: Vec<&String> = received.iter().filter(|b| b.starts_with("live")).collect();
    let unique: BTreeSet<&&String> = live.iter().collect();
    assert_eq!(unique.len(), live.len(), "duplicates: {received:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "out of order: {seqs:?}");
    let expected: Vec<String> = (0..total).map(|i| format!("live {i}")).collect();
    assert_eq!(
        live.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        expected.iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );
}

async fn bad_frames_and_auth(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    // No token: a 401 before any upgrade.
    let url = format!("ws://{}/api/v1/ws", app.addr);
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("must be refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("unexpected {other:?}"),
    }
    // Resuming after a message you cannot see is refused too.
    let url = format!(
        "ws://{}/api/v1/ws?access_token={}&after={}",
        app.addr,
        alice.token,
        Uuid::now_v7()
    );
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    let (mut c, _) = app.ws(&alice, None).await;
    c.send_raw("{not json").await;
    let e = c.next_of("error").await;
    assert_eq!(e["status"], 400);
    c.send(json!({"type": "send", "room_id": room, "body": "", "idempotency_key": "e-1"}))
        .await;
    let e = c.next_of("error").await;
    assert_eq!(
        (
            e["status"].as_u64().unwrap(),
            e["idempotency_key"].as_str().unwrap()
        ),
        (422, "e-1")
    );
    c.send(json!({"type": "send", "room_id": Uuid::now_v7(), "body": "x", "idempotency_key": "e-2"}))
        .await;
    assert_eq!(c.next_of("error").await["status"], 404);
    c.send(json!({"type": "ack", "message_id": Uuid::now_v7()})).await;
    assert_eq!(c.next_of("error").await["status"], 404);
    // The connection survived all of that.
    c.send(json!({"type": "send", "room_id": room, "body": "still here", "idempotency_key": "e-3"}))
        .await;
    assert_eq!(c.next_of("sent").await["idempotency_key"], "e-3");
    c.close().await;
}

async fn shutdown_closes_sockets(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let (mut c, _) = app.ws(&alice, None).await;
    app.shutdown_token().cancel();
    assert_eq!(c.close_code().await, Some(1001));
}

/// With several senders at once, every connection still receives messages in stream order, so
/// "resume after the last message I saw" can never skip one that arrived out of order.
async fn concurrent_senders_arrive_in_stream_order(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let carol = app.user("carol", &["clinician"]).await;
    let room = app.room(&alice, &[&bob, &carol]).await;
    let other = app.room(&bob, &[&carol]).await;
    let (mut c, _) = app.ws(&carol, None).await;
    let per_sender = 40;
    let mut tasks = Vec::new();
    for (who, target) in [
        (alice.clone(), room),
        (bob.clone(), room),
        (bob.clone(), other),
        (alice.clone(), room),
    ] {
        let (base, client) = (app.base.clone(), app.client.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_sender {
                let r = client
                    .post(format!("{base}/api/v1/rooms/{target}/messages"))
                    .bearer_auth(&who.token)
                    .json(&json!({"body": format!("m{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    let mut seqs = Vec::new();
    while seqs.len() < 4 * per_sender {
        let f = c.next_of("message").await;
        seqs.push(f["message"]["seq"].as_i64().unwrap());
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of stream order: {seqs:?}"
    );
    c.close().await;
}
