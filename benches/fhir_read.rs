//! FHIR read-by-id benchmark (SPEC §10: ≥ 10,000 req/s, p99 ≤ 5 ms): `GET /fhir/Patient/{id}`
//! over real HTTP keep-alive connections with a bearer token, so every request authenticates,
//! checks its SMART scope, reads the patient and its identifiers, passes the resource through
//! fhir-sdk's model, and is audited (the audit sink group-commits). Closed loop: `--clients`
//! concurrent clients each send their next request when the previous answer arrives.
//!
//! Run: `cargo bench --bench fhir_read -- [--clients 16] [--requests 20000] [--patients 200]
//!       [--pool N] [--postgres SERVER_URL]` (default: a fresh SQLite file; `--pool`: database
//!       connections, `db_max_connections`). Without the `--bench` argument
//! that `cargo bench` passes (that is, under `cargo test`) it runs a short smoke version.

#[path = "common/mod.rs"]
mod common;

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
    let base = format!("http://{}/fhir", app.local_addr());
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
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let (client, token, base, ids) = (client.clone(), token.clone(), base.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let id = &ids[(c * 7919 + i) % ids.len()];
                let t = Instant::now();
                let resp = client
                    .get(format!("{base}/Patient/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await?;
                let ok = resp.status() == 200;
                let body: Value = resp.json().await?;
                lat.push(t.elapsed());
                if !ok || body["id"] != id.as_str() {
                    bail!("read of Patient/{id} failed: {body}");
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::with_capacity(a.requests);
    for t in tasks {
        lat.extend(t.await??);
    }
    let elapsed = started.elapsed();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "FHIR read by id: {} clients, {backend}, {} patients",
        a.clients,
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
    let audited = audited_reads(url).await?;
    println!("  audit entries for the reads: {audited}");
    if (audited as usize) < lat.len() {
        bail!("only {audited} of {} reads were audited", lat.len());
    }
    shutdown.cancel();
    server.await??;
    Ok(())
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
