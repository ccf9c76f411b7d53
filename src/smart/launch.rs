//! `GET /smart/launch` and `GET /smart/callback` (SPEC §5 steps 1–7): the EHR opens Wardline with
//! `iss` and `launch`; Wardline authorises against that EHR, learns who the user is and which
//! patient and encounter are open, fetches them, matches the patient on two identifiers and only
//! then opens the room, in a session of its own.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use openidconnect::{OAuth2TokenResponse, RedirectUrl};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::config::TrustedIssuer;
use super::context::{self, Basis};
use super::pages::{LaunchError, failure_page, spend_failure};
use super::patient::{fhir_user_url, practitioner_id};
use crate::audit::Event;
use crate::auth::flow::{self, Callback};
use crate::auth::oidc::{self, Endpoints, WardClient};
use crate::auth::session::LaunchContext;
use crate::auth::{Principal, Role};
use crate::fhir::scopes::Grant;
use crate::http::AppState;
use crate::http::extract::{Source, public_base};
use crate::store::users;

/// What Wardline asks the EHR for (`openid` is added by the client).
const SCOPES: [&str; 4] = ["launch", "fhirUser", "patient/Patient.rs", "patient/Encounter.rs"];

/// The launch parameters.
#[derive(Debug, Default, Deserialize)]
pub struct LaunchQuery {
    /// The EHR's FHIR base.
    pub iss: Option<String>,
    /// The EHR's opaque launch id.
    pub launch: Option<String>,
}

/// What an attempt got to know before it ended, for the audit entry.
#[derive(Default)]
struct Attempt {
    actor: Option<Uuid>,
    iss: Option<String>,
}

fn redirect_uri(state: &AppState, headers: &HeaderMap) -> Result<RedirectUrl, LaunchError> {
    RedirectUrl::new(format!("{}/smart/callback", public_base(&state.config, headers)))
        .map_err(|e| LaunchError::Provider(format!("redirect URI: {e}")))
}

async fn client_for(
    state: &AppState,
    headers: &HeaderMap,
    iss: &str,
) -> Result<(TrustedIssuer, Endpoints, WardClient), LaunchError> {
    let trusted = state
        .config
        .smart
        .issuer(iss)
        .ok_or(LaunchError::UntrustedIssuer)?
        .clone();
    let endpoints = state
        .providers
        .smart(&trusted.iss)
        .await
        .map_err(|e| LaunchError::Provider(e.to_string()))?;
    // With private_key_jwt the client has no secret: it signs an assertion per exchange instead.
    let secret = trusted
        .client_secret
        .as_ref()
        .filter(|_| trusted.client_key_file.is_none());
    let client = oidc::client(
        &endpoints,
        &trusted.client_id,
        secret,
        redirect_uri(state, headers)?,
    );
    Ok((trusted, endpoints, client))
}

/// Wardline's public keys for `private_key_jwt`, to register at the EHRs (JWKS).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut keys: Vec<Value> = Vec::new();
    for issuer in &state.config.smart.issuers {
        match issuer.client_key() {
            Ok(Some(key)) => {
                let mut jwk = serde_json::to_value(key.public()).unwrap_or_default();
                jwk["alg"] = json!("RS384");
                jwk["use"] = json!("sig");
                if !keys.iter().any(|k| k["kid"] == jwk["kid"]) {
                    keys.push(jwk);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "a configured SMART client key cannot be read"),
        }
    }
    axum::Json(json!({ "keys": keys })).into_response()
}

/// Step 1–3: check `iss`, discover, send the browser to the EHR's authorization endpoint.
pub async fn launch(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    Query(q): Query<LaunchQuery>,
) -> Response {
    let mut attempt = Attempt::default();
    match start(&state, &headers, &q, &mut attempt).await {
        Ok(resp) => resp,
        Err(e) => failed(&state, e, attempt, source.as_deref()).await,
    }
}

async fn start(
    state: &AppState,
    headers: &HeaderMap,
    q: &LaunchQuery,
    attempt: &mut Attempt,
) -> Result<Response, LaunchError> {
    let iss = q.iss.as_deref().ok_or(LaunchError::Missing("iss"))?;
    let launch = q.launch.as_deref().ok_or(LaunchError::Missing("launch"))?;
    if launch.len() > 1024 {
        return Err(LaunchError::EhrData(
            "the launch parameter is longer than 1024 characters".into(),
        ));
    }
    // Checked before any request leaves: an untrusted `iss` must not make Wardline call it.
    let trusted = state
        .config
        .smart
        .issuer(iss)
        .ok_or(LaunchError::UntrustedIssuer)?;
    attempt.iss = Some(trusted.iss.clone());
    let (trusted, _, client) = client_for(state, headers, iss).await?;
    flow::begin(
        state,
        &client,
        "smart",
        &trusted.iss,
        Some(launch),
        &SCOPES,
        &[("launch", launch), ("aud", &trusted.iss)],
    )
    .await
}

/// Steps 4–7: the EHR sends the browser back with a code.
pub async fn callback(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let mut attempt = Attempt::default();
    match complete(&state, &headers, &q, source.as_deref(), &mut attempt).await {
        Ok(resp) => resp,
        Err(e) => failed(&state, e, attempt, source.as_deref()).await,
    }
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    q: &Callback,
    source: Option<&str>,
    attempt: &mut Attempt,
) -> Result<Response, LaunchError> {
    let request = flow::take(state, headers, q, "smart").await?;
    attempt.iss = Some(request.issuer.clone());
    let (trusted, endpoints, client) = client_for(state, headers, &request.issuer).await?;
    let key = trusted.client_key().map_err(LaunchError::Provider)?;
    let (token, claims) = flow::exchange(
        state,
        &client,
        &endpoints,
        &request,
        q.code.as_deref(),
        key.as_ref(),
    )
    .await?;
    let fhir_user = claims
        .additional_claims()
        .fhir_user
        .clone()
        .ok_or(LaunchError::UnknownUser)?;
    let practitioner = practitioner_id(&fhir_user).ok_or(LaunchError::UnknownUser)?;
    let absolute = fhir_user_url(&fhir_user, &trusted.iss).ok_or(LaunchError::UnknownUser)?;
    let user = users::person_for_fhir_user(&mut *state.store.read().await?, &absolute, practitioner)
        .await?
        .ok_or(LaunchError::UnknownUser)?;
    attempt.actor = Some(user.id);
    let roles: Vec<Role> = user.roles.iter().filter_map(|r| Role::parse(r).ok()).collect();
    if !roles.contains(&Role::Clinician) {
        return Err(LaunchError::UnknownUser);
    }
    let who = Principal {
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        fhir: Grant::new(&roles, &[]),
        roles,
        token_id: Uuid::nil(),
        source: source.map(str::to_string),
    };
    let fields = token.extra_fields().extra_fields();
    let patient_id = fields.patient.clone().ok_or(LaunchError::NoPatientContext)?;
    let access = token.access_token().secret();
    let patient = fetch(state, &trusted.iss, "Patient", &patient_id, access).await?;
    let encounter = match &fields.encounter {
        Some(id) => Some(fetch(state, &trusted.iss, "Encounter", id, access).await?),
        None => None,
    };
    let opened = context::open(state, &who, &patient_id, &patient, encounter.as_ref()).await?;
    let basis = match &opened.basis {
        Basis::Matched(ids) => json!({"identifiers": ids}),
        Basis::CreatedFromEhr => json!({"created_from_ehr": true}),
    };
    let events = [
        who.event("auth.login", "user", user.id)
            .with_detail(json!({"method": "smart", "iss": trusted.iss})),
        who.event("patient-match", "room", opened.room_id)
            .with_detail(basis),
        who.event("smart.launch", "room", opened.room_id)
            .with_detail(json!({"iss": trusted.iss, "encounter_created": opened.encounter_created})),
    ];
    for event in events {
        state.audit.record(event).await?;
    }
    let need_banner = fields.need_patient_banner.unwrap_or(true);
    let context = LaunchContext {
        room_id: opened.room_id,
        need_patient_banner: need_banner,
    };
    let location = format!(
        "/app/#room={}{}",
        opened.room_id,
        if need_banner { "" } else { "&banner=0" }
    );
    flow::finish(state, user.id, Some(&context), "SMART launch", &location).await
}

/// A FHIR logical id (R4: 1–64 of `[A-Za-z0-9-.]`), so a context value cannot steer the URL.
fn logical_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Step 5: a resource from the EHR with the access token.
async fn fetch(
    state: &AppState,
    iss: &str,
    kind: &str,
    id: &str,
    access: &str,
) -> Result<Value, LaunchError> {
    if !logical_id(id) {
        return Err(LaunchError::EhrData(format!(
            "the {kind} id in the launch context is not a FHIR id"
        )));
    }
    let url = format!("{}/{kind}/{id}", iss.trim_end_matches('/'));
    let fail = |what: String| LaunchError::Provider(format!("the EHR's {kind} could not be read: {what}"));
    let value: Value = state
        .providers
        .get_json(&url, "application/fhir+json", Some(access))
        .await
        .map_err(fail)?;
    if value["resourceType"].as_str() != Some(kind) || value["id"].as_str() != Some(id) {
        return Err(fail("the answer is not the resource asked for".into()));
    }
    Ok(value)
}

/// Audits a failed launch (reason codes only) and shows the page.
async fn failed(state: &AppState, e: LaunchError, attempt: Attempt, source: Option<&str>) -> Response {
    let mut detail = json!({"reason": e.code(), "iss": attempt.iss});
    if let LaunchError::Mismatch(refusal) = &e {
        detail["refusal"] = json!(refusal);
    }
    let mut events = vec![
        Event::new(attempt.actor, "smart.launch", "launch", None)
            .from_source(source)
            .failed()
            .with_detail(detail.clone()),
    ];
    if matches!(e, LaunchError::Mismatch(_) | LaunchError::EncounterNotOfPatient) {
        events.push(
            Event::new(attempt.actor, "patient-match-failure", "launch", None)
                .from_source(source)
                .failed()
                .with_detail(detail),
        );
    }
    if let LaunchError::Internal(err) = &e {
        tracing::error!(error = %err, "SMART launch failed");
    }
    for event in events {
        if let Err(err) = state.audit.record(event).await {
            tracing::error!(error = %err, "could not audit a failed launch");
            return LaunchError::Internal(err).page(None).into_response();
        }
    }
    failure_page(state, &spend_failure(state, source, e))
}
