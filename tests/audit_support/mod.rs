//! The audit fixtures (`replay-fixtures/audit-*`): deterministic builders of a log (fixed clock), the
//! tracker's view (`.beads/issues.jsonl`), lock files and exit files that each show one kind of finding of
//! `bdp audit`; the set-up some of them need around the copied fixture at test time (a git repository, a
//! checkpoint index); and helpers to run `bdp` on them.
//!
//! Pids: `DEAD_*` pids (4194000 and up) are above any pid a test machine hands out, so they are gone.
//! pid 1 with start time 999999999 is a reused pid: pid 1 runs, but it did not start then.
//! Regenerate the committed fixtures after changing a builder: `BDP_BLESS=1 cargo test --test audit_fixtures`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bdp::event::{Event, MergeStrategy, Phase, ReleaseReason, SessionEndReason};
use bdp::log::LogWriter;
use bdp::repo::escape_path_component;
use bdp::supervisor::wrapper::ExitRecord;
use serde_json::json;

use crate::common::writer;

/// The orchestrator of the crashed sessions (gone).
pub const DEAD_ORCHESTRATOR: u32 = 4_194_000;
/// A start time pid 1 cannot have (it started at boot, a few ticks in).
pub const NOT_INITS_START: u64 = 999_999_999;

/// One audit fixture: how to build it, what the test sets up around it, and what `bdp audit` must say.
pub struct AuditFixture {
    /// `replay-fixtures/<name>/`.
    pub name: &'static str,
    pub build: fn(&Path),
    /// What the test builds around the copied fixture (git, an index), if anything.
    pub around: Option<fn(&Path)>,
    /// The finding kinds `bdp audit` reports on it, in order.
    pub finds: &'static [&'static str],
    /// With safe repairs: the kinds left after `bdp audit --fix` (empty: exit 0). `None`: no safe repair.
    pub left_after_fix: Option<&'static [&'static str]>,
}

pub const AUDIT_FIXTURES: &[AuditFixture] = &[
    AuditFixture { name: "audit-clean", build: build_clean, around: None, finds: &[], left_after_fix: None },
    AuditFixture {
        name: "audit-log-damaged",
        build: build_log_damaged,
        around: None,
        finds: &["log_damaged"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-checkpoint-mismatch",
        build: build_clean,
        around: Some(bad_checkpoints),
        finds: &["checkpoint_mismatch", "checkpoint_mismatch"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-agent-exited-unrecorded",
        build: build_agent_exited_unrecorded,
        around: None,
        finds: &["agent_exited_unrecorded", "agent_exited_unrecorded"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-agent-crashed",
        build: build_agent_crashed,
        around: None,
        finds: &["agent_crashed", "agent_crashed", "agent_crashed", "agent_crashed"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-spawn-unconfirmed-exited",
        build: build_spawn_unconfirmed_exited,
        around: None,
        finds: &["spawn_unconfirmed_exited"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-spawn-unconfirmed-gone",
        build: build_spawn_unconfirmed_gone,
        around: None,
        finds: &["spawn_unconfirmed_gone"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-step-interrupted",
        build: build_step_interrupted,
        around: None,
        finds: &[
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
        ],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claim-not-in-tracker",
        build: build_claim_not_in_tracker,
        around: None,
        finds: &["claim_not_in_tracker", "step_interrupted", "claim_not_in_tracker"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claim-taken",
        build: build_claim_taken,
        around: None,
        finds: &["claim_taken"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claim-closed-elsewhere",
        build: build_claim_closed_elsewhere,
        around: None,
        finds: &["claim_closed_elsewhere"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claimed-issue-missing",
        build: build_claimed_issue_missing,
        around: None,
        finds: &["claimed_issue_missing"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-tracker-claim-without-log",
        build: build_tracker_claim_without_log,
        around: None,
        finds: &["tracker_claim_without_log", "tracker_claim_without_log"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-lock-holder-dead",
        build: build_lock_holder_dead,
        around: None,
        finds: &["lock_holder_dead", "lock_holder_dead", "step_interrupted"],
        left_after_fix: Some(&["lock_holder_dead", "step_interrupted"]),
    },
    AuditFixture {
        name: "audit-lock-of-finished-issue",
        build: build_lock_of_finished_issue,
        around: None,
        finds: &["lock_of_finished_issue"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-lock-file-without-lock",
        build: build_lock_file_without_lock,
        around: None,
        finds: &["lock_file_without_lock", "lock_file_without_lock"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-lock-file-missing",
        build: build_lock_file_missing,
        around: None,
        finds: &["lock_file_missing"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-worktree-without-claim",
        build: build_worktree_without_claim,
        around: Some(worktrees_around),
        finds: &["worktree_without_claim", "branch_without_claim"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-branch-without-claim",
        build: build_branch_without_claim,
        around: Some(branches_around),
        finds: &["branch_without_claim", "branch_without_claim"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-merge-unrecorded",
        build: build_merge_unrecorded,
        around: Some(merged_around),
        finds: &["merge_unrecorded"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-merge-interrupted",
        build: build_merge_interrupted,
        around: Some(unmerged_around),
        finds: &["merge_interrupted", "merge_interrupted"],
        left_after_fix: None,
    },
];

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("replay-fixtures")
}

pub fn fixture(name: &str) -> &'static AuditFixture {
    AUDIT_FIXTURES.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no audit fixture {name}"))
}

/// Every file under `dir`, as (path relative to `dir`, bytes), sorted.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A copy of the committed fixture in a temp dir (commands must not write into the committed one), with
/// what the test builds around it.
pub fn materialize(f: &AuditFixture) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, bytes) in files(&fixtures_dir().join(f.name)) {
        let path = tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    if let Some(around) = f.around {
        around(tmp.path());
    }
    tmp
}

/// `bdp --repo ROOT ARGS`: (stdout, stderr, exit code).
pub fn bdp(root: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_bdp"))
        .arg("--repo")
        .arg(root)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code().unwrap_or(-1))
}

/// The command, its output and its exit code, as a snapshot shows them.
pub fn shown(root: &Path, args: &[&str]) -> (String, i32) {
    let (stdout, stderr, code) = bdp(root, args);
    let mut text = format!("$ bdp {}\n{stdout}", args.join(" "));
    if !stderr.is_empty() {
        text.push_str(&format!("--- stderr\n{stderr}"));
    }
    text.push_str(&format!("--- exit {code}\n"));
    (text.replace(&root.display().to_string(), "[REPO]"), code)
}

/// Validates a `bdp audit --json` report against schema/audit.schema.json.
pub fn assert_valid_audit_json(report: &serde_json::Value, what: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/audit.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(report).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} does not match schema/audit.schema.json:\n{}", errors.join("\n"));
}

/// The events of every log record (in order).
pub fn events(root: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (_, bytes) in files(&root.join(".bdp/events")) {
        for line in String::from_utf8(bytes).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push(record["event"].clone());
        }
    }
    out
}

// ---- pieces of logs and worlds

pub fn started() -> Event {
    Event::SessionStarted {
        pid: DEAD_ORCHESTRATOR,
        start_time: Some(1),
        host: "sandbox".into(),
        version: "0.1.0".into(),
        config: json!({"agents": 2, "tracker": "jsonl"}),
        recovers: None,
    }
}

/// A session that crashed (never ended) after `events`.
pub fn crashed_session(root: &Path, session: &str, events: Vec<Event>) {
    let w = writer(root, session);
    append(&w, vec![started()]);
    append(&w, events);
}

pub fn append(w: &LogWriter, events: Vec<Event>) {
    for e in events {
        w.append(vec![e]).unwrap();
    }
}

/// Claimed, `in_progress` in the tracker; with `worktree`, its worktree made.
pub fn claimed(issue: &str, worktree: bool) -> Vec<Event> {
    let i = issue.to_string();
    let mut out = vec![
        Event::TrackerStatusSet {
            issue: i.clone(),
            status: "in_progress".into(),
            assignee: Some("bdp".into()),
            backend: "jsonl".into(),
        },
        Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
    ];
    if worktree {
        out.extend([
            Event::WorktreeCreated {
                issue: i.clone(),
                path: format!(".bdp/worktrees/{issue}"),
                branch: format!("bdp/{issue}"),
                base: "main".into(),
            },
            Event::PhaseChanged { issue: i, phase: Phase::WorktreeReady },
        ]);
    }
    out
}

pub fn marker(session: &str, issue: &str, attempt: u32) -> String {
    format!("{session}/{}/{attempt}", escape_path_component(issue))
}

pub fn requested(session: &str, issue: &str, attempt: u32) -> Event {
    Event::SpawnRequested {
        issue: issue.into(),
        attempt,
        argv: vec!["agent.sh".into(), issue.into()],
        cwd: format!(".bdp/worktrees/{issue}"),
        marker: marker(session, issue, attempt),
        stdout: format!(".bdp/runs/{issue}/{attempt}/stdout"),
        stderr: format!(".bdp/runs/{issue}/{attempt}/stderr"),
    }
}

/// Spawn requested and confirmed with `pid` (its own group), running.
pub fn running(session: &str, issue: &str, attempt: u32, pid: u32, start_time: u64) -> Vec<Event> {
    vec![
        requested(session, issue, attempt),
        Event::AgentSpawned { issue: issue.into(), attempt, pid, pgid: pid, start_time: Some(start_time) },
        Event::PhaseChanged { issue: issue.into(), phase: Phase::Running },
    ]
}

pub fn exited(issue: &str, attempt: u32, code: i32) -> Vec<Event> {
    vec![
        Event::AgentExited {
            issue: issue.into(),
            attempt,
            code: Some(code),
            signal: None,
            duration_ms: 42_000,
            timed_out: false,
            usage: None,
        },
        Event::PhaseChanged { issue: issue.into(), phase: Phase::Exited },
    ]
}

fn check_passed(issue: &str) -> Vec<Event> {
    vec![
        Event::CheckPassed { issue: issue.into(), attempt: 1, command: "cargo test".into(), duration_ms: 2_500 },
        Event::PhaseChanged { issue: issue.into(), phase: Phase::Checked },
    ]
}

fn merge_started(issue: &str) -> Event {
    Event::MergeStarted {
        issue: issue.into(),
        branch: format!("bdp/{issue}"),
        base: "main".into(),
        strategy: MergeStrategy::Merge,
    }
}

/// `.beads/issues.jsonl`: (id, status, assignee, labels) each.
pub fn tracker(root: &Path, issues: &[(&str, &str, Option<&str>, &[&str])]) {
    let mut text = String::new();
    for (id, status, assignee, labels) in issues {
        let mut rec = json!({
            "id": id, "title": format!("Work on {id}"), "status": status, "priority": 2, "issue_type": "task",
            "created_at": "2026-11-25T05:00:00Z",
        });
        if let Some(a) = assignee {
            rec["assignee"] = json!(a);
        }
        if !labels.is_empty() {
            rec["labels"] = json!(labels);
        }
        text.push_str(&serde_json::to_string(&rec).unwrap());
        text.push('\n');
    }
    std::fs::create_dir_all(root.join(".beads")).unwrap();
    std::fs::write(root.join(".beads/issues.jsonl"), text).unwrap();
}

/// `.bdp/locks/<escaped name>.lock` holding `text` (a holder is `pid N start T since TS`).
pub fn lock_file(root: &Path, name: &str, text: &str) {
    let dir = root.join(".bdp/locks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{}.lock", escape_path_component(name))), format!("{text}\n")).unwrap();
}

pub fn holder(pid: u32, start: u64) -> String {
    format!("pid {pid} start {start} since 2026-11-25T06:00:00Z")
}

/// `.bdp/runs/<issue>/<attempt>/exit.json` holding `bytes`.
pub fn exit_file(root: &Path, issue: &str, attempt: u32, bytes: &[u8]) {
    let dir = root.join(".bdp/runs").join(escape_path_component(issue)).join(attempt.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("exit.json"), bytes).unwrap();
}

fn exit_record(record: &ExitRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap()
}

// ---- the fixtures

/// A session that ended: one issue done, one open. Nothing to find (exit 0).
pub fn build_clean(root: &Path) {
    let w = writer(root, "s-20261125-060000-a0");
    append(&w, vec![started()]);
    append(&w, crate::common::issue_done("bd-a1", 1, 4_194_010, "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"));
    append(&w, vec![Event::SessionEnded { reason: SessionEndReason::Completed }]);
    tracker(root, &[("bd-a1", "closed", Some("bdp"), &[]), ("bd-a2", "open", None, &[])]);
}

/// The clean log with one value of record 4 edited: the chain breaks there (log_damaged, for a person).
pub fn build_log_damaged(root: &Path) {
    build_clean(root);
    let segment = crate::common::segment(root);
    let text = std::fs::read_to_string(&segment).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert!(lines[3].starts_with("{\"seq\":4,") && lines[3].contains(".bdp/worktrees/bd-a1"));
    lines[3] = lines[3].replacen(".bdp/worktrees/bd-a1", ".bdp/worktrees/bd-zz", 1);
    std::fs::write(&segment, lines.join("\n") + "\n").unwrap();
}

/// Set up at test time around `audit-checkpoint-mismatch` (the clean log): `.bdp/index.sqlite` with two
/// checkpoints that disagree with the log: one at the last record whose state is not the fold (an empty
/// state), one that names seq 3 with a chain value the log does not have there.
pub fn bad_checkpoints(root: &Path) {
    use bdp::event::record::split_line;
    use bdp::log::index::{CheckpointMeta, Index};
    let segment = crate::common::segment(root);
    let bytes = std::fs::read(&segment).unwrap();
    let mut offset = 0u64;
    let mut metas = Vec::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let raw = split_line(&line[..line.len() - 1]).unwrap();
        metas.push(CheckpointMeta { seq: raw.seq, chain: raw.chain, segment: 1, offset, len: line.len() as u64 });
        offset += line.len() as u64;
    }
    let index = Index::open(&root.join(".bdp/index.sqlite")).unwrap();
    let last = metas.last().unwrap();
    let mut wrong = bdp::state::State::new();
    wrong.last_seq = last.seq;
    index.save_checkpoint(last, &wrong).unwrap();
    let moved = CheckpointMeta { chain: [7; 32], ..metas[2].clone() };
    let mut at_three = bdp::state::State::new();
    at_three.last_seq = moved.seq;
    index.save_checkpoint(&moved, &at_three).unwrap();
}

/// Two agents of a crashed session are gone and left exit files (exit 0; killed by TERM): the log has
/// neither exit (agent_exited_unrecorded, applied by `bdp run`).
pub fn build_agent_exited_unrecorded(root: &Path) {
    let s = "s-20261125-060000-e1";
    let mut events = claimed("bd-e1", true);
    events.extend(running(s, "bd-e1", 1, 4_194_101, 1101));
    events.extend(claimed("bd-e2", true));
    events.extend(running(s, "bd-e2", 1, 4_194_102, 1102));
    crashed_session(root, s, events);
    exit_file(
        root,
        "bd-e1",
        1,
        &exit_record(&ExitRecord {
            code: Some(0),
            signal: None,
            duration_ms: 65_000,
            error: None,
            pid: Some(4_194_101),
        }),
    );
    exit_file(
        root,
        "bd-e2",
        1,
        &exit_record(&ExitRecord {
            code: None,
            signal: Some(15),
            duration_ms: 1_200,
            error: None,
            pid: Some(4_194_102),
        }),
    );
    tracker(root, &[("bd-e1", "in_progress", Some("bdp"), &[]), ("bd-e2", "in_progress", Some("bdp"), &[])]);
}

/// Four agents of a crashed session with no exit recorded: one gone without an exit file, one whose pid
/// is reused (pid 1, which did not start then), one whose exit file cannot be read, and one recorded with
/// no start time whose pid runs (pid 1: it cannot be told from a reused pid, so it is never adopted).
pub fn build_agent_crashed(root: &Path) {
    let s = "s-20261125-060000-c1";
    let mut events = claimed("bd-c1", true);
    events.extend(running(s, "bd-c1", 1, 4_194_103, 1103));
    events.extend(claimed("bd-c2", true));
    events.extend(running(s, "bd-c2", 1, 1, NOT_INITS_START));
    events.extend(claimed("bd-c3", true));
    events.extend(running(s, "bd-c3", 1, 4_194_104, 1104));
    events.extend(claimed("bd-c4", true));
    events.extend([
        requested(s, "bd-c4", 1),
        Event::AgentSpawned { issue: "bd-c4".into(), attempt: 1, pid: 1, pgid: 1, start_time: None },
    ]);
    crashed_session(root, s, events);
    exit_file(root, "bd-c3", 1, b"{\"code\": 0, \"dura");
    tracker(
        root,
        &[
            ("bd-c1", "in_progress", Some("bdp"), &[]),
            ("bd-c2", "in_progress", Some("bdp"), &[]),
            ("bd-c3", "in_progress", Some("bdp"), &[]),
            ("bd-c4", "in_progress", Some("bdp"), &[]),
        ],
    );
}

/// A spawn asked for and never confirmed; the wrapper ran and left an exit file (exit 1) naming its pid.
pub fn build_spawn_unconfirmed_exited(root: &Path) {
    let s = "s-20261125-060000-u1";
    let mut events = claimed("bd-x1", true);
    events.push(requested(s, "bd-x1", 1));
    crashed_session(root, s, events);
    exit_file(
        root,
        "bd-x1",
        1,
        &exit_record(&ExitRecord {
            code: Some(1),
            signal: None,
            duration_ms: 3_000,
            error: None,
            pid: Some(4_194_105),
        }),
    );
    tracker(root, &[("bd-x1", "in_progress", Some("bdp"), &[])]);
}

/// A spawn asked for and never confirmed, and nothing of it anywhere.
pub fn build_spawn_unconfirmed_gone(root: &Path) {
    let s = "s-20261125-060000-u2";
    let mut events = claimed("bd-x2", true);
    events.push(requested(s, "bd-x2", 1));
    crashed_session(root, s, events);
    tracker(root, &[("bd-x2", "in_progress", Some("bdp"), &[])]);
}

/// Seven claims a crash stopped between steps, one per step to carry on with: no worktree (s1), worktree
/// and no attempt (s2), exited 0 and not checked (s3), checked and not merged (s4), merged and not closed
/// (s5), closed and not released (s6), failed with a retry scheduled (s7).
pub fn build_step_interrupted(root: &Path) {
    let s = "s-20261125-060000-s1";
    let mut events = claimed("bd-s1", false);
    events.extend(claimed("bd-s2", true));
    for (n, issue) in ["bd-s3", "bd-s4", "bd-s5", "bd-s6"].iter().enumerate() {
        events.extend(claimed(issue, true));
        events.extend(running(s, issue, 1, 4_194_110 + n as u32, 1110 + n as u64));
        events.extend(exited(issue, 1, 0));
    }
    for issue in ["bd-s4", "bd-s5", "bd-s6"] {
        events.extend(check_passed(issue));
    }
    for (issue, commit) in
        [("bd-s5", "5555555555555555555555555555555555555555"), ("bd-s6", "6666666666666666666666666666666666666666")]
    {
        events.push(merge_started(issue));
        events.push(Event::Merged { issue: issue.into(), commit: commit.into() });
        events.push(Event::PhaseChanged { issue: issue.into(), phase: Phase::Merged });
    }
    events.push(Event::TrackerIssueClosed {
        issue: "bd-s6".into(),
        reason: "bdp: merged 666666666666 into main".into(),
        backend: "jsonl".into(),
    });
    events.extend(claimed("bd-s7", true));
    events.extend(running(s, "bd-s7", 1, 4_194_117, 1117));
    events.extend(exited("bd-s7", 1, 3));
    events.push(Event::RetryScheduled {
        issue: "bd-s7".into(),
        next_attempt: 2,
        backoff_ms: 10_000,
        reason: "exit 3".into(),
    });
    crashed_session(root, s, events);
    let mut issues: Vec<(&str, &str, Option<&str>, &[&str])> = Vec::new();
    for id in ["bd-s1", "bd-s2", "bd-s3", "bd-s4", "bd-s5", "bd-s7"] {
        issues.push((id, "in_progress", Some("bdp"), &[]));
    }
    issues.push(("bd-s6", "closed", Some("bdp"), &[]));
    tracker(root, &issues);
}

/// Claimed in the log, open and unassigned in the tracker: t1 plainly (claim it again), t2 labelled
/// `bdp:failed` (bdp was giving it back: drop the claim).
pub fn build_claim_not_in_tracker(root: &Path) {
    let mut events = claimed("bd-t1", true);
    events.extend(claimed("bd-t2", true));
    crashed_session(root, "s-20261125-060000-t1", events);
    tracker(root, &[("bd-t1", "open", None, &[]), ("bd-t2", "open", None, &["bdp:failed"])]);
}

/// Claimed in the log; the tracker gives it to alice.
pub fn build_claim_taken(root: &Path) {
    crashed_session(root, "s-20261125-060000-t3", claimed("bd-t3", true));
    tracker(root, &[("bd-t3", "in_progress", Some("alice"), &[])]);
}

/// Claimed in the log; closed in the tracker by someone else.
pub fn build_claim_closed_elsewhere(root: &Path) {
    crashed_session(root, "s-20261125-060000-t4", claimed("bd-t4", true));
    tracker(root, &[("bd-t4", "closed", Some("alice"), &[])]);
}

/// Claimed in the log; the tracker has no such issue.
pub fn build_claimed_issue_missing(root: &Path) {
    crashed_session(root, "s-20261125-060000-t5", claimed("bd-t5", true));
    tracker(root, &[("bd-other", "open", None, &[])]);
}

/// `in_progress` and assigned to bdp in the tracker with no claim in the log: u1 never claimed, u3 released
/// at shutdown (the tracker write did not happen). u2 is alice's: not bdp's business.
pub fn build_tracker_claim_without_log(root: &Path) {
    let mut events = claimed("bd-u3", false);
    events.push(Event::IssueReleased {
        issue: "bd-u3".into(),
        reason: ReleaseReason::Shutdown,
        detail: Some("bdp stopped".into()),
    });
    let w = writer(root, "s-20261125-060000-v1");
    append(&w, vec![started()]);
    append(&w, events);
    append(&w, vec![Event::SessionEnded { reason: SessionEndReason::Stopped }]);
    tracker(
        root,
        &[
            ("bd-u1", "in_progress", Some("bdp"), &[]),
            ("bd-u2", "in_progress", Some("alice"), &[]),
            ("bd-u3", "in_progress", Some("bdp"), &[]),
        ],
    );
}

/// Locks in the log whose holders are gone: the merge lock (dead pid: break it), and the lock of the
/// still-claimed h1 whose holder's pid is reused (pid 1, with a start time that is not init's: `bdp run`
/// takes it over with the claim).
pub fn build_lock_holder_dead(root: &Path) {
    let mut events = claimed("bd-h1", true);
    events.insert(2, Event::LockAcquired { lock: "issue:bd-h1".into(), holder_pid: 1, issue: Some("bd-h1".into()) });
    events.push(Event::LockAcquired { lock: "merge".into(), holder_pid: 4_194_120, issue: None });
    crashed_session(root, "s-20261125-060000-h1", events);
    lock_file(root, "issue:bd-h1", &holder(1, NOT_INITS_START));
    lock_file(root, "merge", &holder(4_194_120, 1120));
    tracker(root, &[("bd-h1", "in_progress", Some("bdp"), &[])]);
}

/// The lock of f1, which was closed and released without giving its lock back.
pub fn build_lock_of_finished_issue(root: &Path) {
    let w = writer(root, "s-20261125-060000-f1");
    append(&w, vec![started()]);
    let mut events = claimed("bd-f1", false);
    events.extend([
        Event::LockAcquired { lock: "issue:bd-f1".into(), holder_pid: DEAD_ORCHESTRATOR, issue: Some("bd-f1".into()) },
        Event::TrackerIssueClosed { issue: "bd-f1".into(), reason: "done by hand".into(), backend: "jsonl".into() },
        Event::IssueReleased { issue: "bd-f1".into(), reason: ReleaseReason::Done, detail: None },
        Event::SessionEnded { reason: SessionEndReason::Completed },
    ]);
    append(&w, events);
    lock_file(root, "issue:bd-f1", &holder(DEAD_ORCHESTRATOR, 1));
    tracker(root, &[("bd-f1", "closed", Some("bdp"), &[])]);
}

/// Lock files with no lock in the log: one naming a dead holder, one with no holder in it.
pub fn build_lock_file_without_lock(root: &Path) {
    let w = writer(root, "s-20261125-060000-g1");
    append(&w, vec![started(), Event::SessionEnded { reason: SessionEndReason::Completed }]);
    lock_file(root, "issue:bd-g1", &holder(4_194_121, 1121));
    lock_file(root, "merge", "not a holder");
    tracker(root, &[("bd-g1", "open", None, &[])]);
}

/// The merge lock in the log, held by a process that runs (pid 1, no file to give its start time), and no
/// lock file for it.
pub fn build_lock_file_missing(root: &Path) {
    let w = writer(root, "s-20261125-060000-g2");
    append(
        &w,
        vec![
            started(),
            Event::LockAcquired { lock: "merge".into(), holder_pid: 1, issue: None },
            Event::SessionEnded { reason: SessionEndReason::Completed },
        ],
    );
    tracker(root, &[("bd-g2", "open", None, &[])]);
}

/// w1 failed and was released, its worktree and branch left behind; w2's merge conflicted, and bdp keeps
/// its worktree and branch for a person on purpose (no finding). Around it: [`worktrees_around`].
pub fn build_worktree_without_claim(root: &Path) {
    let s = "s-20261125-060000-w1";
    let w = writer(root, s);
    append(&w, vec![started()]);
    let mut events = claimed("bd-w1", true);
    events.extend(running(s, "bd-w1", 1, 4_194_130, 1130));
    events.extend(exited("bd-w1", 1, 1));
    events.push(Event::IssueReleased {
        issue: "bd-w1".into(),
        reason: ReleaseReason::Failed,
        detail: Some("exit 1".into()),
    });
    events.extend(claimed("bd-w2", true));
    events.extend(running(s, "bd-w2", 1, 4_194_131, 1131));
    events.extend(exited("bd-w2", 1, 0));
    events.extend(check_passed("bd-w2"));
    events.push(merge_started("bd-w2"));
    events.push(Event::MergeConflicted { issue: "bd-w2".into(), detail: "README".into() });
    events.push(Event::IssueReleased { issue: "bd-w2".into(), reason: ReleaseReason::Conflict, detail: None });
    events.push(Event::SessionEnded { reason: SessionEndReason::Completed });
    append(&w, events);
    tracker(root, &[("bd-w1", "open", None, &["bdp:failed"]), ("bd-w2", "open", None, &["bdp:conflict"])]);
}

/// `bdp/bd-b1` was never claimed; `bdp/bd-b2` belongs to an issue released as abandoned. Around it:
/// [`branches_around`].
pub fn build_branch_without_claim(root: &Path) {
    let w = writer(root, "s-20261125-060000-b1");
    append(&w, vec![started()]);
    let mut events = claimed("bd-b2", false);
    events.push(Event::ClaimLost { issue: "bd-b2".into(), holder: Some("alice".into()), detail: "taken".into() });
    events.push(Event::IssueReleased { issue: "bd-b2".into(), reason: ReleaseReason::Abandoned, detail: None });
    events.push(Event::SessionEnded { reason: SessionEndReason::Completed });
    append(&w, events);
    tracker(root, &[("bd-b2", "in_progress", Some("alice"), &[])]);
}

/// m1's check passed and its merge started; the crash came before `merged` was written. Around it:
/// [`merged_around`] (the branch is in main).
pub fn build_merge_unrecorded(root: &Path) {
    let s = "s-20261125-060000-m1";
    let mut events = claimed("bd-m1", true);
    events.extend(running(s, "bd-m1", 1, 4_194_140, 1140));
    events.extend(exited("bd-m1", 1, 0));
    events.extend(check_passed("bd-m1"));
    events.push(merge_started("bd-m1"));
    crashed_session(root, s, events);
    tracker(root, &[("bd-m1", "in_progress", Some("bdp"), &[])]);
}

/// m2 and m3: merges started, their end not written. Around it: [`unmerged_around`] (m2's branch is not
/// in main; m3's branch is gone).
pub fn build_merge_interrupted(root: &Path) {
    let s = "s-20261125-060000-m2";
    let mut events = Vec::new();
    for (n, issue) in ["bd-m2", "bd-m3"].iter().enumerate() {
        events.extend(claimed(issue, true));
        events.extend(running(s, issue, 1, 4_194_141 + n as u32, 1141 + n as u64));
        events.extend(exited(issue, 1, 0));
        events.extend(check_passed(issue));
        events.push(merge_started(issue));
    }
    crashed_session(root, s, events);
    tracker(root, &[("bd-m2", "in_progress", Some("bdp"), &[]), ("bd-m3", "in_progress", Some("bdp"), &[])]);
}

// ---- what tests build around the git fixtures

/// `git` in `root` with a fixed identity and dates (commit ids are the same on every run) and no user
/// or system configuration.
pub fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2026-11-25T05:00:00Z")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_DATE", "2026-11-25T05:00:00Z")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `git init` on `main` with one commit (a README; `.bdp` and `.beads` stay untracked).
pub fn git_repo(root: &Path) {
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("README"), "audit fixture\n").unwrap();
    git(root, &["add", "README"]);
    git(root, &["commit", "-q", "-m", "init"]);
}

/// A commit of `file` on the current branch.
fn commit_file(root: &Path, file: &str, message: &str) {
    std::fs::write(root.join(file), format!("{message}\n")).unwrap();
    git(root, &["add", file]);
    git(root, &["commit", "-q", "-m", message]);
}

/// For `audit-worktree-without-claim`: `git worktree add -b bdp/<id> .bdp/worktrees/<id>` for w1 and w2.
pub fn worktrees_around(root: &Path) {
    git_repo(root);
    for id in ["bd-w1", "bd-w2"] {
        let path = format!(".bdp/worktrees/{}", escape_path_component(id));
        git(root, &["worktree", "add", "-q", "-b", &format!("bdp/{id}"), &path, "main"]);
    }
}

/// For `audit-branch-without-claim`: the branches `bdp/bd-b1` and `bdp/bd-b2` at main.
pub fn branches_around(root: &Path) {
    git_repo(root);
    git(root, &["branch", "bdp/bd-b1"]);
    git(root, &["branch", "bdp/bd-b2"]);
}

/// For `audit-merge-unrecorded`: `bdp/bd-m1` has a commit, merged into main (`--no-ff`).
pub fn merged_around(root: &Path) {
    git_repo(root);
    git(root, &["checkout", "-q", "-b", "bdp/bd-m1"]);
    commit_file(root, "m1.txt", "work on bd-m1");
    git(root, &["checkout", "-q", "main"]);
    git(root, &["merge", "-q", "--no-ff", "-m", "bdp: merge bdp/bd-m1", "bdp/bd-m1"]);
}

/// For `audit-merge-interrupted`: `bdp/bd-m2` has a commit that main does not; `bdp/bd-m3` does not exist.
pub fn unmerged_around(root: &Path) {
    git_repo(root);
    git(root, &["checkout", "-q", "-b", "bdp/bd-m2"]);
    commit_file(root, "m2.txt", "work on bd-m2");
    git(root, &["checkout", "-q", "main"]);
}
