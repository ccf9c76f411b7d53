//! Archiving, legal holds and on-demand retention runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::{ApiJson, ApiPath};
use crate::audit::sink::Record;
use crate::auth::{Principal, Role};
use crate::chat::retention::Hold;
use crate::error::{Error, Result};

/// Archives a room (admins): read-only for good, and retention starts.
#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/archive", tag = "retention",
    params(("room_id" = Uuid, Path, description = "Room id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn archive(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<StatusCode> {
    state.chat.archive(&who, room_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A hold to place: exactly one of `room_id` and `patient_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// Hold one room.
    pub room_id: Option<Uuid>,
    /// Hold every room of a patient.
    pub patient_id: Option<Uuid>,
    /// Case or matter reference.
    pub reference: String,
}

/// The hold created.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldCreated {
    /// Hold id.
    pub id: Uuid,
}

/// Places a legal hold (auditors and admins); held rooms are never purged.
#[utoipa::path(post, path = "/api/v1/legal-holds", tag = "retention", request_body = NewHold,
    responses((status = 201, body = HoldCreated), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)), security(("bearer" = [])))]
pub async fn place(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<NewHold>,
) -> Result<(StatusCode, Json<HoldCreated>)> {
    let (scope, id) = match (req.room_id, req.patient_id) {
        (Some(r), None) => ("room", r),
        (None, Some(p)) => ("patient", p),
        _ => {
            return Err(Error::Invalid(
                "give exactly one of room_id and patient_id".into(),
            ));
        }
    };
    let id = state.chat.place_hold(&who, scope, id, &req.reference).await?;
    Ok((StatusCode::CREATED, Json(HoldCreated { id })))
}

/// Lists legal holds (auditors and admins).
#[utoipa::path(get, path = "/api/v1/legal-holds", tag = "retention",
    responses((status = 200, body = [Hold]), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, who: Principal) -> Result<Json<Vec<Hold>>> {
    Ok(Json(state.chat.holds(&who).await?))
}

/// Releases a legal hold (auditors and admins).
#[utoipa::path(post, path = "/api/v1/legal-holds/{hold_id}/release", tag = "retention",
    params(("hold_id" = Uuid, Path, description = "Hold id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn release(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode> {
    state.chat.release_hold(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a retention run purged.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeReport {
    /// Rooms crypto-shredded and emptied.
    pub purged: Vec<Uuid>,
    /// Discharged encounters' rooms made read-only or archived on schedule.
    pub lifecycle: Vec<RoomMove>,
}

/// A room moved on by the discharge schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomMove {
    /// The room.
    pub room_id: Uuid,
    /// `read_only` or `archived`.
    pub status: &'static str,
}

/// Runs the room lifecycle and retention purge now (admins), as the periodic jobs do.
#[utoipa::path(post, path = "/api/v1/retention/run", tag = "retention",
    responses((status = 200, body = PurgeReport), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn run(State(state): State<AppState>, who: Principal) -> Result<Json<PurgeReport>> {
    let gate = state.audit.gate(
        &who,
        &[Role::Admin],
        "retention.run",
        ("room", None),
        Record::Refusals,
    );
    gate.await?;
    let advanced = state.chat.advance_room_lifecycle().await?;
    let purged = state.chat.purge_due(&state.config.retention).await?;
    Ok(Json(PurgeReport {
        purged,
        lifecycle: advanced
            .into_iter()
            .map(|(room_id, status)| RoomMove { room_id, status })
            .collect(),
    }))
}
