//! Test harness: a real server on a random port over a real database (a fresh SQLite file, or a
//! fresh PostgreSQL database per test), real HTTP and WebSocket clients.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wardline::config::{Config, Secret};
use wardline::startup::Application;
use wardline::store::users::{self, UserRecord};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Base URL of the PostgreSQL server used by tests (no database name).
pub fn pg_server() -> String {
    std::env::var("WARDLINE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Generates `#[tokio::test]`s running `$body(app)` once on SQLite and once on PostgreSQL, on
/// servers from `spawn_app` or, with `using $spawn;` first, from `$spawn(backend)`.
#[macro_export]
macro_rules! both_backends {
    (using $spawn:path; $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $spawn($crate::helpers::Backend::Sqlite).await;
                    super::$name(&app).await;
                    app.stop().await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let app = $spawn($crate::helpers::Backend::Postgres).await;
                    super::$name(&app).await;
                    app.stop().await;
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $crate::both_backends!(using $crate::helpers::spawn_app; $($name),+);
    };
}

/// A self-signed certificate for `localhost` written to a temporary directory: (cert, cert
/// path, key path, the directory that holds them).
pub fn self_signed() -> (
    rcgen::Certificate,
    std::path::PathBuf,
    std::path::PathBuf,
    tempfile::TempDir,
) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert.cert, cert_path, key_path, dir)
}

/// A running server and what tests need to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The MLLP listener (HL7 v2).
    pub mllp: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub database_url: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

/// A fresh database URL for a backend (the directory must outlive the test).
pub async fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>, Option<String>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("wardline.db").display());
            (url, Some(dir), None)
        }
        Backend::Postgres => {
            let name = format!("wl_t_{}", Uuid::now_v7().simple());
            let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server()))
                .await
                .expect("PostgreSQL must be running for the test suite (see README: WARDLINE_TEST_PG)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("create test database");
            (format!("{}/{name}", pg_server()), None, Some(name))
        }
    }
}

/// Base64 of 32 bytes: the key-encryption key of every test server.
pub const TEST_KEK: &str = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy0tLS0tLS0tLS0=";

/// Test configuration: port 0, small limits where tests probe them.
pub fn test_config(database_url: &str) -> Config {
    let mut cfg = Config {
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        mllp_addr: "127.0.0.1:0".parse().expect("addr"),
        database_url: Some(Secret::new(database_url)),
        db_max_connections: 4,
        ..Config::default()
    };
    cfg.limits.max_request_bytes = 64 * 1024;
    cfg.keys.keks.insert("test-kek".into(), Secret::new(TEST_KEK));
    // Nothing may be written to the working directory.
    cfg.data_dir = "/nonexistent-wardline-test-dir".into();
    cfg.limits.max_message_chars = 4000;
    cfg.limits.max_attachment_bytes = 256 * 1024;
    cfg
}

/// Starts a server on a fresh database with a bootstrap admin.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with configuration changes.
pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut Config)) -> TestApp {
    let (url, dir, pg_database) = fresh_database(backend).await;
    let mut app = spawn_node_with(&url, change).await;
    app._dir = dir;
    app.pg_database = pg_database;
    app.admin_token = bootstrap_admin(&url).await;
    app
}

/// Starts another server on an existing database (a second node of a cluster).
pub async fn spawn_node(url: &str) -> TestApp {
    spawn_node_with(url, |_| {}).await
}

/// Like [`spawn_node`], with configuration changes.
pub async fn spawn_node_with(url: &str, change: impl FnOnce(&mut Config)) -> TestApp {
    spawn_node_clocked(url, change, std::sync::Arc::new(wardline::clock::SystemClock)).await
}

/// Like [`spawn_app_with`], on a clock the test moves.
pub async fn spawn_app_clocked(
    backend: Backend,
    change: impl FnOnce(&mut Config),
    clock: std::sync::Arc<dyn wardline::clock::Clock>,
) -> TestApp {
    let (url, dir, pg_database) = fresh_database(backend).await;
    let mut app = spawn_node_clocked(&url, change, clock).await;
    app._dir = dir;
    app.pg_database = pg_database;
    app.admin_token = bootstrap_admin(&url).await;
    app
}

/// Like [`spawn_node_with`], on a clock the test moves.
pub async fn spawn_node_clocked(
    url: &str,
    change: impl FnOnce(&mut Config),
    clock: std::sync::Arc<dyn wardline::clock::Clock>,
) -> TestApp {
    let mut cfg = test_config(url);
    change(&mut cfg);
    let app = Application::build_with_clock(cfg, clock)
        .await
        .expect("server builds");
    let addr = app.local_addr();
    let mllp = app
        .mllp_addr()
        .unwrap_or_else(|| "127.0.0.1:9".parse().expect("addr"));
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        mllp,
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        admin_token: String::new(),
        database_url: url.to_string(),
        shutdown,
        server: Some(server),
        _dir: None,
        pg_database: None,
    }
}

pub async fn bootstrap_admin(url: &str) -> String {
    let store = wardline::store::Store::connect(url, 1).await.expect("connect");
    let admin = UserRecord {
        id: Uuid::now_v7(),
        username: "root-admin".into(),
        display_name: "Bootstrap Admin".into(),
        kind: "person".into(),
        roles: vec!["admin".into()],
        npi: None,
        active: true,
    };
    let mut tx = store.begin().await.expect("tx");
    users::insert_user(&mut tx, &admin, 0).await.expect("admin user");
    let (_, token) = wardline::auth::issue_token(&mut tx, admin.id, "test", 0, None, &[])
        .await
        .expect("token");
    tx.commit().await.expect("commit");
    store.close().await;
    token
}

/// A user created through the API, with a token.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub token: String,
}

impl TestApp {
    /// Shuts the server down and waits for it; then drops a PostgreSQL test database.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let res = tokio::time::timeout(Duration::from_secs(10), server).await;
            assert!(res.is_ok(), "server did not stop within 10 s");
        }
        if let Some(name) = self.pg_database.take()
            && let Ok(mut c) = sqlx::PgConnection::connect(&format!("{}/postgres", pg_server())).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await;
        }
    }

    /// Stops the server but keeps its database, which `next` (a new node on it) takes over
    /// dropping at its own stop: a restart.
    pub async fn restart_into(mut self, next: &mut TestApp) {
        next.pg_database = self.pg_database.take();
        next.admin_token = self.admin_token.clone();
        self.stop().await;
    }

    /// A direct connection to the test database, for checking what is really stored.
    pub async fn db(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.database_url)
            .await
            .expect("direct db connection")
    }

    /// The shutdown token (graceful-shutdown tests cancel it themselves).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Creates a user with the given roles and issues a token for them.
    pub async fn user(&self, username: &str, roles: &[&str]) -> TestUser {
        self.user_from(json!({"username": username, "display_name": username, "roles": roles}))
            .await
    }

    /// Creates the user `body` describes (as `POST /api/v1/users` takes it) and issues a token.
    pub async fn user_from(&self, body: Value) -> TestUser {
        let resp = self.post(&self.admin_token, "/api/v1/users", &body).await;
        assert_eq!(resp.status(), 201, "create user {body}");
        let id: Uuid = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let resp = self
            .post(
                &self.admin_token,
                "/api/v1/tokens",
                &json!({"user_id": id, "label": "test"}),
            )
            .await;
        assert_eq!(resp.status(), 201, "issue token");
        let token = resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        TestUser { id, token }
    }

    /// Opens a care-team room owned by `owner` with the given other members.
    pub async fn room(&self, owner: &TestUser, others: &[&TestUser]) -> Uuid {
        let ids: Vec<Uuid> = others.iter().map(|u| u.id).collect();
        let resp = self
            .post(
                &owner.token,
                "/api/v1/rooms",
                &json!({"kind": "care_team", "name": "Ward 4 team", "members": ids}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Posts a routine message and returns it.
    pub async fn send(&self, who: &TestUser, room: Uuid, body: &str) -> Value {
        let resp = self
            .post(
                &who.token,
                &format!("/api/v1/rooms/{room}/messages"),
                &json!({"body": body}),
            )
            .await;
        assert_eq!(resp.status(), 201, "send");
        resp.json().await.unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE")
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Connects a WebSocket client, optionally resuming after a message id, and waits for `ready`.
    pub async fn ws(&self, who: &TestUser, after: Option<&str>) -> (WsClient, Value) {
        let mut url = format!("ws://{}/api/v1/ws?access_token={}", self.addr, who.token);
        if let Some(after) = after {
            url.push_str(&format!("&after={after}"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
        let mut client = WsClient {
            stream,
            replayed: Vec::new(),
        };
        loop {
            let frame = client.next().await.expect("a frame before ready");
            if frame["type"] == "ready" {
                return (client, frame);
            }
            client.replayed.push(frame);
        }
    }
}

/// A WebSocket test client speaking JSON frames.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames received before `ready` (the resume replay).
    pub replayed: Vec<Value>,
}

impl WsClient {
    /// The next JSON frame within 5 s; `None` on close or timeout.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                WsMessage::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("JSON frame")),
                WsMessage::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next frame of the given type, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|| panic!("no '{kind}' frame arrived"));
            if f["type"] == kind {
                return f;
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await
                .ok()??
                .ok()?;
            if let WsMessage::Close(frame) = msg {
                return frame.map(|f| u16::from(f.code));
            }
        }
    }

    /// Whether no frame of `kind` arrives within `ms` milliseconds.
    pub async fn quiet_for(&mut self, kind: &str, ms: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == kind {
                        return false;
                    }
                }
                Ok(_) => return true,
            }
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.stream
            .send(WsMessage::Text(text.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The bodies of a room's system messages, newest first, as `token`'s holder sees them.
pub async fn system_notes(app: &TestApp, token: &str, room: &str) -> Vec<String> {
    let page: Value = app
        .get(token, &format!("/api/v1/rooms/{room}/messages?limit=50"))
        .await
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "system")
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect()
}
