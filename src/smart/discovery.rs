//! Finding an EHR's endpoints (SPEC §5 step 2): its `.well-known/smart-configuration`, which must
//! offer PKCE S256, then OpenID discovery through the `issuer` it names for the id_token keys.
//! Results are kept for a few minutes so a launch does not cost two discovery round trips.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::{AuthUrl, TokenUrl};
use serde::Deserialize;

use crate::auth::oidc::{self, Endpoints, OidcError};

/// How long discovered endpoints and keys are reused.
const TTL: Duration = Duration::from_secs(300);

/// The parts of a SMART configuration document Wardline relies on.
#[derive(Debug, Deserialize)]
pub struct SmartConfiguration {
    /// The OpenID issuer of the id_token (needed: Wardline always asks for `openid fhirUser`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Where to send the browser.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where to exchange the code.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// PKCE methods; must include `S256`.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

impl SmartConfiguration {
    /// What Wardline needs from it, or why the EHR cannot launch Wardline.
    pub fn endpoints(&self) -> Result<(&str, &str, &str), String> {
        if !self.code_challenge_methods_supported.iter().any(|m| m == "S256") {
            return Err("code_challenge_methods_supported does not include S256".into());
        }
        fn need<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, String> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{name} is missing"))
        }
        Ok((
            need(&self.issuer, "issuer")?,
            need(&self.authorization_endpoint, "authorization_endpoint")?,
            need(&self.token_endpoint, "token_endpoint")?,
        ))
    }
}

/// Discovery with a short-lived cache, and the HTTP client for EHRs and providers.
pub struct Providers {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Endpoints)>>,
}

impl Default for Providers {
    fn default() -> Self {
        Self {
            http: oidc::http_client(),
            cache: Mutex::default(),
        }
    }
}

impl Providers {
    /// The client for EHR and provider requests (no redirects, 10 s).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn cached(&self, key: &str) -> Option<Endpoints> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, e)| e.clone())
    }

    fn keep(&self, key: String, endpoints: &Endpoints) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(key, (Instant::now(), endpoints.clone()));
    }

    /// Drops everything discovered (after an id_token failed: a provider's keys may have
    /// rotated, and its OpenID issuer is often not its FHIR base, so both entries must go).
    pub fn forget(&self) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.clear();
    }

    /// GETs `url` (optionally with a bearer token) and reads a JSON answer; the error says what
    /// failed without the URL or the token.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        accept: &str,
        bearer: Option<&str>,
    ) -> Result<T, String> {
        let mut request = self.http.get(url).header(reqwest::header::ACCEPT, accept);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        response.json().await.map_err(|e| e.without_url().to_string())
    }

    /// The endpoints of the EHR whose FHIR base is `iss`.
    pub async fn smart(&self, iss: &str) -> Result<Endpoints, OidcError> {
        let key = format!("smart {iss}");
        if let Some(e) = self.cached(&key) {
            return Ok(e);
        }
        let url = format!("{}/.well-known/smart-configuration", iss.trim_end_matches('/'));
        let fail = |e: String| OidcError::Provider(format!("smart-configuration: {e}"));
        let config: SmartConfiguration = self
            .get_json(&url, "application/json", None)
            .await
            .map_err(fail)?;
        let (issuer, authorization, token) = config.endpoints().map_err(fail)?;
        let mut endpoints = self.oidc(issuer).await?;
        // SMART's own endpoints win: they are what the EHR registered the app against.
        endpoints.authorization = AuthUrl::new(authorization.to_string()).map_err(|e| fail(e.to_string()))?;
        endpoints.token = TokenUrl::new(token.to_string()).map_err(|e| fail(e.to_string()))?;
        self.keep(key, &endpoints);
        Ok(endpoints)
    }

    /// The endpoints of an OpenID provider.
    pub async fn oidc(&self, issuer: &str) -> Result<Endpoints, OidcError> {
        let key = format!("oidc {issuer}");
        if let Some(e) = self.cached(&key) {
            return Ok(e);
        }
        let endpoints = oidc::discover(&self.http, issuer).await?;
        self.keep(key, &endpoints);
        Ok(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_and_endpoints_are_required() {
        let ok: SmartConfiguration = serde_json::from_value(serde_json::json!({
            "issuer": "https://ehr/", "authorization_endpoint": "https://ehr/auth",
            "token_endpoint": "https://ehr/token", "code_challenge_methods_supported": ["plain", "S256"]
        }))
        .unwrap();
        assert_eq!(
            ok.endpoints().unwrap(),
            ("https://ehr/", "https://ehr/auth", "https://ehr/token")
        );
        let plain: SmartConfiguration = serde_json::from_value(serde_json::json!({
            "issuer": "https://ehr/", "authorization_endpoint": "a", "token_endpoint": "t",
            "code_challenge_methods_supported": ["plain"]
        }))
        .unwrap();
        assert!(plain.endpoints().unwrap_err().contains("S256"));
        let no_issuer: SmartConfiguration = serde_json::from_value(serde_json::json!({
            "authorization_endpoint": "a", "token_endpoint": "t", "code_challenge_methods_supported": ["S256"]
        }))
        .unwrap();
        assert!(no_issuer.endpoints().unwrap_err().contains("issuer"));
    }
}
