//! Encounters as the ADT feed keeps them: found by visit number, saved whole. The decision of
//! what changes is made by `hl7::adt` without I/O; this module only reads and writes rows.

use sqlx::{AnyConnection, FromRow};

use crate::error::Result;

/// An encounter row with everything the ADT logic reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct EncounterRow {
    /// Id text.
    pub id: String,
    /// Patient id text.
    pub patient_id: String,
    /// Visit number system.
    pub visit_system: String,
    /// Visit number.
    pub visit_number: String,
    /// `inpatient`, `outpatient`, `emergency`.
    pub class: String,
    /// `planned`, `in-progress`, `finished`, `cancelled`.
    pub status: String,
    /// Point of care.
    pub location_unit: Option<String>,
    /// Room.
    pub location_room: Option<String>,
    /// Bed.
    pub location_bed: Option<String>,
    /// Point of care before the last transfer (A12 reverts to it).
    pub prior_unit: Option<String>,
    /// Room before the last transfer.
    pub prior_room: Option<String>,
    /// Bed before the last transfer.
    pub prior_bed: Option<String>,
    /// Unix ms.
    pub admitted_at: Option<i64>,
    /// Unix ms.
    pub discharged_at: Option<i64>,
    /// Event time of the newest event applied (older events do not overwrite).
    pub last_event_at: Option<i64>,
    /// JSON object: reason → practitioner ids as the feed named them.
    pub practitioners: String,
}

macro_rules! columns {
    () => {
        "id, patient_id, visit_system, visit_number, class, status, location_unit, location_room, \
         location_bed, prior_unit, prior_room, prior_bed, admitted_at, discharged_at, last_event_at, practitioners"
    };
}

/// The encounter with a visit number. On PostgreSQL the row stays locked until the transaction
/// ends, so two nodes applying events to one encounter take turns instead of losing an update
/// (SQLite has one writer, which serialises them anyway).
pub async fn by_visit(conn: &mut AnyConnection, system: &str, number: &str) -> Result<Option<EncounterRow>> {
    let sql = if super::on_postgres(conn) {
        concat!(
            "SELECT ",
            columns!(),
            " FROM encounters WHERE visit_system = $1 AND visit_number = $2 FOR UPDATE"
        )
    } else {
        concat!(
            "SELECT ",
            columns!(),
            " FROM encounters WHERE visit_system = $1 AND visit_number = $2"
        )
    };
    Ok(sqlx::query_as(sql)
        .bind(system)
        .bind(number)
        .fetch_optional(conn)
        .await?)
}

/// Saves an encounter whole: inserts a new one, or replaces every mutable field of an existing
/// one (the patient changes only through a merge, the visit number never).
pub async fn save(conn: &mut AnyConnection, e: &EncounterRow, now_ms: i64) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO encounters (",
        columns!(),
        ", created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
         ON CONFLICT (id) DO UPDATE SET class = excluded.class, status = excluded.status,
             location_unit = excluded.location_unit, location_room = excluded.location_room,
             location_bed = excluded.location_bed, prior_unit = excluded.prior_unit,
             prior_room = excluded.prior_room, prior_bed = excluded.prior_bed,
             admitted_at = excluded.admitted_at, discharged_at = excluded.discharged_at,
             last_event_at = excluded.last_event_at, practitioners = excluded.practitioners,
             updated_at = excluded.updated_at"
    ))
    .bind(&e.id)
    .bind(&e.patient_id)
    .bind(&e.visit_system)
    .bind(&e.visit_number)
    .bind(&e.class)
    .bind(&e.status)
    .bind(&e.location_unit)
    .bind(&e.location_room)
    .bind(&e.location_bed)
    .bind(&e.prior_unit)
    .bind(&e.prior_room)
    .bind(&e.prior_bed)
    .bind(e.admitted_at)
    .bind(e.discharged_at)
    .bind(e.last_event_at)
    .bind(&e.practitioners)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}
