//! Tests of the fold: tables of events in, a state or an error out; and properties over generated logs.

use proptest::prelude::*;

use super::*;
use crate::event::{Event, FORMAT_VERSION, MergeStrategy, Phase, ReleaseReason, SessionEndReason};

fn rec(seq: u64, session: &str, event: Event) -> Record {
    Record {
        seq,
        v: FORMAT_VERSION,
        ts: format!("2026-11-25T06:00:{:02}.000Z", seq % 60),
        session: session.into(),
        event,
    }
}

fn records(session: &str, events: Vec<Event>) -> Vec<Record> {
    events.into_iter().enumerate().map(|(i, e)| rec(i as u64 + 1, session, e)).collect()
}

fn started() -> Event {
    Event::SessionStarted {
        pid: 1,
        start_time: None,
        host: "h".into(),
        version: "0".into(),
        config: serde_json::Value::Null,
        recovers: None,
    }
}

fn claimed(issue: &str) -> Event {
    Event::IssueClaimed { issue: issue.into(), actor: "bdp".into() }
}

fn spawn_req(issue: &str, attempt: u32) -> Event {
    Event::SpawnRequested {
        issue: issue.into(),
        attempt,
        argv: vec!["a".into()],
        cwd: ".".into(),
        marker: "m".into(),
        stdout: "o".into(),
        stderr: "e".into(),
    }
}

fn spawned(issue: &str, attempt: u32) -> Event {
    Event::AgentSpawned { issue: issue.into(), attempt, pid: 10 + attempt, pgid: 10 + attempt, start_time: Some(5) }
}

fn exited(issue: &str, attempt: u32, code: i32) -> Event {
    Event::AgentExited {
        issue: issue.into(),
        attempt,
        code: Some(code),
        signal: None,
        duration_ms: 5,
        timed_out: false,
        usage: None,
        session: None,
    }
}

fn released(issue: &str, reason: ReleaseReason) -> Event {
    Event::IssueReleased { issue: issue.into(), reason, detail: None }
}

/// Folds the events and returns the error the last one must cause, checking the state did not change.
fn refused(events: Vec<Event>) -> TransitionError {
    let recs = records("s", events);
    let (last, prefix) = recs.split_last().unwrap();
    let mut state = State::fold(prefix).expect("the prefix is valid");
    let before = state.clone();
    let err = state.apply(last).expect_err("the last event must be refused");
    assert_eq!(state, before, "a refused record must leave the state untouched");
    assert_eq!(err.seq, last.seq);
    err
}

#[test]
fn a_full_issue_lifecycle_leaves_it_released_done_and_counted() {
    let recs = records(
        "s1",
        vec![
            started(),
            claimed("bd-1"),
            Event::WorktreeCreated {
                issue: "bd-1".into(),
                path: "w".into(),
                branch: "bdp/bd-1".into(),
                base: "main".into(),
            },
            spawn_req("bd-1", 1),
            spawned("bd-1", 1),
            exited("bd-1", 1, 0),
            Event::CheckPassed { issue: "bd-1".into(), attempt: 1, command: "true".into(), duration_ms: 1 },
            Event::MergeStarted {
                issue: "bd-1".into(),
                branch: "b".into(),
                base: "main".into(),
                strategy: MergeStrategy::Merge,
            },
            Event::Merged { issue: "bd-1".into(), commit: "abc".into() },
            Event::TrackerIssueClosed { issue: "bd-1".into(), reason: "done".into(), backend: "jsonl".into() },
            Event::PhaseChanged { issue: "bd-1".into(), phase: Phase::Closed },
            Event::WorktreeRemoved { issue: "bd-1".into(), path: "w".into() },
            released("bd-1", ReleaseReason::Done),
            Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
        ],
    );
    let state = State::fold(&recs).unwrap();
    let issue = &state.issues["bd-1"];
    assert!(issue.claim.is_none());
    assert_eq!(issue.attempts, 1);
    assert_eq!(issue.phase, Some(Phase::Closed));
    assert_eq!(issue.merged_commit.as_deref(), Some("abc"));
    assert_eq!(issue.closed_seq, Some(10));
    assert_eq!(issue.last_release, Some(Release { seq: 13, reason: ReleaseReason::Done, unmerged_work: false }));
    let session = &state.sessions[0];
    assert!(matches!(session.end, SessionEnd::Ended { seq: 14, reason: SessionEndReason::Completed, .. }));
    assert_eq!((session.counts.events, session.counts.claims, session.counts.done), (14, 1, 1));
    assert_eq!(state.open_session, None);
}

#[test]
fn releasing_an_issue_never_claimed_is_refused_by_seq() {
    let err = refused(vec![started(), released("bd-9", ReleaseReason::Done)]);
    assert_eq!(err.kind, TransitionErrorKind::NotClaimed { issue: "bd-9".into() });
    assert_eq!(err.to_string(), "seq 2 (issue_released): issue bd-9 is not claimed");
}

#[test]
fn a_second_spawn_of_a_running_attempt_is_refused() {
    let err = refused(vec![started(), claimed("a"), spawn_req("a", 1), spawned("a", 1), spawned("a", 1)]);
    assert_eq!(err.kind, TransitionErrorKind::AlreadySpawned { issue: "a".into(), attempt: 1, at_seq: 4 });
}

#[test]
fn a_new_attempt_while_one_is_open_is_refused() {
    let err = refused(vec![started(), claimed("a"), spawn_req("a", 1), spawned("a", 1), spawn_req("a", 2)]);
    assert_eq!(err.kind, TransitionErrorKind::AttemptStillOpen { issue: "a".into(), attempt: 1 });
}

#[test]
fn releasing_while_an_agent_may_run_is_refused() {
    let err = refused(vec![started(), claimed("a"), spawn_req("a", 1), released("a", ReleaseReason::Shutdown)]);
    assert_eq!(err.kind, TransitionErrorKind::AttemptStillOpen { issue: "a".into(), attempt: 1 });
}

#[test]
fn an_abandoned_spawn_intent_lets_a_retry_go_ahead() {
    let recs = records(
        "s",
        vec![
            started(),
            claimed("a"),
            spawn_req("a", 1),
            Event::AttemptAbandoned { issue: "a".into(), attempt: 1, reason: "never spawned".into() },
            Event::RetryScheduled {
                issue: "a".into(),
                next_attempt: 2,
                backoff_ms: 10,
                reason: "crash".into(),
                carry_on: None,
            },
            spawn_req("a", 2),
            spawned("a", 2),
        ],
    );
    let state = State::fold(&recs).unwrap();
    let claim = state.issues["a"].claim.as_ref().unwrap();
    assert_eq!(claim.attempt.as_ref().unwrap().number, 2);
    assert!(claim.retry.is_none());
}

#[test]
fn attempts_must_count_up_by_one() {
    let err = refused(vec![started(), claimed("a"), spawn_req("a", 2)]);
    assert_eq!(err.kind, TransitionErrorKind::AttemptOutOfOrder { issue: "a".into(), expected: 1, found: 2 });
}

#[test]
fn exit_without_spawn_and_double_exit_are_refused() {
    let err = refused(vec![started(), claimed("a"), spawn_req("a", 1), exited("a", 1, 0)]);
    assert_eq!(err.kind, TransitionErrorKind::NotSpawned { issue: "a".into(), attempt: 1 });
    let err = refused(vec![
        started(),
        claimed("a"),
        spawn_req("a", 1),
        spawned("a", 1),
        exited("a", 1, 0),
        exited("a", 1, 0),
    ]);
    assert_eq!(err.kind, TransitionErrorKind::AttemptAlreadyEnded { issue: "a".into(), attempt: 1, at_seq: 5 });
}

#[test]
fn claiming_twice_and_double_locks_are_refused() {
    let err = refused(vec![started(), claimed("a"), claimed("a")]);
    assert_eq!(err.kind, TransitionErrorKind::AlreadyClaimed { issue: "a".into(), since_seq: 2 });
    let lock = |pid| Event::LockAcquired { lock: "merge".into(), holder_pid: pid, issue: None };
    let err = refused(vec![lock(1), lock(2)]);
    assert_eq!(err.kind, TransitionErrorKind::LockHeld { lock: "merge".into(), holder_pid: 1, since_seq: 1 });
    let err = refused(vec![Event::LockReleased { lock: "x".into() }]);
    assert_eq!(err.kind, TransitionErrorKind::LockNotHeld { lock: "x".into() });
}

#[test]
fn merges_are_finished_once() {
    let start = Event::MergeStarted {
        issue: "a".into(),
        branch: "b".into(),
        base: "m".into(),
        strategy: MergeStrategy::Rebase,
    };
    let merged = Event::Merged { issue: "a".into(), commit: "c1".into() };
    let err = refused(vec![started(), claimed("a"), merged.clone()]);
    assert_eq!(err.kind, TransitionErrorKind::NoMergeInProgress { issue: "a".into() });
    let err = refused(vec![started(), claimed("a"), start.clone(), merged.clone(), merged]);
    assert_eq!(err.kind, TransitionErrorKind::AlreadyMerged { issue: "a".into(), commit: "c1".into() });
}

#[test]
fn seqs_must_be_gapless() {
    let mut state = State::new();
    let err = state.apply(&rec(2, "s", started())).unwrap_err();
    assert_eq!(err.kind, TransitionErrorKind::SeqOutOfOrder { expected: 1, found: 2 });
}

#[test]
fn a_session_starting_over_an_open_one_marks_it_crashed_and_claims_survive() {
    let mut recs = records("s1", vec![started(), claimed("a")]);
    recs.push(rec(3, "s2", started()));
    recs.push(rec(4, "s2", Event::SessionEnded { reason: SessionEndReason::Drained, left_running: vec![] }));
    let state = State::fold(&recs).unwrap();
    assert_eq!(state.sessions[0].end, SessionEnd::Crashed { detected_seq: 3 });
    assert_eq!(state.issues["a"].claim.as_ref().unwrap().session, "s1");
    let err = refused(vec![
        started(),
        Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
        Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
    ]);
    assert_eq!(err.kind, TransitionErrorKind::SessionMismatch { open: None, found: "s".into() });
}

// ---- properties over generated logs ----

/// The events of one issue's whole life; `fail` picks a failing first attempt and a retry.
fn lifecycle(issue: &str, fail: bool) -> Vec<Event> {
    let mut events = vec![claimed(issue), spawn_req(issue, 1), spawned(issue, 1)];
    if fail {
        events.push(exited(issue, 1, 1));
        events.push(Event::RetryScheduled {
            issue: issue.into(),
            next_attempt: 2,
            backoff_ms: 1,
            reason: "exit 1".into(),
            carry_on: None,
        });
        events.extend([spawn_req(issue, 2), spawned(issue, 2), exited(issue, 2, 0)]);
    } else {
        events.push(exited(issue, 1, 0));
    }
    events.extend([
        Event::MergeStarted {
            issue: issue.into(),
            branch: "b".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
        Event::Merged { issue: issue.into(), commit: format!("c-{issue}") },
        Event::TrackerIssueClosed { issue: issue.into(), reason: "r".into(), backend: "jsonl".into() },
        released(issue, ReleaseReason::Done),
    ]);
    events
}

/// A valid log: issues' lifecycles interleaved as `picks` says, with sessions crashing and restarting.
fn generated_log(issues: usize, fails: &[bool], picks: &[u8]) -> Vec<Record> {
    let mut queues: Vec<std::collections::VecDeque<Event>> =
        (0..issues).map(|i| lifecycle(&format!("bd-{i}"), fails[i % fails.len()]).into()).collect();
    let mut session = 1;
    let mut out = vec![rec(1, "s1", started())];
    for &pick in picks {
        let seq = out.len() as u64 + 1;
        if pick == 255 {
            session += 1;
            out.push(rec(seq, &format!("s{session}"), started()));
            continue;
        }
        let live: Vec<usize> = (0..issues).filter(|&i| !queues[i].is_empty()).collect();
        if live.is_empty() {
            break;
        }
        let i = live[pick as usize % live.len()];
        let event = queues[i].pop_front().unwrap();
        out.push(rec(seq, &format!("s{session}"), event));
    }
    out
}

proptest! {
    #[test]
    fn folding_in_one_go_equals_folding_any_split_and_from_a_checkpoint(
        issues in 1usize..6,
        fails in proptest::collection::vec(any::<bool>(), 1..6),
        picks in proptest::collection::vec(any::<u8>(), 0..80),
        split in any::<prop::sample::Index>(),
    ) {
        let log = generated_log(issues, &fails, &picks);
        let whole = State::fold(&log).unwrap();
        let k = split.index(log.len() + 1);
        let (head, tail) = log.split_at(k);
        let mut split_state = State::fold(head).unwrap();
        // A checkpoint is the serialized state: round-trip it before folding the tail.
        let checkpoint: State = serde_json::from_str(&serde_json::to_string(&split_state).unwrap()).unwrap();
        prop_assert_eq!(&checkpoint, &split_state);
        let mut from_checkpoint = checkpoint;
        for r in tail {
            split_state.apply(r).unwrap();
            from_checkpoint.apply(r).unwrap();
        }
        prop_assert_eq!(&split_state, &whole);
        prop_assert_eq!(&from_checkpoint, &whole);
        prop_assert_eq!(State::fold(&log).unwrap(), whole);
    }

    #[test]
    fn arbitrary_event_sequences_never_panic_and_refusals_change_nothing(
        ops in proptest::collection::vec((0u8..12, 0u8..3, 1u32..3), 0..60),
    ) {
        let mut state = State::new();
        for (n, (op, issue, attempt)) in ops.into_iter().enumerate() {
            let issue = format!("i{issue}");
            let event = match op {
                0 => started(),
                1 => Event::SessionEnded { reason: SessionEndReason::Stopped, left_running: vec![] },
                2 => claimed(&issue),
                3 => spawn_req(&issue, attempt),
                4 => spawned(&issue, attempt),
                5 => exited(&issue, attempt, 0),
                6 => released(&issue, ReleaseReason::Failed),
                7 => Event::AttemptAbandoned { issue: issue.clone(), attempt, reason: "x".into() },
                8 => Event::MergeStarted { issue: issue.clone(), branch: "b".into(), base: "m".into(), strategy: MergeStrategy::Merge },
                9 => Event::Merged { issue: issue.clone(), commit: "c".into() },
                10 => Event::LockAcquired { lock: issue.clone(), holder_pid: 1, issue: None },
                _ => Event::LockReleased { lock: issue.clone() },
            };
            let session = format!("s{n}");
            let record = rec(state.last_seq + 1, &session, event);
            let before = state.clone();
            if state.apply(&record).is_err() {
                prop_assert_eq!(&state, &before);
            }
        }
    }
}
