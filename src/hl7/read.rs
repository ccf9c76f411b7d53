//! Reading one frame into what the pipeline does with it: store-and-apply, store-as-error,
//! store-as-ignored, or refuse (AR, nothing stored). Pure and total, so it runs on each
//! connection's task and is what the fuzz and property tests drive.

use chrono_tz::Tz;

use super::er7::{Er7, Er7Error, normalize_segments};
use super::mapping::{Hl7Config, UnsupportedEvents};
use super::message::{self, Adt, Content, Header, Problem, Rejection};

/// A message read far enough to be stored: its header and what it asks for.
#[derive(Debug)]
pub struct Prepared {
    /// Normalised ER7 text (what is sealed in the inbox).
    pub text: String,
    /// MSH facts.
    pub header: Header,
    /// What to do with it.
    pub action: Action,
}

/// What a stored message leads to.
#[derive(Debug)]
pub enum Action {
    /// Apply an event of the table.
    Apply(Box<Adt>),
    /// Store as an error and answer AE.
    Fail(Problem),
    /// Store as ignored and answer AA.
    Ignore,
}

/// A message that is answered AR and not stored.
#[derive(Debug)]
pub struct Refused {
    /// The header, when it could be read (the ACK echoes it).
    pub header: Option<Box<Header>>,
    /// Why.
    pub rejection: Rejection,
}

fn refuse(header: Option<Box<Header>>, code: &'static str, reason: &str) -> Refused {
    Refused {
        header,
        rejection: Rejection {
            code,
            location: None,
            reason: reason.into(),
        },
    }
}

/// Decodes the bytes of one frame as UTF-8, or as Latin-1 when MSH-18 declares ISO 8859-1.
fn decode(raw: &[u8]) -> Option<String> {
    match std::str::from_utf8(raw) {
        Ok(s) => Some(s.to_string()),
        Err(_) => {
            let first = raw
                .split(|b| *b == b'\r' || *b == b'\n')
                .next()
                .unwrap_or_default();
            let msh = String::from_utf8_lossy(first);
            msh.contains("8859/1")
                .then(|| raw.iter().map(|b| char::from(*b)).collect())
        }
    }
}

/// Reads one frame: pure, total (never panics), and the whole of the decision between AR and
/// "store it" (SPEC §3 ACK rules).
pub fn prepare(raw: &[u8], cfg: &Hl7Config, zone: Tz) -> std::result::Result<Prepared, Refused> {
    let Some(decoded) = decode(raw) else {
        return Err(refuse(
            None,
            "103",
            "the message is not valid UTF-8 (or MSH-18 8859/1)",
        ));
    };
    // NUL is never data, and PostgreSQL text cannot store it: a message carrying one would be
    // refused by the database on every retry. It becomes U+FFFD, visibly.
    let decoded = if decoded.contains('\0') {
        decoded.replace('\0', "\u{FFFD}")
    } else {
        decoded
    };
    let text = normalize_segments(&decoded).into_owned();
    let parsed = Er7::parse(&text);
    let header_text;
    let (er7, unreadable) = match parsed {
        Ok(m) => (m, None),
        Err(Er7Error::BadHeader(reason)) => return Err(refuse(None, "100", &reason)),
        Err(Er7Error::UnreadableSegment { index, name }) => {
            // Answer with the header, store the message as an error naming the segment.
            header_text = text.split('\r').next().unwrap_or_default().to_string();
            let problem = Problem {
                code: "100",
                location: Some((name, u32::try_from(index).unwrap_or(u32::MAX), 0)),
                reason: format!("segment {index} cannot be parsed"),
            };
            match Er7::parse(&header_text) {
                Ok(m) => (m, Some(problem)),
                Err(err) => return Err(refuse(None, "100", &err.to_string())),
            }
        }
    };
    let header = message::read_header(&er7).map_err(|rejection| Refused {
        header: None,
        rejection,
    })?;
    if let Err(rejection) = message::check_supported(&header) {
        return Err(Refused {
            header: Some(Box::new(header)),
            rejection,
        });
    }
    let action = match unreadable {
        Some(problem) => Action::Fail(problem),
        None => match message::read_content(&er7, &header, cfg, zone) {
            Ok(Content::Event(adt)) => Action::Apply(adt),
            Ok(Content::Unsupported(_)) if cfg.unsupported_events == UnsupportedEvents::Reject => {
                let rejection = Rejection {
                    code: "200",
                    location: Some(("MSH".into(), 1, 9)),
                    reason: format!("ADT trigger {} is not supported", header.trigger),
                };
                return Err(Refused {
                    header: Some(Box::new(header)),
                    rejection,
                });
            }
            Ok(Content::Unsupported(_)) => Action::Ignore,
            Err(p) => Action::Fail(p),
        },
    };
    Ok(Prepared { text, header, action })
}
