//! The queries behind FHIR search: every search is one page query and, when the page does not
//! tell the total itself, one `COUNT(*)` (for `Bundle.total`) with the same [`Criteria`]: only
//! the parameters that were given. `viewer` limits results to rooms the user belongs to (SMART `user/` scopes); it
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

impl Arg<'_> {
    fn present(&self) -> bool {
        match self {
            Arg::Text(v) => v.is_some(),
            Arg::Int(v) => v.is_some(),
        }
    }
}

/// A search's `FROM … WHERE …` holding only the criteria that were given, each bound as `$n`.
/// Leaving absent criteria out (rather than writing `($1 IS NULL OR col = $1)`) lets both
/// engines use the index a criterion names: a read by id is a primary-key lookup, not a scan of
/// every patient. Conditions are constants of the store modules; values are always bound.
pub struct Criteria<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
    empty: bool,
}

impl<'a> Criteria<'a> {
    /// Starts from `from` (`" FROM … [JOIN …]"`, no `WHERE`).
    pub fn new(from: &str) -> Self {
        Self {
            sql: from.to_string(),
            args: Vec::new(),
            empty: true,
        }
    }

    fn push(&mut self, cond: &str) {
        self.sql.push_str(if self.empty { " WHERE " } else { " AND " });
        self.sql.push_str(cond);
        self.empty = false;
    }

    /// A condition that always applies.
    pub fn always(mut self, cond: &str) -> Self {
        self.push(cond);
        self
    }

    /// `cond`, with every `?` standing for `value`, when `value` is present.
    pub fn when(mut self, cond: &str, value: Arg<'a>) -> Self {
        if value.present() {
            let sql = cond.replace('?', &format!("${}", self.args.len() + 1));
            self.push(&sql);
            self.args.push(value);
        }
        self
    }

    /// `cond`, with `?1`, `?2`… standing for `values` in order, when every value is present.
    pub fn when_all(mut self, cond: &str, values: &[Arg<'a>]) -> Self {
        if values.is_empty() || !values.iter().all(Arg::present) {
            return self;
        }
        let mut sql = cond.to_string();
        // Highest first, so `?1` never eats the start of `?10`.
        for i in (1..=values.len()).rev() {
            sql = sql.replace(&format!("?{i}"), &format!("${}", self.args.len() + i));
        }
        self.push(&sql);
        self.args.extend_from_slice(values);
        self
    }
}

fn bind_all<'q, O>(
    mut q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    args: &[Arg<'q>],
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    for a in args {
        q = match *a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
        };
    }
    q
}

/// One page of rows (`{select}{criteria} {order} LIMIT .. OFFSET ..`) and the total: a page that
/// is not full (and not past the end) tells the total itself; otherwise `SELECT COUNT(*)
/// {criteria}` counts.
pub async fn count_and_page<T>(
    pool: &AnyPool,
    (select, criteria, order): (&str, &Criteria<'_>, &str),
    page: Page,
) -> Result<(i64, Vec<T>)>
where
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let n = criteria.args.len();
    let page_sql = format!(
        "{select}{} {order} LIMIT ${} OFFSET ${}",
        criteria.sql,
        n + 1,
        n + 2
    );
    let rows = bind_all(
        sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(page_sql)),
        &criteria.args,
    )
    .bind(i64::from(page.count))
    .bind(i64::from(page.offset))
    .fetch_all(pool)
    .await?;
    let short = rows.len() < page.count as usize;
    if short && (!rows.is_empty() || page.offset == 0) {
        return Ok((i64::from(page.offset) + rows.len() as i64, rows));
    }
    let count_sql = format!("SELECT COUNT(*){}", criteria.sql);
    let (total,) = bind_all(
        sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql)),
        &criteria.args,
    )
    .fetch_one(pool)
    .await?;
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
fn identifiers_column(pool: &AnyPool) -> &'static str {
    if super::is_postgres(pool) {
        "(SELECT COALESCE(json_agg(json_build_array(i.system, i.value) ORDER BY i.system, i.value), '[]')::text \
         FROM patient_identifiers i WHERE i.patient_id = p.id) AS identifiers"
    } else {
        "(SELECT json_group_array(json_array(i.system, i.value) ORDER BY i.system, i.value) \
         FROM patient_identifiers i WHERE i.patient_id = p.id) AS identifiers"
    }
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
    pool: &AnyPool,
    q: &PatientQuery,
    viewer: Option<&str>,
    page: Page,
) -> Result<(i64, Vec<PatientRecord>)> {
    let name = q.name.as_deref().map(starts_with);
    let family = q.family.as_deref().map(starts_with);
    let given = q.given.as_deref().map(starts_with);
    let identifier = match &q.identifier_system {
        Some(_) => {
            "EXISTS (SELECT 1 FROM patient_identifiers i WHERE i.patient_id = p.id \
                    AND i.value = ?1 AND i.system = ?2)"
        }
        None => "EXISTS (SELECT 1 FROM patient_identifiers i WHERE i.patient_id = p.id AND i.value = ?1)",
    };
    let identifier_args = [Arg::text(&q.identifier_value), Arg::text(&q.identifier_system)];
    let criteria = Criteria::new(" FROM patients p")
        .when("p.id = ?", Arg::text(&q.id))
        .when_all(
            identifier,
            &identifier_args[..if q.identifier_system.is_some() { 2 } else { 1 }],
        )
        .when(
            "(LOWER(p.family_name) LIKE ? OR LOWER(p.given_name) LIKE ?)",
            Arg::text(&name),
        )
        .when("LOWER(p.family_name) LIKE ?", Arg::text(&family))
        .when("LOWER(p.given_name) LIKE ?", Arg::text(&given))
        .when("p.birth_date >= ?", Arg::text(&q.birth_from))
        .when("p.birth_date <= ?", Arg::text(&q.birth_to))
        .when(
            "EXISTS (SELECT 1 FROM encounters e JOIN rooms r ON r.encounter_id = e.id \
             JOIN room_members m ON m.room_id = r.id WHERE e.patient_id = p.id AND m.user_id = ?)",
            Arg::Text(viewer),
        );
    let select = format!(
        "SELECT p.id, p.family_name, p.given_name, p.birth_date, p.sex, p.merged_into, \
         p.demographics_at, p.updated_at, {}",
        identifiers_column(pool)
    );
    count_and_page(pool, (&select, &criteria, "ORDER BY p.id"), page).await
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
    pool: &AnyPool,
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
    count_and_page(pool, (select, &criteria, "ORDER BY e.id"), page).await
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

#[cfg(test)]
mod criteria_tests {
    use super::*;

    #[test]
    fn only_given_criteria_are_written_and_numbered_in_order() {
        let (id, value, system) = (Some("p1".to_string()), Some("MRN-1".to_string()), None::<String>);
        let c = Criteria::new(" FROM patients p")
            .when("p.id = ?", Arg::text(&id))
            .when("p.sex = ?", Arg::text(&system))
            .when_all(
                "(i.value = ?1 AND i.system = ?2)",
                &[Arg::text(&value), Arg::text(&system)],
            )
            .when_all("i.value = ?1", &[Arg::text(&value)])
            .when("(a LIKE ? OR b LIKE ?)", Arg::Int(Some(3)));
        assert_eq!(
            c.sql,
            " FROM patients p WHERE p.id = $1 AND i.value = $2 AND (a LIKE $3 OR b LIKE $3)"
        );
        assert_eq!(c.args.len(), 3);
        let none = Criteria::new(" FROM users u").when("u.id = ?", Arg::Text(None));
        assert_eq!(none.sql, " FROM users u");
        let fixed = Criteria::new(" FROM users u")
            .always("u.kind = 'person'")
            .when("u.npi = ?", Arg::Text(Some("1")));
        assert_eq!(fixed.sql, " FROM users u WHERE u.kind = 'person' AND u.npi = $1");
    }
}
