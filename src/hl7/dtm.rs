//! HL7 date/time values (DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`). Senders often
//! omit the offset, so a value without one is read in the interface's configured time zone; a
//! local time that a DST change skips is moved forward, one it repeats takes the earlier instant.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a date/time value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")]
pub struct DtmError;

/// Reads a DTM into an instant; missing parts take their lowest value.
pub fn parse_instant(value: &str, zone: Tz) -> Result<DateTime<Utc>, DtmError> {
    let (digits, offset) = split_offset(value.trim())?;
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.len() <= 4 && f.bytes().all(|b| b.is_ascii_digit()) => (w, f),
        Some(_) => return Err(DtmError),
        None => (digits, ""),
    };
    if !whole.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&whole.len()) {
        return Err(DtmError);
    }
    if !fraction.is_empty() && whole.len() != 14 {
        return Err(DtmError);
    }
    let num = |from: usize, to: usize, default: u32| -> u32 {
        whole
            .get(from..to)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let year = i32::try_from(num(0, 4, 0)).map_err(|_| DtmError)?;
    let date = NaiveDate::from_ymd_opt(year, num(4, 6, 1), num(6, 8, 1)).ok_or(DtmError)?;
    let mut local = date
        .and_hms_opt(num(8, 10, 0), num(10, 12, 0), num(12, 14, 0))
        .ok_or(DtmError)?;
    if !fraction.is_empty() {
        let padded = format!("{fraction:0<4}");
        let tenth_ms: i64 = padded.parse().map_err(|_| DtmError)?;
        local += Duration::microseconds(tenth_ms * 100);
    }
    Ok(match offset {
        Some(off) => off.from_local_datetime(&local).single().ok_or(DtmError)?.to_utc(),
        None => in_zone(local, zone),
    })
}

/// Reads the date part of a DTM as a FHIR `date` (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`), for birth
/// dates, which are calendar dates and must not shift with time zones.
pub fn parse_date(value: &str) -> Result<String, DtmError> {
    let (digits, _) = split_offset(value.trim())?;
    let whole = digits.split('.').next().unwrap_or_default();
    if whole.len() < 4 || !whole.bytes().all(|b| b.is_ascii_digit()) || whole.len() % 2 != 0 {
        return Err(DtmError);
    }
    let year: i32 = whole[..4].parse().map_err(|_| DtmError)?;
    match whole.len() {
        4 => Ok(format!("{year:04}")),
        6 => {
            let month: u32 = whole[4..6].parse().map_err(|_| DtmError)?;
            NaiveDate::from_ymd_opt(year, month, 1).ok_or(DtmError)?;
            Ok(format!("{year:04}-{month:02}"))
        }
        _ => {
            let month: u32 = whole[4..6].parse().map_err(|_| DtmError)?;
            let day: u32 = whole[6..8].parse().map_err(|_| DtmError)?;
            let d = NaiveDate::from_ymd_opt(year, month, day).ok_or(DtmError)?;
            Ok(d.format("%Y-%m-%d").to_string())
        }
    }
}

fn split_offset(value: &str) -> Result<(&str, Option<FixedOffset>), DtmError> {
    let Some(pos) = value.find(['+', '-']) else {
        return Ok((value, None));
    };
    let (digits, off) = value.split_at(pos);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let hhmm = &off[1..];
    if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DtmError);
    }
    let hours: i32 = hhmm[..2].parse().map_err(|_| DtmError)?;
    let minutes: i32 = hhmm[2..].parse().map_err(|_| DtmError)?;
    if hours > 14 || minutes > 59 {
        return Err(DtmError);
    }
    let offset = FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or(DtmError)?;
    Ok((digits, Some(offset)))
}

fn in_zone(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    let mut probe = local;
    // A skipped local time (spring forward) does not exist: move forward until one does.
    for _ in 0..8 {
        if let Some(t) = zone.from_local_datetime(&probe).earliest() {
            return t.to_utc();
        }
        probe += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn full_and_partial_precision() {
        let z = chrono_tz::UTC;
        assert_eq!(
            parse_instant("20261120080000", z).unwrap(),
            utc("2026-11-20T08:00:00Z")
        );
        assert_eq!(
            parse_instant("202611200800", z).unwrap(),
            utc("2026-11-20T08:00:00Z")
        );
        assert_eq!(parse_instant("20261120", z).unwrap(), utc("2026-11-20T00:00:00Z"));
        assert_eq!(parse_instant("2026", z).unwrap(), utc("2026-01-01T00:00:00Z"));
        assert_eq!(
            parse_instant("20261120080000.25", z).unwrap(),
            utc("2026-11-20T08:00:00.25Z")
        );
    }

    #[test]
    fn explicit_offsets_win_over_the_zone() {
        let z = chrono_tz::America::New_York;
        assert_eq!(
            parse_instant("20261120080000+0100", z).unwrap(),
            utc("2026-11-20T07:00:00Z")
        );
        assert_eq!(
            parse_instant("20261120080000-0500", z).unwrap(),
            utc("2026-11-20T13:00:00Z")
        );
        assert_eq!(
            parse_instant("20261120080000", z).unwrap(),
            utc("2026-11-20T13:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_gaps_and_overlaps() {
        let z = chrono_tz::America::New_York;
        // 2026-03-08 02:30 does not exist in New York: moved to 03:00 EDT.
        assert_eq!(
            parse_instant("202603080230", z).unwrap(),
            utc("2026-03-08T07:00:00Z")
        );
        // 2026-11-01 01:30 happens twice: the first (EDT) is taken.
        assert_eq!(
            parse_instant("202611010130", z).unwrap(),
            utc("2026-11-01T05:30:00Z")
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let z = chrono_tz::UTC;
        for bad in [
            "",
            "20",
            "2026112",
            "20261340",
            "20261120086000",
            "2026-11-20",
            "20261120+01",
            "2026112008x",
            "20261120.5",
            "20261120080000.12345",
            "20261120080000+2500",
            "20261120080000.",
        ] {
            assert_eq!(parse_instant(bad, z), Err(DtmError), "{bad:?}");
        }
    }

    #[test]
    fn birth_dates_keep_their_precision() {
        assert_eq!(parse_date("19580314").unwrap(), "1958-03-14");
        assert_eq!(parse_date("195803140000").unwrap(), "1958-03-14");
        assert_eq!(parse_date("195803").unwrap(), "1958-03");
        assert_eq!(parse_date("1958").unwrap(), "1958");
        assert_eq!(parse_date("19580230"), Err(DtmError));
        assert_eq!(parse_date("58"), Err(DtmError));
    }
}
