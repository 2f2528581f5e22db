//! The tests' one environment: how to run bdp on a repository and show its output as a snapshot does,
//! deterministic log builders (the replay fixtures, bad input), and, below, the sandbox repository with
//! scripted agents (`run_support`) and audit's fixtures (`audit_support`).
#![allow(dead_code)]

pub mod audit_support;
pub mod run_support;
pub mod standin;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bdp::event::record::{GENESIS, chain_hex, chain_next};
use bdp::event::{Event, MergeStrategy, Phase, ReleaseReason, SessionEndReason};
use bdp::log::{Clock, LogWriter};

/// `bdp --repo ROOT`, the binary under test, with no `RUST_LOG` from the caller's environment (its logging
/// would mix into what the tests compare): the one way the tests run bdp on a repository.
pub fn bdp(root: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bdp"));
    cmd.arg("--repo").arg(root).env_remove("RUST_LOG");
    cmd
}

/// What a snapshot shows of one bdp command on `root`: `$ bdp ARGS`, its stdout, its stderr after
/// `--- stderr`, then `--- exit N`; the repository's path is written `[REPO]`.
pub fn transcript(root: &Path, args: &[&str]) -> String {
    transcript_of(root, args, &mut bdp(root))
}

/// [`transcript`] of a command made by the caller from [`bdp`] (to add an environment, say); `args` are
/// added to it.
pub fn transcript_of(root: &Path, args: &[&str], cmd: &mut std::process::Command) -> String {
    let out = cmd.args(args).output().unwrap();
    let mut text = format!("$ bdp {}\n", args.join(" ").replace('\n', "\\n"));
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    if !out.stderr.is_empty() {
        text.push_str("--- stderr\n");
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    text.push_str(&format!("--- exit {}\n", out.status.code().unwrap_or(-1)));
    text.replace(&root.display().to_string(), "[REPO]")
}

/// Every record of the log under `root/.bdp/events`, in order, as JSON.
pub fn records(root: &Path) -> Vec<serde_json::Value> {
    let mut segments: Vec<PathBuf> =
        std::fs::read_dir(root.join(".bdp/events")).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

/// The harness's name for test `function` of `module` (the caller's `module_path!()`): `file::function` in
/// the runner binary. For tests that run one of their own ignored tests in a child process (`--exact`).
pub fn test_name(module: &str, function: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{function}"),
        None => function.to_string(),
    }
}

/// A lock taken by pid 1 for no issue: the smallest event, for tests that only need records.
pub fn lock(name: &str) -> Event {
    Event::LockAcquired { lock: name.into(), holder_pid: 1, issue: None }
}

/// A clock that starts `start_ms` after 2026-11-25T06:00:00Z and moves 250 ms per commit.
pub fn fixed_clock(start_ms: u64) -> Clock {
    let tick = AtomicU64::new(0);
    Box::new(move || {
        let n = tick.fetch_add(1, Ordering::SeqCst);
        let ms = start_ms + n * 250;
        let (s, ms) = (ms / 1000, ms % 1000);
        format!("2026-11-25T06:{:02}:{:02}.{ms:03}Z", (s / 60) % 60, s % 60)
    })
}

/// Opens a writer on `root/.bdp` for `session` with the fixed clock.
pub fn writer(root: &Path, session: &str) -> LogWriter {
    writer_at(root, session, 0)
}

/// Like [`writer`], with the clock starting `start_ms` after 06:00:00.
pub fn writer_at(root: &Path, session: &str, start_ms: u64) -> LogWriter {
    let bdp = root.join(".bdp");
    std::fs::create_dir_all(&bdp).unwrap();
    let (writer, _) =
        LogWriter::open(&bdp.join("events"), &bdp.join("append.lock"), session, fixed_clock(start_ms)).unwrap();
    writer
}

pub fn segment(root: &Path) -> PathBuf {
    root.join(".bdp/events/000001.jsonl")
}

/// `session_started` on the host `sandbox`, version 0.1.0: the one builder of it in the tests.
pub fn session_started(pid: u32, start_time: Option<u64>, config: serde_json::Value, recovers: Option<&str>) -> Event {
    Event::SessionStarted {
        pid,
        start_time,
        host: "sandbox".into(),
        version: "0.1.0".into(),
        config,
        recovers: recovers.map(String::from),
    }
}

fn started(pid: u32, recovers: Option<&str>) -> Event {
    session_started(pid, Some(1), serde_json::json!({"agents": 3, "tracker": "jsonl"}), recovers)
}

/// The events of one issue going all the way: claim, worktree, spawn, exit 0, check, merge, close, release.
pub fn issue_done(issue: &str, attempt: u32, pid: u32, commit: &str) -> Vec<Event> {
    let i = issue.to_string();
    vec![
        Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
        Event::TrackerStatusSet {
            issue: i.clone(),
            status: "in_progress".into(),
            assignee: Some("bdp".into()),
            backend: "jsonl".into(),
        },
        Event::WorktreeCreated {
            issue: i.clone(),
            path: format!(".bdp/worktrees/{issue}"),
            branch: format!("bdp/{issue}"),
            base: "main".into(),
        },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::WorktreeReady },
        Event::SpawnRequested {
            issue: i.clone(),
            attempt,
            argv: vec!["agent.sh".into(), issue.into(), format!(".bdp/runs/{issue}/{attempt}/prompt.md")],
            cwd: format!(".bdp/worktrees/{issue}"),
            marker: format!("bdp-s1-{issue}-{attempt}"),
            stdout: format!(".bdp/runs/{issue}/{attempt}/stdout"),
            stderr: format!(".bdp/runs/{issue}/{attempt}/stderr"),
        },
        Event::AgentSpawned { issue: i.clone(), attempt, pid, pgid: pid, start_time: Some(1000 + pid as u64) },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::Running },
        Event::AgentExited {
            issue: i.clone(),
            attempt,
            code: Some(0),
            signal: None,
            duration_ms: 12_345,
            timed_out: false,
            usage: None,
            session: None,
        },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::Exited },
        Event::CheckPassed { issue: i.clone(), attempt, command: "cargo test".into(), duration_ms: 2_500 },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::Checked },
        Event::LockAcquired { lock: "merge".into(), holder_pid: 4_194_999, issue: Some(i.clone()) },
        Event::MergeStarted {
            issue: i.clone(),
            branch: format!("bdp/{issue}"),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
        Event::Merged { issue: i.clone(), commit: commit.into() },
        Event::LockReleased { lock: "merge".into() },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::Merged },
        Event::TrackerIssueClosed {
            issue: i.clone(),
            reason: format!("bdp: merged {}", &commit[..12]),
            backend: "jsonl".into(),
        },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::Closed },
        Event::WorktreeRemoved { issue: i.clone(), path: format!(".bdp/worktrees/{issue}") },
        Event::IssueReleased { issue: i, reason: ReleaseReason::Done, detail: None },
    ]
}

/// An issue whose agent fails twice, then is released with `bdp:failed`.
pub fn issue_failed(issue: &str, pid: u32) -> Vec<Event> {
    let i = issue.to_string();
    let mut events = vec![
        Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
        Event::TrackerStatusSet {
            issue: i.clone(),
            status: "in_progress".into(),
            assignee: Some("bdp".into()),
            backend: "jsonl".into(),
        },
    ];
    for attempt in 1..=2u32 {
        events.extend([
            Event::SpawnRequested {
                issue: i.clone(),
                attempt,
                argv: vec!["agent.sh".into(), issue.into()],
                cwd: ".".into(),
                marker: format!("bdp-s1-{issue}-{attempt}"),
                stdout: format!(".bdp/runs/{issue}/{attempt}/stdout"),
                stderr: format!(".bdp/runs/{issue}/{attempt}/stderr"),
            },
            Event::AgentSpawned {
                issue: i.clone(),
                attempt,
                pid: pid + attempt,
                pgid: pid + attempt,
                start_time: Some(7),
            },
            Event::AgentExited {
                issue: i.clone(),
                attempt,
                code: if attempt == 1 { Some(3) } else { None },
                signal: if attempt == 1 { None } else { Some(9) },
                duration_ms: 1_800_000,
                timed_out: attempt == 2,
                usage: None,
                session: None,
            },
        ]);
        if attempt == 1 {
            events.push(Event::RetryScheduled {
                issue: i.clone(),
                next_attempt: 2,
                backoff_ms: 5_000,
                reason: "exit 3".into(),
                carry_on: None,
            });
        }
    }
    events.extend([
        Event::TrackerLabelsChanged {
            issue: i.clone(),
            added: vec!["bdp:failed".into()],
            removed: vec![],
            backend: "jsonl".into(),
        },
        Event::TrackerStatusSet { issue: i.clone(), status: "open".into(), assignee: None, backend: "jsonl".into() },
        Event::IssueReleased {
            issue: i,
            reason: ReleaseReason::Timeout,
            detail: Some("attempt 2 timed out after 30m".into()),
        },
    ]);
    events
}

fn append_each(w: &LogWriter, events: Vec<Event>) {
    for e in events {
        w.append(vec![e]).unwrap();
    }
}

/// A normal session: three issues done (one of them a child id), one failed after a retry.
pub fn build_normal(root: &Path) {
    let w = writer(root, "s-20261125-060000-a1");
    append_each(&w, vec![started(4_194_999, None)]);
    append_each(&w, issue_done("bd-a1", 1, 5001, "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"));
    append_each(&w, issue_failed("bd-b2", 5100));
    append_each(&w, issue_done("bd-c3.1", 1, 5201, "1111111111111111111111111111111111111111"));
    append_each(&w, vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]);
}

/// A session that crashed between `spawn_requested` and `agent_spawned`.
pub fn build_crash_before_spawned(root: &Path) {
    let w = writer(root, "s-20261125-060000-b2");
    append_each(&w, vec![started(4_194_999, None)]);
    let mut events = issue_done("bd-x9", 1, 6001, "2222222222222222222222222222222222222222");
    events.truncate(5); // claim, tracker, worktree, phase, spawn_requested
    append_each(&w, events);
}

/// A normal log whose last line was cut mid-write.
pub fn build_torn_tail(root: &Path) {
    build_normal(root);
    let mut bytes = std::fs::read(segment(root)).unwrap();
    bytes.extend_from_slice(br#"{"seq":56,"v":2,"ts":"2026-11-25T06:00:14.000Z","session":"s-2026"#);
    std::fs::write(segment(root), bytes).unwrap();
}

/// A normal log where one value in record 5 was edited by hand.
pub fn build_corrupt_middle(root: &Path) {
    build_normal(root);
    let text = std::fs::read_to_string(segment(root)).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines[4].starts_with("{\"seq\":5,") && lines[4].contains("worktree_ready"));
    lines[4] = lines[4].replacen("worktree_ready", "running", 1);
    std::fs::write(segment(root), lines.join("\n") + "\n").unwrap();
}

/// Session 1 crashes with an agent running; session 2 recovers it, adopts the agent and finishes.
pub fn build_recovery(root: &Path) {
    {
        let w = writer(root, "s-20261125-060000-c3");
        append_each(&w, vec![started(4_194_998, None)]);
        append_each(&w, issue_done("bd-k1", 1, 7001, "3333333333333333333333333333333333333333"));
        let mut running = issue_done("bd-k2", 1, 7002, "4444444444444444444444444444444444444444");
        running.truncate(7); // up to phase running
        append_each(&w, running);
    }
    let w = writer_at(root, "s-20261125-061500-d4", 15 * 60 * 1000);
    append_each(&w, vec![started(4_194_999, Some("s-20261125-060000-c3"))]);
    append_each(
        &w,
        vec![
            Event::ReconcileFinding {
                kind: "agent_alive".into(),
                issue: Some("bd-k2".into()),
                detail: "attempt 1 pid 7002 still running (start time matches)".into(),
            },
            Event::RepairApplied {
                kind: "agent_alive".into(),
                issue: Some("bd-k2".into()),
                action: "adopted pid 7002".into(),
            },
        ],
    );
    let mut rest = issue_done("bd-k2", 1, 7002, "4444444444444444444444444444444444444444");
    rest.drain(..7);
    append_each(&w, rest);
    append_each(&w, vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]);
}

/// A log written by the pre-release format v1 (`claimed`, `agent_spawned` without pgid/start_time).
pub fn build_v1(root: &Path) {
    let events = [
        r#"{"type":"session_started","pid":4194999,"host":"sandbox","version":"0.0.9","config":{}}"#,
        r#"{"type":"claimed","issue":"bd-old1","actor":"bdp"}"#,
        r#"{"type":"spawn_requested","issue":"bd-old1","attempt":1,"argv":["agent.sh","bd-old1"],"cwd":".","marker":"m","stdout":"o","stderr":"e"}"#,
        r#"{"type":"agent_spawned","issue":"bd-old1","attempt":1,"pid":8001}"#,
        r#"{"type":"agent_exited","issue":"bd-old1","attempt":1,"code":0,"duration_ms":900}"#,
        r#"{"type":"issue_released","issue":"bd-old1","reason":"done"}"#,
        r#"{"type":"session_ended","reason":"completed"}"#,
    ];
    let mut out = Vec::new();
    let mut chain = GENESIS;
    for (i, event) in events.iter().enumerate() {
        let seq = i + 1;
        let body = format!(
            r#"{{"seq":{seq},"v":1,"ts":"2025-06-01T10:00:0{seq}.000Z","session":"s-20250601-100000-v1","event":{event}"#
        );
        chain = chain_next(&chain, body.as_bytes());
        out.extend_from_slice(body.as_bytes());
        out.extend_from_slice(format!(r#","chain":"{}"}}"#, chain_hex(&chain)).as_bytes());
        out.push(b'\n');
    }
    std::fs::create_dir_all(root.join(".bdp/events")).unwrap();
    std::fs::write(segment(root), out).unwrap();
}

/// Every replay fixture: (name, builder).
/// Builds one fixture under a repo root.
pub type Builder = fn(&Path);

pub const FIXTURES: &[(&str, Builder)] = &[
    ("normal-session", build_normal),
    ("crash-before-spawned", build_crash_before_spawned),
    ("torn-tail", build_torn_tail),
    ("corrupt-middle", build_corrupt_middle),
    ("recovery", build_recovery),
    ("v1-upcast", build_v1),
];

/// Every directory and file under `root/.bdp` (a directory with empty bytes), sorted: what a read command
/// must leave exactly as it was.
pub fn bdp_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(".bdp")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            let bytes = if path.is_file() { std::fs::read(&path).unwrap() } else { Vec::new() };
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}
