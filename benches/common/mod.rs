//! What the benchmarks share: a fresh database per run (a SQLite file, or a PostgreSQL database
//! created on the given server and dropped afterwards whatever happens), the server
//! configuration they start from, percentiles, and reading their command line.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use uuid::Uuid;
use wardline::config::{Config, KeysConfig, Secret};

/// Runs `bench(url, dir)` on a fresh database: SQLite in a temporary directory, or a new database
/// on the PostgreSQL `server`, which is dropped afterwards even when the run fails.
pub async fn on_fresh_database<F, Fut>(postgres: Option<&str>, bench: F) -> anyhow::Result<()>
where
    F: FnOnce(String, std::path::PathBuf) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let pg_db = format!("wl_bench_{}", Uuid::now_v7().simple());
    let url = match postgres {
        Some(server) => {
            pg_admin(server, &format!("CREATE DATABASE {pg_db}")).await?;
            format!("{server}/{pg_db}")
        }
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let result = bench(url, dir.path().to_path_buf()).await;
    if let Some(server) = postgres {
        pg_admin(server, &format!("DROP DATABASE {pg_db} WITH (FORCE)")).await?;
    }
    result
}

async fn pg_admin(server: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await?;
    Ok(())
}

/// A server on ephemeral ports over `url` with a configured KEK, so every stored body is sealed
/// as in production.
pub fn config(url: &str, dir: &Path) -> anyhow::Result<Config> {
    Ok(Config {
        http_addr: "127.0.0.1:0".parse()?,
        mllp_addr: "127.0.0.1:0".parse()?,
        database_url: Some(Secret::new(url)),
        data_dir: dir.to_path_buf(),
        keys: KeysConfig {
            keks: [(
                "bench".to_string(),
                Secret::new("YmVuY2gta2V5LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU="),
            )]
            .into(),
            active_kek: None,
        },
        ..Config::default()
    })
}

/// The `p` quantile (0..=1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// A benchmark's command line: `--name value` options and bare flags.
pub struct Cli(Vec<String>);

// Each benchmark binary compiles this module and uses only part of it.
#[allow(dead_code)]
impl Cli {
    /// The process arguments.
    pub fn from_env() -> Self {
        Self(std::env::args().collect())
    }

    /// The value after `--name`, parsed; a value that does not parse stops the run with its name.
    pub fn value<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        let at = self.0.iter().position(|a| a == name)?;
        let raw = self
            .0
            .get(at + 1)
            .unwrap_or_else(|| panic!("{name} needs a value"));
        Some(
            raw.parse()
                .unwrap_or_else(|_| panic!("{name}: '{raw}' is not a valid value")),
        )
    }

    /// Whether a bare flag is present.
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// `cargo bench` passes `--bench`; `cargo test` does not, and there a smoke run is enough
    /// (also asked for with `--quick`).
    pub fn quick(&self) -> bool {
        !self.flag("--bench") || self.flag("--quick")
    }

    /// `--postgres SERVER_URL`, without a trailing slash.
    pub fn postgres(&self) -> Option<String> {
        self.value::<String>("--postgres")
            .map(|s| s.trim_end_matches('/').to_string())
    }
}

/// What the machine gave a run: the process's CPU time and the CPU time the hypervisor took
/// from this guest (steal), from `/proc` (Linux; elsewhere nothing is printed). The same
/// binary on this 2-core guest has run 3× faster in one hour than in another; these figures
/// tell a slow host from slow code.
#[allow(dead_code)]
pub struct HostMeter {
    start: Option<(f64, u64, u64)>,
    speed: f64,
}

// Each benchmark binary compiles this module and uses only part of it.
#[allow(dead_code)]
impl HostMeter {
    /// Measures the host's single-thread speed (SHA-256 of 64 MiB, MB/s: the same work in
    /// every run, so a slow period shows as a low figure), then starts counting.
    pub fn start() -> Self {
        use sha2::Digest;
        let data = vec![0x5a_u8; 1 << 20];
        let t = std::time::Instant::now();
        let mut h = sha2::Sha256::new();
        for _ in 0..64 {
            h.update(&data);
        }
        std::hint::black_box(h.finalize());
        let speed = 64.0 * 1.048_576 / t.elapsed().as_secs_f64();
        Self {
            start: Self::read(),
            speed,
        }
    }

    /// (process CPU seconds, host steal ticks, host total ticks).
    fn read() -> Option<(f64, u64, u64)> {
        let (_, user, system) = stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let cpu = machine_ticks()?;
        let steal = *cpu.get(7)?;
        let total = cpu.iter().take(8).sum();
        // USER_HZ is 100 on every Linux this runs on.
        Some(((user + system) as f64 / 100.0, steal, total))
    }

    /// The line to print when the measured part ends: the host's speed, the process's CPU time
    /// per 1,000 operations, and the share of the host's CPU time stolen meanwhile (empty where
    /// `/proc` is missing).
    pub fn finish(&self, operations: usize) -> String {
        let (Some((cpu0, steal0, total0)), Some((cpu1, steal1, total1))) = (self.start, Self::read()) else {
            return String::new();
        };
        let stolen = (steal1 - steal0) as f64 * 100.0 / (total1 - total0).max(1) as f64;
        format!(
            "  host: SHA-256 {:.0} MB/s on one thread; process CPU {:.1} ms per 1,000 operations; steal {stolen:.1} %",
            self.speed,
            (cpu1 - cpu0) * 1e6 / operations.max(1) as f64
        )
    }
}

/// The machine's CPU time by kind (user, nice, system, idle, iowait, irq, softirq, steal...) in
/// clock ticks: the first line of `/proc/stat` (Linux; `None` elsewhere).
#[allow(dead_code)]
pub fn machine_ticks() -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    Some(
        stat.lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect(),
    )
}

/// A process's or thread's name, user and system ticks from its `/proc/.../stat` line.
#[allow(dead_code)]
pub fn stat_ticks(stat: &str) -> Option<(String, u64, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest: Vec<&str> = rest.split_whitespace().collect();
    Some((name, rest.get(11)?.parse().ok()?, rest.get(12)?.parse().ok()?))
}
