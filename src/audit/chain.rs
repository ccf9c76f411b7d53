//! Whole-chain operations: verification (what `wardline audit verify` and the auditor API run)
//! and ordered export.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Entry, Verifier};
use crate::error::Result;
use crate::store::{Store, audit};

const PAGE: u32 = 1000;

/// Outcome of verifying the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    /// Entries that verified, from the start, before the first break (all of them when intact).
    pub verified: i64,
    /// Newest position according to the head row.
    pub head_seq: i64,
    /// True when every entry and the head agree.
    pub intact: bool,
    /// The first break, in words, naming the entry.
    pub first_break: Option<String>,
}

/// Recomputes every hash and link in order, then checks the last entry against the head row
/// (which catches a removed tail).
pub async fn verify(store: &Store) -> Result<Report> {
    let (head_seq, head_hash) = audit::head(&mut *store.read().await?).await?;
    let mut v = Verifier::default();
    let mut last_hash = super::GENESIS.to_string();
    let mut after = 0;
    loop {
        let page = audit::scan(&mut *store.read().await?, after, PAGE).await?;
        for e in &page {
            if let Err(b) = v.check(e) {
                return Ok(Report {
                    verified: v.verified(),
                    head_seq,
                    intact: false,
                    first_break: Some(b.to_string()),
                });
            }
            last_hash = e.hash.clone();
        }
        match page.last() {
            Some(e) if page.len() == PAGE as usize => after = e.seq,
            _ => break,
        }
    }
    let first_break = if v.verified() != head_seq {
        Some(format!(
            "the chain ends at entry {} but the head records {head_seq}: entries after {} were removed",
            v.verified(),
            v.verified()
        ))
    } else if last_hash != head_hash {
        Some(format!(
            "entry {head_seq} does not match the hash recorded in the head"
        ))
    } else {
        None
    };
    Ok(Report {
        verified: v.verified(),
        head_seq,
        intact: first_break.is_none(),
        first_break,
    })
}

/// Calls `sink` with every entry in order, a page at a time.
pub async fn for_each_page<F>(store: &Store, mut sink: F) -> Result<i64>
where
    F: FnMut(&[Entry]) -> Result<()>,
{
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = audit::scan(&mut *store.read().await?, after, PAGE).await?;
        sink(&page)?;
        count += page.len() as i64;
        match page.last() {
            Some(e) if page.len() == PAGE as usize => after = e.seq,
            _ => return Ok(count),
        }
    }
}
