//! The one error type of the domain and the HTTP layer. Each variant has exactly one HTTP status
//! (see `http::error`), so handlers just use `?` and clients get RFC 9457 problem details.

/// What can go wrong while serving a request or applying a change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credentials, or credentials that are unknown, expired or revoked (401).
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated but not allowed to do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller is not a member of the room it addressed (403).
    #[error("you are not a member of this room")]
    NotMember,
    /// The addressed thing does not exist (404); the argument names its kind.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request could not be read: malformed JSON, bad query string, bad path (400).
    #[error("{0}")]
    BadRequest(String),
    /// The resource exists but not with this HTTP method (405).
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// The request was read but its content is not acceptable (422).
    #[error("{0}")]
    Invalid(String),
    /// The message looks like it contains sensitive data; resend with `confirm_dlp` (422).
    #[error("the message appears to contain: {}; check it, then resend with confirm_dlp = true to send it anyway", .0.join(", "))]
    DlpWarning(Vec<String>),
    /// The message contains data this room does not accept (422).
    #[error("the message was not sent: it appears to contain {}, which this room does not accept", .0.join(", "))]
    DlpBlocked(Vec<String>),
    /// The request conflicts with the current state, e.g. a reused idempotency key (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is not JSON (415).
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The request body is not of a type this endpoint reads (415); says which it reads.
    #[error("{0}")]
    UnsupportedType(&'static str),
    /// The request body is larger than the configured limit (413).
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    /// Too many failed attempts from this address; retry after this many seconds (429).
    #[error("too many failed authentication attempts; retry in {0} s")]
    TooManyRequests(u64),
    /// The database could not be reached or refused the operation (503: retry later).
    #[error("storage unavailable")]
    Database(#[from] sqlx::Error),
    /// Stored data could not be decrypted or its key is unavailable; fails closed (500) and says
    /// why, never returning unauthenticated data.
    #[error("stored data cannot be decrypted: {0}")]
    Crypto(String),
    /// A bug or an unexpected state; details go to the log only (500).
    #[error("internal error")]
    Internal(String),
}

impl From<crate::crypto::KeyringError> for Error {
    fn from(e: crate::crypto::KeyringError) -> Self {
        Error::Crypto(e.to_string())
    }
}

impl From<crate::crypto::CryptoError> for Error {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Error::Crypto(e.to_string())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when a database error is a unique-constraint violation, which some callers turn into
    /// an idempotent replay instead of a failure.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Database(e) => e.as_database_error().is_some_and(|d| d.is_unique_violation()),
            _ => false,
        }
    }
}
