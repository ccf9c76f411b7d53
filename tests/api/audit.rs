//! The audit trail: what gets recorded (and what never does), auditor-only access, export,
//! verification, and detection of direct tampering with the database.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Executor;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(
    actions_are_audited_without_content,
    export_and_verify_for_auditors,
    tampering_is_detected,
    grouped_reads_and_changes_interleave_on_one_chain
);

async fn search(app: &TestApp, auditor: &str, query: &str) -> Vec<Value> {
    let r = app.get(auditor, &format!("/api/v1/audit?{query}")).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// The server's own verification report, asserted intact up to the head row.
async fn verified_to_head(app: &TestApp, auditor: &str) -> Value {
    let report: Value = app
        .get(auditor, "/api/v1/audit/verify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["verified"], report["head_seq"], "{report}");
    report
}

async fn actions_are_audited_without_content(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let eve = app.user("eve", &["clinician"]).await;
    let auditor = app.user("audrey", &["auditor"]).await;
    let room = app.room(&alice, &[&bob]).await;
    let secret = "Zebediah Quuxworth SSN 123-45-6789 is septic";
    let r = app
        .post(
            &alice.token,
            &format!("/api/v1/rooms/{room}/messages"),
            &json!({"body": secret, "priority": "stat", "confirm_dlp": true}),
        )
        .await;
    let msg: Value = r.json().await.unwrap();
    let msg_id = msg["id"].as_str().unwrap();
    assert_eq!(
        app.get(&bob.token, &format!("/api/v1/rooms/{room}/messages"))
            .await
            .status(),
        200
    );
    app.post(&bob.token, &format!("/api/v1/messages/{msg_id}/read"), &json!({}))
        .await;
    app.post(&bob.token, &format!("/api/v1/messages/{msg_id}/ack"), &json!({}))
        .await;
    assert_eq!(
        app.get(&eve.token, &format!("/api/v1/rooms/{room}/messages"))
            .await
            .status(),
        403
    );
    assert_eq!(app.get("wlt_forged", "/api/v1/rooms").await.status(), 401);

    let sends = search(
        app,
        &auditor.token,
        &format!("action=message.send&actor_id={}", alice.id),
    )
    .await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["entity_id"], msg_id);
    assert_eq!(sends[0]["outcome"], "success");
    assert_eq!(sends[0]["source"], "127.0.0.1");
    let detail: Value = serde_json::from_str(sends[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail, json!({"room_id": room, "priority": "stat"}));

    for (action, actor) in [
        ("room.create", &alice),
        ("room.view", &bob),
        ("message.read", &bob),
        ("message.ack", &bob),
    ] {
        let hits = search(
            app,
            &auditor.token,
            &format!("action={action}&actor_id={}", actor.id),
        )
        .await;
        assert_eq!(hits.len(), 1, "{action}");
    }
    let denied = search(
        app,
        &auditor.token,
        &format!("actor_id={}&outcome=failure", eve.id),
    )
    .await;
    assert_eq!(denied.len(), 1);
    assert_eq!(
        (
            denied[0]["action"].as_str().unwrap(),
            denied[0]["entity_id"].as_str().unwrap()
        ),
        ("room.access", room.to_string().as_str())
    );
    let logins = search(app, &auditor.token, "action=auth.login&outcome=failure").await;
    assert_eq!(logins.len(), 1);
    assert!(logins[0]["actor_id"].is_null());

    // Only auditors search, and the refusal is itself on the record.
    assert_eq!(app.get(&alice.token, "/api/v1/audit").await.status(), 403);
    let refused = search(
        app,
        &auditor.token,
        &format!("action=audit.search&actor_id={}", alice.id),
    )
    .await;
    assert_eq!(refused[0]["outcome"], "failure");

    // Nothing in the trail carries message text or patient data.
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT action, detail, entity_id FROM audit_log")
            .fetch_all(&mut app.db().await)
            .await
            .unwrap();
    assert!(rows.len() >= 10);
    for (action, detail, entity) in rows {
        let text = format!("{action} {detail} {}", entity.unwrap_or_default());
        for needle in ["Zebediah", "Quuxworth", "123-45-6789", "septic", "Ward 4"] {
            assert!(!text.contains(needle), "audit leaked {needle}: {text}");
        }
    }
}

async fn export_and_verify_for_auditors(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let auditor = app.user("audrey", &["auditor"]).await;
    let room = app.room(&alice, &[]).await;
    for i in 0..5 {
        app.send(&alice, room, &format!("n{i}")).await;
    }
    let report = verified_to_head(app, &auditor.token).await;
    assert!(report["verified"].as_i64().unwrap() >= 8);

    assert_eq!(app.get(&alice.token, "/api/v1/audit/export").await.status(), 403);
    let r = app.get(&auditor.token, "/api/v1/audit/export").await;
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let entries: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "gap-free and ordered"
    );
    assert_eq!(
        entries.last().unwrap()["action"],
        "audit.export",
        "the export records itself first"
    );
    for pair in entries.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }

    // Paging through search, newest first, covers everything once.
    let mut seen = 0;
    let mut before = String::new();
    loop {
        let page: Value = app
            .get(&auditor.token, &format!("/api/v1/audit?limit=4{before}"))
            .await
            .json()
            .await
            .unwrap();
        seen += page["items"].as_array().unwrap().len();
        match page["next_before"].as_i64() {
            Some(b) => before = format!("&before={b}"),
            None => break,
        }
    }
    assert!(seen >= entries.len());
}

/// Reads are recorded by the sink's group commits, changes inside their own transactions; with
/// both running at once, every entry must still land exactly once on one unbroken chain whose
/// head is its last entry.
async fn grouped_reads_and_changes_interleave_on_one_chain(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let auditor = app.user("audrey", &["auditor"]).await;
    let room = app.room(&alice, &[]).await;
    let history = format!("/api/v1/rooms/{room}/messages");
    let started = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for round in 0..4 {
        let reads = (0..12).map(|_| async {
            assert_eq!(app.get(&alice.token, &history).await.status(), 200);
        });
        let sends = (0..3).map(|i| {
            let body = format!("round {round} note {i}");
            let alice = &alice;
            async move {
                app.send(alice, room, &body).await;
            }
        });
        futures_util::future::join(
            futures_util::future::join_all(reads),
            futures_util::future::join_all(sends),
        )
        .await;
    }
    verified_to_head(app, &auditor.token).await;
    let views = search(
        app,
        &auditor.token,
        &format!("action=room.view&entity_id={room}&limit=200"),
    )
    .await;
    assert_eq!(views.len(), 48, "every read recorded once");
    // The same reads found by entity, whether the trail's entity index has caught up or not
    // (the server indexes about once a second; here also by hand, from a second store).
    let by_room = format!("action=room.view&entity_type=room&entity_id={room}&limit=200");
    // And by actor and time, the other keys the trail indexes in bulk.
    let by_alice = format!("actor_id={}&action=room.view&from={started}&limit=200", alice.id);
    let before_the_reads = format!("action=room.view&to={started}&limit=200");
    let token = auditor.token.as_str();
    let found = |query: String| async move { search(app, token, &query).await.len() };
    assert_eq!(found(by_room.clone()).await, 48);
    assert_eq!(found(by_alice.clone()).await, 48);
    assert_eq!(found(before_the_reads.clone()).await, 0);
    // The server's own indexer (run by its audit writer) catches up within seconds...
    let mut db = app.db().await;
    let one = "SELECT seq FROM audit_head WHERE id = 1";
    let (head,): (i64,) = sqlx::query_as(one).fetch_one(&mut db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let one = "SELECT seq FROM audit_indexed WHERE id = 1";
        let (indexed,): (i64,) = sqlx::query_as(one).fetch_one(&mut db).await.unwrap();
        if indexed >= head {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server's indexer did not reach {head} (at {indexed})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(db);
    // ...and a run from another node (a second store) finds no more to do than what came since.
    let store = wardline::store::Store::connect(&app.database_url, 1)
        .await
        .unwrap();
    wardline::store::audit_index::index_entries(&store).await.unwrap();
    assert_eq!(
        wardline::store::audit_index::index_entries(&store).await.unwrap(),
        0,
        "the trail is indexed up to its head"
    );
    store.close().await;
    assert_eq!(found(by_room.clone()).await, 48);
    assert_eq!(found(by_alice.clone()).await, 48);
    assert_eq!(found(before_the_reads).await, 0);
    assert_eq!(app.get(&alice.token, &history).await.status(), 200);
    let newest = search(app, &auditor.token, &by_room).await;
    assert_eq!(newest.len(), 49, "indexed entries and the newer one together");
    assert!(
        newest[0]["seq"].as_i64() > newest[1]["seq"].as_i64(),
        "newest first"
    );
    let sent = search(app, &auditor.token, "action=message.send&limit=200").await;
    assert_eq!(sent.len(), 12, "every send recorded once");
    let (ok, out) = verify_cli(&app.database_url);
    assert!(ok, "{out}");
}

fn verify_cli(db: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args(["audit", "verify", "--database", db])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn tampering_is_detected(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    for i in 0..4 {
        app.send(&alice, room, &format!("n{i}")).await;
    }
    let (ok, out) = verify_cli(&app.database_url);
    assert!(ok, "{out}");
    assert!(out.contains("audit chain intact"), "{out}");

    let mut db = app.db().await;
    // Ordinary SQL cannot change or delete entries.
    assert!(
        db.execute("UPDATE audit_log SET action = 'x' WHERE seq = 3")
            .await
            .is_err()
    );
    assert!(db.execute("DELETE FROM audit_log WHERE seq = 3").await.is_err());
    // Someone with the database owner's rights disables that protection...
    if app.database_url.starts_with("sqlite") {
        db.execute("DROP TRIGGER audit_log_no_update").await.unwrap();
        db.execute("DROP TRIGGER audit_log_no_delete").await.unwrap();
    } else {
        db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
            .await
            .unwrap();
    }
    // ...and alters entry 3: verify names it.
    let (original,): (String,) = sqlx::query_as("SELECT action FROM audit_log WHERE seq = 3")
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.execute("UPDATE audit_log SET action = 'room.list' WHERE seq = 3")
        .await
        .unwrap();
    let (ok, out) = verify_cli(&app.database_url);
    assert!(!ok && out.contains("entry 3 was altered"), "{out}");
    sqlx::query("UPDATE audit_log SET action = $1 WHERE seq = 3")
        .bind(&original)
        .execute(&mut db)
        .await
        .unwrap();
    assert!(verify_cli(&app.database_url).0);

    // Removes entry 4.
    db.execute("CREATE TABLE saved AS SELECT * FROM audit_log WHERE seq = 4")
        .await
        .unwrap();
    db.execute("DELETE FROM audit_log WHERE seq = 4").await.unwrap();
    let (ok, out) = verify_cli(&app.database_url);
    assert!(!ok && out.contains("entry 4 is missing"), "{out}");
    db.execute("INSERT INTO audit_log SELECT * FROM saved")
        .await
        .unwrap();
    assert!(verify_cli(&app.database_url).0, "restored");

    // Removes the newest entry (a truncated tail still disagrees with the head).
    let (head,): (i64,) = sqlx::query_as("SELECT MAX(seq) FROM audit_log")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq = $1")
        .bind(head)
        .execute(&mut db)
        .await
        .unwrap();
    let (ok, out) = verify_cli(&app.database_url);
    assert!(
        !ok && out.contains(&format!("entries after {} were removed", head - 1)),
        "{out}"
    );
}
