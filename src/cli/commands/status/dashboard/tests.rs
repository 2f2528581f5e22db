//! The dashboard's model from fixed records and a fixed look at the world, and the screen drawn from it
//! (ratatui's TestBackend, insta snapshot).

use std::collections::BTreeMap;
use std::sync::Arc;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::model::{Model, RunActivity, TrackerView, World, run_start_seq};
use super::view;
use crate::event::{AgentUsage, Event, FORMAT_VERSION, Phase, Record, ReleaseReason, SessionEndReason};
use crate::plan::Issue;
use crate::state::State;

/// Records with a timestamp one second apart from 06:00:00, in the sessions given.
struct Log {
    records: Vec<Record>,
}

impl Log {
    fn new() -> Log {
        Log { records: Vec::new() }
    }

    fn push(&mut self, session: &str, event: Event) {
        let seq = self.records.len() as u64 + 1;
        let ts = format!("2026-11-25T06:{:02}:{:02}.000Z", seq / 60, seq % 60);
        self.records.push(Record { seq, v: FORMAT_VERSION, ts, session: session.into(), event });
    }

    fn started(&mut self, session: &str, pid: u32, recovers: Option<&str>) {
        let event = Event::SessionStarted {
            pid,
            start_time: Some(1),
            host: "sandbox".into(),
            version: "0.1.0".into(),
            config: serde_json::json!({}),
            recovers: recovers.map(String::from),
        };
        self.push(session, event);
    }

    fn running(&mut self, session: &str, issue: &str, pid: u32) {
        let i = issue.to_string();
        for event in [
            Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
            Event::WorktreeCreated {
                issue: i.clone(),
                path: format!(".bdp/worktrees/{issue}"),
                branch: format!("bdp/{issue}"),
                base: "main".into(),
            },
            Event::PhaseChanged { issue: i.clone(), phase: Phase::WorktreeReady },
            Event::SpawnRequested {
                issue: i.clone(),
                attempt: 1,
                argv: vec!["agent.sh".into()],
                cwd: ".".into(),
                marker: "m".into(),
                stdout: "stdout".into(),
                stderr: "stderr".into(),
            },
            Event::AgentSpawned { issue: i.clone(), attempt: 1, pid, pgid: pid, start_time: Some(9) },
            Event::PhaseChanged { issue: i, phase: Phase::Running },
        ] {
            self.push(session, event);
        }
    }

    fn finished(
        &mut self,
        session: &str,
        issue: &str,
        duration_ms: u64,
        usage: Option<AgentUsage>,
        reason: ReleaseReason,
    ) {
        self.running(session, issue, 100);
        let i = issue.to_string();
        let exited = Event::AgentExited {
            issue: i.clone(),
            attempt: 1,
            code: Some(0),
            signal: None,
            duration_ms,
            timed_out: false,
            usage,
            session: None,
        };
        self.push(session, exited);
        self.push(session, Event::IssueReleased { issue: i, reason, detail: None });
    }

    fn state(&self) -> State {
        State::fold(&self.records).unwrap()
    }

    fn activity(&self) -> RunActivity {
        let state = self.state();
        let from = run_start_seq(&state);
        let mut activity = RunActivity::default();
        for r in &self.records {
            if r.seq >= from {
                activity.observe(r);
            } else if matches!(r.event, Event::AgentSpawned { .. }) {
                activity.spawn_ts.insert(r.seq, r.ts.clone());
            }
        }
        activity
    }
}

fn issue(id: &str, title: &str, status: &str, priority: i64, extra: serde_json::Value) -> Issue {
    let mut v = serde_json::json!({"id": id, "title": title, "status": status, "priority": priority});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Issue::from_json(&v).unwrap()
}

fn usage(input: u64, output: u64, cost: Option<u64>) -> Option<AgentUsage> {
    Some(AgentUsage {
        cost_micro_usd: cost,
        input_tokens: input,
        cached_input_tokens: input / 2,
        output_tokens: output,
    })
}

/// An earlier finished session, then a run: a session that crashed with two agents running, and the
/// session recovering it (one agent adopted and still running, one finished, one more done).
fn recovered_run() -> Log {
    let mut log = Log::new();
    log.started("s-old", 10, None);
    log.finished("s-old", "bd-old", 999_000, usage(1, 1, Some(1)), ReleaseReason::Done);
    log.push("s-old", Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] });
    log.started("s-crashed", 20, None);
    log.finished("s-crashed", "bd-a1", 60_000, usage(1000, 200, Some(150_000)), ReleaseReason::Done);
    log.running("s-crashed", "bd-b2", 4242);
    log.running("s-crashed", "bd-c3", 4343);
    log.push(
        "s-crashed",
        Event::ProgressReported {
            issue: "bd-b2".into(),
            attempt: 1,
            status: "tests pass;\nwriting docs".into(),
            percent: Some(60),
            step: None,
            steps: None,
        },
    );
    log.started("s-recovers", 30, Some("s-crashed"));
    let exited = Event::AgentExited {
        issue: "bd-c3".into(),
        attempt: 1,
        code: Some(1),
        signal: None,
        duration_ms: 30_000,
        timed_out: false,
        usage: None,
        session: None,
    };
    log.push("s-recovers", exited);
    log.push("s-recovers", Event::IssueReleased { issue: "bd-c3".into(), reason: ReleaseReason::Failed, detail: None });
    log.finished("s-recovers", "bd-d4", 30_000, usage(500, 100, None), ReleaseReason::Done);
    log.push("s-recovers", Event::LockAcquired { lock: "merge".into(), holder_pid: 30, issue: Some("bd-d4".into()) });
    log
}

fn world(now: &str) -> World {
    let tracker = vec![
        issue("bd-b2", "Adopted agent\u{1b}[31m with\nnewline", "in_progress", 1, serde_json::json!({})),
        issue("bd-e5", "Next by priority", "open", 0, serde_json::json!({})),
        issue("bd-f6", "Later", "open", 3, serde_json::json!({})),
        issue(
            "bd-g7",
            "Blocked",
            "open",
            0,
            serde_json::json!({"dependencies": [{"depends_on_id": "bd-f6", "type": "blocks"}]}),
        ),
        issue("bd-h8", "Failed before", "open", 0, serde_json::json!({"labels": ["bdp:failed"]})),
        issue("bd-old", "Done long ago", "closed", 2, serde_json::json!({})),
    ];
    World {
        now: now.parse().unwrap(),
        orchestrator_running: true,
        orchestrator_pid: Some(30),
        alive: BTreeMap::from([("bd-b2".to_string(), true)]),
        last_lines: BTreeMap::from([("bd-b2".to_string(), "running tests\u{7}".to_string())]),
        tracker: Ok(Arc::new(TrackerView::new(tracker, now.parse().unwrap()))),
        lock_holders_alive: BTreeMap::from([(30, true)]),
        file_locks: crate::file_locks::Listing {
            locks: vec![crate::filelock::Entry {
                path: "Cargo.toml".into(),
                shared: false,
                holder: "bd-b2#1".into(),
                pid: 41,
                start_time: None,
                since: "2026-11-25T06:02:00Z".into(),
                expires_ms: None,
            }],
            waiting: vec![crate::file_locks::Waiting {
                holder: "bd-x9#2".into(),
                paths: vec!["Cargo.toml".into()],
                waits_for: vec!["bd-b2#1".into()],
                pid: 42,
                start_time: None,
                since_ms: 0,
            }],
        },
        file_lock_holders_alive: BTreeMap::from([(41, true)]),
    }
}

fn model() -> Model {
    let log = recovered_run();
    Model::build("/work/repo", &log.state(), &log.activity(), &world("2026-11-25T06:03:00Z"), None)
}

#[test]
fn the_run_is_the_last_session_and_the_crashed_ones_it_recovers() {
    let log = recovered_run();
    let state = log.state();
    assert_eq!(state.session("s-crashed").unwrap().started_seq, run_start_seq(&state));
    let m = model();
    let c = &m.counts;
    assert_eq!((c.done, c.failed, c.conflicted, c.running, c.queued), (2, 1, 0, 1, Some(2)));
    let activity = log.activity();
    assert_eq!(activity.agent_ms, 60_000 + 30_000 + 30_000, "the earlier session's 999 s are not in the run");
    let u = m.usage.unwrap();
    assert_eq!((u.input_tokens, u.cached_input_tokens, u.output_tokens), (1500, 750, 300));
    assert_eq!(u.cost_micro_usd, Some(150_000), "cost sums what was reported");
    // Wall time: from the crashed session's start (seq 11, 06:00:11) to now (06:03:00) = 169 s.
    assert_eq!(activity.run_started_ts.as_deref(), Some("2026-11-25T06:00:11.000Z"));
    let speedup = m.speedup.unwrap();
    assert!((speedup - 120.0 / 169.0).abs() < 1e-9, "{speedup}");
}

#[test]
fn agents_queue_and_locks_come_from_the_state_and_the_world() {
    let m = model();
    let session = m.session.as_ref().unwrap();
    assert_eq!((session.id.as_str(), session.state, session.orchestrator_pid), ("s-recovers", "running", Some(30)));
    assert_eq!(m.agents.len(), 1);
    let a = &m.agents[0];
    assert_eq!((a.issue.as_str(), a.phase.as_str(), a.attempt, a.alive), ("bd-b2", "running", Some(1), Some(true)));
    // Spawned at seq 24 (06:00:24), now 06:03:00.
    assert_eq!(a.elapsed_ms, Some(156_000));
    // Hostile text is one line, control characters escaped.
    assert_eq!(a.title.as_deref(), Some("Adopted agent\\u{1b}[31m with\\nnewline"));
    assert_eq!(a.last_line.as_deref(), Some("running tests\\u{7}"));
    // Ready, not claimed, not held for a human, in plan order; blocked and closed ones left out.
    let queue: Vec<&str> = m.queue.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(queue, ["bd-e5", "bd-f6"]);
    assert_eq!(m.locks.len(), 1);
    assert_eq!((m.locks[0].name.as_str(), m.locks[0].holder_alive), ("merge", Some(true)));
    assert_eq!(m.recent.len(), super::model::RECENT);
    assert!(m.recent[0].contains("lock_acquired"), "newest first: {:?}", m.recent[0]);
}

#[test]
fn without_an_orchestrator_the_session_is_crashed_and_a_dead_agent_shows_as_gone() {
    let log = recovered_run();
    let mut w = world("2026-11-25T06:03:00Z");
    w.orchestrator_running = false;
    w.alive.insert("bd-b2".into(), false);
    w.tracker = Err("no .beads directory".into());
    let m = Model::build("r", &log.state(), &log.activity(), &w, None);
    assert_eq!(m.session.as_ref().unwrap().state, "crashed");
    assert_eq!(m.agents[0].alive, Some(false));
    assert_eq!(m.counts.running, 0);
    assert_eq!(m.counts.queued, None);
    assert_eq!(m.queue_error.as_deref(), Some("no .beads directory"));
    assert_eq!(m.agents[0].title, None);
}

#[test]
fn usage_is_unknown_until_an_agent_reports_it_and_a_new_run_starts_afresh() {
    let mut log = Log::new();
    log.started("s-1", 1, None);
    log.finished("s-1", "bd-1", 10_000, None, ReleaseReason::Done);
    log.push("s-1", Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] });
    let mut w = world("2026-11-25T06:01:00Z");
    w.orchestrator_running = false;
    let m = Model::build("r", &log.state(), &log.activity(), &w, None);
    assert_eq!(m.usage, None);
    let s = m.session.as_ref().unwrap();
    assert_eq!((s.state, s.end_reason.as_deref()), ("ended", Some("completed")));
    // Wall time stops at the session's end (seq 10, 06:00:10), not now: 9 s from its start (06:00:01).
    assert_eq!(s.elapsed_ms, Some(9_000));
    assert!((m.speedup.unwrap() - 10.0 / 9.0).abs() < 1e-9);
    // A session that recovers nothing is a new run: the totals start again.
    log.started("s-2", 2, None);
    let mut activity = RunActivity::default();
    for r in &log.records {
        activity.observe(r);
    }
    assert_eq!(activity.agent_ms, 0);
    assert_eq!(activity.run_started_ts.as_deref(), Some(log.records.last().unwrap().ts.as_str()));
}

/// The screen as text, one line per row, trailing spaces trimmed.
fn screen(model: &Model, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view::draw(f, model)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let row: String = (0..width).map(|x| buffer[(x, y)].symbol().to_string()).collect();
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn the_screen_of_a_live_run() {
    insta::assert_snapshot!("dashboard_live_run", screen(&model(), 120, 40));
}

#[test]
fn the_screen_of_a_log_that_went_bad() {
    let log = recovered_run();
    let mut w = world("2026-11-25T06:03:00Z");
    w.tracker = Err("cannot read .beads/issues.jsonl".into());
    let m = Model::build(
        "/work/repo",
        &log.state(),
        &log.activity(),
        &w,
        Some("the event log is damaged at seq 40".into()),
    );
    let text = screen(&m, 100, 30);
    assert!(text.contains("log not followed any more: the event log is damaged at seq 40"), "{text}");
    assert!(text.contains("tracker unavailable: cannot read .beads/issues.jsonl"), "{text}");
}
