//! Loom models of the writer's group commit: `RUSTFLAGS="--cfg loom" cargo test --release --lib loom`.
//!
//! They drive the real [`LogWriter::append`]. Under `--cfg loom` its queue, leader election and handoff
//! use loom's Mutex and Condvar (see `sync`), so loom runs every interleaving of the appenders and
//! reports a deadlock if any caller is left waiting. The log files are real, in a fresh directory per
//! interleaving; loom does not switch threads inside the file I/O, which the writer does under its tail
//! lock. After each interleaving the models check what every caller got against each other and
//! against the bytes on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::record::{GENESIS, chain_next, decode_line, split_line};
use crate::event::{ChainHash, Event, Record};

use super::error::LogError;
use super::sync::fault;
use super::writer::{Clock, CommitMode, LogWriter};

/// A log in a fresh directory (in memory when /dev/shm exists, so fdatasync is cheap).
struct Log {
    _dir: tempfile::TempDir,
    events: PathBuf,
    writer: Arc<LogWriter>,
}

fn open_log(mode: CommitMode) -> Log {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let events = dir.path().join("events");
    let (writer, torn) = LogWriter::open(&events, &dir.path().join("append.lock"), "s-loom", commit_clock()).unwrap();
    assert!(torn.is_none());
    Log { _dir: dir, events, writer: Arc::new(writer.with_mode(mode)) }
}

/// The writer reads its clock once per commit: the timestamp says which commit a record was in.
fn commit_clock() -> Clock {
    let commits = AtomicU64::new(0);
    Box::new(move || format!("2026-11-25T06:00:00.{:03}Z", commits.fetch_add(1, Ordering::SeqCst)))
}

fn events_of(caller: u32, count: usize) -> Vec<Event> {
    (0..count)
        .map(|i| Event::LockAcquired { lock: format!("c{caller}-e{i}"), holder_pid: caller, issue: None })
        .collect()
}

/// What one appender handed over and got back.
struct Appended {
    events: Vec<Event>,
    result: Result<Vec<Record>, LogError>,
}

/// Appends `batch_sizes[i]` events as caller `i`, all concurrently: the first on the model's main thread.
fn append_concurrently(writer: &Arc<LogWriter>, batch_sizes: &[usize]) -> Vec<Appended> {
    let append = |writer: &LogWriter, caller: usize, size: usize| {
        let events = events_of(caller as u32, size);
        Appended { result: writer.append(events.clone()), events }
    };
    let others: Vec<_> = (1..batch_sizes.len())
        .map(|caller| {
            let writer = Arc::clone(writer);
            let size = batch_sizes[caller];
            loom::thread::spawn(move || append(&writer, caller, size))
        })
        .collect();
    let mut all = vec![append(writer, 0, batch_sizes[0])];
    all.extend(others.into_iter().map(|h| h.join().unwrap()));
    all
}

/// Checks each successful caller got exactly its events, in order, with consecutive seqs from one commit;
/// returns all their records by seq.
fn acknowledged(appended: &[Appended]) -> BTreeMap<u64, Record> {
    let mut by_seq = BTreeMap::new();
    for a in appended {
        let Ok(records) = &a.result else { continue };
        let got: Vec<&Event> = records.iter().map(|r| &r.event).collect();
        assert_eq!(got, a.events.iter().collect::<Vec<_>>(), "a caller gets back exactly its own events");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.seq, records[0].seq + i as u64, "a caller's records have consecutive seqs");
            assert_eq!(r.ts, records[0].ts, "a caller's records are in one commit");
            assert!(by_seq.insert(r.seq, r.clone()).is_none(), "seq {} handed to two callers", r.seq);
        }
    }
    by_seq
}

/// Checks the log on disk holds exactly `expected` (gapless from seq 1, chained in order, no partial
/// record) and that the writer continues from its last record.
fn assert_log_is(log: &Log, expected: &BTreeMap<u64, Record>) {
    let seqs: Vec<u64> = expected.keys().copied().collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "acknowledged seqs are gapless from 1");
    let bytes = std::fs::read(log.events.join("000001.jsonl")).unwrap();
    assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "no partial record is left on disk");
    let mut chain: ChainHash = GENESIS;
    let mut on_disk = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let raw = split_line(line).unwrap();
        chain = chain_next(&chain, raw.body);
        assert_eq!(raw.chain, chain, "seq {} links to the record before it", raw.seq);
        on_disk.push(decode_line(line).unwrap());
    }
    assert_eq!(on_disk, expected.values().cloned().collect::<Vec<_>>(), "the log holds exactly what was acknowledged");
    assert_eq!(log.writer.last(), (seqs.len() as u64, chain), "the writer continues from the last good record");
}

/// Runs `model` under loom, trying every interleaving or, with `preemption_bound`, those in which
/// threads are switched against their will at most that many times.
fn check(preemption_bound: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = builder.preemption_bound.or(preemption_bound);
    builder.check(model);
}

fn group_commit_model(mode: CommitMode, batch_sizes: &'static [usize], preemption_bound: Option<usize>) {
    check(preemption_bound, move || {
        let log = open_log(mode);
        let appended = append_concurrently(&log.writer, batch_sizes);
        assert!(appended.iter().all(|a| a.result.is_ok()), "no append fails");
        let records = acknowledged(&appended);
        if mode == CommitMode::PerAppend {
            let mut commits: Vec<&str> = appended.iter().map(|a| a.result.as_ref().unwrap()[0].ts.as_str()).collect();
            commits.sort_unstable();
            commits.dedup();
            assert_eq!(commits.len(), batch_sizes.len(), "per-append mode gives each caller its own commit");
        }
        assert_log_is(&log, &records);
    });
}

#[test]
fn loom_group_commit_hands_every_caller_its_own_gapless_chained_records() {
    group_commit_model(CommitMode::Group, &[2, 1, 1], None);
}

/// Four appenders are the fewest in which one leader's commit can leave two waiters to wake (with three,
/// a `notify_one` in place of `notify_all` passes); bounded to keep the run near ten seconds.
#[test]
fn loom_group_commit_wakes_every_waiter_of_a_batch() {
    group_commit_model(CommitMode::Group, &[1, 1, 1, 1], Some(3));
}

#[test]
fn loom_per_append_commits_hand_every_caller_its_own_records() {
    group_commit_model(CommitMode::PerAppend, &[2, 1, 1], None);
}

/// The first commit fails after its bytes were written and synced. Every caller in it gets that one error
/// (one of them getting records back would hold records the log does not: `assert_log_is`), its bytes are
/// cut, and the later commits and the next append number on from the last good record.
#[test]
fn loom_a_failed_commit_fails_its_whole_batch_and_the_log_continues_from_the_last_good_seq() {
    check(None, || {
        let log = open_log(CommitMode::Group);
        fault::fail_next_sync(&log.events);
        let appended = append_concurrently(&log.writer, &[2, 1, 1]);
        let failed: Vec<&Arc<LogError>> = appended
            .iter()
            .filter_map(|a| match &a.result {
                Ok(_) => None,
                Err(LogError::Shared(err)) => Some(err),
                Err(other) => panic!("a failed commit is reported as shared by its batch, got {other}"),
            })
            .collect();
        assert!(!failed.is_empty(), "the failed commit is reported to its callers");
        assert!(failed.iter().all(|e| Arc::ptr_eq(e, failed[0])), "exactly one commit failed");
        assert!(failed[0].to_string().contains("injected fdatasync failure"), "{}", failed[0]);
        let mut records = acknowledged(&appended);
        assert_log_is(&log, &records);
        let next = log.writer.append_one(events_of(9, 1).remove(0)).unwrap();
        assert_eq!(next.seq, records.len() as u64 + 1, "the next append continues from the last good seq");
        records.insert(next.seq, next);
        assert_log_is(&log, &records);
    });
}
