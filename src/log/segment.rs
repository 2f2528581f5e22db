//! Segment files: `.bdp/events/000001.jsonl`, `000002.jsonl`, … numbered from 1 without gaps.
//! Records never span segments; the chain runs on across them.

use std::path::{Path, PathBuf};

use super::error::LogError;

/// A new segment is started once the current one would grow past this many bytes.
pub const SEGMENT_MAX_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub number: u32,
    pub path: PathBuf,
}

pub fn segment_name(number: u32) -> String {
    format!("{number:06}.jsonl")
}

pub fn segment_path(events_dir: &Path, number: u32) -> PathBuf {
    events_dir.join(segment_name(number))
}

fn parse_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".jsonl")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// Lists the segments in order. A missing directory is [`LogError::NoLog`]. Gaps in the numbering are
/// left for the reader to report (it knows the seq expected there). Other files are ignored (and logged).
pub fn list_segments(events_dir: &Path) -> Result<Vec<Segment>, LogError> {
    let entries = match std::fs::read_dir(events_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LogError::NoLog { path: events_dir.to_path_buf() });
        }
        Err(e) => return Err(LogError::io("read the directory", events_dir, e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("read the directory", events_dir, e))?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_name) {
            Some(number) => segments.push(Segment { number, path: entry.path() }),
            None => tracing::warn!("ignoring {}: not a log segment", entry.path().display()),
        }
    }
    segments.sort_by_key(|s| s.number);
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        assert_eq!(parse_name(&segment_name(7)), Some(7));
        assert_eq!(parse_name("000000.jsonl"), None);
        assert_eq!(parse_name("12.jsonl"), None);
        assert_eq!(parse_name("000001.jsonl.tmp"), None);
        assert_eq!(parse_name("1234567.jsonl"), Some(1_234_567));
    }
}
