use chrono::{DateTime, Utc};

use super::*;
use crate::hl7::message::{Demographics, Patient, Visit};

const T: Timing = Timing {
    discharge_grace_ms: 24 * 3_600_000,
    archive_after_ms: 30 * 24 * 3_600_000,
};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn loc(unit: &str, room: &str, bed: &str) -> Location {
    Location {
        unit: Some(unit.into()),
        room: Some(room.into()),
        bed: Some(bed.into()),
    }
}

fn event(trigger: Trigger, when: &str, visit: Visit) -> Adt {
    Adt {
        trigger,
        event_at: at(when),
        patient: Patient {
            mrn: "MRN-1".into(),
            other_ids: vec![],
            demographics: Demographics::default(),
        },
        visit: Some(visit),
        prior_mrn: None,
    }
}

fn visit(location: Location) -> Visit {
    Visit {
        number: Some("V-1".into()),
        location,
        attending: vec!["111".into()],
        ..Visit::default()
    }
}

fn apply(e: &Adt, cur: Option<&EncounterRow>) -> EncounterPlan {
    match plan(e, cur, "urn:v", T).unwrap() {
        Decision::Apply(p) => *p,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn admitted() -> EncounterRow {
    let p = apply(
        &event(Trigger::A01, "2026-11-20T08:00:00Z", visit(loc("4W", "412", "A"))),
        None,
    );
    EncounterRow {
        id: "e1".into(),
        patient_id: "p1".into(),
        ..p.next
    }
}

#[test]
fn admission_creates_an_open_inpatient_encounter_with_its_team() {
    let p = apply(
        &event(Trigger::A01, "2026-11-20T08:00:00Z", visit(loc("4W", "412", "A"))),
        None,
    );
    assert!(p.is_new);
    assert_eq!(
        (p.next.class.as_str(), p.next.status.as_str()),
        ("inpatient", "in-progress")
    );
    assert_eq!(
        (p.next.visit_system.as_str(), p.next.visit_number.as_str()),
        ("urn:v", "V-1")
    );
    assert_eq!(p.room, RoomAction::Open);
    assert!(p.practitioners_changed);
    assert_eq!(p.unit_change, Some((None, Some("4W".into()))));
    assert_eq!(p.note.as_deref(), Some("Admitted to 4W 412 A."));
    assert_eq!(
        p.next.admitted_at,
        Some(at("2026-11-20T08:00:00Z").timestamp_millis())
    );
    assert_eq!(
        Practitioners::from_json(&p.next.practitioners).attending,
        vec!["111"]
    );
}

#[test]
fn registration_and_pre_admission() {
    let mut v = visit(loc("CLINIC", "3", ""));
    let p = apply(&event(Trigger::A04, "2026-11-20T08:00:00Z", v.clone()), None);
    assert_eq!(
        (p.next.class.as_str(), p.next.status.as_str()),
        ("outpatient", "in-progress")
    );
    v.class = Some(Class::Emergency);
    let p = apply(&event(Trigger::A04, "2026-11-20T08:00:00Z", v.clone()), None);
    assert_eq!(p.next.class, "emergency");
    let p = apply(&event(Trigger::A05, "2026-11-20T08:00:00Z", v), None);
    assert_eq!(p.next.status, "planned");
    assert_eq!(p.next.admitted_at, None);
    assert!(p.note.unwrap().starts_with("Pre-admission"));
}

#[test]
fn repeated_admission_updates_without_a_second_note() {
    let cur = admitted();
    let p = apply(
        &event(Trigger::A01, "2026-11-20T09:00:00Z", visit(loc("4W", "412", "A"))),
        Some(&cur),
    );
    assert!(!p.is_new);
    assert_eq!(p.note, None);
    assert!(!p.practitioners_changed);
    assert_eq!(p.unit_change, None);
}

#[test]
fn transfer_moves_and_swaps_the_unit_team() {
    let cur = admitted();
    let p = apply(
        &event(Trigger::A02, "2026-11-21T10:30:00Z", visit(loc("5E", "510", "B"))),
        Some(&cur),
    );
    assert_eq!(p.next.location_unit.as_deref(), Some("5E"));
    assert_eq!(p.next.prior_unit.as_deref(), Some("4W"));
    assert_eq!(p.unit_change, Some((Some("4W".into()), Some("5E".into()))));
    assert_eq!(p.note.as_deref(), Some("Transferred from 4W 412 A to 5E 510 B."));
    // Cancelling it goes back.
    let moved = p.next;
    let mut v = visit(Location::default());
    v.attending.clear();
    let p = apply(&event(Trigger::A12, "2026-11-21T10:45:00Z", v), Some(&moved));
    assert_eq!(p.next.location_unit.as_deref(), Some("4W"));
    assert_eq!(p.next.prior_unit, None);
    assert_eq!(p.unit_change, Some((Some("5E".into()), Some("4W".into()))));
    assert_eq!(p.note.as_deref(), Some("Transfer cancelled; back in 4W 412 A."));
}

#[test]
fn a_transfer_needs_a_location_and_a_known_encounter() {
    let cur = admitted();
    let e = event(Trigger::A02, "2026-11-21T10:30:00Z", visit(Location::default()));
    assert_eq!(
        plan(&e, Some(&cur), "urn:v", T).unwrap_err().location,
        Some(("PV1".into(), 1, 3))
    );
    let e = event(Trigger::A02, "2026-11-21T10:30:00Z", visit(loc("5E", "1", "")));
    let p = plan(&e, None, "urn:v", T).unwrap_err();
    assert_eq!((p.code, p.location), ("204", Some(("PV1".into(), 1, 19))));
    let e = event(Trigger::A12, "2026-11-21T10:30:00Z", visit(Location::default()));
    assert_eq!(plan(&e, Some(&cur), "urn:v", T).unwrap_err().code, "101");
}

#[test]
fn discharge_schedules_read_only_and_archive_and_cancel_reopens() {
    let cur = admitted();
    let mut v = visit(Location::default());
    v.discharged_at = Some(at("2026-11-23T15:00:00Z"));
    let p = apply(&event(Trigger::A03, "2026-11-23T15:05:00Z", v), Some(&cur));
    let d = at("2026-11-23T15:00:00Z").timestamp_millis();
    assert_eq!(p.next.status, "finished");
    assert_eq!(p.next.discharged_at, Some(d));
    assert_eq!(
        p.room,
        RoomAction::Schedule {
            read_only_at: d + T.discharge_grace_ms,
            archive_at: d + T.archive_after_ms
        }
    );
    let p = apply(
        &event(Trigger::A13, "2026-11-23T15:20:00Z", visit(Location::default())),
        Some(&p.next),
    );
    assert_eq!(
        (p.next.status.as_str(), p.next.discharged_at),
        ("in-progress", None)
    );
    assert_eq!(p.room, RoomAction::Reopen);
}

#[test]
fn class_changes() {
    let cur = admitted();
    let p = apply(
        &event(Trigger::A07, "2026-11-21T00:00:00Z", visit(Location::default())),
        Some(&cur),
    );
    assert_eq!(p.next.class, "outpatient");
    assert_eq!(p.note.as_deref(), Some("Encounter changed to outpatient."));
    let p = apply(
        &event(Trigger::A06, "2026-11-22T00:00:00Z", visit(Location::default())),
        Some(&p.next),
    );
    assert_eq!(p.next.class, "inpatient");
    let mut v = visit(Location::default());
    v.class = Some(Class::Emergency);
    let p = apply(&event(Trigger::A06, "2026-11-22T00:00:00Z", v), Some(&cur));
    assert_eq!(p.next.class, "emergency", "PV1-2 wins when present");
}

#[test]
fn cancelled_admission_closes_the_room_now() {
    let cur = admitted();
    let p = apply(
        &event(Trigger::A11, "2026-11-20T09:00:00Z", visit(Location::default())),
        Some(&cur),
    );
    assert_eq!(p.next.status, "cancelled");
    assert_eq!(
        p.room,
        RoomAction::CloseNow {
            archive_at: at("2026-11-20T09:00:00Z").timestamp_millis() + T.archive_after_ms
        }
    );
    assert!(!p.practitioners_changed);
}

#[test]
fn late_events_never_overwrite_newer_state() {
    let cur = admitted();
    let p = apply(
        &event(Trigger::A02, "2026-11-21T10:30:00Z", visit(loc("5E", "510", "B"))),
        Some(&cur),
    );
    // An A08 (or a transfer) stamped before the transfer arrives late.
    for trigger in [Trigger::A08, Trigger::A02, Trigger::A03] {
        let late = event(trigger, "2026-11-21T09:00:00Z", visit(loc("ICU", "1", "")));
        assert_eq!(plan(&late, Some(&p.next), "urn:v", T).unwrap(), Decision::Stale);
    }
    // The same instant is not older.
    let same = event(Trigger::A08, "2026-11-21T10:30:00Z", visit(loc("5E", "510", "B")));
    assert!(matches!(
        plan(&same, Some(&p.next), "urn:v", T).unwrap(),
        Decision::Apply(_)
    ));
}

#[test]
fn updates_change_practitioners_only_when_named() {
    let cur = admitted();
    let mut v = visit(Location::default());
    v.attending = vec!["222".into()];
    v.consulting = vec!["333".into()];
    let p = apply(&event(Trigger::A08, "2026-11-21T00:00:00Z", v), Some(&cur));
    assert!(p.practitioners_changed);
    let named = Practitioners::from_json(&p.next.practitioners);
    assert_eq!(
        (named.attending, named.consulting),
        (vec!["222".to_string()], vec!["333".to_string()])
    );
    let mut v = visit(Location::default());
    v.attending.clear();
    let p2 = apply(&event(Trigger::A08, "2026-11-21T01:00:00Z", v), Some(&p.next));
    assert!(!p2.practitioners_changed, "an empty PV1-7 keeps what was known");
    assert_eq!(p2.note, None);
}

#[test]
fn events_without_an_encounter_effect() {
    let mut e = event(Trigger::A31, "2026-11-21T00:00:00Z", visit(Location::default()));
    assert_eq!(plan(&e, None, "urn:v", T).unwrap(), Decision::NoEncounter);
    e.trigger = Trigger::A08;
    assert_eq!(
        plan(&e, None, "urn:v", T).unwrap(),
        Decision::NoEncounter,
        "A08 for an unknown visit"
    );
    e.visit = None;
    e.trigger = Trigger::A40;
    assert_eq!(plan(&e, None, "urn:v", T).unwrap(), Decision::NoEncounter);
}

#[test]
fn demographics_newest_wins() {
    assert!(demographics_win(None, 5));
    assert!(demographics_win(Some(5), 5));
    assert!(demographics_win(Some(4), 5));
    assert!(!demographics_win(Some(6), 5));
}
