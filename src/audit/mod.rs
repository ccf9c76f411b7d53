//! Tamper-evident audit trail (SPEC §8). Every entry records who did what to which entity, when,
//! from where and with what outcome — metadata only, never message text or demographics — and is
//! chained to its predecessor by SHA-256, so altering, removing or inserting an entry breaks the
//! chain at a point `wardline audit verify` names.
//!
//! Changes are audited inside the transaction that makes them; reads (which have no transaction)
//! go through [`sink::AuditSink`], which group-commits them before the response is sent.

pub mod balp;
pub mod chain;
pub mod indexer;
pub mod sink;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// Hash that precedes the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Version tag mixed into every hash, so a future format change cannot be confused with this one.
const FORMAT: &str = "wardline-audit-v1";

/// What happened, to be appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The acting user, if known (absent for failed logins and system jobs).
    pub actor_id: Option<String>,
    /// A verb in `noun.verb` form, e.g. `message.send`, `room.view`, `auth.login`.
    pub action: String,
    /// Kind of the entity acted on, e.g. `room`, `message`, `token`.
    pub entity_type: String,
    /// Id of the entity, if any.
    pub entity_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: Outcome,
    /// Network address the request came from.
    pub source: Option<String>,
    /// Extra metadata as a JSON object (ids, reason codes; never free text from users).
    pub detail: serde_json::Value,
}

/// Result of the audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

impl Event {
    /// A successful action by `actor` on an entity.
    pub fn new(
        actor: Option<uuid::Uuid>,
        action: &str,
        entity_type: &str,
        entity_id: Option<String>,
    ) -> Self {
        Self {
            actor_id: actor.map(|a| a.to_string()),
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id,
            outcome: Outcome::Success,
            source: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    /// Sets the source address.
    pub fn from_source(mut self, source: Option<&str>) -> Self {
        self.source = source.map(str::to_string);
        self
    }

    /// Marks the action as failed.
    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }

    /// Adds metadata.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// A stored entry: the event plus its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// Acting user id.
    pub actor_id: Option<String>,
    /// Verb.
    pub action: String,
    /// Entity kind.
    pub entity_type: String,
    /// Entity id.
    pub entity_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Source address.
    pub source: Option<String>,
    /// Metadata (JSON object, canonical text).
    pub detail: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// SHA-256 over this entry's canonical form.
    pub hash: String,
}

/// The canonical hash of an entry: SHA-256 over a JSON array of every field but `hash`, in a
/// fixed order, prefixed with the format tag. JSON quoting makes field boundaries unambiguous.
pub fn entry_hash(e: &Entry) -> String {
    let canonical = serde_json::json!([
        FORMAT,
        e.seq,
        e.at,
        e.actor_id,
        e.action,
        e.entity_type,
        e.entity_id,
        e.outcome,
        e.source,
        e.detail,
        e.prev_hash
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Builds the entry that follows `prev` (seq and hash) for `event` at `at`.
pub fn next_entry(prev_seq: i64, prev_hash: &str, event: &Event, at: i64) -> Entry {
    let mut e = Entry {
        seq: prev_seq + 1,
        at,
        actor_id: event.actor_id.clone(),
        action: event.action.clone(),
        entity_type: event.entity_type.clone(),
        entity_id: event.entity_id.clone(),
        outcome: event.outcome.as_str().into(),
        source: event.source.clone(),
        detail: event.detail.to_string(),
        prev_hash: prev_hash.into(),
        hash: String::new(),
    };
    e.hash = entry_hash(&e);
    e
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The entry's content no longer matches its hash (it was altered).
    #[error("entry {seq} was altered: its content does not match its hash")]
    Altered {
        /// The entry.
        seq: i64,
    },
    /// The entry does not point at its predecessor (one was removed, inserted or rewritten).
    #[error("entry {seq} does not follow entry {expected_prev}: an entry was removed, inserted or replaced")]
    Unlinked {
        /// The entry.
        seq: i64,
        /// The sequence number it should follow.
        expected_prev: i64,
    },
    /// Sequence numbers jump (an entry was removed).
    #[error("entry {expected} is missing (next present entry is {found})")]
    Missing {
        /// Expected sequence number.
        expected: i64,
        /// The one found.
        found: i64,
    },
}

/// Incremental verifier: feed entries in sequence order; the first break is reported.
#[derive(Debug)]
pub struct Verifier {
    prev_seq: i64,
    prev_hash: String,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            prev_seq: 0,
            prev_hash: GENESIS.into(),
        }
    }
}

impl Verifier {
    /// Checks the next entry against everything seen so far.
    pub fn check(&mut self, e: &Entry) -> Result<(), Break> {
        if e.seq != self.prev_seq + 1 {
            return Err(Break::Missing {
                expected: self.prev_seq + 1,
                found: e.seq,
            });
        }
        if entry_hash(e) != e.hash {
            return Err(Break::Altered { seq: e.seq });
        }
        if e.prev_hash != self.prev_hash {
            return Err(Break::Unlinked {
                seq: e.seq,
                expected_prev: self.prev_seq,
            });
        }
        self.prev_seq = e.seq;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    /// Entries verified so far.
    pub fn verified(&self) -> i64 {
        self.prev_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for i in 0..n {
            let (seq, hash) = out
                .last()
                .map_or((0, GENESIS.to_string()), |e| (e.seq, e.hash.clone()));
            let ev = Event::new(
                Some(uuid::Uuid::nil()),
                "room.view",
                "room",
                Some(format!("r{i}")),
            );
            out.push(next_entry(seq, &hash, &ev, 1_700_000_000_000 + i as i64));
        }
        out
    }

    fn verify(entries: &[Entry]) -> Result<i64, Break> {
        let mut v = Verifier::default();
        for e in entries {
            v.check(e)?;
        }
        Ok(v.verified())
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn altering_any_field_is_detected_at_that_entry() {
        let mut c = chain(5);
        c[2].action = "room.delete".into();
        assert_eq!(verify(&c), Err(Break::Altered { seq: 3 }));
        let mut c = chain(5);
        c[3].at += 1;
        assert_eq!(verify(&c), Err(Break::Altered { seq: 4 }));
    }

    #[test]
    fn removal_and_insertion_are_detected() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(
            verify(&c),
            Err(Break::Missing {
                expected: 3,
                found: 4
            })
        );
        // Removing an entry and renumbering (recomputing hashes) still breaks the link.
        let mut c = chain(5);
        c.remove(2);
        for e in c.iter_mut().skip(2) {
            e.seq -= 1;
            e.hash = entry_hash(e);
        }
        assert_eq!(
            verify(&c),
            Err(Break::Unlinked {
                seq: 3,
                expected_prev: 2
            })
        );
        // A forged entry inserted with a valid hash of its own does not link to its predecessor.
        let mut c = chain(3);
        let forged = next_entry(3, GENESIS, &Event::new(None, "auth.login", "user", None), 0);
        c.push(forged);
        assert_eq!(
            verify(&c),
            Err(Break::Unlinked {
                seq: 4,
                expected_prev: 3
            })
        );
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = next_entry(0, GENESIS, &Event::new(None, "a.b", "c", Some("d".into())), 1);
        let b = next_entry(0, GENESIS, &Event::new(None, "a.bc", "", Some("d".into())), 1);
        assert_ne!(a.hash, b.hash);
    }
}
