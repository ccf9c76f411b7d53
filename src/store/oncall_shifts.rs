//! Single on-call shifts, for FHIR PractitionerRole create, update and delete (a whole period
//! is replaced by `oncall::replace`).

use sqlx::AnyConnection;

use super::oncall::NewShift;
use crate::error::Result;

/// Stores one shift.
pub async fn insert(conn: &mut AnyConnection, s: &NewShift<'_>, upload_id: &str, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO oncall_shifts (id, service, tier, starts_at, ends_at, user_id, upload_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id)
    .bind(s.service)
    .bind(i64::from(s.tier))
    .bind(s.start_ms)
    .bind(s.end_ms)
    .bind(&s.user_id)
    .bind(upload_id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes one shift; returns its service when it existed.
pub async fn delete(conn: &mut AnyConnection, id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("DELETE FROM oncall_shifts WHERE id = $1 RETURNING service")
            .bind(id)
            .fetch_optional(conn)
            .await?,
    )
}
