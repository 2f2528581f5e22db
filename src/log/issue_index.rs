//! One issue's records, fast: the per-issue index in `.bdp/index.sqlite` says which seqs to decode, and
//! the records written since the index was last brought up to date are decoded and indexed on the way.
//! The whole chain is still verified. Without a usable index every record is decoded: same answer.

use std::path::Path;

use crate::event::Record;

use super::error::LogError;
use super::index::{CheckpointMeta, Index};
use super::load::checkpoint_matches;
use super::walk::{Decode, WalkSummary, walk};

/// The records about `issue`, in seq order, and what the walk saw.
pub fn issue_records(
    events_dir: &Path,
    index_path: &Path,
    issue: &str,
) -> Result<(Vec<Record>, WalkSummary), LogError> {
    let mut index = match Index::open(index_path) {
        Ok(index) => Some(index),
        Err(e) => {
            tracing::warn!("{e}; decoding the whole log instead");
            None
        }
    };
    // What the index already covers, if the log still holds the record it was built up to.
    let mut known: Option<(Vec<u64>, u64)> = None;
    if let Some(ix) = &index {
        match ix.indexed_upto() {
            Ok(Some(upto)) if checkpoint_matches(events_dir, &upto) => match ix.issue_seqs(issue) {
                Ok(seqs) => known = Some((seqs, upto.seq + 1)),
                Err(e) => tracing::warn!("{e}"),
            },
            Ok(Some(_)) => {
                tracing::info!("the issue index does not match the log; rebuilding it");
                if let Err(e) = ix.clear_issue_events() {
                    tracing::warn!("{e}");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let (seqs, from) = known.unwrap_or((Vec::new(), 1));
    let mut found = Vec::new();
    let mut new_rows: Vec<(String, u64)> = Vec::new();
    let summary = walk(events_dir, None, &Decode::SeqsThenFrom(seqs, from), |record, _| {
        if let Some(id) = record.event.issue() {
            if record.seq >= from {
                new_rows.push((id.to_string(), record.seq));
            }
            if id == issue {
                found.push(record);
            }
        }
        Ok(())
    })?;
    if let (Some(ix), Some(pos)) = (index.as_mut(), summary.last_position)
        && summary.last_seq >= from
    {
        let upto = CheckpointMeta {
            seq: summary.last_seq,
            chain: summary.last_chain,
            segment: pos.segment,
            offset: pos.offset,
            len: pos.len,
        };
        if let Err(e) = ix.add_issue_events(&new_rows, &upto) {
            tracing::warn!("{e}");
        }
    }
    Ok((found, summary))
}
