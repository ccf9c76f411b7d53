//! On-call over REST: roster upload (JSON or CSV), who is on call, messages to a role, and an
//! on-demand run of the escalation loop.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::Problem;
use super::extract::{ApiJson, ApiPath};
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::chat::model::{Message, Priority};
use crate::error::{Error, Result};
use crate::oncall::job::Tick;
use crate::oncall::roster;
use crate::oncall::service::{OnCallTier, Uploaded, row_errors};

/// Uploads shifts (schedulers): `text/csv` with the header `service,tier,start,end,practitioner_id`
/// or JSON `{"shifts": [...]}`. Per service, the shifts starting inside the upload's period are
/// replaced. Times without an offset are in `oncall.time_zone`. The report lists gaps (nobody on
/// tier 1) and overlaps; a bad row refuses the whole upload (422, rows named).
#[utoipa::path(post, path = "/api/v1/rosters", tag = "oncall", request_body(content = String, description = "CSV or JSON roster"),
    responses((status = 201, body = Uploaded), (status = 403, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Uploaded>)> {
    state
        .audit
        .gate(
            &who,
            &[Role::Scheduler],
            "roster.upload",
            ("roster", None),
            Record::Refusals,
        )
        .await?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let zone = state.oncall.zone();
    let text = std::str::from_utf8(&body).map_err(|_| Error::BadRequest("the roster is not UTF-8".into()))?;
    let parsed = if ctype.starts_with("text/csv") {
        roster::from_csv(text, zone)
    } else if ctype.starts_with("application/json") {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::BadRequest(format!("the roster is not JSON: {e}")))?;
        roster::from_json(&value, zone)
    } else {
        return Err(Error::UnsupportedType(
            "send the roster as text/csv or application/json",
        ));
    };
    let shifts = parsed.map_err(|rows| Error::Invalid(row_errors(&rows)))?;
    let uploaded = state.oncall.upload(&who, shifts).await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// When to look.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct At {
    /// An instant (RFC 3339) or a local time in `oncall.time_zone`; default now.
    pub at: Option<String>,
}

/// Who holds each tier of a service now (or `at`).
#[utoipa::path(get, path = "/api/v1/oncall/{service}", tag = "oncall", params(("service" = String, Path), At),
    responses((status = 200, body = [OnCallTier]), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn lookup(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(service): ApiPath<String>,
    Query(q): Query<At>,
) -> Result<Json<Vec<OnCallTier>>> {
    let at = match q.at {
        Some(t) => {
            roster::parse_time(&t, state.oncall.zone()).map_err(|e| Error::BadRequest(format!("at {e}")))?
        }
        None => state.clock.now(),
    };
    Ok(Json(state.oncall.on_call(&service, at).await?))
}

/// A message to a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMessage {
    /// Text.
    pub body: String,
    /// Urgency; urgent and stat escalate until acknowledged.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Client key making retries safe.
    pub idempotency_key: Option<String>,
}

/// Sends a message to whoever is on call for a service (clinicians): it lands in the role's
/// room `oncall:{service}`, which the sender joins.
#[utoipa::path(post, path = "/api/v1/oncall/{service}/messages", tag = "oncall", request_body = RoleMessage,
    params(("service" = String, Path)),
    responses((status = 201, body = Message), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn message(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(service): ApiPath<String>,
    ApiJson(m): ApiJson<RoleMessage>,
) -> Result<(StatusCode, Json<Message>)> {
    let priority = m.priority.unwrap_or(Priority::Routine);
    let sent = state
        .oncall
        .message_role(&who, &service, m.body, priority, m.idempotency_key)
        .await?;
    Ok((StatusCode::CREATED, Json(sent)))
}

/// Runs the escalation loop once now (admins; every node also runs it every `oncall.tick_ms`).
#[utoipa::path(post, path = "/api/v1/oncall/run", tag = "oncall",
    responses((status = 200, body = Tick), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn run(State(state): State<AppState>, who: Principal) -> Result<Json<Tick>> {
    state
        .audit
        .gate(
            &who,
            &[Role::Admin],
            "oncall.run",
            ("oncall", None),
            Record::Always,
        )
        .await?;
    Ok(Json(state.oncall.tick().await?))
}
