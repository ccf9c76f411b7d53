//! Original-mode acknowledgements (SPEC §3): the reply swaps sender and receiver, echoes MSH-10
//! in MSA-2 and MSH-11 (processing id), names the trigger in MSH-9 (`ACK^A01^ACK`), and for AE/AR
//! carries an ERR segment with the location (ERR-2) and HL7 table 0357 code (ERR-3).
//!
//! Written here rather than with the `mllp` crate's ACK writer, which puts the error code in
//! MSA-4 (the *expected sequence number* since v2.4), always sends MSH-11 `P`, and leaves MSH-7
//! and the trigger empty; its framing decoder is used by the listener.

use chrono::{DateTime, Utc};

use super::er7::{Delimiters, encode_escapes};
use super::message::{Header, Problem, Rejection};

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
        /// Segment id, position and field, when known.
        location: Option<(String, u32, u32)>,
        /// Reason.
        reason: String,
    },
}

impl From<Problem> for Verdict {
    fn from(p: Problem) -> Self {
        Verdict::Error {
            code: p.code,
            location: p.location,
            reason: p.reason,
        }
    }
}

impl From<Rejection> for Verdict {
    fn from(r: Rejection) -> Self {
        Verdict::Reject {
            code: r.code,
            location: r.location,
            reason: r.reason,
        }
    }
}

impl Verdict {
    /// MSA-1 of this verdict.
    pub fn code(&self) -> &'static str {
        match self {
            Verdict::Accept => "AA",
            Verdict::Error { .. } => "AE",
            Verdict::Reject { .. } => "AR",
        }
    }

    /// An AR for when the server cannot commit: the sender should retry.
    pub fn unavailable() -> Self {
        Verdict::Reject {
            code: "207",
            location: None,
            reason: "the message could not be stored now; retry".into(),
        }
    }
}

const DEFAULT_DELIMITERS: Delimiters = Delimiters {
    field: '|',
    component: '^',
    repetition: '~',
    escape: '\\',
    subcomponent: '&',
};

/// Builds the ACK for a message with `header` (or, when even its header could not be read, a
/// bare AR). Header fields are echoed as sent, so their escapes stay valid; reasons are escaped.
pub fn build(header: Option<&Header>, verdict: &Verdict, control_id: &str, now: DateTime<Utc>) -> String {
    let d = header.map(|h| h.delimiters).unwrap_or(DEFAULT_DELIMITERS);
    let (f, c) = (d.field, d.component);
    let get = |pick: fn(&Header) -> &str| header.map(pick).unwrap_or_default();
    // Trigger, processing id and version were read with escapes decoded: escape them again, or
    // a `\.br\` or `\F\` in them would break the ACK's MSH (found by the fuzz target).
    let again = |v: &str| encode_escapes(v, &d);
    let version = match get(|h| &h.version) {
        "" => "2.5.1".to_string(),
        v => again(v),
    };
    let processing = match get(|h| &h.processing_id) {
        "" => "P".to_string(),
        p => again(p),
    };
    let msh9 = match get(|h| &h.trigger) {
        "" => "ACK".to_string(),
        t => format!("ACK{c}{}{c}ACK", again(t)),
    };
    let stamp = now.format("%Y%m%d%H%M%S%.3f+0000");
    let mut out = format!(
        "MSH{f}{c}{r}{e}{s}{f}{ra}{f}{rf}{f}{sa}{f}{sf}{f}{stamp}{f}{f}{msh9}{f}{control_id}{f}{processing}{f}{version}\r",
        r = d.repetition,
        e = d.escape,
        s = d.subcomponent,
        ra = get(|h| &h.receiving_application),
        rf = get(|h| &h.receiving_facility),
        sa = get(|h| &h.sending_application),
        sf = get(|h| &h.sending_facility),
    );
    let original = get(|h| &h.control_id);
    match verdict {
        Verdict::Accept => out.push_str(&format!("MSA{f}AA{f}{original}\r")),
        Verdict::Error {
            code,
            location,
            reason,
        }
        | Verdict::Reject {
            code,
            location,
            reason,
        } => {
            let reason = encode_escapes(reason, &d);
            let ack_code = verdict.code();
            let loc = location
                .as_ref()
                .map(|(seg, seq, field)| format!("{}{c}{seq}{c}{field}", encode_escapes(seg, &d)))
                .unwrap_or_default();
            out.push_str(&format!("MSA{f}{ack_code}{f}{original}{f}{reason}\r"));
            out.push_str(&format!("ERR{f}{f}{loc}{f}{code}{c}{reason}{c}HL70357{f}E\r"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::er7::{Er7, normalize_segments};
    use crate::hl7::message::read_header;

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
        let h = read_header(&m).unwrap();
        let ack = build(Some(&h), &Verdict::Accept, "WL0001", now());
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
        let h = read_header(&m).unwrap();
        let ack = build(Some(&h), &v, "WL0002", now());
        let parsed = Er7::parse(&ack).unwrap();
        assert_eq!(parsed.value("MSA", 1).as_deref(), Some("AE"));
        assert_eq!(parsed.value("MSA", 2).as_deref(), Some("MSG0001"));
        assert_eq!(parsed.count("ERR"), 1);
        assert_eq!(parsed.component("ERR", 0, 2, 1).as_deref(), Some("PID"));
        assert_eq!(parsed.component("ERR", 0, 2, 3).as_deref(), Some("3"));
        assert_eq!(parsed.component("ERR", 0, 3, 1).as_deref(), Some("101"));
        assert!(ack.contains("PID-3 has no MRN"));
        assert_eq!(
            parsed.value("MSA", 4),
            None,
            "MSA-4 is the expected sequence number, not a code"
        );
    }

    #[test]
    fn processing_id_is_echoed_and_reasons_are_escaped() {
        let text = normalize_segments(ADT).replace("|P|2.5.1", "|T|2.5.1");
        let m = Er7::parse(&text).unwrap();
        let h = read_header(&m).unwrap();
        let v = Verdict::Reject {
            code: "203",
            location: Some(("MSH".into(), 1, 12)),
            reason: "version \"2|1\" is not supported".into(),
        };
        let ack = build(Some(&h), &v, "WL0004", now());
        let parsed = Er7::parse(&ack).unwrap();
        assert_eq!(parsed.value("MSH", 11).as_deref(), Some("T"));
        assert_eq!(parsed.value("MSA", 1).as_deref(), Some("AR"));
        assert_eq!(
            parsed.value("MSA", 3).as_deref(),
            Some("version \"2|1\" is not supported")
        );
        assert_eq!(parsed.component("ERR", 0, 2, 3).as_deref(), Some("12"));
    }

    /// Found by `fuzz/` (mllp_ingest): decoded header values were echoed unescaped.
    #[test]
    fn escapes_in_echoed_header_fields_cannot_break_the_ack() {
        let cfg = crate::hl7::Hl7Config::default();
        for raw in [
            &b"MSH|^~\\&E|P|ARDINE|ENHOSP|2||01|GH^^G|\\.br\\\r00"[..],
            b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|\\.br\\P|2.5.1",
            b"MSH|^~\\&|A|B|C|D|20260101||ADT^A\\.br\\|1|P|2.5.1\rEVN|A01",
            b"MSH|^~\\&|A|B|C|D|20260101||ADT^A\\F\\01|1|P\\S\\|2.5.1",
        ] {
            let (header, verdict) = match crate::hl7::read::prepare(raw, &cfg, chrono_tz::UTC) {
                Ok(p) => (Some(p.header), Verdict::Accept),
                Err(r) => (r.header.map(|h| *h), Verdict::from(r.rejection)),
            };
            let ack = build(header.as_ref(), &verdict, "W1", now());
            let norm = normalize_segments(&ack);
            let parsed = Er7::parse(&norm).unwrap_or_else(|e| panic!("{e}: {ack:?}"));
            assert_eq!(parsed.count("MSA"), 1, "{ack:?}");
            assert!(!ack.contains('\n'), "{ack:?}");
        }
    }

    #[test]
    fn rejects_even_without_a_readable_header() {
        let v = Verdict::unavailable();
        let ack = build(None, &v, "WL0003", now());
        let parsed = Er7::parse(&ack).unwrap();
        assert_eq!(parsed.value("MSA", 1).as_deref(), Some("AR"));
        assert_eq!(parsed.component("ERR", 0, 3, 1).as_deref(), Some("207"));
    }
}
