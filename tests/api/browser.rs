//! The web app in headless Chromium (Debian's `chromium`, driven by Playwright): two clinicians
//! open the mock EHR's chart, the SMART launch runs inside its iframe, each sees the patient
//! banner; one sends an urgent message, the other sees it arrive live and acknowledges it; a
//! message the DLP check warns about is confirmed in its dialog; an attachment reaches the other.
//! `tests/browser/e2e.mjs` does the clicking; screenshots land in `target/e2e-artifacts/`.

use std::path::PathBuf;

use serde_json::json;

use crate::helpers::Backend;
use crate::smart_support::{Client, NPI, env};

const NURSE_NPI: &str = "1245319599";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clinicians_launch_from_the_chart_and_talk() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/browser/e2e.mjs");
    tokio::task::spawn_blocking(crate::fhir_support::test_tools)
        .await
        .unwrap();
    assert!(
        root.join("tests/browser/node_modules/playwright-core").exists(),
        "Playwright is not installed (tests/tools/setup.sh should have installed it)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: apt-get install chromium (as .ci/run does)"
    );
    let env = env(Backend::Sqlite, Client::Secret, |_| {}).await;
    env.app
        .user_from(json!({"username": "rn.smart", "display_name": "Nurse Smart", "roles": ["clinician"], "npi": NURSE_NPI}))
        .await;
    env.ehr.practitioner(NURSE_NPI, "Nurse Smart");
    let chart = |npi: &str| format!("{}/chart?patient=p1&encounter=e1&user={npi}", env.ehr.base());
    let artifacts = root.join("target/e2e-artifacts");
    let (a, b) = (chart(NPI), chart(NURSE_NPI));
    let dir = artifacts.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .env("E2E_CHART_URL_A", a)
            .env("E2E_CHART_URL_B", b)
            .env("E2E_EXPECT_BANNER", "S-1")
            .env("E2E_MESSAGE", "Potassium 6.1, please review")
            .env("E2E_ARTIFACTS", &dir)
            .env("CHROMIUM", &chromium)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    for shot in [
        "a-launched.png",
        "b-launched.png",
        "b-received.png",
        "a-acknowledged.png",
    ] {
        assert!(artifacts.join(shot).exists(), "{shot} missing");
    }
    // The message really went through Wardline: stored, and acknowledged by the nurse.
    let mut db = env.app.db().await;
    let acks: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM message_acks a JOIN messages m ON m.id = a.message_id WHERE m.room_id = $1",
    )
    .bind(&env.room)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(acks.0, 1, "{stdout}");
    let attached: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM attachments WHERE room_id = $1 AND message_id IS NOT NULL AND content_type = 'image/png'",
    )
    .bind(&env.room)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(attached.0, 1, "{stdout}");
    env.app.stop().await;
}
