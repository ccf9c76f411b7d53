//! Request extractors whose rejections are problem details, and the bearer-token principal.

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
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

impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(Error::Unauthenticated)?;
        auth::authenticate(&state.store, &token, state.clock.now().timestamp_millis()).await
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
            Some(token) => auth::authenticate(&state.store, &token, state.clock.now().timestamp_millis())
                .await
                .map(Some),
        }
    }
}
