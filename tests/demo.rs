//! `bdp demo`, end to end: one real demo run (a sandbox, scripted agents, a SIGKILL, the recovery), kept in
//! a directory, and checked from every side: what it printed, what its log says, what git and the tracker
//! hold. Then every read command on that sandbox, checked to leave `.bdp/` byte for byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::common;

struct Demo {
    dir: PathBuf,
    stdout: String,
    code: Option<i32>,
}

/// The one demo run of this test binary, shared by its tests.
fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(env!("CARGO_BIN_EXE_bdp"))
            .args(["demo", "--keep"])
            .arg(&dir)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        Demo { dir, stdout, code: out.status.code() }
    })
}

fn bdp(dir: &Path, args: &[&str]) -> std::process::Output {
    common::bdp(dir).args(args).output().unwrap()
}

fn records(dir: &Path) -> Vec<Value> {
    common::records(dir)
}

fn events<'a>(records: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    records.iter().filter(move |r| r["event"]["type"] == kind)
}

#[test]
fn the_demo_crashes_a_run_and_the_next_run_recovers_it_without_loss() {
    let d = demo();
    assert_eq!(d.code, Some(0), "the demo exits 0 when everything it shows happened");
    let records = records(&d.dir);
    // Two sessions: the first never ended (SIGKILL), the second names it and ended on its own.
    let started: Vec<&Value> = events(&records, "session_started").collect();
    assert_eq!(started.len(), 2);
    let first = started[0]["session"].as_str().unwrap();
    assert_eq!(started[1]["event"]["recovers"], first, "the second session recovers the first");
    let ended: Vec<&Value> = events(&records, "session_ended").collect();
    assert_eq!(ended.len(), 1, "only the recovering session ended");
    assert_ne!(ended[0]["session"], first);
    // The kill came while agents worked: the recovery found at least one of them (alive or exited).
    let findings: Vec<&str> =
        events(&records, "reconcile_finding").map(|r| r["event"]["kind"].as_str().unwrap()).collect();
    assert!(findings.iter().any(|k| *k == "agent_alive" || *k == "agent_exited_unrecorded"), "findings: {findings:?}");
    // Nothing lost, nothing done twice: each issue released once as done, the conflicted one too, after
    // one more attempt that merged main in and resolved the conflict.
    let mut releases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in events(&records, "issue_released") {
        releases
            .entry(r["event"]["issue"].as_str().unwrap().to_string())
            .or_default()
            .push(r["event"]["reason"].as_str().unwrap().to_string());
    }
    assert_eq!(releases.len(), 12, "every issue was finished: {releases:?}");
    for (id, reasons) in &releases {
        assert_eq!(reasons, &["done"], "{id}");
    }
    let resolving: Vec<&Value> =
        events(&records, "retry_scheduled").filter(|r| r["event"]["carry_on"]["conflict"].is_object()).collect();
    assert_eq!(resolving.len(), 1, "one conflict, resolved by one more attempt");
    assert_eq!(resolving[0]["event"]["issue"], "demo-7");
    assert_eq!(resolving[0]["event"]["carry_on"]["conflict"]["files"], serde_json::json!(["api/routes.txt"]));
    // The flaky issue failed once, was retried, and passed.
    assert!(events(&records, "retry_scheduled").any(|r| r["event"]["issue"] == "demo-10"));
    // Git: every issue's commit is on main once, and nothing is left behind.
    let log = Command::new("git").args(["log", "--format=%s", "main"]).current_dir(&d.dir).output().unwrap();
    let subjects = String::from_utf8_lossy(&log.stdout).into_owned();
    for n in 1..=12 {
        let prefix = format!("demo-{n}: ");
        assert_eq!(subjects.lines().filter(|s| s.starts_with(&prefix)).count(), 1, "demo-{n} on main:\n{subjects}");
    }
    let branches = Command::new("git").args(["branch", "--list", "bdp/*"]).current_dir(&d.dir).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&branches.stdout).trim(), "");
    // The tracker: all twelve closed.
    let tracker = std::fs::read_to_string(d.dir.join(".beads/issues.jsonl")).unwrap();
    let issues: Vec<Value> = tracker.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for issue in &issues {
        assert_eq!(issue["status"], "closed", "{}", issue["id"]);
    }
    // Every agent process is gone, and the log verifies.
    // (An adopted agent's wrapper is no child of the run that adopted it: init reaps it a moment after it
    // exits, so a busy machine may need a moment.)
    for r in events(&records, "agent_spawned") {
        let (pid, start) = (r["event"]["pid"].as_u64().unwrap() as u32, r["event"]["start_time"].as_u64());
        let gone = (0..100).any(|_| {
            let alive = bdp::process::is_alive(pid, start);
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            !alive
        });
        assert!(gone, "agent pid {pid} is still alive");
    }
    assert!(bdp(&d.dir, &["verify"]).status.success());
}

#[test]
fn the_demo_tells_what_happens_as_it_happens() {
    let d = demo();
    let out = &d.stdout;
    let steps: Vec<usize> = (1..=6).map(|n| out.find(&format!("[{n}/6] ")).unwrap_or(usize::MAX)).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1] && w[1] != usize::MAX), "six steps in order:\n{out}");
    assert!(out.contains("kill -9 "), "{out}");
    assert!(out.contains("crashed"), "status shows the crashed session:\n{out}");
    assert!(out.contains("recovering:"), "the second run says it recovers:\n{out}");
    // The closing report, with what varies (times, ids, paths, counts of findings) masked.
    let report = &out[out.find("what happened").expect("a closing report")..];
    // What the demo plants happened, said with the whole output if not (the snapshot's diff alone can be cut
    // short in a CI log).
    for planted in [
        "issues    12 of 12 done, 0 conflicted, 0 failed; retried: demo-10 (a failed first attempt",
        "conflict  demo-7: its branch conflicted with main in api/routes.txt; one more attempt merged main in",
        "audit     clean",
    ] {
        assert!(report.contains(planted), "the report says {planted:?}:\n{out}");
    }
    insta::with_settings!({filters => vec![
        (r"s-\d{8}-\d{6}-[0-9a-f]{4}", "[session]"),
        // Every form `bdp` writes a duration in: 850ms, 4.2s, 3m05s, 1h02m (a slow machine reaches minutes).
        (r"\b(\d+h\d{2}m|\d+m\d{2}s|\d+\.\ds|\d+ms)\b", "[time]"),
        (r"\d+\.\dx", "[speedup]x"),
        (r"after \d+ issues were done, \d+ agent\(s\)", "after [n] issues were done, [n] agent(s)"),
        (r"recovered \[session\]: .*", "recovered [session]: [what recovery did]"),
    ]}, {
        insta::assert_snapshot!(report.replace(&d.dir.display().to_string(), "[sandbox]"));
    });
}

#[test]
fn read_commands_leave_bdp_dir_byte_for_byte_as_it_was() {
    let d = demo();
    let bdp_dir = d.dir.join(".bdp");
    let index = bdp_dir.join("index.sqlite");
    assert!(index.exists(), "bdp run leaves checkpoints behind it");
    let session = events(&records(&d.dir), "session_started").next().unwrap()["session"].as_str().unwrap().to_string();
    let html = d.dir.with_extension("timeline.html").display().to_string();
    let reads: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["replay"],
        &["replay", "--json"],
        &["replay", &session],
        &["replay", "--issue", "demo-7"],
        &["replay", "--at", "5"],
        &["verify"],
        &["audit"],
        &["audit", "--json"],
        &["logs"],
        &["logs", "--issue", "demo-10", "--attempt", "1", "--both"],
        &["plan"],
        &["summary"],
        &["summary", "--json"],
        &["summary", "--session", &session],
        &["events"],
        &["events", "--json", "--after", "100"],
        &["replay", "--html", &html],
    ];
    let before = common::bdp_tree(&d.dir);
    for args in reads {
        let out = bdp(&d.dir, args);
        assert!(out.status.code().is_some_and(|c| c <= 1), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(common::bdp_tree(&d.dir), before, "`bdp {}` changed .bdp/", args.join(" "));
    }
}

#[test]
fn the_run_checkpoints_where_its_session_ended() {
    let d = demo();
    let last = records(&d.dir).last().unwrap()["seq"].as_u64().unwrap();
    let conn = rusqlite::Connection::open_with_flags(
        d.dir.join(".bdp/index.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let newest: i64 = conn.query_row("SELECT max(seq) FROM checkpoint_heads", [], |r| r.get(0)).unwrap();
    assert_eq!(newest as u64, last, "a checkpoint at the session's last record");
    let indexed: i64 = conn.query_row("SELECT seq FROM indexed WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(indexed as u64, last, "the issue index covers the whole log");
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(journal, "delete", "a rollback journal: readers need no -shm file");
}

#[test]
fn a_reader_that_goes_away_ends_a_read_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let d = demo();
    for args in [&["summary"][..], &["replay"], &["status"], &["events"]] {
        // A pipe whose reading end is already closed: the first write fails.
        let (read, write) = std::io::pipe().unwrap();
        drop(read);
        let out = common::bdp(&d.dir)
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "`bdp {}` said: {stderr}", args.join(" "));
        let quiet = out.status.signal() == Some(13) || out.status.code() == Some(0);
        assert!(quiet, "`bdp {}` ended {:?}", args.join(" "), out.status);
    }
}
