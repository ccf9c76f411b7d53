//! Original-mode acknowledgements (SPEC §3), built with the `mllp` crate's ACK writer: the
//! reply swaps sender and receiver, echoes MSH-10 in MSA-2, and for AE/AR carries an ERR
//! segment naming the segment/field and the reason. This module adds what that writer leaves
//! to the caller: MSH-7 (time of the reply), a unique MSH-10, and the trigger event in MSH-9.

use chrono::{DateTime, Utc};
use mllp::{AckCode, AckContext, ErrorDetail, ErrorLocation, Separators, Severity};

use super::er7::{Delimiters, Er7};

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// AA: the message and all its effects are committed.
    Accept,
    /// AE: the content cannot be applied (HL7 table 0357 code, location, reason).
    Error {
        /// e.g. `101` required field missing, `103` table value not found, `207` application error.
        code: &'static str,
        /// Segment id, its position from 1, and the field, when known.
        location: Option<(String, u32, u32)>,
        /// Reason, for the interface analyst.
        reason: String,
    },
    /// AR: unusable header, unsupported type/version, or the server cannot commit now.
    Reject {
        /// HL7 table 0357 code, e.g. `200` unsupported message type, `203` unsupported version,
        /// `207` application internal error.
        code: &'static str,
        /// Reason.
        reason: String,
    },
}

fn separators(d: Option<Delimiters>) -> Separators {
    match d {
        Some(d) => Separators {
            field: d.field,
            component: d.component,
            repetition: d.repetition,
            escape: d.escape,
            subcomponent: d.subcomponent,
        },
        None => Separators::default(),
    }
}

/// Builds the ACK for `message` (or, when even its header could not be read, a bare AR).
pub fn build(message: Option<&Er7<'_>>, verdict: &Verdict, control_id: &str, now: DateTime<Utc>) -> String {
    let get = |f: usize| message.and_then(|m| m.value("MSH", f)).unwrap_or_default();
    let ctx = AckContext {
        control_id: get(10),
        sending_application: get(3),
        sending_facility: get(4),
        receiving_application: get(5),
        receiving_facility: get(6),
        version: get(12),
    };
    let seps = separators(message.map(Er7::delimiters));
    let mut ack = match verdict {
        Verdict::Accept => mllp::build_ack(&ctx, AckCode::Accept, control_id, "", seps),
        Verdict::Error {
            code,
            location,
            reason,
        } => {
            let mut detail = ErrorDetail::new(*code, reason.as_str(), Severity::Error);
            detail.location = location
                .as_ref()
                .map(|(seg, seq, field)| ErrorLocation::field(seg.clone(), *seq, *field));
            mllp::build_ack_enhanced(&ctx, AckCode::Error, control_id, reason, &detail, seps)
        }
        Verdict::Reject { code, reason } => {
            let detail = ErrorDetail::new(*code, reason.as_str(), Severity::Error);
            mllp::build_ack_enhanced(&ctx, AckCode::Reject, control_id, reason, &detail, seps)
        }
    };
    // MSH-7 and the trigger event of MSH-9 (`ACK^A01^ACK`), which the writer leaves empty.
    let trigger = message
        .and_then(|m| m.component("MSH", 0, 9, 2))
        .unwrap_or_default();
    let stamp = now.format("%Y%m%d%H%M%S%.3f+0000").to_string();
    let f = seps.field;
    let c = seps.component;
    let empty_time_and_type = format!("{f}{f}{f}ACK{f}");
    if let Some(pos) = ack.find(&empty_time_and_type) {
        let msh9 = if trigger.is_empty() {
            "ACK".to_string()
        } else {
            format!("ACK{c}{trigger}{c}ACK")
        };
        ack.replace_range(
            pos..pos + empty_time_and_type.len(),
            &format!("{f}{stamp}{f}{f}{msh9}{f}"),
        );
    }
    ack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::er7::normalize_segments;

    const ADT: &str = "MSH|^~\\&|MIRTH|GH|WARDLINE|GHW|20261123101500||ADT^A01^ADT_A01|MSG0001|P|2.5.1\rEVN|A01\rPID|1||MRN-1^^^GH^MR";

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T10:15:01.250Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn accept_swaps_parties_and_echoes_the_control_id() {
        let text = normalize_segments(ADT);
        let m = Er7::parse(&text).unwrap();
        let ack = build(Some(&m), &Verdict::Accept, "WL0001", now());
        let parsed = Er7::parse(&ack).unwrap();
        assert_eq!(parsed.value("MSH", 3).as_deref(), Some("WARDLINE"));
        assert_eq!(parsed.value("MSH", 5).as_deref(), Some("MIRTH"));
        assert_eq!(parsed.value("MSH", 7).as_deref(), Some("20261123101501.250+0000"));
        assert_eq!(parsed.component("MSH", 0, 9, 2).as_deref(), Some("A01"));
        assert_eq!(parsed.value("MSH", 10).as_deref(), Some("WL0001"));
        assert_eq!(parsed.value("MSA", 1).as_deref(), Some("AA"));
        assert_eq!(parsed.value("MSA", 2).as_deref(), Some("MSG0001"));
        assert_eq!(parsed.count("ERR"), 0);
    }

    #[test]
    fn errors_name_the_field_and_reason() {
        let text = normalize_segments(ADT);
        let m = Er7::parse(&text).unwrap();
        let v = Verdict::Error {
            code: "101",
            location: Some(("PID".into(), 3, 3)),
            reason: "PID-3 has no MRN".into(),
        };
        let ack = build(Some(&m), &v, "WL0002", now());
        let parsed = Er7::parse(&ack).unwrap();
        assert_eq!(parsed.value("MSA", 1).as_deref(), Some("AE"));
        assert_eq!(parsed.value("MSA", 2).as_deref(), Some("MSG0001"));
        assert_eq!(parsed.count("ERR"), 1);
        assert_eq!(parsed.component("ERR", 0, 2, 1).as_deref(), Some("PID"));
        assert_eq!(parsed.component("ERR", 0, 2, 3).as_deref(), Some("3"));
        assert_eq!(parsed.component("ERR", 0, 3, 1).as_deref(), Some("101"));
        assert!(ack.contains("PID-3 has no MRN"));
    }

    #[test]
    fn rejects_even_without_a_readable_header() {
        let v = Verdict::Reject {
            code: "207",
            reason: "the database is unavailable; retry".into(),
        };
        let ack = build(None, &v, "WL0003", now());
        let parsed = Er7::parse(&ack).unwrap();
        assert_eq!(parsed.value("MSA", 1).as_deref(), Some("AR"));
        assert_eq!(parsed.component("ERR", 0, 3, 1).as_deref(), Some("207"));
    }
}
