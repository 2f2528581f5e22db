//! Finding one record by seq without reading the log: seqs grow by one from line to line and segment to
//! segment, so a bisection over byte offsets (each probe reads the line after an offset) lands on it in
//! a few small reads, whatever the log's length. For views that need a few records' timestamps (`bdp
//! status`); it does not verify the chain (a walk does that), only that the line is a record of that seq.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::event::Record;
use crate::event::record::{MAX_RECORD_BYTES, decode_line, split_line};

use super::error::LogError;
use super::segment::{Segment, list_segments};

/// Bisection stops once the range is this small; the rest is read at once.
const SCAN_BYTES: u64 = 64 << 10;

/// The records with these seqs (those the log holds), decoded.
pub fn records_at(events_dir: &Path, seqs: &[u64]) -> Result<Vec<Record>, LogError> {
    let segments = list_segments(events_dir)?;
    let mut firsts = Vec::with_capacity(segments.len());
    for segment in &segments {
        let file = File::open(&segment.path).map_err(|e| LogError::io("open", &segment.path, e))?;
        firsts.push(line_after(&file, 0, &segment.path)?.map(|(seq, _, _)| seq));
    }
    let mut out = Vec::new();
    for &seq in seqs {
        // The last segment whose first record is at or before `seq`.
        let Some(at) = (0..segments.len()).rev().find(|&i| firsts[i].is_some_and(|first| first <= seq)) else {
            continue;
        };
        if let Some(record) = find_in(&segments[at], seq)? {
            out.push(record);
        }
    }
    Ok(out)
}

fn find_in(segment: &Segment, seq: u64) -> Result<Option<Record>, LogError> {
    let path = &segment.path;
    let file = File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let len = file.metadata().map_err(|e| LogError::io("stat", path, e))?.len();
    // Invariant: the record, if here, starts at or after `lo` and before `hi`.
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > SCAN_BYTES {
        let mid = lo + (hi - lo) / 2;
        match line_after(&file, mid, path)? {
            Some((found, start, _)) if found <= seq => lo = start,
            _ => hi = mid,
        }
    }
    let mut start = lo;
    while start < len {
        let Some((found, at, line)) = line_after(&file, start, path)? else { break };
        if found == seq {
            return Ok(decode_line(&line).ok().filter(|r| r.seq == seq));
        }
        if found > seq {
            break;
        }
        start = at + line.len() as u64 + 1;
    }
    Ok(None)
}

/// The first whole line that starts at or after `offset` (at `offset` itself when it is 0 or follows a
/// newline): its seq, its start and its bytes. `None` at the end of the file or on a line that is not
/// a record (a torn tail).
fn line_after(file: &File, offset: u64, path: &Path) -> Result<Option<(u64, u64, Vec<u8>)>, LogError> {
    let mut start = offset;
    if offset > 0 {
        // Back up one byte: if it is a newline, a line starts right at `offset`.
        start = offset - 1;
    }
    let window = MAX_RECORD_BYTES as u64 + 2;
    let mut buf = vec![0; window.min(64 << 10) as usize];
    let mut skipped_to_line = offset == 0;
    let mut line_start = start;
    let mut line: Vec<u8> = Vec::new();
    let mut pos = start;
    loop {
        let n = read_at(file, &mut buf, pos, path)?;
        if n == 0 {
            return Ok(None);
        }
        let chunk = &buf[..n];
        let mut i = 0;
        if !skipped_to_line {
            match memchr::memchr(b'\n', chunk) {
                Some(nl) => {
                    skipped_to_line = true;
                    i = nl + 1;
                    line_start = pos + i as u64;
                }
                None => {
                    pos += n as u64;
                    continue;
                }
            }
        }
        match memchr::memchr(b'\n', &chunk[i..]) {
            Some(nl) => {
                line.extend_from_slice(&chunk[i..i + nl]);
                let Ok(raw) = split_line(&line) else { return Ok(None) };
                return Ok(Some((raw.seq, line_start, line)));
            }
            None => {
                line.extend_from_slice(&chunk[i..]);
                if line.len() as u64 > window {
                    return Ok(None);
                }
                pos += n as u64;
            }
        }
    }
}

fn read_at(file: &File, buf: &mut [u8], pos: u64, path: &Path) -> Result<usize, LogError> {
    loop {
        match file.read_at(buf, pos) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LogError::io("read", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::log::{LogWriter, segment::segment_path};

    /// A log of `n` records, split into two segments after record `split` (the chain runs across).
    fn log(n: u64, split: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events");
        let clock: crate::log::Clock = Box::new(|| "2026-12-01T10:00:00.000Z".to_string());
        let (writer, _) = LogWriter::open(&events, &dir.path().join("append.lock"), "s-1", clock).unwrap();
        for i in 0..n {
            writer
                .append_one(Event::LockReleased { lock: format!("lock-{i}-{}", "x".repeat((i % 7) as usize * 40)) })
                .unwrap();
        }
        drop(writer);
        let first = segment_path(&events, 1);
        let text = std::fs::read_to_string(&first).unwrap();
        let cut: usize = text.lines().take(split as usize).map(|l| l.len() + 1).sum();
        std::fs::write(segment_path(&events, 2), &text[cut..]).unwrap();
        std::fs::write(&first, &text[..cut]).unwrap();
        dir
    }

    #[test]
    fn finds_any_seq_in_a_few_reads_across_segments() {
        let dir = log(3000, 1700);
        let events = dir.path().join("events");
        let wanted = [1, 2, 999, 1700, 1701, 2500, 3000];
        let found = records_at(&events, &wanted).unwrap();
        assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), wanted);
        for r in &found {
            let Event::LockReleased { lock } = &r.event else { panic!("{r:?}") };
            assert!(lock.starts_with(&format!("lock-{}-", r.seq - 1)), "{lock} at seq {}", r.seq);
        }
        // The split log is still one valid chain (what a walk checks).
        let summary = crate::log::walk(&events, None, &crate::log::Decode::None, |_, _| Ok(())).unwrap();
        assert_eq!((summary.last_seq, summary.segments.len()), (3000, 2));
    }

    #[test]
    fn a_seq_the_log_does_not_hold_is_simply_absent() {
        let dir = log(50, 20);
        let events = dir.path().join("events");
        assert!(records_at(&events, &[0, 51, 10_000]).unwrap().is_empty());
        // A torn last line is not a record.
        let last = segment_path(&events, 2);
        let mut text = std::fs::read_to_string(&last).unwrap();
        text.push_str("{\"seq\":51,\"v\":2,\"ts\":\"2026-12-01T10");
        std::fs::write(&last, text).unwrap();
        assert!(records_at(&events, &[51]).unwrap().is_empty());
        assert_eq!(records_at(&events, &[50]).unwrap().len(), 1);
    }
}
