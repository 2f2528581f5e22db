//! Rebuilding the state from the log: a full verified fold, or (for recovery) the newest checkpoint that
//! matches the log plus a fold of the records after it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::event::Record;
use crate::event::record::split_line;
use crate::repo::Repo;
use crate::state::State;

use super::error::{Location, LogError};
use super::index::{CheckpointMeta, Index};
use super::segment::segment_path;
use super::walk::{Decode, Position, StartAfter, WalkSummary, walk};

/// A checkpoint is written once this many records were folded past the last one.
pub const CHECKPOINT_EVERY: u64 = 4096;

/// A rebuilt state and how it was rebuilt.
#[derive(Debug)]
pub struct Loaded {
    pub state: State,
    pub summary: WalkSummary,
    /// The checkpoint the fold started from, if one matched.
    pub from_checkpoint: Option<u64>,
}

fn location(events_dir: &Path, pos: Position) -> Location {
    Location { segment: segment_path(events_dir, pos.segment), line: pos.line, offset: pos.offset }
}

/// Folds `record` into `state`, turning a refused transition into a located log error.
pub fn apply(state: &mut State, events_dir: &Path, record: &Record, pos: Position) -> Result<(), LogError> {
    state.apply(record).map_err(|e| LogError::Transition(e, location(events_dir, pos)))
}

/// Verifies the whole log and folds the records up to `upto` (all if `None`). `observe` sees every folded
/// record with the state right after it.
pub fn fold_verified(
    events_dir: &Path,
    upto: Option<u64>,
    mut observe: impl FnMut(&Record, &State),
) -> Result<(State, WalkSummary), LogError> {
    let mut state = State::new();
    let decode = match upto {
        Some(seq) => Decode::Range(1..=seq),
        None => Decode::All,
    };
    let summary = walk(events_dir, None, &decode, |record, pos| {
        apply(&mut state, events_dir, &record, pos)?;
        observe(&record, &state);
        Ok(())
    })?;
    Ok((state, summary))
}

/// Recovery's fast path (`bdp run`): newest matching checkpoint + tail; a full fold when none matches.
/// Saves a new checkpoint when the tail was long. Index trouble is logged and worked around, never fatal.
pub fn recover(repo: &Repo) -> Result<Loaded, LogError> {
    let started = std::time::Instant::now();
    let index = match Index::open(&repo.index_path()) {
        Ok(index) => Some(index),
        Err(e) => {
            tracing::warn!("{e}; folding the whole log instead");
            None
        }
    };
    load(repo, index, true, started)
}

/// The same state for a read command: the newest matching checkpoint + tail, read-only. Never writes
/// anything under `.bdp/` (no checkpoint saved, no index created).
pub fn read(repo: &Repo) -> Result<Loaded, LogError> {
    let index = match Index::open_read_only(&repo.index_path()) {
        Ok(index) => index,
        Err(e) => {
            tracing::warn!("{e}; folding the whole log instead");
            None
        }
    };
    load(repo, index, false, std::time::Instant::now())
}

/// `started`: when the caller began (the index's opening counts); recovery logs the time to the state.
fn load(repo: &Repo, index: Option<Index>, save: bool, started: std::time::Instant) -> Result<Loaded, LogError> {
    let events_dir = repo.events_dir();
    let mut start = None;
    let opened = started.elapsed();
    if let Some(index) = &index {
        for meta in index.checkpoints().unwrap_or_default() {
            if !checkpoint_matches(&events_dir, &meta) {
                tracing::info!("checkpoint at seq {} does not match the log; ignoring it", meta.seq);
                continue;
            }
            match index.checkpoint_state(meta.seq) {
                Ok(Some(state)) if state.last_seq == meta.seq => {
                    start = Some((meta, state));
                    break;
                }
                Ok(_) => tracing::info!("checkpoint at seq {} is unusable; ignoring it", meta.seq),
                Err(e) => tracing::warn!("{e}"),
            }
        }
    }
    let (mut state, after, from_checkpoint) = match start {
        Some((meta, state)) => {
            let after = StartAfter {
                seq: meta.seq,
                chain: meta.chain,
                segment: meta.segment,
                end_offset: meta.offset + meta.len,
            };
            (state, Some(after), Some(meta.seq))
        }
        None => (State::new(), None, None),
    };
    let checkpoint_loaded = started.elapsed();
    let summary =
        walk(&events_dir, after.as_ref(), &Decode::All, |record, pos| apply(&mut state, &events_dir, &record, pos))?;
    if save {
        let total = started.elapsed();
        tracing::info!(
            "state loaded in {:.1} ms: {}, then {} records in {:.1} ms",
            ms(total),
            match from_checkpoint {
                Some(seq) => format!(
                    "checkpoint at record {seq} in {:.1} ms (index opened in {:.1} ms)",
                    ms(checkpoint_loaded - opened),
                    ms(opened)
                ),
                None => "no checkpoint".to_string(),
            },
            summary.records,
            ms(total - checkpoint_loaded),
        );
    }
    if let (true, Some(index), Some(pos)) = (save, &index, summary.last_position)
        && summary.records >= CHECKPOINT_EVERY
    {
        let meta = CheckpointMeta {
            seq: summary.last_seq,
            chain: summary.last_chain,
            segment: pos.segment,
            offset: pos.offset,
            len: pos.len,
        };
        if let Err(e) = index.save_checkpoint(&meta, &mut state) {
            tracing::warn!("{e}");
        }
    }
    Ok(Loaded { state, summary, from_checkpoint })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether the log holds, at the checkpoint's position, the record the checkpoint was taken after.
pub fn checkpoint_matches(events_dir: &Path, meta: &CheckpointMeta) -> bool {
    let path = segment_path(events_dir, meta.segment);
    let Ok(file) = File::open(&path) else { return false };
    if meta.len == 0 || meta.len > (crate::event::record::MAX_RECORD_BYTES as u64 + 1) {
        return false;
    }
    let mut line = vec![0; meta.len as usize];
    if file.read_exact_at(&mut line, meta.offset).is_err() || line.pop() != Some(b'\n') {
        return false;
    }
    matches!(split_line(&line), Ok(raw) if raw.seq == meta.seq && raw.chain == meta.chain)
}
