//! The WebSocket endpoint (SPEC §6). A connection registers with the hub *before* replaying what
//! the client missed, then drops live message frames it already replayed: resume has no gaps
//! (the stream position is commit-ordered) and no duplicates.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tracing::Instrument;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AppState;
use super::extract::ApiQuery;
use crate::auth::Principal;
use crate::chat::Draft;
use crate::chat::frames::{ClientFrame, ServerFrame};
use crate::chat::model::Priority;
use crate::chat::receipts::Delivered;
use crate::error::{Error, Result};

/// Read and write buffer of each WebSocket, in bytes.
const WS_BUFFER_BYTES: usize = 4 * 1024;

/// Connection parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct WsQuery {
    /// Resume after this message id (the last one the client saw).
    pub after: Option<Uuid>,
    /// Bearer token, for browsers that cannot set headers on a WebSocket.
    pub access_token: Option<String>,
}

const REPLAY_BATCH: u32 = 200;

/// How often an open socket re-checks that its token is still valid.
const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Upgrades to a WebSocket. Authentication and the resume position are checked before the
/// upgrade, so failures are ordinary problem-details responses.
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime", params(WsQuery),
    responses((status = 101, description = "Switching protocols; JSON frames follow"),
              (status = 401, body = super::error::Problem), (status = 404, body = super::error::Problem)),
    security(("bearer" = [])))]
pub async fn upgrade(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    state.chat.require_clinical(&who, "ws.connect").await?;
    let after = match q.after {
        Some(id) => Some(state.chat.position_of(&who, id).await?),
        None => None,
    };
    let max = state.config.limits.max_ws_frame_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        // An idle socket should cost little (SPEC §10: ≤ 16 KB each for 10,000 of them). The
        // library's default buffers are 128 KiB each way, held for the socket's life; small ones
        // only mean a large frame arrives in several reads.
        .read_buffer_size(WS_BUFFER_BYTES)
        .write_buffer_size(WS_BUFFER_BYTES)
        .on_upgrade(move |socket| session(state, who, after, socket).instrument(tracing::info_span!("ws"))))
}

async fn session(state: AppState, who: Principal, after: Option<i64>, socket: WebSocket) {
    let hub = state.chat.bus.hub().clone();
    let (conn_id, mut rx) = hub.register(who.user_id);
    let (mut sink, mut stream) = socket.split();
    let replay_to = match replay(&state, &who, after, &mut sink).await {
        Ok(last) => last,
        Err(e) => {
            tracing::warn!(error = %e, "resume failed");
            hub.unregister(who.user_id, conn_id);
            return;
        }
    };

    // A revoked, expired or idle-timed-out token ends its sockets too (logout, session end).
    let mut recheck = tokio::time::interval(TOKEN_RECHECK);
    recheck.tick().await;
    let mut active = false;
    let close = loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break Some((1001, "server shutting down")),
            _ = recheck.tick() => {
                let now = state.clock.now().timestamp_millis();
                if std::mem::take(&mut active) {
                    // What the clinician does over the socket is use of the session.
                    touch(&state, who.token_id, now).await;
                }
                let live: crate::error::Result<bool> = async {
                    crate::store::sessions::token_live(&mut *state.store.read().await?, who.token_id, now).await
                }
                .await;
                match live {
                    Ok(false) => break Some((4401, "session ended; sign in again")),
                    Ok(true) => {}
                    Err(e) => tracing::warn!(error = %e, "token re-check failed"),
                }
            }
            out = rx.recv() => {
                let Some(out) = out else { break Some((1013, "connection too slow; reconnect and resume")) };
                if let Some(meta) = out.message {
                    if replay_to.is_some_and(|last| meta.seq <= last) {
                        continue;
                    }
                    if sink.send(text(&out.json)).await.is_err() { break None; }
                    if meta.sender_id != Some(who.user_id) {
                        let _ = state.receipts.send(Delivered { meta, user_id: who.user_id });
                    }
                } else if sink.send(text(&out.json)).await.is_err() {
                    break None;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(t))) => {
                    active = true;
                    if let Some(reply) = handle_client_frame(&state, &who, t.as_str()).await
                        && sink.send(text(&reply.to_json())).await.is_err() { break None; }
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    let reply = error_frame(&Error::BadRequest("binary frames are not supported; send JSON text".into()), None);
                    if sink.send(text(&reply.to_json())).await.is_err() { break None; }
                }
                Some(Ok(WsMessage::Close(_))) | None => break None,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::info!(error = %e, "websocket read failed");
                    break Some((1009, "frame too large or malformed"));
                }
            }
        }
    };
    hub.unregister(who.user_id, conn_id);
    if let Some((code, reason)) = close {
        let _ = sink
            .send(WsMessage::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
}

async fn touch(state: &AppState, token_id: Uuid, now: i64) {
    let result = async {
        let mut tx = state.store.begin().await?;
        crate::store::sessions::touch(&mut tx, token_id, now).await?;
        tx.commit().await?;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record session use");
    }
}

/// Sends every message after `after` and then `ready`; returns the last replayed position.
async fn replay<S>(state: &AppState, who: &Principal, after: Option<i64>, sink: &mut S) -> Result<Option<i64>>
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    let mut replayed = 0;
    let mut last = after;
    if let Some(mut pos) = after {
        loop {
            let batch = state.chat.missed(who, pos, REPLAY_BATCH).await?;
            for m in &batch {
                pos = m.seq;
                let out = crate::chat::bus::message_outbound(m);
                sink.send(text(&out.json))
                    .await
                    .map_err(|_| Error::Internal("socket closed".into()))?;
                if let Some(meta) = out.message.filter(|meta| meta.sender_id != Some(who.user_id)) {
                    let _ = state.receipts.send(Delivered {
                        meta,
                        user_id: who.user_id,
                    });
                }
                replayed += 1;
            }
            if batch.len() < REPLAY_BATCH as usize {
                break;
            }
        }
        last = Some(pos);
    }
    let ready = ServerFrame::Ready {
        replayed,
        last_seq: last.filter(|_| replayed > 0),
    };
    sink.send(text(&ready.to_json()))
        .await
        .map_err(|_| Error::Internal("socket closed".into()))?;
    Ok(last)
}

async fn handle_client_frame(state: &AppState, who: &Principal, text: &str) -> Option<ServerFrame> {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            return Some(error_frame(
                &Error::BadRequest(format!("unreadable frame: {e}")),
                None,
            ));
        }
    };
    match frame {
        ClientFrame::Send {
            room_id,
            body,
            priority,
            idempotency_key,
            confirm_dlp,
            attachment_ids,
        } => {
            let draft = Draft {
                room_id,
                body,
                priority: priority.unwrap_or(Priority::Routine),
                idempotency_key: Some(idempotency_key.clone()),
                confirm_dlp,
                attachment_ids,
            };
            Some(match state.chat.send(who, draft).await {
                Ok((m, outcome)) => ServerFrame::Sent {
                    idempotency_key,
                    message_id: m.id,
                    seq: m.seq,
                    replayed: outcome == crate::chat::SendOutcome::Replayed,
                },
                Err(e) => error_frame(&e, Some(idempotency_key)),
            })
        }
        ClientFrame::Read { message_id } => state
            .chat
            .mark_read(who, message_id)
            .await
            .err()
            .map(|e| error_frame(&e, None)),
        ClientFrame::Ack { message_id } => state
            .chat
            .acknowledge(who, message_id)
            .await
            .err()
            .map(|e| error_frame(&e, None)),
        ClientFrame::Typing { room_id } => state
            .chat
            .typing(who, room_id)
            .await
            .err()
            .map(|e| error_frame(&e, None)),
    }
}

fn error_frame(e: &Error, idempotency_key: Option<String>) -> ServerFrame {
    let p = e.problem();
    ServerFrame::Error {
        problem: p.kind,
        status: p.status,
        title: p.title,
        detail: p.detail,
        idempotency_key,
    }
}

fn text(json: &str) -> WsMessage {
    WsMessage::Text(Utf8Bytes::from(json))
}
