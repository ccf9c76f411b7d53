//! Messaging operations: send, history, receipts, acknowledgements. Every operation checks room
//! membership first; a send is confirmed only after its transaction committed.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::bus::{Bus, Target};
use super::dlp::{Scanner, Verdict};
use super::frames::ServerFrame;
use super::model::{Ack, Message, MessageKind, Priority, Receipt, RoomStatus, from_ms, to_ms};
use crate::audit::sink::AuditSink;
use crate::auth::Principal;
use crate::clock::Clock;
use crate::config::Limits;
use crate::crypto::datakeys::DataKeys;
use crate::error::{Error, Result};
use crate::store::messages::{self, MessageRecord, NewMessage};
use crate::store::{Backend, Store, attachments, audit, rooms};
use serde_json::json;

/// The chat core, shared by REST and WebSocket handlers.
pub struct Chat {
    pub(crate) store: Store,
    pub(crate) bus: Arc<Bus>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) audit: AuditSink,
    pub(crate) keys: Arc<DataKeys>,
    pub(crate) dlp: Scanner,
    pub(crate) order: tokio::sync::Mutex<()>,
}

/// A message as submitted by a client.
#[derive(Debug)]
pub struct Draft {
    /// Target room.
    pub room_id: Uuid,
    /// Text.
    pub body: String,
    /// Urgency.
    pub priority: Priority,
    /// Client key that makes retries safe.
    pub idempotency_key: Option<String>,
    /// The sender saw the DLP warning and sends anyway.
    pub confirm_dlp: bool,
    /// Attachments uploaded to the room by the sender, to carry with this message.
    pub attachment_ids: Vec<Uuid>,
}

/// A page of history, newest first, with the cursor for the next (older) page.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page {
    /// Messages, newest first.
    pub items: Vec<Message>,
    /// Pass as `before` to get older messages; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Whether a send stored something new or returned what an earlier identical request stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Newly stored.
    Created,
    /// Same idempotency key and content as an earlier send: nothing stored twice.
    Replayed,
}

impl Chat {
    /// A chat core over the given store and bus.
    pub fn new(
        store: Store,
        bus: Arc<Bus>,
        clock: Arc<dyn Clock>,
        limits: Limits,
        audit: AuditSink,
        keys: Arc<DataKeys>,
        dlp: Scanner,
    ) -> Self {
        Self {
            store,
            bus,
            clock,
            limits,
            audit,
            keys,
            dlp,
            order: tokio::sync::Mutex::new(()),
        }
    }

    fn now_ms(&self) -> i64 {
        to_ms(self.clock.now())
    }

    /// Validates and durably stores a message, then fans it out. Returns only after commit.
    pub async fn send(&self, who: &Principal, draft: Draft) -> Result<(Message, SendOutcome)> {
        let body = draft.body.trim_end();
        if body.trim().is_empty() {
            return Err(Error::Invalid("message body must not be empty".into()));
        }
        let chars = body.chars().count();
        if chars > self.limits.max_message_chars {
            return Err(Error::Invalid(format!(
                "message body has {chars} characters; the limit is {}",
                self.limits.max_message_chars
            )));
        }
        if let Some(key) = &draft.idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return Err(Error::Invalid(
                "idempotency key must be 1 to 200 characters".into(),
            ));
        }
        self.require_clinical(who, "message.send").await?;
        let request_hash = request_hash(draft.room_id, draft.priority, body, &draft.attachment_ids);
        let id = Uuid::now_v7();
        let now = self.now_ms();

        // On SQLite, sends are serialised from transaction to fan-out, so connections receive
        // messages in stream order (PostgreSQL orders them through commit-ordered notifications).
        let _in_order = match self.store.backend() {
            Backend::Sqlite => Some(self.order.lock().await),
            Backend::Postgres => None,
        };
        let mut tx = self.store.begin().await?;
        if let Some(key) = &draft.idempotency_key
            && let Some(existing) = messages::by_idempotency_key(&mut *tx, who.user_id, key).await?
        {
            drop(tx);
            return self.replay(existing, &request_hash).await;
        }
        let Some(room) = rooms::room_by_id(&mut *tx, draft.room_id).await? else {
            return Err(Error::NotFound("room"));
        };
        if !rooms::is_member(&mut *tx, room.id, who.user_id).await? {
            drop(tx);
            return Err(self.denied(who, "message.send", room.id).await);
        }
        if room.status != RoomStatus::Active {
            return Err(Error::Conflict(format!(
                "the room is {}; no new messages can be posted",
                room.status.as_str()
            )));
        }
        let (body, dlp) = match self.dlp.check(room.kind, body, draft.confirm_dlp) {
            Verdict::Pass => (body.to_string(), None),
            Verdict::Redacted(text, kinds) => (text, Some(json!({"action": "redacted", "kinds": kinds}))),
            Verdict::NeedsConfirmation(kinds) => {
                drop(tx);
                return Err(self
                    .dlp_refusal(who, room.id, "warned", Error::DlpWarning(kinds))
                    .await);
            }
            Verdict::Blocked(kinds) => {
                drop(tx);
                return Err(self
                    .dlp_refusal(who, room.id, "blocked", Error::DlpBlocked(kinds))
                    .await);
            }
        };
        let body = body.as_str();
        let pending = self.keys.pending();
        let (key_id, sealed) = self.seal_body(&mut tx, room.id, id, body, now).await?;
        let new = NewMessage {
            id,
            room_id: room.id,
            sender_id: Some(who.user_id),
            kind: MessageKind::User.as_str(),
            priority: draft.priority.as_str(),
            body: &sealed,
            body_key_id: Some(&key_id),
            idempotency_key: draft.idempotency_key.as_deref(),
            request_hash: Some(&request_hash),
            created_at: now,
        };
        let seq = match messages::insert_message(&mut tx, &new).await {
            Ok(seq) => seq,
            Err(e) => {
                drop(tx);
                // A concurrent request with the same key won the race: answer as a replay.
                let existing = match &draft.idempotency_key {
                    Some(key) if e.is_unique_violation() => {
                        messages::by_idempotency_key(&mut *self.store.read().await?, who.user_id, key).await?
                    }
                    _ => None,
                };
                if let Some(existing) = existing {
                    return self.replay(existing, &request_hash).await;
                }
                return Err(e);
            }
        };
        let event = who.event("message.send", "message", id).with_detail(match dlp {
            None => json!({"room_id": room.id, "priority": draft.priority.as_str()}),
            Some(d) => json!({"room_id": room.id, "priority": draft.priority.as_str(), "dlp": d}),
        });
        audit::append(&mut tx, &[event], now).await?;
        for a in &draft.attachment_ids {
            if !attachments::link(
                &mut tx,
                &a.to_string(),
                &room.id.to_string(),
                &who.user_id.to_string(),
                &id.to_string(),
            )
            .await?
            {
                return Err(Error::Invalid(format!(
                    "attachment {a} is not an unattached upload of yours in this room"
                )));
            }
        }
        let mut message = Message {
            id,
            seq,
            room_id: room.id,
            sender_id: Some(who.user_id),
            kind: MessageKind::User,
            priority: draft.priority,
            body: body.to_string(),
            created_at: from_ms(now),
            requires_ack: draft.priority.requires_ack(),
            acks: Vec::new(),
            attachments: Vec::new(),
        };
        if !draft.attachment_ids.is_empty() {
            let metas = attachments::for_messages(&mut *tx, &room.id.to_string(), seq, seq).await?;
            message.attachments = super::attachments::infos(&self.keys, metas)
                .await?
                .into_iter()
                .map(|(_, i)| i)
                .collect();
        }
        self.announce(&mut tx, &message, None).await?;
        if let Err(e) = tx.commit().await {
            self.bus.unstage(id);
            return Err(e.into());
        }
        pending.committed();
        metrics::counter!("wardline_messages_stored_total", "priority" => draft.priority.as_str())
            .increment(1);
        self.fan_out(&message).await;
        Ok((message, SendOutcome::Created))
    }

    async fn replay(&self, existing: MessageRecord, request_hash: &str) -> Result<(Message, SendOutcome)> {
        if existing.request_hash.as_deref() != Some(request_hash) {
            return Err(Error::Conflict(
                "this idempotency key was already used for a different message".into(),
            ));
        }
        let message = self.decorate(existing).await?;
        Ok((message, SendOutcome::Replayed))
    }

    pub(crate) async fn fan_out(&self, message: &Message) {
        if self.store.backend() == Backend::Postgres {
            return; // delivered by the notification listener, in commit order
        }
        if self.bus.deliver_staged(message.id) {
            return;
        }
        let found: Result<_> =
            async { rooms::member_ids(&mut *self.store.read().await?, message.room_id).await }.await;
        match found {
            Ok(members) => self.bus.publish_message(message, &members),
            Err(e) => tracing::warn!(error = %e, "stored message not fanned out; clients catch up on resume"),
        }
    }

    /// Marks a message read by `who` and tells its sender.
    pub async fn mark_read(&self, who: &Principal, message_id: Uuid) -> Result<Receipt> {
        let message = self.visible_message(who, message_id).await?;
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        let changed = messages::mark_read(&mut tx, message_id, who.user_id, now).await?;
        if changed {
            audit::append(&mut tx, &[who.event("message.read", "message", message_id)], now).await?;
        }
        tx.commit().await?;
        let receipt = Receipt {
            message_id,
            user_id: who.user_id,
            delivered_at: Some(from_ms(now)),
            read_at: Some(from_ms(now)),
        };
        if changed && let Some(sender) = message.sender_id.filter(|s| *s != who.user_id) {
            let frame = ServerFrame::Receipt {
                receipts: vec![receipt.clone()],
            };
            self.bus.publish(Target::Users(vec![sender]), &frame).await;
        }
        Ok(receipt)
    }

    /// Acknowledges an urgent or stat message (which also marks it read) and tells the room.
    pub async fn acknowledge(&self, who: &Principal, message_id: Uuid) -> Result<Ack> {
        let message = self.visible_message(who, message_id).await?;
        if !message.requires_ack {
            return Err(Error::Invalid(
                "only urgent and stat messages are acknowledged".into(),
            ));
        }
        if message.sender_id == Some(who.user_id) {
            return Err(Error::Invalid("you cannot acknowledge your own message".into()));
        }
        if let Some(prev) = message.acks.iter().find(|a| a.user_id == who.user_id) {
            return Ok(prev.clone());
        }
        let now = self.now_ms();
        let mut tx = self.store.begin().await?;
        messages::insert_ack(&mut tx, message_id, who.user_id, now).await?;
        messages::mark_read(&mut tx, message_id, who.user_id, now).await?;
        let event = who
            .event("message.ack", "message", message_id)
            .with_detail(json!({"room_id": message.room_id}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        let ack = Ack {
            user_id: who.user_id,
            at: from_ms(now),
        };
        let frame = ServerFrame::Ack {
            message_id,
            room_id: message.room_id,
            ack: ack.clone(),
        };
        self.bus.publish(Target::Room(message.room_id), &frame).await;
        Ok(ack)
    }

    /// Tells the room's members that `who` is typing.
    pub async fn typing(&self, who: &Principal, room_id: Uuid) -> Result<()> {
        self.require_member(who, room_id).await?;
        let frame = ServerFrame::Presence {
            room_id,
            user_id: who.user_id,
            state: "typing".into(),
        };
        self.bus.publish(Target::Room(room_id), &frame).await;
        Ok(())
    }
}

/// Identifies the content of a send, so a retry can be told from a reused key.
fn request_hash(room_id: Uuid, priority: Priority, body: &str, attachments: &[Uuid]) -> String {
    let mut h = Sha256::new();
    h.update(room_id.as_bytes());
    h.update(priority.as_str().as_bytes());
    h.update(body.as_bytes());
    for a in attachments {
        h.update(a.as_bytes());
    }
    hex::encode(h.finalize())
}
