//! Rooms: who may open which kind, membership gating, member management.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    room_kinds_and_permissions,
    membership_gates_reads,
    members_are_managed
);

async fn room_kinds_and_permissions(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let sched = app.user("sched", &["scheduler"]).await;

    // Direct rooms are unique per pair: asking again (from either side) returns the same room.
    let r = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "direct", "members": [bob.id]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let r = app
        .post(
            &bob.token,
            "/api/v1/rooms",
            &json!({"kind": "direct", "members": [alice.id]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], first["id"]);
    let r = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "direct", "members": []}),
        )
        .await;
    assert_eq!(r.status(), 422);

    // Care-team rooms need a name.
    let r = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "care_team", "name": "  "}),
        )
        .await;
    assert_eq!(r.status(), 422);

    // Role rooms: schedulers and admins only, with a valid role key; one room per role.
    let body = json!({"kind": "role", "role_key": "oncall:cardiology"});
    assert_eq!(app.post(&alice.token, "/api/v1/rooms", &body).await.status(), 403);
    let r = app.post(&sched.token, "/api/v1/rooms", &body).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["role_key"], "oncall:cardiology");
    assert_eq!(app.post(&sched.token, "/api/v1/rooms", &body).await.status(), 409);
    let bad = json!({"kind": "role", "role_key": "on call; drop"});
    assert_eq!(app.post(&sched.token, "/api/v1/rooms", &bad).await.status(), 422);

    // Patient rooms come from ADT; clinicians cannot open them, admins need a real encounter.
    let body = json!({"kind": "patient_encounter", "name": "Bed 4", "encounter_id": Uuid::now_v7()});
    assert_eq!(app.post(&alice.token, "/api/v1/rooms", &body).await.status(), 403);
    assert_eq!(
        app.post(&app.admin_token, "/api/v1/rooms", &body).await.status(),
        422
    );

    // Unknown kinds, unknown fields and unknown members are refused.
    let r = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "party", "name": "x"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "care_team", "name": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = app
        .post(
            &alice.token,
            "/api/v1/rooms",
            &json!({"kind": "care_team", "name": "x", "members": [Uuid::now_v7()]}),
        )
        .await;
    assert_eq!(r.status(), 422);

    let mine: Vec<Value> = app.get(&alice.token, "/api/v1/rooms").await.json().await.unwrap();
    assert_eq!(mine.len(), 1, "alice sees only her direct room");
}

async fn membership_gates_reads(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let eve = app.user("eve", &["clinician"]).await;
    let room = app.room(&alice, &[&bob]).await;
    let msg = app.send(&alice, room, "K+ 6.1, repeat sample sent").await;
    let msg_id = msg["id"].as_str().unwrap();

    for path in [
        format!("/api/v1/rooms/{room}"),
        format!("/api/v1/rooms/{room}/members"),
        format!("/api/v1/rooms/{room}/messages"),
        format!("/api/v1/messages/{msg_id}/receipts"),
    ] {
        let r = app.get(&eve.token, &path).await;
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["type"],
            "urn:wardline:problem:not-a-member"
        );
        assert_eq!(app.get(&bob.token, &path).await.status(), 200, "{path}");
    }
    let r = app
        .post(
            &eve.token,
            &format!("/api/v1/rooms/{room}/messages"),
            &json!({"body": "hi"}),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.post(&eve.token, &format!("/api/v1/messages/{msg_id}/read"), &json!({}))
            .await
            .status(),
        403
    );
    // Catch-up never leaks other rooms, even from the beginning of time.
    let all: Vec<Value> = app
        .get(&eve.token, "/api/v1/messages")
        .await
        .json()
        .await
        .unwrap();
    assert!(all.is_empty());
    assert_eq!(
        app.get(&eve.token, &format!("/api/v1/messages?after={msg_id}"))
            .await
            .status(),
        403
    );

    // Unknown rooms and malformed ids are distinct, clear errors.
    assert_eq!(
        app.get(&alice.token, &format!("/api/v1/rooms/{}", Uuid::now_v7()))
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&alice.token, "/api/v1/rooms/not-a-uuid").await.status(),
        400
    );
}

async fn members_are_managed(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let carol = app.user("carol", &["clinician"]).await;
    let room = app.room(&alice, &[&bob]).await;
    let path = format!("/api/v1/rooms/{room}/members");

    let r = app.post(&bob.token, &path, &json!({"user_id": carol.id})).await;
    assert_eq!(r.status(), 201);
    let members: Vec<Value> = r.json().await.unwrap();
    let reasons: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m["display_name"].as_str().unwrap(), m["reason"].as_str().unwrap()))
        .collect();
    assert!(
        reasons.contains(&("alice", "creator"))
            && reasons.contains(&("bob", "invited"))
            && reasons.contains(&("carol", "invited"))
    );
    assert_eq!(
        app.post(&bob.token, &path, &json!({"user_id": carol.id}))
            .await
            .status(),
        200
    );

    // Members cannot remove others; anyone can leave; admins can remove.
    let r = app.delete(&bob.token, &format!("{path}/{}", carol.id)).await;
    assert_eq!(r.status(), 403);
    let r = app.delete(&carol.token, &format!("{path}/{}", carol.id)).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.get(&carol.token, &format!("/api/v1/rooms/{room}/messages"))
            .await
            .status(),
        403
    );
    let r = app.delete(&app.admin_token, &format!("{path}/{}", bob.id)).await;
    assert_eq!(r.status(), 204);
    let left: Vec<Value> = app.get(&alice.token, &path).await.json().await.unwrap();
    assert_eq!(left.len(), 1);
}
