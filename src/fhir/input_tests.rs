use serde_json::json;

use super::*;

const VISITS: &str = "urn:visit";

fn enc(status: &str, class: &str, unit: &str, display: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "identifier": [{"system": VISITS, "value": "V1"}],
        "status": status,
        "class": {"code": class},
        "subject": {"reference": "Patient/p1"},
        "location": [{"location": {"identifier": {"system": "urn:wardline:unit", "value": unit}, "display": display}}],
        "participant": [
            {"type": [{"coding": [{"code": "ATND"}]}], "individual": {"reference": "Practitioner/u1"}},
            {"type": [{"coding": [{"code": "CON"}]}], "individual": {"reference": "https://x/fhir/Practitioner/u2"}},
        ],
        "period": {"start": "2026-11-20T08:00:00Z"},
    })
}

fn row(status: &str, class: &str, unit: &str, room: &str, bed: &str) -> EncounterRow {
    EncounterRow {
        status: status.into(),
        class: class.into(),
        location_unit: Some(unit.into()),
        location_room: Some(room.into()),
        location_bed: Some(bed.into()),
        ..EncounterRow::default()
    }
}

#[test]
fn an_encounter_reads_into_the_visit_the_event_table_takes() {
    let e = encounter(&enc("in-progress", "IMP", "4W", "4W 412-A"), VISITS).unwrap();
    assert_eq!(
        (e.patient_id.as_str(), e.visit_number.as_str(), e.class),
        ("p1", "V1", Class::Inpatient)
    );
    assert_eq!(
        (
            e.location.unit.as_deref(),
            e.location.room.as_deref(),
            e.location.bed.as_deref()
        ),
        (Some("4W"), Some("412"), Some("A"))
    );
    assert_eq!(e.visit.attending, [format!("{USER_ID_PREFIX}u1")]);
    assert_eq!(e.visit.consulting, [format!("{USER_ID_PREFIX}u2")]);
    assert!(e.visit.admitted_at.is_some());
}

#[test]
fn broken_encounters_name_the_element() {
    let cases = [
        (
            json!({"identifier": [{"system": "urn:other", "value": "1"}]}),
            "Encounter.identifier",
        ),
        (json!({"subject": {"reference": "Group/1"}}), "Encounter.subject"),
        (json!({"status": "arrived"}), "Encounter.status"),
        (json!({"class": {"code": "XYZ"}}), "Encounter.class"),
        (
            json!({"period": {"start": "2026-11-20"}}),
            "Encounter.period.start",
        ),
        (
            json!({"participant": [{"individual": {"reference": "Patient/1"}}]}),
            "Encounter.participant[0]",
        ),
    ];
    for (patch, element) in cases {
        let mut v = enc("in-progress", "IMP", "4W", "4W 1");
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        let err = encounter(&v, VISITS).unwrap_err().to_string();
        assert!(err.contains(element), "{err} should name {element}");
    }
}

#[test]
fn new_encounters_open_by_status_and_class() {
    let t = |status: &str, class: &str| {
        encounter_events(
            &encounter(&enc(status, class, "4W", "4W 1"), VISITS).unwrap(),
            None,
        )
    };
    assert_eq!(t("planned", "IMP").unwrap(), [Trigger::A05]);
    assert_eq!(t("in-progress", "IMP").unwrap(), [Trigger::A01]);
    assert_eq!(t("in-progress", "AMB").unwrap(), [Trigger::A04]);
    assert_eq!(t("finished", "EMER").unwrap(), [Trigger::A04, Trigger::A03]);
    assert!(t("cancelled", "IMP").is_err());
}

#[test]
fn changes_map_to_the_adt_events_an_hl7_feed_would_send() {
    let t = |held: EncounterRow, status: &str, class: &str, display: &str| {
        let unit = display.split(' ').next().unwrap();
        encounter_events(
            &encounter(&enc(status, class, unit, display), VISITS).unwrap(),
            Some(&held),
        )
    };
    let here = || row("in-progress", "inpatient", "4W", "412", "A");
    use Trigger::*;
    assert_eq!(t(here(), "in-progress", "IMP", "4W 412-A").unwrap(), [A08]);
    assert_eq!(t(here(), "in-progress", "IMP", "5E 501-B").unwrap(), [A02, A08]);
    assert_eq!(t(here(), "finished", "IMP", "4W 412-A").unwrap(), [A03, A08]);
    assert_eq!(t(here(), "finished", "IMP", "5E 501").unwrap(), [A02, A03, A08]);
    assert_eq!(t(here(), "in-progress", "AMB", "4W 412-A").unwrap(), [A07, A08]);
    assert_eq!(t(here(), "cancelled", "IMP", "5E 501").unwrap(), [A11]);
    assert_eq!(
        t(
            row("finished", "inpatient", "4W", "412", "A"),
            "in-progress",
            "IMP",
            "4W 412-A"
        )
        .unwrap(),
        [A13, A08]
    );
    assert_eq!(
        t(
            row("planned", "outpatient", "4W", "412", "A"),
            "in-progress",
            "IMP",
            "4W 412-A"
        )
        .unwrap(),
        [A06, A01, A08]
    );
    assert!(
        t(
            row("cancelled", "inpatient", "4W", "412", "A"),
            "in-progress",
            "IMP",
            "4W 412-A"
        )
        .is_err()
    );
    assert!(t(here(), "planned", "IMP", "4W 412-A").is_err());
}

#[test]
fn a_patient_needs_its_mrn() {
    let v = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "M1"}],
        "name": [{"use": "old", "family": "Old"}, {"use": "official", "family": "Nguyen", "given": ["Anh", "Thi"]}],
        "birthDate": "1950-02-03", "gender": "female"});
    let p = patient(&v, "urn:mrn").unwrap();
    assert_eq!(p.mrn, "M1");
    assert_eq!(p.demographics.family.as_deref(), Some("Nguyen"));
    assert_eq!(p.demographics.given.as_deref(), Some("Anh Thi"));
    assert_eq!(
        (
            p.demographics.birth_date.as_deref(),
            p.demographics.sex.as_deref()
        ),
        (Some("1950-02-03"), Some("female"))
    );
    let err = patient(&v, "urn:other").unwrap_err().to_string();
    assert!(err.contains("Patient.identifier") && !err.contains("M1"), "{err}");
}
