//! Browser sign-in outside the EHR (SPEC §8): the hospital's OpenID Connect provider through
//! `GET /auth/login` and `/auth/callback` (authorization code + PKCE), `POST /auth/logout`, and
//! `GET /api/v1/session`, which tells the web app who is signed in, the CSRF value its requests
//! must repeat, and the launch context.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeZone, Utc};
use openidconnect::RedirectUrl;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::admin::UserView;
use super::extract::{Source, public_base};
use crate::audit::Event;
use crate::auth::Principal;
use crate::auth::flow::{self, Callback};
use crate::auth::oidc::{self, Endpoints, WardClient};
use crate::auth::session::{self, LaunchContext, SESSION_COOKIE};
use crate::error::{Error, Result};
use crate::smart::pages::LaunchError;
use crate::store::{sessions, users};

/// The signed-in browser's session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Who is signed in.
    pub user: UserView,
    /// Repeat in the `X-Wardline-Csrf` header of every request that changes something; absent
    /// for bearer-token callers, who need none.
    pub csrf: Option<String>,
    /// The room the EHR launched into, if any.
    #[schema(value_type = Option<Object>)]
    pub launch: Option<LaunchContext>,
    /// The session ends after this long unused.
    pub idle_timeout_secs: Option<u64>,
    /// The session ends at this time whatever happens.
    pub expires_at: Option<chrono::DateTime<Utc>>,
}

/// The current session.
#[utoipa::path(get, path = "/api/v1/session", tag = "identity",
    responses((status = 200, body = SessionView), (status = 401, body = super::error::Problem)))]
pub async fn session(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
) -> Result<Json<SessionView>> {
    let user = users::user_by_id(&mut *state.store.read().await?, who.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    let row = sessions::session(&mut *state.store.read().await?, who.token_id).await?;
    let csrf = row
        .as_ref()
        .and(session::cookie(
            &headers,
            SESSION_COOKIE,
            session::secure_cookies(&state.config),
        ))
        .map(|t| session::csrf(&t));
    let launch = row
        .as_ref()
        .and_then(|r| r.context.as_deref())
        .and_then(|c| serde_json::from_str(c).ok());
    Ok(Json(SessionView {
        user: user.into(),
        csrf,
        launch,
        idle_timeout_secs: row
            .as_ref()
            .and_then(|r| r.idle_timeout_ms)
            .map(|ms| u64::try_from(ms / 1000).unwrap_or_default()),
        expires_at: row
            .and_then(|r| r.expires_at)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
    }))
}

async fn provider(state: &AppState, headers: &HeaderMap) -> Result<(Endpoints, WardClient), LaunchError> {
    let cfg = &state.config.oidc;
    let issuer = cfg.issuer.as_deref().ok_or(LaunchError::NoProvider)?;
    let endpoints = state
        .providers
        .oidc(issuer)
        .await
        .map_err(|e| LaunchError::Provider(e.to_string()))?;
    let redirect = RedirectUrl::new(format!("{}/auth/callback", public_base(&state.config, headers)))
        .map_err(|e| LaunchError::Provider(e.to_string()))?;
    let client = oidc::client(&endpoints, &cfg.client_id, cfg.client_secret.as_ref(), redirect);
    Ok((endpoints, client))
}

/// Sends the browser to the hospital's identity provider.
pub async fn login(State(state): State<AppState>, Source(source): Source, headers: HeaderMap) -> Response {
    let result = async {
        let (endpoints, client) = provider(&state, &headers).await?;
        flow::begin(
            &state,
            &client,
            "oidc",
            endpoints.issuer.as_str(),
            None,
            &["profile"],
            &[],
        )
        .await
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(e) => sign_in_failed(&state, e, None, source.as_deref()).await,
    }
}

/// The provider sends the browser back: find the person, start the session.
pub async fn callback(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let mut actor = None;
    let result = async {
        let request = flow::take(&state, &headers, &q, "oidc").await?;
        let (endpoints, client) = provider(&state, &headers).await?;
        let (_, claims) =
            flow::exchange(&state, &client, &endpoints, &request, q.code.as_deref(), None).await?;
        let subject = claims.subject().as_str();
        let preferred = claims.preferred_username().map(|u| u.as_str());
        let mut tx = state.store.begin().await.map_err(Error::from)?;
        let user = users::person_for_subject(&mut tx, subject, preferred, state.config.oidc.link_by_username)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        let user = user.ok_or(LaunchError::UnknownUser)?;
        actor = Some(user.id);
        let event = Event::new(Some(user.id), "auth.login", "user", Some(user.id.to_string()))
            .from_source(source.as_deref())
            .with_detail(json!({"method": "oidc"}));
        state.audit.record(event).await?;
        flow::finish(&state, user.id, None, "single sign-on", "/app/").await
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(e) => sign_in_failed(&state, e, actor, source.as_deref()).await,
    }
}

async fn sign_in_failed(
    state: &AppState,
    e: LaunchError,
    actor: Option<uuid::Uuid>,
    source: Option<&str>,
) -> Response {
    let event = Event::new(actor, "auth.login", "user", actor.map(|a| a.to_string()))
        .from_source(source)
        .failed()
        .with_detail(json!({"method": "oidc", "reason": e.code()}));
    if let Err(err) = state.audit.record(event).await {
        tracing::error!(error = %err, "could not audit a failed sign-in");
        return LaunchError::Internal(err).page(None);
    }
    crate::smart::pages::failure_page(state, &crate::smart::pages::spend_failure(state, source, e))
}

/// Ends the session: the token is revoked and the cookie removed.
#[utoipa::path(post, path = "/auth/logout", tag = "identity",
    responses((status = 204), (status = 401, body = super::error::Problem), (status = 403, body = super::error::Problem)))]
pub async fn logout(State(state): State<AppState>, who: Principal) -> Result<Response> {
    let now = state.clock.now().timestamp_millis();
    let mut tx = state.store.begin().await?;
    users::revoke_token(&mut tx, who.token_id, now).await?;
    crate::store::audit::append(&mut tx, &[who.event("auth.logout", "token", who.token_id)], now).await?;
    tx.commit().await?;
    state.tokens.forget_all();
    let secure = session::secure_cookies(&state.config);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, session::clear_cookie(SESSION_COOKIE, secure));
    Ok(resp)
}
