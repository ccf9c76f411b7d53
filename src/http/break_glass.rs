//! Break-glass endpoints: request emergency access to a room; list and review grants (auditors).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::Principal;
use crate::chat::break_glass::{Grant, ReviewOutcome};
use crate::error::Result;

/// Why emergency access is needed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRequest {
    /// The reason, 10 to 1000 characters (reviewed later by compliance). A missing reason is
    /// refused like a short one, and the refusal audited.
    #[serde(default)]
    pub reason: String,
}

/// The grant created.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakGlassGranted {
    /// Grant id.
    pub grant_id: Uuid,
    /// The room now open to you.
    pub room_id: Uuid,
}

/// Emergency access to a patient or care-team room you are not a member of (clinicians only).
#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/break-glass", tag = "rooms", request_body = BreakGlassRequest,
    params(("room_id" = Uuid, Path, description = "Room id")),
    responses((status = 201, body = BreakGlassGranted), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn request(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<BreakGlassRequest>,
) -> Result<(StatusCode, Json<BreakGlassGranted>)> {
    let grant_id = state.chat.break_glass(&who, room_id, &req.reason).await?;
    Ok((StatusCode::CREATED, Json(BreakGlassGranted { grant_id, room_id })))
}

/// Which grants to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only unreviewed grants (default true).
    pub pending: Option<bool>,
}

/// Break-glass grants for review (auditors only).
#[utoipa::path(get, path = "/api/v1/break-glass", tag = "audit", params(ListQuery),
    responses((status = 200, body = [Grant]), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Grant>>> {
    Ok(Json(
        state
            .chat
            .break_glass_grants(&who, q.pending.unwrap_or(true))
            .await?,
    ))
}

/// A reviewer's finding.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// `justified` or `unjustified`.
    pub outcome: ReviewOutcome,
}

/// Records the review of a grant (auditors only).
#[utoipa::path(post, path = "/api/v1/break-glass/{grant_id}/review", tag = "audit", request_body = Review,
    params(("grant_id" = Uuid, Path, description = "Grant id")),
    responses((status = 204), (status = 403, body = Problem), (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn review(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(grant_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<Review>,
) -> Result<StatusCode> {
    state.chat.review_break_glass(&who, grant_id, req.outcome).await?;
    Ok(StatusCode::NO_CONTENT)
}
