//! Attachment upload (raw body, declared `Content-Type`) and download.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::extract::{ApiPath, ApiQuery};
use crate::auth::Principal;
use crate::chat::attachments::AttachmentInfo;
use crate::error::{Error, Result};

/// Upload parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's name as the user sees it.
    pub filename: String,
}

/// Uploads a file into a room (members only). The body is the file; `Content-Type` must be one
/// of image/png, image/jpeg, application/pdf, text/plain and match the content.
#[utoipa::path(post, path = "/api/v1/rooms/{room_id}/attachments", tag = "messages", params(
        ("room_id" = Uuid, Path, description = "Room id"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentInfo), (status = 403, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AttachmentInfo>)> {
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            let event = who
                .event("attachment.upload", "room", room_id)
                .failed()
                .with_detail(serde_json::json!({"refused": r.status().as_u16()}));
            state.audit.record(event).await?;
            return Err(if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest(r.body_text())
            });
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::UnsupportedMediaType)?;
    let info = state
        .chat
        .upload(&who, room_id, &q.filename, content_type, &body)
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Downloads an attachment (members of its room only; audited).
#[utoipa::path(get, path = "/api/v1/attachments/{attachment_id}", tag = "messages",
    params(("attachment_id" = Uuid, Path, description = "Attachment id")),
    responses((status = 200, description = "The file"), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn download(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response> {
    let (info, data) = state.chat.download(&who, id).await?;
    let mut resp = data.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&info.content_type).map_err(|e| Error::Internal(e.to_string()))?,
    );
    let encoded: String = info
        .filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("attachment; filename*=UTF-8''{encoded}");
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(|e| Error::Internal(e.to_string()))?,
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(resp)
}
