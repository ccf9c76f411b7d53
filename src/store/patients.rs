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

/// A patient as the ADT logic sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PatientRow {
    /// Id text.
    pub id: String,
    /// Family name.
    pub family_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// FHIR date.
    pub birth_date: Option<String>,
    /// FHIR gender.
    pub sex: Option<String>,
    /// Survivor, when merged away.
    pub merged_into: Option<String>,
    /// Event time of the demographics held (newest wins).
    pub demographics_at: Option<i64>,
}

/// The patient holding an identifier; on PostgreSQL its row stays locked until the transaction
/// ends (see `encounters::by_visit`).
pub async fn patient_by_identifier(
    conn: &mut AnyConnection,
    system: &str,
    value: &str,
) -> Result<Option<PatientRow>> {
    macro_rules! by_identifier {
        () => {
            "SELECT p.id, p.family_name, p.given_name, p.birth_date, p.sex, p.merged_into, p.demographics_at
             FROM patient_identifiers i JOIN patients p ON p.id = i.patient_id
             WHERE i.system = $1 AND i.value = $2"
        };
    }
    let sql = if super::on_postgres(conn) {
        concat!(by_identifier!(), " FOR UPDATE OF p")
    } else {
        by_identifier!()
    };
    Ok(sqlx::query_as(sql)
        .bind(system)
        .bind(value)
        .fetch_optional(conn)
        .await?)
}

/// Saves a patient's demographics: inserts a new patient (without identifiers) or replaces
/// name, birth date and sex, recording the event time they are from.
pub async fn save_patient(conn: &mut AnyConnection, p: &PatientRow, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO patients (id, family_name, given_name, birth_date, sex, demographics_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (id) DO UPDATE SET family_name = excluded.family_name, given_name = excluded.given_name,
             birth_date = excluded.birth_date, sex = excluded.sex, demographics_at = excluded.demographics_at,
             updated_at = excluded.updated_at",
    )
    .bind(&p.id)
    .bind(&p.family_name)
    .bind(&p.given_name)
    .bind(&p.birth_date)
    .bind(&p.sex)
    .bind(p.demographics_at)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a patient an identifier; false when the identifier already belongs to someone.
pub async fn add_identifier(
    conn: &mut AnyConnection,
    system: &str,
    value: &str,
    patient_id: &str,
) -> Result<bool> {
    let res = sqlx::query(
        "INSERT INTO patient_identifiers (system, value, patient_id) VALUES ($1, $2, $3)
         ON CONFLICT (system, value) DO NOTHING",
    )
    .bind(system)
    .bind(value)
    .bind(patient_id)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Moves every identifier and encounter of `prior` to `survivor` and marks `prior` merged;
/// returns what moved (identifiers as `system|value`, encounter ids) for the reversible record.
pub async fn merge_into(
    conn: &mut AnyConnection,
    prior: &str,
    survivor: &str,
    now_ms: i64,
) -> Result<(Vec<String>, Vec<String>)> {
    let ids: Vec<(String, String)> = sqlx::query_as(
        "SELECT system, value FROM patient_identifiers WHERE patient_id = $1 ORDER BY system, value",
    )
    .bind(prior)
    .fetch_all(&mut *conn)
    .await?;
    let encounters: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM encounters WHERE patient_id = $1 ORDER BY id")
            .bind(prior)
            .fetch_all(&mut *conn)
            .await?;
    sqlx::query("UPDATE patient_identifiers SET patient_id = $2 WHERE patient_id = $1")
        .bind(prior)
        .bind(survivor)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE encounters SET patient_id = $2, updated_at = $3 WHERE patient_id = $1")
        .bind(prior)
        .bind(survivor)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE patients SET merged_into = $2, updated_at = $3 WHERE id = $1")
        .bind(prior)
        .bind(survivor)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok((
        ids.into_iter().map(|(s, v)| format!("{s}|{v}")).collect(),
        encounters.into_iter().map(|(e,)| e).collect(),
    ))
}

/// Keeps what a merge moved, so an administrator can reverse it.
pub async fn record_merge(
    conn: &mut AnyConnection,
    id: &str,
    (survivor, prior): (&str, &str),
    (identifiers, encounters): (&[String], &[String]),
    inbox_id: Option<&str>,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO patient_merges (id, survivor_id, prior_id, identifiers, encounters, inbox_id, merged_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(survivor)
    .bind(prior)
    .bind(serde_json::to_string(identifiers).unwrap_or_default())
    .bind(serde_json::to_string(encounters).unwrap_or_default())
    .bind(inbox_id)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// A patient by id.
pub async fn patient_by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<PatientRow>> {
    Ok(sqlx::query_as(
        "SELECT id, family_name, given_name, birth_date, sex, merged_into, demographics_at FROM patients WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Whether an identifier belongs to this patient.
pub async fn identifier_is(
    conn: &mut AnyConnection,
    system: &str,
    value: &str,
    patient_id: &str,
) -> Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM patient_identifiers WHERE system = $1 AND value = $2 AND patient_id = $3",
    )
    .bind(system)
    .bind(value)
    .bind(patient_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}
