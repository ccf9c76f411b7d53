//! `POST /hl7`: the same ingest as MLLP for engines that speak HTTP. The body is one ER7
//! message; the response is its ACK (HTTP 200 whatever the MSA says, as the ACK is the answer).
//! Only integration accounts (and admins) may send.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};

const ER7: &str = "x-application/hl7-v2+er7; charset=utf-8";

/// Receives one HL7 v2 message and answers with its ACK.
pub async fn receive(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    state
        .audit
        .gate(
            &who,
            &[Role::Integration, Role::Admin],
            "hl7.receive",
            ("hl7_message", None),
            Record::Refusals,
        )
        .await?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if !matches!(
            essence,
            "x-application/hl7-v2+er7" | "application/hl7-v2" | "text/plain" | "application/octet-stream"
        ) {
            return Err(Error::UnsupportedType(
                "expected one HL7 v2 message with Content-Type: x-application/hl7-v2+er7",
            ));
        }
    }
    if body.is_empty() {
        return Err(Error::BadRequest(
            "the body must be one HL7 v2 message (ER7)".into(),
        ));
    }
    let ack = state
        .hl7
        .handle(&body, who.source.clone(), Some(who.user_id))
        .await;
    let mut resp = ack.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ER7));
    Ok(resp)
}
