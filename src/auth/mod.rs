//! Bearer-token authentication for people and service accounts.
//!
//! Tokens are 256 random bits, so a single SHA-256 is a sound at-rest hash (a slow password hash
//! protects low-entropy secrets; it would only add latency here). Only the hash is stored; the
//! token is shown once when issued. Browser sessions ([`session`], after OIDC sign-in or a SMART
//! launch) are tokens too, held in an HttpOnly cookie, and produce the same [`Principal`].

pub mod assertion;
pub mod cache;
pub mod flow;
pub mod oidc;
pub mod session;

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::fhir::scopes::{Grant, Scope};
use crate::store::{Store, users};

/// Prefix that makes Wardline tokens recognisable to secret scanners.
pub const TOKEN_PREFIX: &str = "wlt_";

/// The roles of SPEC §8; a user may hold several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads and writes in rooms they belong to.
    Clinician,
    /// Posts on-call rosters.
    Scheduler,
    /// Interface engines and EHR systems.
    Integration,
    /// Reads the audit log.
    Auditor,
    /// Manages users, tokens and configuration.
    Admin,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clinician => "clinician",
            Role::Scheduler => "scheduler",
            Role::Integration => "integration",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored role; unknown names are rejected so typos never grant anything.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "clinician" => Role::Clinician,
            "scheduler" => Role::Scheduler,
            "integration" => Role::Integration,
            "auditor" => Role::Auditor,
            "admin" => Role::Admin,
            other => return Err(Error::Invalid(format!("unknown role '{other}'"))),
        })
    }
}

/// Who is making a request: established once per request from the bearer token.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// The token used, so it can be revoked ("log out this device").
    pub token_id: Uuid,
    /// What the token may do over FHIR (SMART scopes cut to the roles).
    pub fhir: crate::fhir::scopes::Grant,
    /// Network address of the request, for the audit trail.
    pub source: Option<String>,
}

impl Principal {
    /// The start of an audit event for an action by this principal.
    pub fn event(&self, action: &str, entity_type: &str, entity_id: impl ToString) -> crate::audit::Event {
        crate::audit::Event::new(
            Some(self.user_id),
            action,
            entity_type,
            Some(entity_id.to_string()),
        )
        .from_source(self.source.as_deref())
    }
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// SHA-256 of a token, hex encoded: the only form that is stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// Issues a token for a user inside the caller's transaction, optionally limited to some of the
/// user's roles and to SMART scopes (checked by the caller); returns its id and the secret, which the caller shows once.
pub async fn issue_token(
    conn: &mut AnyConnection,
    user_id: Uuid,
    label: &str,
    now_ms: i64,
    expires_at_ms: Option<i64>,
    scopes: &[String],
) -> Result<(Uuid, String)> {
    let token = generate_token();
    let id = Uuid::now_v7();
    let new = users::NewToken {
        id,
        user_id,
        hash: &hash_token(&token),
        label,
        scopes: &scopes.join(","),
        created_at: now_ms,
        expires_at: expires_at_ms,
        idle_timeout_ms: None,
        context: None,
    };
    users::insert_token(conn, &new).await?;
    Ok((id, token))
}

/// Resolves a presented bearer token to a principal, or 401. A service token validated within
/// the cache's window is not looked up again (see [`cache`]).
pub async fn authenticate(
    store: &Store,
    tokens: &cache::TokenCache,
    token: &str,
    now_ms: i64,
    source: Option<String>,
) -> Result<Principal> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(Error::Unauthenticated);
    }
    let hash = hash_token(token);
    let found = match tokens.get(&hash, now_ms) {
        Some(found) => found,
        None => {
            let generation = tokens.generation();
            let found = users::user_by_token_hash(&mut *store.read().await?, &hash, now_ms)
                .await?
                .ok_or(Error::Unauthenticated)?;
            tokens.put(&hash, &found, now_ms, generation);
            found
        }
    };
    if let Some(last) = found.session_last_used
        && now_ms - last >= session::TOUCH_EVERY_MS
    {
        // The idle clock restarts on use; recorded at most once a minute so a busy session
        // does not write on every request.
        let mut tx = store.begin().await?;
        crate::store::sessions::touch(&mut tx, found.token_id, now_ms).await?;
        tx.commit().await?;
    }
    let users::TokenUser {
        token_id,
        scopes,
        user,
        ..
    } = found;
    // A scoped token keeps only the roles it names (all of them when it names none) and the SMART
    // scopes it names, cut to those roles. Unknown role names in the database grant nothing
    // rather than failing the login.
    let named_roles: Vec<&str> = scopes.split(',').filter(|s| Role::parse(s).is_ok()).collect();
    let smart: Vec<Scope> = scopes.split(',').filter_map(Scope::parse).collect();
    let roles: Vec<Role> = user
        .roles
        .iter()
        .filter(|r| named_roles.is_empty() || named_roles.contains(&r.as_str()))
        .filter_map(|r| Role::parse(r).ok())
        .collect();
    Ok(Principal {
        user_id: user.id,
        username: user.username,
        display_name: user.display_name,
        fhir: Grant::new(&roles, &smart),
        roles,
        token_id,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), a);
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn roles_parse_strictly() {
        assert_eq!(Role::parse("admin").unwrap(), Role::Admin);
        assert!(Role::parse("Admin").is_err());
        assert!(Role::parse("root").is_err());
    }
}

/// Remembers when each token's use was last audited, so the trail records "token used" once an
/// hour per token and node instead of once per request (every request is audited by what it
/// accessed anyway).
#[derive(Debug, Default)]
pub struct UsageLog {
    seen: std::sync::Mutex<std::collections::HashMap<Uuid, i64>>,
}

impl UsageLog {
    /// Audit interval for token use.
    pub const INTERVAL_MS: i64 = 3_600_000;

    /// True when this use of `token_id` at `now_ms` should be audited.
    pub fn should_record(&self, token_id: Uuid, now_ms: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&token_id) {
            Some(last) if now_ms - last < Self::INTERVAL_MS => false,
            _ => {
                seen.insert(token_id, now_ms);
                true
            }
        }
    }
}
