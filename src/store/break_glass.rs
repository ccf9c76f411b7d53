//! Break-glass grants and their review.

use sqlx::{AnyConnection, FromRow};

use crate::error::Result;

/// A grant as stored (reason still sealed).
#[derive(Debug, Clone, FromRow)]
pub struct GrantRecord {
    /// Grant id.
    pub id: String,
    /// Room opened.
    pub room_id: String,
    /// Room name, for reviewers.
    pub room_name: String,
    /// Who broke the glass.
    pub user_id: String,
    /// Their display name.
    pub display_name: String,
    /// Sealed reason.
    pub reason: Vec<u8>,
    /// Key that sealed it.
    pub reason_key_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Reviewer.
    pub reviewed_by: Option<String>,
    /// Unix ms.
    pub reviewed_at: Option<i64>,
    /// `justified` or `unjustified`.
    pub review_outcome: Option<String>,
}

/// Stores a grant.
pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    room_id: &str,
    user_id: &str,
    reason: &[u8],
    reason_key_id: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO break_glass (id, room_id, user_id, reason, reason_key_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(room_id)
    .bind(user_id)
    .bind(reason)
    .bind(reason_key_id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Grants, oldest first; only unreviewed ones when `pending`.
pub async fn list(conn: &mut AnyConnection, pending: bool, limit: u32) -> Result<Vec<GrantRecord>> {
    Ok(sqlx::query_as(
        "SELECT g.id, g.room_id, r.name AS room_name, g.user_id, u.display_name, g.reason, g.reason_key_id,
                g.created_at, g.reviewed_by, g.reviewed_at, g.review_outcome
         FROM break_glass g JOIN rooms r ON r.id = g.room_id JOIN users u ON u.id = g.user_id
         WHERE ($1 = 0 OR g.reviewed_at IS NULL) ORDER BY g.created_at LIMIT $2",
    )
    .bind(i64::from(pending))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?)
}

/// Records a review; false when the grant does not exist or was already reviewed.
pub async fn review(
    conn: &mut AnyConnection,
    id: &str,
    reviewer: &str,
    outcome: &str,
    now_ms: i64,
) -> Result<bool> {
    let res = sqlx::query(
        "UPDATE break_glass SET reviewed_by = $2, reviewed_at = $3, review_outcome = $4
         WHERE id = $1 AND reviewed_at IS NULL",
    )
    .bind(id)
    .bind(reviewer)
    .bind(now_ms)
    .bind(outcome)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}
