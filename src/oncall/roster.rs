//! Rosters without I/O: reading JSON and CSV uploads (times with an offset, or local times in the
//! site's zone, DST-checked), the validation report (gaps with nobody on tier 1, overlaps within a
//! tier), and who holds a tier at an instant.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// One shift as uploaded, times resolved to UTC; `practitioner` is still the uploaded reference.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ShiftIn {
    /// Service, e.g. `cardiology`.
    pub service: String,
    /// 1 = primary.
    pub tier: u32,
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
    /// User id, NPI or login name.
    pub practitioner: String,
}

/// A problem with one row of an upload (1-based row, header excluded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Row number.
    pub row: usize,
    /// What is wrong (no values echoed beyond the field name).
    pub error: String,
}

/// An instant from an upload: RFC 3339 with an offset, or a local `YYYY-MM-DDTHH:MM[:SS]` (or with
/// a space) in `zone`. A local time that does not exist (the hour skipped when clocks go forward)
/// is refused; one that happens twice (clocks go back) is the first.
pub fn parse_time(s: &str, zone: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .ok_or_else(|| "is not a date-time (use 2026-03-08T07:00 or 2026-03-08T07:00:00-05:00)".to_string())?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.to_utc())
        .ok_or_else(|| format!("does not exist in {zone} (the clocks skip it)"))
}

#[derive(Deserialize)]
struct Row {
    service: String,
    tier: u32,
    start: String,
    end: String,
    practitioner_id: String,
}

fn shift(row: Row, zone: Tz) -> Result<ShiftIn, String> {
    let service = row.service.trim().to_ascii_lowercase();
    if service.is_empty()
        || !service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("service must be letters, digits, - _ or .".into());
    }
    if row.tier == 0 {
        return Err("tier starts at 1".into());
    }
    let start = parse_time(row.start.trim(), zone).map_err(|e| format!("start {e}"))?;
    let end = parse_time(row.end.trim(), zone).map_err(|e| format!("end {e}"))?;
    if end <= start {
        return Err("end must be after start".into());
    }
    Ok(ShiftIn {
        service,
        tier: row.tier,
        start,
        end,
        practitioner: row.practitioner_id.trim().to_string(),
    })
}

fn collect(rows: impl Iterator<Item = Result<Row, String>>, zone: Tz) -> Result<Vec<ShiftIn>, Vec<RowError>> {
    let (mut shifts, mut errors) = (Vec::new(), Vec::new());
    for (i, row) in rows.enumerate() {
        match row.and_then(|r| shift(r, zone)) {
            Ok(s) => shifts.push(s),
            Err(error) => errors.push(RowError { row: i + 1, error }),
        }
    }
    if shifts.is_empty() && errors.is_empty() {
        errors.push(RowError {
            row: 0,
            error: "the roster has no shifts".into(),
        });
    }
    if errors.is_empty() {
        Ok(shifts)
    } else {
        Err(errors)
    }
}

/// CSV with the header `service,tier,start,end,practitioner_id`.
pub fn from_csv(text: &str, zone: Tz) -> Result<Vec<ShiftIn>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let expected = ["service", "tier", "start", "end", "practitioner_id"];
    match reader.headers() {
        Ok(h) if h.iter().eq(expected) => {}
        _ => {
            return Err(vec![RowError {
                row: 0,
                error: format!("the header must be {}", expected.join(",")),
            }]);
        }
    }
    collect(
        reader.deserialize::<Row>().map(|r| r.map_err(|e| format!("{e}"))),
        zone,
    )
}

/// JSON: `{"shifts": [{"service", "tier", "start", "end", "practitioner_id"}]}`.
pub fn from_json(value: &serde_json::Value, zone: Tz) -> Result<Vec<ShiftIn>, Vec<RowError>> {
    let Some(rows) = value.get("shifts").and_then(|s| s.as_array()) else {
        return Err(vec![RowError {
            row: 0,
            error: "expected {\"shifts\": [...]}".into(),
        }]);
    };
    collect(
        rows.iter()
            .map(|r| serde_json::from_value::<Row>(r.clone()).map_err(|e| e.to_string())),
        zone,
    )
}

/// The span an upload replaces for one service: from its first start to its last end.
pub fn period(shifts: &[ShiftIn], service: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let mine = shifts.iter().filter(|s| s.service == service);
    let start = mine.clone().map(|s| s.start).min()?;
    let end = mine.map(|s| s.end).max()?;
    Some((start, end))
}

/// A stretch of time inside a service's period with nobody on tier 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Service.
    pub service: String,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
}

/// Two shifts of one tier covering the same time (the later-starting one holds the tier there).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Overlap {
    /// Service.
    pub service: String,
    /// Tier.
    pub tier: u32,
    /// Start of the overlap.
    pub start: DateTime<Utc>,
    /// End of the overlap.
    pub end: DateTime<Utc>,
}

/// The validation report of an upload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Nobody on tier 1.
    pub gaps: Vec<Gap>,
    /// Double-booked tiers.
    pub overlaps: Vec<Overlap>,
}

/// Gaps and overlaps of each service within its period.
pub fn validate(shifts: &[ShiftIn]) -> Report {
    let mut report = Report::default();
    let mut services: Vec<&str> = shifts.iter().map(|s| s.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    for service in services {
        let Some((from, to)) = period(shifts, service) else {
            continue;
        };
        let mut tiers: Vec<u32> = shifts
            .iter()
            .filter(|s| s.service == service)
            .map(|s| s.tier)
            .collect();
        tiers.sort_unstable();
        tiers.dedup();
        for tier in tiers.iter().copied().chain((!tiers.contains(&1)).then_some(1)) {
            let mut mine: Vec<&ShiftIn> = shifts
                .iter()
                .filter(|s| s.service == service && s.tier == tier)
                .collect();
            mine.sort_by_key(|s| (s.start, s.end));
            let mut covered_to = from;
            for s in &mine {
                if s.start < covered_to && covered_to > from {
                    report.overlaps.push(Overlap {
                        service: service.into(),
                        tier,
                        start: s.start,
                        end: covered_to.min(s.end),
                    });
                }
                if tier == 1 && s.start > covered_to {
                    report.gaps.push(Gap {
                        service: service.into(),
                        start: covered_to,
                        end: s.start,
                    });
                }
                covered_to = covered_to.max(s.end);
            }
            if tier == 1 && covered_to < to {
                report.gaps.push(Gap {
                    service: service.into(),
                    start: covered_to,
                    end: to,
                });
            }
        }
    }
    report
}

/// A stored shift as resolution sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Tier.
    pub tier: u32,
    /// Start (Unix ms).
    pub start_ms: i64,
    /// End (Unix ms, exclusive).
    pub end_ms: i64,
    /// The user.
    pub user_id: String,
}

/// Who holds `tier` at `at_ms`: among the shifts covering that instant, the one that started
/// last (at a handover overlap the incoming person holds the tier).
pub fn holder(shifts: &[Held], tier: u32, at_ms: i64) -> Option<&Held> {
    shifts
        .iter()
        .filter(|s| s.tier == tier && s.start_ms <= at_ms && at_ms < s.end_ms)
        .max_by_key(|s| (s.start_ms, s.end_ms))
}

#[cfg(test)]
#[path = "roster_tests.rs"]
mod tests;
