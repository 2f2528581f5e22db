//! `log::tail::LogTail`: polls hand out exactly the records appended since the last poll, verified; a
//! line being written waits for the next poll; a new segment is followed; damage in the new bytes is an
//! error by seq; nothing under `.bdp/` is written.

use crate::common;

use std::path::Path;

use bdp::event::{Event, Record};
use bdp::log::tail::LogTail;
use bdp::log::{Decode, LogError, walk};

fn poll(tail: &mut LogTail) -> Result<Vec<u64>, LogError> {
    let mut seqs = Vec::new();
    let n = tail.poll(|r: Record, _| {
        seqs.push(r.seq);
        Ok(())
    })?;
    assert_eq!(n, seqs.len() as u64);
    Ok(seqs)
}

fn lock(n: u32) -> Event {
    Event::LockAcquired { lock: format!("l{n}"), holder_pid: n, issue: None }
}

fn events_dir(root: &Path) -> std::path::PathBuf {
    root.join(".bdp/events")
}

#[test]
fn each_poll_hands_out_what_was_appended_since_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut tail = LogTail::from_start(&events_dir(root));
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new(), "no log yet: nothing, no error");
    let w = common::writer(root, "s-tail");
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
    w.append(vec![lock(1), lock(2)]).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), [1, 2]);
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new(), "nothing new");
    assert_eq!(tail.last_seq(), 2);
    w.append(vec![lock(3)]).unwrap();
    w.append(vec![lock(4)]).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), [3, 4]);
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
    // Polls change nothing on disk.
    w.append(vec![lock(5)]).unwrap();
    let before = common::bdp_tree(root);
    assert_eq!(poll(&mut tail).unwrap(), [5]);
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
    assert_eq!(common::bdp_tree(root), before);
}

#[test]
fn a_tail_after_a_walk_continues_where_it_ended() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    common::build_normal(root);
    let summary = walk(&events_dir(root), None, &Decode::None, |_, _| Ok(())).unwrap();
    let mut tail = LogTail::after_walk(&events_dir(root), &summary);
    assert_eq!(tail.last_seq(), summary.last_seq);
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
    let w = common::writer(root, "s-tail");
    w.append(vec![lock(1)]).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), [summary.last_seq + 1]);
}

#[test]
fn a_line_being_written_waits_for_the_next_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let w = common::writer(root, "s-tail");
    w.append(vec![lock(1), lock(2), lock(3)]).unwrap();
    let segment = common::segment(root);
    let whole = std::fs::read(&segment).unwrap();
    let third = whole[..whole.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    // The third record only half written.
    let cut = third + (whole.len() - third) / 2;
    std::fs::write(&segment, &whole[..cut]).unwrap();
    let mut tail = LogTail::from_start(&events_dir(root));
    assert_eq!(poll(&mut tail).unwrap(), [1, 2]);
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
    // All but its newline.
    std::fs::write(&segment, &whole[..whole.len() - 1]).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
    std::fs::write(&segment, &whole).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), [3]);
}

#[test]
fn a_new_segment_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let w = common::writer(root, "s-tail");
    for n in 1..=6 {
        w.append(vec![lock(n)]).unwrap();
    }
    drop(w);
    // Records never span segments and the chain runs across them: move the last three lines to a
    // second segment, as the writer does when the first is full.
    let segment = common::segment(root);
    let text = std::fs::read_to_string(&segment).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first: String = lines[..3].iter().map(|l| format!("{l}\n")).collect();
    let second: String = lines[3..].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&segment, &first).unwrap();
    let mut tail = LogTail::from_start(&events_dir(root));
    assert_eq!(poll(&mut tail).unwrap(), [1, 2, 3]);
    let next = events_dir(root).join("000002.jsonl");
    std::fs::write(&next, "").unwrap();
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new(), "an empty new segment holds nothing yet");
    std::fs::write(&next, &second[..second.len() / 2]).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), [4], "whole lines only");
    std::fs::write(&next, &second).unwrap();
    assert_eq!(poll(&mut tail).unwrap(), [5, 6]);
    assert_eq!(poll(&mut tail).unwrap(), Vec::<u64>::new());
}

#[test]
fn damage_in_the_new_records_is_an_error_by_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let w = common::writer(root, "s-tail");
    w.append(vec![lock(1)]).unwrap();
    let mut tail = LogTail::from_start(&events_dir(root));
    assert_eq!(poll(&mut tail).unwrap(), [1]);
    w.append(vec![lock(2)]).unwrap();
    drop(w);
    let segment = common::segment(root);
    let text = std::fs::read_to_string(&segment).unwrap();
    std::fs::write(&segment, text.replacen("\"l2\"", "\"l9\"", 1)).unwrap();
    match poll(&mut tail) {
        Err(LogError::Corrupt(c)) => {
            assert_eq!(c.seq, 2);
            assert_eq!(c.location.segment, segment);
        }
        other => panic!("expected damage at seq 2, got {other:?}"),
    }
}
