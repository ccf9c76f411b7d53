//! What the benchmarks share: a fresh database per run (a SQLite file, or a PostgreSQL database
//! created on the given server and dropped afterwards whatever happens), the server
//! configuration they start from, and percentiles.

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
