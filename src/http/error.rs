//! Maps [`Error`] to RFC 9457 problem details (`application/problem+json`), one status per
//! variant, and turns axum's extractor rejections into the same shape so no client ever gets a
//! bare text error.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// The problem-details body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem, stable for clients to branch on.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl Error {
    /// The HTTP status of each variant.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::NotMember => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Invalid(_) | Error::DlpWarning(_) | Error::DlpBlocked(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::UnsupportedMediaType | Error::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Database(e) if is_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal(_) | Error::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotMember => "not-a-member",
            Error::NotFound(_) => "not-found",
            Error::BadRequest(_) => "bad-request",
            Error::MethodNotAllowed => "method-not-allowed",
            Error::Invalid(_) => "invalid",
            Error::DlpWarning(_) => "dlp-warning",
            Error::DlpBlocked(_) => "dlp-blocked",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge => "payload-too-large",
            Error::TooManyRequests(_) => "rate-limited",
            Error::UnsupportedMediaType | Error::UnsupportedType(_) => "unsupported-media-type",
            Error::Database(_) => "storage",
            Error::Internal(_) => "internal",
            Error::Crypto(_) => "undecryptable",
        }
    }

    /// Problem details for this error; internal details are logged, never returned.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        if status.is_server_error() {
            match self {
                Error::Database(e) => tracing::error!(error = %e, "database error"),
                Error::Internal(e) => tracing::error!(error = %e, "internal error"),
                Error::Crypto(e) => tracing::error!(error = %e, "decryption failed"),
                _ => {}
            }
        }
        Problem {
            kind: format!("urn:wardline:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    )
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut resp = (self.status(), Json(problem)).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Error::TooManyRequests(secs) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if matches!(self, Error::Unauthenticated) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            StatusCode::UNPROCESSABLE_ENTITY => Error::Invalid(r.body_text()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
            _ => Error::BadRequest(r.body_text()),
        }
    }
}

impl From<PathRejection> for Error {
    fn from(r: PathRejection) -> Self {
        Error::BadRequest(r.body_text())
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::BadRequest(r.body_text())
    }
}
