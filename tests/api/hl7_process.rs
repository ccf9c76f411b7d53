//! Failures and recovery around HL7: `wardline hl7 errors|replay` after a mapping fix, a server
//! killed with SIGKILL in the middle of a feed that loses none of the messages it acknowledged AA,
//! and a database outage answered with AR until it is over.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, TEST_KEK, fresh_database, spawn_node_with};
use crate::hl7::{Mllp, field, fixture, staff};
use crate::mllp::admission;

/// A configuration file with the test KEK (what an operator's wardline.toml would hold).
fn config_file(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("wardline.toml");
    std::fs::write(
        &path,
        format!("[keys.keks]\n\"test-kek\" = \"{TEST_KEK}\"\n{extra}"),
    )
    .unwrap();
    path
}

fn cli(config: &std::path::Path, db: &str, args: &[&str]) -> String {
    crate::process::cli_with(Some(config), args, db)
}

async fn replay_after_a_mapping_fix(backend: Backend) {
    let (db, _dir, _pg) = fresh_database(backend).await;
    let app = spawn_node_with(&db, |c| c.hl7.mrn_authority = "OTHERHOSP".into()).await;
    let mut app = app;
    app.admin_token = crate::helpers::bootstrap_admin(&db).await;
    let s = staff(&app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    let ack = engine.send(&fixture("a01_admit")).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "ERR", 2)),
        ("AE".into(), "PID^1^3".into())
    );
    app.stop().await;

    let tmp = tempfile::tempdir().unwrap();
    let config = config_file(tmp.path(), "");
    let listed = cli(&config, &db, &["hl7", "errors"]);
    assert!(
        listed.contains("GH000101") && listed.contains("PID-3"),
        "{listed}"
    );
    assert!(listed.contains("1 errored message(s)"), "{listed}");
    for phi in ["MÜLLER", "MRN-100234", "19580314"] {
        assert!(
            !listed.contains(phi),
            "the listing shows no patient data: {listed}"
        );
    }
    // The mapping is fixed (the default MRN authority accepts GENHOSP): replay.
    let replayed = cli(&config, &db, &["hl7", "replay", "--all-errors"]);
    assert!(replayed.contains("1 replayed, 0 still in error"), "{replayed}");
    let json = cli(&config, &db, &["hl7", "errors", "--json"]);
    assert_eq!(json.trim(), "", "nothing left in error");
    // No unit teams are configured: the analyst's to-do list says so, naming the field.
    let warned = cli(&config, &db, &["hl7", "errors", "--warnings"]);
    assert!(warned.contains("PV1-3.1: unit 4W has no unit team"), "{warned}");

    let app = spawn_node_with(&db, |_| {}).await;
    let rooms: Value = app
        .get(&s.osei.token, "/api/v1/rooms")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rooms[0]["kind"], "patient_encounter",
        "the replay opened the room: {rooms}"
    );
    let mut conn = app.db().await;
    let (attempts, outcome): (i64, String) =
        sqlx::query_as("SELECT attempts, outcome FROM hl7_inbox WHERE control_id = 'GH000101'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((attempts, outcome.as_str()), (2, "applied"));
    let (audited,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'hl7.replay'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(audited, 1);
    // A resend of the original message still gets the original ACK.
    let mut engine = Mllp::connect(app.mllp).await;
    assert_eq!(engine.send(&fixture("a01_admit")).await, ack);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_mapping_fix_sqlite() {
    replay_after_a_mapping_fix(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_after_a_mapping_fix_postgres() {
    replay_after_a_mapping_fix(Backend::Postgres).await;
}

/// `wardline serve` as a child process; returns it and its MLLP address.
fn serve(db: &str) -> (Child, SocketAddr) {
    let (mut child, rx) = crate::process::spawn_serve(db, "info");
    let addr = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            break None;
        };
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["message"] == "serving MLLP" {
            break v["addr"].as_str().and_then(|a| a.parse().ok());
        }
    };
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve did not log its MLLP address");
    };
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, addr)
}

async fn killed_mid_stream_loses_nothing_acknowledged(backend: Backend) {
    let (db, _dir, _pg) = fresh_database(backend).await;
    let (mut child, addr) = serve(&db);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let mut feeds = Vec::new();
    for conn in 0..4usize {
        let (acked, sent) = (acked.clone(), sent.clone());
        feeds.push(tokio::spawn(async move {
            let mut c = Mllp::connect(addr).await;
            for i in 0.. {
                let n = conn * 100_000 + i;
                sent.lock().unwrap().insert(n);
                c.write(&mllp::frame(admission(n).as_bytes())).await;
                match c.ack().await {
                    Some(ack) if field(&ack, "MSA", 1) == "AA" => {
                        acked.lock().unwrap().insert(n);
                    }
                    Some(ack) => panic!("unexpected ACK {ack}"),
                    None => return,
                }
            }
        }));
    }
    // Let the feed run, then pull the plug without warning.
    while acked.lock().unwrap().len() < 150 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for f in feeds {
        let _ = tokio::time::timeout(Duration::from_secs(15), f).await;
    }
    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(acked.len() >= 150);
    eprintln!("killed after {} AA of {} sent", acked.len(), sent.len());

    // Every AA survived: its inbox entry and its encounter are there after the crash.
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let stored: BTreeSet<String> =
        sqlx::query_as::<_, (String,)>("SELECT control_id FROM hl7_inbox WHERE outcome = 'applied'")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|(c,)| c)
            .collect();
    let visits: BTreeSet<String> = sqlx::query_as::<_, (String,)>("SELECT visit_number FROM encounters")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(v,)| v)
        .collect();
    for n in &acked {
        assert!(stored.contains(&format!("BULK{n:06}")), "AA'd message {n} lost");
        assert!(visits.contains(&format!("V-B{n:06}")), "AA'd admission {n} lost");
    }
    drop(conn);

    // The engine resends everything it is unsure of after the restart: nothing is doubled.
    let (mut child, addr) = serve(&db);
    let mut c = Mllp::connect(addr).await;
    for n in &sent {
        let ack = c.send(&admission(*n)).await;
        assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
    }
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let (encounters,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM encounters")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        encounters as usize,
        sent.len(),
        "each message applied exactly once"
    );
    drop(conn);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_loses_nothing_acknowledged_sqlite() {
    killed_mid_stream_loses_nothing_acknowledged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_loses_nothing_acknowledged_postgres() {
    killed_mid_stream_loses_nothing_acknowledged(Backend::Postgres).await;
}

/// With the database unreachable the feed gets AR (retry), never AA; once it is back, the
/// resent message is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_gives_ar_and_the_retry_succeeds() {
    use sqlx::Connection;
    let app = crate::hl7::hl7_app(Backend::Postgres).await;
    let name = app.database_url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", crate::helpers::pg_server()))
        .await
        .unwrap();
    let sql = |s: String| sqlx::AssertSqlSafe(s);
    sqlx::raw_sql(sql(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::raw_sql(sql(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let mut engine = Mllp::connect(app.mllp).await;
    let ack = engine.send(&fixture("a01_admit")).await;
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "MSA", 2)),
        ("AR".into(), "GH000101".into())
    );
    assert!(field(&ack, "ERR", 3).starts_with("207^"), "{ack}");
    sqlx::raw_sql(sql(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut retried = String::new();
    for _ in 0..20 {
        retried = engine.send(&fixture("a01_admit")).await;
        if field(&retried, "MSA", 1) == "AA" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(field(&retried, "MSA", 1), "AA", "{retried}");
    let mut db = app.db().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM encounters")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    app.stop().await;
}
