//! Data-loss prevention before a message is stored (SPEC §8): social security numbers, payment
//! card numbers (Luhn-checked, so ordinary long numbers such as MRNs rarely trip it) and
//! configured patterns. Per room kind the response is off, warn (the sender must confirm),
//! block, or redact. Findings are audited by kind only, never with the matched text.

use std::collections::BTreeMap;
use std::ops::Range;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::model::RoomKind;

/// What to do when a message matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Do not check.
    Off,
    /// Refuse until the sender confirms (`confirm_dlp: true`), then store as written.
    Warn,
    /// Refuse.
    Block,
    /// Replace each match with `[REDACTED:kind]` and store.
    Redact,
}

/// DLP configuration (`[dlp]` in the TOML file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DlpConfig {
    /// Action per room kind (`patient_encounter`, `care_team`, `direct`, `role`).
    pub actions: BTreeMap<String, Action>,
    /// Extra patterns by name, e.g. `{ badge = "BADGE-[0-9]{6}" }`.
    pub patterns: BTreeMap<String, String>,
}

impl Default for DlpConfig {
    fn default() -> Self {
        let actions = [
            ("patient_encounter", Action::Warn),
            ("care_team", Action::Warn),
            ("direct", Action::Warn),
            ("role", Action::Warn),
        ]
        .into_iter()
        .map(|(k, a)| (k.to_string(), a))
        .collect();
        Self {
            actions,
            patterns: BTreeMap::new(),
        }
    }
}

/// One match: its kind and where it is (the text itself is never kept or logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `ssn`, `card` or a configured pattern name.
    pub kind: String,
    /// Byte range in the message.
    pub range: Range<usize>,
}

/// Compiled detectors.
#[derive(Debug)]
pub struct Scanner {
    ssn: Regex,
    card: Regex,
    custom: Vec<(String, Regex)>,
    actions: BTreeMap<String, Action>,
}

/// The scanner's verdict for one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Store the text unchanged.
    Pass,
    /// Store this redacted text instead.
    Redacted(String, Vec<String>),
    /// Ask the sender to confirm; the kinds found.
    NeedsConfirmation(Vec<String>),
    /// Refuse; the kinds found.
    Blocked(Vec<String>),
}

impl Scanner {
    /// Compiles the configuration; a bad custom pattern is a start-up error naming it.
    pub fn new(cfg: &DlpConfig) -> Result<Self, String> {
        let custom = cfg
            .patterns
            .iter()
            .map(|(name, re)| {
                Regex::new(re)
                    .map(|r| (name.clone(), r))
                    .map_err(|e| format!("dlp pattern '{name}': {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            ssn: Regex::new(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b").map_err(|e| e.to_string())?,
            card: Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").map_err(|e| e.to_string())?,
            custom,
            actions: cfg.actions.clone(),
        })
    }

    /// Every finding in `text`.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut out: Vec<Finding> = Vec::new();
        for m in self.ssn.find_iter(text) {
            if valid_ssn(m.as_str()) {
                out.push(Finding {
                    kind: "ssn".into(),
                    range: m.range(),
                });
            }
        }
        for m in self.card.find_iter(text) {
            let digits: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
            if luhn(&digits) {
                out.push(Finding {
                    kind: "card".into(),
                    range: m.range(),
                });
            }
        }
        for (name, re) in &self.custom {
            out.extend(re.find_iter(text).map(|m| Finding {
                kind: name.clone(),
                range: m.range(),
            }));
        }
        out.sort_by_key(|f| f.range.start);
        out
    }

    /// Applies the room kind's action to `text`.
    pub fn check(&self, kind: RoomKind, text: &str, confirmed: bool) -> Verdict {
        let action = self.actions.get(kind.as_str()).copied().unwrap_or(Action::Warn);
        if action == Action::Off {
            return Verdict::Pass;
        }
        let findings = self.scan(text);
        if findings.is_empty() {
            return Verdict::Pass;
        }
        let mut kinds: Vec<String> = findings.iter().map(|f| f.kind.clone()).collect();
        kinds.sort();
        kinds.dedup();
        match action {
            Action::Off => Verdict::Pass,
            Action::Warn if confirmed => Verdict::Pass,
            Action::Warn => Verdict::NeedsConfirmation(kinds),
            Action::Block => Verdict::Blocked(kinds),
            Action::Redact => Verdict::Redacted(redact(text, &findings), kinds),
        }
    }
}

fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in findings {
        if f.range.start < at {
            continue; // overlapping matches: the earlier one already covers it
        }
        out.push_str(&text[at..f.range.start]);
        out.push_str(&format!("[REDACTED:{}]", f.kind));
        at = f.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// SSA rules: no 000/666/9xx area, no 00 group, no 0000 serial.
fn valid_ssn(s: &str) -> bool {
    let d: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    let area = d[0] * 100 + d[1] * 10 + d[2];
    area != 0 && area != 666 && area < 900 && (d[3], d[4]) != (0, 0) && d[5..9].iter().any(|x| *x != 0)
}

/// The Luhn checksum used by payment cards.
pub fn luhn(digits: &[u32]) -> bool {
    if digits.len() < 13 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(action: Action) -> Scanner {
        let mut cfg = DlpConfig::default();
        cfg.actions.insert("direct".into(), action);
        cfg.patterns.insert("badge".into(), r"BADGE-\d{6}".into());
        Scanner::new(&cfg).unwrap()
    }

    #[test]
    fn finds_ssns_cards_and_custom_patterns_but_not_ordinary_numbers() {
        let s = scanner(Action::Warn);
        let kinds = |t: &str| s.scan(t).into_iter().map(|f| f.kind).collect::<Vec<_>>();
        assert_eq!(kinds("SSN 123-45-6789 on file"), ["ssn"]);
        assert_eq!(kinds("ssn 123 45 6789"), ["ssn"]);
        assert!(kinds("invalid 000-12-3456 or 666-12-3456 or 900-12-3456 or 123-00-4567").is_empty());
        assert_eq!(kinds("card 4111 1111 1111 1111 exp 12/29"), ["card"]);
        assert_eq!(kinds("card 4111-1111-1111-1111"), ["card"]);
        assert!(kinds("not a card 4111 1111 1111 1112").is_empty(), "Luhn fails");
        assert!(kinds("MRN 100234, bed 412, K+ 6.1, BP 120/80, phone 555-0100").is_empty());
        assert_eq!(kinds("badge BADGE-004512"), ["badge"]);
        assert_eq!(kinds("Ünïcødé 123-45-6789 ✓"), ["ssn"]);
    }

    #[test]
    fn actions_per_room_kind() {
        let text = "Pt SSN 123-45-6789, card 4111111111111111.";
        assert_eq!(
            scanner(Action::Off).check(RoomKind::Direct, text, false),
            Verdict::Pass
        );
        assert_eq!(
            scanner(Action::Warn).check(RoomKind::Direct, text, false),
            Verdict::NeedsConfirmation(vec!["card".into(), "ssn".into()])
        );
        assert_eq!(
            scanner(Action::Warn).check(RoomKind::Direct, text, true),
            Verdict::Pass
        );
        assert_eq!(
            scanner(Action::Block).check(RoomKind::Direct, text, true),
            Verdict::Blocked(vec!["card".into(), "ssn".into()])
        );
        assert_eq!(
            scanner(Action::Redact).check(RoomKind::Direct, text, false),
            Verdict::Redacted(
                "Pt SSN [REDACTED:ssn], card [REDACTED:card].".into(),
                vec!["card".into(), "ssn".into()]
            )
        );
        assert_eq!(
            scanner(Action::Block).check(RoomKind::Direct, "all clear", false),
            Verdict::Pass
        );
    }

    #[test]
    fn luhn_checksum() {
        assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert!(luhn(&[3, 7, 8, 2, 8, 2, 2, 4, 6, 3, 1, 0, 0, 0, 5]));
        assert!(!luhn(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]));
        assert!(!luhn(&[0, 0]));
    }

    #[test]
    fn bad_custom_patterns_are_named() {
        let mut cfg = DlpConfig::default();
        cfg.patterns.insert("broken".into(), "(".into());
        assert!(Scanner::new(&cfg).unwrap_err().contains("broken"));
    }
}
