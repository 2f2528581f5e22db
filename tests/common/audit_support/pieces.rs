//! Pieces the audit fixtures are made of: events of a crashed session's steps (claim, spawn, exit, check,
//! merge), and the world's files (the tracker's `.beads/issues.jsonl`, lock files, exit files).

use std::path::Path;

use bdp::event::{Event, MergeStrategy, Phase};
use bdp::exit_file::ExitRecord;
use bdp::log::LogWriter;
use bdp::repo::escape_path_component;
use serde_json::json;

use super::DEAD_ORCHESTRATOR;
use crate::common::writer;

pub fn started() -> Event {
    crate::common::session_started(DEAD_ORCHESTRATOR, Some(1), json!({"agents": 2, "tracker": "jsonl"}), None)
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
            session: None,
        },
        Event::PhaseChanged { issue: issue.into(), phase: Phase::Exited },
    ]
}

pub fn check_passed(issue: &str) -> Vec<Event> {
    vec![
        Event::CheckPassed { issue: issue.into(), attempt: 1, command: "cargo test".into(), duration_ms: 2_500 },
        Event::PhaseChanged { issue: issue.into(), phase: Phase::Checked },
    ]
}

pub fn merge_started(issue: &str) -> Event {
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

pub fn exit_record(record: &ExitRecord) -> Vec<u8> {
    serde_json::to_vec(record).unwrap()
}
