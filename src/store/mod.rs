//! Storage: the only module that holds SQL. One query layer serves both backends through sqlx's
//! `Any` driver: the schema uses portable types (TEXT ids, BIGINT times and flags), queries use
//! `$N` placeholders (which SQLite accepts too), and the two dialect-specific migration folders
//! create the same tables.
//!
//! SQLite gets a single writer connection (writes queue in-process instead of failing with
//! `SQLITE_BUSY`) and a set of reader connections that skip the pool between reads (`readers`);
//! a Patient read by id runs on the caller's thread instead (`inline`, through rusqlite on the
//! same SQLite library). WAL and `synchronous=FULL` make every commit durable before it is
//! acknowledged, and a background task checkpoints the WAL (`checkpoint`). PostgreSQL uses one
//! pool for both.

pub mod attachments;
pub mod audit;
pub mod audit_index;
pub mod break_glass;
mod checkpoint;
pub mod criteria;
pub mod encounters;
pub mod fhir;
pub mod fhir_chat;
pub mod hl7;
pub mod inline;
pub mod keys;
pub mod messages;
pub mod oncall;
pub mod oncall_shifts;
pub mod patients;
mod readers;
pub mod retention;
pub mod rooms;
pub mod sessions;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

use crate::config::redact_url;
pub use readers::ReadConn;

/// What every SQLite connection that may write is set to, sqlx's and [`inline`]'s alike
/// (with [`checkpoint::PRAGMAS`]): WAL, a commit durable when it returns, foreign keys enforced.
pub(crate) const SQLITE_PRAGMAS: [&str; 4] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 10000",
];

/// Which database engine is behind the store; a few features (LISTEN/NOTIFY) exist only on one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, zero set-up, single node.
    Sqlite,
    /// Production and multi-node deployments.
    Postgres,
}

/// Handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    readers: std::sync::Arc<readers::Readers>,
    write: AnyPool,
    backend: Backend,
    url: String,
    /// SQLite only: point reads on the caller's thread.
    inline: Option<std::sync::Arc<inline::Inline>>,
    /// SQLite only: keeps the background WAL checkpoint task alive while any clone is.
    _checkpoints: Option<std::sync::Arc<tokio_util::sync::DropGuard>>,
}

/// Errors while opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL {0} (use sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The redacted URL.
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Preparing the SQLite directory failed.
    #[error("cannot create the database directory: {0}")]
    Io(#[from] std::io::Error),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    /// Opens the database named by `url`, creating a SQLite file (and its directory) if needed.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let connect_err = |source| StoreError::Connect {
            url: shown.clone(),
            source,
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = AnyConnectOptions::from_str(url).map_err(connect_err)?;
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(2))
                // No ping before each use: it is a round trip per query, and a connection that
                // broke fails its query with an error the caller already handles.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await
                .map_err(connect_err)?;
            return Ok(Self {
                readers: readers::Readers::new(pool.clone(), None),
                write: pool,
                backend: Backend::Postgres,
                url: url.to_string(),
                inline: None,
                _checkpoints: None,
            });
        }
        let Some(path) = url.strip_prefix("sqlite://") else {
            return Err(StoreError::UnsupportedUrl(shown));
        };
        let path = path.split('?').next().unwrap_or_default();
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let opts = AnyConnectOptions::from_str(&format!("sqlite://{path}?mode=rwc")).map_err(connect_err)?;
        let sqlite_pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                // An embedded file does not go away; a ping would cost a worker-thread hop.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        for pragma in SQLITE_PRAGMAS.into_iter().chain(checkpoint::PRAGMAS) {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(opts.clone())
        };
        let write = sqlite_pool(1).await.map_err(connect_err)?;
        // One connection more than reads may use at once: the checkpoint task's.
        let readers = max_connections.max(1);
        let read = sqlite_pool(readers + 1).await.map_err(connect_err)?;
        Ok(Self {
            _checkpoints: Some(checkpoint::spawn(read.clone())),
            readers: readers::Readers::new(read, Some(readers as usize)),
            write,
            backend: Backend::Sqlite,
            url: url.to_string(),
            inline: Some(std::sync::Arc::new(inline::Inline::new(
                path.into(),
                readers as usize,
            ))),
        })
    }

    /// Applies the embedded migrations for this backend (idempotent; safe from several nodes).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection URL, for components that need their own connection (LISTEN).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection for reads that need no transaction. Hold it for one function's queries
    /// only, never while asking for another (a full set of holders waiting for a second one
    /// would wait for each other).
    pub async fn read(&self) -> crate::error::Result<ReadConn> {
        self.readers.acquire().await
    }

    /// SQLite's point reads on the caller's thread ([`inline`]); `None` on PostgreSQL.
    pub fn inline(&self) -> Option<&inline::Inline> {
        self.inline.as_deref()
    }

    /// Starts a write transaction; on SQLite this waits for the single writer connection.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.write.begin().await
    }

    /// Proves the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(self.readers.pool()).await?;
        Ok(())
    }

    /// Closes all connections, for graceful shutdown.
    pub async fn close(&self) {
        self.write.close().await;
        self.readers.close().await;
    }
}

/// Sends a PostgreSQL notification. Issued inside a transaction, it reaches listeners when that
/// transaction commits, in commit order relative to other notifying transactions.
pub async fn notify<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    channel: &str,
    payload: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(ex)
        .await?;
    Ok(())
}

/// Whether a connection talks to PostgreSQL, for the few statements the two engines spell
/// differently.
pub(crate) fn on_postgres(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Converts a UUID stored as text; a malformed value in the database is a bug, not user input.
pub(crate) fn parse_id(s: &str) -> Result<uuid::Uuid, crate::error::Error> {
    uuid::Uuid::parse_str(s).map_err(|_| crate::error::Error::Internal(format!("bad id in db: {s}")))
}

/// A store on a fresh SQLite file (two reader connections) in a temporary directory, which
/// lives as long as the returned guard.
#[cfg(test)]
pub(crate) async fn temp_sqlite(file: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join(file).display());
    let store = Store::connect(&url, 2).await.expect("open SQLite");
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the SQLite that Wardline opens was compiled with `option` (as SQLite names it,
    /// without the `SQLITE_` prefix).
    async fn sqlite_built_with(option: &str) -> bool {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("options.db").display());
        let store = Store::connect(&url, 1).await.expect("open SQLite");
        let (used,): (i64,) = sqlx::query_as("SELECT sqlite_compileoption_used($1)")
            .bind(option)
            .fetch_one(&mut *store.read().await.expect("reader"))
            .await
            .expect("query");
        store.close().await;
        used == 1
    }

    /// `.cargo/config.toml` builds the bundled SQLite with the query planner stability guarantee;
    /// without it every read with a bound `LIMIT` is parsed and planned again (docs/benchmarks.md).
    #[tokio::test]
    async fn sqlite_plans_are_stable() {
        assert!(sqlite_built_with("ENABLE_QPSG").await);
    }

    /// It also builds it without the process-wide page-cache group and memory statistics, whose
    /// global mutexes made reader connections queue on each other.
    #[tokio::test]
    async fn sqlite_has_no_global_locks() {
        assert!(!sqlite_built_with("ENABLE_MEMORY_MANAGEMENT").await);
        assert!(sqlite_built_with("DEFAULT_MEMSTATUS=0").await);
    }

    /// And with statement journals kept in memory up to 1 MiB: a group commit of audit entries
    /// no longer creates and deletes a temporary file.
    #[tokio::test]
    async fn sqlite_statement_journals_stay_in_memory() {
        assert!(sqlite_built_with("STMTJRNL_SPILL=1048576").await);
    }
}
