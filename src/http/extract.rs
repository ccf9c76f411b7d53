//! Request extractors whose rejections are problem details, and the bearer-token principal.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::audit::Event;
use crate::auth::{self, Principal};
use crate::error::Error;

/// `axum::Json` with problem-details rejections.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(Error))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` with problem-details rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with problem-details rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct ApiQuery<T>(pub T);

/// The presented bearer token: the `Authorization` header, or for WebSocket upgrades (which
/// browsers cannot give headers) the `access_token` query parameter.
fn bearer(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |u| u.path());
    if path == "/api/v1/ws" {
        let query = parts.uri.query()?;
        return query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "access_token")
            .map(|(_, v)| v.to_string());
    }
    None
}

/// The client's address: the TCP peer. (Behind a reverse proxy this is the proxy; trusted
/// `X-Forwarded-For` handling arrives with the TLS/proxy configuration.)
fn source(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip().to_string())
}

async fn authenticate(parts: &Parts, state: &AppState, token: &str) -> Result<Principal, Error> {
    let now = state.clock.now().timestamp_millis();
    match auth::authenticate(&state.store, token, now, source(parts)).await {
        Ok(p) => {
            if state.token_usage.should_record(p.token_id, now) {
                state
                    .audit
                    .record(p.event("auth.token.use", "token", p.token_id))
                    .await?;
            }
            Ok(p)
        }
        Err(Error::Unauthenticated) => {
            // Each failure spends from the client address's budget; once it is spent the
            // client is told when to come back instead of being answered again.
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ci| ci.0.ip());
            if let Some(ip) = peer
                && let Err(not_until) = state.auth_failures.check_key(&ip)
            {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                return Err(Error::TooManyRequests(wait.as_secs() + 1));
            }
            let event = Event::new(None, "auth.login", "token", None)
                .from_source(source(parts).as_deref())
                .failed();
            state.audit.record(event).await?;
            Err(Error::Unauthenticated)
        }
        Err(e) => Err(e),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(Error::Unauthenticated)?;
        authenticate(parts, state, &token).await
    }
}

impl OptionalFromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match bearer(parts) {
            None => Ok(None),
            Some(token) => authenticate(parts, state, &token).await.map(Some),
        }
    }
}
