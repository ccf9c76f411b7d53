use super::*;
use chrono::DateTime;

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn ms(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

#[test]
fn patient_parameters_map_to_the_query() {
    let s = patient(
        &q(&[
            ("identifier", "urn:mrn|123"),
            ("family", "Ngu"),
            ("birthdate", "1950-02-03"),
            ("_count", "5"),
        ]),
        false,
    )
    .unwrap();
    assert_eq!(s.query.identifier_system.as_deref(), Some("urn:mrn"));
    assert_eq!(s.query.identifier_value.as_deref(), Some("123"));
    assert_eq!(s.query.family.as_deref(), Some("Ngu"));
    assert_eq!(s.query.birth_from.as_deref(), Some("1950-02-03"));
    assert_eq!(s.query.birth_to.as_deref(), Some("1950-02-03"));
    assert_eq!(s.page.count, 5);
    assert_eq!(s.applied.len(), 4);
    let s = patient(&q(&[("identifier", "|9"), ("birthdate", "1950")]), false).unwrap();
    assert_eq!(
        (
            s.query.identifier_system.as_deref(),
            s.query.identifier_value.as_deref()
        ),
        (Some(""), Some("9"))
    );
    assert_eq!(
        (s.query.birth_from.as_deref(), s.query.birth_to.as_deref()),
        (Some("1950-01-01"), Some("1950-12-31"))
    );
}

#[test]
fn date_prefixes_and_repeats_make_a_range() {
    let (from, to) = date_range("d", ["ge2024-03-01", "lt2024-04-01"].into_iter()).unwrap();
    assert_eq!(from, Some(ms("2024-03-01T00:00:00Z")));
    assert_eq!(to, Some(ms("2024-04-01T00:00:00Z") - 1));
    let (from, to) = date_range("d", ["2024-02"].into_iter()).unwrap();
    assert_eq!(
        (from, to),
        (
            Some(ms("2024-02-01T00:00:00Z")),
            Some(ms("2024-03-01T00:00:00Z") - 1)
        )
    );
    let (from, to) = date_range("d", ["gt2024-12-31", "le2025-01-01T10:00:00+01:00"].into_iter()).unwrap();
    assert_eq!(
        (from, to),
        (Some(ms("2025-01-01T00:00:00Z")), Some(ms("2025-01-01T09:00:00Z")))
    );
    for bad in ["2024-13-01", "yesterday", "ne2024-01-01", "2024-1-1"] {
        assert!(date_range("d", [bad].into_iter()).is_err(), "{bad}");
    }
}

#[test]
fn unknown_parameters_are_ignored_unless_strict() {
    let s = patient(&q(&[("colour", "blue"), ("family", "A")]), false).unwrap();
    assert_eq!(s.applied, q(&[("family", "A")]));
    assert!(patient(&q(&[("colour", "blue")]), true).is_err());
    // Neither the page position nor the format is a criterion: links add their own.
    let s = patient(&q(&[("_offset", "40"), ("_format", "json")]), true).unwrap();
    assert_eq!((s.page.offset, s.applied.len()), (40, 0));
}

#[test]
fn modifiers_lists_repeats_and_bad_values_are_refused() {
    for bad in [
        vec![("family:exact", "A")],
        vec![("identifier", "a,b")],
        vec![("_count", "-1")],
        vec![("family", "A"), ("family", "B")],
        vec![("birthdate", "")],
    ] {
        assert!(patient(&q(&bad), false).is_err(), "{bad:?}");
    }
    assert!(encounter(&q(&[("status", "arrived")]), false).is_err());
    assert!(encounter(&q(&[("patient", "Practitioner/1")]), false).is_err());
    assert!(communication(&q(&[("priority", "asap")]), false).is_err());
    assert!(care_team(&q(&[("status", "proposed")]), false).is_err());
    assert_eq!(
        patient(&q(&[("_count", "100000")]), false).unwrap().page.count,
        MAX_COUNT
    );
}

#[test]
fn references_accept_relative_absolute_and_bare_ids() {
    for v in ["Patient/p1", "https://ehr.example/fhir/Patient/p1", "p1"] {
        let s = encounter(&q(&[("subject", v)]), false).unwrap();
        assert_eq!(s.query.patient_id.as_deref(), Some("p1"), "{v}");
    }
    let s = communication(
        &q(&[("recipient", "CareTeam/r1"), ("sender", "Practitioner/u1")]),
        false,
    )
    .unwrap();
    assert_eq!(
        (s.query.room_id.as_deref(), s.query.sender_id.as_deref()),
        (Some("r1"), Some("u1"))
    );
    let s = care_team(&q(&[("status", "inactive")]), false).unwrap();
    assert_eq!(s.query.statuses, Some(("read_only".into(), "archived".into())));
}

#[test]
fn practitioner_identifiers_pick_npi_or_username() {
    let npi = "http://hl7.org/fhir/sid/us-npi";
    let s = practitioner(
        &q(&[("identifier", "http://hl7.org/fhir/sid/us-npi|123")]),
        false,
        npi,
    )
    .unwrap();
    assert_eq!(s.query.npi.as_deref(), Some("123"));
    let s = practitioner(&q(&[("identifier", "urn:wardline:username|dr.osei")]), false, npi).unwrap();
    assert_eq!(s.query.username.as_deref(), Some("dr.osei"));
    let s = practitioner(&q(&[("identifier", "urn:other|1")]), false, npi).unwrap();
    assert_eq!(s.query.id.as_deref(), Some(""));
}

#[test]
fn practitioner_roles_filter_by_service_person_and_now() {
    let now = ms("2026-03-07T13:00:00Z");
    let s = practitioner_role(
        &q(&[
            ("specialty", "urn:wardline:service|cardiology"),
            ("active", "true"),
        ]),
        false,
        now,
    )
    .unwrap();
    assert_eq!(
        (s.query.service.as_deref(), s.query.covering, s.query.not_covering),
        (Some("cardiology"), Some(now), None)
    );
    let s = practitioner_role(
        &q(&[("practitioner", "Practitioner/u1"), ("active", "false")]),
        false,
        now,
    )
    .unwrap();
    assert_eq!(
        (s.query.user_id.as_deref(), s.query.not_covering),
        (Some("u1"), Some(now))
    );
    assert!(practitioner_role(&q(&[("active", "yes")]), false, now).is_err());
}
