//! HTTPS: with a certificate configured the API is served over TLS (rustls, ring) with HSTS,
//! and plain HTTP on that port gets no answer.

use std::net::SocketAddr;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_hsts() {
    let (cert, cert_path, key_path, _dir) = crate::helpers::self_signed();
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.tls.cert_file = Some(cert_path.clone());
        c.tls.key_file = Some(key_path.clone());
    })
    .await;

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], app.addr.port())))
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/api/v1/me", app.addr.port());
    let r = client
        .get(&url)
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "root-admin");

    // Plain HTTP to the TLS port is not served.
    let plain = app
        .client
        .get(format!("http://{}/healthz", app.addr))
        .send()
        .await;
    assert!(!plain.map(|r| r.status().is_success()).unwrap_or(false));
    // A client that does not trust the certificate refuses to talk.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], app.addr.port())))
        .build()
        .unwrap();
    assert!(untrusting.get(&url).send().await.is_err());
    app.stop().await;
}
