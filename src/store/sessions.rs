//! Browser sessions (token rows with an idle timeout and a launch context, stored by
//! `users::insert_token`) and authorization requests in flight (SMART launch, standalone sign-in).

use sqlx::{AnyConnection, FromRow};
use uuid::Uuid;

use crate::error::Result;

/// What a session row says beyond its user.
#[derive(Debug, FromRow)]
pub struct SessionRow {
    /// Unix ms of the last recorded use.
    pub last_used_at: Option<i64>,
    /// Idle timeout in ms.
    pub idle_timeout_ms: Option<i64>,
    /// Absolute end, Unix ms.
    pub expires_at: Option<i64>,
    /// Launch context JSON.
    pub context: Option<String>,
}

/// The session facts of a token, if it is a session.
pub async fn session(conn: &mut AnyConnection, token_id: Uuid) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as(
        "SELECT last_used_at, idle_timeout_ms, expires_at, context FROM api_tokens
         WHERE id = $1 AND idle_timeout_ms IS NOT NULL",
    )
    .bind(token_id.to_string())
    .fetch_optional(&mut *conn)
    .await?)
}

/// Records a use of a session (callers do this at most once a minute per session).
pub async fn touch(conn: &mut AnyConnection, token_id: Uuid, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2")
        .bind(token_id.to_string())
        .bind(now_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// An authorization request in flight.
#[derive(Debug, Clone, FromRow)]
pub struct AuthRequest {
    /// SHA-256 of `state`.
    pub state_hash: String,
    /// SHA-256 of the binding cookie of the browser that started it.
    pub browser_hash: String,
    /// `smart` or `oidc`.
    pub flow: String,
    /// The EHR's FHIR base (`smart`) or the OIDC issuer (`oidc`).
    pub issuer: String,
    /// The EHR's launch id.
    pub launch: Option<String>,
    /// PKCE code verifier.
    pub pkce_verifier: String,
    /// Expected id_token nonce.
    pub nonce: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Records a request in flight, dropping those older than `stale_before_ms`.
pub async fn insert_request(conn: &mut AnyConnection, r: &AuthRequest, stale_before_ms: i64) -> Result<()> {
    sqlx::query("DELETE FROM auth_requests WHERE created_at < $1")
        .bind(stale_before_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO auth_requests (state_hash, browser_hash, flow, issuer, launch, pkce_verifier,
                                    nonce, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.state_hash)
    .bind(&r.browser_hash)
    .bind(&r.flow)
    .bind(&r.issuer)
    .bind(&r.launch)
    .bind(&r.pkce_verifier)
    .bind(&r.nonce)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes (deletes and returns) the request for `state_hash`: a state is good once, even when
/// two callbacks race on two nodes.
pub async fn take_request(conn: &mut AnyConnection, state_hash: &str) -> Result<Option<AuthRequest>> {
    Ok(sqlx::query_as(
        "DELETE FROM auth_requests WHERE state_hash = $1
         RETURNING state_hash, browser_hash, flow, issuer, launch, pkce_verifier, nonce, created_at",
    )
    .bind(state_hash)
    .fetch_optional(conn)
    .await?)
}

/// Whether a token is still good at `now_ms` (not revoked, not expired, not idle too long, its
/// user still active), for
/// long-lived connections that authenticated once.
pub async fn token_live(conn: &mut AnyConnection, token_id: Uuid, now_ms: i64) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.id = $1 AND t.revoked_at IS NULL AND u.active = 1
           AND (t.expires_at IS NULL OR t.expires_at > $2)
           AND (t.idle_timeout_ms IS NULL OR t.last_used_at + t.idle_timeout_ms > $2)",
    )
    .bind(token_id.to_string())
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}
