//! Reading the log: walk every record in order, verify the hash chain and the seqs, detect a torn tail,
//! and decode (in parallel) the records the caller wants.
//!
//! Checking the chain needs no JSON parsing (see `event::record`), so a walk can verify the whole log
//! cheaply and decode only what a query needs.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use crate::event::record::{GENESIS, chain_next, decode_line, split_line};
use crate::event::{ChainHash, Record};

use super::error::{Location, LogError, Problem};
use super::segment::{Segment, list_segments, segment_name, segment_path};

/// Where a walk starts: the beginning, or right after a known record (a checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartAfter {
    pub seq: u64,
    pub chain: ChainHash,
    pub segment: u32,
    /// Byte offset just past the record's newline.
    pub end_offset: u64,
}

/// Which records a walk decodes and hands to the caller. Every record's chain is checked regardless.
#[derive(Debug, Clone)]
pub enum Decode {
    All,
    None,
    Range(RangeInclusive<u64>),
    /// These seqs (sorted ascending), and every seq from the second value on.
    SeqsThenFrom(Vec<u64>, u64),
}

impl Decode {
    fn wants(&self, seq: u64) -> bool {
        match self {
            Decode::All => true,
            Decode::None => false,
            Decode::Range(r) => r.contains(&seq),
            Decode::SeqsThenFrom(s, from) => seq >= *from || s.binary_search(&seq).is_ok(),
        }
    }
}

/// Bytes after the last complete record of the last segment: a write the crash interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Where the valid prefix ends (the file is cut here on the next append).
    pub offset: u64,
    pub bytes: u64,
}

/// Where a record lives on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub segment: u32,
    /// 1-based line number within the segment.
    pub line: u64,
    pub offset: u64,
    pub len: u64,
}

/// What a walk saw.
#[derive(Debug, Clone)]
pub struct WalkSummary {
    /// Seq and chain value of the last valid record (0 and the genesis value for an empty log).
    pub last_seq: u64,
    pub last_chain: ChainHash,
    /// Position of the last valid record, if any record was walked.
    pub last_position: Option<Position>,
    /// Records checked in this walk.
    pub records: u64,
    pub segments: Vec<Segment>,
    pub torn_tail: Option<TornTail>,
}

/// Records decoded per parallel batch.
const BATCH: usize = 4096;

/// Walks the log under `events_dir`. `on_record` gets each wanted record in seq order with its position;
/// an error it returns stops the walk. Damage is reported as [`LogError::Corrupt`] by seq.
pub fn walk(
    events_dir: &Path,
    start: Option<&StartAfter>,
    decode: &Decode,
    mut on_record: impl FnMut(Record, Position) -> Result<(), LogError>,
) -> Result<WalkSummary, LogError> {
    let segments = list_segments(events_dir)?;
    let (mut expected_seq, mut chain, first_segment, first_offset) = match start {
        Some(s) => (s.seq + 1, s.chain, s.segment, s.end_offset),
        None => (1, GENESIS, 1, 0),
    };
    let mut summary = WalkSummary {
        last_seq: expected_seq - 1,
        last_chain: chain,
        last_position: None,
        records: 0,
        segments: segments.clone(),
        torn_tail: None,
    };
    let count = segments.len();
    for (index, segment) in segments.iter().enumerate() {
        let expected_number = index as u32 + 1;
        if segment.number != expected_number {
            return Err(LogError::corrupt(
                expected_seq,
                Location { segment: segment_path(events_dir, expected_number), line: 0, offset: 0 },
                Problem::MissingSegment { missing: segment_name(expected_number) },
            ));
        }
        if segment.number < first_segment {
            continue;
        }
        let is_last = index + 1 == count;
        let data = std::fs::read(&segment.path).map_err(|e| LogError::io("read", &segment.path, e))?;
        let base = if segment.number == first_segment { first_offset as usize } else { 0 };
        if base > data.len() {
            return Err(LogError::corrupt(
                expected_seq,
                Location { segment: segment.path.clone(), line: 0, offset: base as u64 },
                Problem::IncompleteLine,
            ));
        }
        if data.is_empty() && !is_last {
            return Err(LogError::corrupt(
                expected_seq,
                Location { segment: segment.path.clone(), line: 1, offset: 0 },
                Problem::EmptySegment,
            ));
        }
        // Line numbers are only needed for messages; count the lines skipped by a checkpoint lazily.
        let line_base = if base > 0 { memchr::memchr_iter(b'\n', &data[..base]).count() as u64 } else { 0 };
        let mut wanted: Vec<(usize, usize, u64)> = Vec::new();
        let mut pos = base;
        let mut line_no = line_base;
        while pos < data.len() {
            line_no += 1;
            let Some(nl) = memchr::memchr(b'\n', &data[pos..]) else {
                // No newline: an interrupted write. Legal only at the very end of the log.
                if is_last {
                    summary.torn_tail = Some(TornTail {
                        segment: segment.path.clone(),
                        offset: pos as u64,
                        bytes: (data.len() - pos) as u64,
                    });
                    break;
                }
                deliver(&data, segment, &mut wanted, &mut on_record)?;
                return Err(LogError::corrupt(
                    expected_seq,
                    Location { segment: segment.path.clone(), line: line_no, offset: pos as u64 },
                    Problem::IncompleteLine,
                ));
            };
            let line = &data[pos..pos + nl];
            let location = || Location { segment: segment.path.clone(), line: line_no, offset: pos as u64 };
            let raw = match split_line(line) {
                Ok(raw) => raw,
                Err(e) => {
                    deliver(&data, segment, &mut wanted, &mut on_record)?;
                    return Err(LogError::corrupt(expected_seq, location(), Problem::Decode(e)));
                }
            };
            if raw.seq != expected_seq {
                deliver(&data, segment, &mut wanted, &mut on_record)?;
                return Err(LogError::corrupt(
                    expected_seq,
                    location(),
                    Problem::SeqOutOfOrder { expected: expected_seq, found: raw.seq },
                ));
            }
            let next = chain_next(&chain, raw.body);
            if next != raw.chain {
                deliver(&data, segment, &mut wanted, &mut on_record)?;
                return Err(LogError::corrupt(raw.seq, location(), Problem::ChainMismatch));
            }
            chain = next;
            summary.last_seq = raw.seq;
            summary.last_chain = chain;
            summary.last_position =
                Some(Position { segment: segment.number, line: line_no, offset: pos as u64, len: nl as u64 + 1 });
            summary.records += 1;
            if decode.wants(raw.seq) {
                wanted.push((pos, nl, line_no));
                if wanted.len() >= BATCH {
                    deliver(&data, segment, &mut wanted, &mut on_record)?;
                }
            }
            expected_seq += 1;
            pos += nl + 1;
        }
        deliver(&data, segment, &mut wanted, &mut on_record)?;
    }
    Ok(summary)
}

/// Decodes a batch of lines on two threads and hands them over in order.
fn deliver(
    data: &[u8],
    segment: &Segment,
    wanted: &mut Vec<(usize, usize, u64)>,
    on_record: &mut impl FnMut(Record, Position) -> Result<(), LogError>,
) -> Result<(), LogError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let decode_slice = |items: &[(usize, usize, u64)]| -> Vec<Result<Record, LogError>> {
        items
            .iter()
            .map(|&(pos, len, line_no)| {
                decode_line(&data[pos..pos + len]).map_err(|e| {
                    let seq = split_line(&data[pos..pos + len]).map(|r| r.seq).unwrap_or(0);
                    let location = Location { segment: segment.path.clone(), line: line_no, offset: pos as u64 };
                    LogError::corrupt(seq, location, Problem::Decode(e))
                })
            })
            .collect()
    };
    let decoded: Vec<Result<Record, LogError>> = if wanted.len() >= 256 {
        let (left, right) = wanted.split_at(wanted.len() / 2);
        std::thread::scope(|scope| {
            let handle = scope.spawn(|| decode_slice(right));
            let mut out = decode_slice(left);
            out.extend(handle.join().unwrap_or_else(|_| vec![]));
            out
        })
    } else {
        decode_slice(wanted)
    };
    if decoded.len() != wanted.len() {
        return Err(LogError::Internal("a decoding thread panicked".into()));
    }
    for (result, &(pos, len, line)) in decoded.into_iter().zip(wanted.iter()) {
        on_record(result?, Position { segment: segment.number, line, offset: pos as u64, len: len as u64 + 1 })?;
    }
    wanted.clear();
    Ok(())
}
