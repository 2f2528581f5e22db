//! `bdp audit` on the finding kinds that need live processes (agent_alive, spawn_unconfirmed_alive,
//! agent_without_claim), end to end: a real `sleep` stands for the agent, in its own process group, with
//! bdp's marker (`BDP_MARKER`) and `BDP_WORKTREE` in its environment; the log is built around its pid and
//! start time. Outputs are snapshot-tested (pids and start times filtered) and validated against
//! schema/audit.schema.json.

use crate::common;
use crate::common::audit_support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use audit_support::{
    append, assert_valid_audit_json, bdp, claimed, events, marker, requested, shown, started, tracker,
};
use bdp::event::{Event, Phase, SessionEndReason};
use serde_json::Value;

/// A `sleep 60` standing for an agent: its own process group, `BDP_MARKER` and `BDP_WORKTREE` set. Killed
/// (and reaped) on drop.
struct FakeAgent {
    child: Child,
    pid: u32,
    start_time: u64,
}

impl FakeAgent {
    fn start(marker: &str, worktree: &Path) -> FakeAgent {
        let child = Command::new("sleep")
            .arg("60")
            .env("BDP_MARKER", marker)
            .env("BDP_WORKTREE", worktree)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until the exec, /proc shows the test's own environment: wait for the marker.
        let until = Instant::now() + Duration::from_secs(10);
        while !bdp::process::with_env(&["BDP_MARKER"]).iter().any(|f| f.pid == pid) {
            assert!(Instant::now() < until, "sleep {pid} never showed its marker");
            std::thread::sleep(Duration::from_millis(10));
        }
        let start_time = bdp::process::start_time(pid).unwrap();
        FakeAgent { child, pid, start_time }
    }

    fn running(&self) -> bool {
        bdp::process::is_running(self.pid, Some(self.start_time))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn report(root: &Path) -> (Value, i32) {
    let (stdout, stderr, code) = bdp(root, &["audit", "--json"]);
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}\n{stderr}"));
    assert_valid_audit_json(&value, "audit --json");
    (value, code)
}

fn kinds(report: &Value) -> Vec<&str> {
    report["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect()
}

/// Snapshots `text` with the agents' pids and start times filtered.
fn snapshot(name: &str, text: &str, agents: &[&FakeAgent]) {
    let mut filters = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        filters.push((format!(r"\b{}\b", a.pid), format!("[PID{i}]")));
        filters.push((format!(r"\b{}\b", a.start_time), format!("[START{i}]")));
    }
    let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!(name, text);
    });
}

const SESSION: &str = "s-20261125-060000-l1";

#[test]
fn a_running_agent_of_a_crashed_session_is_alive_and_left_to_bdp_run_to_adopt() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let agent = FakeAgent::start(&marker(SESSION, "bd-l1", 1), root);
    let w = common::writer(root, SESSION);
    let mut log = vec![started()];
    log.extend(claimed("bd-l1", true));
    log.extend([
        requested(SESSION, "bd-l1", 1),
        Event::AgentSpawned {
            issue: "bd-l1".into(),
            attempt: 1,
            pid: agent.pid,
            pgid: agent.pid,
            start_time: Some(agent.start_time),
        },
        Event::PhaseChanged { issue: "bd-l1".into(), phase: Phase::Running },
    ]);
    append(&w, log);
    drop(w);
    tracker(root, &[("bd-l1", "in_progress", Some("bdp"), &[])]);

    let (r, code) = report(root);
    assert_eq!(kinds(&r), ["agent_alive"]);
    assert_eq!(code, 1);
    let repair = &r["findings"][0]["repair"];
    assert_eq!(repair["action"], "adopt");
    assert_eq!((repair["pid"].as_u64(), repair["pgid"].as_u64()), (Some(agent.pid.into()), Some(agent.pid.into())));
    assert_eq!(repair["start_time"].as_u64(), Some(agent.start_time));
    // Its marker belongs to the open attempt: not a stray.
    assert_eq!(r["summary"]["recovered_by_run"], 1);
    let (human, _) = shown(root, &["audit"]);
    // --fix leaves an adoption to `bdp run`: the agent runs on, nothing is appended.
    let before = events(root).len();
    let (fixed, fix_code) = shown(root, &["audit", "--fix"]);
    assert_eq!(fix_code, 1);
    assert!(agent.running(), "audit --fix touched the agent");
    assert_eq!(events(root).len(), before);
    snapshot("agent_alive", &format!("{human}\n{fixed}"), &[&agent]);
    // Once it is gone (no exit file: it was killed), the same attempt is a crash.
    let mut agent = agent;
    agent.stop();
    let (r, _) = report(root);
    assert_eq!(kinds(&r), ["agent_crashed"]);
}

#[test]
fn an_agent_whose_spawn_was_never_confirmed_is_found_by_its_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let agent = FakeAgent::start(&marker(SESSION, "bd-l2", 1), root);
    let w = common::writer(root, SESSION);
    let mut log = vec![started()];
    log.extend(claimed("bd-l2", true));
    log.push(requested(SESSION, "bd-l2", 1));
    append(&w, log);
    drop(w);
    tracker(root, &[("bd-l2", "in_progress", Some("bdp"), &[])]);

    let (r, code) = report(root);
    assert_eq!(kinds(&r), ["spawn_unconfirmed_alive"]);
    assert_eq!(code, 1);
    let repair = &r["findings"][0]["repair"];
    assert_eq!(repair["action"], "record_spawn_and_adopt");
    assert_eq!((repair["pid"].as_u64(), repair["pgid"].as_u64()), (Some(agent.pid.into()), Some(agent.pid.into())));
    assert_eq!(repair["start_time"].as_u64(), Some(agent.start_time));
    let (human, _) = shown(root, &["audit"]);
    let (fixed, fix_code) = shown(root, &["audit", "--fix"]);
    assert_eq!(fix_code, 1);
    assert!(agent.running(), "audit --fix touched the agent");
    snapshot("spawn_unconfirmed_alive", &format!("{human}\n{fixed}"), &[&agent]);
}

#[test]
fn a_stray_agent_is_found_and_fix_stops_its_group_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // The log: bd-l3's attempt 1 ended and the issue was released; a process with its marker runs on.
    let w = common::writer(root, SESSION);
    let mut log = vec![started()];
    log.extend(claimed("bd-l3", true));
    log.extend(audit_support::running(SESSION, "bd-l3", 1, 4_194_150, 1150));
    log.extend(audit_support::exited("bd-l3", 1, 1));
    log.extend([
        Event::IssueReleased { issue: "bd-l3".into(), reason: bdp::event::ReleaseReason::Failed, detail: None },
        Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
    ]);
    append(&w, log);
    drop(w);
    tracker(root, &[("bd-l3", "open", None, &["bdp:failed"])]);
    let mut stray = FakeAgent::start(&marker(SESSION, "bd-l3", 1), root);
    // The same marker for another repository: not this one's business.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = FakeAgent::start(&marker(SESSION, "bd-l3", 1), elsewhere.path());

    let (r, code) = report(root);
    assert_eq!(kinds(&r), ["agent_without_claim"]);
    assert_eq!(code, 1);
    assert_eq!(r["findings"][0]["repair"], serde_json::json!({"action": "stop_agent", "pgid": stray.pid}));
    let (human, _) = shown(root, &["audit"]);
    let before = events(root).len();
    let (fixed, fix_code) = shown(root, &["audit", "--fix"]);
    assert_eq!(fix_code, 0, "{fixed}");
    // Stopped with TERM (the test reaps it), and recorded; the other repository's process runs on.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(stray.child.wait().unwrap().signal(), Some(15));
    assert!(other.running());
    let appended: Vec<Value> = events(root)[before..].to_vec();
    assert_eq!(appended.len(), 1);
    assert_eq!(appended[0]["type"], "repair_applied");
    assert_eq!(appended[0]["kind"], "agent_without_claim");
    let (again, again_code) = shown(root, &["audit"]);
    assert_eq!(again_code, 0);
    snapshot("agent_without_claim", &format!("{human}\n{fixed}\n{again}"), &[&stray]);
}
