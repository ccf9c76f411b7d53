//! The MLLP transport and `POST /hl7`: framing across split and coalesced reads, the frame-size
//! limit, idle timeout, many concurrent connections, TLS, live fan-out of ADT system messages,
//! and the HTTP entry point's authorization.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::hl7::{Mllp, field, fixture, staff};

/// The admission fixture re-keyed as patient/visit/control id `n`, for bulk tests.
pub fn admission(n: usize) -> String {
    fixture("a01_admit")
        .replace("GH000101", &format!("BULK{n:06}"))
        .replace("MRN-100234", &format!("MRN-B{n:06}"))
        .replace("V-9001", &format!("V-B{n:06}"))
}

async fn split_and_coalesced_reads_are_framed(app: &TestApp) {
    let mut c = Mllp::connect(app.mllp).await;
    // One message dribbled a few bytes at a time, with the terminator split too.
    let framed = mllp::frame(admission(1).as_bytes());
    for chunk in framed.chunks(7) {
        c.write(chunk).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(field(&c.ack().await.unwrap(), "MSA", 2), "BULK000001");
    // Three messages in one write, and noise between frames: three ACKs, in order.
    let mut burst = Vec::new();
    for n in 2..=4 {
        burst.extend(mllp::frame(admission(n).as_bytes()));
        burst.extend(b"\r\n");
    }
    c.write(&burst).await;
    for n in 2..=4 {
        let ack = c.ack().await.unwrap();
        assert_eq!(
            (field(&ack, "MSA", 1), field(&ack, "MSA", 2)),
            ("AA".into(), format!("BULK{n:06}"))
        );
    }
}

async fn many_connections_at_once(app: &TestApp) {
    let per = 25;
    let mut tasks = Vec::new();
    for conn in 0..8 {
        let addr = app.mllp;
        tasks.push(tokio::spawn(async move {
            let mut c = Mllp::connect(addr).await;
            for i in 0..per {
                let n = 100 + conn * per + i;
                let ack = c.send(&admission(n)).await;
                assert_eq!(field(&ack, "MSA", 1), "AA", "{ack}");
                assert_eq!(field(&ack, "MSA", 2), format!("BULK{n:06}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut db = app.db().await;
    let (rooms,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE kind = 'patient_encounter'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(rooms, 8 * per as i64);
}

async fn system_messages_reach_connected_members_live(app: &TestApp) {
    let s = staff(app).await;
    let mut engine = Mllp::connect(app.mllp).await;
    engine.send(&fixture("a01_admit")).await;
    let (mut ws, _) = app.ws(&s.osei, None).await;
    engine.send(&fixture("a02_transfer")).await;
    // On PostgreSQL the admission note may still be on its way through LISTEN/NOTIFY when the
    // socket connects: it is delivered too, before the transfer note, in stream order.
    let mut frame = ws.next_of("message").await;
    if frame["message"]["body"] == "Admitted to 4W 412 A." {
        frame = ws.next_of("message").await;
    }
    assert_eq!(frame["message"]["kind"], "system");
    assert_eq!(frame["message"]["body"], "Transferred from 4W 412 A to 5E 510 B.");
    // rn.kim joins with the 5E unit team and is told about the room.
    let (mut kim, _) = app.ws(&s.kim, None).await;
    engine.send(&fixture("a12_cancel_transfer")).await;
    engine
        .send(
            &fixture("a02_transfer")
                .replace("GH000102", "GH000199")
                .replace("20261121103", "20261121113"),
        )
        .await;
    let room = kim.next_of("room").await;
    assert_eq!(room["room"]["kind"], "patient_encounter");
    ws.close().await;
    kim.close().await;
}

async fn post_hl7_needs_an_integration_account(app: &TestApp) {
    let mirth = app.user("mirth", &["integration"]).await;
    let nurse = app.user("nurse", &["clinician"]).await;
    let send = |token: Option<String>, ct: &'static str, body: String| {
        let mut req = app
            .client
            .post(format!("{}/hl7", app.base))
            .header("content-type", ct)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let r = send(
        Some(mirth.token.clone()),
        "x-application/hl7-v2+er7",
        fixture("a01_admit"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("x-application/hl7-v2+er7")
    );
    let ack = r.text().await.unwrap();
    assert_eq!(
        (field(&ack, "MSA", 1), field(&ack, "MSA", 2)),
        ("AA".into(), "GH000101".into())
    );
    // The same message over MLLP is a duplicate of the HTTP one.
    let mut c = Mllp::connect(app.mllp).await;
    assert_eq!(c.send(&fixture("a01_admit")).await, ack);

    let r = send(
        Some(nurse.token.clone()),
        "x-application/hl7-v2+er7",
        fixture("a01_admit"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = send(None, "x-application/hl7-v2+er7", fixture("a01_admit"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = send(Some(mirth.token.clone()), "application/json", "{}".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("hl7-v2+er7"));
    let r = send(Some(mirth.token.clone()), "text/plain", "MSH|^~\\&|X".into())
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "an unusable message is answered with an AR, not an HTTP error"
    );
    assert_eq!(field(&r.text().await.unwrap(), "MSA", 1), "AR");
}

both_backends!(
    using crate::hl7::hl7_app;
    split_and_coalesced_reads_are_framed,
    many_connections_at_once,
    system_messages_reach_connected_members_live,
    post_hl7_needs_an_integration_account,
    hostile_messages_never_break_the_ingest_path,
    nul_bytes_do_not_poison_the_feed,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_get_an_ar_and_the_connection_closes() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.hl7.max_frame_bytes = 4096).await;
    // Split: the decoder notices while the frame grows.
    let mut c = Mllp::connect(app.mllp).await;
    let big = format!("{}\rNTE|1||{}", admission(1), "x".repeat(8000));
    let framed = mllp::frame(big.as_bytes());
    c.write(&framed[..5000]).await;
    let ack = c.ack().await.expect("an AR before closing");
    assert_eq!(field(&ack, "MSA", 1), "AR");
    assert!(c.ack().await.is_none(), "then the connection is closed");
    // Whole in one write: refused just the same.
    let mut c = Mllp::connect(app.mllp).await;
    c.write(&framed).await;
    assert_eq!(field(&c.ack().await.unwrap(), "MSA", 1), "AR");
    // A normal message on a new connection is fine.
    let mut c = Mllp::connect(app.mllp).await;
    assert_eq!(field(&c.send(&admission(2)).await, "MSA", 1), "AA");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.hl7.idle_timeout_secs = 1).await;
    let mut stream = tokio::net::TcpStream::connect(app.mllp).await.unwrap();
    let mut buf = [0u8; 16];
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("closed before 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without data");
    assert!(started.elapsed() >= Duration::from_millis(900));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mllp_over_tls() {
    let (cert, cert_path, key_path, _dir) = crate::helpers::self_signed();
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.hl7.tls.cert_file = Some(cert_path.clone());
        c.hl7.tls.key_file = Some(key_path.clone());
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(app.mllp).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(&mllp::frame(admission(1).as_bytes()))
        .await
        .unwrap();
    let mut decoder = mllp::Decoder::new();
    let mut buf = [0u8; 4096];
    let ack = loop {
        if let Some(f) = decoder.next_frame() {
            break String::from_utf8(f.unwrap()).unwrap();
        }
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the ACK");
        decoder.push(&buf[..n]);
    };
    assert_eq!(field(&ack, "MSA", 1), "AA");
    // Plain MLLP to the TLS port gets no ACK.
    let mut plain = tokio::net::TcpStream::connect(app.mllp).await.unwrap();
    plain
        .write_all(&mllp::frame(admission(2).as_bytes()))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(3), plain.read(&mut buf)).await;
    assert!(
        !matches!(got, Ok(Ok(n)) if n > 0 && buf[..n].contains(&b'M')),
        "no ACK in plain text"
    );
    app.stop().await;
}

/// A random mutation of a fixture: bytes cut out, hostile text spliced in, segments repeated or
/// reordered, the trigger changed.
fn mutations() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let names = [
        "a01_admit",
        "a02_transfer",
        "a03_discharge",
        "a08_update",
        "a11_cancel_admit",
        "a12_cancel_transfer",
        "a13_cancel_discharge",
        "a40_merge",
        "escapes_non_ascii",
        "err_missing_mrn",
    ];
    let hostile = prop_oneof![
        Just("|".to_string()),
        Just("^~\\&".to_string()),
        Just("\\X00\\\\XZZ\\\\E\\\\".to_string()),
        Just("\r".to_string()),
        Just("\n\n".to_string()),
        Just("ééé\\F\\".to_string()),
        Just("PV1|1|I|||||||||||||||||".to_string()),
        Just("\u{0}\u{1c}\u{b}".to_string()),
        "\\PC{0,20}",
        "[0-9]{0,16}",
    ];
    (
        prop::sample::select(names.to_vec()),
        0usize..4000,
        0usize..40,
        hostile,
        "A[0-9]{2}",
        any::<bool>(),
    )
        .prop_map(|(name, at, cut, insert, trigger, shuffle)| {
            let text = fixture(name);
            let mut chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + cut).min(chars.len());
            chars.splice(at..end, insert.chars());
            let mut text: String = chars.into_iter().collect();
            if shuffle {
                let mut segs: Vec<&str> = text.split('\r').collect();
                segs.reverse();
                segs.rotate_right(1);
                text = segs.join("\r");
            }
            text.replacen("^A", &format!("^{trigger}"), 1)
        })
}

async fn hostile_messages_never_break_the_ingest_path(app: &TestApp) {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = mutations();
    let mut c = Mllp::connect(app.mllp).await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let msg = strategy.new_tree(&mut runner).unwrap().current();
        let ack = c.send(&msg).await;
        let code = field(&ack, "MSA", 1);
        assert!(["AA", "AE", "AR"].contains(&code.as_str()), "{msg:?} → {ack:?}");
        *seen.entry(code).or_insert(0) += 1;
    }
    assert!(
        seen.len() >= 2,
        "the mutations reach more than one outcome: {seen:?}"
    );
    eprintln!("hostile messages: {seen:?}");
    // Still healthy and still applying.
    assert_eq!(field(&c.send(&admission(999_999)).await, "MSA", 1), "AA");
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// NUL bytes (raw or as `\X00\`) must not turn a message into one the database refuses on every
/// retry (PostgreSQL text cannot hold NUL): they are read as U+FFFD and the message is applied.
async fn nul_bytes_do_not_poison_the_feed(app: &TestApp) {
    let mut c = Mllp::connect(app.mllp).await;
    let escaped = admission(7).replace("MÜLLER^ANNA", "M\\X00\\LLER^ANNA");
    assert_eq!(field(&c.send(&escaped).await, "MSA", 1), "AA");
    let raw = admission(8)
        .replace("MÜLLER^ANNA", "M\u{0}LLER^ANNA")
        .replace("EPIC|", "EP\u{0}IC|");
    assert_eq!(field(&c.send(&raw).await, "MSA", 1), "AA");
    let mut db = app.db().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM patients WHERE family_name = 'M\u{FFFD}LLER'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 2);
}
