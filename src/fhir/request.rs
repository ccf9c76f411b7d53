//! What every FHIR interaction checks before it does anything: content negotiation (JSON only;
//! XML is politely refused with 406), the bearer token, the caller's SMART grant for the
//! interaction, the `Prefer: handling` mode, and the base URL for links.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use wardline_fhir_wire::Kind;

use super::outcome::FhirError;
use super::scopes::{Context, Op};
use crate::auth::Principal;
use crate::http::AppState;

/// Media types and `_format` values that mean FHIR JSON.
const JSON_TYPES: [&str; 5] = [
    "application/fhir+json",
    "application/json",
    "json",
    "application/*",
    "*/*",
];
/// Media types and `_format` values that mean FHIR XML (refused with 406).
const XML_TYPES: [&str; 4] = ["application/fhir+xml", "application/xml", "text/xml", "xml"];

/// Whether the client accepts JSON: `_format` wins over `Accept` (FHIR http.html); absent means
/// JSON. Returns the 406 otherwise.
pub fn negotiate(format: Option<&str>, accept: Option<&str>) -> Result<(), FhirError> {
    let refuse = |asked: &str| {
        let why = if XML_TYPES.iter().any(|x| asked.contains(x)) {
            "XML is not supported by this server; ask for application/fhir+json".to_string()
        } else {
            format!("'{asked}' cannot be produced; this server speaks application/fhir+json")
        };
        Err(FhirError::new(StatusCode::NOT_ACCEPTABLE, "not-supported", why))
    };
    if let Some(f) = format {
        let base = f.split(';').next().unwrap_or_default().trim();
        return if JSON_TYPES.contains(&base) {
            Ok(())
        } else {
            refuse(f)
        };
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(());
    };
    let acceptable = accept.split(',').any(|part| {
        let base = part.split(';').next().unwrap_or_default().trim();
        let refused_q = part
            .split(';')
            .skip(1)
            .any(|p| p.trim().replace(' ', "") == "q=0");
        JSON_TYPES.contains(&base) && !refused_q
    });
    if acceptable { Ok(()) } else { refuse(accept) }
}

/// A checked FHIR request: negotiation passed and the caller authenticated.
pub struct FhirRequest {
    /// The caller.
    pub who: Principal,
    /// `Prefer: handling=strict`.
    pub strict: bool,
    /// `[base]` for absolute links, e.g. `https://wardline.example/fhir`.
    pub base: String,
    /// Decoded query parameters, in order.
    pub params: Vec<(String, String)>,
}

impl FhirRequest {
    /// The context in which the caller may do `op` on `kind`, or the 403 (audited by the caller
    /// of this check through the returned error path).
    pub fn allowed(&self, kind: Kind, op: Op) -> Result<Context, FhirError> {
        self.who.fhir.permits(kind, op).ok_or_else(|| {
            let letter = match op {
                Op::Create => "c",
                Op::Read => "r",
                Op::Update => "u",
                Op::Delete => "d",
                Op::Search => "s",
            };
            FhirError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this token has no SMART scope allowing '{letter}' on {}",
                    kind.as_str()
                ),
            )
        })
    }

    /// The user id to restrict results to, for `user/` and `patient/` grants.
    pub fn viewer(&self, context: Context) -> Option<String> {
        (context != Context::System).then(|| self.who.user_id.to_string())
    }
}

/// The query string as decoded pairs, in order (repeats kept: `date=ge..&date=le..`).
fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, FhirError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .map_err(|_| {
            FhirError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "the query string cannot be decoded",
            )
        })
}

/// `[base]`: the server's public address followed by `/fhir`.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    format!(
        "{}/fhir",
        crate::http::extract::public_base(&state.config, headers)
    )
}

/// Content negotiation only (for `metadata`, which needs no token).
pub struct Negotiated {
    /// `[base]`.
    pub base: String,
    /// Decoded query parameters, in order.
    pub params: Vec<(String, String)>,
}

impl FromRequestParts<AppState> for Negotiated {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let accept = parts.headers.get(header::ACCEPT).and_then(|a| a.to_str().ok());
        let params = query_pairs(parts)?;
        let format = params
            .iter()
            .find(|(k, _)| k == "_format")
            .map(|(_, v)| v.as_str());
        negotiate(format, accept)?;
        Ok(Negotiated {
            base: base_url(state, &parts.headers),
            params,
        })
    }
}

impl FromRequestParts<AppState> for FhirRequest {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Negotiated { base, params } = Negotiated::from_request_parts(parts, state).await?;
        let who = <Principal as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?
            .ok_or_else(|| FhirError::new(StatusCode::UNAUTHORIZED, "login", "a bearer token is required"))?;
        let strict = parts
            .headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
            });
        Ok(FhirRequest {
            who,
            strict,
            base,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_default_and_xml_is_refused() {
        assert!(negotiate(None, None).is_ok());
        assert!(negotiate(None, Some("application/fhir+json")).is_ok());
        assert!(negotiate(None, Some("application/fhir+json; fhirVersion=4.0")).is_ok());
        assert!(negotiate(None, Some("text/html, */*;q=0.8")).is_ok());
        assert!(negotiate(Some("json"), Some("application/fhir+xml")).is_ok());
        let e = negotiate(None, Some("application/fhir+xml")).unwrap_err();
        assert_eq!((e.status, e.code), (StatusCode::NOT_ACCEPTABLE, "not-supported"));
        assert!(e.diagnostics.contains("XML"));
        assert!(negotiate(Some("xml"), None).is_err());
        assert!(negotiate(None, Some("application/json;q=0")).is_err());
        assert!(negotiate(None, Some("text/csv")).is_err());
    }
}
