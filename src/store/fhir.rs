//! The queries behind FHIR search: every search is one page query and, when the page does not
//! tell the total itself, one `COUNT(*)` (for `Bundle.total`) with the same [`Criteria`]: only
//! the parameters that were given. `viewer` limits results to rooms the user belongs to (SMART
//! `user/` scopes); it is `None` for server-wide (`system/`) access.

use sqlx::{AnyConnection, FromRow};

pub use super::criteria::{Arg, Criteria, Page, count_and_page};
use crate::error::Result;

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

impl PatientQuery {
    /// The id, when it is the only criterion: a read by id.
    pub fn id_only(&self) -> Option<&str> {
        let others = [
            &self.identifier_system,
            &self.identifier_value,
            &self.name,
            &self.family,
            &self.given,
            &self.birth_from,
            &self.birth_to,
        ];
        others
            .iter()
            .all(|o| o.is_none())
            .then_some(self.id.as_deref())
            .flatten()
    }
}

/// A patient as FHIR shows it.
#[derive(Debug, Clone, FromRow)]
pub struct PatientRecord {
    /// The ADT view of the row.
    #[sqlx(flatten)]
    pub row: super::patients::PatientRow,
    /// Unix ms.
    pub updated_at: i64,
    /// Its identifiers as a JSON array of `[system, value]`, ordered by system: read in the same
    /// query as the patient, so a read by id is one round trip.
    pub identifiers: String,
}

impl PatientRecord {
    /// `(system, value)` of each identifier.
    pub fn identifier_pairs(&self) -> Result<Vec<(String, String)>> {
        serde_json::from_str(&self.identifiers)
            .map_err(|e| crate::error::Error::Internal(format!("patient identifiers column: {e}")))
    }
}

/// The patient's identifiers as `[[system, value], …]` JSON text; the aggregate is spelled
/// differently by the two engines.
fn identifiers_column(conn: &mut AnyConnection) -> &'static str {
    if super::on_postgres(conn) {
        "(SELECT COALESCE(json_agg(json_build_array(i.system, i.value) ORDER BY i.system, i.value), '[]')::text \
         FROM patient_identifiers i WHERE i.patient_id = p.id) AS identifiers"
    } else {
        SQLITE_IDENTIFIERS
    }
}

const SQLITE_IDENTIFIERS: &str = "(SELECT json_group_array(json_array(i.system, i.value) ORDER BY i.system, i.value) \
     FROM patient_identifiers i WHERE i.patient_id = p.id) AS identifiers";

const PATIENT_COLUMNS: &str =
    "p.id, p.family_name, p.given_name, p.birth_date, p.sex, p.merged_into, p.demographics_at, p.updated_at";

/// Who may see a patient under a `user/` grant: a member of a room of one of its encounters.
const VISIBLE_TO: &str = "EXISTS (SELECT 1 FROM encounters e JOIN rooms r ON r.encounter_id = e.id \
     JOIN room_members m ON m.room_id = r.id WHERE e.patient_id = p.id AND m.user_id = ?)";

/// [`patient_inline`]'s query: [`patients`]'s for an id alone, on SQLite.
static PATIENT_BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {PATIENT_COLUMNS}, {SQLITE_IDENTIFIERS} FROM patients p \
         WHERE p.id = ?1 AND (?2 IS NULL OR {})",
        VISIBLE_TO.replace('?', "?2")
    )
});

/// The patient `id` as [`patients`] would find it (visible to `viewer`), read on the caller's
/// thread: the read by id every FHIR client makes most, on SQLite ([`super::inline`]).
pub fn patient_inline(
    inline: &super::inline::Inline,
    id: &str,
    viewer: Option<&str>,
) -> Result<Option<PatientRecord>> {
    use rusqlite::OptionalExtension;
    inline.run(|conn| {
        let mut statement = conn.prepare_cached(&PATIENT_BY_ID)?;
        statement
            .query_row(rusqlite::params![id, viewer], |r| {
                Ok(PatientRecord {
                    row: super::patients::PatientRow {
                        id: r.get(0)?,
                        family_name: r.get(1)?,
                        given_name: r.get(2)?,
                        birth_date: r.get(3)?,
                        sex: r.get(4)?,
                        merged_into: r.get(5)?,
                        demographics_at: r.get(6)?,
                    },
                    updated_at: r.get(7)?,
                    identifiers: r.get(8)?,
                })
            })
            .optional()
    })
}

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
    conn: &mut AnyConnection,
    q: &PatientQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<PatientRecord>)> {
    let name = q.name.as_deref().map(starts_with);
    let family = q.family.as_deref().map(starts_with);
    let given = q.given.as_deref().map(starts_with);
    // By value, and by system too when one was given.
    let (identifier, identifier_args) = match q.identifier_system.as_deref() {
        Some(system) => (
            "EXISTS (SELECT 1 FROM patient_identifiers i WHERE i.patient_id = p.id \
             AND i.value = ?1 AND i.system = ?2)",
            vec![Arg::text(&q.identifier_value), Arg::Text(Some(system))],
        ),
        None => (
            "EXISTS (SELECT 1 FROM patient_identifiers i WHERE i.patient_id = p.id AND i.value = ?1)",
            vec![Arg::text(&q.identifier_value)],
        ),
    };
    let criteria = Criteria::new(" FROM patients p")
        .when("p.id = ?", Arg::text(&q.id))
        .when_all(identifier, &identifier_args)
        .when(
            "(LOWER(p.family_name) LIKE ? OR LOWER(p.given_name) LIKE ?)",
            Arg::text(&name),
        )
        .when("LOWER(p.family_name) LIKE ?", Arg::text(&family))
        .when("LOWER(p.given_name) LIKE ?", Arg::text(&given))
        .when("p.birth_date >= ?", Arg::text(&q.birth_from))
        .when("p.birth_date <= ?", Arg::text(&q.birth_to))
        .when(VISIBLE_TO, Arg::Text(viewer));
    let select = format!("SELECT {PATIENT_COLUMNS}, {}", identifiers_column(&mut *conn));
    count_and_page(&mut *conn, (&select, &criteria, "ORDER BY p.id"), page).await
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

/// Encounters matching `q`, with the total.
pub async fn encounters(
    conn: &mut AnyConnection,
    q: &EncounterQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<EncounterRecord>)> {
    let criteria = Criteria::new(" FROM encounters e")
        .when("e.id = ?", Arg::text(&q.id))
        .when("e.visit_number = ?", Arg::text(&q.identifier_value))
        .when("e.visit_system = ?", Arg::text(&q.identifier_system))
        .when("e.patient_id = ?", Arg::text(&q.patient_id))
        .when("e.status = ?", Arg::text(&q.status))
        .when("e.location_unit = ?", Arg::text(&q.location))
        .when(
            "COALESCE(e.discharged_at, 9223372036854775807) >= ?",
            Arg::Int(q.date_from),
        )
        .when("COALESCE(e.admitted_at, e.created_at) <= ?", Arg::Int(q.date_to))
        .when(
            "EXISTS (SELECT 1 FROM rooms r JOIN room_members m ON m.room_id = r.id \
             WHERE r.encounter_id = e.id AND m.user_id = ?)",
            Arg::Text(viewer),
        );
    let select = "SELECT e.id, e.patient_id, e.visit_system, e.visit_number, e.class, e.status, e.location_unit, \
                  e.location_room, e.location_bed, e.prior_unit, e.prior_room, e.prior_bed, e.admitted_at, \
                  e.discharged_at, e.last_event_at, e.practitioners, e.updated_at";
    count_and_page(&mut *conn, (select, &criteria, "ORDER BY e.id"), page).await
}

/// `(user id, reason)` of the practitioners of an encounter's room (attending, consulting,
/// admitting), oldest first.
pub async fn encounter_participants(
    conn: &mut AnyConnection,
    encounter_id: &str,
) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT m.user_id, m.reason FROM rooms r JOIN room_members m ON m.room_id = r.id
         WHERE r.encounter_id = $1 AND m.reason IN ('attending', 'consulting', 'admitting')
         ORDER BY m.added_at, m.user_id",
    )
    .bind(encounter_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// A patient's identifier in `system` (its MRN when `system` is the MRN system); after a merge
/// the survivor may hold several, and the first by value is given, always the same one.
pub async fn identifier_of(
    conn: &mut AnyConnection,
    patient_id: &str,
    system: &str,
) -> Result<Option<String>> {
    Ok(identifiers_in(&mut *conn, patient_id, system)
        .await?
        .into_iter()
        .next())
}

/// All of a patient's identifiers in `system`, by value.
pub async fn identifiers_in(conn: &mut AnyConnection, patient_id: &str, system: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT value FROM patient_identifiers WHERE patient_id = $1 AND system = $2 ORDER BY value",
    )
    .bind(patient_id)
    .bind(system)
    .fetch_all(&mut *conn)
    .await?)
}

/// The encounter with visit number `number` in `system`, if any.
pub async fn encounter_by_visit(
    conn: &mut AnyConnection,
    system: &str,
    number: &str,
) -> Result<Option<EncounterRecord>> {
    let query = EncounterQuery {
        identifier_system: Some(system.to_string()),
        identifier_value: Some(number.to_string()),
        ..Default::default()
    };
    Ok(encounters(&mut *conn, &query, None, Page { offset: 0, count: 1 })
        .await?
        .1
        .into_iter()
        .next())
}

/// The patient holding identifier `value` in `system` (the MRN system: the MRN's holder).
pub async fn patient_by_identifier(
    conn: &mut AnyConnection,
    system: &str,
    value: &str,
) -> Result<Option<PatientRecord>> {
    let query = PatientQuery {
        identifier_system: Some(system.to_string()),
        identifier_value: Some(value.to_string()),
        ..Default::default()
    };
    Ok(patients(&mut *conn, &query, None, Page { offset: 0, count: 1 })
        .await?
        .1
        .into_iter()
        .next())
}
