//! On-call (SPEC §7): rosters per service and tier, messages to a role reaching whoever is on
//! call now, and urgent messages climbing the tiers until someone acknowledges, with an email
//! (no patient data) to each person notified.
//!
//! The decisions are pure ([`roster`]: reading uploads, the validation report, who holds a tier;
//! [`escalation`]: the next step); [`service`] stores rosters and routes messages, [`job`] is
//! the database-backed timer loop (steps fire once across nodes), [`mail`] sends the emails.

pub mod escalation;
pub mod job;
pub mod mail;
pub mod roster;
pub mod service;
pub mod shifts;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use service::Oncall;

use crate::config::Secret;

/// `[oncall]` configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct OncallConfig {
    /// Zone for roster times given without an offset (IANA name).
    pub time_zone: String,
    /// How long an urgent message waits for an acknowledgement before the next tier.
    pub default_timeout_secs: u64,
    /// How many tiers are climbed before the fallback.
    pub default_tiers: u32,
    /// How often each node looks for due escalations and shift changes.
    pub tick_ms: u64,
    /// Per-service escalation policy, by service name.
    pub services: BTreeMap<String, ServicePolicy>,
    /// Outgoing mail; no host means notifications are only shown in the room.
    pub smtp: SmtpConfig,
}

impl Default for OncallConfig {
    fn default() -> Self {
        Self {
            time_zone: "UTC".into(),
            default_timeout_secs: 300,
            default_tiers: 3,
            tick_ms: 5_000,
            services: BTreeMap::new(),
            smtp: SmtpConfig::default(),
        }
    }
}

/// A service's escalation policy; absent fields take the defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServicePolicy {
    /// Seconds before the next tier.
    pub timeout_secs: Option<u64>,
    /// Tiers to climb.
    pub tiers: Option<u32>,
    /// Login name of whoever is notified when the tiers are exhausted.
    pub fallback: Option<String>,
}

impl OncallConfig {
    /// The acknowledgement timeout of `service`, in ms.
    pub fn timeout_ms(&self, service: &str) -> i64 {
        let secs = self
            .services
            .get(service)
            .and_then(|p| p.timeout_secs)
            .unwrap_or(self.default_timeout_secs);
        i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// How many tiers `service` climbs.
    pub fn tiers(&self, service: &str) -> u32 {
        self.services
            .get(service)
            .and_then(|p| p.tiers)
            .unwrap_or(self.default_tiers)
            .max(1)
    }

    /// The fallback login of `service`.
    pub fn fallback(&self, service: &str) -> Option<&str> {
        self.services.get(service).and_then(|p| p.fallback.as_deref())
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the same host or a test server).
    None,
    /// STARTTLS, required (submission port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[oncall.smtp]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// Relay host; none disables email.
    pub host: Option<String>,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// Login, when the relay wants one.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: "Wardline <wardline@localhost>".into(),
        }
    }
}
