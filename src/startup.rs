//! Building and running the server. `Application::build` binds its listener first, so tests can
//! ask for port 0 and learn the real port before serving.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::audit::sink::AuditSink;
use crate::auth::UsageLog;
use crate::chat::bus::Bus;
use crate::chat::dlp::Scanner;
use crate::chat::hub::Hub;
use crate::chat::retention::spawn_purge_job;
use crate::chat::{Chat, receipts};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::Keyring;
use crate::crypto::datakeys::DataKeys;
use crate::http::{AppState, router};
use crate::store::{Backend, Store};
use crate::telemetry;
use std::collections::HashMap;

/// The keyring from configuration; a single-node SQLite server without configured KEKs gets a
/// generated one in its data directory.
pub fn keyring(config: &Config, backend: Backend) -> anyhow::Result<Keyring> {
    let keks: HashMap<String, String> = config
        .keys
        .keks
        .iter()
        .map(|(id, k)| (id.clone(), k.expose().to_string()))
        .collect();
    if keks.is_empty() && backend == Backend::Sqlite {
        let path = config.data_dir.join("wardline.kek");
        tracing::warn!(path = %path.display(), "no key-encryption key configured; using a local key file (configure keys.keks for production)");
        return Ok(Keyring::load_or_create_file(&path, "local")?);
    }
    let active = match (&config.keys.active_kek, keks.len()) {
        (Some(a), _) => a.clone(),
        (None, 0) => return Err(crate::crypto::KeyringError::Missing.into()),
        (None, 1) => keks.keys().next().cloned().unwrap_or_default(),
        (None, _) => anyhow::bail!("several keys.keks are configured: set keys.active_kek"),
    };
    Ok(Keyring::new(&keks, &active)?)
}

/// Makes ring the process's TLS crypto provider (the only one compiled in; aws-lc and OpenSSL are
/// kept out). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A built, bound, not yet serving server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    background: Vec<JoinHandle<()>>,
    node_id: Uuid,
    tls: Option<RustlsConfig>,
}

impl Application {
    /// Builds with the system clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Connects and migrates the database, starts background workers and binds the HTTP port.
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        install_crypto_provider();
        let tls = match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| format!("loading TLS certificate {} and key", cert.display()))?,
            ),
            (None, None) => None,
            _ => anyhow::bail!("tls.cert_file and tls.key_file must be set together"),
        };
        let store = Store::connect(&config.database_url(), config.db_max_connections)
            .await
            .context("opening the database")?;
        store.migrate().await.context("applying migrations")?;
        let node_id = Uuid::now_v7();
        let shutdown = CancellationToken::new();
        let keys = Arc::new(DataKeys::new(
            Arc::new(keyring(&config, store.backend())?),
            store.clone(),
        ));
        let hub = Arc::new(Hub::new(config.limits.ws_queue));
        let bus = Arc::new(Bus::new(hub, store.clone(), node_id, keys.clone()));
        let mut background = Vec::new();
        if let Some(listener) = bus
            .spawn_listener(shutdown.clone())
            .await
            .context("listening for cluster events")?
        {
            background.push(listener);
        }
        let (receipts_tx, receipts_task) = receipts::spawn(store.clone(), bus.clone(), clock.clone());
        background.push(receipts_task);
        let (audit, audit_task) = AuditSink::spawn(store.clone(), clock.clone());
        background.push(audit_task);
        let chat = Arc::new(Chat::new(
            store.clone(),
            bus,
            clock.clone(),
            config.limits.clone(),
            audit.clone(),
            keys,
            Scanner::new(&config.dlp).map_err(anyhow::Error::msg)?,
        ));
        if let Some(job) = spawn_purge_job(chat.clone(), config.retention.clone(), shutdown.clone()) {
            background.push(job);
        }
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http_addr))?;
        let per_minute = NonZeroU32::new(config.limits.auth_failures_per_minute).unwrap_or(NonZeroU32::MIN);
        let auth_failures = Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        )));
        let state = AppState {
            chat,
            store,
            clock,
            config: Arc::new(config),
            metrics: telemetry::metrics_handle(),
            receipts: receipts_tx,
            shutdown,
            audit,
            token_usage: Arc::new(UsageLog::default()),
            auth_failures,
        };
        Ok(Self {
            listener,
            state,
            background,
            node_id,
            tls,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.http_addr)
    }

    /// Cancel this token to shut the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// The database handle (for demo fixtures and tests).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The chat core (for demo fixtures and tools).
    pub fn chat(&self) -> &Arc<Chat> {
        &self.state.chat
    }

    /// This node's id in a cluster.
    pub fn node_id(&self) -> Uuid {
        self.node_id
    }

    /// Serves until the shutdown token is cancelled, then stops accepting, closes WebSockets,
    /// lets in-flight requests finish, flushes receipts and closes the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            background,
            tls,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        let store = state.store.clone();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let addr = listener.local_addr()?;
        match tls {
            None => {
                tracing::info!(%addr, backend = ?store.backend(), tls = false, "serving HTTP");
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                    .await
                    .context("HTTP server")?;
            }
            Some(tls) => {
                tracing::info!(%addr, backend = ?store.backend(), tls = true, "serving HTTP");
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                let token = shutdown.clone();
                tokio::spawn(async move {
                    token.cancelled().await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                axum_server::from_tcp_rustls(listener.into_std()?, tls)?
                    .handle(handle)
                    .serve(app)
                    .await
                    .context("HTTPS server")?;
            }
        }
        shutdown.cancel();
        for task in background {
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                tracing::warn!("a background task did not stop within 5 s");
            }
        }
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
