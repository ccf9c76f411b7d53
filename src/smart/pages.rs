//! Why a launch or sign-in stopped, as a page a clinician can act on inside the EHR frame (no
//! chat content, no patient data: the refusal says the records disagree and whom to call) and as
//! a reason code for the audit trail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::matching::Refusal;

/// Everything that ends a launch or sign-in without a session.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A required query parameter is missing.
    #[error("the request lacks the {0} parameter")]
    Missing(&'static str),
    /// `iss` is not a configured EHR.
    #[error("the launching server is not trusted")]
    UntrustedIssuer,
    /// Standalone sign-in is not configured.
    #[error("single sign-on is not configured")]
    NoProvider,
    /// Discovery, code exchange or an EHR request failed.
    #[error("{0}")]
    Provider(String),
    /// No request in flight has this `state` (forged, expired, or used already).
    #[error("the sign-in request is unknown or was already used")]
    StateUnknown,
    /// The `state` belongs to another browser.
    #[error("the sign-in request was started in another browser")]
    StateNotBound,
    /// The `iss` on the callback is not the one the launch was for.
    #[error("the callback names a different EHR than the launch")]
    IssuerMismatch,
    /// The user or the EHR declined (`error=access_denied`...).
    #[error("authorisation was not granted ({0})")]
    Denied(String),
    /// The id_token did not validate.
    #[error("{0}")]
    IdToken(String),
    /// No Wardline person for `fhirUser` / the provider's subject, or not a clinician.
    #[error("the signed-in user has no Wardline account for this use")]
    UnknownUser,
    /// The token response gave no patient.
    #[error("the EHR gave no patient context")]
    NoPatientContext,
    /// The EHR's resources cannot be used (missing visit number...).
    #[error("{0}")]
    EhrData(String),
    /// The EHR's encounter is about another patient.
    #[error("the encounter in context does not belong to the patient in context")]
    EncounterNotOfPatient,
    /// The two-identifier match failed.
    #[error("the patient records disagree")]
    Mismatch(Refusal),
    /// The patient has no open encounter with a room.
    #[error("the patient has no encounter room in Wardline")]
    NoRoom,
    /// Not a member and joining on launch is off.
    #[error(
        "you are not on this patient's care team in Wardline; in an emergency, open the room and use break-glass"
    )]
    NotMember,
    /// Too many failed sign-ins from this address (SPEC §8 rate limits).
    #[error("too many failed sign-in attempts from this address; wait a minute")]
    TooMany,
    /// Storage failed.
    #[error("internal error")]
    Internal(#[from] crate::error::Error),
}

impl LaunchError {
    /// The audit reason code (metadata only).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing-parameter",
            Self::UntrustedIssuer => "untrusted-iss",
            Self::NoProvider => "no-provider",
            Self::Provider(_) => "provider-error",
            Self::StateUnknown => "state-unknown",
            Self::StateNotBound => "state-not-bound",
            Self::IssuerMismatch => "iss-mismatch",
            Self::Denied(_) => "denied",
            Self::IdToken(_) => "id-token-invalid",
            Self::UnknownUser => "unknown-user",
            Self::NoPatientContext => "no-patient-context",
            Self::EhrData(_) => "ehr-data",
            Self::EncounterNotOfPatient => "encounter-not-of-patient",
            Self::Mismatch(_) => "patient-match-failure",
            Self::NoRoom => "no-room",
            Self::NotMember => "not-member",
            Self::TooMany => "rate-limited",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status of the page.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing(_) | Self::StateUnknown | Self::StateNotBound | Self::IssuerMismatch => {
                StatusCode::BAD_REQUEST
            }
            Self::UntrustedIssuer | Self::Denied(_) | Self::UnknownUser | Self::NotMember => {
                StatusCode::FORBIDDEN
            }
            Self::Mismatch(_) | Self::EncounterNotOfPatient => StatusCode::FORBIDDEN,
            Self::IdToken(_) => StatusCode::UNAUTHORIZED,
            Self::NoProvider | Self::NoRoom | Self::NoPatientContext => StatusCode::NOT_FOUND,
            Self::Provider(_) | Self::EhrData(_) => StatusCode::BAD_GATEWAY,
            Self::TooMany => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page, with `contact` (whom to call) on a patient-match refusal.
    pub fn page(&self, contact: Option<&str>) -> Response {
        let (title, body) = match self {
            Self::Mismatch(_) | Self::EncounterNotOfPatient => (
                "Patient records do not match",
                format!(
                    "Wardline could not confirm that the patient open in the EHR is the same patient as in \
                     Wardline: at least two identifiers (MRN and date of birth) must agree. No conversation \
                     is shown. Please check the patient in the EHR and call {} to reconcile the records.",
                    contact.unwrap_or("the help desk")
                ),
            ),
            Self::Internal(_) => (
                "Wardline could not open",
                "Something went wrong on the server. Please try again; if it persists, call the help desk."
                    .to_string(),
            ),
            other => (
                "Wardline could not open",
                format!("{other}. Please launch Wardline again from the EHR."),
            ),
        };
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <meta name=\"viewport\" content=\"width=device-width\"><link rel=\"stylesheet\" href=\"/app/app.css\">\
             </head><body><main class=\"notice\" role=\"alert\"><h1>{title}</h1><p>{}</p>\
             <p class=\"reason\">Reason code: <code>{}</code></p></main></body></html>",
            escape(&body),
            self.code()
        );
        let mut resp = (self.status(), html).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        resp
    }
}

/// Whether this failure is a failed credential (a forged, replayed or foreign `state`, a bad
/// id_token, an unknown user, an untrusted `iss`) — what the per-address failure budget of SPEC §8
/// limits. A records mismatch or a missing room is not an attack and spends nothing, so a ward
/// behind one NAT address cannot lock itself out.
fn is_credential_failure(e: &LaunchError) -> bool {
    matches!(
        e,
        LaunchError::StateUnknown
            | LaunchError::StateNotBound
            | LaunchError::IssuerMismatch
            | LaunchError::IdToken(_)
            | LaunchError::UnknownUser
            | LaunchError::UntrustedIssuer
    )
}

/// After the failure is audited: spends it from the client address's budget (shared with
/// bearer-token failures) when it is a credential failure; once the budget is spent, the answer
/// is [`LaunchError::TooMany`] instead of the page.
pub fn spend_failure(state: &crate::http::AppState, source: Option<&str>, e: LaunchError) -> LaunchError {
    let ip: Option<std::net::IpAddr> = source.and_then(|s| s.parse().ok());
    match ip {
        Some(ip) if is_credential_failure(&e) && state.auth_failures.check_key(&ip).is_err() => {
            LaunchError::TooMany
        }
        _ => e,
    }
}

/// The page for a failed launch or sign-in, which also ends any earlier session in this browser
/// (a failed launch must not leave the previous patient's room open behind it).
pub fn failure_page(state: &crate::http::AppState, e: &LaunchError) -> Response {
    let secure = crate::auth::session::secure_cookies(&state.config);
    let mut resp = e.page(state.config.smart.contact.as_deref());
    resp.headers_mut().append(
        header::SET_COOKIE,
        crate::auth::session::clear_cookie(crate::auth::session::SESSION_COOKIE, secure),
    );
    resp
}

/// HTML text escaping for the few values a page repeats.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_pages_name_the_contact_and_escape() {
        let e = LaunchError::Mismatch(Refusal::BirthDateDiffers);
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert_eq!(e.code(), "patient-match-failure");
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(LaunchError::StateUnknown.status(), StatusCode::BAD_REQUEST);
    }
}
