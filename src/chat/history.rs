//! Reading: history pages, catch-up after being offline, receipts. Every read is gated by room
//! membership and recorded in the audit trail before anything is returned.

use uuid::Uuid;

use super::model::{Message, Priority, Receipt, from_ms};
use super::service::{Chat, Page};
use crate::auth::Principal;
use crate::crypto::{self, datakeys::DataKeys};
use crate::error::{Error, Result};
use crate::store::messages::{self, MessageRecord};
use crate::store::{Store, attachments, parse_id};

impl Chat {
    /// Opens one stored message with its acknowledgements and attachments.
    pub(crate) async fn decorate(&self, rec: MessageRecord) -> Result<Message> {
        decorate_one(&self.store, &self.keys, rec).await
    }

    /// A page of a room's history, newest first. `before` is the cursor from the previous page.
    pub async fn history(
        &self,
        who: &Principal,
        room_id: Uuid,
        before: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page> {
        self.require_member(who, room_id).await?;
        self.audit.record(who.event("room.view", "room", room_id)).await?;
        let before = before
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| Error::BadRequest("invalid cursor".into()))
            })
            .transpose()?;
        let limit = limit.unwrap_or(50).clamp(1, self.limits.max_page);
        let recs = messages::page(&mut *self.store.read().await?, room_id, before, limit + 1).await?;
        let more = recs.len() > limit as usize;
        let opened = async {
            let mut items = Vec::with_capacity(limit as usize);
            for rec in recs.into_iter().take(limit as usize) {
                items.push(open(&self.keys, rec).await?);
            }
            decorate_page(&self.store, &self.keys, room_id, &mut items).await?;
            Ok(items)
        }
        .await;
        let items = self.integrity(who, "room", room_id, opened).await?;
        let next_cursor = if more {
            items.last().map(|m| m.seq.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Messages after stream position `after_seq` in all of the user's rooms, oldest first.
    pub async fn missed(&self, who: &Principal, after_seq: i64, limit: u32) -> Result<Vec<Message>> {
        self.require_clinical(who, "message.catch_up").await?;
        let recs =
            messages::after_for_user(&mut *self.store.read().await?, who.user_id, after_seq, limit).await?;
        if !recs.is_empty() {
            let event = who
                .event("message.catch_up", "user", who.user_id)
                .with_detail(serde_json::json!({"after_seq": after_seq, "count": recs.len()}));
            self.audit.record(event).await?;
        }
        let opened = async {
            let mut out = Vec::with_capacity(recs.len());
            for rec in recs {
                out.push(self.decorate(rec).await?);
            }
            Ok(out)
        }
        .await;
        self.integrity(who, "user", who.user_id, opened).await
    }

    /// The stream position of a message the user can see, used to resume after it.
    pub async fn position_of(&self, who: &Principal, message_id: Uuid) -> Result<i64> {
        let rec = messages::by_id(&mut *self.store.read().await?, message_id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        self.require_member(who, parse_id(&rec.room_id)?).await?;
        Ok(rec.seq)
    }

    pub(crate) async fn visible_message(&self, who: &Principal, message_id: Uuid) -> Result<Message> {
        let rec = messages::by_id(&mut *self.store.read().await?, message_id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        self.require_member(who, parse_id(&rec.room_id)?).await?;
        let opened = self.decorate(rec).await;
        self.integrity(who, "message", message_id, opened).await
    }

    /// Delivery and read state of a message for every other member.
    pub async fn receipts(&self, who: &Principal, message_id: Uuid) -> Result<Vec<Receipt>> {
        let message = self.visible_message(who, message_id).await?;
        self.audit
            .record(who.event("message.receipts.view", "message", message_id))
            .await?;
        messages::receipts(
            &mut *self.store.read().await?,
            message_id,
            message.room_id,
            message.sender_id,
        )
        .await
    }
}

/// Loads one message with its acknowledgements (used by other nodes to fan out).
pub async fn load_message(store: &Store, keys: &DataKeys, id: Uuid) -> Result<Option<Message>> {
    let found = messages::by_id(&mut *store.read().await?, id).await?;
    match found {
        Some(rec) => decorate_one(store, keys, rec).await.map(Some),
        None => Ok(None),
    }
}

/// Opens one stored message and adds its acknowledgements and attachments.
async fn decorate_one(store: &Store, keys: &DataKeys, rec: MessageRecord) -> Result<Message> {
    let mut items = vec![open(keys, rec).await?];
    let room = items[0].room_id;
    decorate_page(store, keys, room, &mut items).await?;
    items
        .pop()
        .ok_or_else(|| Error::Internal("message vanished".into()))
}

/// Adds acknowledgements and attachments to messages of any rooms (two queries per room), for
/// readers such as the FHIR API that page across rooms.
pub async fn decorate(store: &Store, keys: &DataKeys, items: &mut [Message]) -> Result<()> {
    let mut rooms: Vec<Uuid> = items.iter().map(|m| m.room_id).collect();
    rooms.sort_unstable();
    rooms.dedup();
    for room in rooms {
        let mut of_room: Vec<Message> = items.iter().filter(|m| m.room_id == room).cloned().collect();
        decorate_page(store, keys, room, &mut of_room).await?;
        for done in of_room {
            if let Some(m) = items.iter_mut().find(|m| m.id == done.id) {
                *m = done;
            }
        }
    }
    Ok(())
}

/// Adds acknowledgements and attachments to messages of one room (two queries per page).
async fn decorate_page(store: &Store, keys: &DataKeys, room_id: Uuid, items: &mut [Message]) -> Result<()> {
    let (Some(min), Some(max)) = (
        items.iter().map(|m| m.seq).min(),
        items.iter().map(|m| m.seq).max(),
    ) else {
        return Ok(());
    };
    if items.iter().any(|m| m.requires_ack) {
        let acks = messages::acks_in_range(&mut *store.read().await?, room_id, min, max).await?;
        for (message_id, ack) in acks {
            if let Some(m) = items.iter_mut().find(|m| m.id == message_id) {
                m.acks.push(ack);
            }
        }
    }
    let metas = attachments::for_messages(&mut *store.read().await?, &room_id.to_string(), min, max).await?;
    for (message_id, info) in super::attachments::infos(keys, metas).await? {
        let message_id = message_id.as_deref().map(parse_id).transpose()?;
        if let Some(m) = items.iter_mut().find(|m| Some(m.id) == message_id) {
            m.attachments.push(info);
        }
    }
    Ok(())
}

/// Associated data for a message body: binds the ciphertext to its message and room, so a body
/// copied into another row does not open.
pub(crate) fn body_aad(message_id: &str, room_id: &str) -> Vec<u8> {
    format!("wardline:message-body:{message_id}:{room_id}").into_bytes()
}

/// Turns a stored row into a message, opening its sealed body. Anything that does not
/// authenticate (altered ciphertext, unknown or destroyed key, an unsealed body) fails closed.
pub(crate) async fn open(keys: &DataKeys, rec: MessageRecord) -> Result<Message> {
    let key_id = rec
        .body_key_id
        .as_deref()
        .ok_or_else(|| Error::Crypto(format!("message {} has no sealing key", rec.id)))?;
    let cipher = keys.by_id(key_id).await?;
    let plain = crypto::open(&cipher, &rec.body, &body_aad(&rec.id, &rec.room_id))?;
    let priority: Priority = rec.priority.parse()?;
    Ok(Message {
        id: parse_id(&rec.id)?,
        seq: rec.seq,
        room_id: parse_id(&rec.room_id)?,
        sender_id: rec.sender_id.as_deref().map(parse_id).transpose()?,
        kind: rec.kind.parse()?,
        priority,
        body: String::from_utf8(plain).map_err(|_| Error::Crypto("message body is not UTF-8".into()))?,
        created_at: from_ms(rec.created_at),
        requires_ack: priority.requires_ack(),
        acks: Vec::new(),
        attachments: Vec::new(),
    })
}
