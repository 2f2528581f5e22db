//! `bdp events`: the records of logs built with the test builders, as JSON lines (compared with the log's
//! own records) and as a table (snapshot); `--after` as a cursor; `--follow` in a child process seeing
//! records appended after it started; SIGTERM and a closed pipe ending it with exit 0; damage reported.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bdp::event::{Event, Record};
use bdp::log::{Decode, walk};

fn records(root: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    walk(&root.join(".bdp/events"), None, &Decode::All, |r, _| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

fn bdp(root: &Path, args: &[&str]) -> std::process::Output {
    common::bdp(root).args(args).output().unwrap()
}

/// The JSON lines of `bdp events ARGS`, each parsed; the command must succeed.
fn json_lines(root: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = bdp(root, args);
    assert!(out.status.success(), "bdp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn as_json(records: &[Record]) -> Vec<serde_json::Value> {
    records.iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

fn show(root: &Path, args: &[&str]) -> String {
    common::transcript(root, args)
}

#[test]
fn json_lines_are_the_records_of_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_recovery(tmp.path());
    let expected = records(tmp.path());
    assert!(expected.len() > 30);
    assert_eq!(json_lines(tmp.path(), &["events", "--json"]), as_json(&expected));
    // Upcast records come out in the current shape.
    let v1 = tempfile::tempdir().unwrap();
    common::build_v1(v1.path());
    let lines = json_lines(v1.path(), &["events", "--json"]);
    assert_eq!(lines, as_json(&records(v1.path())));
    assert_eq!(lines[1]["event"]["type"], "issue_claimed");
}

#[test]
fn after_resumes_from_a_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    let all = records(tmp.path());
    for after in [0, 1, 17, all.len() as u64 - 1] {
        let got = json_lines(tmp.path(), &["events", "--json", "--after", &after.to_string()]);
        assert_eq!(got, as_json(&all[after as usize..]), "--after {after}");
    }
    // At or past the end: nothing, and no error.
    for after in [all.len() as u64, 1_000_000] {
        let out = bdp(tmp.path(), &["events", "--after", &after.to_string()]);
        assert!(out.status.success());
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "--after {after}: {out:?}");
    }
}

#[test]
fn human_output_is_a_table_of_records() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_recovery(tmp.path());
    let mut text = show(tmp.path(), &["events"]);
    text.push_str(&show(tmp.path(), &["events", "--after", "40"]));
    insta::assert_snapshot!("events_human", text);
}

#[test]
fn damage_is_an_error_naming_the_place_and_nothing_after_it_is_printed() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_corrupt_middle(tmp.path());
    let out = bdp(tmp.path(), &["events", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let seqs: Vec<u64> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4], "only the records before the damage");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    settings.bind(|| insta::assert_snapshot!("events_damaged", show(tmp.path(), &["events"])));
    // A torn tail (a write in progress, or a crash) is not damage: the whole records are printed.
    let torn = tempfile::tempdir().unwrap();
    common::build_torn_tail(torn.path());
    assert_eq!(json_lines(torn.path(), &["events", "--json"]).len(), records(torn.path()).len());
}

/// `bdp events ARGS` in the background, its stdout lines sent over a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(root: &Path, args: &[&str]) -> Follower {
        let mut child = common::bdp(root).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// Lines until one satisfies `done` (which is included), within a generous deadline.
    fn until(&self, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let last = done(&line);
                    got.push(line);
                    if last {
                        return got;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("the expected line did not arrive; got {got:#?}");
    }

    fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(), signal).unwrap();
    }

    /// Waits for the process to end; its exit code and stderr.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
                return (status.code(), stderr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("bdp events did not end");
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"].as_u64().unwrap()
}

#[test]
fn follow_prints_records_appended_after_it_started_and_ends_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    common::build_normal(root);
    let before = records(root);
    let last = before.last().unwrap().seq;
    let follower = Follower::start(root, &["events", "--json", "--follow", "--after", &(last - 2).to_string()]);
    let first = follower.until(|l| seq_of(l) == last);
    assert_eq!(first.iter().map(|l| seq_of(l)).collect::<Vec<_>>(), [last - 1, last]);

    let w = common::writer_at(root, "s-20261125-063000-f1", 30 * 60 * 1000);
    let lock = Event::LockAcquired { lock: "release".into(), holder_pid: 42, issue: None };
    w.append(vec![lock.clone()]).unwrap();
    let got = follower.until(|l| seq_of(l) == last + 1);
    assert_eq!(got.len(), 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got[0]).unwrap(),
        serde_json::to_value(&records(root)[last as usize]).unwrap()
    );
    // Several appends, one of them a batch: each record once, in order.
    w.append(vec![Event::LockReleased { lock: "release".into() }]).unwrap();
    w.append(vec![lock, Event::LockReleased { lock: "release".into() }]).unwrap();
    let got = follower.until(|l| seq_of(l) == last + 4);
    assert_eq!(got.iter().map(|l| seq_of(l)).collect::<Vec<_>>(), [last + 2, last + 3, last + 4]);

    follower.signal(rustix::process::Signal::TERM);
    let (code, stderr) = follower.wait();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn follow_past_the_end_waits_and_a_closed_pipe_ends_it_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    common::build_normal(root);
    let last = records(root).last().unwrap().seq;
    let mut follower = Follower::start(root, &["events", "--follow", "--after", &(last + 1).to_string()]);
    let w = common::writer_at(root, "s-20261125-063000-f2", 0);
    // seq last+1 is not after the cursor; last+2 is, and is printed (after the table header).
    w.append(vec![Event::LockAcquired { lock: "a".into(), holder_pid: 42, issue: None }]).unwrap();
    w.append(vec![Event::LockReleased { lock: "a".into() }]).unwrap();
    let got = follower.until(|l| l.trim_start().starts_with(&(last + 2).to_string()));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].trim_start().starts_with("SEQ"), "{got:?}");
    assert!(got[1].contains("lock_released"), "{got:?}");

    // The reader goes away: the next write fails with a broken pipe and bdp ends without a word.
    let (tx, dead) = mpsc::channel();
    drop(std::mem::replace(&mut follower.lines, dead));
    drop(tx);
    std::thread::sleep(Duration::from_millis(300)); // the reading thread notices on its next line
    for _ in 0..3 {
        w.append(vec![Event::LockAcquired { lock: "b".into(), holder_pid: 42, issue: None }]).unwrap();
        w.append(vec![Event::LockReleased { lock: "b".into() }]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, stderr) = follower.wait();
    assert_eq!(code, Some(0));
    assert_eq!(stderr, "");
}

#[test]
fn follow_on_a_repo_without_a_log_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let out = bdp(root, &["events"]);
    assert_eq!(out.status.code(), Some(2), "without --follow, no log is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event log"));
    let follower = Follower::start(root, &["events", "--json", "--follow"]);
    std::thread::sleep(Duration::from_millis(300));
    common::build_normal(root);
    let n = records(root).len() as u64;
    let got = follower.until(|l| seq_of(l) == n);
    assert_eq!(got.iter().map(|l| seq_of(l)).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
    follower.signal(rustix::process::Signal::INT);
    assert_eq!(follower.wait().0, Some(0));
}
