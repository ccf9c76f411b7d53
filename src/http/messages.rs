//! Message endpoints: post, history, catch-up, read receipts, acknowledgements.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::Principal;
use crate::chat::model::{Ack, Message, Priority, Receipt};
use crate::chat::{Draft, Page, SendOutcome};
use crate::error::{Error, Result};

/// A message to post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// Text.
    pub body: String,
    /// Urgency; routine when absent.
    pub priority: Option<Priority>,
    /// Makes retries safe; the `Idempotency-Key` header may be used instead.
    pub idempotency_key: Option<String>,
    /// Send even though the DLP check warned (after the sender has reviewed the text).
    #[serde(default)]
    pub confirm_dlp: bool,
    /// Attachments you uploaded to this room, to carry with the message.
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

/// Posts a message. Returns 201 once durably stored; a retry with the same idempotency key and
/// content returns the original (200, `Idempotent-Replayed: true`); the same key with other
/// content is a 409.
#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/messages", tag = "messages", request_body = PostMessage,
    params(("room_id" = Uuid, Path, description = "Room id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Client key making retries safe")),
    responses((status = 201, body = Message), (status = 200, body = Message, description = "replayed"),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PostMessage>,
) -> Result<Response> {
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| Error::BadRequest("Idempotency-Key must be ASCII".into()))
        })
        .transpose()?;
    let idempotency_key = match (header_key, req.idempotency_key) {
        (Some(h), Some(b)) if h != b => {
            return Err(Error::BadRequest(
                "Idempotency-Key header and body field differ".into(),
            ));
        }
        (h, b) => h.or(b),
    };
    let draft = Draft {
        room_id,
        body: req.body,
        priority: req.priority.unwrap_or(Priority::Routine),
        idempotency_key,
        confirm_dlp: req.confirm_dlp,
        attachment_ids: req.attachment_ids,
    };
    let (message, outcome) = state.chat.send(&who, draft).await?;
    let mut resp = match outcome {
        SendOutcome::Created => (StatusCode::CREATED, Json(message)).into_response(),
        SendOutcome::Replayed => (StatusCode::OK, Json(message)).into_response(),
    };
    if outcome == SendOutcome::Replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// History paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Cursor from the previous page's `next_cursor`.
    pub before: Option<String>,
    /// Page size (default 50, capped by configuration).
    pub limit: Option<u32>,
}

/// A room's history, newest first, cursor-paginated (members only).
#[utoipa::path(get, path = "/api/v1/rooms/{room_id}/messages", tag = "messages",
    params(("room_id" = Uuid, Path, description = "Room id"), HistoryQuery),
    responses((status = 200, body = Page), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Page>> {
    Ok(Json(
        state
            .chat
            .history(&who, room_id, q.before.as_deref(), q.limit)
            .await?,
    ))
}

/// Catch-up query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    /// The last message id the client has seen; absent means from the beginning.
    pub after: Option<Uuid>,
    /// Maximum messages (default 100, capped by configuration).
    pub limit: Option<u32>,
}

/// Messages in all your rooms after the given one, oldest first: catch-up after being offline,
/// in the same order and with the same guarantees as the WebSocket resume.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(SyncQuery),
    responses((status = 200, body = [Message]), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn sync(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> Result<Json<Vec<Message>>> {
    let after = match q.after {
        Some(id) => state.chat.position_of(&who, id).await?,
        None => 0,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, state.config.limits.max_page);
    Ok(Json(state.chat.missed(&who, after, limit).await?))
}

/// Marks a message read; its sender gets a receipt.
#[utoipa::path(post, path = "/api/v1/messages/{message_id}/read", tag = "messages",
    params(("message_id" = Uuid, Path, description = "Message id")),
    responses((status = 200, body = Receipt), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Receipt>> {
    Ok(Json(state.chat.mark_read(&who, id).await?))
}

/// Acknowledges an urgent or stat message; the room is told.
#[utoipa::path(post, path = "/api/v1/messages/{message_id}/ack", tag = "messages",
    params(("message_id" = Uuid, Path, description = "Message id")),
    responses((status = 200, body = Ack), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Ack>> {
    Ok(Json(state.chat.acknowledge(&who, id).await?))
}

/// Delivery and read state for each other member.
#[utoipa::path(get, path = "/api/v1/messages/{message_id}/receipts", tag = "messages",
    params(("message_id" = Uuid, Path, description = "Message id")),
    responses((status = 200, body = [Receipt]), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn receipts(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Vec<Receipt>>> {
    Ok(Json(state.chat.receipts(&who, id).await?))
}
