//! Search criteria shared by the FHIR searches and the audit search: a `WHERE` holding only the
//! criteria given (so each can use its index), paging, and the total.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow};

use crate::error::Result;

/// One page: offset and size.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Rows to skip.
    pub offset: u32,
    /// Rows to return.
    pub count: u32,
}

/// A value bound to a search query; `None` (the parameter was not given) leaves its condition out.
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

impl Criteria<'_> {
    /// One page of rows: `{select}{criteria} {order} LIMIT .. OFFSET ..`.
    pub async fn page<T>(
        &self,
        conn: &mut AnyConnection,
        select: &str,
        order: &str,
        page: Page,
    ) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let n = self.args.len();
        let sql = format!("{select}{} {order} LIMIT ${} OFFSET ${}", self.sql, n + 1, n + 2);
        Ok(
            bind_all(sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql)), &self.args)
                .bind(i64::from(page.count))
                .bind(i64::from(page.offset))
                .fetch_all(&mut *conn)
                .await?,
        )
    }

    /// How many rows match.
    pub async fn count(&self, conn: &mut AnyConnection) -> Result<i64> {
        let sql = format!("SELECT COUNT(*){}", self.sql);
        let (total,) = bind_all(sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)), &self.args)
            .fetch_one(&mut *conn)
            .await?;
        Ok(total)
    }
}

/// One page of rows and the total: a page that is not full (and not past the end) tells the
/// total itself; otherwise [`Criteria::count`] counts.
pub async fn count_and_page<T>(
    conn: &mut AnyConnection,
    (select, criteria, order): (&str, &Criteria<'_>, &str),
    page: Page,
) -> Result<(i64, Vec<T>)>
where
    T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
{
    let rows: Vec<T> = criteria.page(&mut *conn, select, order, page).await?;
    let short = rows.len() < page.count as usize;
    if short && (!rows.is_empty() || page.offset == 0) {
        return Ok((i64::from(page.offset) + rows.len() as i64, rows));
    }
    Ok((criteria.count(&mut *conn).await?, rows))
}

#[cfg(test)]
mod tests {
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
