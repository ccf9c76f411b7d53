//! HL7 v2 ADT ingest benchmark (SPEC §10): ADT messages sent over real TCP MLLP connections to
//! an in-process server, each one parsed, durably committed (with all its effects: patient,
//! encounter, patient-encounter room, membership, system message, encrypted inbox entry, audit)
//! and answered with an original-mode ACK. Every connection is stop-and-wait, as interface
//! engines are: one framed message, wait for its ACK, check `MSA-1` is AA, next message.
//! Latency is per message, from just before the frame is written until its ACK has been read.
//!
//! Workload: synthetic patients built from the fixtures `a01_admit`, `a08_update` and
//! `a02_transfer`, re-keyed per patient (MSH-10, MRN, second PID-3 identifier, visit number,
//! bed). Each connection sends, per patient, A01 (new patient + encounter + room, practitioners
//! and the 4W unit team added) → A08 (demographics, practitioners) → A02 (4W → 5E: location,
//! unit-team swap, system message). The templates' event times already increase in that order,
//! so nothing is stale (checked at the end from the inbox).
//!
//! Run: `cargo bench --bench hl7_ingest -- [--messages N] [--connections 1,8] [--warmup N]
//!       [--max-batch N] [--quick] [--postgres SERVER_URL] [--keep-db PATH]` (default: a fresh
//!       SQLite file in a temp dir; with `--postgres postgres://postgres@127.0.0.1:5432` a fresh
//!       database is created on that server and dropped afterwards; `--keep-db` saves the SQLite
//!       database for `benches/sqlite_floor.py`).
//!
//! `RUST_LOG=sqlx::query=debug` logs every SQL statement to stderr (to count them per message).
//!
//! `cargo test --all-targets` also runs this `main` (harness = false), without the `--bench`
//! argument that `cargo bench` passes: it then runs the `--quick` smoke version (a few hundred
//! messages) so the test suite stays fast.

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use uuid::Uuid;
use wardline::startup::Application;
use wardline::store::Store;
use wardline::store::users::{self, UserRecord};

struct Args {
    /// Timed messages per scenario (`None`: 6,000 for one connection, 3,000 per connection else).
    messages: Option<usize>,
    /// Warm-up messages per scenario, not timed (`None`: a tenth of the timed count).
    warmup: Option<usize>,
    connections: Vec<usize>,
    max_batch: Option<usize>,
    postgres: Option<String>,
    quick: bool,
    /// Where to save a copy of the SQLite database after the run (`benches/sqlite_floor.py` replays it).
    keep_db: Option<String>,
}

fn args() -> Args {
    let cli = common::Cli::from_env();
    Args {
        messages: cli.value("--messages"),
        warmup: cli.value("--warmup"),
        connections: cli.value::<String>("--connections").map_or_else(
            || vec![1, 8],
            |list| {
                list.split(',')
                    .map(|c| c.trim().parse().expect("--connections 1,8"))
                    .collect()
            },
        ),
        max_batch: cli.value("--max-batch"),
        postgres: cli.postgres(),
        quick: cli.quick(),
        keep_db: cli.value("--keep-db"),
    }
}

/// The three message templates.
struct Templates {
    a01: String,
    a08: String,
    a02: String,
}

impl Templates {
    fn load() -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = format!("{}/fixtures/hl7/{name}.hl7", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))
        };
        Ok(Self {
            a01: read("a01_admit")?,
            a08: read("a08_update")?,
            a02: read("a02_transfer")?,
        })
    }

    /// Message `step` (0 = A01, 1 = A08, 2 = A02) of synthetic patient `p`: its control id and
    /// MLLP frame.
    fn message(&self, p: u64, step: usize) -> (String, Vec<u8>) {
        let (template, original_id) = match step {
            0 => (&self.a01, "GH000101"),
            1 => (&self.a08, "GH000108"),
            _ => (&self.a02, "GH000102"),
        };
        let control_id = format!("WLB{p:09}{step}");
        // Spread patients over 4W beds 401A..430B (the A02 names it as the prior location too).
        let bed = format!(
            "^{}^{}^",
            401 + p % 30,
            if p.is_multiple_of(2) { "A" } else { "B" }
        );
        let er7 = template
            .replace(original_id, &control_id)
            .replace("MRN-100234", &format!("MRN-B{p:09}"))
            .replace("E-77812", &format!("E-B{p:09}"))
            .replace("V-9001", &format!("V-B{p:09}"))
            .replace("^412^A^", &bed);
        (control_id, mllp::frame(er7.as_bytes()))
    }

    /// `count` messages for consecutive patients starting at `first_patient` (whole A01 → A08 →
    /// A02 sequences, the last one possibly cut short).
    fn sequence(&self, first_patient: u64, count: usize) -> Vec<(String, Vec<u8>)> {
        (0..count)
            .map(|i| self.message(first_patient + (i / 3) as u64, i % 3))
            .collect()
    }
}

/// Users the messages name: the two practitioners by NPI (Adeyemi, added by A08, deliberately
/// maps to no user, as happens in practice: a warning on the inbox entry) and the unit teams.
const PRACTITIONERS: [(&str, &str); 2] = [("dr.osei", "1234567893"), ("dr.lindqvist", "1679576722")];
const UNIT_4W: [&str; 4] = ["rn.4w.1", "rn.4w.2", "rn.4w.3", "rn.4w.4"];
const UNIT_5E: [&str; 3] = ["rn.5e.1", "rn.5e.2", "rn.5e.3"];

async fn seed(store: &Store) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let people = PRACTITIONERS
        .iter()
        .map(|(name, npi)| (*name, Some(*npi)))
        .chain(UNIT_4W.iter().chain(UNIT_5E.iter()).map(|n| (*n, None)));
    for (name, npi) in people {
        let u = UserRecord {
            id: Uuid::now_v7(),
            username: name.into(),
            display_name: name.into(),
            kind: "person".into(),
            roles: vec!["clinician".into()],
            npi: npi.map(String::from),
            active: true,
        };
        users::insert_user(&mut tx, &u, 0).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A field of the segment `seg` of an ER7 text (HL7 numbering; MSH-aware).
fn field<'a>(er7: &'a str, seg: &str, n: usize) -> &'a str {
    let Some(line) = er7.split('\r').find(|l| l.starts_with(seg)) else {
        return "";
    };
    let offset = usize::from(seg == "MSH");
    line.split('|').nth(n - offset).unwrap_or_default()
}

/// One stop-and-wait MLLP client.
struct Client {
    stream: TcpStream,
    decoder: mllp::Decoder,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            decoder: mllp::Decoder::new(),
            buf: vec![0; 16 * 1024],
        })
    }

    /// Sends one frame and returns its ACK.
    async fn send(&mut self, frame: &[u8]) -> anyhow::Result<String> {
        self.stream.write_all(frame).await?;
        loop {
            if let Some(ack) = self.decoder.next_frame() {
                return Ok(String::from_utf8(ack?)?);
            }
            let n = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut self.buf))
                .await
                .context("no ACK within 30 s")??;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.decoder.push(&self.buf[..n]);
        }
    }
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    /// ACKs whose MSA-1 was not AA, by code.
    not_aa: std::collections::BTreeMap<String, usize>,
    /// The first non-AA ACK, to show.
    example: Option<String>,
    /// ACKs whose MSA-2 did not echo the message's control id.
    mismatched: usize,
    started: Option<Instant>,
    finished: Option<Instant>,
}

impl Outcome {
    fn check(&mut self, control_id: &str, ack: &str) {
        let code = field(ack, "MSA", 1);
        if code != "AA" {
            *self.not_aa.entry(code.to_string()).or_default() += 1;
            if self.example.is_none() {
                self.example = Some(ack.replace('\r', "\n  "));
            }
        }
        if field(ack, "MSA", 2) != control_id {
            self.mismatched += 1;
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        for (code, n) in other.not_aa {
            *self.not_aa.entry(code).or_default() += n;
        }
        self.example = self.example.take().or(other.example);
        self.mismatched += other.mismatched;
        self.started = match (self.started, other.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.finished = match (self.finished, other.finished) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// One connection: warm-up (untimed), wait for every connection, then the timed messages.
async fn drive(
    addr: SocketAddr,
    warmup: Vec<(String, Vec<u8>)>,
    timed: Vec<(String, Vec<u8>)>,
    ready: Arc<Barrier>,
) -> anyhow::Result<(Outcome, Outcome)> {
    let mut c = Client::connect(addr).await?;
    let mut warm = Outcome::default();
    for (id, frame) in &warmup {
        let ack = c.send(frame).await?;
        warm.check(id, &ack);
    }
    ready.wait().await;
    let mut out = Outcome {
        latencies: Vec::with_capacity(timed.len()),
        started: Some(Instant::now()),
        ..Outcome::default()
    };
    for (id, frame) in &timed {
        let t0 = Instant::now();
        let ack = c.send(frame).await?;
        out.latencies.push(t0.elapsed());
        out.check(id, &ack);
    }
    out.finished = Some(Instant::now());
    Ok((warm, out))
}

/// CPU time used so far, from /proc (Linux; `None` elsewhere): (machine busy, machine total)
/// in clock ticks and this process's user+system ticks.
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let cpu = common::machine_ticks()?;
    let total: u64 = cpu.iter().take(8).sum();
    let idle = cpu.get(3)? + cpu.get(4)?;
    let (_, user, system) = common::stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    Some((total - idle, total, user + system))
}

/// Per-thread (name, user ticks, system ticks) by thread id, from /proc (Linux; empty elsewhere):
/// the busiest `sqlx-sqlite-worker` is the writer connection's thread, whose CPU per message is
/// the SQLite side of the write path (statements, commit, WAL writes) plus the driver's share.
fn thread_ticks() -> std::collections::HashMap<String, (String, u64, u64)> {
    let mut out = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some(ticks) = common::stat_ticks(&stat) {
            out.insert(task.file_name().to_string_lossy().into_owned(), ticks);
        }
    }
    out
}

/// The busiest SQLite worker thread's (user, system) ticks between two samples.
fn sqlite_writer_ticks(
    before: &std::collections::HashMap<String, (String, u64, u64)>,
    after: &std::collections::HashMap<String, (String, u64, u64)>,
) -> Option<(u64, u64)> {
    after
        .iter()
        .filter(|(_, (name, ..))| name.starts_with("sqlx-sqlite"))
        .map(|(tid, (_, u, s))| {
            let (u0, s0) = before.get(tid).map_or((0, 0), |(_, u, s)| (*u, *s));
            (u.saturating_sub(u0), s.saturating_sub(s0)) // a reused thread id starts lower
        })
        .max_by_key(|(u, s)| u + s)
}

struct Scenario<'a> {
    connections: usize,
    per_connection: usize,
    warmup_per_connection: usize,
    templates: &'a Templates,
    next_patient: &'a mut u64,
}

/// Runs one scenario and prints its report; returns how many ACKs were wrong (not AA, or not
/// echoing the message's control id).
async fn scenario(addr: SocketAddr, s: Scenario<'_>, backend: &str) -> anyhow::Result<usize> {
    // Every message is built and framed before the clock starts.
    let ready = Arc::new(Barrier::new(s.connections));
    let mut tasks = Vec::new();
    for _ in 0..s.connections {
        let warm_patients = s.warmup_per_connection.div_ceil(3) as u64;
        let warmup = s.templates.sequence(*s.next_patient, s.warmup_per_connection);
        *s.next_patient += warm_patients;
        let timed = s.templates.sequence(*s.next_patient, s.per_connection);
        *s.next_patient += s.per_connection.div_ceil(3) as u64;
        tasks.push(tokio::spawn(drive(addr, warmup, timed, ready.clone())));
    }
    let cpu_before = cpu_ticks();
    let threads_before = thread_ticks();
    let mut warm = Outcome::default();
    let mut all = Outcome::default();
    for t in tasks {
        let (w, o) = t.await??;
        warm.merge(w);
        all.merge(o);
    }
    let cpu_after = cpu_ticks();
    let writer = sqlite_writer_ticks(&threads_before, &thread_ticks());
    let total = s.connections * s.per_connection;
    let wall = match (all.started, all.finished) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::ZERO,
    };
    all.latencies.sort();
    let not_aa: usize = all.not_aa.values().sum();
    let warm_not_aa: usize = warm.not_aa.values().sum();
    println!(
        "hl7 ingest: {} MLLP connection{} stop-and-wait, {backend}",
        s.connections,
        if s.connections == 1 { "" } else { "s" }
    );
    println!(
        "  messages: {total} timed (A01/A08/A02 per patient) after {} warm-up",
        s.connections * s.warmup_per_connection
    );
    println!(
        "  throughput: {:.0} msg/s ({total} in {:.2} s)",
        total as f64 / wall.as_secs_f64().max(1e-9),
        wall.as_secs_f64()
    );
    if !all.latencies.is_empty() {
        println!(
            "  send → ACK: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(common::percentile(&all.latencies, 0.50)),
            ms(common::percentile(&all.latencies, 0.99)),
            all.latencies.last().map_or(0.0, |d| ms(*d)),
        );
    }
    println!(
        "  ACKs not AA: {not_aa} {:?} (warm-up: {warm_not_aa}); MSA-2 not echoing MSH-10: {}",
        all.not_aa,
        all.mismatched + warm.mismatched
    );
    if let Some(example) = all.example.or(warm.example) {
        println!("  first non-AA ACK:\n  {example}");
    }
    // CPU is sampled over warm-up and timed phase together (both are the same workload).
    if let (Some((b0, t0, p0)), Some((b1, t1, p1))) = (cpu_before, cpu_after) {
        let elapsed_ticks = (t1 - t0).max(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        println!(
            "  CPU during the run: machine {:.0}% busy of {cores} cores, this process (server + clients) {:.2} cores",
            100.0 * (b1 - b0) as f64 / elapsed_ticks,
            cores * (p1 - p0) as f64 / elapsed_ticks,
        );
    }
    if let Some((user, system)) = writer {
        let sent = (s.connections * (s.warmup_per_connection + s.per_connection)) as f64;
        let us = |ticks: u64| ticks as f64 * 10_000.0 / sent; // USER_HZ is 100 on Linux
        println!(
            "  SQLite writer thread: {:.0} µs user + {:.0} µs system per message",
            us(user),
            us(system)
        );
    }
    Ok(not_aa + warm_not_aa + all.mismatched + warm.mismatched)
}

/// What the inbox says happened, and how much was created; returns how many messages were not
/// `applied` (the workload is built so that every one is).
async fn summary(store: &Store) -> anyhow::Result<i64> {
    let mut conn = store.read().await?;
    let outcomes: Vec<(String, i64)> =
        sqlx::query_as("SELECT outcome, COUNT(*) FROM hl7_inbox GROUP BY outcome ORDER BY outcome")
            .fetch_all(&mut *conn)
            .await?;
    let (warned,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM hl7_inbox WHERE warnings IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    let (rooms,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE kind = 'patient_encounter'")
        .fetch_one(&mut *conn)
        .await?;
    let (members,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE r.kind = 'patient_encounter'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let shown: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
    println!(
        "inbox outcomes (warm-up included): {}; {warned} with mapping warnings (A08's unmapped second consultant)",
        shown.join(", ")
    );
    println!("patient-encounter rooms: {rooms}, their current members: {members}");
    Ok(outcomes
        .iter()
        .filter(|(o, _)| o != "applied")
        .map(|(_, n)| n)
        .sum())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `RUST_LOG=sqlx::query=debug` shows every statement (to count them per message).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let a = args();
    let postgres = a.postgres.clone();
    common::on_fresh_database(postgres.as_deref(), |url, dir| async move {
        bench(&a, &url, &dir).await
    })
    .await
}

async fn bench(a: &Args, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut cfg = common::config(url, dir)?;
    cfg.hl7.unit_teams = [
        ("4W".to_string(), UNIT_4W.map(String::from).to_vec()),
        ("5E".to_string(), UNIT_5E.map(String::from).to_vec()),
    ]
    .into();
    if let Some(n) = a.max_batch {
        cfg.hl7.max_batch = n;
    }
    let max_batch = cfg.hl7.max_batch;
    let app = Application::build(cfg).await?;
    let mllp = app.mllp_addr().context("the MLLP listener is not enabled")?;
    seed(app.store()).await?;
    let store = app.store().clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let templates = Templates::load()?;
    let mut next_patient = 1u64;
    if a.quick {
        println!("(quick run: a smoke test, not a measurement; `cargo bench` runs the full one)");
    }
    println!("hl7.max_batch = {max_batch}");
    let mut wrong = 0;
    for &connections in &a.connections {
        let connections = connections.max(1);
        let total = a.messages.unwrap_or(match (a.quick, connections) {
            (true, 1) => 150,
            (true, n) => 30 * n,
            (false, 1) => 6_000,
            (false, n) => 3_000 * n,
        });
        let per_connection = total.div_ceil(connections);
        // Warm-up: whole patients, about a tenth of the timed run.
        let warmup_per_connection = a
            .warmup
            .map_or(per_connection / 10, |w| w.div_ceil(connections))
            .div_ceil(3)
            * 3;
        wrong += scenario(
            mllp,
            Scenario {
                connections,
                per_connection,
                warmup_per_connection,
                templates: &templates,
                next_patient: &mut next_patient,
            },
            backend,
        )
        .await?;
    }
    let not_applied = summary(&store).await?;
    if let Some(path) = &a.keep_db {
        if backend != "SQLite" {
            bail!("--keep-db saves a SQLite database only");
        }
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&mut *store.read().await?)
            .await
            .with_context(|| format!("saving the database to {path}"))?;
        println!("database saved to {path}");
    }
    shutdown.cancel();
    let _ = server.await;
    // A run with refused or mismatched ACKs measured something else: fail (also under `cargo test`).
    if wrong > 0 || not_applied > 0 {
        bail!("{wrong} ACKs were not AA or did not echo MSH-10; {not_applied} messages not applied");
    }
    Ok(())
}
