//! FHIR read-by-id benchmark (SPEC §10: ≥ 10,000 req/s, p99 ≤ 5 ms): `GET /fhir/Patient/{id}`
//! over real HTTP keep-alive connections with a bearer token, so every request authenticates,
//! checks its SMART scope, reads the patient and its identifiers, passes the resource through
//! fhir-sdk's model, and is audited (the audit sink group-commits). Closed loop: `--clients`
//! concurrent clients each send their next request when the previous answer arrives.
//!
//! The clients share the server's two CPUs, so they are kept lean, the way a load generator
//! such as wrk is: one bare TCP connection each, the requests' bytes built before the clock
//! starts, the answer's header parsed once. `--hyper` drives the same loop through one hyper
//! HTTP/1.1 connection per client (the generator 2026-12-04 to 12-07), `--reqwest` through
//! reqwest (before that), to compare.
//!
//! Run: `cargo bench --bench fhir_read -- [--clients 16] [--requests 20000] [--patients 200]
//!       [--pool N] [--hyper | --reqwest] [--postgres SERVER_URL]` (default: a fresh SQLite file; `--pool`:
//!       database connections, `db_max_connections`). Without the `--bench` argument
//! that `cargo bench` passes (that is, under `cargo test`) it runs a short smoke version.

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use uuid::Uuid;
use wardline::startup::Application;
use wardline::store::users::{self, UserRecord};

struct Args {
    clients: usize,
    pool: Option<u32>,
    requests: usize,
    patients: usize,
    postgres: Option<String>,
    quick: bool,
    client: Client,
}

/// The load generator's HTTP client.
#[derive(Clone, Copy, PartialEq)]
enum Client {
    /// Bare TCP, wrk-style (the default since 2026-12-07, evening).
    Raw,
    /// A hyper HTTP/1.1 connection (the default 2026-12-04 to 2026-12-07).
    Hyper,
    /// reqwest (the client until 2026-12-03).
    Reqwest,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Raw => "raw TCP",
            Client::Hyper => "hyper",
            Client::Reqwest => "reqwest",
        }
    }
}

fn args() -> Args {
    let cli = common::Cli::from_env();
    let quick = cli.quick();
    Args {
        clients: cli.value("--clients").unwrap_or(16),
        pool: cli.value("--pool"),
        requests: cli
            .value("--requests")
            .unwrap_or(if quick { 400 } else { 20_000 }),
        patients: cli.value("--patients").unwrap_or(if quick { 20 } else { 200 }),
        postgres: cli.postgres(),
        quick,
        client: if cli.flag("--reqwest") {
            Client::Reqwest
        } else if cli.flag("--hyper") {
            Client::Hyper
        } else {
            Client::Raw
        },
    }
}

/// An integration service account and its token, written straight to the store.
async fn service_token(app: &Application) -> anyhow::Result<String> {
    let store = app.store();
    let mut tx = store.begin().await?;
    let user = UserRecord {
        id: Uuid::now_v7(),
        username: "bench-ehr".into(),
        display_name: "Benchmark EHR".into(),
        kind: "service".into(),
        roles: vec!["integration".into()],
        npi: None,
        active: true,
    };
    let now = chrono::Utc::now().timestamp_millis();
    users::insert_user(&mut tx, &user, now).await?;
    let (_, token) = wardline::auth::issue_token(&mut tx, user.id, "bench", now, None, &[]).await?;
    tx.commit().await?;
    Ok(token)
}

async fn bench(a: &Args, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut config = common::config(url, dir)?;
    if let Some(pool) = a.pool {
        config.db_max_connections = pool;
    }
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let base = format!("http://{addr}/fhir");
    let token = service_token(&app).await?;
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.clients)
        .build()?;

    // Patients created through the FHIR API itself (the ADT path), then read back by id.
    let mut ids = Vec::with_capacity(a.patients);
    for n in 0..a.patients {
        let body = json!({"resourceType": "Patient", "identifier": [{"system": "urn:wardline:mrn", "value": format!("B-{n:06}")}],
            "name": [{"family": format!("Bench{n}"), "given": ["Pat"]}], "birthDate": "1970-01-01", "gender": "unknown"});
        let resp = client
            .post(format!("{base}/Patient"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await?;
        if resp.status() != 201 {
            bail!("seeding patient {n}: {} {}", resp.status(), resp.text().await?);
        }
        ids.push(
            resp.json::<Value>().await?["id"]
                .as_str()
                .context("id")?
                .to_string(),
        );
    }

    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let per_client = a.requests / a.clients;
    let groups_before = audit_groups();
    let meter = common::HostMeter::start();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let reads: Vec<String> = (0..per_client)
            .map(|i| ids[(c * 7919 + i) % ids.len()].clone())
            .collect();
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        let kind = a.client;
        tasks.push(tokio::spawn(async move {
            match kind {
                Client::Raw => raw_reads(addr, &token, &reads).await,
                Client::Hyper => lean_reads(addr, &token, &reads).await,
                Client::Reqwest => reqwest_reads(&client, &base, &token, &reads).await,
            }
        }));
    }
    let mut lat = Vec::with_capacity(a.requests);
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    let host = meter.finish(lat.len());
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "FHIR read by id: {} clients ({}), {backend}, {} patients",
        a.clients,
        a.client.name(),
        ids.len()
    );
    println!(
        "  requests: {} in {:.2} s → {:.0} req/s",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(common::percentile(&lat, 0.5)),
        ms(common::percentile(&lat, 0.99)),
        ms(*lat.last().context("no requests")?)
    );
    let over = |limit_ms: f64| lat.iter().filter(|d| ms(**d) > limit_ms).count();
    println!(
        "  tail: p95 {:.2} ms, p99.9 {:.2} ms; over 5 ms: {}, over 10 ms: {}, over 20 ms: {}",
        ms(common::percentile(&lat, 0.95)),
        ms(common::percentile(&lat, 0.999)),
        over(5.0),
        over(10.0),
        over(20.0)
    );
    if !host.is_empty() {
        println!("{host}");
    }
    let (commits, grouped) = audit_groups();
    let (commits, grouped) = (commits - groups_before.0, grouped - groups_before.1);
    println!(
        "  audit group commits: {commits}, {:.1} entries each",
        grouped as f64 / commits.max(1) as f64
    );
    let audited = audited_reads(url).await?;
    println!("  audit entries for the reads: {audited}");
    if (audited as usize) < lat.len() {
        bail!("only {audited} of {} reads were audited", lat.len());
    }
    shutdown.cancel();
    server.await??;
    Ok(())
}

/// The audit sink's group commits so far and the entries they carried, from the process's
/// metrics.
fn audit_groups() -> (u64, u64) {
    let text = wardline::telemetry::metrics_handle().render();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    (
        value("wardline_audit_group_commits_total "),
        value("wardline_audit_grouped_entries_total "),
    )
}

/// The shape every answer must have: the patient asked for.
#[derive(serde::Deserialize)]
struct Read<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'a str,
    id: &'a str,
}

/// Checks one answer; any other status or patient fails the run.
fn check(status: u16, body: &[u8], id: &str) -> anyhow::Result<()> {
    let read: Option<Read> = serde_json::from_slice(body).ok();
    match read {
        Some(r) if status == 200 && r.resource_type == "Patient" && r.id == id => Ok(()),
        _ => bail!(
            "read of Patient/{id} failed: {status} {}",
            String::from_utf8_lossy(body)
        ),
    }
}

/// One client's reads over its own hyper HTTP/1.1 keep-alive connection, each timed from
/// sending the request to holding the whole answer.
async fn lean_reads(addr: SocketAddr, token: &str, reads: &[String]) -> anyhow::Result<Vec<Duration>> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper::header::{AUTHORIZATION, HOST};

    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let (host, auth) = (addr.to_string(), format!("Bearer {token}"));
    let mut lat = Vec::with_capacity(reads.len());
    for id in reads {
        let req = hyper::Request::get(format!("/fhir/Patient/{id}"))
            .header(HOST, &host)
            .header(AUTHORIZATION, &auth)
            .body(Empty::<Bytes>::new())?;
        let t = Instant::now();
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        lat.push(t.elapsed());
        check(status, &body, id)?;
    }
    drop(sender);
    driver.await??;
    Ok(lat)
}

/// One client's reads over a bare TCP keep-alive connection, the way wrk drives a server: the
/// request bytes are built before the clock starts, and the answer is read with one header
/// parse (httparse, hyper's own parser) and its `Content-Length`. No connection task, no
/// channel between the caller and the socket, so the generator takes less of the two CPUs the
/// server needs. Each read is timed from writing the request to holding the whole answer.
async fn raw_reads(addr: SocketAddr, token: &str, reads: &[String]) -> anyhow::Result<Vec<Duration>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let requests: Vec<Vec<u8>> = reads
        .iter()
        .map(|id| {
            format!(
                "GET /fhir/Patient/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
            )
            .into_bytes()
        })
        .collect();
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut lat = Vec::with_capacity(reads.len());
    for (id, request) in reads.iter().zip(&requests) {
        let t = Instant::now();
        stream.write_all(request).await?;
        buf.clear();
        let (status, body_at, length) = loop {
            if buf.len() == buf.capacity() {
                buf.reserve(buf.capacity());
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the server closed the connection during the read of Patient/{id}");
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(at) = resp.parse(&buf)? {
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .context("an answer without Content-Length")?;
                break (resp.code.unwrap_or(0), at, length);
            }
        };
        while buf.len() < body_at + length {
            buf.reserve(body_at + length - buf.len());
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the server closed the connection in the body of Patient/{id}");
            }
        }
        lat.push(t.elapsed());
        if buf.len() > body_at + length {
            bail!("the server sent more than one answer to one request");
        }
        check(status, &buf[body_at..], id)?;
    }
    Ok(lat)
}

/// The same reads through reqwest (`--reqwest`), for comparison with earlier figures.
async fn reqwest_reads(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    reads: &[String],
) -> anyhow::Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(reads.len());
    for id in reads {
        let t = Instant::now();
        let resp = client
            .get(format!("{base}/Patient/{id}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await?;
        lat.push(t.elapsed());
        check(status, &body, id)?;
    }
    Ok(lat)
}

/// How many `fhir.view` audit entries the run left (every read must have one).
async fn audited_reads(url: &str) -> anyhow::Result<i64> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'fhir.view'")
        .fetch_one(&mut c)
        .await?;
    Ok(n)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    if a.quick {
        println!("(quick run: a smoke test, not a measurement; `cargo bench` runs the full one)");
    }
    let postgres = a.postgres.clone();
    common::on_fresh_database(postgres.as_deref(), |url, dir| async move {
        bench(&a, &url, &dir).await
    })
    .await
}
