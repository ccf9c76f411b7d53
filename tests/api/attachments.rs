//! Attachments: type and size limits, sealed at rest, members-only and audited downloads.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::TestApp;

both_backends!(attachments_are_checked_sealed_and_audited);

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-ECG-TRACE-MARKER-0001";

async fn upload(
    app: &TestApp,
    token: &str,
    room: &str,
    name: &str,
    ctype: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/rooms/{room}/attachments", app.base))
        .query(&[("filename", name)])
        .bearer_auth(token)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn attachments_are_checked_sealed_and_audited(app: &TestApp) {
    let alice = app.user("alice", &["clinician"]).await;
    let bob = app.user("bob", &["clinician"]).await;
    let eve = app.user("eve", &["clinician"]).await;
    let room = app.room(&alice, &[&bob]).await.to_string();

    let r = upload(
        app,
        &alice.token,
        &room,
        "Müller_ECG.png",
        "image/png",
        PNG.to_vec(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let info: Value = r.json().await.unwrap();
    assert_eq!(
        (info["filename"].as_str().unwrap(), info["size"].as_i64().unwrap()),
        ("Müller_ECG.png", PNG.len() as i64)
    );
    let id = info["id"].as_str().unwrap().to_string();

    // Refused: wrong content for the type, unsupported types, oversize, empty, non-members.
    assert_eq!(
        upload(
            app,
            &alice.token,
            &room,
            "x.png",
            "image/png",
            b"%PDF-1.7".to_vec()
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        upload(
            app,
            &alice.token,
            &room,
            "x.html",
            "text/html",
            b"<script>".to_vec()
        )
        .await
        .status(),
        415
    );
    assert_eq!(
        upload(
            app,
            &alice.token,
            &room,
            "big.txt",
            "text/plain",
            vec![b'a'; 300 * 1024]
        )
        .await
        .status(),
        413
    );
    let refused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'attachment.upload' AND outcome = 'failure'",
    )
    .fetch_one(&mut app.db().await)
    .await
    .unwrap();
    assert_eq!(refused, 1, "the oversize upload is audited");
    assert_eq!(
        upload(app, &alice.token, &room, "empty.txt", "text/plain", Vec::new())
            .await
            .status(),
        422
    );
    assert_eq!(
        upload(
            app,
            &alice.token,
            &room,
            "../etc.txt",
            "text/plain",
            b"x".to_vec()
        )
        .await
        .status(),
        422
    );
    assert_eq!(
        upload(app, &eve.token, &room, "x.txt", "text/plain", b"x".to_vec())
            .await
            .status(),
        403
    );

    // Attach it to a message; only your own, unattached uploads in this room can be attached.
    let path = format!("/api/v1/rooms/{room}/messages");
    let r = app
        .post(
            &bob.token,
            &path,
            &json!({"body": "mine now", "attachment_ids": [id]}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = app
        .post(
            &alice.token,
            &path,
            &json!({"body": "ECG attached", "attachment_ids": [id]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["attachments"][0]["id"], id);
    let r = app
        .post(
            &alice.token,
            &path,
            &json!({"body": "again", "attachment_ids": [id]}),
        )
        .await;
    assert_eq!(r.status(), 422, "already attached");
    let page: Value = app.get(&bob.token, &path).await.json().await.unwrap();
    assert_eq!(page["items"][0]["attachments"][0]["filename"], "Müller_ECG.png");
    // Over FHIR, the attachment is a payload pointing at its download.
    let message_id = m["id"].as_str().unwrap();
    let (status, bundle) = crate::fhir_support::fhir_get(
        app,
        Some(&bob.token),
        &format!("Communication?_id={message_id}"),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let comm = &crate::fhir_support::entries(&bundle)[0];
    assert_eq!(comm["payload"][0]["contentString"], "ECG attached");
    let attachment = &comm["payload"][1]["contentAttachment"];
    assert_eq!(
        (attachment["contentType"].as_str(), attachment["title"].as_str()),
        (Some("image/png"), Some("Müller_ECG.png"))
    );
    assert!(
        attachment["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/attachments/{id}")),
        "{attachment}"
    );
    crate::fhir_support::validate(&[bundle]);

    // Download: members only, exact bytes, safe headers, audited.
    let r = app.get(&bob.token, &format!("/api/v1/attachments/{id}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename*=UTF-8''M%C3%BCller_ECG.png"
    );
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
    assert_eq!(
        app.get(&eve.token, &format!("/api/v1/attachments/{id}"))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get(&bob.token, &format!("/api/v1/attachments/{}", Uuid::now_v7()))
            .await
            .status(),
        404
    );
    let mut db = app.db().await;
    let downloads: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'attachment.download' AND actor_id = $1",
    )
    .bind(bob.id.to_string())
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(downloads, 1);

    // Sealed at rest: neither the content nor the file name is in the database.
    let (data, name): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT data, filename FROM attachments WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(!data.windows(10).any(|w| w == b"ECG-TRACE-"));
    assert!(!name.windows(6).any(|w| w == b"ller_E"));
    // Tampered content fails closed.
    let mut bad = data.clone();
    bad[15] ^= 0x80;
    sqlx::query("UPDATE attachments SET data = $1 WHERE id = $2")
        .bind(&bad)
        .bind(&id)
        .execute(&mut db)
        .await
        .unwrap();
    let r = app.get(&bob.token, &format!("/api/v1/attachments/{id}")).await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "urn:wardline:problem:undecryptable"
    );
}
