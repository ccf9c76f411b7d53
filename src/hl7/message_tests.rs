use super::*;
use crate::hl7::er7::normalize_segments;

const A01: &str = "MSH|^~\\&|EPIC|GENHOSP|WARDLINE|GENHOSP|20261120080500||ADT^A01^ADT_A01|GH000101|P|2.5.1\r\
EVN|A01|20261120080000\r\
PID|1||E-77812^^^GENHOSP^PI~MRN-100234^^^GENHOSP^MR||MÜLLER&van^ANNA^M^^^^L||19580314|F\r\
PV1|1|I|4W^412^A^GENHOSP||||1234567893^OSEI^KWAME~1679576722^LINDQVIST||1679576722^LINDQVIST||||||||1234567893^OSEI||V-9001^^^GENHOSP^VN|||||||||||||||||||||||||20261120080000";

fn read(text: &str) -> Result<Content, Problem> {
    let norm = normalize_segments(text);
    let m = Er7::parse(&norm).unwrap();
    let h = read_header(&m).unwrap();
    check_supported(&h).unwrap();
    read_content(&m, &h, &Hl7Config::default(), chrono_tz::UTC)
}

fn event(text: &str) -> Adt {
    match read(text).unwrap() {
        Content::Event(e) => *e,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn reads_an_admission() {
    let e = event(A01);
    assert_eq!(e.trigger, Trigger::A01);
    assert_eq!(e.event_at.to_rfc3339(), "2026-11-20T08:00:00+00:00");
    assert_eq!(e.patient.mrn, "MRN-100234");
    assert_eq!(
        e.patient.other_ids,
        vec![("GENHOSP".into(), "PI".into(), "E-77812".into())]
    );
    let d = &e.patient.demographics;
    assert_eq!(d.family.as_deref(), Some("MÜLLER"));
    assert_eq!(d.given.as_deref(), Some("ANNA"));
    assert_eq!(d.birth_date.as_deref(), Some("1958-03-14"));
    assert_eq!(d.sex.as_deref(), Some("female"));
    let v = e.visit.unwrap();
    assert_eq!(v.number.as_deref(), Some("V-9001"));
    assert_eq!(v.class, Some(Class::Inpatient));
    assert_eq!(v.location.label(), "4W 412 A");
    assert_eq!(v.attending, vec!["1234567893", "1679576722"]);
    assert_eq!(v.consulting, vec!["1679576722"]);
    assert_eq!(v.admitting, vec!["1234567893"]);
    assert!(v.admitted_at.is_some());
    assert_eq!(v.discharged_at, None);
}

#[test]
fn header_facts_for_acks_and_duplicates() {
    let norm = normalize_segments(A01);
    let m = Er7::parse(&norm).unwrap();
    let h = read_header(&m).unwrap();
    assert_eq!(h.sending_application, "EPIC");
    assert_eq!(h.control_id, "GH000101");
    assert_eq!(h.type_label(), "ADT^A01");
    assert_eq!(h.version, "2.5.1");
}

#[test]
fn the_trigger_falls_back_to_evn_1() {
    let text = A01.replace("ADT^A01^ADT_A01", "ADT");
    assert_eq!(event(&text).trigger, Trigger::A01);
}

#[test]
fn unsupported_types_versions_and_missing_control_ids_are_rejections() {
    let check = |text: String| {
        let norm = normalize_segments(&text).into_owned();
        let m = Er7::parse(&norm).unwrap();
        read_header(&m)
            .and_then(|h| check_supported(&h))
            .unwrap_err()
            .code
    };
    assert_eq!(check(A01.replace("ADT^A01^ADT_A01", "ORU^R01")), "200");
    assert_eq!(check(A01.replace("|P|2.5.1", "|P|2.1")), "203");
    assert_eq!(check(A01.replace("|P|2.5.1", "|P|")), "203");
    assert_eq!(check(A01.replace("|GH000101|", "||")), "101");
    for v in ["2.3", "2.3.1", "2.4", "2.6", "2.7.1", "2.8.2"] {
        let norm = A01.replace("|P|2.5.1", &format!("|P|{v}"));
        let m = Er7::parse(&norm).unwrap();
        assert!(check_supported(&read_header(&m).unwrap()).is_ok(), "{v}");
    }
}

#[test]
fn unknown_adt_triggers_are_unsupported_not_errors() {
    let text = A01.replace("ADT^A01^ADT_A01", "ADT^A28^ADT_A05");
    assert_eq!(read(&text).unwrap(), Content::Unsupported("A28".into()));
}

#[test]
fn a_missing_mrn_names_pid_3() {
    let text = A01.replace("~MRN-100234^^^GENHOSP^MR", "");
    let p = read(&text).unwrap_err();
    assert_eq!((p.code, p.location), ("101", Some(("PID".into(), 1, 3))));
    assert!(!p.reason.contains("E-77812"), "no identifier values in reasons");
}

#[test]
fn the_mrn_authority_is_configurable() {
    let norm = normalize_segments(A01);
    let m = Er7::parse(&norm).unwrap();
    let h = read_header(&m).unwrap();
    let cfg = Hl7Config {
        mrn_authority: "GENHOSP".into(),
        mrn_type: "PI".into(),
        ..Hl7Config::default()
    };
    match read_content(&m, &h, &cfg, chrono_tz::UTC).unwrap() {
        Content::Event(e) => assert_eq!(e.patient.mrn, "E-77812"),
        other => panic!("{other:?}"),
    }
    let cfg = Hl7Config {
        mrn_authority: "OTHERHOSP".into(),
        ..Hl7Config::default()
    };
    assert!(read_content(&m, &h, &cfg, chrono_tz::UTC).is_err());
}

#[test]
fn encounter_events_need_a_visit_number() {
    let text = A01.replace("V-9001^^^GENHOSP^VN", "");
    let p = read(&text).unwrap_err();
    assert_eq!(p.location, Some(("PV1".into(), 1, 19)));
    // Demographic updates do not.
    let a08 = text.replace("ADT^A01^ADT_A01", "ADT^A08^ADT_A01");
    assert_eq!(event(&a08).trigger, Trigger::A08);
}

#[test]
fn bad_times_name_their_field() {
    let p = read(&A01.replace("EVN|A01|20261120080000", "EVN|A01|20261340")).unwrap_err();
    assert_eq!((p.code, p.location), ("102", Some(("EVN".into(), 1, 2))));
    let p = read(&A01.replace("||19580314|", "||1958-03-14|")).unwrap_err();
    assert_eq!(p.location, Some(("PID".into(), 1, 7)));
    // Without EVN-2 the message time is used.
    let no_evn = A01.replace("EVN|A01|20261120080000", "EVN|A01");
    assert_eq!(event(&no_evn).event_at.to_rfc3339(), "2026-11-20T08:05:00+00:00");
}

#[test]
fn merges_need_a_prior_mrn() {
    let a40 = "MSH|^~\\&|EPIC|GENHOSP|WARDLINE|GENHOSP|20261124090000||ADT^A40^ADT_A39|GH000140|P|2.5.1\r\
EVN|A40|20261124090000\r\
PID|1||MRN-100234^^^GENHOSP^MR||MÜLLER^ANNA||19580314|F\r\
MRG|MRN-100999^^^GENHOSP^MR";
    assert_eq!(event(a40).prior_mrn.as_deref(), Some("MRN-100999"));
    let p = read(&a40.replace("MRG|MRN-100999^^^GENHOSP^MR", "MRG|")).unwrap_err();
    assert_eq!(p.location, Some(("MRG".into(), 1, 1)));
}

#[test]
fn escapes_and_non_ascii_in_names() {
    let text = A01.replace("MÜLLER&van^ANNA", "Ñúñez\\T\\Sørensen^Zoë\\F\\");
    let e = event(&text);
    assert_eq!(e.patient.demographics.family.as_deref(), Some("Ñúñez&Sørensen"));
    assert_eq!(e.patient.demographics.given.as_deref(), Some("Zoë|"));
}
