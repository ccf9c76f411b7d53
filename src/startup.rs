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
use crate::hl7::Hl7;
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

/// The server's core without its listeners: what the CLI needs to act on data (HL7 replay)
/// exactly as the server would.
pub struct Core {
    /// The database.
    pub store: Store,
    /// The chat core.
    pub chat: Arc<Chat>,
    /// The HL7 service.
    pub hl7: Arc<Hl7>,
    /// Group-committed audit writer.
    pub audit: AuditSink,
    /// Delivery-receipt queue.
    pub receipts: tokio::sync::mpsc::UnboundedSender<receipts::Delivered>,
    /// Background tasks (stopped by `shutdown`).
    pub background: Vec<JoinHandle<()>>,
    /// Cancelled to stop.
    pub shutdown: CancellationToken,
    /// This node's id.
    pub node_id: Uuid,
}

impl Core {
    /// Connects and migrates the database and starts the writers every entry point needs.
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        install_crypto_provider();
        if config.public_url.is_none() && (!config.smart.issuers.is_empty() || config.oidc.issuer.is_some()) {
            tracing::warn!(
                "public_url is not set: SMART and single sign-on redirect URIs follow each request's Host header; set public_url to the address registered at the EHR and the identity provider"
            );
        }
        let store = Store::connect(&config.database_url(), config.db_max_connections)
            .await
            .context("opening the database")?;
        store.migrate().await.context("applying migrations")?;
        let node_id = Uuid::now_v7();
        let shutdown = CancellationToken::new();
        let keys = Arc::new(DataKeys::new(
            Arc::new(keyring(config, store.backend())?),
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
        let (receipts, receipts_task) = receipts::spawn(store.clone(), bus.clone(), clock.clone());
        background.push(receipts_task);
        let (audit, audit_task) =
            AuditSink::spawn(store.clone(), clock.clone()).context("starting the audit writer")?;
        background.push(audit_task);
        background.push(crate::audit::indexer::spawn(audit.clone(), shutdown.clone()));
        let chat = Arc::new(Chat::new(
            store.clone(),
            bus,
            clock.clone(),
            config.limits.clone(),
            audit.clone(),
            keys,
            Scanner::new(&config.dlp).map_err(anyhow::Error::msg)?,
        ));
        let (hl7, hl7_writer) = Hl7::spawn(chat.clone(), config.hl7.clone()).context("hl7 configuration")?;
        background.push(hl7_writer);
        Ok(Self {
            store,
            chat,
            hl7,
            audit,
            receipts,
            background,
            shutdown,
            node_id,
        })
    }
}

/// A built, bound, not yet serving server.
pub struct Application {
    listener: TcpListener,
    mllp: Option<(TcpListener, Option<tokio_rustls::TlsAcceptor>)>,
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

    /// Connects and migrates the database, starts background workers and binds the HTTP and
    /// MLLP ports.
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
        let mllp_tls = match (&config.hl7.tls.cert_file, &config.hl7.tls.key_file) {
            (Some(cert), Some(key)) => Some(crate::hl7::mllp::tls_acceptor(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("hl7.tls.cert_file and hl7.tls.key_file must be set together"),
        };
        let Core {
            store,
            chat,
            hl7,
            audit,
            receipts: receipts_tx,
            mut background,
            shutdown,
            node_id,
        } = Core::build(&config, clock.clone()).await?;
        if let Some(job) = spawn_purge_job(chat.clone(), config.retention.clone(), shutdown.clone()) {
            background.push(job);
        }
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding HTTP to {}", config.http_addr))?;
        let mllp = if config.hl7.enabled {
            let l = TcpListener::bind(config.mllp_addr)
                .await
                .with_context(|| format!("binding MLLP to {}", config.mllp_addr))?;
            Some((l, mllp_tls))
        } else {
            None
        };
        let public_url = config.public_url.clone().unwrap_or_else(|| {
            let scheme = if tls.is_some() { "https" } else { "http" };
            format!(
                "{scheme}://{}",
                listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
            )
        });
        let oncall = Arc::new(
            crate::oncall::Oncall::new(chat.clone(), config.oncall.clone(), public_url)
                .context("oncall configuration")?,
        );
        background.push(crate::oncall::job::spawn(oncall.clone(), shutdown.clone()));
        let per_minute = NonZeroU32::new(config.limits.auth_failures_per_minute).unwrap_or(NonZeroU32::MIN);
        let auth_failures = Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        )));
        let tokens = Arc::new(crate::auth::cache::TokenCache::new(config.limits.token_cache_ms));
        let state = AppState {
            chat,
            hl7,
            oncall,
            store,
            clock,
            config: Arc::new(config),
            metrics: telemetry::metrics_handle(),
            receipts: receipts_tx,
            shutdown,
            audit,
            token_usage: Arc::new(UsageLog::default()),
            tokens,
            auth_failures,
            providers: Arc::new(crate::smart::discovery::Providers::default()),
        };
        Ok(Self {
            listener,
            mllp,
            state,
            background,
            node_id,
            tls,
        })
    }

    /// The MLLP address actually bound, when the listener is enabled.
    pub fn mllp_addr(&self) -> Option<SocketAddr> {
        self.mllp.as_ref().and_then(|(l, _)| l.local_addr().ok())
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

    /// The on-call service (the demo seeds a roster through it).
    pub fn oncall(&self) -> &Arc<crate::oncall::Oncall> {
        &self.state.oncall
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
            mllp,
            state,
            background,
            tls,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        let store = state.store.clone();
        let mllp_task = mllp.map(|(l, tls)| {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(%addr, tls = tls.is_some(), "serving MLLP");
            tokio::spawn(crate::hl7::mllp::serve(
                l,
                state.hl7.clone(),
                tls,
                shutdown.clone(),
            ))
        });
        background_lifecycle(&state);
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
        if let Some(task) = mllp_task {
            let _ = task.await;
        }
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

/// Starts the job that makes discharged encounters' rooms read-only, then archived, when their
/// time comes (every minute; `POST /api/v1/retention/run` runs it at once).
fn background_lifecycle(state: &AppState) {
    let chat = state.chat.clone();
    let stop = state.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = chat.advance_room_lifecycle().await {
                        tracing::warn!(error = %e, "room lifecycle job failed; retrying next minute");
                    }
                }
            }
        }
    });
}
