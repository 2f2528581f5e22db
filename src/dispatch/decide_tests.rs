//! Table tests of `decide`, as cargo-nextest tests its dispatcher's `handle_event`: a model and an input in,
//! the actions out (and what the model remembers for the next input).

use super::*;
use crate::dispatch::io::Started;
use crate::dispatch::model::Rules;
use crate::event::AgentUsage;
use crate::plan::Issue;
use crate::state::State;

fn issue(id: &str, labels: &[&str]) -> Issue {
    Issue { title: format!("title of {id}"), labels: labels.iter().map(|l| l.to_string()).collect(), ..Issue::open(id) }
}

fn rules() -> Rules {
    Rules::sample()
}

fn model(ids: &[&str]) -> Model {
    let issues = ids.iter().map(|id| issue(id, &[])).collect();
    Model::new(rules(), State::new(), issues, jiff::Timestamp::UNIX_EPOCH)
}

fn step() -> Input {
    Input::Step { machine_busy: None }
}

/// The actions that are not appends or reports (what the executor must do in the world), nor the release
/// of file locks that follows every attempt's end (`every_attempts_end_gives_back_its_file_locks`).
fn acts(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Append { .. } | Action::Report(_) | Action::ReleaseFileLocks { .. }))
        .cloned()
        .collect()
}

/// Whatever an attempt's end leads to, the file locks its agent still holds are given back.
#[test]
fn every_attempts_end_gives_back_its_file_locks() {
    for code in [0, 1] {
        let mut m = running("a");
        let out = m.decide(10, exited("a", code));
        assert!(out.contains(&Action::ReleaseFileLocks { issue: "a".into(), attempt: 1 }), "exit {code}: {out:?}");
    }
}

/// The kinds of the events appended, in order.
fn events(actions: &[Action]) -> Vec<&'static str> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Append { events, .. } => events.iter().map(|e| e.kind()).collect(),
            _ => vec![],
        })
        .collect()
}

fn reports(actions: &[Action]) -> Vec<RunEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Report(r) if !matches!(r, RunEvent::Phase { .. }) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn change(add: &[&str], remove: &[&str]) -> LabelChange {
    LabelChange {
        add: add.iter().map(|s| s.to_string()).collect(),
        remove: remove.iter().map(|s| s.to_string()).collect(),
    }
}

/// A model holding `id` with its agent running (attempt 1).
fn running(id: &str) -> Model {
    let mut m = model(&[id]);
    m.decide(0, step());
    m.decide(0, Input::Claimed { results: vec![(id.into(), Ok(()))] });
    m.decide(0, Input::WorktreeReady { issue: id.into(), result: Ok((format!("/wt/{id}"), format!("bdp/{id}"))) });
    m.decide(0, Input::Spawned { issue: id.into(), attempt: 1, result: Ok(Started { pid: 7, start_time: None }) });
    m
}

fn exited(id: &str, code: i32) -> Input {
    Input::AgentExited {
        issue: id.into(),
        attempt: 1,
        end: AgentEnd { code: Some(code), duration_ms: 10, ..AgentEnd::default() },
        usage: None::<AgentUsage>,
    }
}

#[test]
fn a_step_claims_what_fits_in_plan_order_with_the_claimed_label() {
    let mut m = model(&["a", "b", "c"]);
    let out = m.decide(0, step());
    assert_eq!(
        acts(&out),
        vec![Action::Claim { ids: vec!["a".into(), "b".into()], labels: change(&["phase:claimed"], &[]) }]
    );
}

#[test]
fn a_claim_takes_the_lock_and_makes_the_worktree_and_a_refusal_skips_the_issue() {
    let mut m = model(&["a", "b"]);
    m.decide(0, step());
    let out = m.decide(
        0,
        Input::Claimed { results: vec![("a".into(), Ok(())), ("b".into(), Err(WriteError::Refused("taken".into())))] },
    );
    assert_eq!(events(&out), ["issue_claimed", "lock_acquired"]);
    assert_eq!(
        acts(&out),
        vec![Action::WriteLockFile { issue: "a".into() }, Action::MakeWorktree { issue: "a".into() }]
    );
    assert_eq!(reports(&out), vec![RunEvent::Skipped { issue: "b".into(), why: "taken".into() }]);
    assert!(m.skip.contains("b"));
    assert_eq!(m.issue("a").map(|i| i.status.as_str()), Some("in_progress"));
}

#[test]
fn what_an_attempts_end_leads_to() {
    // (exit code, attempts already failed, the actions in the world)
    let table: Vec<(i32, u32, Vec<Action>)> = vec![
        (0, 0, vec![Action::LookAtBranch { issue: "a".into() }]),
        (3, 0, vec![Action::ResetWorktree { issue: "a".into(), keep: false }]),
        (
            3,
            1,
            vec![Action::GiveBack {
                issue: "a".into(),
                labels: change(&["phase:exited", "bdp:failed"], &["phase:claimed"]),
            }],
        ),
    ];
    for (code, failed_before, want) in table {
        let mut m = running("a");
        m.held.get_mut("a").unwrap().made += failed_before;
        // The label write of the phases so far happened.
        m.issue_mut("a").unwrap().labels = vec!["phase:claimed".into()];
        let out = m.decide(100, exited("a", code));
        assert_eq!(acts(&out), want, "exit {code} after {failed_before} failed attempt(s)");
    }
}

#[test]
fn a_retry_waits_for_its_backoff_then_spawns_the_next_attempt() {
    let mut m = running("a");
    let out = m.decide(100, exited("a", 1));
    assert_eq!(events(&out), ["agent_exited", "phase_changed", "retry_scheduled"]);
    let out = m.decide(150, Input::WorktreeReset { issue: "a".into(), result: Ok(()) });
    assert_eq!(acts(&out), vec![Action::SetTimer { at: 1_150, timer: Timer::Retry("a".into()) }]);
    let out = m.decide(1_150, Input::TimerFired(Timer::Retry("a".into())));
    assert_eq!(acts(&out), vec![Action::Spawn { items: vec![("a".into(), 2)] }]);
}

#[test]
fn a_successful_branch_is_merged_and_closed_at_the_end_of_the_step() {
    let mut m = running("a");
    m.decide(100, exited("a", 0));
    let facts = BranchFacts { ahead: 2, dirty: false, head: "c0ffee".into() };
    let out = m.decide(100, Input::BranchLooked { issue: "a".into(), result: Ok(facts) });
    assert!(
        matches!(out.iter().find(|a| matches!(a, Action::Append { durable: true, .. })), Some(Action::Append { events, .. }) if events[0].kind() == "merge_started")
    );
    assert_eq!(
        acts(&out),
        vec![Action::Merge { issue: "a".into(), strategy: MergeStrategy::Merge, title: "title of a".into() }]
    );
    let out = m.decide(
        200,
        Input::MergeDone { issue: "a".into(), outcome: Ok(MergeOutcome::Merged { commit: "abcdef1234567890".into() }) },
    );
    assert_eq!(events(&out), ["merged", "phase_changed"]);
    assert!(acts(&out).is_empty(), "the close waits for the end of the step");
    let out = m.decide(200, step());
    assert_eq!(
        acts(&out)[0],
        Action::Close { ids: vec!["a".into()], reason: "bdp: merged abcdef123456 into main".into() }
    );
    let out = m.decide(210, Input::ClosesDone { results: vec![("a".into(), Ok(()))] });
    assert_eq!(
        acts(&out),
        vec![Action::RemoveWorktree {
            issue: "a".into(),
            path: "/wt/a".into(),
            branch: "bdp/a".into(),
            keep_branch: false
        }]
    );
    let out = m.decide(220, Input::Removed { issue: "a".into(), worktree: Ok(()), branch: Ok(()) });
    assert_eq!(events(&out), ["worktree_removed", "lock_released", "issue_released"]);
    assert!(m.held.is_empty());
}

#[test]
fn a_conflict_gives_the_issue_back_labelled_with_its_branch_kept() {
    let mut m = running("a");
    m.decide(100, exited("a", 0));
    m.decide(
        100,
        Input::BranchLooked { issue: "a".into(), result: Ok(BranchFacts { ahead: 1, dirty: false, head: "h".into() }) },
    );
    let out = m.decide(
        200,
        Input::MergeDone { issue: "a".into(), outcome: Ok(MergeOutcome::Refused { reason: "conflict in x".into() }) },
    );
    assert_eq!(events(&out), ["merge_conflicted"]);
    let Some(Action::GiveBack { labels, .. }) = acts(&out).into_iter().next() else { panic!("no give-back: {out:?}") };
    assert!(labels.add.contains(&"bdp:conflict".to_string()));
    let out = m.decide(210, Input::GaveBack { issue: "a".into(), result: Ok(()) });
    assert_eq!(
        acts(&out),
        vec![Action::RemoveWorktree {
            issue: "a".into(),
            path: "/wt/a".into(),
            branch: "bdp/a".into(),
            keep_branch: true
        }]
    );
}

#[test]
fn the_merge_queue_takes_one_branch_at_a_time() {
    let mut m = model(&["a", "b"]);
    m.decide(0, step());
    m.decide(0, Input::Claimed { results: vec![("a".into(), Ok(())), ("b".into(), Ok(()))] });
    for id in ["a", "b"] {
        m.decide(0, Input::WorktreeReady { issue: id.into(), result: Ok((format!("/wt/{id}"), format!("bdp/{id}"))) });
        m.decide(0, Input::Spawned { issue: id.into(), attempt: 1, result: Ok(Started { pid: 7, start_time: None }) });
        m.decide(5, exited(id, 0));
    }
    let facts = || Ok(BranchFacts { ahead: 1, dirty: false, head: "h".into() });
    let first = m.decide(10, Input::BranchLooked { issue: "a".into(), result: facts() });
    let second = m.decide(10, Input::BranchLooked { issue: "b".into(), result: facts() });
    assert!(matches!(acts(&first)[..], [Action::Merge { .. }]));
    assert!(acts(&second).is_empty(), "b waits: {second:?}");
    let out =
        m.decide(20, Input::MergeDone { issue: "a".into(), outcome: Ok(MergeOutcome::Merged { commit: "c".into() }) });
    assert_eq!(
        acts(&out),
        vec![Action::Merge { issue: "b".into(), strategy: MergeStrategy::Merge, title: "title of b".into() }]
    );
}

#[test]
fn a_failing_tracker_pauses_claims_and_the_close_waits_for_it() {
    let mut m = running("a");
    m.decide(100, exited("a", 0));
    m.decide(
        100,
        Input::BranchLooked { issue: "a".into(), result: Ok(BranchFacts { ahead: 0, dirty: false, head: "h".into() }) },
    );
    let out = m.decide(100, step());
    assert!(matches!(acts(&out)[0], Action::Close { .. }));
    let out =
        m.decide(110, Input::ClosesDone { results: vec![("a".into(), Err(WriteError::Failed("bad line 3".into())))] });
    assert_eq!(events(&out), ["tracker_down"]);
    assert_eq!(acts(&out), vec![Action::SetTimer { at: 1_110, timer: Timer::Tracker }]);
    assert_eq!(m.waiting.len(), 1);
    // No claim while it is down, and the run does not end.
    let out = m.decide(500, step());
    assert!(acts(&out).is_empty(), "{out:?}");
    assert!(!m.finished);
    // The timer reads it again; it works: the close is made.
    let out = m.decide(1_110, Input::TimerFired(Timer::Tracker));
    assert_eq!(acts(&out), vec![Action::ReadTracker]);
    let out =
        m.decide(1_120, Input::TrackerRead { result: Ok(vec![issue("a", &[])]), at: jiff::Timestamp::UNIX_EPOCH });
    assert_eq!(events(&out), ["tracker_back"]);
    assert_eq!(reports(&out), vec![RunEvent::TrackerBack { down: 1_010, waiting: 1 }]);
    let out = m.decide(1_130, step());
    assert!(matches!(&acts(&out)[0], Action::Close { ids, .. } if ids == &["a".to_string()]));
}

#[test]
fn after_the_outage_limit_the_run_drains_and_leaves_the_waiting_writes() {
    let mut m = running("a");
    m.rules.tracker_outage = 5_000;
    m.decide(100, exited("a", 0));
    m.decide(
        100,
        Input::BranchLooked { issue: "a".into(), result: Ok(BranchFacts { ahead: 0, dirty: false, head: "h".into() }) },
    );
    m.decide(100, step());
    m.decide(100, Input::ClosesDone { results: vec![("a".into(), Err(WriteError::Failed("down".into())))] });
    let out = m.decide(5_100, Input::TimerFired(Timer::Tracker));
    assert_eq!(m.stop, StopLevel::Drain);
    assert!(reports(&out).contains(&RunEvent::LeftWaiting { issue: "a".into() }));
    assert!(m.held.is_empty());
    m.decide(5_100, step());
    assert!(m.finished);
    assert_eq!(m.outcome.left_waiting, 1);
}

#[test]
fn stop_escalates_and_only_now_stops_the_agents() {
    let mut m = running("a");
    let out = m.decide(10, Input::StopAsked(StopLevel::Drain));
    assert!(acts(&out).is_empty());
    assert_eq!(reports(&out), vec![RunEvent::Stopping { level: StopLevel::Drain, running: 1 }]);
    let out = m.decide(20, Input::StopAsked(StopLevel::Drain));
    assert_eq!(acts(&out), vec![Action::StopAll]);
    // A stopped agent's issue is given back, not retried.
    let stopped = AgentEnd { signal: Some(15), duration_ms: 5, stopped: true, ..AgentEnd::default() };
    let out = m.decide(30, Input::AgentExited { issue: "a".into(), attempt: 1, end: stopped, usage: None });
    assert!(matches!(&acts(&out)[..], [Action::GiveBack { .. }]));
}

/// A model holding each of `ids` with its first attempt running.
fn all_running(ids: &[&str]) -> Model {
    let mut m = model(ids);
    m.rules.agents = ids.len();
    m.decide(0, step());
    m.decide(0, Input::Claimed { results: ids.iter().map(|id| (id.to_string(), Ok(()))).collect() });
    for id in ids {
        m.decide(
            0,
            Input::WorktreeReady { issue: id.to_string(), result: Ok((format!("/wt/{id}"), format!("bdp/{id}"))) },
        );
        m.decide(
            0,
            Input::Spawned { issue: id.to_string(), attempt: 1, result: Ok(Started { pid: 7, start_time: None }) },
        );
    }
    m
}

fn failed_saying(id: &str, said: &str) -> Input {
    let end = AgentEnd { code: Some(1), duration_ms: 10, said: Some(said.into()), ..AgentEnd::default() };
    Input::AgentExited { issue: id.into(), attempt: 1, end, usage: None }
}

/// The crash-loop guard: the first attempts of three different issues failing the same way (exit status and
/// last words) stop the claiming and drain; two the same and one different do not.
#[test]
fn three_first_attempts_failing_the_same_way_stop_the_run() {
    let mut m = all_running(&["a", "b", "c"]);
    m.decide(1, failed_saying("a", "error: no API key"));
    m.decide(2, failed_saying("b", "error: no API key"));
    let out = m.decide(3, failed_saying("c", "error: rate limited"));
    assert!(!reports(&out).iter().any(|r| matches!(r, RunEvent::CrashLoop { .. })), "{out:?}");
    assert_eq!((m.stop, m.outcome.crash_loop.as_deref()), (StopLevel::None, None));

    let mut m = all_running(&["a", "b", "c"]);
    m.decide(1, failed_saying("a", "error: no API key"));
    m.decide(2, failed_saying("b", "error: no API key"));
    let out = m.decide(3, failed_saying("c", "error: no API key"));
    let why = "agent exited 1: error: no API key";
    let loops: Vec<_> = reports(&out).into_iter().filter(|r| matches!(r, RunEvent::CrashLoop { .. })).collect();
    assert_eq!(loops, vec![RunEvent::CrashLoop { why: why.into(), issues: vec!["a".into(), "b".into(), "c".into()] }]);
    assert_eq!((m.stop, m.outcome.crash_loop.as_deref()), (StopLevel::Drain, Some(why)));
}

fn exited_costing(id: &str, attempt: u32, code: i32, micro_usd: u64) -> Input {
    let usage = AgentUsage { cost_micro_usd: Some(micro_usd), ..AgentUsage::default() };
    let end = AgentEnd { code: Some(code), duration_ms: 10, ..AgentEnd::default() };
    Input::AgentExited { issue: id.into(), attempt, end, usage: Some(usage) }
}

/// An attempt that ran out of context is continued from its work: the worktree is kept (committed as work
/// in progress), not reset; the attempt after a plain failure resets it again.
#[test]
fn an_attempt_out_of_context_keeps_its_worktree_for_the_next() {
    let mut m = running("a");
    m.rules.retries = 3;
    let end = AgentEnd { code: Some(1), context_exhausted: true, ..AgentEnd::default() };
    let out = m.decide(10, Input::AgentExited { issue: "a".into(), attempt: 1, end, usage: None });
    assert!(acts(&out).contains(&Action::ResetWorktree { issue: "a".into(), keep: true }), "{out:?}");
    let keep = CarryOn { keep: true, ..CarryOn::default() };
    assert_eq!(carried_on(&out), Some(Some(keep)), "the retry's record says so (for a recovery)");
    m.decide(11, Input::WorktreeReset { issue: "a".into(), result: Ok(()) });
    m.decide(12, Input::TimerFired(Timer::Retry("a".into())));
    m.decide(13, Input::Spawned { issue: "a".into(), attempt: 2, result: Ok(Started { pid: 8, start_time: None }) });
    let end = AgentEnd { code: Some(1), ..AgentEnd::default() };
    let out = m.decide(14, Input::AgentExited { issue: "a".into(), attempt: 2, end, usage: None });
    assert!(acts(&out).contains(&Action::ResetWorktree { issue: "a".into(), keep: false }), "{out:?}");
}

/// How the retry scheduled in `out` carries on, as recorded (`None`: no retry was scheduled).
fn carried_on(out: &[Action]) -> Option<Option<CarryOn>> {
    out.iter().find_map(|a| match a {
        Action::Append { events, .. } => events.iter().find_map(|e| match e {
            Event::RetryScheduled { carry_on, .. } => Some(carry_on.clone()),
            _ => None,
        }),
        _ => None,
    })
}

/// An attempt cut short (a timeout, a stall, a signal) is resumed by its retry, when the agent said its
/// session and its CLI can resume one; an attempt that failed on its own starts afresh.
#[test]
fn a_retry_after_an_attempt_cut_short_resumes_its_session() {
    let session = Some("s-1".to_string());
    let cases = [
        (AgentEnd { timed_out: true, session: session.clone(), ..AgentEnd::default() }, true, true),
        (
            AgentEnd { stalled: Some(600_000), signal: Some(15), session: session.clone(), ..AgentEnd::default() },
            true,
            true,
        ),
        (AgentEnd { signal: Some(9), session: session.clone(), ..AgentEnd::default() }, true, true),
        (AgentEnd { code: Some(1), session: session.clone(), ..AgentEnd::default() }, true, false),
        (AgentEnd { timed_out: true, ..AgentEnd::default() }, true, false),
        (AgentEnd { timed_out: true, session: session.clone(), ..AgentEnd::default() }, false, false),
    ];
    for (end, resumes, resumed) in cases {
        let mut m = running("a");
        m.rules.resumes = resumes;
        let out = m.decide(10, Input::AgentExited { issue: "a".into(), attempt: 1, end: end.clone(), usage: None });
        let want = resumed.then(|| CarryOn { resume: Some("s-1".into()), ..CarryOn::default() });
        assert_eq!(carried_on(&out), Some(want), "{end:?} (resumes: {resumes})");
    }
}

/// `--max-issue-cost`: a failed attempt whose issue has spent its budget is not retried; the issue goes
/// back labelled, saying what was spent.
#[test]
fn an_issue_whose_budget_is_spent_is_given_back_not_retried() {
    let mut m = running("a");
    m.rules.retries = 5;
    m.rules.max_issue_cost = Some(1_000_000);
    let out = m.decide(10, exited_costing("a", 1, 1, 600_000));
    assert!(acts(&out).iter().any(|a| matches!(a, Action::ResetWorktree { .. })), "a retry: {out:?}");
    m.decide(11, Input::WorktreeReset { issue: "a".into(), result: Ok(()) });
    m.decide(12, Input::TimerFired(Timer::Retry("a".into())));
    m.decide(13, Input::Spawned { issue: "a".into(), attempt: 2, result: Ok(Started { pid: 8, start_time: None }) });
    let out = m.decide(14, exited_costing("a", 2, 1, 600_000));
    let gave_back = acts(&out).into_iter().find(|a| matches!(a, Action::GiveBack { .. }));
    assert!(gave_back.is_some(), "{out:?}");
    let release = m.held["a"].release.as_ref().expect("being given back");
    assert!(release.detail.ends_with("its budget is spent: $1.20 of $1.00"), "{}", release.detail);
    assert_eq!(release.give_back, GiveBack::Labelled(FAILED_LABEL));
}

/// `--max-cost`: once the run's agents reported spending it, the run stops claiming (and drains).
#[test]
fn a_run_whose_budget_is_spent_stops_claiming() {
    let mut m = all_running(&["a", "b"]);
    m.rules.max_cost = Some(1_000_000);
    let out = m.decide(10, exited_costing("a", 1, 0, 700_000));
    assert!(!reports(&out).iter().any(|r| matches!(r, RunEvent::BudgetSpent { .. })));
    assert_eq!(m.stop, StopLevel::None);
    let out = m.decide(11, exited_costing("b", 1, 0, 400_000));
    assert!(reports(&out).contains(&RunEvent::BudgetSpent { spent: 1_100_000, limit: 1_000_000 }), "{out:?}");
    assert_eq!((m.stop, m.outcome.budget_spent.as_deref()), (StopLevel::Drain, Some("$1.10 of $1.00")));
}

/// A budget cannot count what an agent does not report (codex reports tokens, not cost): the run says so,
/// once, naming the first such issue; without a budget it says nothing.
#[test]
fn an_agent_that_reports_no_cost_under_a_budget_is_said_once() {
    let unreported =
        |out: &[Action]| reports(out).into_iter().filter(|r| matches!(r, RunEvent::CostUnreported { .. })).count();
    let mut m = all_running(&["a", "b"]);
    assert_eq!(unreported(&m.decide(10, exited("a", 0))), 0, "no budget, nothing to say");
    let mut m2 = all_running(&["a", "b"]);
    m2.rules.max_issue_cost = Some(1_000_000);
    let out = m2.decide(10, exited("a", 0));
    assert!(reports(&out).contains(&RunEvent::CostUnreported { issue: "a".into() }), "{out:?}");
    assert_eq!(
        unreported(
            &m2.decide(11, Input::AgentExited { issue: "b".into(), attempt: 1, end: AgentEnd::default(), usage: None })
        ),
        0
    );
    assert_eq!(m2.outcome.cost_unreported.as_deref(), Some("a"));
    m.rules.max_cost = Some(1);
    assert_eq!(unreported(&m.decide(12, exited_costing("b", 1, 0, 5))), 0, "a reported cost is counted");
}

/// Found by a test of the agent's words: `bdp stop --now` during a 60 s backoff ended the run only when the
/// retry fell due. A retry is a new attempt, which a stop does not start: the issue goes back at once.
#[test]
fn a_stop_gives_an_issue_waiting_to_retry_back_at_once() {
    for level in [StopLevel::Drain, StopLevel::Now] {
        let mut m = running("a");
        m.decide(10, exited("a", 1));
        m.decide(11, Input::WorktreeReset { issue: "a".into(), result: Ok(()) });
        let out = m.decide(12, Input::StopAsked(level));
        assert!(acts(&out).iter().any(|a| matches!(a, Action::GiveBack { issue, .. } if issue == "a")), "{out:?}");
        let out = m.decide(60_000, Input::TimerFired(Timer::Retry("a".into())));
        assert!(acts(&out).is_empty(), "{out:?}");
    }
    // A stop that comes while the worktree is reset for the retry: given back once the reset is done.
    let mut m = running("a");
    m.decide(10, exited("a", 1));
    m.decide(11, Input::StopAsked(StopLevel::Drain));
    let out = m.decide(12, Input::WorktreeReset { issue: "a".into(), result: Ok(()) });
    assert!(acts(&out).iter().any(|a| matches!(a, Action::GiveBack { .. })), "{out:?}");
    assert!(!acts(&out).iter().any(|a| matches!(a, Action::SetTimer { .. })), "{out:?}");
}

#[test]
fn nothing_ready_looks_at_the_tracker_once_more_then_ends_the_run() {
    let mut m = model(&[]);
    let out = m.decide(0, step());
    assert_eq!(acts(&out), vec![Action::ReadTracker]);
    assert!(!m.finished);
    m.decide(10, Input::TrackerRead { result: Ok(vec![]), at: jiff::Timestamp::UNIX_EPOCH });
    assert!(m.finished);
    assert_eq!(m.outcome.nothing_ready.as_deref(), Some("nothing to do: no issues"));
}

#[test]
fn the_machine_being_busy_holds_claims_once_something_runs() {
    let mut m = running("a");
    m.issues.push(issue("b", &[]));
    m.dirty = true;
    let out = m.decide(10, Input::Step { machine_busy: Some("load 9".into()) });
    assert!(acts(&out).is_empty());
    assert_eq!(reports(&out), vec![RunEvent::MachineBusy { why: "load 9".into() }]);
    // Said once.
    let out = m.decide(20, Input::Step { machine_busy: Some("load 9".into()) });
    assert!(reports(&out).is_empty());
}

#[test]
fn phase_labels_go_out_once_per_issue_when_the_dispatcher_waits() {
    let mut m = running("a");
    m.issue_mut("a").unwrap().labels = vec!["phase:claimed".into()];
    let out = m.decide(10, Input::Idle);
    assert_eq!(
        acts(&out),
        vec![Action::ChangeLabels { ids: vec!["a".into()], change: change(&["phase:running"], &["phase:claimed"]) }]
    );
    let out = m.decide(20, Input::Idle);
    assert!(acts(&out).is_empty());
}

#[test]
fn a_label_waits_while_the_branch_is_looked_at_and_goes_out_once_where_it_lands() {
    let mut m = running("a");
    m.issue_mut("a").unwrap().labels = vec!["phase:running".into()];
    m.phase_due.clear();
    m.decide(10, exited("a", 0));
    assert!(acts(&m.decide(10, Input::Idle)).is_empty(), "no label while its branch is looked at");
    let facts = BranchFacts { ahead: 0, dirty: false, head: "h".into() };
    // Nothing to merge: it is closed at the end of the step. Its label waits for the close's answer too.
    m.decide(20, Input::BranchLooked { issue: "a".into(), result: Ok(facts) });
    let out = m.decide(20, step());
    assert!(acts(&out).iter().any(|a| matches!(a, Action::Close { .. })), "{out:?}");
    assert!(acts(&m.decide(20, Input::Idle)).is_empty(), "no label while the close is out");
    m.decide(30, Input::ClosesDone { results: vec![("a".into(), Ok(()))] });
    let out = m.decide(30, Input::Idle);
    assert_eq!(
        acts(&out),
        vec![Action::ChangeLabels { ids: vec!["a".into()], change: change(&["phase:closed"], &["phase:running"]) }]
    );
}

#[test]
fn claims_out_at_the_tracker_take_their_slots_and_are_not_sent_twice() {
    let mut m = model(&["a", "b", "c"]);
    let out = m.decide(0, step());
    let Some(Action::Claim { ids, .. }) = acts(&out).into_iter().next() else { panic!("{out:?}") };
    assert_eq!(ids, vec!["a".to_string(), "b".to_string()]);
    // The tracker has not answered: another step claims nothing (both slots are taken by the claims out).
    assert_eq!(acts(&m.decide(10, step())), vec![]);
    assert!(!m.finished);
    // a is refused: its slot goes to c, never to a or b again.
    let out = m.decide(20, Input::Claimed { results: vec![("a".into(), Err(WriteError::Refused("taken".into())))] });
    assert_eq!(acts(&out), vec![]);
    let out = m.decide(30, step());
    let claims: Vec<_> = acts(&out).into_iter().filter(|a| matches!(a, Action::Claim { .. })).collect();
    let [Action::Claim { ids, .. }] = &claims[..] else { panic!("{out:?}") };
    assert_eq!(ids, &vec!["c".to_string()]);
}

#[test]
fn a_stop_while_a_claim_is_out_gives_the_issue_back_when_it_is_granted() {
    let mut m = model(&["a"]);
    m.decide(0, step());
    m.decide(5, Input::StopAsked(StopLevel::Drain));
    let out = m.decide(10, Input::Claimed { results: vec![("a".into(), Ok(()))] });
    assert!(events(&out).contains(&"issue_claimed"), "{out:?}");
    assert!(acts(&out).iter().any(|a| matches!(a, Action::GiveBack { issue, .. } if issue == "a")), "{out:?}");
    assert!(!acts(&out).iter().any(|a| matches!(a, Action::MakeWorktree { .. } | Action::Spawn { .. })));
}

#[test]
fn a_read_out_at_the_tracker_is_not_sent_again_and_keeps_the_newer_phase_labels() {
    let mut m = running("a");
    m.rules.refresh_after = 0;
    m.decide(0, Input::Idle);
    // The agent's running label went out (taken as made); a read is due.
    assert!(m.issue("a").unwrap().labels.contains(&"phase:running".to_string()));
    let out = m.decide(10, step());
    assert_eq!(acts(&out).iter().filter(|a| matches!(a, Action::ReadTracker)).count(), 1, "{out:?}");
    assert!(m.reading);
    let out = m.decide(20, step());
    assert!(!acts(&out).iter().any(|a| matches!(a, Action::ReadTracker)), "{out:?}");
    // The read was made before the label write: its labels of a are older than bdp's.
    let mut old = issue("a", &["phase:claimed", "other"]);
    old.status = "in_progress".into();
    m.decide(30, Input::TrackerRead { result: Ok(vec![old]), at: jiff::Timestamp::UNIX_EPOCH });
    assert!(!m.reading);
    let labels = &m.issue("a").unwrap().labels;
    assert!(labels.contains(&"phase:running".to_string()) && labels.contains(&"other".to_string()), "{labels:?}");
    assert!(!labels.contains(&"phase:claimed".to_string()), "{labels:?}");
}

#[test]
fn a_failed_label_write_is_undone_in_the_model_so_the_next_change_removes_both() {
    let mut m = running("a");
    let out = m.decide(0, Input::Idle);
    let Some(Action::ChangeLabels { ids, change: sent }) = acts(&out).into_iter().next() else { panic!("{out:?}") };
    assert_eq!(sent, change(&["phase:running"], &["phase:claimed"]));
    m.decide(5, Input::LabelsDone { results: vec![(ids[0].clone(), sent, Err("br timed out".into()))] });
    m.decide(10, exited("a", 1));
    let out = m.decide(10, Input::Idle);
    let Some(Action::ChangeLabels { change: next, .. }) = acts(&out).into_iter().next() else { panic!("{out:?}") };
    assert_eq!(next.add, vec!["phase:exited".to_string()]);
    let mut removed = next.remove.clone();
    removed.sort();
    assert_eq!(removed, vec!["phase:claimed".to_string(), "phase:running".to_string()]);
}

/// The log of one session (pid 42) with `events`, folded.
fn state_of(events: Vec<Event>) -> State {
    let mut all = vec![Event::SessionStarted {
        pid: 42,
        start_time: None,
        host: "h".into(),
        version: "0".into(),
        config: serde_json::Value::Null,
        recovers: None,
    }];
    all.extend(events);
    let records: Vec<crate::event::Record> = all
        .into_iter()
        .enumerate()
        .map(|(i, event)| crate::event::Record {
            seq: i as u64 + 1,
            v: crate::event::FORMAT_VERSION,
            ts: "2026-12-01T00:00:00.000Z".into(),
            session: "s1".into(),
            event,
        })
        .collect();
    State::fold(&records).unwrap()
}

/// How the issue ended, from the `Ended` report among `actions`.
fn ending(actions: &[Action]) -> Option<(Ending, Option<&'static str>)> {
    actions.iter().find_map(|a| match a {
        Action::Report(RunEvent::Ended { ending, label, .. }) => Some((*ending, *label)),
        _ => None,
    })
}

#[test]
fn the_backoff_doubles_with_each_failure_up_to_a_cap() {
    let r = rules();
    let waits: Vec<Ms> = [0, 1, 2, 3, 11, 30].iter().map(|&n| r.backoff(n)).collect();
    assert_eq!(waits, vec![1_000, 1_000, 2_000, 4_000, 1_024_000, 1_024_000]);
}

#[test]
fn the_issue_limit_ends_the_run_once_reached() {
    let mut m = model(&["a", "b"]);
    m.rules.max_issues = Some(1);
    let out = m.decide(0, step());
    assert_eq!(acts(&out).into_iter().filter(|a| matches!(a, Action::Claim { .. })).count(), 1);
    m.decide(0, Input::Claimed { results: vec![("a".into(), Ok(()))] });
    // Its worktree cannot be made: it is given back, and the limit is reached.
    let out = m.decide(1, Input::WorktreeReady { issue: "a".into(), result: Err("no space".into()) });
    assert!(acts(&out).iter().any(|a| matches!(a, Action::GiveBack { .. })), "{out:?}");
    let out = m.decide(2, Input::GaveBack { issue: "a".into(), result: Ok(()) });
    assert_eq!(ending(&out), Some((Ending::Failed, None)));
    let out = m.decide(3, step());
    assert!(m.finished, "{out:?}");
    assert_eq!(acts(&out), vec![], "no read, no claim of b");
}

#[test]
fn the_tracker_is_read_again_only_once_the_last_read_is_older_than_refresh_after() {
    // At exactly refresh_after, the last read still serves: nothing to pick, so one last look is taken.
    let mut m = model(&[]);
    let out = m.decide(5_000, step());
    assert_eq!(acts(&out), vec![Action::ReadTracker]);
    assert!(m.looked_again);
    // Past it, the read is stale: read before picking (not the last look yet).
    let mut m = model(&[]);
    let out = m.decide(5_001, step());
    assert_eq!(acts(&out), vec![Action::ReadTracker]);
    assert!(!m.looked_again);
}

#[test]
fn a_taken_over_claim_keeps_its_own_lock_and_breaks_a_dead_holders() {
    for (holder, broken) in [(42, false), (7, true)] {
        let state = state_of(vec![
            Event::IssueClaimed { issue: "a".into(), actor: "bdp".into() },
            Event::LockAcquired { lock: issue_lock("a"), holder_pid: holder, issue: Some("a".into()) },
        ]);
        let mut m = Model::new(rules(), state, vec![issue("a", &[])], jiff::Timestamp::UNIX_EPOCH);
        let out = m.decide(0, Input::TakeOver { issue: "a".into() });
        assert_eq!(events(&out).contains(&"lock_broken"), broken, "holder {holder}: {out:?}");
        assert_eq!(acts(&out).contains(&Action::WriteLockFile { issue: "a".into() }), broken, "{out:?}");
        assert_eq!(events(&out).contains(&"lock_acquired"), broken, "{out:?}");
        assert!(m.held.contains_key("a"));
    }
}

#[test]
fn a_branch_that_cannot_be_looked_at_fails_the_attempt_with_the_reason() {
    let mut m = running("a");
    m.decide(10, exited("a", 0));
    let out = m.decide(20, Input::BranchLooked { issue: "a".into(), result: Err("bad object".into()) });
    let retry = reports(&out).into_iter().find(|r| matches!(r, RunEvent::Retry { .. }));
    let Some(RunEvent::Retry { why, attempt, of, backoff, .. }) = retry else { panic!("{out:?}") };
    assert_eq!(why, "cannot look at its branch: bad object");
    assert_eq!((attempt, of, backoff), (2, 2, 1_000));
}

#[test]
fn without_worktrees_a_retry_waits_its_backoff_from_now() {
    let mut m = model(&["a"]);
    m.rules.isolation = Isolation::None;
    m.decide(0, step());
    let out = m.decide(0, Input::Claimed { results: vec![("a".into(), Ok(()))] });
    assert!(acts(&out).contains(&Action::Spawn { items: vec![("a".into(), 1)] }), "{out:?}");
    m.decide(0, Input::Spawned { issue: "a".into(), attempt: 1, result: Ok(Started { pid: 7, start_time: None }) });
    let out = m.decide(300, exited("a", 1));
    assert!(acts(&out).contains(&Action::SetTimer { at: 1_300, timer: Timer::Retry("a".into()) }), "{out:?}");
    // A resumed claim with no worktrees starts its attempt at once.
    let mut m = model(&["b"]);
    m.rules.isolation = Isolation::None;
    m.decide(0, Input::TakeOver { issue: "b".into() });
    let out = m.decide(0, Input::Resume { issue: "b".into(), resume: Resume::Worktree });
    assert_eq!(acts(&out), vec![Action::Spawn { items: vec![("b".into(), 1)] }]);
}

#[test]
fn a_stop_before_the_agent_starts_releases_the_issue_and_a_failure_fails_it() {
    let mut m = model(&["a"]);
    m.decide(0, step());
    m.decide(0, Input::Claimed { results: vec![("a".into(), Ok(()))] });
    m.decide(1, Input::StopAsked(StopLevel::Drain));
    let ok = Ok(("/wt/a".to_string(), "bdp/a".to_string()));
    m.decide(2, Input::WorktreeReady { issue: "a".into(), result: ok });
    m.decide(3, Input::GaveBack { issue: "a".into(), result: Ok(()) });
    let out = m.decide(4, Input::Removed { issue: "a".into(), worktree: Ok(()), branch: Ok(()) });
    assert_eq!(ending(&out), Some((Ending::Released, None)));
    assert!(!m.skip.contains("a"), "released, not failed: a later run may take it");
}

#[test]
fn with_keep_worktrees_a_release_leaves_the_worktree() {
    let mut m = running("a");
    m.rules.keep_worktrees = true;
    m.rules.retries = 0;
    m.decide(10, exited("a", 1));
    let out = m.decide(20, Input::GaveBack { issue: "a".into(), result: Ok(()) });
    assert!(!acts(&out).iter().any(|a| matches!(a, Action::RemoveWorktree { .. })), "{out:?}");
    assert_eq!(ending(&out), Some((Ending::Failed, Some(FAILED_LABEL))));
    assert!(m.skip.contains("a"));
}

#[test]
fn a_failing_tracker_sets_one_timer_and_reads_again_when_it_fires() {
    let mut m = running("a");
    let timers = |out: &[Action]| out.iter().filter(|a| matches!(a, Action::SetTimer { .. })).count();
    let out = m.decide(0, Input::TrackerFailed { what: "reading the tracker".into(), error: "bad line".into() });
    assert_eq!(timers(&out), 1);
    let at = m.tracker_timer_at.unwrap();
    assert!(at > 0);
    // Failing again before the timer fires sets no second one.
    let out = m.decide(10, Input::TrackerFailed { what: "closing b".into(), error: "bad line".into() });
    assert_eq!(timers(&out), 0, "{out:?}");
    let out = m.decide(at, Input::TimerFired(Timer::Tracker));
    assert_eq!(acts(&out), vec![Action::ReadTracker]);
    assert_eq!(m.tracker_timer_at, None);
    // The read fails too: the next timer is later.
    let out = m.decide(at + 5, Input::TrackerRead { result: Err("bad line".into()), at: jiff::Timestamp::UNIX_EPOCH });
    assert_eq!(timers(&out), 1, "{out:?}");
    assert!(m.tracker_timer_at.unwrap() > at + 5);
}

#[test]
fn a_claim_given_up_by_recovery_ends_as_its_release_says() {
    for (release, skipped) in
        [(ReleaseReason::Failed, true), (ReleaseReason::Timeout, true), (ReleaseReason::Abandoned, false)]
    {
        let state = state_of(vec![Event::IssueClaimed { issue: "a".into(), actor: "bdp".into() }]);
        let mut m = Model::new(rules(), state, vec![issue("a", &[])], jiff::Timestamp::UNIX_EPOCH);
        let resume = Resume::Drop { reason: "the tracker gives it to alice".into(), release };
        let out = m.decide(0, Input::Resume { issue: "a".into(), resume });
        assert!(events(&out).contains(&"issue_released"), "{out:?}");
        assert_eq!(ending(&out).map(|e| e.0), Some(Ending::Released), "shown as released: {out:?}");
        assert_eq!(m.skip.contains("a"), skipped, "{release:?}");
    }
}

#[test]
fn what_a_decision_observes_goes_out_in_one_append() {
    let mut m = running("a");
    let out = m.decide(10, exited("a", 1));
    // The exit and the phase it puts the issue in, side by side: one append.
    let Some(Action::Append { events: first, durable: false }) = out.first() else { panic!("{out:?}") };
    let kinds: Vec<&str> = first.iter().map(Event::kind).collect();
    assert_eq!(kinds, ["agent_exited", "phase_changed"]);
}

#[test]
fn a_passed_check_goes_to_the_merge_unless_a_stop_now_came() {
    for (stop, merged) in [(None, true), (Some(StopLevel::Now), false)] {
        let mut m = running("a");
        m.rules.check = Some("make check".into());
        m.decide(10, exited("a", 0));
        let facts = BranchFacts { ahead: 1, dirty: false, head: "h".into() };
        let out = m.decide(20, Input::BranchLooked { issue: "a".into(), result: Ok(facts) });
        assert!(acts(&out).iter().any(|a| matches!(a, Action::RunCheck { .. })), "{out:?}");
        if let Some(level) = stop {
            m.decide(25, Input::StopAsked(level));
        }
        let out = m.decide(
            30,
            Input::CheckDone { issue: "a".into(), attempt: 1, passed: true, code: Some(0), duration_ms: 9 },
        );
        assert_eq!(events(&out).contains(&"merge_started"), merged, "{out:?}");
        assert_eq!(acts(&out).iter().any(|a| matches!(a, Action::GiveBack { .. })), !merged, "{out:?}");
    }
}

#[test]
fn an_outage_waits_for_the_tracker_instead_of_ending_the_run() {
    let mut m = model(&["a"]);
    m.decide(0, Input::TrackerFailed { what: "reading the tracker".into(), error: "bad line".into() });
    let out = m.decide(10, step());
    assert!(!m.finished, "{out:?}");
    assert_eq!(acts(&out), vec![]);
}

#[test]
fn a_refused_issue_is_not_claimed_again_in_this_run() {
    let mut m = model(&["a", "b"]);
    m.rules.agents = 1;
    m.decide(0, step());
    m.decide(0, Input::Claimed { results: vec![("a".into(), Err(WriteError::Refused("taken".into())))] });
    // A new read puts it back in the queue (still open, as the tracker said): it is skipped, b is claimed.
    m.decide(
        10,
        Input::TrackerRead { result: Ok(vec![issue("a", &[]), issue("b", &[])]), at: jiff::Timestamp::UNIX_EPOCH },
    );
    let out = m.decide(10, step());
    let claims: Vec<_> = acts(&out).into_iter().filter(|a| matches!(a, Action::Claim { .. })).collect();
    let [Action::Claim { ids, .. }] = &claims[..] else { panic!("{out:?}") };
    assert_eq!(ids, &vec!["b".to_string()]);
}

#[test]
fn a_branch_whose_head_cannot_be_read_for_merge_none_fails_the_attempt_with_the_reason() {
    let state = state_of(vec![Event::IssueClaimed { issue: "a".into(), actor: "bdp".into() }]);
    let mut m = Model::new(rules(), state, vec![issue("a", &[])], jiff::Timestamp::UNIX_EPOCH);
    m.rules.merge = MergeStrategy::None;
    m.decide(0, Input::TakeOver { issue: "a".into() });
    let out = m.decide(0, Input::Resume { issue: "a".into(), resume: Resume::Merge });
    assert_eq!(acts(&out), vec![Action::LookAtBranch { issue: "a".into() }]);
    let out = m.decide(5, Input::BranchLooked { issue: "a".into(), result: Err("bad object".into()) });
    let why = reports(&out).into_iter().find_map(|r| match r {
        RunEvent::Retry { why, .. } => Some(why),
        RunEvent::Ended { detail, .. } => Some(detail),
        _ => None,
    });
    assert!(why.as_deref().is_some_and(|w| w.contains("cannot read its branch: bad object")), "{out:?}");
}

#[test]
fn a_failing_tracker_is_said_once_per_cause_whichever_call_met_it() {
    let mut m = running("a");
    let still =
        |out: &[Action]| reports(out).into_iter().filter(|r| matches!(r, RunEvent::TrackerStillDown { .. })).count();
    let out = m.decide(0, Input::TrackerFailed { what: "reading the tracker".into(), error: "line 3: bad".into() });
    assert!(reports(&out).iter().any(|r| matches!(r, RunEvent::TrackerDown { .. })), "{out:?}");
    let out = m.decide(5, Input::TrackerFailed { what: "closing b".into(), error: "line 3: bad".into() });
    assert_eq!(still(&out), 0, "the same cause: {out:?}");
    let out = m.decide(9, Input::TrackerFailed { what: "closing b".into(), error: "br timed out".into() });
    assert_eq!(still(&out), 1, "a new cause: {out:?}");
}

#[test]
fn nothing_is_claimed_while_the_tracker_is_down() {
    let mut m = model(&["a", "b"]);
    m.decide(0, Input::TrackerFailed { what: "reading the tracker".into(), error: "bad line".into() });
    assert!(m.tracker_down());
    let out = m.decide(10, step());
    assert!(!acts(&out).iter().any(|a| matches!(a, Action::Claim { .. })), "{out:?}");
    m.decide(
        2_000,
        Input::TrackerRead { result: Ok(vec![issue("a", &[]), issue("b", &[])]), at: jiff::Timestamp::UNIX_EPOCH },
    );
    assert!(!m.tracker_down());
    let out = m.decide(2_000, step());
    assert!(acts(&out).iter().any(|a| matches!(a, Action::Claim { .. })), "{out:?}");
}

#[test]
fn no_label_goes_out_while_the_branch_is_being_merged() {
    let mut m = running("a");
    m.decide(10, exited("a", 0));
    let facts = BranchFacts { ahead: 1, dirty: false, head: "h".into() };
    let out = m.decide(20, Input::BranchLooked { issue: "a".into(), result: Ok(facts) });
    assert!(events(&out).contains(&"merge_started"), "{out:?}");
    assert_eq!(m.merging.as_deref(), Some("a"));
    assert!(acts(&m.decide(20, Input::Idle)).is_empty(), "no label while a is merged");
}

#[test]
fn the_issues_the_run_waits_for_are_those_with_a_task_out() {
    let mut m = running("a");
    assert_eq!(m.busy().cloned().collect::<Vec<_>>(), vec!["a".to_string()]);
    m.decide(10, exited("a", 1));
    // Backing off before a retry (its worktree being reset): no task of its own runs.
    m.decide(20, Input::WorktreeReset { issue: "a".into(), result: Ok(()) });
    assert_eq!(m.held["a"].stage, Stage::BackingOff);
    assert_eq!(m.busy().count(), 0);
    let busy = [Stage::MakingWorktree, Stage::Spawning, Stage::Running, Stage::Checking, Stage::Merging];
    let idle = [Stage::Claimed, Stage::BackingOff, Stage::Resetting, Stage::MergeQueued, Stage::Closing];
    assert!(busy.iter().all(|s| s.busy()) && idle.iter().all(|s| !s.busy()));
}

#[test]
fn tracker_calls_are_told_from_the_other_actions() {
    let calls = [
        Action::ReadTracker,
        Action::Claim { ids: vec![], labels: LabelChange::default() },
        Action::Close { ids: vec![], reason: String::new() },
        Action::GiveBack { issue: "a".into(), labels: LabelChange::default() },
        Action::ChangeLabels { ids: vec![], change: LabelChange::default() },
    ];
    assert!(calls.iter().all(Action::is_tracker_call));
    let others = [
        Action::MakeWorktree { issue: "a".into() },
        Action::LookAtBranch { issue: "a".into() },
        Action::StopAll,
        Action::WriteLockFile { issue: "a".into() },
    ];
    assert!(!others.iter().any(Action::is_tracker_call));
}

#[test]
fn a_dropped_claim_keeps_its_branch_when_a_merge_of_it_did_not_land() {
    let merge_started = Event::MergeStarted {
        issue: "a".into(),
        branch: "bdp/a".into(),
        base: "main".into(),
        strategy: MergeStrategy::Merge,
    };
    let attempt = [
        Event::SpawnRequested {
            issue: "a".into(),
            attempt: 1,
            argv: vec![],
            cwd: ".".into(),
            marker: "m".into(),
            stdout: "o".into(),
            stderr: "e".into(),
        },
        Event::AgentSpawned { issue: "a".into(), attempt: 1, pid: 9, pgid: 9, start_time: None },
        Event::AgentExited {
            issue: "a".into(),
            attempt: 1,
            code: Some(0),
            signal: None,
            duration_ms: 1,
            timed_out: false,
            usage: None,
            session: None,
        },
    ];
    let conflicted = Event::MergeConflicted { issue: "a".into(), detail: "conflict".into() };
    for (tail, keep) in [(vec![], false), (vec![merge_started.clone()], true), (vec![merge_started, conflicted], true)]
    {
        let mut events = vec![
            Event::IssueClaimed { issue: "a".into(), actor: "bdp".into() },
            Event::WorktreeCreated {
                issue: "a".into(),
                path: "/wt/a".into(),
                branch: "bdp/a".into(),
                base: "main".into(),
            },
        ];
        events.extend(attempt.clone());
        events.extend(tail);
        let mut m = Model::new(rules(), state_of(events), vec![issue("a", &[])], jiff::Timestamp::UNIX_EPOCH);
        let resume = Resume::Drop { reason: "taken".into(), release: ReleaseReason::Conflict };
        let out = m.decide(0, Input::Resume { issue: "a".into(), resume });
        let remove = acts(&out).into_iter().find(|a| matches!(a, Action::RemoveWorktree { .. }));
        let Some(Action::RemoveWorktree { keep_branch, .. }) = remove else { panic!("{out:?}") };
        assert_eq!(keep_branch, keep, "{out:?}");
        let out = m.decide(1, Input::Removed { issue: "a".into(), worktree: Ok(()), branch: Ok(()) });
        assert_eq!(ending(&out).map(|e| e.0), Some(Ending::Released), "{out:?}");
        assert!(m.skip.contains("a"), "a conflict waits for a person");
    }
}

/// The merge queue takes finished branches oldest claim first, whatever order they finished in, so none
/// starves (a branch back from resolving a conflict goes before newer ones).
#[test]
fn the_merge_queue_takes_the_oldest_claim_first() {
    let mut m = all_running(&["a", "b", "c", "d"]);
    for (id, since) in [("a", 40), ("b", 10), ("c", 30), ("d", 20)] {
        m.held.get_mut(id).unwrap().since = since;
    }
    m.merging = Some("a".into());
    let mut out = Out::default();
    for id in ["c", "b", "d"] {
        m.merge(id, &mut out);
    }
    assert_eq!(m.merge_queue, ["b", "d", "c"]);
    let out =
        m.decide(50, Input::MergeDone { issue: "a".into(), outcome: Ok(MergeOutcome::Merged { commit: "c1".into() }) });
    let next = acts(&out).into_iter().find_map(|a| match a {
        Action::Merge { issue, .. } => Some(issue),
        _ => None,
    });
    assert_eq!(next.as_deref(), Some("b"));
}

/// A model holding `a` whose agent succeeded with one commit, under a reviewer: the review is asked for.
fn reviewing() -> Model {
    let mut m = running("a");
    m.rules.review = true;
    m.rules.retries = 0;
    m.decide(10, exited("a", 0));
    let facts = BranchFacts { ahead: 1, dirty: false, head: "h".into() };
    let out = m.decide(11, Input::BranchLooked { issue: "a".into(), result: Ok(facts) });
    assert!(acts(&out).contains(&Action::RunReview { issue: "a".into(), attempt: 1, round: 1 }), "{out:?}");
    assert_eq!(m.held["a"].stage, Stage::Reviewing);
    m
}

fn verdict(v: Verdict, comments: &str) -> Input {
    Input::ReviewDone { issue: "a".into(), attempt: 1, result: Ok((v, comments.into())) }
}

/// Approved work goes to the merge; changes requested start one more attempt that goes on from the work
/// with the review (not counted against --retries); a stop in between gives the issue back unlabelled
/// with its branch kept; a reviewer that fails fails the attempt.
#[test]
fn the_review_gate_decides_what_follows_a_verdict() {
    let mut m = reviewing();
    let out = m.decide(12, verdict(Verdict::Approve, ""));
    assert!(acts(&out).iter().any(|a| matches!(a, Action::Merge { .. })), "{out:?}");
    assert_eq!(events(&out), ["review_verdict", "merge_started"]);

    let mut m = reviewing();
    let out = m.decide(12, verdict(Verdict::ChangesRequested, "- name the flag"));
    let carry = CarryOn { keep: true, review: Some("- name the flag".into()), ..CarryOn::default() };
    assert_eq!(carried_on(&out), Some(Some(carry)));
    assert_eq!(m.held["a"].stage, Stage::BackingOff);
    let made = m.held["a"].made;
    m.decide(13, Input::TimerFired(Timer::Retry("a".into())));
    assert_eq!((m.held["a"].attempt, m.held["a"].made), (2, made), "a review round is not a retry");

    let mut m = reviewing();
    m.decide(12, Input::StopAsked(StopLevel::Drain));
    m.decide(13, verdict(Verdict::ChangesRequested, "- name the flag"));
    let release = m.held["a"].release.as_ref().expect("given back");
    assert_eq!(
        (release.reason, release.give_back, release.keep_branch),
        (ReleaseReason::Shutdown, GiveBack::Open, true)
    );

    let mut m = reviewing();
    m.decide(12, Input::ReviewDone { issue: "a".into(), attempt: 1, result: Err("the reviewer exited 4".into()) });
    let release = m.held["a"].release.as_ref().expect("no retries left");
    assert!(release.detail.starts_with("the review failed: the reviewer exited 4"), "{}", release.detail);
}

/// Issues that declare the same path, or paths in one zone, do not run at once: the one held back stays
/// queued (said once) and is claimed when the other no longer runs. In a sequential zone the oldest goes
/// first.
#[test]
fn issues_touching_the_same_files_do_not_run_at_once() {
    use crate::filelock::zones::{Zone, ZoneMode};
    let dated =
        |id: &str, labels: &[&str], created: &str| Issue { created_at: Some(created.into()), ..issue(id, labels) };
    let issues = vec![
        dated("a", &["paths:Cargo.toml"], "2026-01-01T00:00:00Z"),
        dated("b", &["paths:./Cargo.toml"], "2026-01-02T00:00:00Z"),
        dated("c", &[], "2026-01-03T00:00:00Z"),
        dated("m2", &["paths:migrations/0002.sql"], "2026-01-05T00:00:00Z"),
        dated("m1", &["paths:migrations/0001.sql"], "2026-01-04T00:00:00Z"),
    ];
    let zones =
        vec![Zone { path: crate::filelock::LockPath::parse("migrations/**").unwrap(), mode: ZoneMode::Sequential }];
    let mut m = Model::new(Rules { agents: 5, zones, ..rules() }, State::new(), issues, jiff::Timestamp::UNIX_EPOCH);
    let out = m.decide(0, step());
    let claimed = match &acts(&out)[..] {
        [Action::Claim { ids, .. }] => ids.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(claimed, ["a", "c", "m1"]);
    assert_eq!(
        reports(&out),
        vec![
            RunEvent::HeldBack { issue: "b".into(), why: "both touch Cargo.toml with a, which runs".into() },
            RunEvent::HeldBack {
                issue: "m2".into(),
                why: "both touch migrations/** (sequential zone) with m1, which runs".into()
            },
        ]
    );
    // a is refused by the tracker: b no longer collides with anything and is claimed at the next fill.
    let out = m.decide(
        0,
        Input::Claimed {
            results: vec![
                ("a".into(), Err(WriteError::Refused("taken".into()))),
                ("c".into(), Ok(())),
                ("m1".into(), Ok(())),
            ],
        },
    );
    let out2 = m.decide(1, step());
    let all: Vec<Action> = acts(&out).into_iter().chain(acts(&out2)).collect();
    assert!(all.iter().any(|a| matches!(a, Action::Claim { ids, .. } if ids == &["b".to_string()])), "{all:?}");
    assert!(reports(&out2).is_empty(), "a hold already said is not said again: {:?}", reports(&out2));
}

/// Runs `a` (already running) to its close and release, with nothing to merge.
fn close_a(m: &mut Model) {
    m.decide(10, exited("a", 0));
    m.decide(
        20,
        Input::BranchLooked { issue: "a".into(), result: Ok(BranchFacts { ahead: 0, dirty: false, head: "h".into() }) },
    );
    m.decide(20, step());
    m.decide(30, Input::ClosesDone { results: vec![("a".into(), Ok(()))] });
    m.decide(40, Input::Removed { issue: "a".into(), worktree: Ok(()), branch: Ok(()) });
    assert!(!m.held.contains_key("a"));
}

/// The run order is worked out over every issue; a close redoes it only when the closed issue has links.
#[test]
fn a_close_works_the_order_out_again_only_when_it_can_change_it() {
    let mut m = running("a");
    m.issues.push(issue("x", &[]));
    m.dirty = false;
    close_a(&mut m);
    assert!(!m.dirty, "an issue without links closed: the order stands");

    let mut m = running("a");
    let mut c = issue("c", &[]);
    c.dependencies =
        vec![crate::plan::Dependency { depends_on_id: "a".into(), dep_type: "blocks".into(), metadata: None }];
    m.issues.push(c);
    m.dirty = false;
    close_a(&mut m);
    assert!(m.dirty, "c waited for a");
    let out = m.decide(50, step());
    assert!(matches!(acts(&out).first(), Some(Action::Claim { ids, .. }) if ids == &vec!["c".to_string()]), "{out:?}");
}
