//! The writer and recovery: torn tails, group commit under concurrency, other processes' appends,
//! checkpoints that must never change an answer.

use crate::common;
use common::lock;

use std::sync::Arc;

use bdp::event::Event;
use bdp::log::{Decode, LogError, LogWriter, Problem, load, walk};
use bdp::repo::Repo;

#[test]
fn a_torn_tail_is_cut_on_open_and_the_cut_is_logged() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_torn_tail(tmp.path());
    let before = std::fs::metadata(common::segment(tmp.path())).unwrap().len();
    let bdp = tmp.path().join(".bdp");
    let (w, torn) =
        LogWriter::open(&bdp.join("events"), &bdp.join("append.lock"), "s-2", common::fixed_clock(0)).unwrap();
    let torn = torn.expect("the torn tail is reported");
    assert_eq!(torn.offset + torn.bytes, before);
    assert_eq!(w.last().0, 55, "the truncation event follows the 54 whole records");
    let (state, summary) = load::fold_verified(&bdp.join("events"), None, |_, _| {}).unwrap();
    assert!(summary.torn_tail.is_none());
    assert_eq!(state.truncations, 1);
}

#[test]
fn truncating_at_any_byte_of_the_last_three_records_keeps_exactly_the_valid_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    let original = std::fs::read(common::segment(tmp.path())).unwrap();
    let ends: Vec<usize> = original.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
    let start = ends[ends.len() - 4];
    for cut in start..=original.len() {
        let case = tempfile::tempdir().unwrap();
        let events = case.path().join(".bdp/events");
        std::fs::create_dir_all(&events).unwrap();
        std::fs::write(events.join("000001.jsonl"), &original[..cut]).unwrap();
        let whole = ends.iter().filter(|&&e| e <= cut).count() as u64;
        let (w, torn) = LogWriter::open(&events, &case.path().join(".bdp/append.lock"), "s-x", common::fixed_clock(0))
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(torn.is_some(), !ends.contains(&cut), "cut at {cut}");
        let expected_last = whole + u64::from(torn.is_some());
        assert_eq!(w.last().0, expected_last, "cut at {cut}");
        let (_, summary) =
            load::fold_verified(&events, None, |_, _| {}).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(summary.last_seq, expected_last);
        let kept = std::fs::read(events.join("000001.jsonl")).unwrap();
        assert_eq!(&kept[..ends[whole as usize - 1]], &original[..ends[whole as usize - 1]], "cut at {cut}");
    }
}

#[test]
fn concurrent_appenders_get_gapless_seqs_and_their_batches_stay_together() {
    let tmp = tempfile::tempdir().unwrap();
    let w = Arc::new(common::writer(tmp.path(), "s-c"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let w = Arc::clone(&w);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..40 {
                    let batch: Vec<Event> = (0..3).map(|k| lock(&format!("t{t}-{i}-{k}"))).collect();
                    let records = w.append(batch).unwrap();
                    let s: Vec<u64> = records.iter().map(|r| r.seq).collect();
                    assert_eq!(s[1], s[0] + 1);
                    assert_eq!(s[2], s[0] + 2);
                    seqs.extend(s);
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=960).collect::<Vec<u64>>());
    let (state, summary) = load::fold_verified(&tmp.path().join(".bdp/events"), None, |_, _| {}).unwrap();
    assert_eq!(summary.last_seq, 960);
    assert_eq!(state.locks.len(), 960);
}

#[test]
fn appends_from_another_process_are_picked_up_and_chained() {
    let tmp = tempfile::tempdir().unwrap();
    let a = common::writer(tmp.path(), "s-a");
    a.append(vec![lock("a1")]).unwrap();
    let b = common::writer(tmp.path(), "s-b");
    b.append(vec![lock("b1"), lock("b2")]).unwrap();
    let r = a.append_one(lock("a2")).unwrap();
    assert_eq!(r.seq, 4);
    let foreign: Vec<u64> = a.take_foreign().iter().map(|r| r.seq).collect();
    assert_eq!(foreign, vec![2, 3]);
    let (state, _) = load::fold_verified(&tmp.path().join(".bdp/events"), None, |_, _| {}).unwrap();
    assert_eq!(state.locks.keys().cloned().collect::<Vec<_>>(), vec!["a1", "a2", "b1", "b2"]);
}

#[test]
fn recovery_from_a_checkpoint_equals_a_full_fold_and_deleting_the_index_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo { root: tmp.path().to_path_buf() };
    let w = common::writer(tmp.path(), "s-r");
    w.append((0..5000).map(|i| lock(&format!("l{i}"))).collect()).unwrap();
    let first = load::recover(&repo).unwrap();
    assert_eq!(first.from_checkpoint, None);
    w.append(vec![Event::LockReleased { lock: "l7".into() }]).unwrap();
    let second = load::recover(&repo).unwrap();
    assert_eq!(second.from_checkpoint, Some(5000));
    let (full, _) = load::fold_verified(&repo.events_dir(), None, |_, _| {}).unwrap();
    assert_eq!(second.state, full);
    std::fs::remove_file(repo.index_path()).unwrap();
    let third = load::recover(&repo).unwrap();
    assert_eq!(third.from_checkpoint, None);
    assert_eq!(third.state, full);
}

#[test]
fn a_checkpoint_of_many_issues_in_parts_equals_a_full_fold() {
    // 9000 issues done and one held mid-attempt: the checkpoint stores them in three parts, read in parallel.
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo { root: tmp.path().to_path_buf() };
    let w = common::writer(tmp.path(), "s-p");
    w.append(vec![common::session_started(7, Some(1), serde_json::json!({}), None)]).unwrap();
    for chunk in (0..9000).collect::<Vec<u32>>().chunks(500) {
        let events: Vec<Event> = chunk
            .iter()
            .flat_map(|n| common::issue_done(&format!("bd-{n}"), 1, 100 + n, &format!("{n:040x}")))
            .collect();
        w.append(events).unwrap();
    }
    let held = common::issue_done("bd-held", 1, 99, &"f".repeat(40));
    w.append(held[..6].to_vec()).unwrap();
    let first = load::recover(&repo).unwrap();
    assert_eq!(first.from_checkpoint, None);
    w.append(vec![lock("after")]).unwrap();
    let second = load::recover(&repo).unwrap();
    assert_eq!(second.from_checkpoint, Some(first.summary.last_seq));
    let (full, _) = load::fold_verified(&repo.events_dir(), None, |_, _| {}).unwrap();
    assert_eq!(second.state.issues.len(), 9001);
    assert!(second.state.issues["bd-held"].claim.is_some());
    assert_eq!(second.state, full);
    let conn = rusqlite::Connection::open(repo.index_path()).unwrap();
    let parts: i64 = conn
        .query_row("SELECT count(*) FROM checkpoint_rows WHERE seq = ?1", [first.summary.last_seq as i64], |r| r.get(0))
        .unwrap();
    assert_eq!(parts, 3);
    // A part gone (a cache damaged): the checkpoint is refused, not read as a state with fewer issues.
    conn.execute("DELETE FROM checkpoint_rows WHERE part = 1", []).unwrap();
    let third = load::recover(&repo).unwrap();
    assert_eq!(third.from_checkpoint, None);
    assert_eq!(third.state, full);
}

#[test]
fn a_checkpoint_that_does_not_match_the_log_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo { root: tmp.path().to_path_buf() };
    {
        let w = common::writer(tmp.path(), "s-r");
        w.append((0..5000).map(|i| lock(&format!("l{i}"))).collect()).unwrap();
    }
    load::recover(&repo).unwrap();
    // Replace the log with a different one of the same length: the checkpoint no longer matches.
    std::fs::remove_dir_all(repo.events_dir()).unwrap();
    let w = common::writer(tmp.path(), "s-other");
    w.append((0..5000).map(|i| lock(&format!("m{i}"))).collect()).unwrap();
    let loaded = load::recover(&repo).unwrap();
    assert_eq!(loaded.from_checkpoint, None);
    assert!(loaded.state.locks.contains_key("m0") && !loaded.state.locks.contains_key("l0"));
}

#[test]
fn the_issue_index_answers_like_a_full_decode_as_the_log_grows_and_after_it_is_replaced() {
    use bdp::log::issue_index::issue_records;
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo { root: tmp.path().to_path_buf() };
    common::build_normal(tmp.path());
    let full = |issue: &str| -> Vec<u64> {
        let mut seqs = Vec::new();
        load::fold_verified(&repo.events_dir(), None, |r, _| {
            if r.event.issue() == Some(issue) {
                seqs.push(r.seq)
            }
        })
        .unwrap();
        seqs
    };
    let indexed = |issue: &str| -> Vec<u64> {
        issue_records(&repo.events_dir(), &repo.index_path(), issue).unwrap().0.iter().map(|r| r.seq).collect()
    };
    let refresh = || {
        let mut index = bdp::log::index::Index::open(&repo.index_path()).unwrap();
        bdp::log::issue_index::refresh(&repo.events_dir(), &mut index).unwrap();
    };
    assert_eq!(indexed("bd-b2"), full("bd-b2")); // no index: a full decode
    assert!(!repo.index_path().exists(), "a read never creates the index");
    refresh(); // what `bdp run`'s checkpointer does
    assert_eq!(indexed("bd-a1"), full("bd-a1")); // answers from it
    assert_eq!(indexed("bd-b2"), full("bd-b2"));
    // The log grows: the new records are decoded on the way, then indexed by the next refresh.
    let w = common::writer(tmp.path(), "s-more");
    w.append(vec![Event::LockAcquired { lock: "x".into(), holder_pid: 1, issue: Some("bd-b2".into()) }]).unwrap();
    assert_eq!(indexed("bd-b2"), full("bd-b2"));
    assert_eq!(*indexed("bd-b2").last().unwrap(), 55);
    refresh();
    assert_eq!(indexed("bd-b2"), full("bd-b2"));
    // The log is replaced by another: the index no longer matches; reads ignore it, a refresh rebuilds it.
    std::fs::remove_dir_all(repo.events_dir()).unwrap();
    common::build_recovery(tmp.path());
    assert_eq!(indexed("bd-b2"), Vec::<u64>::new());
    assert_eq!(indexed("bd-k2"), full("bd-k2"));
    refresh();
    assert_eq!(indexed("bd-k2"), full("bd-k2"));
    assert_eq!(indexed("bd-b2"), Vec::<u64>::new());
    // Deleting the index changes no answer.
    std::fs::remove_file(repo.index_path()).unwrap();
    assert_eq!(indexed("bd-k2"), full("bd-k2"));
}

/// A log of `n` lock records in one segment.
fn locks(root: &std::path::Path, n: usize) -> std::path::PathBuf {
    let w = common::writer(root, "s-w");
    w.append((0..n).map(|i| lock(&format!("l{i}"))).collect()).unwrap();
    root.join(".bdp/events")
}

#[test]
fn a_walk_hands_over_every_record_before_damage_in_order_then_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    // Past the first megabyte, to cross the walk's read blocks.
    let events = locks(tmp.path(), 20_000);
    let path = common::segment(tmp.path());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.len() > 1 << 20);
    std::fs::write(&path, text.replacen("\"l14999\"", "\"x14999\"", 1)).unwrap();
    let mut seen = Vec::new();
    let err = walk(&events, None, &Decode::All, |r, pos| {
        assert_eq!(pos.line, r.seq);
        seen.push(r.seq);
        Ok(())
    })
    .unwrap_err();
    assert_eq!(seen, (1..15_000).collect::<Vec<u64>>());
    match err {
        LogError::Corrupt(c) => {
            assert_eq!((c.seq, c.location.line, c.problem), (15_000, 15_000, Problem::ChainMismatch));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_walk_stops_at_its_callers_error_or_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let events = locks(tmp.path(), 20_000);
    let mut last = 0;
    let err = walk(&events, None, &Decode::All, |r, _| {
        last = r.seq;
        if r.seq == 2500 { Err(LogError::Internal("enough".into())) } else { Ok(()) }
    })
    .unwrap_err();
    assert_eq!((last, err.to_string().as_str()), (2500, "internal error: enough"));
    let panicked = std::panic::catch_unwind(|| {
        walk(&events, None, &Decode::All, |r, _| {
            assert!(r.seq < 3000, "the caller gives up");
            Ok(())
        })
    });
    assert!(panicked.is_err());
    // Only a range decoded, every record verified.
    let mut seqs = Vec::new();
    let summary = walk(&events, None, &Decode::Range(10_000..=10_002), |r, _| {
        seqs.push(r.seq);
        Ok(())
    })
    .unwrap();
    assert_eq!((seqs, summary.records, summary.last_seq), (vec![10_000, 10_001, 10_002], 20_000, 20_000));
}

#[test]
fn an_error_after_a_checkpoint_names_the_same_place_as_a_full_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo { root: tmp.path().to_path_buf() };
    locks(tmp.path(), 5000);
    load::recover(&repo).unwrap();
    let w = common::writer(tmp.path(), "s-r2");
    w.append(vec![Event::LockReleased { lock: "l7".into() }, Event::LockReleased { lock: "never".into() }]).unwrap();
    let from_checkpoint = load::recover(&repo).unwrap_err().to_string();
    let full = load::fold_verified(&repo.events_dir(), None, |_, _| {}).unwrap_err().to_string();
    assert_eq!(from_checkpoint, full);
    assert!(full.contains("000001.jsonl:5002 (byte "), "{full}");
}
