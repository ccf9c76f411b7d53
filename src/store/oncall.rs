//! Roster shifts and escalation timers.

use sqlx::{AnyConnection, FromRow};

use crate::error::Result;
use crate::oncall::roster::Held;

/// A shift to store.
pub struct NewShift<'a> {
    /// Id.
    pub id: String,
    /// Service.
    pub service: &'a str,
    /// Tier.
    pub tier: u32,
    /// Start (Unix ms).
    pub start_ms: i64,
    /// End (Unix ms).
    pub end_ms: i64,
    /// User id.
    pub user_id: String,
}

/// Replaces the shifts of `service` that start inside `[from, to)` with `shifts`; returns how
/// many were replaced.
pub async fn replace(
    conn: &mut AnyConnection,
    service: &str,
    (from, to): (i64, i64),
    shifts: &[NewShift<'_>],
    upload_id: &str,
    now_ms: i64,
) -> Result<u64> {
    let gone =
        sqlx::query("DELETE FROM oncall_shifts WHERE service = $1 AND starts_at >= $2 AND starts_at < $3")
            .bind(service)
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    for s in shifts {
        super::oncall_shifts::insert(conn, s, upload_id, now_ms).await?;
    }
    Ok(gone)
}

#[derive(FromRow)]
struct HeldRow {
    tier: i64,
    starts_at: i64,
    ends_at: i64,
    user_id: String,
}

/// The shifts of `service` covering `at_ms`.
pub async fn covering(conn: &mut AnyConnection, service: &str, at_ms: i64) -> Result<Vec<Held>> {
    let rows: Vec<HeldRow> = sqlx::query_as(
        "SELECT tier, starts_at, ends_at, user_id FROM oncall_shifts
         WHERE service = $1 AND starts_at <= $2 AND ends_at > $2",
    )
    .bind(service)
    .bind(at_ms)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Held {
            tier: u32::try_from(r.tier).unwrap_or(0),
            start_ms: r.starts_at,
            end_ms: r.ends_at,
            user_id: r.user_id,
        })
        .collect())
}

/// Whether any shift of `service` exists.
pub async fn service_exists(conn: &mut AnyConnection, service: &str) -> Result<bool> {
    let n: Option<String> = sqlx::query_scalar("SELECT id FROM oncall_shifts WHERE service = $1 LIMIT 1")
        .bind(service)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(n.is_some())
}

/// A user's notification address.
pub async fn email_of(conn: &mut AnyConnection, user_id: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten(),
    )
}

/// Sets a user's notification address.
pub async fn set_email(conn: &mut AnyConnection, user_id: &str, email: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
        .bind(email)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// An escalation timer.
#[derive(Clone, Debug, FromRow)]
pub struct Escalation {
    /// Id.
    pub id: String,
    /// The urgent message.
    pub message_id: String,
    /// Its room.
    pub room_id: String,
    /// The role's service.
    pub service: String,
    /// Tier last notified (tiers + 1 = fallback).
    pub tier: i64,
    /// Who was last notified.
    pub notified_id: Option<String>,
    /// When it times out (Unix ms).
    pub due_at: i64,
    /// `waiting`, `acknowledged`, `exhausted`.
    pub state: String,
    /// Steps taken.
    pub steps: i64,
}

macro_rules! escalation_columns {
    () => {
        "id, message_id, room_id, service, tier, notified_id, due_at, state, steps"
    };
}

/// Urgent and stat user messages in on-call role rooms since `since_ms` that have no timer yet.
pub async fn unadopted(
    conn: &mut AnyConnection,
    since_ms: i64,
) -> Result<Vec<(String, String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT m.id, m.room_id, r.role_key, m.created_at FROM messages m JOIN rooms r ON r.id = m.room_id
         WHERE r.kind = 'role' AND r.role_key LIKE 'oncall:%' AND m.kind = 'user'
           AND m.priority IN ('urgent', 'stat') AND m.created_at >= $1
           AND NOT EXISTS (SELECT 1 FROM oncall_escalations e WHERE e.message_id = m.id)
         ORDER BY m.seq",
    )
    .bind(since_ms)
    .fetch_all(&mut *conn)
    .await?)
}

/// Creates a timer unless the message has one (another node got there first); true if created.
pub async fn adopt(conn: &mut AnyConnection, e: &Escalation, now_ms: i64) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO oncall_escalations (id, message_id, room_id, service, tier, notified_id, due_at, state, steps, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(&e.id)
    .bind(&e.message_id)
    .bind(&e.room_id)
    .bind(&e.service)
    .bind(e.tier)
    .bind(&e.notified_id)
    .bind(e.due_at)
    .bind(&e.state)
    .bind(e.steps)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims waiting timers due by `now_ms` inside the caller's transaction; on PostgreSQL the rows
/// stay locked and other nodes skip them, so each step is taken once.
pub async fn claim_due(conn: &mut AnyConnection, now_ms: i64, limit: i64) -> Result<Vec<Escalation>> {
    let sql = if super::on_postgres(conn) {
        concat!(
            "SELECT ",
            escalation_columns!(),
            " FROM oncall_escalations WHERE state = 'waiting' AND due_at <= $1
                 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        )
    } else {
        concat!(
            "SELECT ",
            escalation_columns!(),
            " FROM oncall_escalations WHERE state = 'waiting' AND due_at <= $1
                 ORDER BY due_at LIMIT $2"
        )
    };
    Ok(sqlx::query_as(sql)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// Waiting timers of a room (a shift change hands them over).
pub async fn waiting_in_room(conn: &mut AnyConnection, room_id: &str) -> Result<Vec<Escalation>> {
    let sql = if super::on_postgres(conn) {
        concat!(
            "SELECT ",
            escalation_columns!(),
            " FROM oncall_escalations WHERE state = 'waiting' AND room_id = $1 FOR UPDATE SKIP LOCKED"
        )
    } else {
        concat!(
            "SELECT ",
            escalation_columns!(),
            " FROM oncall_escalations WHERE state = 'waiting' AND room_id = $1"
        )
    };
    Ok(sqlx::query_as(sql).bind(room_id).fetch_all(conn).await?)
}

/// Saves a timer's new position.
pub async fn save(conn: &mut AnyConnection, e: &Escalation, now_ms: i64) -> Result<()> {
    sqlx::query(
        "UPDATE oncall_escalations SET tier = $1, notified_id = $2, due_at = $3, state = $4, steps = $5, updated_at = $6
         WHERE id = $7",
    )
    .bind(e.tier)
    .bind(&e.notified_id)
    .bind(e.due_at)
    .bind(&e.state)
    .bind(e.steps)
    .bind(now_ms)
    .bind(&e.id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether anyone acknowledged the message.
pub async fn acknowledged(conn: &mut AnyConnection, message_id: &str) -> Result<bool> {
    let hit: Option<String> =
        sqlx::query_scalar("SELECT user_id FROM message_acks WHERE message_id = $1 LIMIT 1")
            .bind(message_id)
            .fetch_optional(conn)
            .await?;
    Ok(hit.is_some())
}

/// `(room id, service)` of every on-call role room.
pub async fn role_rooms(conn: &mut AnyConnection) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, role_key FROM rooms WHERE kind = 'role' AND role_key LIKE 'oncall:%' AND status = 'active'")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, key)| (id, key.trim_start_matches("oncall:").to_string()))
        .collect())
}

/// PractitionerRole (on-call shift) search criteria.
#[derive(Debug, Default)]
pub struct ShiftQuery {
    /// Shift id.
    pub id: Option<String>,
    /// Service.
    pub service: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// Only shifts covering this instant (Unix ms).
    pub covering: Option<i64>,
    /// Only shifts not covering this instant.
    pub not_covering: Option<i64>,
    /// The shift reaches at least this instant.
    pub from: Option<i64>,
    /// The shift starts by this instant.
    pub to: Option<i64>,
}

/// A shift as FHIR shows it.
#[derive(Debug, Clone, FromRow)]
pub struct ShiftRecord {
    /// Id.
    pub id: String,
    /// Service.
    pub service: String,
    /// Tier.
    pub tier: i64,
    /// Start (Unix ms).
    pub starts_at: i64,
    /// End (Unix ms).
    pub ends_at: i64,
    /// User id.
    pub user_id: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Shifts matching `q`, with the total.
pub async fn shifts(
    conn: &mut AnyConnection,
    q: &ShiftQuery,
    page: super::criteria::Page,
) -> Result<(i64, Vec<ShiftRecord>)> {
    use super::criteria::{Arg, Criteria};
    let criteria = Criteria::new(" FROM oncall_shifts s")
        .when("s.id = ?", Arg::text(&q.id))
        .when("s.service = ?", Arg::text(&q.service))
        .when("s.user_id = ?", Arg::text(&q.user_id))
        .when("(s.starts_at <= ? AND s.ends_at > ?)", Arg::Int(q.covering))
        .when("(s.starts_at > ? OR s.ends_at <= ?)", Arg::Int(q.not_covering))
        .when("s.ends_at > ?", Arg::Int(q.from))
        .when("s.starts_at <= ?", Arg::Int(q.to));
    let select = "SELECT s.id, s.service, s.tier, s.starts_at, s.ends_at, s.user_id, s.created_at";
    super::criteria::count_and_page(
        &mut *conn,
        (select, &criteria, "ORDER BY s.service, s.starts_at, s.tier, s.id"),
        page,
    )
    .await
}
