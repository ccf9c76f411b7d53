//! Attachments: files shared in a room, sealed with the room's data key like messages. Only a
//! few safe, verifiable types are accepted (the content must match the declared type), sizes are
//! bounded, and every download is audited.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::Chat;
use crate::auth::Principal;
use crate::crypto::{
    self,
    datakeys::{DataKeys, room_scope},
};
use crate::error::{Error, Result};
use crate::store::attachments::{self, AttachmentMeta, AttachmentRecord};
use crate::store::{audit, parse_id};

/// What clients see of an attachment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// Id; download at `/api/v1/attachments/{id}`.
    pub id: Uuid,
    /// Original file name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
}

/// Recognises a file type from its content.
type Sniffer = fn(&[u8]) -> bool;

/// Accepted types and how their content is recognised.
const TYPES: &[(&str, Sniffer)] = &[
    ("image/png", |b| b.starts_with(b"\x89PNG\r\n\x1a\n")),
    ("image/jpeg", |b| b.starts_with(&[0xFF, 0xD8, 0xFF])),
    ("application/pdf", |b| b.starts_with(b"%PDF-")),
    ("text/plain", |b| std::str::from_utf8(b).is_ok()),
];

/// Checks the declared type is accepted and the content really is of that type.
pub fn check_type(content_type: &str, data: &[u8]) -> Result<&'static str> {
    let declared = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((name, matches)) = TYPES.iter().find(|(t, _)| *t == declared) else {
        return Err(Error::UnsupportedMediaType);
    };
    if matches(data) {
        Ok(name)
    } else {
        Err(Error::Invalid(format!("the content is not a valid {name} file")))
    }
}

fn name_aad(id: &str, room: &str) -> Vec<u8> {
    format!("wardline:attachment-name:{id}:{room}").into_bytes()
}

fn data_aad(id: &str, room: &str) -> Vec<u8> {
    format!("wardline:attachment:{id}:{room}").into_bytes()
}

/// Opens the sealed file name of stored attachments.
pub(crate) async fn infos(
    keys: &DataKeys,
    metas: Vec<AttachmentMeta>,
) -> Result<Vec<(Option<String>, AttachmentInfo)>> {
    let mut out = Vec::with_capacity(metas.len());
    for m in metas {
        let cipher = keys.by_id(&m.key_id).await?;
        let name = crypto::open(&cipher, &m.filename, &name_aad(&m.id, &m.room_id))?;
        let info = AttachmentInfo {
            id: parse_id(&m.id)?,
            filename: String::from_utf8(name).map_err(|_| Error::Crypto("file name is not UTF-8".into()))?,
            content_type: m.content_type,
            size: m.size,
        };
        out.push((m.message_id, info));
    }
    Ok(out)
}

impl Chat {
    /// Stores a sealed attachment in a room (members only); attach it to a message by id.
    pub async fn upload(
        &self,
        who: &Principal,
        room_id: Uuid,
        filename: &str,
        content_type: &str,
        data: &[u8],
    ) -> Result<AttachmentInfo> {
        self.require_member(who, room_id).await?;
        let filename = filename.trim();
        if filename.is_empty() || filename.chars().count() > 255 || filename.contains(['/', '\\', '\0']) {
            return Err(Error::Invalid(
                "filename must be 1 to 255 characters without path separators".into(),
            ));
        }
        if data.is_empty() {
            return Err(Error::Invalid("the attachment is empty".into()));
        }
        let content_type = check_type(content_type, data)?;
        let id = Uuid::now_v7().to_string();
        let room = room_id.to_string();
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.begin().await?;
        let pending = self.keys.pending();
        let (key_id, cipher) = self.keys.for_scope(&mut tx, &room_scope(room_id), now).await?;
        let rec = AttachmentRecord {
            meta: AttachmentMeta {
                id: id.clone(),
                room_id: room.clone(),
                uploader_id: who.user_id.to_string(),
                message_id: None,
                content_type: content_type.into(),
                size: data.len() as i64,
                filename: crypto::seal(&cipher, filename.as_bytes(), &name_aad(&id, &room)),
                key_id,
            },
            data: crypto::seal(&cipher, data, &data_aad(&id, &room)),
        };
        attachments::insert(&mut tx, &rec, now).await?;
        let event = who
            .event("attachment.upload", "attachment", &id)
            .with_detail(json!({"room_id": room_id, "content_type": content_type, "size": data.len()}));
        audit::append(&mut tx, &[event], now).await?;
        tx.commit().await?;
        pending.committed();
        Ok(AttachmentInfo {
            id: parse_id(&id)?,
            filename: filename.into(),
            content_type: content_type.into(),
            size: data.len() as i64,
        })
    }

    /// Opens an attachment for a member of its room; the download is audited first.
    pub async fn download(&self, who: &Principal, id: Uuid) -> Result<(AttachmentInfo, Vec<u8>)> {
        let rec = attachments::by_id(&mut *self.store.read().await?, &id.to_string())
            .await?
            .ok_or(Error::NotFound("attachment"))?;
        self.require_member(who, parse_id(&rec.meta.room_id)?).await?;
        let event = who
            .event("attachment.download", "attachment", id)
            .with_detail(json!({"room_id": rec.meta.room_id, "size": rec.meta.size}));
        self.audit.record(event).await?;
        let opened = async {
            let cipher = self.keys.by_id(&rec.meta.key_id).await?;
            let data = crypto::open(&cipher, &rec.data, &data_aad(&rec.meta.id, &rec.meta.room_id))?;
            let mut info = infos(&self.keys, vec![rec.meta]).await?;
            let (_, info) = info
                .pop()
                .ok_or_else(|| Error::Internal("attachment vanished".into()))?;
            Ok((info, data))
        }
        .await;
        self.integrity(who, "attachment", id, opened).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_types_whose_content_matches() {
        assert_eq!(
            check_type("image/png", b"\x89PNG\r\n\x1a\nrest").unwrap(),
            "image/png"
        );
        assert_eq!(
            check_type("Application/PDF; x=y", b"%PDF-1.7").unwrap(),
            "application/pdf"
        );
        assert_eq!(
            check_type("text/plain; charset=utf-8", "Grüße".as_bytes()).unwrap(),
            "text/plain"
        );
        assert!(matches!(
            check_type("image/png", b"%PDF-1.7"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            check_type("text/plain", &[0xff, 0xfe]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            check_type("application/x-msdownload", b"MZ"),
            Err(Error::UnsupportedMediaType)
        ));
        assert!(matches!(
            check_type("text/html", b"<script>"),
            Err(Error::UnsupportedMediaType)
        ));
    }
}
