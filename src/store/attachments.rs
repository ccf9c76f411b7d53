//! Sealed attachments.

use sqlx::{Any, AnyConnection, Executor, FromRow};

use crate::error::Result;

/// An attachment's metadata as stored (file name still sealed).
#[derive(Debug, Clone, FromRow)]
pub struct AttachmentMeta {
    /// Id.
    pub id: String,
    /// Room.
    pub room_id: String,
    /// Who uploaded it.
    pub uploader_id: String,
    /// Message carrying it, once posted.
    pub message_id: Option<String>,
    /// Declared and verified MIME type.
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: i64,
    /// Sealed file name.
    pub filename: Vec<u8>,
    /// Sealing key.
    pub key_id: String,
}

/// An attachment with its sealed content.
#[derive(Debug, Clone, FromRow)]
pub struct AttachmentRecord {
    /// Metadata.
    #[sqlx(flatten)]
    pub meta: AttachmentMeta,
    /// Sealed content.
    pub data: Vec<u8>,
}

/// Stores a sealed attachment.
pub async fn insert(conn: &mut AnyConnection, a: &AttachmentRecord, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO attachments (id, room_id, uploader_id, content_type, size, filename, data, key_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&a.meta.id)
    .bind(&a.meta.room_id)
    .bind(&a.meta.uploader_id)
    .bind(&a.meta.content_type)
    .bind(a.meta.size)
    .bind(&a.meta.filename)
    .bind(&a.data)
    .bind(&a.meta.key_id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// One attachment with its content.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<AttachmentRecord>> {
    Ok(sqlx::query_as(
        "SELECT id, room_id, uploader_id, message_id, content_type, size, filename, data, key_id
         FROM attachments WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Links an unlinked attachment of `uploader` in `room` to a message; false if it is not such.
pub async fn link(
    conn: &mut AnyConnection,
    id: &str,
    room_id: &str,
    uploader_id: &str,
    message_id: &str,
) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE attachments SET message_id = $4
         WHERE id = $1 AND room_id = $2 AND uploader_id = $3 AND message_id IS NULL",
    )
    .bind(id)
    .bind(room_id)
    .bind(uploader_id)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Metadata (no content) of the attachments of messages in a room's stream range.
pub async fn for_messages<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    room_id: &str,
    min_seq: i64,
    max_seq: i64,
) -> Result<Vec<AttachmentMeta>> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.room_id, a.uploader_id, a.message_id, a.content_type, a.size, a.filename, a.key_id
         FROM attachments a JOIN messages m ON m.id = a.message_id
         WHERE m.room_id = $1 AND m.seq BETWEEN $2 AND $3 ORDER BY a.created_at",
    )
    .bind(room_id)
    .bind(min_seq)
    .bind(max_seq)
    .fetch_all(ex)
    .await?)
}
