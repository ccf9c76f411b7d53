//! Encryption at rest: no message text in the database, tampering and unknown keys fail closed,
//! and KEK rotation keeps everything readable by a node that only has the new KEK.

use std::process::Command;

use serde_json::{Value, json};
use sqlx::Executor;

use crate::both_backends;
use crate::helpers::{TEST_KEK, TestApp, spawn_node_with};

both_backends!(
    no_message_text_at_rest,
    tampering_fails_closed,
    rotation_rewraps_without_downtime,
    a_rolled_back_first_message_leaves_no_phantom_key,
);

const SECRET: &str = "Zebediah Quuxworth — lactate 6.2, starting sepsis bundle";

async fn no_message_text_at_rest(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    app.send(&alice, room, SECRET).await;
    let page: Value = app
        .get(&alice.token, &format!("/api/v1/rooms/{room}/messages"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["body"], SECRET, "members read it normally");

    let bodies: Vec<(Vec<u8>, Option<String>)> = sqlx::query_as("SELECT body, body_key_id FROM messages")
        .fetch_all(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].1.is_some(), "every body names its data key");
    assert!(!contains(&bodies[0].0, "Quuxworth".as_bytes()));

    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        // The raw files on disk: database and write-ahead log.
        let mut raw = std::fs::read(path).unwrap();
        raw.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        assert!(
            contains(&raw, b"Ward 4 team"),
            "sanity: this is the right file (room names are not sealed)"
        );
        for needle in ["Quuxworth", "lactate", "sepsis"] {
            assert!(
                !contains(&raw, needle.as_bytes()),
                "{needle} found in the raw database file"
            );
        }
    }
    // Data keys are stored wrapped only.
    let wrapped: Vec<(Vec<u8>, String)> = sqlx::query_as("SELECT wrapped, kek_id FROM data_keys")
        .fetch_all(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(wrapped.len(), 1);
    assert_eq!(wrapped[0].1, "test-kek");
    assert_eq!(wrapped[0].0.len(), 12 + 32 + 16, "nonce + key + tag");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn expect_undecryptable(app: &TestApp, token: &str, path: &str, why: &str) {
    let r = app.get(token, path).await;
    assert_eq!(r.status(), 500, "{path}");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:wardline:problem:undecryptable");
    assert!(p["detail"].as_str().unwrap().contains(why), "{p}");
    assert!(!p.to_string().contains("Quuxworth"));
}

async fn tampering_fails_closed(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let room = app.room(&alice, &[]).await;
    let m1 = app.send(&alice, room, SECRET).await;
    let m2 = app.send(&alice, room, "second").await;
    let (id1, id2) = (m1["id"].as_str().unwrap(), m2["id"].as_str().unwrap());
    let history = format!("/api/v1/rooms/{room}/messages");
    let mut db = app.db().await;
    let (original,): (Vec<u8>,) = sqlx::query_as("SELECT body FROM messages WHERE id = $1")
        .bind(id1)
        .fetch_one(&mut db)
        .await
        .unwrap();

    // One flipped bit in the stored ciphertext.
    let mut flipped = original.clone();
    flipped[20] ^= 0x01;
    sqlx::query("UPDATE messages SET body = $1 WHERE id = $2")
        .bind(&flipped)
        .bind(id1)
        .execute(&mut db)
        .await
        .unwrap();
    expect_undecryptable(app, &alice.token, &history, "integrity check failed").await;
    expect_undecryptable(app, &alice.token, "/api/v1/messages", "integrity check failed").await;

    let integrity: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'integrity.check' AND outcome = 'failure'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(integrity, 2, "each failed decryption is on the audit record");

    // A valid ciphertext moved to another message does not open there either.
    sqlx::query("UPDATE messages SET body = $1 WHERE id = $2")
        .bind(&original)
        .bind(id2)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET body = $1 WHERE id = $2")
        .bind(&original)
        .bind(id1)
        .execute(&mut db)
        .await
        .unwrap();
    expect_undecryptable(app, &alice.token, &history, "integrity check failed").await;
    db.execute(sqlx::AssertSqlSafe(format!(
        "DELETE FROM messages WHERE id = '{id2}'"
    )))
    .await
    .unwrap();

    // An unknown key id, and a destroyed key.
    sqlx::query("UPDATE messages SET body_key_id = 'no-such-key' WHERE id = $1")
        .bind(id1)
        .execute(&mut db)
        .await
        .unwrap();
    expect_undecryptable(app, &alice.token, &history, "data key no-such-key does not exist").await;
    let (key_id,): (String,) = sqlx::query_as("SELECT id FROM data_keys")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET body_key_id = $1 WHERE id = $2")
        .bind(&key_id)
        .bind(id1)
        .execute(&mut db)
        .await
        .unwrap();
    let page: Value = app.get(&alice.token, &history).await.json().await.unwrap();
    assert_eq!(page["items"][0]["body"], SECRET, "restored, readable again");
}

async fn rotation_rewraps_without_downtime(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let rooms = [app.room(&alice, &[]).await, app.room(&alice, &[]).await];
    for r in rooms {
        app.send(&alice, r, SECRET).await;
    }
    // Every node now also has k2 (active); the old KEK stays until rotation is done.
    let new_kek = "bmV3LWtlay0yMDI2LWZvci13YXJkbGluZS1yb3RhdGU=";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wardline.toml");
    std::fs::write(
        &cfg,
        format!("[keys]\nactive_kek = \"k2\"\n[keys.keks]\ntest-kek = \"{TEST_KEK}\"\nk2 = \"{new_kek}\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wardline"))
        .args([
            "keys",
            "rotate",
            "--config",
            cfg.to_str().unwrap(),
            "--database",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-wrapped 2 data keys under key-encryption key 'k2'")
    );
    let keks: Vec<(String,)> = sqlx::query_as("SELECT kek_id FROM data_keys")
        .fetch_all(&mut app.db().await)
        .await
        .unwrap();
    assert!(keks.iter().all(|(k,)| k == "k2"));

    // The running server keeps serving; a node that only knows k2 reads everything.
    for r in rooms {
        let page: Value = app
            .get(&alice.token, &format!("/api/v1/rooms/{r}/messages"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"][0]["body"], SECRET);
    }
    let node = spawn_node_with(&app.database_url, |c| {
        c.keys.keks.clear();
        c.keys
            .keks
            .insert("k2".into(), wardline::config::Secret::new(new_kek));
    })
    .await;
    for r in rooms {
        let page: Value = node
            .get(&alice.token, &format!("/api/v1/rooms/{r}/messages"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"][0]["body"], SECRET);
    }
    // New messages on that node are wrapped with k2 too, and the rotation is on the audit record.
    let r = node
        .post(
            &alice.token,
            &format!("/api/v1/rooms/{}/messages", rooms[0]),
            &json!({"body": "after"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'keys.rotate'")
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert_eq!(n, 1);
    node.stop().await;
}

/// A room's data key is created with the room's first message; when that message's transaction
/// rolls back (here: it names an attachment that is not the sender's), the key is not kept in
/// memory either, so the next message is sealed with a key whose row really exists.
async fn a_rolled_back_first_message_leaves_no_phantom_key(app: &TestApp) {
    let a = app.user("alice", &["clinician"]).await;
    let room = app.room(&a, &[]).await;
    let refused = app
        .post(
            &a.token,
            &format!("/api/v1/rooms/{room}/messages"),
            &json!({"body": "see attached", "attachment_ids": [uuid::Uuid::now_v7()]}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    app.send(&a, room, "second try without the attachment").await;
    let mut db = app.db().await;
    let (orphans,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM messages m WHERE m.room_id = $1
         AND NOT EXISTS (SELECT 1 FROM data_keys k WHERE k.id = m.body_key_id)",
    )
    .bind(room.to_string())
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(
        orphans, 0,
        "a message was sealed with a key that was never stored"
    );
}
