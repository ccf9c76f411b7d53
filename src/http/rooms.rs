//! Room endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::{ApiJson, ApiPath};
use crate::auth::Principal;
use crate::chat::model::{Member, Room};
use crate::chat::rooms::{NewRoomRequest, Opened};
use crate::error::Result;

/// Rooms you belong to, newest first.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms",
    responses((status = 200, body = [Room]), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, who: Principal) -> Result<Json<Vec<Room>>> {
    Ok(Json(state.chat.rooms(&who).await?))
}

/// Opens a room. A direct room with the same person is returned (200) instead of duplicated.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = NewRoomRequest,
    responses((status = 201, body = Room), (status = 200, body = Room, description = "existing direct room"),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<NewRoomRequest>,
) -> Result<(StatusCode, Json<Room>)> {
    let (room, opened) = state.chat.create_room(&who, req).await?;
    let status = if opened == Opened::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(room)))
}

/// One room (members only).
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}", tag = "rooms",
    params(("room_id" = Uuid, Path, description = "Room id")),
    responses((status = 200, body = Room), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Room>> {
    Ok(Json(state.chat.room(&who, room_id).await?))
}

/// Members of a room and why they are there (members only).
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/members", tag = "rooms",
    params(("room_id" = Uuid, Path, description = "Room id")),
    responses((status = 200, body = [Member]), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn members(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<Vec<Member>>> {
    Ok(Json(state.chat.members(&who, room_id).await?))
}

/// Whom to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user to add.
    pub user_id: Uuid,
}

/// Adds a member (201), or confirms an existing one (200).
#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/members", tag = "rooms", request_body = AddMember,
    params(("room_id" = Uuid, Path, description = "Room id")),
    responses((status = 201, body = [Member]), (status = 200, body = [Member]), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_member(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<Vec<Member>>)> {
    let added = state.chat.add_member(&who, room_id, req.user_id).await?;
    let members = state.chat.members(&who, room_id).await?;
    Ok((
        if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(members),
    ))
}

/// Removes a member (or leaves, when it is you).
#[utoipa::path(delete, path = "/api/v1/rooms/{room_id}/members/{user_id}", tag = "rooms",
    params(("room_id" = Uuid, Path, description = "Room id"), ("user_id" = Uuid, Path, description = "Member")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((room_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    if state.chat.remove_member(&who, room_id, user_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(crate::error::Error::NotFound("member"))
    }
}

/// The patient of a patient-encounter room, for the web app's banner (members only; audited).
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/patient", tag = "rooms",
    params(("room_id" = Uuid, Path, description = "Room id")),
    responses((status = 200, body = crate::chat::launch::PatientBanner), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn patient(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<crate::chat::launch::PatientBanner>> {
    let mrn_system = &state.config.hl7.mrn_system;
    Ok(Json(state.chat.patient_banner(&who, room_id, mrn_system).await?))
}
