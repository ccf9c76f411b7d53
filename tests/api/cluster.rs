//! Two server nodes on one PostgreSQL database: events cross nodes through LISTEN/NOTIFY.

use serde_json::json;

use crate::helpers::{Backend, spawn_app, spawn_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_nodes() {
    let a = spawn_app(Backend::Postgres).await;
    let b = spawn_node(&a.database_url).await;
    let alice = a.user("alice", &["clinician"]).await;
    let bob = a.user("bob", &["clinician"]).await;
    let room = a.room(&alice, &[&bob]).await;

    // Bob is connected to node A, alice to node B.
    let (mut bob_ws, _) = a.ws(&bob, None).await;
    let (mut alice_ws, _) = b.ws(&alice, None).await;

    // Alice posts an urgent message through node B's REST API; bob on node A gets it.
    let r = b
        .post(
            &alice.token,
            &format!("/api/v1/rooms/{room}/messages"),
            &json!({"body": "Rapid response to 4B", "priority": "urgent"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let got = bob_ws.next_of("message").await;
    assert_eq!(got["message"]["body"], "Rapid response to 4B");
    let id = got["message"]["id"].as_str().unwrap().to_string();

    // Bob's delivery on node A produces a receipt that reaches alice on node B.
    let receipt = alice_ws.next_of("receipt").await;
    assert_eq!(receipt["receipts"][0]["message_id"], id);
    assert_eq!(receipt["receipts"][0]["user_id"], bob.id.to_string());

    // Bob acknowledges on node A; alice sees the ack on node B.
    bob_ws.send(json!({"type": "ack", "message_id": id})).await;
    let ack = alice_ws.next_of("ack").await;
    assert_eq!(ack["ack"]["user_id"], bob.id.to_string());

    // A message sent over node A's WebSocket reaches alice on node B.
    bob_ws
        .send(json!({"type": "send", "room_id": room, "body": "On my way", "idempotency_key": "b-1"}))
        .await;
    assert_eq!(bob_ws.next_of("sent").await["idempotency_key"], "b-1");
    assert_eq!(alice_ws.next_of("message").await["message"]["body"], "On my way");

    bob_ws.close().await;
    alice_ws.close().await;
    b.stop().await;
    a.stop().await;
}
