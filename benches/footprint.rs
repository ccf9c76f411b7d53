//! Footprint benchmark (SPEC §10): the release binary's size, cold start to ready on SQLite, idle
//! RSS, and the memory each idle authenticated WebSocket costs the server. The server is the real
//! `wardline serve` process (the binary `cargo bench` just built), measured from outside through
//! `/proc/<pid>/status`, so the load generator's own memory is never counted.
//!
//! Run: `cargo bench --bench footprint -- [--sockets 10000] [--starts 10]`. Without the `--bench`
//! argument that `cargo bench` passes (that is, under `cargo test`) it runs a short smoke version.

#[path = "common/mod.rs"]
#[allow(dead_code)] // Only the percentile helper is used here.
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::future::join_all;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The `wardline` binary of the profile being measured (release under `cargo bench`).
const BIN: &str = env!("CARGO_BIN_EXE_wardline");
/// The KEK every run configures, so start-up includes unwrapping data keys as in production.
const KEK: &str = "YmVuY2gta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=";

struct Args {
    sockets: usize,
    starts: usize,
}

fn cli(db: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(BIN)
        .args(args)
        .args(["--database", db])
        .env_remove("DATABASE_URL")
        .output()
        .context("run wardline")?;
    if !out.status.success() {
        bail!("wardline {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// A running `wardline serve` and the address it reported.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kb(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("VmRSS in /proc/<pid>/status")
    }
}

/// Starts `serve` on `db` and returns it with the time from exec until `/readyz` answered 200.
async fn start(db: &str, dir: &Path) -> anyhow::Result<(Server, Duration)> {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("WARDLINE_HTTP_ADDR", "127.0.0.1:0")
        .env("WARDLINE_MLLP_ADDR", "127.0.0.1:0")
        .env("WARDLINE_DATA_DIR", dir)
        .env("WARDLINE_KEYS__KEKS__BENCH", KEK)
        .env("DATABASE_URL", db)
        .env("WARDLINE_LOG_FORMAT", "json")
        .env("WARDLINE_LOG_LEVEL", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn wardline serve")?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Server {
        child,
        addr: String::new(),
    };
    server.addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .context("the server logs its HTTP address")?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["message"] == "serving HTTP" {
            break v["addr"].as_str().context("addr")?.to_string();
        }
    };
    let client = reqwest::Client::new();
    let url = format!("http://{}/readyz", server.addr);
    loop {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("not ready after 20 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Ok((server, started.elapsed()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn bench(a: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("footprint.db").display());
    let size = std::fs::metadata(BIN)?.len();
    println!(
        "binary: {BIN}: {:.1} MB ({size} bytes)",
        size as f64 / 1_048_576.0
    );

    // The first start creates the database and runs every migration; later ones open it.
    let (first, t) = start(&db, dir.path()).await?;
    drop(first);
    println!("cold start, new database (migrations included): {:.1} ms", ms(t));
    let mut times = Vec::with_capacity(a.starts);
    for _ in 0..a.starts {
        let (s, t) = start(&db, dir.path()).await?;
        drop(s);
        times.push(t);
    }
    times.sort();
    println!(
        "cold start to ready, existing database, {} starts: median {:.1} ms, max {:.1} ms",
        times.len(),
        ms(common::percentile(&times, 0.5)),
        ms(*times.last().context("starts")?)
    );

    cli(
        &db,
        &[
            "user",
            "create",
            "--username",
            "bench",
            "--display-name",
            "Bench",
            "--roles",
            "clinician",
        ],
    )?;
    let out = cli(
        &db,
        &["token", "create", "--user", "bench", "--label", "footprint"],
    )?;
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .context("token line")?
        .trim()
        .to_string();

    let (server, _) = start(&db, dir.path()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_kb()?;
    println!("idle RSS after start: {:.1} MB", idle as f64 / 1024.0);

    // Idle authenticated sockets, opened 100 at a time; each does the full upgrade (token lookup,
    // role check, hub registration) and then sits silent.
    let url = format!("ws://{}/api/v1/ws", server.addr);
    let mut sockets = Vec::with_capacity(a.sockets);
    while sockets.len() < a.sockets {
        let n = (a.sockets - sockets.len()).min(100);
        let batch = join_all((0..n).map(|_| {
            let mut req = url.as_str().into_client_request().expect("ws url");
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
            tokio_tungstenite::connect_async(req)
        }))
        .await;
        for r in batch {
            sockets.push(r.context("WebSocket upgrade")?.0);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let with_sockets = server.rss_kb()?;
    let per = (with_sockets.saturating_sub(idle)) as f64 * 1024.0 / a.sockets as f64;
    println!(
        "{} idle WebSockets: RSS {:.1} MB, {:.1} KB per socket",
        sockets.len(),
        with_sockets as f64 / 1024.0,
        per / 1024.0
    );
    drop(sockets);
    drop(server);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = common::Cli::from_env();
    let quick = cli.quick();
    let a = Args {
        sockets: cli.value("--sockets").unwrap_or(if quick { 200 } else { 10_000 }),
        starts: cli.value("--starts").unwrap_or(if quick { 2 } else { 10 }),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(&a))
}
