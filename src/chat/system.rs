//! System messages: what the server itself tells a room (admitted, transferred, discharged...).
//! They are written inside the transaction of the change they report, so a room never shows a
//! change that did not commit, and delivered like any message once that transaction commits.

use sqlx::AnyConnection;
use uuid::Uuid;

use super::bus::CHANNEL;
use super::history::body_aad;
use super::model::{Message, MessageKind, Priority, from_ms};
use super::service::Chat;
use crate::crypto::{self, datakeys::room_scope};
use crate::error::Result;
use crate::store::messages::{self, NewMessage};
use crate::store::rooms;

impl Chat {
    /// Stores a system message in `room_id` inside the caller's transaction. After commit, pass
    /// it to [`Chat::deliver_committed`]; after a rollback, to [`Chat::forget_uncommitted`].
    pub async fn post_system(
        &self,
        conn: &mut AnyConnection,
        room_id: Uuid,
        body: &str,
        now_ms: i64,
    ) -> Result<Message> {
        self.post_system_to(conn, room_id, None, body, now_ms).await
    }

    /// [`Chat::post_system`] for a caller that knows who the room's members are at this point
    /// of its transaction (the ADT feed has just synced them): delivery uses them instead of
    /// reading them again.
    pub async fn post_system_to(
        &self,
        conn: &mut AnyConnection,
        room_id: Uuid,
        members: Option<Vec<Uuid>>,
        body: &str,
        now_ms: i64,
    ) -> Result<Message> {
        let id = Uuid::now_v7();
        let (key_id, sealed) = self.seal_body(conn, room_id, id, body, now_ms).await?;
        let new = NewMessage {
            id,
            room_id,
            sender_id: None,
            kind: MessageKind::System.as_str(),
            priority: Priority::Routine.as_str(),
            body: &sealed,
            body_key_id: Some(&key_id),
            idempotency_key: None,
            request_hash: None,
            created_at: now_ms,
        };
        let seq = messages::insert_message(conn, &new).await?;
        let message = Message {
            id,
            seq,
            room_id,
            sender_id: None,
            kind: MessageKind::System,
            priority: Priority::Routine,
            body: body.to_string(),
            created_at: from_ms(now_ms),
            requires_ack: false,
            acks: Vec::new(),
            attachments: Vec::new(),
        };
        self.announce(conn, &message, members).await?;
        Ok(message)
    }

    /// Seals a message body under its room's data key (created inside the caller's transaction
    /// on first use), bound to the message and room ids; returns the key id and the ciphertext.
    pub(crate) async fn seal_body(
        &self,
        conn: &mut AnyConnection,
        room_id: Uuid,
        id: Uuid,
        body: &str,
        now_ms: i64,
    ) -> Result<(String, Vec<u8>)> {
        let (key_id, cipher) = self.keys.for_scope(conn, &room_scope(room_id), now_ms).await?;
        let sealed = crypto::seal(
            &cipher,
            body.as_bytes(),
            &body_aad(&id.to_string(), &room_id.to_string()),
        );
        Ok((key_id, sealed))
    }

    /// PostgreSQL: the notification commits with the message and every node delivers it in
    /// commit order; this node keeps the message ready for when it comes back. SQLite: with the
    /// members known, keeps the message for [`Chat::deliver_committed`]. Call inside the
    /// message's transaction.
    pub(crate) async fn announce(
        &self,
        conn: &mut AnyConnection,
        message: &Message,
        members: Option<Vec<Uuid>>,
    ) -> Result<()> {
        let payload = self.bus.message_notification(message.id);
        let members = match members {
            Some(known) => known,
            None if payload.is_some() => rooms::member_ids(&mut *conn, message.room_id).await?,
            None => return Ok(()),
        };
        if let Some(payload) = payload {
            crate::store::notify(&mut *conn, CHANNEL, &payload).await?;
        }
        self.bus.stage(message, members);
        Ok(())
    }

    /// Fans out system messages whose transaction committed (PostgreSQL delivers them through
    /// the commit-ordered notification instead).
    pub async fn deliver_committed(&self, messages: &[Message]) {
        for m in messages {
            self.fan_out(m).await;
        }
    }

    /// Drops what a rolled-back transaction staged: staged deliveries and possibly uncommitted
    /// data keys.
    pub fn forget_uncommitted(&self, messages: &[Message]) {
        for m in messages {
            self.bus.unstage(m.id);
        }
        self.keys.forget_uncommitted();
    }

    /// The lock that keeps SQLite deliveries in stream order; writers that post messages hold
    /// it from their transaction to their fan-out.
    pub async fn delivery_order(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.store.backend() {
            crate::store::Backend::Sqlite => Some(self.order.lock().await),
            crate::store::Backend::Postgres => None,
        }
    }
}
