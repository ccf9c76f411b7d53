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
