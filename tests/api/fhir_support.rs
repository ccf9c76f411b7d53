//! What the FHIR tests share: a FHIR GET, the two independent R4 validators, test accounts.

use serde_json::Value;

use crate::helpers::{TestApp, TestUser};

/// Sends `Accept: application/fhir+json` and returns status and body.
pub async fn fhir_get(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = app.client.get(format!("{}/fhir/{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ctype.starts_with("application/fhir+json"),
        "{path}: content-type {ctype}"
    );
    (status, resp.json().await.unwrap())
}

/// Installs the test tools if needed (tests/tools/setup.sh: validators, SMTP sink, Playwright)
/// and returns the python to run them with.
pub fn test_tools() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let setup = std::process::Command::new(format!("{root}/tests/tools/setup.sh"))
        .output()
        .expect("tests/tools/setup.sh runs (needs python3 with venv, and npm)");
    assert!(
        setup.status.success(),
        "test tool set-up failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    String::from_utf8(setup.stdout).unwrap().trim().to_string()
}

/// Runs both independent validators over `resources` (tests/tools/validate_fhir.py) and fails the
/// test with their report if either finds a problem.
pub fn validate(resources: &[Value]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = test_tools();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resources.ndjson");
    let lines: Vec<String> = resources.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let schema = std::path::Path::new(&python)
        .parent()
        .unwrap()
        .join("../../fhir.schema.json");
    let out = std::process::Command::new(&python)
        .arg(format!("{root}/tests/tools/validate_fhir.py"))
        .arg(&file)
        .arg(&schema)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "FHIR validation failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains(" resources, 0 problems"), "{report}");
}

pub fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

/// A token for a new user with `roles` (and optional SMART scopes on the token).
pub async fn account(app: &TestApp, name: &str, roles: &[&str], scopes: &[&str]) -> TestUser {
    let user = app.user(name, roles).await;
    if scopes.is_empty() {
        return user;
    }
    let resp = app
        .post(
            &app.admin_token,
            "/api/v1/tokens",
            &serde_json::json!({"user_id": user.id, "scopes": scopes}),
        )
        .await;
    assert_eq!(resp.status(), 201, "scoped token for {name}");
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    TestUser { id: user.id, token }
}
