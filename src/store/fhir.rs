//! The queries behind FHIR search: every search is one `COUNT(*)` (for `Bundle.total`) and one
//! page query with the same fixed `WHERE`, where an absent parameter is a NULL that matches
//! everything. `viewer` limits results to rooms the user belongs to (SMART `user/` scopes); it
//! is `None` for server-wide (`system/`) access.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, FromRow};

use crate::error::Result;

/// One page: offset and size.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Rows to skip.
    pub offset: u32,
    /// Rows to return.
    pub count: u32,
}

/// A value bound to a search query; `None` is the NULL that makes its condition match all.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    /// Text.
    Text(Option<&'a str>),
    /// Integer (Unix ms).
    Int(Option<i64>),
}

impl<'a> Arg<'a> {
    /// An optional text criterion.
    pub fn text(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}

/// One page of rows (`{select}{from_where} {order} LIMIT .. OFFSET ..`) and the total: a page
/// that is not full (and not past the end) tells the total itself; otherwise `SELECT COUNT(*)
/// {from_where}` counts. `args` are bound as `$1..$n` in both. The SQL pieces are constants of the
/// store modules; values are always bound, never spliced.
pub async fn count_and_page<T>(
    pool: &AnyPool,
    (select, from_where, order): (&str, &str, &str),
    args: &[Arg<'_>],
    page: Page,
) -> Result<(i64, Vec<T>)>
where
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let page_sql = format!(
        "{select}{from_where} {order} LIMIT ${} OFFSET ${}",
        args.len() + 1,
        args.len() + 2
    );
    let mut rows = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(page_sql));
    for a in args {
        rows = match *a {
            Arg::Text(v) => rows.bind(v),
            Arg::Int(v) => rows.bind(v),
        };
    }
    let rows = rows
        .bind(i64::from(page.count))
        .bind(i64::from(page.offset))
        .fetch_all(pool)
        .await?;
    let short = rows.len() < page.count as usize;
    if short && (!rows.is_empty() || page.offset == 0) {
        return Ok((i64::from(page.offset) + rows.len() as i64, rows));
    }
    let count_sql = format!("SELECT COUNT(*){from_where}");
    let mut count = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql));
    for a in args {
        count = match *a {
            Arg::Text(v) => count.bind(v),
            Arg::Int(v) => count.bind(v),
        };
    }
    let (total,) = count.fetch_one(pool).await?;
    Ok((total, rows))
}

/// Patient search criteria (SPEC §4); strings are matched case-insensitively from the start, as
/// FHIR string search does.
#[derive(Debug, Default)]
pub struct PatientQuery {
    /// Logical id.
    pub id: Option<String>,
    /// Identifier system, when given as `system|value`.
    pub identifier_system: Option<String>,
    /// Identifier value.
    pub identifier_value: Option<String>,
    /// Start of family or given name.
    pub name: Option<String>,
    /// Start of the family name.
    pub family: Option<String>,
    /// Start of the given name.
    pub given: Option<String>,
    /// Birth date range, inclusive `YYYY-MM-DD` bounds.
    pub birth_from: Option<String>,
    /// Upper bound.
    pub birth_to: Option<String>,
}

/// A patient as FHIR shows it.
#[derive(Debug, Clone, FromRow)]
pub struct PatientRecord {
    /// The ADT view of the row.
    #[sqlx(flatten)]
    pub row: super::patients::PatientRow,
    /// Unix ms.
    pub updated_at: i64,
}

const PATIENT_WHERE: &str = " FROM patients p WHERE ($1 IS NULL OR p.id = $1)
           AND ($2 IS NULL OR EXISTS (SELECT 1 FROM patient_identifiers i WHERE i.patient_id = p.id
                AND i.value = $2 AND ($3 IS NULL OR i.system = $3)))
           AND ($4 IS NULL OR LOWER(p.family_name) LIKE $4 OR LOWER(p.given_name) LIKE $4)
           AND ($5 IS NULL OR LOWER(p.family_name) LIKE $5)
           AND ($6 IS NULL OR LOWER(p.given_name) LIKE $6)
           AND ($7 IS NULL OR p.birth_date >= $7) AND ($8 IS NULL OR p.birth_date <= $8)
           AND ($9 IS NULL OR EXISTS (SELECT 1 FROM encounters e JOIN rooms r ON r.encounter_id = e.id
                JOIN room_members m ON m.room_id = r.id WHERE e.patient_id = p.id AND m.user_id = $9))";

/// `'abc'` → `'abc%'` lowercased with LIKE wildcards escaped away (they are rare in names and
/// would otherwise widen the match).
pub fn starts_with(s: &str) -> String {
    let cleaned: String = s
        .to_lowercase()
        .chars()
        .filter(|c| *c != '%' && *c != '_')
        .collect();
    format!("{cleaned}%")
}

/// Patients matching `q`, with the total.
pub async fn patients(
    pool: &AnyPool,
    q: &PatientQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<PatientRecord>)> {
    let name = q.name.as_deref().map(starts_with);
    let family = q.family.as_deref().map(starts_with);
    let given = q.given.as_deref().map(starts_with);
    let args = [
        Arg::text(&q.id),
        Arg::text(&q.identifier_value),
        Arg::text(&q.identifier_system),
        Arg::text(&name),
        Arg::text(&family),
        Arg::text(&given),
        Arg::text(&q.birth_from),
        Arg::text(&q.birth_to),
        Arg::Text(viewer),
    ];
    let select = "SELECT p.id, p.family_name, p.given_name, p.birth_date, p.sex, p.merged_into, \
                  p.demographics_at, p.updated_at";
    count_and_page(pool, (select, PATIENT_WHERE, "ORDER BY p.id"), &args, page).await
}

/// `(patient id, system, value)` of the given patients' identifiers.
pub async fn identifiers(pool: &AnyPool, patient_ids: &[String]) -> Result<Vec<(String, String, String)>> {
    if patient_ids.is_empty() {
        return Ok(Vec::new());
    }
    // One query per page; ids come from the database, and are bound, not spliced.
    let mut out = Vec::new();
    for id in patient_ids {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT patient_id, system, value FROM patient_identifiers WHERE patient_id = $1 ORDER BY system",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// Encounter search criteria.
#[derive(Debug, Default)]
pub struct EncounterQuery {
    /// Logical id.
    pub id: Option<String>,
    /// Visit number system.
    pub identifier_system: Option<String>,
    /// Visit number.
    pub identifier_value: Option<String>,
    /// Patient id.
    pub patient_id: Option<String>,
    /// FHIR status code.
    pub status: Option<String>,
    /// Point of care (unit).
    pub location: Option<String>,
    /// The encounter's period reaches at least this instant (Unix ms).
    pub date_from: Option<i64>,
    /// The encounter started by this instant (Unix ms).
    pub date_to: Option<i64>,
}

/// An encounter as FHIR shows it.
#[derive(Debug, Clone, FromRow)]
pub struct EncounterRecord {
    /// The ADT view of the row.
    #[sqlx(flatten)]
    pub row: super::encounters::EncounterRow,
    /// Unix ms.
    pub updated_at: i64,
}

const ENCOUNTER_WHERE: &str = " FROM encounters e WHERE ($1 IS NULL OR e.id = $1)
           AND ($2 IS NULL OR e.visit_number = $2) AND ($3 IS NULL OR e.visit_system = $3)
           AND ($4 IS NULL OR e.patient_id = $4) AND ($5 IS NULL OR e.status = $5)
           AND ($6 IS NULL OR e.location_unit = $6)
           AND ($7 IS NULL OR COALESCE(e.discharged_at, 9223372036854775807) >= $7)
           AND ($8 IS NULL OR COALESCE(e.admitted_at, e.created_at) <= $8)
           AND ($9 IS NULL OR EXISTS (SELECT 1 FROM rooms r JOIN room_members m ON m.room_id = r.id
                WHERE r.encounter_id = e.id AND m.user_id = $9))";

/// Encounters matching `q`, with the total.
pub async fn encounters(
    pool: &AnyPool,
    q: &EncounterQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<EncounterRecord>)> {
    let args = [
        Arg::text(&q.id),
        Arg::text(&q.identifier_value),
        Arg::text(&q.identifier_system),
        Arg::text(&q.patient_id),
        Arg::text(&q.status),
        Arg::text(&q.location),
        Arg::Int(q.date_from),
        Arg::Int(q.date_to),
        Arg::Text(viewer),
    ];
    let select = "SELECT e.id, e.patient_id, e.visit_system, e.visit_number, e.class, e.status, e.location_unit, \
                  e.location_room, e.location_bed, e.prior_unit, e.prior_room, e.prior_bed, e.admitted_at, \
                  e.discharged_at, e.last_event_at, e.practitioners, e.updated_at";
    count_and_page(pool, (select, ENCOUNTER_WHERE, "ORDER BY e.id"), &args, page).await
}

/// `(user id, reason)` of the practitioners of an encounter's room (attending, consulting,
/// admitting), oldest first.
pub async fn encounter_participants(pool: &AnyPool, encounter_id: &str) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT m.user_id, m.reason FROM rooms r JOIN room_members m ON m.room_id = r.id
         WHERE r.encounter_id = $1 AND m.reason IN ('attending', 'consulting', 'admitting')
         ORDER BY m.added_at, m.user_id",
    )
    .bind(encounter_id)
    .fetch_all(pool)
    .await?)
}

/// A patient's identifier in `system` (its MRN when `system` is the MRN system); after a merge
/// the survivor may hold several, and the first by value is given, always the same one.
pub async fn identifier_of(pool: &AnyPool, patient_id: &str, system: &str) -> Result<Option<String>> {
    Ok(identifiers_in(pool, patient_id, system).await?.into_iter().next())
}

/// All of a patient's identifiers in `system`, by value.
pub async fn identifiers_in(pool: &AnyPool, patient_id: &str, system: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT value FROM patient_identifiers WHERE patient_id = $1 AND system = $2 ORDER BY value",
    )
    .bind(patient_id)
    .bind(system)
    .fetch_all(pool)
    .await?)
}

/// The encounter with visit number `number` in `system`, if any.
pub async fn encounter_by_visit(
    pool: &AnyPool,
    system: &str,
    number: &str,
) -> Result<Option<EncounterRecord>> {
    let query = EncounterQuery {
        identifier_system: Some(system.to_string()),
        identifier_value: Some(number.to_string()),
        ..Default::default()
    };
    Ok(encounters(pool, &query, None, Page { offset: 0, count: 1 })
        .await?
        .1
        .into_iter()
        .next())
}

/// The patient holding identifier `value` in `system` (the MRN system: the MRN's holder).
pub async fn patient_by_identifier(
    pool: &AnyPool,
    system: &str,
    value: &str,
) -> Result<Option<PatientRecord>> {
    let query = PatientQuery {
        identifier_system: Some(system.to_string()),
        identifier_value: Some(value.to_string()),
        ..Default::default()
    };
    Ok(patients(pool, &query, None, Page { offset: 0, count: 1 })
        .await?
        .1
        .into_iter()
        .next())
}
