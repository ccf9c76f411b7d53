//! FHIR date search values (`ge2024-01-01`, `2024-03`, `lt2024-03-01T10:00:00Z`) as ranges of
//! Unix milliseconds: a date of some precision covers every instant from its first to its last
//! millisecond, and the prefixes compare against that span as the FHIR search page says.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::error::{Error, Result};

/// A date parameter (`ge2024-01-01`, `2024-03`, `lt2024-03-01T10:00:00Z`) as an inclusive range
/// of Unix milliseconds, intersected over repeats (`date=ge...&date=le...`).
pub fn date_range<'a>(
    name: &str,
    values: impl Iterator<Item = &'a str>,
) -> Result<(Option<i64>, Option<i64>)> {
    let (mut from, mut to): (Option<i64>, Option<i64>) = (None, None);
    for v in values {
        let (prefix, rest) = if v.len() > 2 && v.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic) {
            v.split_at(2)
        } else {
            ("eq", v)
        };
        let (start, end) = instant_span(rest)
            .ok_or_else(|| Error::BadRequest(format!("'{name}': '{rest}' is not a FHIR date or dateTime")))?;
        let (lo, hi) = match prefix {
            "eq" => (Some(start), Some(end)),
            "ge" => (Some(start), None),
            "gt" => (Some(end + 1), None),
            "le" => (None, Some(end)),
            "lt" => (None, Some(start - 1)),
            other => {
                return Err(Error::BadRequest(format!(
                    "'{name}': prefix '{other}' is not supported"
                )));
            }
        };
        from = from.max(lo);
        to = match (to, hi) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok((from, to))
}

/// First and last millisecond a FHIR date/dateTime of some precision covers.
pub fn instant_span(s: &str) -> Option<(i64, i64)> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let ms = t.timestamp_millis();
        return Some((ms, ms));
    }
    let (start, next) = match s.len() {
        4 => {
            let y: i32 = s.parse().ok()?;
            (
                NaiveDate::from_ymd_opt(y, 1, 1)?,
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?,
            )
        }
        7 => {
            let d = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?;
            let next = if d.month() == 12 {
                NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)?
            };
            (d, next)
        }
        10 => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            (d, d.succ_opt()?)
        }
        _ => return None,
    };
    let ms = |d: NaiveDate| {
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .timestamp_millis()
    };
    Some((ms(start), ms(next) - 1))
}

/// Unix ms back to the `YYYY-MM-DD` the patients table holds.
pub fn day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}
