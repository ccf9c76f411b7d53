//! FHIR search over rooms (CareTeam), messages (Communication) and users (Practitioner); same
//! shape as `store::fhir`: a count and a page with one fixed `WHERE` of optional parameters.

use sqlx::{AnyConnection, FromRow};

use super::criteria::{Arg, Criteria, Page, count_and_page};
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

/// Rooms matching `q` (never direct conversations), with the total.
pub async fn teams(
    conn: &mut AnyConnection,
    q: &TeamQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<TeamRecord>)> {
    let (s1, s2) = match &q.statuses {
        Some((a, b)) => (Some(a.as_str()), Some(b.as_str())),
        None => (None, None),
    };
    let criteria = Criteria::new(" FROM rooms r LEFT JOIN encounters e ON e.id = r.encounter_id")
        .always("r.kind <> 'direct'")
        .when("r.id = ?", Arg::text(&q.id))
        .when("r.encounter_id = ?", Arg::text(&q.encounter_id))
        .when("e.patient_id = ?", Arg::text(&q.patient_id))
        .when_all(
            "(r.status = ?1 OR r.status = ?2)",
            &[Arg::Text(s1), Arg::Text(s2)],
        )
        .when(
            "EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = ?)",
            Arg::Text(viewer),
        );
    let select = "SELECT r.id, r.kind, r.name, r.status, r.encounter_id, e.patient_id, r.created_at";
    count_and_page(&mut *conn, (select, &criteria, "ORDER BY r.id"), page).await
}

/// `(user id, reason)` of a room's members, oldest first.
pub async fn team_members(conn: &mut AnyConnection, room_id: &str) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT user_id, reason FROM room_members WHERE room_id = $1 ORDER BY added_at, user_id",
    )
    .bind(room_id)
    .fetch_all(&mut *conn)
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

/// Messages matching `q`, newest first, with the total.
pub async fn messages(
    conn: &mut AnyConnection,
    q: &MessageQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<MessageWithContext>)> {
    let criteria = Criteria::new(
        " FROM messages m JOIN rooms r ON r.id = m.room_id LEFT JOIN encounters e ON e.id = r.encounter_id",
    )
    .always("m.redacted_at IS NULL")
    .when("m.id = ?", Arg::text(&q.id))
    .when("r.encounter_id = ?", Arg::text(&q.encounter_id))
    .when("e.patient_id = ?", Arg::text(&q.patient_id))
    .when("m.sender_id = ?", Arg::text(&q.sender_id))
    .when("m.room_id = ?", Arg::text(&q.room_id))
    .when("m.priority = ?", Arg::text(&q.priority))
    .when("m.created_at >= ?", Arg::Int(q.sent_from))
    .when("m.created_at <= ?", Arg::Int(q.sent_to))
    .when(
        "EXISTS (SELECT 1 FROM room_members rm WHERE rm.room_id = m.room_id AND rm.user_id = ?)",
        Arg::Text(viewer),
    );
    let select = "SELECT m.id, m.seq, m.room_id, m.sender_id, m.kind, m.priority, m.body, m.body_key_id, \
                  m.request_hash, m.created_at, r.encounter_id, e.patient_id";
    count_and_page(&mut *conn, (select, &criteria, "ORDER BY m.seq DESC"), page).await
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

/// People matching `q`, with the total.
pub async fn practitioners(
    conn: &mut AnyConnection,
    q: &PractitionerQuery,
    page: Page,
) -> Result<(i64, Vec<PractitionerRecord>)> {
    // A name matches at the start of the display name or of any later word in it.
    let name = q.name.as_deref().map(super::fhir::starts_with);
    let later_word = name.as_ref().map(|n| format!("% {n}"));
    let criteria = Criteria::new(" FROM users u")
        .always("u.kind = 'person'")
        .when("u.id = ?", Arg::text(&q.id))
        .when("u.npi = ?", Arg::text(&q.npi))
        .when("u.username = ?", Arg::text(&q.username))
        .when_all(
            "(LOWER(u.display_name) LIKE ?1 OR LOWER(u.display_name) LIKE ?2)",
            &[Arg::text(&name), Arg::text(&later_word)],
        );
    let select = "SELECT u.id, u.username, u.display_name, u.npi, u.active, u.created_at";
    count_and_page(&mut *conn, (select, &criteria, "ORDER BY u.username"), page).await
}
