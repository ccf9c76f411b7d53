//! Configuration: defaults, then a TOML file, then `WARDLINE_*` environment variables (and the
//! conventional `DATABASE_URL`), then command-line flags. Secrets never reach logs: the database
//! URL is wrapped so its password is redacted when printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything an operator can set. Field names are the TOML keys and, upper-cased with the
/// `WARDLINE_` prefix, the environment variables (`WARDLINE_HTTP_ADDR`, `WARDLINE_LIMITS__...`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the HTTP API (REST, WebSocket, FHIR, SMART) listens.
    pub http_addr: SocketAddr,
    /// Where the MLLP listener for HL7 v2 feeds listens.
    pub mllp_addr: SocketAddr,
    /// Directory for the embedded SQLite database and other local state.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; when absent, SQLite `wardline.db` in `data_dir`.
    pub database_url: Option<Secret>,
    /// Connection pool size: on SQLite the reads that may run at once (each on its own
    /// connection, plus one for the background checkpoint; the single writer is separate), and
    /// the read-only connections kept for reads by id on the caller's thread; on PostgreSQL all
    /// connections.
    pub db_max_connections: u32,
    /// Externally visible base URL, used in links (e-mails, OpenAPI servers).
    pub public_url: Option<String>,
    /// `json` (default, for log shippers) or `pretty` (for a terminal).
    pub log_format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `wardline=debug,info`.
    pub log_level: String,
    /// Input limits that protect the server from oversized or abusive requests.
    pub limits: Limits,
    /// Key-encryption keys for encryption at rest.
    pub keys: KeysConfig,
    /// Pre-send data-loss-prevention checks.
    pub dlp: crate::chat::dlp::DlpConfig,
    /// Retention periods and the purge job.
    pub retention: crate::chat::retention::RetentionConfig,
    /// HTTPS: serve TLS (rustls, ring) when both files are set.
    pub tls: TlsConfig,
    /// HL7 v2 interface: MLLP listener limits and the site's mapping.
    pub hl7: crate::hl7::Hl7Config,
    /// On-call: roster time zone, escalation policies, SMTP for notifications.
    pub oncall: crate::oncall::OncallConfig,
    /// SMART EHR launch: trusted EHRs and the patient-matching rule.
    pub smart: crate::smart::SmartConfig,
    /// Standalone sign-in through the hospital's OpenID Connect provider.
    pub oidc: crate::auth::oidc::OidcConfig,
    /// Browser sessions: timeouts and cookie security.
    pub session: crate::auth::session::SessionConfig,
}

/// TLS for the HTTP listener.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
}

/// Key-encryption keys (KEKs). Each is base64 of 32 random bytes, named by an id that is stored
/// with every data key it wraps: `WARDLINE_KEYS__KEKS__K2026=...`, `WARDLINE_KEYS__ACTIVE_KEK=k2026`.
/// With none configured, a single-node SQLite server creates `wardline.kek` in its data
/// directory; PostgreSQL (several nodes) requires them to be configured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KeysConfig {
    /// KEKs by id. Keep the old one configured until `wardline keys rotate` has re-wrapped.
    pub keks: std::collections::BTreeMap<String, Secret>,
    /// The KEK that wraps new data keys; may be omitted when only one is configured.
    pub active_kek: Option<String>,
}

/// Bounds on what clients may send; each breach gets a problem-details error, never a truncation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest accepted HTTP request body in bytes.
    pub max_request_bytes: usize,
    /// Longest accepted message text, in characters.
    pub max_message_chars: usize,
    /// Largest accepted WebSocket frame in bytes.
    pub max_ws_frame_bytes: usize,
    /// Frames queued for one WebSocket before the connection is judged too slow and closed
    /// (the client then resumes from its last message without gaps).
    pub ws_queue: usize,
    /// Largest page size for history queries.
    pub max_page: u32,
    /// Largest attachment in bytes.
    pub max_attachment_bytes: usize,
    /// Failed authentications allowed per client address per minute before 429.
    pub auth_failures_per_minute: u32,
    /// How long a validated API token is trusted without reading the database again (ms; 0:
    /// always read). Revocation through another node or the CLI takes effect within it.
    pub token_cache_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_message_chars: 16_000,
            max_ws_frame_bytes: 256 * 1024,
            ws_queue: 1024,
            max_page: 200,
            max_attachment_bytes: 10 * 1024 * 1024,
            auth_failures_per_minute: 20,
            token_cache_ms: 2_000,
        }
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, for development.
    Pretty,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: ([127, 0, 0, 1], 8080).into(),
            mllp_addr: ([127, 0, 0, 1], 2575).into(),
            data_dir: PathBuf::from("."),
            database_url: None,
            db_max_connections: 16,
            public_url: None,
            log_format: LogFormat::Json,
            log_level: "info".into(),
            limits: Limits::default(),
            keys: KeysConfig::default(),
            dlp: Default::default(),
            retention: Default::default(),
            tls: TlsConfig::default(),
            hl7: Default::default(),
            oncall: Default::default(),
            smart: Default::default(),
            oidc: Default::default(),
            session: Default::default(),
        }
    }
}

impl Config {
    /// Layers defaults, the optional TOML file, the environment and the given overrides
    /// (command-line flags, already as a partial config).
    pub fn load(file: Option<&Path>, overrides: Figment) -> Result<Self, Box<figment::Error>> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        fig.merge(Env::raw().only(&["DATABASE_URL"]).map(|_| "database_url".into()))
            .merge(Env::prefixed("WARDLINE_").split("__").ignore(&["config"]))
            .merge(overrides)
            .extract()
            .map_err(Box::new)
    }

    /// The database to use: the configured URL or the default SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("wardline.db").display()),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("mllp_addr", &self.mllp_addr)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url)
            .field("db_max_connections", &self.db_max_connections)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("limits", &self.limits)
            .field("keys", &self.keys)
            .field("dlp", &self.dlp)
            .field("retention", &self.retention)
            .field("tls", &self.tls)
            .field("hl7", &self.hl7)
            .field("smart", &self.smart)
            .field("oidc", &self.oidc)
            .field("session", &self.session)
            .finish()
    }
}

/// A string that must not be printed: `Debug` and `Display` show it with any password removed.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the one place that needs it (opening the connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redact_url(&self.0))
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redact_url(&self.0))
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL and any query string
/// (which may carry `password=`), keeping enough to tell which database is meant.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let rest = rest.split('?').next().unwrap_or_default();
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => format!("{scheme}://{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let s = Secret::new("postgres://alice:hunter2@db:5432/wl?password=x");
        let shown = format!("{s:?} {s}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("password=x"), "{shown}");
        assert!(shown.contains("postgres://alice:***@db:5432/wl"), "{shown}");
    }

    #[test]
    fn sqlite_default_is_in_data_dir() {
        let cfg = Config {
            data_dir: "/var/lib/wardline".into(),
            ..Config::default()
        };
        assert_eq!(cfg.database_url(), "sqlite:///var/lib/wardline/wardline.db");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the closure's error type
    fn env_and_overrides_layer_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("w.toml", "http_addr = \"127.0.0.1:9000\"\nlog_level = \"debug\"")?;
            jail.set_env("WARDLINE_LOG_LEVEL", "warn");
            jail.set_env("DATABASE_URL", "postgres://u:p@h/d");
            let over = Figment::from(Serialized::default("mllp_addr", "127.0.0.1:3000"));
            let cfg = Config::load(Some(Path::new("w.toml")), over).expect("config loads");
            assert_eq!(cfg.http_addr.port(), 9000);
            assert_eq!(cfg.log_level, "warn");
            assert_eq!(cfg.mllp_addr.port(), 3000);
            assert_eq!(cfg.database_url(), "postgres://u:p@h/d");
            Ok(())
        });
    }
}
