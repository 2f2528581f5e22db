//! Faults on disk: a write torn at any byte, and a byte flipped anywhere.
//!
//! - A cut at any byte of the last three records keeps exactly the records wholly before it (read-only
//!   recovery reports the torn tail; opening a writer cuts it, logs `log_truncated`, and appends go on
//!   from the kept prefix), in a one-segment log and in a two-segment log cut in its last segment.
//! - A single flipped bit anywhere is damage named by the seq of the record that holds it (`bdp verify`
//!   exits 1), and `bdp run` refuses to start on it, pointing at `bdp verify`, without touching the log.

use crate::common;
use crate::common::run_support;
use common::lock;

use std::path::{Path, PathBuf};

use bdp::event::{Event, Record};
use bdp::log::walk::TornTail;
use bdp::log::{Decode, LogError, LogWriter, load, walk};
use bdp::repo::Repo;
use bdp::state::State;

/// Offsets just past each newline of `bytes`.
fn line_ends(bytes: &[u8]) -> Vec<usize> {
    bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect()
}

/// Every record of the log under `events`, verified; panics (naming `what`) on any error.
fn records(events: &Path, what: &str) -> (Vec<Record>, bdp::log::WalkSummary) {
    let mut out = Vec::new();
    let summary = walk(events, None, &Decode::All, |r, _| {
        out.push(r);
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    (out, summary)
}

/// A directory for one of the many cut cases: in memory when the machine has `/dev/shm`, since each case
/// fsyncs a few times and what is tested does not depend on the disk.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

/// A log laid out in segments: the bytes of each segment file, in order.
struct Layout {
    name: &'static str,
    segments: Vec<Vec<u8>>,
}

impl Layout {
    fn write(&self, root: &Path, last_len: usize) -> PathBuf {
        let events = root.join(".bdp/events");
        std::fs::create_dir_all(&events).unwrap();
        let n = self.segments.len();
        for (i, bytes) in self.segments.iter().enumerate() {
            let bytes = if i + 1 == n { &bytes[..last_len] } else { &bytes[..] };
            std::fs::write(events.join(format!("{:06}.jsonl", i + 1)), bytes).unwrap();
        }
        events
    }

    /// Where to cut the last segment: the two-segment layout at every byte of its last segment (the last
    /// three records), the one-segment layout (whose every cut `tests/log_writer.rs` tries) at every
    /// seventh byte of its last three records and next to each record boundary.
    fn cuts(&self) -> Vec<usize> {
        let last = self.last();
        if self.segments.len() > 1 {
            return (0..=last.len()).collect();
        }
        let ends = line_ends(last);
        let boundaries = &ends[ends.len() - 4..];
        let mut cuts: Vec<usize> = (boundaries[0]..=last.len()).step_by(7).collect();
        cuts.extend(boundaries.iter().flat_map(|&e| [e - 1, e, e + 1]).filter(|&c| c <= last.len()));
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }

    fn last(&self) -> &[u8] {
        self.segments.last().unwrap()
    }

    /// Whole records in the segments before the last one.
    fn records_before_last(&self) -> usize {
        self.segments[..self.segments.len() - 1].iter().map(|s| line_ends(s).len()).sum()
    }
}

/// The normal fixture as one segment, and split so that its last three records form a second segment.
fn layouts() -> Vec<Layout> {
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    let bytes = std::fs::read(common::segment(tmp.path())).unwrap();
    let ends = line_ends(&bytes);
    let split = ends[ends.len() - 4];
    vec![
        Layout { name: "one segment", segments: vec![bytes.clone()] },
        Layout { name: "two segments", segments: vec![bytes[..split].to_vec(), bytes[split..].to_vec()] },
    ]
}

#[test]
fn a_cut_at_any_byte_of_the_last_three_records_keeps_exactly_the_prefix_and_appends_chain_on() {
    let source = tempfile::tempdir().unwrap();
    common::build_normal(source.path());
    let (original, _) = records(&source.path().join(".bdp/events"), "the original");
    // The state after each prefix, to compare recovery with.
    let mut states = vec![State::new()];
    for r in &original {
        let mut next = states.last().unwrap().clone();
        next.apply(r).unwrap();
        states.push(next);
    }
    let mut cases = 0;
    for layout in layouts() {
        let last = layout.last();
        let ends = line_ends(last);
        for cut in layout.cuts() {
            cases += 1;
            let what = format!("{}, last segment cut at byte {cut} of {}", layout.name, last.len());
            let case = scratch_dir();
            let events = layout.write(case.path(), cut);
            let segment = events.join(format!("{:06}.jsonl", layout.segments.len()));
            let kept_len = ends.iter().copied().filter(|&e| e <= cut).max().unwrap_or(0);
            let whole = layout.records_before_last() + ends.iter().filter(|&&e| e <= cut).count();
            let torn = (cut > kept_len).then(|| TornTail {
                segment: segment.clone(),
                offset: kept_len as u64,
                bytes: (cut - kept_len) as u64,
            });

            // Read-only recovery sees the whole records, reports the torn bytes, and changes nothing.
            let loaded = load::recover(&Repo { root: case.path().to_path_buf() })
                .unwrap_or_else(|e| panic!("{what}: recover: {e}"));
            assert_eq!(loaded.summary.last_seq, whole as u64, "{what}");
            assert_eq!(loaded.summary.torn_tail, torn, "{what}");
            assert_eq!(loaded.state, states[whole], "{what}");
            assert_eq!(std::fs::metadata(&segment).unwrap().len(), cut as u64, "{what}: recovery wrote");

            // Opening a writer cuts the torn bytes and logs the cut; the next append chains on.
            let (writer, cut_off) =
                LogWriter::open(&events, &case.path().join(".bdp/append.lock"), "s-after", common::fixed_clock(0))
                    .unwrap_or_else(|e| panic!("{what}: open: {e}"));
            assert_eq!(cut_off, torn, "{what}");
            let truncated = u64::from(torn.is_some());
            assert_eq!(writer.last().0, whole as u64 + truncated, "{what}");
            let appended = writer.append_one(lock("after-the-cut")).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(appended.seq, whole as u64 + truncated + 1, "{what}");
            drop(writer);

            let (now, summary) = records(&events, &what);
            assert_eq!(summary.torn_tail, None, "{what}");
            assert_eq!(now[..whole], original[..whole], "{what}: the kept records changed");
            let mut added: Vec<Event> = now[whole..].iter().map(|r| r.event.clone()).collect();
            assert_eq!(added.pop(), Some(lock("after-the-cut")), "{what}");
            let expected_note: Vec<Event> = torn
                .iter()
                .map(|t| Event::LogTruncated {
                    segment: format!("{:06}.jsonl", layout.segments.len()),
                    offset: t.offset,
                    dropped_bytes: t.bytes,
                })
                .collect();
            assert_eq!(added, expected_note, "{what}");
            let kept = std::fs::read(&segment).unwrap();
            assert_eq!(&kept[..kept_len], &last[..kept_len], "{what}: the kept bytes changed");
            let (state, _) = load::fold_verified(&events, None, |_, _| {}).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(state.truncations, truncated, "{what}");
        }
    }
    assert!(cases > 700, "only {cases} cuts tried");
}

#[test]
fn bdp_verify_reports_a_torn_tail_as_a_note_and_exits_0() {
    let layout = layouts().remove(0);
    let ends = line_ends(layout.last());
    let last_start = ends[ends.len() - 2];
    for cut in [last_start, last_start + 1, last_start + 100, layout.last().len() - 1] {
        let case = tempfile::tempdir().unwrap();
        layout.write(case.path(), cut);
        let out = verify_json(case.path());
        assert_eq!(out.code, 0, "cut at {cut}: {}", out.text);
        assert_eq!(out.json["last_seq"], ends.len() as u64 - 1, "cut at {cut}");
        let torn_bytes = (cut - last_start) as u64;
        if torn_bytes == 0 {
            assert!(out.json["torn_tail"].is_null(), "cut at {cut}: {}", out.text);
        } else {
            assert_eq!(out.json["torn_tail"]["bytes"], torn_bytes, "cut at {cut}: {}", out.text);
            assert_eq!(out.json["torn_tail"]["offset"], last_start as u64, "cut at {cut}: {}", out.text);
        }
    }
}

/// Flips one bit of byte `at` (which bit varies with the offset, so every bit gets flipped somewhere).
fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 1 << (at % 8);
    out
}

/// The seq (from 1) of the record holding byte `at`; its newline belongs to it.
fn seq_at(ends: &[usize], at: usize) -> u64 {
    ends.iter().position(|&e| at < e).unwrap() as u64 + 1
}

#[test]
fn a_bit_flipped_anywhere_is_damage_named_by_the_seq_of_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_crash_before_spawned(tmp.path());
    let bytes = std::fs::read(common::segment(tmp.path())).unwrap();
    let ends = line_ends(&bytes);
    let case = tempfile::tempdir().unwrap();
    let events = case.path().join(".bdp/events");
    std::fs::create_dir_all(&events).unwrap();
    for at in 0..bytes.len() {
        std::fs::write(events.join("000001.jsonl"), flip(&bytes, at)).unwrap();
        let seq = seq_at(&ends, at);
        let err = match load::fold_verified(&events, None, |_, _| {}) {
            Ok((_, summary)) => panic!("byte {at} (seq {seq}) flipped: accepted as {} records", summary.last_seq),
            Err(err) => err,
        };
        let LogError::Corrupt(c) = err.root() else { panic!("byte {at}: not reported as damage: {err}") };
        assert_eq!(c.seq, seq, "byte {at} flipped: {c}");
        assert_eq!(c.location.line, seq, "byte {at} flipped: {c}");
        assert_eq!(c.location.offset, if seq == 1 { 0 } else { ends[seq as usize - 2] as u64 }, "byte {at}: {c}");
    }
}

struct Verified {
    code: i32,
    json: serde_json::Value,
    text: String,
}

fn verify_json(root: &Path) -> Verified {
    let out = common::bdp(root).args(["verify", "--json"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    Verified { code: out.status.code().unwrap_or(-1), json, text }
}

/// Offsets to flip through the binary: a seeded sample, plus the first and last bytes and the last record's
/// chain value.
fn sample(len: usize, ends: &[usize]) -> Vec<usize> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut out: Vec<usize> = (0..16)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % len as u64) as usize
        })
        .collect();
    out.extend([0, len - 1, len - 10, ends[ends.len() - 2] + 3]);
    out
}

#[test]
fn bdp_verify_exits_1_naming_the_seq_of_a_flipped_byte() {
    let layout = layouts().remove(0);
    let bytes = layout.last();
    let ends = line_ends(bytes);
    for at in sample(bytes.len(), &ends) {
        let case = tempfile::tempdir().unwrap();
        let events = case.path().join(".bdp/events");
        std::fs::create_dir_all(&events).unwrap();
        std::fs::write(events.join("000001.jsonl"), flip(bytes, at)).unwrap();
        let out = verify_json(case.path());
        assert_eq!(out.code, 1, "byte {at} flipped: {}", out.text);
        assert_eq!(out.json["ok"], false, "byte {at}: {}", out.text);
        assert_eq!(out.json["problem"]["seq"], seq_at(&ends, at), "byte {at}: {}", out.text);
    }
}

#[test]
fn bdp_run_refuses_a_damaged_log_and_points_at_bdp_verify() {
    let layout = layouts().remove(0);
    let bytes = layout.last();
    let ends = line_ends(bytes);
    // A record in the middle, the last record's body, and the last record's newline.
    // The fourth: damage in the middle and a torn tail too (the tail must not be cut: nothing is written).
    for (at, torn) in
        [(ends[20] + 30, false), (ends[ends.len() - 2] + 40, false), (bytes.len() - 1, false), (ends[20] + 30, true)]
    {
        let seq = seq_at(&ends, at);
        let sb = run_support::Sandbox::new(&[("t1", "one task", 2, &[])]);
        let events = sb.root().join(".bdp/events");
        std::fs::create_dir_all(&events).unwrap();
        let mut damaged = flip(bytes, at);
        if torn {
            damaged.extend_from_slice(b"{\"seq\":99,\"v\":2,\"ts\":");
        }
        std::fs::write(events.join("000001.jsonl"), &damaged).unwrap();
        let tracker_before = std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap();
        let agent = sb.committing_agent();
        let out = sb.bdp(&["run", "--plain", "--", agent.to_str().unwrap(), "{id}"]);
        let err = run_support::stderr(&out);
        let what = format!("byte {at} (seq {seq}) flipped");
        assert_eq!(out.status.code(), Some(2), "{what}: {err}{}", run_support::stdout(&out));
        assert!(err.contains(&format!("seq {seq}:")), "{what}: {err}");
        assert!(err.contains("hint:") && err.contains("bdp verify"), "{what}: {err}");
        assert_eq!(std::fs::read(events.join("000001.jsonl")).unwrap(), damaged, "{what}: run changed the log");
        let tracker_after = std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap();
        assert_eq!(tracker_after, tracker_before, "{what}: run changed the tracker");
    }
}

#[test]
fn zeros_after_the_last_whole_record_are_a_torn_write_that_drops_it() {
    // Some filesystems leave zeros where a crash kept the file's new length but not its data: the last
    // record lost its newline that way was never acknowledged, so it is cut like any torn write.
    let layout = layouts().remove(0);
    let bytes = layout.last();
    let ends = line_ends(bytes);
    let mut zeroed = bytes[..bytes.len() - 1].to_vec();
    zeroed.extend_from_slice(&[0; 5]);
    let case = tempfile::tempdir().unwrap();
    let events = case.path().join(".bdp/events");
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(events.join("000001.jsonl"), &zeroed).unwrap();
    let out = verify_json(case.path());
    assert_eq!(out.code, 0, "{}", out.text);
    assert_eq!(out.json["torn_tail"]["bytes"], zeroed.len() as u64 - ends[ends.len() - 2] as u64, "{}", out.text);
    let (writer, torn) =
        LogWriter::open(&events, &case.path().join(".bdp/append.lock"), "s-z", common::fixed_clock(0)).unwrap();
    assert_eq!(torn.map(|t| t.offset), Some(ends[ends.len() - 2] as u64));
    assert_eq!(writer.last().0, ends.len() as u64, "the log_truncated record took the dropped record's seq");
}
