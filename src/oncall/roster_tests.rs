use chrono_tz::America::New_York;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn ms(s: &str) -> i64 {
    utc(s).timestamp_millis()
}

#[test]
fn local_times_follow_the_zone_across_dst() {
    // New York springs forward on 2026-03-08 at 02:00 and falls back on 2026-11-01 at 02:00.
    assert_eq!(
        parse_time("2026-03-08T01:30", New_York).unwrap(),
        utc("2026-03-08T06:30:00Z")
    );
    assert_eq!(
        parse_time("2026-03-08T03:00", New_York).unwrap(),
        utc("2026-03-08T07:00:00Z")
    );
    assert!(
        parse_time("2026-03-08T02:30", New_York)
            .unwrap_err()
            .contains("does not exist")
    );
    // 01:30 happens twice on 2026-11-01: the first (EDT) is taken.
    assert_eq!(
        parse_time("2026-11-01 01:30", New_York).unwrap(),
        utc("2026-11-01T05:30:00Z")
    );
    assert_eq!(
        parse_time("2026-07-01T07:00:00+02:00", New_York).unwrap(),
        utc("2026-07-01T05:00:00Z")
    );
    assert!(parse_time("tomorrow", New_York).is_err());
}

#[test]
fn a_night_shift_over_the_spring_change_is_seven_hours() {
    let csv =
        "service,tier,start,end,practitioner_id\ncardiology,1,2026-03-07T23:00,2026-03-08T07:00,dr.osei\n";
    let shifts = from_csv(csv, New_York).unwrap();
    assert_eq!((shifts[0].end - shifts[0].start).num_hours(), 7);
    let csv =
        "service,tier,start,end,practitioner_id\ncardiology,1,2026-10-31T23:00,2026-11-01T07:00,dr.osei\n";
    let shifts = from_csv(csv, New_York).unwrap();
    assert_eq!((shifts[0].end - shifts[0].start).num_hours(), 9);
}

#[test]
fn bad_rows_are_all_reported_with_their_numbers() {
    let csv = "service,tier,start,end,practitioner_id\n\
               cardiology,1,2026-03-01T07:00,2026-03-01T19:00,dr.osei\n\
               cardiology,0,2026-03-01T07:00,2026-03-01T19:00,dr.osei\n\
               cardiology,2,2026-03-01T19:00,2026-03-01T07:00,dr.osei\n\
               cardiology,x,2026-03-01T07:00,2026-03-01T19:00,dr.osei\n\
               card iology,1,2026-03-01T07:00,2026-03-01T19:00,dr.osei\n";
    let errors = from_csv(csv, New_York).unwrap_err();
    let rows: Vec<usize> = errors.iter().map(|e| e.row).collect();
    assert_eq!(rows, [2, 3, 4, 5], "{errors:?}");
    assert!(
        from_csv("who,when\nx,y\n", New_York).unwrap_err()[0]
            .error
            .contains("header")
    );
    assert!(from_json(&serde_json::json!({"shifts": []}), New_York).is_err());
    assert!(from_json(&serde_json::json!([1]), New_York).is_err());
}

#[test]
fn the_report_finds_gaps_in_tier_one_and_overlaps_in_any_tier() {
    let s = |tier, start: &str, end: &str| ShiftIn {
        service: "cardiology".into(),
        tier,
        start: utc(start),
        end: utc(end),
        practitioner: "x".into(),
    };
    let shifts = vec![
        s(1, "2026-03-01T07:00:00Z", "2026-03-01T19:00:00Z"),
        s(1, "2026-03-01T20:00:00Z", "2026-03-02T07:00:00Z"),
        s(2, "2026-03-01T07:00:00Z", "2026-03-01T19:00:00Z"),
        s(2, "2026-03-01T18:00:00Z", "2026-03-02T07:00:00Z"),
    ];
    let report = validate(&shifts);
    assert_eq!(
        report.gaps,
        [Gap {
            service: "cardiology".into(),
            start: utc("2026-03-01T19:00:00Z"),
            end: utc("2026-03-01T20:00:00Z")
        }]
    );
    assert_eq!(
        report.overlaps,
        [Overlap {
            service: "cardiology".into(),
            tier: 2,
            start: utc("2026-03-01T18:00:00Z"),
            end: utc("2026-03-01T19:00:00Z")
        }]
    );
    // A service with only tier 2 is one long gap in tier 1.
    let report = validate(&[s(2, "2026-03-01T07:00:00Z", "2026-03-01T19:00:00Z")]);
    assert_eq!(report.gaps.len(), 1);
    assert!(validate(&shifts[..2]).overlaps.is_empty());
}

#[test]
fn the_holder_is_whoever_covers_the_instant_incoming_first() {
    let h = |tier, start: &str, end: &str, who: &str| Held {
        tier,
        start_ms: ms(start),
        end_ms: ms(end),
        user_id: who.into(),
    };
    let shifts = [
        h(1, "2026-03-01T07:00:00Z", "2026-03-01T19:30:00Z", "day"),
        h(1, "2026-03-01T19:00:00Z", "2026-03-02T07:00:00Z", "night"),
        h(2, "2026-03-01T07:00:00Z", "2026-03-02T07:00:00Z", "backup"),
    ];
    let who = |tier, at: &str| holder(&shifts, tier, ms(at)).map(|s| s.user_id.as_str());
    assert_eq!(who(1, "2026-03-01T12:00:00Z"), Some("day"));
    assert_eq!(
        who(1, "2026-03-01T19:15:00Z"),
        Some("night"),
        "handover overlap: incoming holds"
    );
    assert_eq!(who(1, "2026-03-01T19:30:00Z"), Some("night"));
    assert_eq!(who(1, "2026-03-02T07:00:00Z"), None, "end is exclusive");
    assert_eq!(
        who(2, "2026-03-01T07:00:00Z"),
        Some("backup"),
        "start is inclusive"
    );
    assert_eq!(who(3, "2026-03-01T12:00:00Z"), None);
}
