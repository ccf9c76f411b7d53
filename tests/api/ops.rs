//! Operations endpoints, OpenAPI, and problem details for unknown routes and methods.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    health_ready_and_metrics,
    openapi_lists_the_api,
    unknown_routes_are_problems
);

async fn health_ready_and_metrics(app: &TestApp) {
    let c = &app.client;
    let h = c.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = c.get(format!("{}/readyz", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["database"], "ok");
    // Generate some traffic, then the counters must show it by route template.
    let _ = app.get(&app.admin_token, "/api/v1/me").await;
    let m = c.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(text.contains("wardline_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/api/v1/me\""), "{text}");
}

async fn openapi_lists_the_api(app: &TestApp) {
    let doc: Value = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/rooms",
        "/api/v1/rooms/{room_id}/messages",
        "/api/v1/messages/{message_id}/ack",
        "/api/v1/messages/{message_id}/receipts",
        "/api/v1/ws",
        "/api/v1/rosters",
        "/api/v1/oncall/{service}",
        "/api/v1/oncall/{service}/messages",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["components"]["schemas"]["ServerFrame"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

async fn unknown_routes_are_problems(app: &TestApp) {
    let r = app.get(&app.admin_token, "/api/v1/nothing-here").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], 404);
    assert_eq!(p["type"], "urn:wardline:problem:not-found");
    let r = app
        .client
        .put(format!("{}/api/v1/rooms", app.base))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], 405);
}
