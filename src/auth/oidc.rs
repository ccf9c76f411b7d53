//! OpenID Connect, shared by the SMART EHR launch and the standalone sign-in: one client type
//! (openidconnect) whose id_token carries `fhirUser` and whose token response carries the SMART
//! launch context, provider discovery, and id_token validation that also accepts a JWT without
//! `kid` when the provider publishes several keys (SPEC §5 step 4).

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthUrl, Client, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields,
    IdToken, IdTokenClaims, IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce, RedirectUrl,
    StandardErrorResponse, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// The `oidc` section: the hospital's identity provider for sign-in outside the EHR.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery at `{issuer}/.well-known/openid-configuration`);
    /// absent: standalone sign-in is off.
    pub issuer: Option<String>,
    /// The client id registered for Wardline.
    pub client_id: String,
    /// The client secret, for a confidential registration.
    pub client_secret: Option<Secret>,
    /// Link a person not yet linked to a subject by the provider's `preferred_username` on first
    /// sign-in. Only for providers where that claim is the unique, immutable login; otherwise
    /// give each person their `idp_subject` when creating them. Never links admins or auditors.
    pub link_by_username: bool,
}

/// Claims beyond the standard ones: SMART's `fhirUser`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct WardClaims {
    /// The user's FHIR resource (`Practitioner/123`, relative or absolute).
    #[serde(rename = "fhirUser", default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
}
impl AdditionalClaims for WardClaims {}

/// The SMART launch context that arrives beside the access token.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct LaunchFields {
    /// The EHR's id of the patient in context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The EHR's id of the encounter in context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// False when the EHR already shows a patient banner around the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need_patient_banner: Option<bool>,
    /// The EHR's style sheet for embedded apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart_style_url: Option<String>,
}
impl ExtraTokenFields for LaunchFields {}

/// The token response Wardline reads.
pub type WardTokenResponse = StandardTokenResponse<
    IdTokenFields<
        WardClaims,
        LaunchFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// An id_token with `fhirUser`.
pub type WardIdToken =
    IdToken<WardClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Verified id_token claims.
pub type WardClaimsSet = IdTokenClaims<WardClaims, CoreGenderClaim>;

/// The client, with its authorization and token endpoints set.
pub type WardClient = Client<
    WardClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    WardTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
>;

/// What Wardline needs to know about a provider.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The id_token issuer.
    pub issuer: IssuerUrl,
    /// Where the browser is sent to authorise.
    pub authorization: AuthUrl,
    /// Where the code is exchanged.
    pub token: TokenUrl,
    /// The provider's signing keys.
    pub jwks: CoreJsonWebKeySet,
}

/// Why talking to a provider failed (shown to the user as "could not reach", never with tokens).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or a request failed.
    #[error("the identity provider could not be used: {0}")]
    Provider(String),
    /// The id_token did not validate.
    #[error("the id_token is not valid: {0}")]
    IdToken(String),
}

/// The HTTP client for providers and EHRs: no redirects (a token endpoint that redirects is a
/// misconfiguration or an attack), bounded time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// OIDC discovery of `issuer` (metadata and JWKS).
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Endpoints, OidcError> {
    let issuer = IssuerUrl::new(issuer.to_string()).map_err(|e| OidcError::Provider(e.to_string()))?;
    let meta = CoreProviderMetadata::discover_async(issuer.clone(), http)
        .await
        .map_err(|e| OidcError::Provider(format!("OpenID discovery: {e}")))?;
    let token = meta
        .token_endpoint()
        .cloned()
        .ok_or_else(|| OidcError::Provider("OpenID discovery: no token_endpoint".into()))?;
    Ok(Endpoints {
        issuer,
        authorization: meta.authorization_endpoint().clone(),
        token,
        jwks: meta.jwks().clone(),
    })
}

/// The client for a registration at a provider.
pub fn client(
    endpoints: &Endpoints,
    client_id: &str,
    secret: Option<&Secret>,
    redirect: RedirectUrl,
) -> WardClient {
    let client = Client::new(
        ClientId::new(client_id.to_string()),
        endpoints.issuer.clone(),
        endpoints.jwks.clone(),
    )
    .set_auth_uri(endpoints.authorization.clone())
    .set_token_uri(endpoints.token.clone())
    .set_redirect_uri(redirect);
    match secret {
        Some(s) => client.set_client_secret(ClientSecret::new(s.expose().to_string())),
        None => client,
    }
}

const ALGS: [CoreJwsSigningAlgorithm; 6] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];

fn verifier<'a>(
    client_id: &str,
    endpoints: &Endpoints,
    keys: CoreJsonWebKeySet,
    now: DateTime<Utc>,
) -> IdTokenVerifier<'a, CoreJsonWebKey> {
    IdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_string()),
        endpoints.issuer.clone(),
        keys,
    )
    .set_allowed_algs(ALGS)
    .set_time_fn(move || now)
}

/// Validates an id_token: signature through the provider's JWKS, issuer, audience (our client
/// id), nonce and expiry at `now`. openidconnect picks the key by `kid`; a JWT without one is
/// accepted only if exactly one published key fits, so when several do, each is tried in turn
/// (OIDC Core §10.1 lets a provider omit `kid`; the signature still has to verify).
pub fn validate(
    token: &WardIdToken,
    client_id: &str,
    endpoints: &Endpoints,
    nonce: &Nonce,
    now: DateTime<Utc>,
) -> Result<WardClaimsSet, OidcError> {
    use openidconnect::{ClaimsVerificationError, SignatureVerificationError};
    let all = verifier(client_id, endpoints, endpoints.jwks.clone(), now);
    match token.claims(&all, nonce) {
        Ok(claims) => Ok(claims.clone()),
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::AmbiguousKeyId(
            _,
        ))) => endpoints
            .jwks
            .keys()
            .iter()
            .find_map(|key| {
                let one = verifier(client_id, endpoints, JsonWebKeySet::new(vec![key.clone()]), now);
                token.claims(&one, nonce).ok().cloned()
            })
            .ok_or_else(|| OidcError::IdToken("no published key verifies the signature".into())),
        Err(e) => Err(OidcError::IdToken(e.to_string())),
    }
}
