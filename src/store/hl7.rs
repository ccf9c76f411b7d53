//! The HL7 inbox: every accepted message, sealed, with its outcome and the ACK it was given.
//! The unique (sender application, facility, control id) key is what makes a resend a duplicate.

use sqlx::{Any, AnyConnection, Executor, FromRow};

use crate::error::Result;

/// One inbox row (the body is sealed with the inbox's stream key).
#[derive(Debug, Clone, Default, FromRow)]
pub struct InboxRecord {
    /// UUIDv7 text.
    pub id: String,
    /// MSH-3 as sent.
    pub sending_app: String,
    /// MSH-4 as sent.
    pub sending_facility: String,
    /// MSH-10 as sent.
    pub control_id: String,
    /// `ADT^A01`.
    pub message_type: String,
    /// Event time, Unix ms, when it could be read.
    pub event_at: Option<i64>,
    /// Unix ms.
    pub received_at: i64,
    /// Peer address.
    pub source: Option<String>,
    /// Sealed ER7 text.
    pub body: Vec<u8>,
    /// Key that sealed it.
    pub body_key_id: String,
    /// `applied`, `ignored`, `stale` or `error`.
    pub outcome: String,
    /// `AA`, `AE` (AR is never stored).
    pub ack_code: String,
    /// HL7 table 0357 code of an error.
    pub error_code: Option<String>,
    /// `PID-3`-style location of an error.
    pub error_location: Option<String>,
    /// Reason (names fields, never values).
    pub error_text: Option<String>,
    /// Mapping gaps met while applying (JSON array of text without patient data).
    pub warnings: Option<String>,
    /// Patient affected.
    pub patient_id: Option<String>,
    /// Encounter affected.
    pub encounter_id: Option<String>,
    /// Times applied (1 + replays).
    pub attempts: i64,
    /// Unix ms of the last attempt.
    pub processed_at: i64,
    /// The ACK sent the first time, returned again for duplicates.
    pub ack: String,
}

macro_rules! columns {
    () => {
        "id, sending_app, sending_facility, control_id, message_type, event_at, received_at, source, body, \
         body_key_id, outcome, ack_code, error_code, error_location, error_text, warnings, patient_id, \
         encounter_id, attempts, processed_at, ack"
    };
}

/// The ACK already given to a message with this key, if it was seen before.
pub async fn ack_for<'c, E: Executor<'c, Database = Any>>(
    ex: E,
    (app, facility, control_id): (&str, &str, &str),
) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT ack FROM hl7_inbox WHERE sending_app = $1 AND sending_facility = $2 AND control_id = $3",
    )
    .bind(app)
    .bind(facility)
    .bind(control_id)
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|(a,)| a))
}

/// Stores a processed message, or the new outcome of a replayed one (the original ACK is kept
/// for duplicates). A unique violation on insert means a concurrent duplicate won.
pub async fn save(conn: &mut AnyConnection, r: &InboxRecord) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO hl7_inbox (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
         ON CONFLICT (id) DO UPDATE SET outcome = excluded.outcome, error_code = excluded.error_code,
             error_location = excluded.error_location, error_text = excluded.error_text,
             warnings = excluded.warnings, patient_id = excluded.patient_id,
             encounter_id = excluded.encounter_id, attempts = excluded.attempts,
             processed_at = excluded.processed_at, event_at = excluded.event_at"
    ))
    .bind(&r.id)
    .bind(&r.sending_app)
    .bind(&r.sending_facility)
    .bind(&r.control_id)
    .bind(&r.message_type)
    .bind(r.event_at)
    .bind(r.received_at)
    .bind(&r.source)
    .bind(&r.body)
    .bind(&r.body_key_id)
    .bind(&r.outcome)
    .bind(&r.ack_code)
    .bind(&r.error_code)
    .bind(&r.error_location)
    .bind(&r.error_text)
    .bind(&r.warnings)
    .bind(&r.patient_id)
    .bind(&r.encounter_id)
    .bind(r.attempts)
    .bind(r.processed_at)
    .bind(&r.ack)
    .execute(conn)
    .await?;
    Ok(())
}

/// Inbox rows with an outcome (oldest first), bodies included, for listing and replay.
pub async fn with_outcome(conn: &mut AnyConnection, outcome: &str, limit: i64) -> Result<Vec<InboxRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM hl7_inbox WHERE outcome = $1 ORDER BY received_at, id LIMIT $2"
    ))
    .bind(outcome)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Applied rows that carry mapping warnings (oldest first), for the analyst's to-do list.
pub async fn with_warnings(conn: &mut AnyConnection, limit: i64) -> Result<Vec<InboxRecord>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM hl7_inbox WHERE warnings IS NOT NULL AND outcome <> 'error' ORDER BY received_at, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// One inbox row.
pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<InboxRecord>> {
    Ok(
        sqlx::query_as(concat!("SELECT ", columns!(), " FROM hl7_inbox WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}
