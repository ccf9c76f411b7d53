//! FHIR search over rooms (CareTeam), messages (Communication) and users (Practitioner); same
//! shape as `store::fhir`: a count and a page with one fixed `WHERE` of optional parameters.

use sqlx::{AnyPool, FromRow};

use super::fhir::{Arg, Page, count_and_page};
use super::messages::MessageRecord;
use crate::error::Result;

/// CareTeam criteria.
#[derive(Debug, Default)]
pub struct TeamQuery {
    /// Room id.
    pub id: Option<String>,
    /// Encounter id.
    pub encounter_id: Option<String>,
    /// Patient id (through the room's encounter).
    pub patient_id: Option<String>,
    /// Room statuses (`active`; `read_only` and `archived` for FHIR `inactive`).
    pub statuses: Option<(String, String)>,
}

/// A room as a care team.
#[derive(Debug, Clone, FromRow)]
pub struct TeamRecord {
    /// Room id.
    pub id: String,
    /// Room kind.
    pub kind: String,
    /// Room name.
    pub name: String,
    /// Room status.
    pub status: String,
    /// Encounter of a patient-encounter room.
    pub encounter_id: Option<String>,
    /// That encounter's patient.
    pub patient_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

const TEAM_WHERE: &str = " FROM rooms r LEFT JOIN encounters e ON e.id = r.encounter_id
         WHERE r.kind <> 'direct' AND ($1 IS NULL OR r.id = $1) AND ($2 IS NULL OR r.encounter_id = $2)
           AND ($3 IS NULL OR e.patient_id = $3) AND ($4 IS NULL OR r.status = $4 OR r.status = $5)
           AND ($6 IS NULL OR EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = $6))";

/// Rooms matching `q` (never direct conversations), with the total.
pub async fn teams(
    pool: &AnyPool,
    q: &TeamQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<TeamRecord>)> {
    let (s1, s2) = match &q.statuses {
        Some((a, b)) => (Some(a.as_str()), Some(b.as_str())),
        None => (None, None),
    };
    let args = [
        Arg::text(&q.id),
        Arg::text(&q.encounter_id),
        Arg::text(&q.patient_id),
        Arg::Text(s1),
        Arg::Text(s2),
        Arg::Text(viewer),
    ];
    let select = "SELECT r.id, r.kind, r.name, r.status, r.encounter_id, e.patient_id, r.created_at";
    count_and_page(pool, (select, TEAM_WHERE, "ORDER BY r.id"), &args, page).await
}

/// `(user id, reason)` of a room's members, oldest first.
pub async fn team_members(pool: &AnyPool, room_id: &str) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, reason FROM room_members WHERE room_id = $1 ORDER BY added_at, user_id",
    )
    .bind(room_id)
    .fetch_all(pool)
    .await?)
}

/// Communication criteria.
#[derive(Debug, Default)]
pub struct MessageQuery {
    /// Message id.
    pub id: Option<String>,
    /// Encounter of the room.
    pub encounter_id: Option<String>,
    /// Patient of the room's encounter.
    pub patient_id: Option<String>,
    /// Author.
    pub sender_id: Option<String>,
    /// The room (recipient `CareTeam/{id}`).
    pub room_id: Option<String>,
    /// `routine`, `urgent`, `stat`.
    pub priority: Option<String>,
    /// Sent at or after (Unix ms).
    pub sent_from: Option<i64>,
    /// Sent at or before (Unix ms).
    pub sent_to: Option<i64>,
}

/// A message with the encounter and patient of its room.
#[derive(Debug, Clone, FromRow)]
pub struct MessageWithContext {
    /// The stored message.
    #[sqlx(flatten)]
    pub message: MessageRecord,
    /// Encounter of the room.
    pub encounter_id: Option<String>,
    /// Patient of that encounter.
    pub patient_id: Option<String>,
}

const MESSAGE_WHERE: &str = " FROM messages m JOIN rooms r ON r.id = m.room_id LEFT JOIN encounters e ON e.id = r.encounter_id
         WHERE m.redacted_at IS NULL AND ($1 IS NULL OR m.id = $1) AND ($2 IS NULL OR r.encounter_id = $2)
           AND ($3 IS NULL OR e.patient_id = $3) AND ($4 IS NULL OR m.sender_id = $4)
           AND ($5 IS NULL OR m.room_id = $5) AND ($6 IS NULL OR m.priority = $6)
           AND ($7 IS NULL OR m.created_at >= $7) AND ($8 IS NULL OR m.created_at <= $8)
           AND ($9 IS NULL OR EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = m.room_id AND rm.user_id = $9))";

/// Messages matching `q`, newest first, with the total.
pub async fn messages(
    pool: &AnyPool,
    q: &MessageQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<MessageWithContext>)> {
    let args = [
        Arg::text(&q.id),
        Arg::text(&q.encounter_id),
        Arg::text(&q.patient_id),
        Arg::text(&q.sender_id),
        Arg::text(&q.room_id),
        Arg::text(&q.priority),
        Arg::Int(q.sent_from),
        Arg::Int(q.sent_to),
        Arg::Text(viewer),
    ];
    let select = "SELECT m.id, m.seq, m.room_id, m.sender_id, m.kind, m.priority, m.body, m.body_key_id, \
                  m.request_hash, m.created_at, r.encounter_id, e.patient_id";
    count_and_page(pool, (select, MESSAGE_WHERE, "ORDER BY m.seq DESC"), &args, page).await
}

/// Practitioner criteria: people only (service accounts are not care-givers).
#[derive(Debug, Default)]
pub struct PractitionerQuery {
    /// User id.
    pub id: Option<String>,
    /// NPI.
    pub npi: Option<String>,
    /// Login name (identifier system `urn:wardline:username`).
    pub username: Option<String>,
    /// Start of the display name.
    pub name: Option<String>,
}

/// A person in the directory.
#[derive(Debug, Clone, FromRow)]
pub struct PractitionerRecord {
    /// User id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// NPI.
    pub npi: Option<String>,
    /// 1 when active.
    pub active: i64,
    /// Unix ms.
    pub created_at: i64,
}

const PRACTITIONER_WHERE: &str =
    " FROM users u WHERE u.kind = 'person' AND ($1 IS NULL OR u.id = $1) AND ($2 IS NULL OR u.npi = $2)
           AND ($3 IS NULL OR u.username = $3) AND ($4 IS NULL OR LOWER(u.display_name) LIKE $4
                OR LOWER(u.display_name) LIKE $5)";

/// People matching `q`, with the total.
pub async fn practitioners(
    pool: &AnyPool,
    q: &PractitionerQuery,
    page: Page,
) -> Result<(i64, Vec<PractitionerRecord>)> {
    // A name matches at the start of the display name or of any later word in it.
    let name = q.name.as_deref().map(super::fhir::starts_with);
    let later_word = name.as_ref().map(|n| format!("% {n}"));
    let args = [
        Arg::text(&q.id),
        Arg::text(&q.npi),
        Arg::text(&q.username),
        Arg::text(&name),
        Arg::text(&later_word),
    ];
    let select = "SELECT u.id, u.username, u.display_name, u.npi, u.active, u.created_at";
    count_and_page(
        pool,
        (select, PRACTITIONER_WHERE, "ORDER BY u.username"),
        &args,
        page,
    )
    .await
}
