//! The authorization-code flow both sign-ins share (SPEC §5 steps 3–4, §8): send the browser to
//! the provider with PKCE S256, a 256-bit `state` bound to this browser by a cookie and a nonce;
//! on the way back take the request once, check the binding, exchange the code with the verifier
//! and validate the id_token; then start a session.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, CsrfToken, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, Scope, core::CoreResponseType,
};
use rand::RngCore;
use serde::Deserialize;
use uuid::Uuid;

use super::assertion::{ASSERTION_TYPE, ClientKey};
use super::oidc::{self, Endpoints, WardClaimsSet, WardClient, WardTokenResponse};
use super::session::{self, BINDING_COOKIE, SESSION_COOKIE};
use crate::http::AppState;
use crate::smart::pages::LaunchError;
use crate::store::sessions::{self, AuthRequest};

/// How long a browser may take between leaving for the provider and coming back.
pub const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;

/// What a provider sends back to the redirect URI.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// Echo of our `state`.
    pub state: Option<String>,
    /// RFC 9207 issuer identification (SMART: the EHR's FHIR base).
    pub iss: Option<String>,
    /// Set when authorization failed (`access_denied`...).
    pub error: Option<String>,
}

fn hash(s: &str) -> String {
    crate::auth::hash_token(s)
}

/// Sends the browser to the provider. `key` is what the callback needs to find the provider
/// again (the EHR's `iss`, or the OIDC issuer).
pub async fn begin(
    state: &AppState,
    client: &WardClient,
    flow: &'static str,
    key: &str,
    launch: Option<&str>,
    scopes: &[&str],
    extra: &[(&str, &str)],
) -> Result<Response, LaunchError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            || CsrfToken::new_random_len(32),
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in scopes {
        request = request.add_scope(Scope::new((*scope).to_string()));
    }
    for (name, value) in extra {
        request = request.add_extra_param(*name, *value);
    }
    let (url, csrf, nonce) = request.url();
    let mut binding = [0u8; 32];
    rand::rng().fill_bytes(&mut binding);
    let binding = hex::encode(binding);
    let now = state.clock.now().timestamp_millis();
    let row = AuthRequest {
        state_hash: hash(csrf.secret()),
        browser_hash: hash(&binding),
        flow: flow.into(),
        issuer: key.into(),
        launch: launch.map(str::to_string),
        pkce_verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
        created_at: now,
    };
    let mut tx = state.store.begin().await.map_err(crate::error::Error::from)?;
    sessions::insert_request(&mut tx, &row, now - REQUEST_TTL_MS).await?;
    tx.commit().await.map_err(crate::error::Error::from)?;
    let secure = session::secure_cookies(&state.config);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(|e| LaunchError::Provider(e.to_string()))?,
    );
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(BINDING_COOKIE, &binding, (REQUEST_TTL_MS / 1000) as u64, secure),
    );
    Ok(resp)
}

/// Takes the request the callback answers: known, of this `flow`, fresh, started by this
/// browser, for the same issuer; and not declined.
pub async fn take(
    state: &AppState,
    headers: &HeaderMap,
    query: &Callback,
    flow: &str,
) -> Result<AuthRequest, LaunchError> {
    let given = query.state.as_deref().ok_or(LaunchError::Missing("state"))?;
    let mut tx = state.store.begin().await.map_err(crate::error::Error::from)?;
    let request = sessions::take_request(&mut tx, &hash(given)).await?;
    tx.commit().await.map_err(crate::error::Error::from)?;
    let request = request
        .filter(|r| r.flow == flow)
        .filter(|r| state.clock.now().timestamp_millis() - r.created_at <= REQUEST_TTL_MS)
        .ok_or(LaunchError::StateUnknown)?;
    let secure = session::secure_cookies(&state.config);
    let binding = session::cookie(headers, BINDING_COOKIE, secure).ok_or(LaunchError::StateNotBound)?;
    if hash(&binding) != request.browser_hash {
        return Err(LaunchError::StateNotBound);
    }
    if let Some(iss) = &query.iss
        && iss.trim_end_matches('/') != request.issuer.trim_end_matches('/')
    {
        return Err(LaunchError::IssuerMismatch);
    }
    if let Some(error) = &query.error {
        // Only the standard code is kept: `error_description` is free text from elsewhere.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        return Err(LaunchError::Denied(code));
    }
    Ok(request)
}

/// Exchanges the code (with the PKCE verifier; a confidential client authenticates with its
/// secret, or with a JWT signed by `key`) and validates the id_token.
pub async fn exchange(
    state: &AppState,
    client: &WardClient,
    endpoints: &Endpoints,
    request: &AuthRequest,
    code: Option<&str>,
    key: Option<&ClientKey>,
) -> Result<(WardTokenResponse, WardClaimsSet), LaunchError> {
    let code = code.ok_or(LaunchError::Missing("code"))?;
    let mut exchange = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(request.pkce_verifier.clone()));
    if let Some(key) = key {
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let jwt = key
            .assertion(
                client.client_id(),
                endpoints.token.as_str(),
                state.clock.now(),
                &hex::encode(jti),
            )
            .map_err(LaunchError::Provider)?;
        exchange = exchange
            .add_extra_param("client_assertion_type", ASSERTION_TYPE)
            .add_extra_param("client_assertion", jwt);
    }
    let token = exchange
        .request_async(state.providers.http())
        .await
        .map_err(|e| LaunchError::Provider(format!("the code exchange failed: {}", token_error(&e))))?;
    if *token.token_type() != openidconnect::core::CoreTokenType::Bearer {
        return Err(LaunchError::Provider(
            "the token endpoint issued no bearer token".into(),
        ));
    }
    let id_token = token
        .extra_fields()
        .id_token()
        .ok_or_else(|| LaunchError::IdToken("the token response has no id_token".into()))?;
    let claims = oidc::validate(
        id_token,
        client.client_id(),
        endpoints,
        &Nonce::new(request.nonce.clone()),
        state.clock.now(),
    )
    .map_err(|e| {
        state.providers.forget();
        LaunchError::IdToken(e.to_string())
    })?;
    Ok((token, claims))
}

/// The error code of a failed token request, without any token material.
fn token_error<RE: std::error::Error + 'static>(
    e: &openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => r.error().to_string(),
        openidconnect::RequestTokenError::Request(_) => "the token endpoint could not be reached".into(),
        openidconnect::RequestTokenError::Parse(_, _) => "the token response could not be read".into(),
        openidconnect::RequestTokenError::Other(s) => s.clone(),
    }
}

/// Starts the session and sends the browser into the web app at `location`.
pub async fn finish(
    state: &AppState,
    user_id: Uuid,
    context: Option<&session::LaunchContext>,
    label: &str,
    location: &str,
) -> Result<Response, LaunchError> {
    let now = state.clock.now().timestamp_millis();
    let (_, token) =
        session::start(&state.store, &state.config.session, user_id, context, label, now).await?;
    let secure = session::secure_cookies(&state.config);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).map_err(|e| LaunchError::Provider(e.to_string()))?,
    );
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(
            SESSION_COOKIE,
            &token,
            state.config.session.absolute_timeout_secs,
            secure,
        ),
    );
    headers.append(header::SET_COOKIE, session::clear_cookie(BINDING_COOKIE, secure));
    Ok(resp)
}
