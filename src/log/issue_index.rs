//! One issue's records, fast: the per-issue index in `.bdp/index.sqlite` says which seqs to decode; the
//! records written since the index was last brought up to date are decoded on the way. The whole chain
//! is still verified. Without a usable index every record is decoded: same answer.
//!
//! Reading ([`issue_records`]) never writes. `bdp run` brings the index up to date as it goes
//! ([`refresh`], from its checkpointer, off the dispatcher's path).

use std::path::Path;

use crate::event::Record;

use super::error::LogError;
use super::index::{CheckpointMeta, Index};
use super::load::checkpoint_matches;
use super::walk::{Decode, StartAfter, WalkSummary, walk};

/// The records about `issue`, in seq order, and what the walk saw. Read-only.
pub fn issue_records(
    events_dir: &Path,
    index_path: &Path,
    issue: &str,
) -> Result<(Vec<Record>, WalkSummary), LogError> {
    let index = match Index::open_read_only(index_path) {
        Ok(index) => index,
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
            Ok(Some(_)) => tracing::info!("the issue index does not match the log; decoding the whole log"),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let (seqs, from) = known.unwrap_or((Vec::new(), 1));
    let mut found = Vec::new();
    let summary = walk(events_dir, None, &Decode::SeqsThenFrom(seqs, from), |record, _| {
        if record.event.issue() == Some(issue) {
            found.push(record);
        }
        Ok(())
    })?;
    Ok((found, summary))
}

/// Brings the issue index up to the end of the log: decodes only the records after the one it was built
/// up to (rebuilding it from scratch when the log no longer holds that record). For `bdp run`.
pub fn refresh(events_dir: &Path, index: &mut Index) -> Result<(), LogError> {
    let after = match index.indexed_upto()? {
        Some(upto) if checkpoint_matches(events_dir, &upto) => Some(StartAfter {
            seq: upto.seq,
            chain: upto.chain,
            segment: upto.segment,
            end_offset: upto.offset + upto.len,
        }),
        Some(_) => {
            index.clear_issue_events()?;
            None
        }
        None => None,
    };
    let mut rows: Vec<(String, u64)> = Vec::new();
    let summary = walk(events_dir, after.as_ref(), &Decode::All, |record, _| {
        if let Some(id) = record.event.issue() {
            rows.push((id.to_string(), record.seq));
        }
        Ok(())
    })?;
    if let Some(pos) = summary.last_position
        && summary.records > 0
    {
        let upto = CheckpointMeta {
            seq: summary.last_seq,
            chain: summary.last_chain,
            segment: pos.segment,
            offset: pos.offset,
            len: pos.len,
        };
        index.add_issue_events(&rows, &upto)?;
    }
    Ok(())
}
