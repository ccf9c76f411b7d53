//! A stand-in EHR for tests and `wardline demo` (SPEC §5): a SMART authorization server (SMART
//! and OpenID discovery, JWKS, an authorize endpoint with a consent page, a token endpoint with
//! PKCE) and a FHIR server with Patients and Encounters, plus a "chart" page that frames Wardline
//! the way an EHR does. Its signing keys are fixtures: it must never be trusted outside a demo.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{
    Audience, EndUserName, EndUserUsername, IssuerUrl, JsonWebKeyId, LocalizedClaim, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::oidc::{WardClaims, WardIdToken};
use openidconnect::IdTokenClaims;

mod oauth;
use oauth::{authorize, chart, decision, index, token};

const KEYS: [&str; 2] = [
    include_str!("../../../fixtures/smart/mock-ehr-key-1.pem"),
    include_str!("../../../fixtures/smart/mock-ehr-key-2.pem"),
];

/// A client registered at the mock EHR.
#[derive(Clone, Debug, Default)]
pub struct MockClient {
    /// Client id.
    pub id: String,
    /// Secret of a confidential client.
    pub secret: Option<String>,
    /// Allowed redirect URI.
    pub redirect_uri: String,
    /// Where an asymmetric confidential client (`private_key_jwt`) publishes its keys.
    pub jwks_url: Option<String>,
}

/// What the EHR has open when it launches the app.
#[derive(Clone, Debug)]
pub struct LaunchCtx {
    /// EHR Patient id.
    pub patient: String,
    /// EHR Encounter id.
    pub encounter: Option<String>,
    /// EHR Practitioner id of the user.
    pub practitioner: String,
    /// Whether the EHR wants the app to show its own banner.
    pub need_patient_banner: bool,
}

#[derive(Clone, Debug)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: String,
    challenge: String,
    nonce: Option<String>,
    launch: LaunchCtx,
    /// A SMART launch (answers carry the FHIR base as `iss`) rather than a plain sign-in.
    smart: bool,
}

#[derive(Clone, Debug)]
struct Code {
    pending: Pending,
    used: bool,
}

#[derive(Default)]
struct Data {
    clients: Vec<MockClient>,
    resources: HashMap<String, Value>,
    practitioners: Vec<(String, String)>,
    launches: HashMap<String, LaunchCtx>,
    pending: HashMap<String, Pending>,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, LaunchCtx>,
    assertion_ids: std::collections::HashSet<String>,
}

/// Knobs tests turn.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Sign id_tokens without `kid` (with the second of the two published keys).
    pub omit_kid: bool,
}

/// The mock EHR's shared state.
pub struct MockEhr {
    base: String,
    wardline: Mutex<String>,
    behaviour: Mutex<Behaviour>,
    data: Mutex<Data>,
}

fn random() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl MockEhr {
    /// Serves the mock EHR on `listener`.
    pub fn serve(listener: tokio::net::TcpListener) -> std::io::Result<Arc<MockEhr>> {
        let base = format!("http://{}", listener.local_addr()?);
        let ehr = Arc::new(MockEhr {
            base,
            wardline: Mutex::default(),
            behaviour: Mutex::default(),
            data: Mutex::default(),
        });
        let app = Router::new()
            .route("/", get(index))
            .route("/chart", get(chart))
            .route("/.well-known/openid-configuration", get(openid_configuration))
            .route("/fhir/.well-known/smart-configuration", get(smart_configuration))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/authorize/decision", post(decision))
            .route("/token", post(token))
            .route("/fhir/{kind}/{id}", get(read))
            .with_state(ehr.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ehr)
    }

    /// The FHIR base, Wardline's `iss`.
    pub fn iss(&self) -> String {
        format!("{}/fhir", self.base)
    }

    /// The server's own address.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where Wardline runs (the chart page frames it).
    pub fn set_wardline(&self, url: &str) {
        *self.wardline.lock().unwrap_or_else(|p| p.into_inner()) = url.trim_end_matches('/').to_string();
    }

    /// Registers a client.
    pub fn register(&self, client: MockClient) {
        self.data().clients.push(client);
    }

    /// Adds a Patient or Encounter (by its `resourceType` and `id`).
    pub fn put(&self, resource: Value) {
        let key = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap_or(""),
            resource["id"].as_str().unwrap_or("")
        );
        self.data().resources.insert(key, resource);
    }

    /// Adds a practitioner users can be signed in as.
    pub fn practitioner(&self, id: &str, name: &str) {
        self.data().practitioners.push((id.into(), name.into()));
    }

    /// Opens a chart: a launch id the EHR would put in the launch URL.
    pub fn launch(&self, ctx: LaunchCtx) -> String {
        let id = random();
        self.data().launches.insert(id.clone(), ctx);
        id
    }

    /// Changes how tokens are minted.
    pub fn set_behaviour(&self, b: Behaviour) {
        *self.behaviour.lock().unwrap_or_else(|p| p.into_inner()) = b;
    }

    fn key(&self, index: usize, with_kid: bool) -> Result<CoreRsaPrivateSigningKey, String> {
        let kid = with_kid.then(|| JsonWebKeyId::new(format!("mock-{}", index + 1)));
        CoreRsaPrivateSigningKey::from_pem(KEYS[index], kid)
    }

    fn id_token(&self, p: &Pending) -> Result<String, String> {
        let omit_kid = self.behaviour.lock().unwrap_or_else(|e| e.into_inner()).omit_kid;
        let key = if omit_kid {
            self.key(1, false)?
        } else {
            self.key(0, true)?
        };
        let now = chrono::Utc::now();
        let name = self
            .data()
            .practitioners
            .iter()
            .find(|(id, _)| *id == p.launch.practitioner)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        let mut standard = StandardClaims::new(SubjectIdentifier::new(p.launch.practitioner.clone()));
        standard = standard
            .set_name(Some(LocalizedClaim::from(EndUserName::new(name))))
            .set_preferred_username(Some(EndUserUsername::new(p.launch.practitioner.clone())));
        let claims = IdTokenClaims::new(
            IssuerUrl::new(self.base.clone()).map_err(|e| e.to_string())?,
            vec![Audience::new(p.client_id.clone())],
            now + chrono::Duration::minutes(5),
            now,
            standard,
            WardClaims {
                fhir_user: Some(format!("{}/Practitioner/{}", self.iss(), p.launch.practitioner)),
            },
        )
        .set_nonce(p.nonce.clone().map(Nonce::new));
        let token = WardIdToken::new(
            claims,
            &key,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .map_err(|e| e.to_string())?;
        Ok(token.to_string())
    }
}

type Ehr = State<Arc<MockEhr>>;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn openid_configuration(State(ehr): Ehr) -> Json<Value> {
    Json(json!({
        "issuer": ehr.base,
        "authorization_endpoint": format!("{}/authorize", ehr.base),
        "token_endpoint": format!("{}/token", ehr.base),
        "jwks_uri": format!("{}/jwks", ehr.base),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn smart_configuration(State(ehr): Ehr) -> Json<Value> {
    Json(json!({
        "issuer": ehr.base,
        "jwks_uri": format!("{}/jwks", ehr.base),
        "authorization_endpoint": format!("{}/authorize", ehr.base),
        "token_endpoint": format!("{}/token", ehr.base),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "grant_types_supported": ["authorization_code"],
        "scopes_supported": ["openid", "fhirUser", "launch", "patient/*.rs"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["launch-ehr", "client-public", "client-confidential-symmetric", "context-ehr-patient",
                         "context-ehr-encounter", "sso-openid-connect", "context-banner", "permission-v2"],
    }))
}

async fn jwks(State(ehr): Ehr) -> Response {
    let keys: Result<Vec<Value>, String> = (0..KEYS.len())
        .map(|i| {
            let key = ehr.key(i, true)?;
            serde_json::to_value(key.as_verification_key()).map_err(|e| e.to_string())
        })
        .collect();
    match keys {
        Ok(keys) => Json(json!({"keys": keys})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn read(State(ehr): Ehr, headers: HeaderMap, Path((kind, id)): Path<(String, String)>) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let data = ehr.data();
    let Some(granted) = bearer.and_then(|t| data.tokens.get(t)) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(outcome("login", "a valid access token is required")),
        )
            .into_response();
    };
    let Some(resource) = data.resources.get(&format!("{kind}/{id}")) else {
        return (
            StatusCode::NOT_FOUND,
            Json(outcome("not-found", "no such resource")),
        )
            .into_response();
    };
    // patient/*.rs: the patient and encounter in context, and what is about the patient.
    let patient = &granted.patient;
    let about = match kind.as_str() {
        "Patient" => id == *patient,
        "Encounter" if granted.encounter.as_deref() == Some(id.as_str()) => true,
        _ => resource["subject"]["reference"].as_str() == Some(&format!("Patient/{patient}")),
    };
    if !about {
        return (
            StatusCode::FORBIDDEN,
            Json(outcome("forbidden", "outside the patient in context")),
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/fhir+json")],
        Json(resource.clone()),
    )
        .into_response()
}

fn outcome(code: &str, text: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]})
}
