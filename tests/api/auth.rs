//! Bearer tokens: required, hashed at rest, revocable, role-checked.

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    requests_without_valid_tokens_get_401,
    tokens_are_revocable_and_hashed,
    admin_only_endpoints
);

async fn requests_without_valid_tokens_get_401(app: &TestApp) {
    let r = app
        .client
        .get(format!("{}/api/v1/rooms", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "urn:wardline:problem:unauthenticated"
    );
    for bad in ["wlt_0000", "not-a-token", ""] {
        assert_eq!(app.get(bad, "/api/v1/rooms").await.status(), 401, "token {bad:?}");
    }
    let r = app
        .client
        .get(format!("{}/api/v1/rooms", app.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

async fn tokens_are_revocable_and_hashed(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let me: Value = app.get(&alice.token, "/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["roles"], json!(["clinician"]));

    // Only the hash is stored: the raw token appears nowhere in the tokens table.
    let stored = raw_token_column(app).await;
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|h| h.len() == 64 && !h.starts_with("wlt_")));

    // A second token for alice, then alice revokes the first one herself.
    let r = app
        .post(
            &app.admin_token,
            "/api/v1/tokens",
            &json!({"user_id": alice.id, "label": "second"}),
        )
        .await;
    let second: Value = r.json().await.unwrap();
    let first_id = token_id_of(app, &alice.token).await;
    let r = app
        .delete(&alice.token, &format!("/api/v1/tokens/{first_id}"))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.get(&alice.token, "/api/v1/me").await.status(), 401);
    assert_eq!(
        app.get(second["token"].as_str().unwrap(), "/api/v1/me")
            .await
            .status(),
        200
    );

    // Someone else's token cannot be revoked by a non-admin.
    let bob = app.user("bob", &["clinician"]).await;
    let r = app
        .delete(
            &bob.token,
            &format!("/api/v1/tokens/{}", second["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status(), 403);
}

async fn admin_only_endpoints(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let r = app
        .post(
            &alice.token,
            "/api/v1/users",
            &json!({"username": "mallory", "display_name": "M"}),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = app
        .post(&alice.token, "/api/v1/tokens", &json!({"user_id": alice.id}))
        .await;
    assert_eq!(r.status(), 403);
    // Duplicate usernames and unknown roles are refused clearly.
    let r = app
        .post(
            &app.admin_token,
            "/api/v1/users",
            &json!({"username": "alice", "display_name": "A"}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = app
        .post(
            &app.admin_token,
            "/api/v1/users",
            &json!({"username": "eve", "display_name": "E", "roles": ["root"]}),
        )
        .await;
    assert_eq!(r.status(), 422);
}

async fn raw_token_column(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(&mut app.db().await)
        .await
        .unwrap()
}

async fn token_id_of(app: &TestApp, token: &str) -> String {
    sqlx::query_scalar("SELECT id FROM api_tokens WHERE token_hash = $1")
        .bind(wardline::auth::hash_token(token))
        .fetch_one(&mut app.db().await)
        .await
        .unwrap()
}

async fn failed_logins_are_rate_limited(backend: crate::helpers::Backend) {
    let app = crate::helpers::spawn_app_with(backend, |c| c.limits.auth_failures_per_minute = 5).await;
    for _ in 0..5 {
        assert_eq!(app.get("wlt_guess", "/api/v1/me").await.status(), 401);
    }
    let r = app.get("wlt_guess", "/api/v1/me").await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "urn:wardline:problem:rate-limited"
    );
    // A valid token is still served; only failures spend the budget.
    assert_eq!(app.get(&app.admin_token, "/api/v1/me").await.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_sqlite() {
    failed_logins_are_rate_limited(crate::helpers::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_postgres() {
    failed_logins_are_rate_limited(crate::helpers::Backend::Postgres).await;
}
