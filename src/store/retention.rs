//! Retention: archiving, legal holds, and purging a room's content.

use sqlx::{AnyConnection, FromRow};

use crate::error::Result;

/// SQL fragment: the room `r` (joined to its encounter `e`) is under an active legal hold.
macro_rules! held {
    () => {
        "EXISTS (SELECT 1 FROM legal_holds h WHERE h.released_at IS NULL
                 AND ((h.scope_type = 'room' AND h.scope_id = r.id)
                   OR (h.scope_type = 'patient' AND h.scope_id = (SELECT e.patient_id FROM encounters e WHERE e.id = r.encounter_id))))"
    };
}

/// An archived room that is not held and not yet purged.
#[derive(Debug, FromRow)]
pub struct PurgeCandidate {
    /// Room id.
    pub id: String,
    /// Room kind (retention differs per kind).
    pub kind: String,
    /// When it was archived (Unix ms); retention runs from here.
    pub archived_at: i64,
}

/// Sets a room's status; archiving stamps the time retention starts from.
pub async fn set_status(conn: &mut AnyConnection, room_id: &str, status: &str, now_ms: i64) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE rooms SET status = $2,
                archived_at = CASE WHEN $2 = 'archived' THEN COALESCE(archived_at, $3) ELSE NULL END
         WHERE id = $1 AND purged_at IS NULL",
    )
    .bind(room_id)
    .bind(status)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Archived, unheld, unpurged rooms.
pub async fn candidates(conn: &mut AnyConnection) -> Result<Vec<PurgeCandidate>> {
    Ok(sqlx::query_as(concat!(
        "SELECT r.id, r.kind, r.archived_at FROM rooms r
         WHERE r.status = 'archived' AND r.archived_at IS NOT NULL AND r.purged_at IS NULL AND NOT ",
        held!()
    ))
    .fetch_all(&mut *conn)
    .await?)
}

/// Marks a room purged unless a hold appeared meanwhile; false means "skip it".
pub async fn claim_purge(conn: &mut AnyConnection, room_id: &str, now_ms: i64) -> Result<bool> {
    let res = sqlx::query(concat!(
        "UPDATE rooms SET purged_at = $2 WHERE id = $1 AND purged_at IS NULL AND status = 'archived' AND id IN
           (SELECT r.id FROM rooms r WHERE r.id = $1 AND NOT ",
        held!(),
        ")"
    ))
    .bind(room_id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Destroys the room's data key and deletes its content; returns the number of messages deleted.
pub async fn shred(conn: &mut AnyConnection, room_id: &str, scope: &str, now_ms: i64) -> Result<i64> {
    sqlx::query(
        "UPDATE data_keys SET wrapped = NULL, destroyed_at = $2 WHERE scope = $1 AND destroyed_at IS NULL",
    )
    .bind(scope)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    for sql in [
        "DELETE FROM message_receipts WHERE message_id IN (SELECT id FROM messages WHERE room_id = $1)",
        "DELETE FROM message_acks WHERE message_id IN (SELECT id FROM messages WHERE room_id = $1)",
        "DELETE FROM attachments WHERE room_id = $1",
        "DELETE FROM break_glass WHERE room_id = $1",
    ] {
        sqlx::query(sql).bind(room_id).execute(&mut *conn).await?;
    }
    let res = sqlx::query("DELETE FROM messages WHERE room_id = $1")
        .bind(room_id)
        .execute(conn)
        .await?;
    Ok(res.rows_affected() as i64)
}

/// A legal hold as listed.
#[derive(Debug, FromRow)]
pub struct HoldRecord {
    /// Id.
    pub id: String,
    /// `room` or `patient`.
    pub scope_type: String,
    /// Room or patient id.
    pub scope_id: String,
    /// Case or matter reference.
    pub reference: String,
    /// Who placed it.
    pub placed_by: String,
    /// When.
    pub placed_at: i64,
    /// When released, if it was.
    pub released_at: Option<i64>,
}

/// Places a hold.
pub async fn place_hold(conn: &mut AnyConnection, h: &HoldRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO legal_holds (id, scope_type, scope_id, reference, placed_by, placed_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&h.id)
    .bind(&h.scope_type)
    .bind(&h.scope_id)
    .bind(&h.reference)
    .bind(&h.placed_by)
    .bind(h.placed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Releases an active hold; false when there is none with this id.
pub async fn release_hold(conn: &mut AnyConnection, id: &str, by: &str, now_ms: i64) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE legal_holds SET released_by = $2, released_at = $3 WHERE id = $1 AND released_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// All holds, newest first.
pub async fn holds(conn: &mut AnyConnection) -> Result<Vec<HoldRecord>> {
    Ok(sqlx::query_as(
        "SELECT id, scope_type, scope_id, reference, placed_by, placed_at, released_at FROM legal_holds ORDER BY placed_at DESC",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Whether a patient exists (holds may only name real patients).
pub async fn patient_exists(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM patients WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}
