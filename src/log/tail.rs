//! Following the log as it grows: a cursor (segment, byte offset, last seq, chain value) and a poll that
//! reads only the bytes appended since the last one, verifying their seqs and chain with [`walk`] from
//! the cursor.
//!
//! A poll when nothing changed costs one `stat` of the cursor's segment and one of the next segment's
//! name (a new segment `NNNNNN.jsonl` appears when the current one is full). A last line still being
//! written is a torn tail to the walk: it is left for the next poll, never reported as damage.
//!
//! It only reads: it never writes, truncates or locks anything under `.bdp/`.

use std::path::{Path, PathBuf};

use crate::event::Record;
use crate::event::record::GENESIS;

use super::error::LogError;
use super::segment::segment_path;
use super::walk::{Decode, Position, StartAfter, WalkSummary, walk};

/// Where a tail stands in the log and what it saw of the files last time.
#[derive(Debug)]
pub struct LogTail {
    events_dir: PathBuf,
    /// Right after the last record handed out; `None` before the first record.
    cursor: Option<StartAfter>,
    /// Sizes seen at the last walk: the cursor's segment, and the next one (if it existed).
    seen: Option<(u64, Option<u64>)>,
}

impl LogTail {
    /// A tail that hands out every record from seq 1.
    pub fn from_start(events_dir: &Path) -> LogTail {
        LogTail { events_dir: events_dir.to_path_buf(), cursor: None, seen: None }
    }

    /// A tail that hands out the records after `start`.
    pub fn after(events_dir: &Path, start: StartAfter) -> LogTail {
        LogTail { events_dir: events_dir.to_path_buf(), cursor: Some(start), seen: None }
    }

    /// A tail that continues where a walk (from the start, or from a position) ended: after its last
    /// record, or from seq 1 when the log was empty.
    pub fn after_walk(events_dir: &Path, summary: &WalkSummary) -> LogTail {
        match cursor_after(summary) {
            Some(start) => LogTail::after(events_dir, start),
            None => LogTail::from_start(events_dir),
        }
    }

    /// The seq of the last record handed out (or the start's), 0 before any.
    pub fn last_seq(&self) -> u64 {
        self.cursor.as_ref().map_or(0, |c| c.seq)
    }

    /// Hands the records appended since the last poll to `on_record`, in seq order, each verified
    /// against the chain. Returns how many there were. A log that does not exist yet has no records.
    pub fn poll(
        &mut self,
        mut on_record: impl FnMut(Record, Position) -> Result<(), LogError>,
    ) -> Result<u64, LogError> {
        let sizes = self.sizes();
        if sizes.is_some() && sizes == self.seen {
            return Ok(0);
        }
        let summary = match walk(&self.events_dir, self.cursor.as_ref(), &Decode::All, &mut on_record) {
            Ok(summary) => summary,
            Err(LogError::NoLog { .. }) if self.cursor.is_none() => return Ok(0),
            Err(e) => return Err(e),
        };
        let segment_before = self.cursor.as_ref().map(|c| c.segment);
        if summary.records > 0
            && let Some(start) = cursor_after(&summary)
        {
            self.cursor = Some(start);
        }
        // Sizes were taken before the walk, so nothing appended after them is missed; a moved cursor
        // means they were of another segment: look again next time.
        self.seen = if self.cursor.as_ref().map(|c| c.segment) == segment_before { sizes } else { None };
        Ok(summary.records)
    }

    /// Sizes of the cursor's segment and of the next one (`None` if the cursor's segment is missing).
    fn sizes(&self) -> Option<(u64, Option<u64>)> {
        let segment = self.cursor.as_ref().map_or(1, |c| c.segment);
        let len = |n: u32| std::fs::metadata(segment_path(&self.events_dir, n)).ok().map(|m| m.len());
        Some((len(segment)?, len(segment + 1)))
    }
}

/// The position right after the last record a walk saw, if it saw one.
pub fn cursor_after(summary: &WalkSummary) -> Option<StartAfter> {
    let pos = summary.last_position?;
    debug_assert_ne!(summary.last_chain, GENESIS);
    Some(StartAfter {
        seq: summary.last_seq,
        chain: summary.last_chain,
        segment: pos.segment,
        end_offset: pos.offset + pos.len,
    })
}
