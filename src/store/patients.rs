//! Patients and encounters: the minimum the chat core needs (patient rooms point at encounters).
//! The HL7 and FHIR issues grow this module with upserts, merges and searches.

use sqlx::{Any, AnyConnection, Executor};
use uuid::Uuid;

use crate::error::Result;

/// A patient to insert with one identifier (the MRN).
pub struct NewPatient<'a> {
    /// Id.
    pub id: Uuid,
    /// Family name.
    pub family: &'a str,
    /// Given name.
    pub given: &'a str,
    /// `YYYY-MM-DD`.
    pub birth_date: &'a str,
    /// Administrative sex code.
    pub sex: &'a str,
    /// Identifier system of the MRN.
    pub mrn_system: &'a str,
    /// The MRN.
    pub mrn: &'a str,
}

/// Inserts a patient and its MRN.
pub async fn insert_patient(conn: &mut AnyConnection, p: &NewPatient<'_>, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO patients (id, family_name, given_name, birth_date, sex, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(p.id.to_string())
    .bind(p.family)
    .bind(p.given)
    .bind(p.birth_date)
    .bind(p.sex)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query("INSERT INTO patient_identifiers (system, value, patient_id) VALUES ($1, $2, $3)")
        .bind(p.mrn_system)
        .bind(p.mrn)
        .bind(p.id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// An encounter to insert.
pub struct NewEncounter<'a> {
    /// Id.
    pub id: Uuid,
    /// Patient.
    pub patient_id: Uuid,
    /// Visit number system.
    pub visit_system: &'a str,
    /// Visit number (PV1-19).
    pub visit_number: &'a str,
    /// `inpatient`, `outpatient` or `emergency`.
    pub class: &'a str,
    /// FHIR encounter status.
    pub status: &'a str,
    /// Unit (PV1-3.1).
    pub unit: Option<&'a str>,
    /// Room (PV1-3.2).
    pub room: Option<&'a str>,
    /// Bed (PV1-3.3).
    pub bed: Option<&'a str>,
    /// Admission time, Unix ms.
    pub admitted_at: Option<i64>,
}

/// Inserts an encounter.
pub async fn insert_encounter(conn: &mut AnyConnection, e: &NewEncounter<'_>, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO encounters (id, patient_id, visit_system, visit_number, class, status,
                                 location_unit, location_room, location_bed, admitted_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(e.id.to_string())
    .bind(e.patient_id.to_string())
    .bind(e.visit_system)
    .bind(e.visit_number)
    .bind(e.class)
    .bind(e.status)
    .bind(e.unit)
    .bind(e.room)
    .bind(e.bed)
    .bind(e.admitted_at)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether an encounter exists (patient rooms may only point at real encounters).
pub async fn encounter_exists<'c, E: Executor<'c, Database = Any>>(ex: E, id: Uuid) -> Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM encounters WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(ex)
        .await?;
    Ok(row.is_some())
}
