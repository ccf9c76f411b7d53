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

/// The routes under `/fhir`; unknown paths and methods answer with an OperationOutcome.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::post(transaction::transaction))
        .route("/metadata", get(capability::metadata))
        .route("/{type}", get(http::search_type).post(write::create))
        .route(
            "/{type}/{id}",
            get(http::read).put(write::update).delete(write_roster::delete),
        )
        .fallback(unknown_path)
        .method_not_allowed_fallback(unsupported_method)
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
