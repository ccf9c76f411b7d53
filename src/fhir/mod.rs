//! The FHIR R4 API (SPEC §4): Wardline's patients, encounters, rooms, messages, people and audit
//! trail as FHIR resources under `/fhir`.
//!
//! Resources are built as JSON in [`resources`] and leave through fhir-sdk's models in the
//! separate `wardline-fhir-wire` crate (its compile cost stays out of this crate). Access is
//! decided by SMART v2 scopes ([`scopes`]); searches are parsed without I/O ([`search`]) and run
//! by `store::fhir`; errors are OperationOutcomes ([`outcome`]).

pub mod capability;
pub mod dates;
pub mod http;
pub mod include;
pub mod input;
pub mod outcome;
pub mod request;
pub mod resources;
pub mod scopes;
pub mod search;
pub mod transaction;
pub mod write;
pub mod write_adt;
pub mod write_roster;

use axum::Router;
use axum::routing::get;

use crate::http::AppState;

/// The routes under `/fhir`; unknown paths and methods, and a handler that panics, answer with
/// an OperationOutcome.
pub fn routes() -> Router<AppState> {
    let router = Router::new()
        .route("/", axum::routing::post(transaction::transaction))
        .route("/metadata", get(capability::metadata))
        .route("/{type}", get(http::search_type).post(write::create))
        .route(
            "/{type}/{id}",
            get(http::read).put(write::update).delete(write_roster::delete),
        )
        .fallback(unknown_path)
        .method_not_allowed_fallback(unsupported_method);
    crate::http::contain_panics(router, panic_outcome)
}

/// The FHIR answer for a handler that panicked: a 500 OperationOutcome, as every FHIR error is.
fn panic_outcome() -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a FHIR handler panicked");
    outcome::FhirError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the interaction failed unexpectedly",
    )
    .into_response()
}

async fn unknown_path() -> outcome::FhirError {
    outcome::FhirError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not-found",
        "no FHIR endpoint at this path",
    )
}

async fn unsupported_method() -> outcome::FhirError {
    outcome::FhirError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        "this interaction is not supported here (see /fhir/metadata)",
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("while reading MRN-12345")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_an_operation_outcome() {
        let app: Router =
            crate::http::contain_panics(Router::new().route("/Patient/{id}", get(boom)), panic_outcome);
        let request = Request::get("/Patient/p1").body(Body::empty()).expect("request");
        let response = app.oneshot(request).await.expect("answered");
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            outcome::FHIR_JSON
        );
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        let outcome: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "exception");
        assert!(!String::from_utf8_lossy(&body).contains("MRN-12345"), "{outcome}");
    }
}
