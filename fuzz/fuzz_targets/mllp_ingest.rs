//! MLLP framing + HL7 ingest, as the listener runs them (src/hl7/mllp.rs → `Hl7::handle`) minus
//! the database: the input is a byte stream from one connection, cut into reads at points derived
//! from the data, reassembled by `mllp::Decoder`, and every frame goes through the pure
//! `ingest::prepare` and gets the ACK the server would send, which must be readable HL7 again.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use wardline::hl7::Hl7Config;
use wardline::hl7::ack::{self, Verdict};
use wardline::hl7::er7::{Er7, normalize_segments};
use wardline::hl7::ingest::{Action, prepare};

const MAX_FRAME: usize = 1 << 20;
const START_BLOCK: u8 = 0x0B;
const END_BLOCK: u8 = 0x1C;

/// FNV-1a: split points that depend on the data, so a seed is a plain MLLP stream.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Up to three cut points in `0..=len`, sorted, from the data's hash.
fn cuts(data: &[u8]) -> Vec<usize> {
    let len = data.len();
    if len == 0 {
        return Vec::new();
    }
    let h = hash(data);
    let n = (h & 3) as usize;
    let mut points: Vec<usize> = (0..n)
        .map(|i| ((h >> (8 + 16 * i)) & 0xffff) as usize % (len + 1))
        .collect();
    points.sort_unstable();
    points
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 250_000_000).expect("fixed instant")
}

/// Prepares one frame and builds the ACK `Hl7::handle` (and, for stored messages, the writer's
/// `run`) would answer with; the ACK must parse, and say what the verdict says.
fn answer(frame: &[u8], cfg: &Hl7Config) {
    let (header, verdict) = match prepare(frame, cfg, chrono_tz::UTC) {
        Ok(prepared) => {
            assert!(!prepared.text.contains('\n'), "stored text keeps a \\n");
            let verdict = match &prepared.action {
                Action::Apply(_) | Action::Ignore => Verdict::Accept,
                Action::Fail(problem) => Verdict::from(problem.clone()),
            };
            (Some(prepared.header), verdict)
        }
        Err(refused) => (refused.header.map(|h| *h), Verdict::from(refused.rejection)),
    };
    let ack = ack::build(header.as_ref(), &verdict, "W0123456789ABCDEF012", now());
    let text = normalize_segments(&ack);
    let parsed = match Er7::parse(&text) {
        Ok(p) => p,
        Err(e) => panic!("ACK does not re-parse: {e}\nACK: {ack:?}\nframe: {frame:?}"),
    };
    assert_eq!(
        parsed.value("MSA", 1).as_deref(),
        Some(verdict.code()),
        "MSA-1 of the ACK is not the verdict's code\nACK: {ack:?}"
    );
}

/// The listener's read loop over one connection: on an oversized frame it answers a bare AR and
/// closes, so nothing after it is read.
fn connection(data: &[u8], cfg: &Hl7Config) {
    let mut decoder = mllp::Decoder::with_max_frame_size(MAX_FRAME);
    let mut start = 0;
    for end in cuts(data).into_iter().chain(std::iter::once(data.len())) {
        decoder.push(&data[start..end]);
        start = end;
        while let Some(frame) = decoder.next_frame() {
            match frame {
                Ok(payload) if payload.len() > MAX_FRAME => return too_large(),
                Ok(payload) => answer(&payload, cfg),
                Err(mllp::Error::FrameTooLarge { .. }) => return too_large(),
                Err(_) => {}
            }
        }
    }
}

fn too_large() {
    let verdict = Verdict::Reject {
        code: "100",
        location: None,
        reason: format!("the frame is larger than {MAX_FRAME} bytes"),
    };
    let ack = ack::build(None, &verdict, "W0", now());
    assert!(
        Er7::parse(&normalize_segments(&ack)).is_ok(),
        "too-large ACK: {ack:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let cfg = Hl7Config::default();
    connection(data, &cfg);
    // `POST /hl7` bodies arrive unframed.
    if !data.contains(&START_BLOCK) && !data.contains(&END_BLOCK) {
        answer(data, &cfg);
    }
});
