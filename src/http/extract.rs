//! Request extractors whose rejections are problem details, and the bearer-token principal.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::audit::Event;
use crate::auth::{self, Principal, session};
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

/// How the request proves who it is.
enum Credential {
    /// `Authorization: Bearer`, or for WebSocket upgrades (which browsers cannot give headers)
    /// the `access_token` query parameter.
    Bearer(String),
    /// The browser session cookie.
    Session(String),
}

fn is_ws(parts: &Parts) -> bool {
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |u| u.path());
    path == "/api/v1/ws"
}

fn credential(parts: &Parts, secure: bool) -> Option<Credential> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| Credential::Bearer(token.trim().to_string()));
    }
    if is_ws(parts)
        && let Some(query) = parts.uri.query()
        && let Some((_, token)) = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "access_token")
    {
        return Some(Credential::Bearer(token.to_string()));
    }
    session::cookie(&parts.headers, session::SESSION_COOKIE, secure).map(Credential::Session)
}

/// A cookie is sent on requests other sites cause. So a cookie-authenticated request must not
/// come from another site's page (`Sec-Fetch-Site`, sent by every current browser: an `<img>`
/// elsewhere must not read — and audit — a patient view in the clinician's name); one that
/// changes state must repeat the session's CSRF value in a header (which other sites cannot set
/// without a CORS preflight Wardline never grants); and a WebSocket upgrade must come from this
/// server's own origin, scheme included (browsers do not preflight WebSockets).
fn check_cross_site(parts: &Parts, config: &crate::config::Config, token: &str) -> Result<(), Error> {
    let fetch_site = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(Error::Forbidden(
            "requests authenticated by the session cookie must come from Wardline's own pages".into(),
        ));
    }
    if is_ws(parts) {
        let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let ours = public_base(config, &parts.headers);
        return if origin.is_some_and(|o| o.eq_ignore_ascii_case(&ours)) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "a WebSocket opened with the session cookie must come from this server's pages".into(),
            ))
        };
    }
    if parts.method.is_safe() {
        return Ok(());
    }
    let sent = parts
        .headers
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    if sent == Some(session::csrf(token).as_str()) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "requests authenticated by the session cookie must carry the {} header from GET /api/v1/session",
            session::CSRF_HEADER
        )))
    }
}

/// The token a credential carries, after the cross-site checks a cookie needs.
fn token_of(parts: &Parts, config: &crate::config::Config, credential: Credential) -> Result<String, Error> {
    match credential {
        Credential::Bearer(token) => Ok(token),
        Credential::Session(token) => {
            check_cross_site(parts, config, &token)?;
            Ok(token)
        }
    }
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
    match auth::authenticate(&state.store, &state.tokens, token, now, source(parts)).await {
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
        let secure = session::secure_cookies(&state.config);
        let credential = credential(parts, secure).ok_or(Error::Unauthenticated)?;
        let token = token_of(parts, &state.config, credential)?;
        authenticate(parts, state, &token).await
    }
}

impl OptionalFromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match credential(parts, session::secure_cookies(&state.config)) {
            None => Ok(None),
            Some(credential) => {
                let token = token_of(parts, &state.config, credential)?;
                authenticate(parts, state, &token).await.map(Some)
            }
        }
    }
}

/// The server's public address (no trailing slash): the configured `public_url`, else the
/// request's `Host` with the scheme this listener speaks.
pub fn public_base(config: &crate::config::Config, headers: &axum::http::HeaderMap) -> String {
    if let Some(public) = &config.public_url {
        return public.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if config.tls.cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The client's address, for handlers that audit without a principal (sign-in).
pub struct Source(pub Option<String>);

impl FromRequestParts<AppState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Source(source(parts)))
    }
}
