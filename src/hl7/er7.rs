//! Reading HL7 v2 ER7 text on top of `hl7-parser` 0.3.0, with guards for its known defects
//! (SPEC §11), each pinned by a test below:
//! - strict parsing treats `\n`-separated segments as one segment → segment separators are
//!   normalised to `\r` first;
//! - parsing stops silently at the first unreadable segment and still returns `Ok` → the parsed
//!   segment count is checked against the text, and the first unreadable segment is named;
//! - its escape decoding panics on or corrupts text after non-ASCII characters, and does not
//!   decode `\Xhh\` → values are decoded here instead ([`decode_escapes`]), char by char.

use std::borrow::Cow;

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Er7Error {
    /// The text does not start with a usable MSH segment.
    #[error("the message does not start with a valid MSH segment: {0}")]
    BadHeader(String),
    /// A segment could not be parsed; `index` counts from 1 (MSH is 1).
    #[error("segment {index} ({name}) cannot be parsed")]
    UnreadableSegment {
        /// Position of the segment, from 1.
        index: usize,
        /// Its first characters.
        name: String,
    },
}

/// Delimiters declared in MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Field separator (MSH-1).
    pub field: char,
    /// Component separator.
    pub component: char,
    /// Repetition separator.
    pub repetition: char,
    /// Escape character.
    pub escape: char,
    /// Subcomponent separator.
    pub subcomponent: char,
}

/// Turns `\r\n` and `\n` segment separators into `\r`, trims blank trailing lines.
pub fn normalize_segments(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\n') {
        return Cow::Borrowed(raw.trim_end_matches('\r'));
    }
    let joined = raw
        .split(['\r', '\n'])
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\r");
    Cow::Owned(joined)
}

/// A parsed message (over already normalised text).
pub struct Er7<'m> {
    message: hl7_parser::Message<'m>,
    delimiters: Delimiters,
}

impl<'m> Er7<'m> {
    /// Parses normalised text, refusing messages the parser would silently truncate.
    pub fn parse(text: &'m str) -> Result<Self, Er7Error> {
        let delimiters = delimiters(text)?;
        let message = hl7_parser::Message::parse(text).map_err(|e| Er7Error::BadHeader(e.to_string()))?;
        let parsed = message.segments().count();
        let lines: Vec<&str> = text.split('\r').filter(|l| !l.is_empty()).collect();
        if parsed != lines.len() {
            let index = parsed + 1;
            let name: String = lines
                .get(parsed)
                .map(|l| l.chars().take(3).collect())
                .unwrap_or_default();
            return Err(Er7Error::UnreadableSegment { index, name });
        }
        Ok(Self { message, delimiters })
    }

    /// The declared delimiters.
    pub fn delimiters(&self) -> Delimiters {
        self.delimiters
    }

    /// Number of segments named `name`.
    pub fn count(&self, name: &str) -> usize {
        self.message.segment_count(name)
    }

    /// A component of a field of the `n`-th (from 0) segment named `segment`, escapes decoded.
    /// `field` and `component` count from 1 as in HL7 (MSH-9.2 is `("MSH", 0, 9, 2)`); empty
    /// values are `None`.
    pub fn component(&self, segment: &str, n: usize, field: usize, component: usize) -> Option<String> {
        let seg = self.message.segment_n(segment, n + 1)?;
        let raw = if segment == "MSH" && field == 1 {
            return Some(self.delimiters.field.to_string());
        } else {
            let f = seg.field(field)?;
            let rep = f.repeat(1)?;
            rep.component(component)?.raw_value()
        };
        if raw.is_empty() {
            None
        } else {
            Some(decode_escapes(raw, &self.delimiters))
        }
    }

    /// A whole field as sent (components and escapes intact), for keys and echoes such as the
    /// duplicate key and the ACK header; empty values are `None`.
    pub fn raw_field(&self, segment: &str, n: usize, field: usize) -> Option<&'m str> {
        let seg = self.message.segment_n(segment, n + 1)?;
        let raw = seg.field(field)?.raw_value();
        (!raw.is_empty()).then_some(raw)
    }

    /// The first subcomponent of a component of the first such segment (PID-5.1.1, the
    /// surname), escapes decoded.
    pub fn subcomponent_1(&self, segment: &str, field: usize, component: usize) -> Option<String> {
        let seg = self.message.segment_n(segment, 1)?;
        let raw = seg.field(field)?.repeat(1)?.component(component)?.raw_value();
        let first = raw.split(self.delimiters.subcomponent).next().unwrap_or_default();
        (!first.is_empty()).then(|| decode_escapes(first, &self.delimiters))
    }

    /// The first component of a field.
    pub fn value(&self, segment: &str, field: usize) -> Option<String> {
        self.component(segment, 0, field, 1)
    }

    /// All repetitions of a field (raw, escapes still encoded), for identifier lists like PID-3.
    pub fn repetitions(&self, segment: &str, n: usize, field: usize) -> Vec<Vec<String>> {
        let Some(f) = self
            .message
            .segment_n(segment, n + 1)
            .and_then(|s| s.field(field))
        else {
            return Vec::new();
        };
        f.repeats()
            .map(|r| {
                r.components()
                    .map(|c| decode_escapes(c.raw_value(), &self.delimiters))
                    .collect()
            })
            .collect()
    }
}

fn delimiters(text: &str) -> Result<Delimiters, Er7Error> {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(3).collect();
    if head != "MSH" {
        return Err(Er7Error::BadHeader("the first segment is not MSH".into()));
    }
    let d: Vec<char> = chars.take(5).collect();
    if d.len() < 5 || d[1..5].contains(&d[0]) || d[1..5].iter().any(|c| c.is_alphanumeric()) {
        return Err(Er7Error::BadHeader(
            "MSH-1/MSH-2 do not declare usable delimiters".into(),
        ));
    }
    Ok(Delimiters {
        field: d[0],
        component: d[1],
        repetition: d[2],
        escape: d[3],
        subcomponent: d[4],
    })
}

/// Decodes HL7 escape sequences in a value: `\F\ \S\ \T\ \R\ \E\` become the delimiters,
/// `\Xhh…\` becomes the bytes it spells (UTF-8, or Latin-1 when they are not UTF-8), `\.br\`
/// becomes a line break; other formatting escapes and anything malformed are kept as written.
/// Works on characters, so multi-byte text before or after an escape is never split.
pub fn decode_escapes(value: &str, d: &Delimiters) -> String {
    if !value.contains(d.escape) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(d.escape) {
        out.push_str(&rest[..start]);
        let after = &rest[start + d.escape.len_utf8()..];
        let Some(end) = after.find(d.escape) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let seq = &after[..end];
        match seq {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            ".br" => out.push('\n'),
            _ if seq.len() > 1 && seq.starts_with('X') => match hex_bytes(&seq[1..]) {
                // NUL is never data (and PostgreSQL text cannot hold it): it becomes U+FFFD.
                Some(bytes) => match String::from_utf8(bytes) {
                    Ok(s) => out.push_str(&s.replace('\0', "\u{FFFD}")),
                    Err(e) => out.extend(e.into_bytes().iter().map(|b| match b {
                        0 => '\u{FFFD}',
                        b => char::from(*b),
                    })),
                },
                None => {
                    out.push(d.escape);
                    out.push_str(seq);
                    out.push(d.escape);
                }
            },
            _ => {
                out.push(d.escape);
                out.push_str(seq);
                out.push(d.escape);
            }
        }
        rest = &after[end + d.escape.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Escapes the delimiters in free text (ACK reasons) so it cannot break the segment it is in;
/// control characters become spaces.
pub fn encode_escapes(text: &str, d: &Delimiters) -> String {
    let mut out = String::with_capacity(text.len());
    let e = d.escape;
    for c in text.chars() {
        let code = if c == d.field {
            Some('F')
        } else if c == d.component {
            Some('S')
        } else if c == d.subcomponent {
            Some('T')
        } else if c == d.repetition {
            Some('R')
        } else if c == e {
            Some('E')
        } else {
            None
        };
        match code {
            Some(code) => {
                out.push(e);
                out.push(code);
                out.push(e);
            }
            None if c.is_control() => out.push(' '),
            None => out.push(c),
        }
    }
    out
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Delimiters = Delimiters {
        field: '|',
        component: '^',
        repetition: '~',
        escape: '\\',
        subcomponent: '&',
    };
    const ADT: &str = "MSH|^~\\&|EPIC|GH|WARDLINE|GH|20261123101500||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r\
EVN|A01|20261123101500\r\
PID|1||MRN-100234^^^GH^MR~V-9001^^^GH^VN||MÜLLER^ANNA^^^^^L||19580314|F\r\
PV1|1|I|4W^412^A^GH||||1234567893^OSEI^KWAME";

    #[test]
    fn reads_fields_components_and_repetitions() {
        let m = Er7::parse(ADT).unwrap();
        assert_eq!(m.value("MSH", 10).as_deref(), Some("MSG0001"));
        assert_eq!(m.component("MSH", 0, 9, 2).as_deref(), Some("A01"));
        assert_eq!(m.value("MSH", 1).as_deref(), Some("|"));
        assert_eq!(m.component("PID", 0, 5, 1).as_deref(), Some("MÜLLER"));
        assert_eq!(m.component("PV1", 0, 3, 2).as_deref(), Some("412"));
        let ids = m.repetitions("PID", 0, 3);
        assert_eq!(ids.len(), 2);
        assert_eq!((ids[1][0].as_str(), ids[1][4].as_str()), ("V-9001", "VN"));
        assert_eq!(m.value("PID", 30), None);
    }

    /// hl7-parser defect 1: strict parsing reads `\n`-separated messages as one segment.
    #[test]
    fn newline_separated_messages_are_normalised() {
        let lf = ADT.replace('\r', "\n");
        let raw = hl7_parser::Message::parse(&lf);
        assert!(
            raw.map(|m| m.segments().count() != 4).unwrap_or(true),
            "the defect is still there"
        );
        for text in [lf.clone(), ADT.replace('\r', "\r\n"), format!("{ADT}\r\n\r\n")] {
            let norm = normalize_segments(&text);
            let m = Er7::parse(&norm).unwrap();
            assert_eq!((m.count("PID"), m.count("PV1")), (1, 1));
            assert_eq!(m.component("PV1", 0, 7, 2).as_deref(), Some("OSEI"));
        }
    }

    /// hl7-parser defect 2: parsing stops at the first unreadable segment and still returns Ok.
    #[test]
    fn unreadable_segments_are_errors_not_silent_truncation() {
        let bad = ADT.replace("\rPID|", "\rP\u{1}D|");
        let raw = hl7_parser::Message::parse(&bad).map(|m| m.segments().count());
        assert!(
            matches!(raw, Ok(2)),
            "hl7-parser silently keeps 2 of 4 segments: {raw:?}"
        );
        match Er7::parse(&bad) {
            Err(Er7Error::UnreadableSegment { index, .. }) => assert_eq!(index, 3),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => panic!("a truncated message was accepted"),
        }
    }

    /// hl7-parser defect 3: escape decoding panics on or corrupts text next to non-ASCII.
    #[test]
    fn escapes_next_to_non_ascii_decode_correctly() {
        let seps = hl7_parser::message::Separators::default();
        let raw = std::panic::catch_unwind(|| seps.decode("ééé\\F\\x").to_string());
        assert!(raw.is_err(), "hl7-parser panics on this input");
        assert_eq!(
            seps.decode("CAFÉ \\T\\ CO").to_string(),
            "CAFÉ \\ CO",
            "and corrupts this one"
        );
        assert_eq!(decode_escapes("ééé\\F\\x", &D), "ééé|x");
        assert_eq!(decode_escapes("CAFÉ \\T\\ CO", &D), "CAFÉ & CO");
        assert_eq!(decode_escapes("a\\S\\b\\R\\c\\E\\d", &D), "a^b~c\\d");
        assert_eq!(decode_escapes("line1\\.br\\line2", &D), "line1\nline2");
    }

    /// hl7-parser defect 4: `\Xhh\` is not decoded.
    #[test]
    fn hex_escapes_decode() {
        let seps = hl7_parser::message::Separators::default();
        assert_eq!(
            seps.decode("\\X41\\").to_string(),
            "X41",
            "hl7-parser does not decode \\X"
        );
        assert_eq!(decode_escapes("\\X41\\BC", &D), "ABC");
        assert_eq!(decode_escapes("a\\X00\\b", &D), "a\u{FFFD}b", "NUL is never data");
        assert_eq!(decode_escapes("M\\XC3BC\\ller", &D), "Müller", "UTF-8 bytes");
        assert_eq!(decode_escapes("M\\XFC\\ller", &D), "Müller", "Latin-1 fallback");
        assert_eq!(
            decode_escapes("bad \\XZZ\\ and \\X4\\", &D),
            "bad \\XZZ\\ and \\X4\\"
        );
        assert_eq!(decode_escapes("unterminated \\F", &D), "unterminated \\F");
        assert_eq!(decode_escapes("\\H\\bold\\N\\", &D), "\\H\\bold\\N\\");
    }

    #[test]
    fn free_text_is_escaped_and_reads_back() {
        let text = "a|b^c~d\\e&f\rg";
        let enc = encode_escapes(text, &D);
        assert_eq!(enc, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f g");
        assert_eq!(decode_escapes(&enc, &D), "a|b^c~d\\e&f g");
    }

    #[test]
    fn unusable_headers_are_named() {
        assert!(matches!(Er7::parse("PID|1"), Err(Er7Error::BadHeader(_))));
        assert!(matches!(Er7::parse("MSH|^|"), Err(Er7Error::BadHeader(_))));
        assert!(matches!(Er7::parse(""), Err(Er7Error::BadHeader(_))));
    }
}
