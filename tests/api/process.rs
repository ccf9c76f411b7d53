//! The real binary: CLI bootstrap (`migrate`, `user create`, `token create`), `serve` configured
//! through `WARDLINE_*` and `DATABASE_URL`, JSON logs free of message text, patient data and
//! tokens, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, fresh_database};

/// The `wardline` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_wardline");

fn cli(args: &[&str], db: &str) -> String {
    cli_with(None, args, db)
}

/// Runs a `wardline` subcommand on `db` (with a configuration file, when given) and returns what
/// it printed; fails the test when it exits with an error.
pub fn cli_with(config: Option<&std::path::Path>, args: &[&str], db: &str) -> String {
    let mut cmd = Command::new(BIN);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let out = cmd
        .args(args)
        .args(["--database", db])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run wardline");
    assert!(
        out.status.success(),
        "wardline {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `wardline serve` on `db` (ephemeral ports, the test KEK, JSON logs at `level`) and a channel
/// that receives its log lines.
pub fn spawn_serve(db: &str, level: &str) -> (Child, Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("WARDLINE_HTTP_ADDR", "127.0.0.1:0")
        .env("WARDLINE_MLLP_ADDR", "127.0.0.1:0")
        .env("WARDLINE_KEYS__KEKS__CI", crate::helpers::TEST_KEK)
        .env("DATABASE_URL", db)
        .env("WARDLINE_LOG_FORMAT", "json")
        .env("WARDLINE_LOG_LEVEL", level)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

async fn serve_and_check_logs(backend: Backend) {
    let (db, _dir, _pg) = fresh_database(backend).await;
    assert!(cli(&["migrate"], &db).contains("migrations applied"));
    cli(
        &[
            "user",
            "create",
            "--username",
            "admin",
            "--display-name",
            "Admin",
            "--roles",
            "admin,clinician",
        ],
        &db,
    );
    let out = cli(&["token", "create", "--user", "admin", "--label", "ci"], &db);
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .unwrap()
        .trim()
        .to_string();

    let (mut child, rx) = spawn_serve(&db, "debug");
    let mut logs = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server starts and logs its address");
        logs.push(line.clone());
        let v: Value = serde_json::from_str(&line).expect("every log line is JSON");
        if v["message"] == "serving HTTP" {
            break v["addr"].as_str().unwrap().to_string();
        }
    };

    let base = format!("http://{addr}");
    let c = reqwest::Client::new();
    let room: Value = c
        .post(format!("{base}/api/v1/rooms"))
        .bearer_auth(&token)
        .json(&json!({"kind": "care_team", "name": "Ward 7"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret_text = "Patient Zebediah Quuxworth DOB 1931-02-03 MRN 99812345";
    let r = c
        .post(format!(
            "{base}/api/v1/rooms/{}/messages",
            room["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .json(&json!({"body": secret_text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A WebSocket with the token in the query string: the token must not be logged either.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws?access_token={token}"))
        .await
        .unwrap();
    drop(ws);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.expect("serve stops within 10 s of SIGTERM");
    assert!(exited.success(), "graceful shutdown exits 0: {exited:?}");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        logs.push(line);
    }
    let all = logs.join("\n");
    assert!(
        all.contains("/api/v1/rooms/{room_id}/messages"),
        "requests are logged by route template"
    );
    assert!(all.contains("\"stopped\""), "shutdown is logged");
    for needle in [
        "Zebediah",
        "Quuxworth",
        "1931-02-03",
        "99812345",
        token.as_str(),
        "Ward 7",
    ] {
        assert!(!all.contains(needle), "log leaked {needle:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_logs_no_phi_and_stops_on_sigterm_sqlite() {
    serve_and_check_logs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_logs_no_phi_and_stops_on_sigterm_postgres() {
    serve_and_check_logs(Backend::Postgres).await;
}

/// The README's first command: `wardline demo` starts with demo data, prints its tokens, and the
/// demo's patients, FHIR API and on-call roster answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_with_its_data() {
    let mut child = Command::new(BIN)
        .args(["demo", "--http-addr", "127.0.0.1:0", "--mllp-addr", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("Press Ctrl-C")) {
        lines.push(rx.recv_timeout(Duration::from_secs(60)).expect("the demo starts"));
    }
    let url = lines[0].rsplit(' ').next().unwrap().to_string();
    let token = |user: &str| {
        let line = lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{user} ")))
            .expect(user);
        line.rsplit(' ').next().unwrap().to_string()
    };
    let client = reqwest::Client::new();
    let get = |path: &str, token: String| {
        let req = client.get(format!("{url}{path}")).bearer_auth(token);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let rooms = get("/api/v1/rooms", token("dr.osei")).await;
    assert!(
        rooms
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "patient_encounter"),
        "{rooms}"
    );
    let on_call = get("/api/v1/oncall/cardiology", token("dr.osei")).await;
    assert_eq!(on_call[0]["display_name"], "Dr. Kwame Osei", "{on_call}");
    let patients = get("/fhir/Patient", token("mirth")).await;
    assert_eq!(patients["total"], 2, "{patients}");
    // SIGTERM: a graceful stop removes the demo's throw-away directory.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().expect("the demo stops");
    assert!(status.success(), "demo exit: {status}");
}
