use proptest::prelude::*;

use super::*;
use crate::hl7::er7::Er7;
use crate::hl7::mapping::UnsupportedEvents;

const A01: &str = "MSH|^~\\&|EPIC|GENHOSP|WARDLINE|GENHOSP|20261120080500||ADT^A01^ADT_A01|GH000101|P|2.5.1\r\
EVN|A01|20261120080000\r\
PID|1||MRN-100234^^^GENHOSP^MR||MÜLLER^ANNA||19580314|F\r\
PV1|1|I|4W^412^A||||1234567893^OSEI||||||||||||V-9001^^^GENHOSP^VN";

fn prep(raw: &[u8]) -> std::result::Result<Prepared, Box<Refused>> {
    prepare(raw, &Hl7Config::default(), chrono_tz::UTC).map_err(Box::new)
}

#[test]
fn a_good_message_is_applied() {
    let p = prep(A01.as_bytes()).unwrap();
    assert!(matches!(p.action, Action::Apply(_)));
    assert_eq!(p.header.control_id, "GH000101");
}

#[test]
fn sloppy_line_endings_are_normalised_before_storing() {
    let p = prep(A01.replace('\r', "\r\n").as_bytes()).unwrap();
    assert!(!p.text.contains('\n'));
    assert!(matches!(p.action, Action::Apply(_)));
}

#[test]
fn unusable_headers_and_unsupported_messages_are_refused() {
    let r = prep(b"garbage").unwrap_err();
    assert!(r.header.is_none());
    assert_eq!(r.rejection.code, "100");
    let r = prep(A01.replace("ADT^A01^ADT_A01", "ORU^R01").as_bytes()).unwrap_err();
    assert_eq!(r.rejection.code, "200");
    assert_eq!(r.header.unwrap().control_id, "GH000101", "the AR echoes MSH-10");
    let r = prep(A01.replace("|2.5.1", "|2.2").as_bytes()).unwrap_err();
    assert_eq!(r.rejection.code, "203");
}

#[test]
fn an_unreadable_segment_is_an_error_to_store_not_a_truncation() {
    let bad = A01.replace("\rPID|", "\rP\u{1}D|");
    let p = prep(bad.as_bytes()).unwrap();
    match p.action {
        Action::Fail(problem) => {
            assert_eq!(problem.code, "100");
            assert_eq!(problem.location.map(|l| l.1), Some(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn latin_1_only_when_declared() {
    let latin = A01;
    let bytes: Vec<u8> = latin.chars().map(|c| c as u32 as u8).collect();
    assert_eq!(prep(&bytes).unwrap_err().rejection.code, "103");
    let declared = latin.replace("|P|2.5.1", "|P|2.5.1||||||8859/1");
    let bytes: Vec<u8> = declared.chars().map(|c| c as u32 as u8).collect();
    match prep(&bytes).unwrap().action {
        Action::Apply(adt) => assert_eq!(adt.patient.demographics.family.as_deref(), Some("MÜLLER")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_events_are_ignored_or_refused_as_configured() {
    let a28 = A01.replace("ADT^A01^ADT_A01", "ADT^A28^ADT_A05");
    assert!(matches!(prep(a28.as_bytes()).unwrap().action, Action::Ignore));
    let cfg = Hl7Config {
        unsupported_events: UnsupportedEvents::Reject,
        ..Hl7Config::default()
    };
    let r = prepare(a28.as_bytes(), &cfg, chrono_tz::UTC).unwrap_err();
    assert_eq!(r.rejection.code, "200");
}

#[test]
fn ack_control_ids_fit_hl7_2_3() {
    let a = ack_control_id();
    assert_eq!(a.len(), 20);
    assert_ne!(a, ack_control_id());
}

fn segments() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("EVN|A01|20261120080000".to_string()),
        Just("PID|1||MRN-1^^^GENHOSP^MR||A^B||19580314|F".to_string()),
        Just("PV1|1|I|4W^1^A||||1^X||||||||||||V-1".to_string()),
        Just("MRG|MRN-2^^^GENHOSP^MR".to_string()),
        "[A-Z]{3}\\|[ -~]{0,40}",
        "\\PC{0,30}",
    ];
    prop::collection::vec(seg, 0..6).prop_map(|v| v.join("\r"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// No input panics the read path, and every outcome yields a parseable ACK.
    #[test]
    fn no_bytes_panic_the_read_path(raw in prop::collection::vec(any::<u8>(), 0..400)) {
        let now = chrono::Utc::now();
        match prep(&raw) {
            Ok(p) => { let _ = ack::build(Some(&p.header), &Verdict::Accept, "W1", now); }
            Err(r) => {
                let ack = ack::build(r.header.as_deref(), &Verdict::from(r.rejection), "W1", now);
                prop_assert!(Er7::parse(&ack).is_ok(), "unparseable ACK: {ack:?}");
            }
        }
    }

    /// Structured but hostile messages: random trigger, version, segments and escapes.
    #[test]
    fn no_message_panics_the_read_path(
        trigger in "[A-Z0-9]{0,4}",
        version in "[0-9.]{0,6}",
        body in segments(),
        escapes in "(\\\\[FSTRE]\\\\|\\\\X[0-9A-F]{0,5}\\\\?|é|\\\\){0,6}",
    ) {
        let text = format!(
            "MSH|^~\\&|EPIC|GENHOSP|WL|GH|20261120080500||ADT^{trigger}|C{escapes}1|P|{version}\r{body}{escapes}"
        );
        let now = chrono::Utc::now();
        let ack = match prep(text.as_bytes()) {
            Ok(p) => ack::build(Some(&p.header), &Verdict::Accept, "W1", now),
            Err(r) => ack::build(r.header.as_deref(), &Verdict::from(r.rejection), "W1", now),
        };
        let parsed = Er7::parse(&ack);
        prop_assert!(parsed.is_ok(), "unparseable ACK: {ack:?}");
    }
}
