//! FHIR responses: resources as `application/fhir+json`, every error as an OperationOutcome with
//! the HTTP status the FHIR RESTful API gives it. Internal details never reach the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wardline_fhir_wire::{WireError, to_wire};

use crate::error::Error;

/// The FHIR JSON media type, with the FHIR version Wardline speaks.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8; fhirVersion=4.0";

/// A FHIR error: status, `OperationOutcome.issue.code` and a message that names the problem
/// without echoing patient data.
#[derive(Debug)]
pub struct FhirError {
    /// HTTP status.
    pub status: StatusCode,
    /// FHIR IssueType code.
    pub code: &'static str,
    /// Human-readable diagnostics.
    pub diagnostics: String,
}

impl FhirError {
    /// An error with an explicit status and issue code.
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        FhirError {
            status,
            code,
            diagnostics: diagnostics.into(),
        }
    }

    /// 404 for a resource that does not exist or that the caller may not know exists.
    pub fn not_found(kind: &str, id: &str) -> Self {
        // Ids are Wardline's own UUIDs, never patient data, so they can be named.
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{kind}/{id} is not known"),
        )
    }
}

impl From<Error> for FhirError {
    fn from(e: Error) -> Self {
        let status = e.status();
        let code = match status.as_u16() {
            400 => "invalid",
            401 => "login",
            403 => "forbidden",
            404 => "not-found",
            405 | 406 | 415 => "not-supported",
            409 => "conflict",
            412 => "multiple-matches",
            413 => "too-costly",
            422 => "business-rule",
            429 => "throttled",
            503 => "transient",
            _ => "exception",
        };
        let diagnostics = if status.is_server_error() {
            tracing::error!(error = %e, "FHIR request failed");
            "the server could not complete the request".to_string()
        } else {
            e.to_string()
        };
        FhirError {
            status,
            code,
            diagnostics,
        }
    }
}

impl From<WireError> for FhirError {
    fn from(e: WireError) -> Self {
        let code = match &e {
            WireError::NotJson(_) | WireError::Structure(_) | WireError::UnknownElements(_) => "structure",
            _ => "invalid",
        };
        FhirError::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

/// The OperationOutcome for one issue.
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    })
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let mut res = fhir_response(
            self.status,
            operation_outcome("error", self.code, &self.diagnostics),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wardline\""),
            );
        }
        res
    }
}

/// A resource as a FHIR JSON response, through the typed model. A resource the model refuses is
/// a server defect: logged (its path, not its content) and answered with a 500 OperationOutcome.
pub fn fhir_response(status: StatusCode, resource: Value) -> Response {
    match to_wire(resource) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, FHIR_JSON)], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a FHIR resource failed its model check");
            let fallback = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"the server built an invalid resource"}]}"#;
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, FHIR_JSON)],
                fallback.as_slice(),
            )
                .into_response()
        }
    }
}

/// Result type of FHIR handlers.
pub type FhirResult<T> = std::result::Result<T, FhirError>;
