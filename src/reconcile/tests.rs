//! Tables of (log, world) in, findings out.

use super::*;
use crate::event::{Event, FORMAT_VERSION, MergeStrategy, Record};

fn fold(events: Vec<Event>) -> State {
    let mut state = State::new();
    let mut all = vec![Event::SessionStarted {
        pid: 1,
        start_time: Some(7),
        host: "h".into(),
        version: "0".into(),
        config: serde_json::Value::Null,
        recovers: None,
    }];
    all.extend(events);
    for (i, event) in all.into_iter().enumerate() {
        let record = Record {
            seq: i as u64 + 1,
            v: FORMAT_VERSION,
            ts: "2026-11-25T06:00:00.000Z".into(),
            session: "s1".into(),
            event,
        };
        state.apply(&record).unwrap();
    }
    state
}

fn claim(issue: &str) -> Vec<Event> {
    vec![
        Event::IssueClaimed { issue: issue.into(), actor: "bdp".into() },
        Event::LockAcquired { lock: issue_lock(issue), holder_pid: 1, issue: Some(issue.into()) },
        Event::WorktreeCreated {
            issue: issue.into(),
            path: format!("/r/.bdp/worktrees/{issue}"),
            branch: format!("bdp/{issue}"),
            base: "main".into(),
        },
    ]
}

fn requested(issue: &str) -> Event {
    Event::SpawnRequested {
        issue: issue.into(),
        attempt: 1,
        argv: vec!["agent".into()],
        cwd: ".".into(),
        marker: format!("s1/{issue}/1"),
        stdout: "o".into(),
        stderr: "e".into(),
    }
}

fn spawned(issue: &str) -> Event {
    Event::AgentSpawned { issue: issue.into(), attempt: 1, pid: 100, pgid: 100, start_time: Some(42) }
}

fn exited(issue: &str, code: i32) -> Event {
    Event::AgentExited {
        issue: issue.into(),
        attempt: 1,
        code: Some(code),
        signal: None,
        duration_ms: 5,
        timed_out: false,
        usage: None,
        session: None,
    }
}

/// The world where the tracker agrees with the log (`in_progress`, ours) and the lock files and holders
/// are as the log says.
fn world_for(state: &State) -> World {
    let mut world = World { actor: "bdp".into(), ..World::default() };
    for (id, issue) in &state.issues {
        let status = if issue.claim.is_some() { "in_progress" } else { "closed" };
        let assignee = issue.claim.as_ref().map(|_| "bdp".to_string());
        world.tracker.insert(id.clone(), TrackerView { status: status.into(), assignee, labels: vec![] });
    }
    for (name, lock) in &state.locks {
        world.lock_files.push(LockFile {
            name: name.clone(),
            path: format!(".bdp/locks/{name}.lock"),
            holder_pid: Some(lock.holder_pid),
            holder_alive: true,
            flocked: false,
        });
        world.lock_holders.insert(lock.holder_pid, true);
    }
    world
}

fn kinds(findings: &[Finding]) -> Vec<(FindingKind, &'static str)> {
    findings.iter().map(|f| (f.kind, f.repair.name())).collect()
}

#[test]
fn agreement_gives_no_findings() {
    assert!(diff(&State::new(), &World::default()).is_empty());
    let mut events = claim("a");
    events.extend([requested("a"), spawned("a")]);
    let state = fold(events);
    let mut world = world_for(&state);
    world.live_orchestrator = Some(1);
    assert!(diff(&state, &world).is_empty(), "a live run's work is its own business");
}

#[test]
fn a_running_attempt_is_adopted_only_when_pid_and_start_time_match() {
    let mut events = claim("a");
    events.extend([requested("a"), spawned("a")]);
    let state = fold(events);
    let mut world = world_for(&state);
    world.attempts.insert("a".into(), AttemptView { attempt: 1, alive: true, ..AttemptView::default() });
    let found = diff(&state, &world);
    assert_eq!(kinds(&found), vec![(FindingKind::AgentAlive, "adopt")]);
    assert_eq!(found[0].repair, Repair::Adopt { attempt: 1, pid: 100, pgid: 100, start_time: Some(42) });

    // The pid now belongs to another process: a crash, never an adoption.
    world.attempts.insert("a".into(), AttemptView { attempt: 1, pid_reused: Some(99), ..AttemptView::default() });
    let found = diff(&state, &world);
    assert_eq!(kinds(&found), vec![(FindingKind::AgentCrashed, "record_crash")]);
    assert!(found[0].world.contains("another process"), "{}", found[0].world);
    assert_eq!(found[0].repair, Repair::RecordCrash { attempt: 1, pgid: None });

    // Gone, with an exit file: its outcome is applied.
    let exit = ExitView { code: Some(0), signal: None, duration_ms: 9, error: None, pid: Some(100) };
    world.attempts.insert("a".into(), AttemptView { attempt: 1, exit: Some(exit), ..AttemptView::default() });
    let found = diff(&state, &world);
    assert_eq!(kinds(&found), vec![(FindingKind::AgentExitedUnrecorded, "apply_exit")]);

    // Gone, the wrapper too, but its children still run: stop them, then count it a crash.
    world.attempts.insert("a".into(), AttemptView { attempt: 1, group_alive: true, ..AttemptView::default() });
    assert_eq!(diff(&state, &world)[0].repair, Repair::RecordCrash { attempt: 1, pgid: Some(100) });
}

#[test]
fn an_unconfirmed_spawn_is_found_by_its_marker_or_its_exit_file_or_abandoned() {
    let mut events = claim("a");
    events.push(requested("a"));
    let state = fold(events);
    let mut world = world_for(&state);
    assert_eq!(kinds(&diff(&state, &world)), vec![(FindingKind::SpawnUnconfirmedGone, "abandon_attempt")]);

    world.marked.push(MarkedGroup {
        marker: "s1/a/1".into(),
        pgid: 300,
        leader: Some(300),
        leader_start_time: Some(77),
        pids: vec![300, 301],
    });
    let found = diff(&state, &world);
    assert_eq!(found[0].repair, Repair::RecordSpawnAndAdopt { attempt: 1, pid: 300, pgid: 300, start_time: Some(77) });
    assert_eq!(found.len(), 1, "its group belongs to the open attempt: not a stray");

    world.marked.clear();
    let exit = ExitView { code: Some(3), signal: None, duration_ms: 9, error: None, pid: Some(300) };
    world.attempts.insert("a".into(), AttemptView { attempt: 1, exit: Some(exit), ..AttemptView::default() });
    let found = diff(&state, &world);
    assert_eq!(found[0].kind, FindingKind::SpawnUnconfirmedExited);
    assert!(matches!(found[0].repair, Repair::ApplyExit { record_spawn: Some(300), code: Some(3), .. }));
}

#[test]
fn an_unfinished_merge_is_recorded_when_done_and_redone_when_not() {
    let mut events = claim("a");
    events.extend([
        requested("a"),
        spawned("a"),
        exited("a", 0),
        Event::MergeStarted {
            issue: "a".into(),
            branch: "bdp/a".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
    ]);
    let state = fold(events);
    let mut world = world_for(&state);
    world.merges.insert("a".into(), MergeView::Done { commit: "c0ffee".into() });
    assert_eq!(diff(&state, &world)[0].repair, Repair::RecordMerge { commit: "c0ffee".into() });
    world.merges.insert("a".into(), MergeView::NotDone { tip: Some("abc".into()) });
    assert_eq!(kinds(&diff(&state, &world)), vec![(FindingKind::MergeInterrupted, "redo_merge")]);
}

#[test]
fn interrupted_steps_resume_where_the_log_stood() {
    let step = |events: Vec<Event>, tracker_closed: bool| {
        let state = fold(events);
        let mut world = world_for(&state);
        if tracker_closed {
            world.tracker.get_mut("a").unwrap().status = "closed".into();
        }
        let found = diff(&state, &world);
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].repair.clone()
    };
    let mut base = claim("a");
    assert_eq!(step(base.clone(), false), Repair::Resume { step: Step::Spawn });
    base.extend([requested("a"), spawned("a"), exited("a", 0)]);
    assert_eq!(step(base.clone(), false), Repair::Resume { step: Step::AfterExit });
    // The close happened and was not recorded: release, never close again.
    assert_eq!(step(base.clone(), true), Repair::Resume { step: Step::Release });
    base.push(Event::CheckPassed { issue: "a".into(), attempt: 1, command: "true".into(), duration_ms: 1 });
    assert_eq!(step(base.clone(), false), Repair::Resume { step: Step::Merge });
    base.extend([
        Event::MergeStarted {
            issue: "a".into(),
            branch: "bdp/a".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
        Event::Merged { issue: "a".into(), commit: "c1".into() },
    ]);
    assert_eq!(step(base.clone(), false), Repair::Resume { step: Step::Close });
    base.push(Event::TrackerIssueClosed { issue: "a".into(), reason: "r".into(), backend: "jsonl".into() });
    assert_eq!(step(base, true), Repair::Resume { step: Step::Release });

    let mut failed = claim("a");
    failed.extend([requested("a"), spawned("a"), exited("a", 1)]);
    assert_eq!(step(failed.clone(), false), Repair::Resume { step: Step::AfterExit });
    failed.push(Event::RetryScheduled {
        issue: "a".into(),
        next_attempt: 2,
        backoff_ms: 10,
        reason: "r".into(),
        carry_on: None,
    });
    assert_eq!(step(failed, false), Repair::Resume { step: Step::Spawn });
}

#[test]
fn the_tracker_side_of_a_claim() {
    let state = fold(claim("a"));
    let findings = |edit: &dyn Fn(&mut World)| {
        let mut world = world_for(&state);
        edit(&mut world);
        kinds(&diff(&state, &world))
    };
    assert_eq!(
        findings(&|w| {
            w.tracker.remove("a");
        }),
        vec![(FindingKind::ClaimedIssueMissing, "drop_claim")]
    );
    assert_eq!(
        findings(&|w| w.tracker.get_mut("a").unwrap().assignee = Some("alice".into())),
        vec![(FindingKind::ClaimTaken, "drop_claim")]
    );
    assert_eq!(
        findings(&|w| w.tracker.get_mut("a").unwrap().status = "closed".into()),
        vec![(FindingKind::ClaimClosedElsewhere, "drop_claim")]
    );
    assert_eq!(
        findings(&|w| {
            let t = w.tracker.get_mut("a").unwrap();
            t.status = "open".into();
            t.assignee = None;
        }),
        vec![(FindingKind::ClaimNotInTracker, "reclaim"), (FindingKind::StepInterrupted, "resume")]
    );
    let mut world = world_for(&state);
    let t = world.tracker.get_mut("a").unwrap();
    t.status = "open".into();
    t.assignee = None;
    t.labels.push("bdp:conflict".into());
    let found = diff(&state, &world);
    assert!(matches!(found[0].repair, Repair::DropClaim { release: ReleaseReason::Conflict, .. }), "{found:?}");
}

#[test]
fn tracker_claims_locks_and_strays_without_a_claim() {
    let mut events = claim("a");
    events.extend([
        Event::IssueReleased { issue: "a".into(), reason: ReleaseReason::Failed, detail: None },
        Event::LockReleased { lock: issue_lock("a") },
        Event::LockAcquired { lock: "src/main.rs".into(), holder_pid: 555, issue: Some("a".into()) },
    ]);
    let state = fold(events);
    let mut world = world_for(&state);
    world.tracker.insert("a".into(), TrackerView { status: "open".into(), assignee: None, labels: vec![] });
    world
        .tracker
        .insert("b".into(), TrackerView { status: "in_progress".into(), assignee: Some("bdp".into()), labels: vec![] });
    world.tracker.insert(
        "c".into(),
        TrackerView { status: "in_progress".into(), assignee: Some("alice".into()), labels: vec![] },
    );
    world.lock_files.push(LockFile {
        name: "issue:z".into(),
        path: ".bdp/locks/issue%3Az.lock".into(),
        holder_pid: Some(9),
        holder_alive: false,
        flocked: false,
    });
    world.lock_files.push(LockFile {
        name: "held-by-someone".into(),
        path: ".bdp/locks/held-by-someone.lock".into(),
        holder_pid: None,
        holder_alive: false,
        flocked: true,
    });
    world.marked.push(MarkedGroup {
        marker: "s0/x/1".into(),
        pgid: 700,
        leader: Some(700),
        leader_start_time: None,
        pids: vec![700],
    });
    world.worktrees.push(WorktreeView {
        path: "/r/.bdp/worktrees/a".into(),
        branch: Some("bdp/a".into()),
        issue: Some("a".into()),
        users: vec![],
    });
    world.branches.push("bdp/a".into());
    let found = diff(&state, &world);
    assert_eq!(
        kinds(&found),
        vec![
            (FindingKind::AgentWithoutClaim, "stop_agent"),
            (FindingKind::WorktreeWithoutClaim, "remove_worktree"),
            (FindingKind::BranchWithoutClaim, "delete_branch"),
            (FindingKind::LockOfFinishedIssue, "break_lock"),
            (FindingKind::LockFileWithoutLock, "remove_lock_file"),
            (FindingKind::TrackerClaimWithoutLog, "release_in_tracker"),
        ]
    );
    assert!(found.iter().all(|f| f.repair.is_safe()));
}

#[test]
fn what_bdp_kept_on_purpose_is_not_a_finding_and_damage_hides_the_rest() {
    let mut events = claim("a");
    events.push(Event::IssueReleased { issue: "a".into(), reason: ReleaseReason::Conflict, detail: None });
    events.push(Event::LockReleased { lock: issue_lock("a") });
    let state = fold(events);
    let mut world = world_for(&state);
    world.branches.push("bdp/a".into());
    assert!(diff(&state, &world).is_empty());

    world.log_damage = Some("seq 3: chain mismatch".into());
    world.branches.push("bdp/zz".into());
    assert_eq!(kinds(&diff(&state, &world)), vec![(FindingKind::LogDamaged, "manual")]);
}

/// Found by the simulator (examples/sim): a branch whose merge git failed holds work bdp did not land. It is
/// kept, as a conflicted one is, not removed as a stray; a lost claim's branch (no merge started) is a stray.
#[test]
fn a_branch_with_work_that_did_not_land_is_kept() {
    let merge_failed = vec![
        Event::MergeStarted {
            issue: "a".into(),
            branch: "bdp/a".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
        Event::MergeConflicted { issue: "a".into(), detail: "the merge failed: cannot lock ref".into() },
        Event::IssueReleased { issue: "a".into(), reason: ReleaseReason::Failed, detail: None },
    ];
    let lost = vec![
        Event::ClaimLost { issue: "a".into(), holder: None, detail: "closed elsewhere".into() },
        Event::IssueReleased { issue: "a".into(), reason: ReleaseReason::Abandoned, detail: None },
    ];
    let plain_failure = vec![Event::IssueReleased { issue: "a".into(), reason: ReleaseReason::Failed, detail: None }];
    for (end, kept) in [(merge_failed, true), (lost, false), (plain_failure, false)] {
        let mut events = claim("a");
        events.extend(end);
        events.push(Event::LockReleased { lock: issue_lock("a") });
        let state = fold(events);
        let mut world = world_for(&state);
        world.branches.push("bdp/a".into());
        let found = kinds(&diff(&state, &world));
        if kept {
            assert!(found.is_empty(), "{found:?}");
        } else {
            assert_eq!(found, vec![(FindingKind::BranchWithoutClaim, "delete_branch")]);
        }
    }
}

#[test]
fn a_dead_holder_of_a_claimed_issue_lock_is_taken_over() {
    let state = fold(claim("a"));
    let mut world = world_for(&state);
    world.lock_holders.insert(1, false);
    let found = diff(&state, &world);
    assert!(found.iter().any(|f| f.repair == Repair::TakeOverLock { lock: issue_lock("a") }), "{found:?}");
    assert!(found.iter().all(|f| !f.repair.is_safe()));
}

/// One line per finding, everything a person reads of it: the kind, what it is about, what the log and the
/// world say, and the repair.
fn said(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} [{}{}] {} => {} ({})",
                f.kind.name(),
                f.issue.as_deref().unwrap_or("-"),
                f.subject.as_ref().map(|s| format!(" / {s}")).unwrap_or_default(),
                f.detail(),
                f.repair.describe(),
                f.repair.name(),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What every kind of finding says, in every shape the log and the world can give it (`bdp audit` and
/// recovery print these lines; the log stores them).
#[test]
fn what_each_finding_says() {
    let mut text = Vec::new();
    let mut case = |name: &str, state: &State, world: &World| {
        text.push(format!("## {name}\n{}", said(&diff(state, world))));
    };
    let running = {
        let mut events = claim("a");
        events.extend([requested("a"), spawned("a")]);
        fold(events)
    };
    let mut world = world_for(&running);
    world.attempts.insert("a".into(), AttemptView { attempt: 1, alive: true, ..AttemptView::default() });
    case("alive", &running, &world);
    world.attempts.insert("a".into(), AttemptView { attempt: 1, pid_reused: Some(99), ..AttemptView::default() });
    case("pid reused", &running, &world);
    for (code, signal) in [(Some(2), None), (None, Some(9)), (None, None)] {
        let exit = ExitView { code, signal, duration_ms: 9, error: None, pid: Some(100) };
        world.attempts.insert("a".into(), AttemptView { attempt: 1, exit: Some(exit), ..AttemptView::default() });
        case("exit file", &running, &world);
    }
    let unreadable = AttemptView {
        attempt: 1,
        exit_unreadable: Some("bad JSON".into()),
        group_alive: true,
        ..AttemptView::default()
    };
    world.attempts.insert("a".into(), unreadable);
    case("exit file unreadable, group alive", &running, &world);

    let no_start_time = {
        let mut events = claim("a");
        events.extend([
            requested("a"),
            Event::AgentSpawned { issue: "a".into(), attempt: 1, pid: 100, pgid: 100, start_time: None },
        ]);
        fold(events)
    };
    let mut world = world_for(&no_start_time);
    world.attempts.insert("a".into(), AttemptView { attempt: 1, pid_reused: Some(5), ..AttemptView::default() });
    case("pid runs, no start time in the log", &no_start_time, &world);

    let unconfirmed = {
        let mut events = claim("a");
        events.push(requested("a"));
        fold(events)
    };
    let mut world = world_for(&unconfirmed);
    case("unconfirmed, gone", &unconfirmed, &world);
    let group = |leader| MarkedGroup {
        marker: "s1/a/1".into(),
        pgid: 300,
        leader,
        leader_start_time: Some(77),
        pids: vec![300, 301],
    };
    world.marked.push(group(Some(300)));
    case("unconfirmed, alive", &unconfirmed, &world);
    world.marked = vec![group(None)];
    case("unconfirmed, wrapper gone, group left", &unconfirmed, &world);
    world.marked.clear();
    let exit = ExitView { code: Some(3), signal: None, duration_ms: 9, error: None, pid: None };
    world.attempts.insert("a".into(), AttemptView { attempt: 1, exit: Some(exit), ..AttemptView::default() });
    case("unconfirmed, exited", &unconfirmed, &world);

    let merging = {
        let mut events = claim("a");
        events.extend([
            requested("a"),
            spawned("a"),
            exited("a", 0),
            Event::MergeStarted {
                issue: "a".into(),
                branch: "bdp/a".into(),
                base: "main".into(),
                strategy: MergeStrategy::Merge,
            },
        ]);
        fold(events)
    };
    let mut world = world_for(&merging);
    for view in [
        MergeView::Done { commit: "c0ffee0123456789".into() },
        MergeView::NotDone { tip: Some("abc".into()) },
        MergeView::NotDone { tip: None },
    ] {
        world.merges.insert("a".into(), view);
        case("merge", &merging, &world);
    }

    let mut steps = claim("a");
    let state = fold(steps.clone());
    case("worktree ready", &state, &world_for(&state));
    let state = fold(vec![Event::IssueClaimed { issue: "a".into(), actor: "bdp".into() }]);
    case("no worktree", &state, &world_for(&state));
    steps.extend([requested("a"), spawned("a")]);
    for end in [
        exited("a", 4),
        Event::AgentExited {
            issue: "a".into(),
            attempt: 1,
            code: None,
            signal: Some(15),
            duration_ms: 5,
            timed_out: false,
            usage: None,
            session: None,
        },
        Event::AttemptAbandoned { issue: "a".into(), attempt: 1, reason: "no such agent".into() },
    ] {
        let mut events = steps.clone();
        events.push(end);
        let state = fold(events.clone());
        case("ended", &state, &world_for(&state));
        events.push(Event::RetryScheduled {
            issue: "a".into(),
            next_attempt: 2,
            backoff_ms: 10,
            reason: "r".into(),
            carry_on: None,
        });
        let state = fold(events);
        case("retry", &state, &world_for(&state));
    }
    steps.push(exited("a", 0));
    let state = fold(steps.clone());
    let mut world = world_for(&state);
    world.tracker.get_mut("a").unwrap().status = "closed".into();
    case("succeeded, closed in the tracker", &state, &world);
    steps.push(Event::CheckPassed { issue: "a".into(), attempt: 1, command: "true".into(), duration_ms: 1 });
    let state = fold(steps.clone());
    case("checked", &state, &world_for(&state));
    steps.extend([
        Event::MergeStarted {
            issue: "a".into(),
            branch: "bdp/a".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
        Event::Merged { issue: "a".into(), commit: "c1c1c1c1c1c1c1c1".into() },
    ]);
    let state = fold(steps.clone());
    case("merged", &state, &world_for(&state));
    steps.push(Event::TrackerIssueClosed { issue: "a".into(), reason: "r".into(), backend: "jsonl".into() });
    let state = fold(steps);
    case("closed", &state, &world_for(&state));

    let claimed = fold(claim("a"));
    let tracker = |edit: &dyn Fn(&mut TrackerView)| {
        let mut world = world_for(&claimed);
        edit(world.tracker.get_mut("a").unwrap());
        world
    };
    let mut world = world_for(&claimed);
    world.tracker.remove("a");
    case("missing in the tracker", &claimed, &world);
    case("taken", &claimed, &tracker(&|t| t.assignee = Some("alice".into())));
    case(
        "closed elsewhere",
        &claimed,
        &tracker(&|t| {
            t.status = "closed".into();
            t.assignee = Some("alice".into());
        }),
    );
    case(
        "open, unassigned",
        &claimed,
        &tracker(&|t| {
            t.status = "open".into();
            t.assignee = None;
        }),
    );
    case("open, ours", &claimed, &tracker(&|t| t.status = "open".into()));
    for label in ["bdp:failed", "bdp:conflict"] {
        case(
            "given back",
            &claimed,
            &tracker(&|t| {
                t.status = "open".into();
                t.assignee = None;
                t.labels = vec![label.into()];
            }),
        );
    }

    // Strays, locks and the tracker, for issues released, never claimed, or claimed by a session that ended.
    let mut events = claim("a");
    events.extend([
        Event::IssueReleased { issue: "a".into(), reason: ReleaseReason::Failed, detail: None },
        Event::LockReleased { lock: issue_lock("a") },
        Event::LockAcquired { lock: "src/main.rs".into(), holder_pid: 555, issue: Some("a".into()) },
        Event::LockAcquired { lock: "lonely".into(), holder_pid: 556, issue: None },
        Event::SessionEnded { reason: crate::event::SessionEndReason::Completed, left_running: vec![] },
    ]);
    let state = fold(events);
    let mut world = world_for(&state);
    world.lock_holders.insert(556, false);
    world.lock_files.retain(|f| f.name != "lonely");
    world.tracker.insert("a".into(), TrackerView { status: "open".into(), assignee: None, labels: vec![] });
    world
        .tracker
        .insert("b".into(), TrackerView { status: "in_progress".into(), assignee: Some("bdp".into()), labels: vec![] });
    world.lock_files.push(LockFile {
        name: "issue:z".into(),
        path: ".bdp/locks/issue%3Az.lock".into(),
        holder_pid: Some(9),
        holder_alive: false,
        flocked: false,
    });
    world.lock_files.push(LockFile {
        name: "busy".into(),
        path: ".bdp/locks/busy.lock".into(),
        holder_pid: Some(10),
        holder_alive: true,
        flocked: true,
    });
    world.marked.push(MarkedGroup {
        marker: "s0/x/1".into(),
        pgid: 700,
        leader: Some(700),
        leader_start_time: None,
        pids: vec![700, 701],
    });
    for (path, branch, issue, users) in [
        ("/r/.bdp/worktrees/a", Some("bdp/a"), Some("a"), vec![]),
        ("/r/.bdp/worktrees/n", None, Some("n"), vec![41, 42]),
    ] {
        world.worktrees.push(WorktreeView {
            path: path.into(),
            branch: branch.map(str::to_string),
            issue: issue.map(str::to_string),
            users,
        });
    }
    world.branches.extend(["bdp/a".to_string(), "bdp/never".to_string()]);
    world.bad_checkpoints.push((12, "its state hash differs".into()));
    case("strays, locks, tracker", &state, &world);
    let mut claimed_by_ended = claim("c");
    claimed_by_ended
        .push(Event::SessionEnded { reason: crate::event::SessionEndReason::Drained, left_running: vec![] });
    let state = fold(claimed_by_ended);
    let mut world = world_for(&state);
    world.tracker.get_mut("c").unwrap().assignee = Some("bob".into());
    world.lock_holders.insert(1, false);
    case("a claim of an ended session, its lock holder dead", &state, &world);
    world.log_damage = Some("seq 3: chain mismatch".into());
    case("damage", &state, &world);
    insta::assert_snapshot!(text.join("\n\n"));
}

#[test]
fn a_lock_is_the_business_of_its_live_holder() {
    let state = fold(vec![Event::LockAcquired { lock: "src/db".into(), holder_pid: 5, issue: None }]);
    // Held by a process that runs (not an orchestrator): nothing to say.
    let mut world = world_for(&state);
    assert!(diff(&state, &world).is_empty(), "{:?}", diff(&state, &world));
    // Held by the orchestrator that runs now, which the world's list of holders does not name.
    world.lock_holders.clear();
    world.live_orchestrator = Some(5);
    assert!(diff(&state, &world).is_empty(), "{:?}", diff(&state, &world));
    world.live_orchestrator = None;
    assert_eq!(kinds(&diff(&state, &world)), vec![(FindingKind::LockHolderDead, "break_lock")]);

    // While a run goes on, the locks of the claims it holds are its business, even one whose holder is gone.
    let state = fold(claim("a"));
    let mut world = world_for(&state);
    world.lock_holders.insert(1, false);
    world.live_orchestrator = Some(9);
    assert!(diff(&state, &world).is_empty(), "{:?}", diff(&state, &world));
}

#[test]
fn a_claim_closed_in_the_tracker_after_a_failure_was_closed_by_someone_else() {
    let closed = |end: Vec<Event>| {
        let mut events = claim("a");
        events.extend([requested("a"), spawned("a")]);
        events.extend(end);
        let state = fold(events);
        let mut world = world_for(&state);
        world.tracker.get_mut("a").unwrap().status = "closed".into();
        kinds(&diff(&state, &world))
    };
    assert_eq!(closed(vec![exited("a", 0)]), vec![(FindingKind::StepInterrupted, "resume")]);
    assert_eq!(closed(vec![exited("a", 1)]), vec![(FindingKind::ClaimClosedElsewhere, "drop_claim")]);
    let check_failed = Event::CheckFailed {
        issue: "a".into(),
        attempt: 1,
        command: "make check".into(),
        code: Some(2),
        duration_ms: 3,
    };
    assert_eq!(closed(vec![exited("a", 0), check_failed]), vec![(FindingKind::ClaimClosedElsewhere, "drop_claim")]);
}

#[test]
fn a_leftover_of_an_issue_the_log_knows_but_never_released_is_not_claimed() {
    let mut state = fold(vec![]);
    state.issues.insert("n".into(), IssueState::default());
    let mut world = world_for(&state);
    world.tracker.clear();
    world.branches.push("bdp/n".into());
    let found = diff(&state, &world);
    assert_eq!(kinds(&found), vec![(FindingKind::BranchWithoutClaim, "delete_branch")]);
    assert_eq!(found[0].log, "not claimed");
}

/// `clean` and `audit` share who owns what, and differ where they should: a done issue's branch is kept on
/// purpose for audit (`--merge none`, `--keep-worktrees`) and is exactly what `clean` removes; a conflicted
/// one stays for both unless `--all`; a log lock whose holder is gone is broken (file and log) by both.
#[test]
fn clean_removes_what_audit_leaves_alone_and_keeps_what_it_must() {
    let mut events = claim("done");
    events.push(Event::IssueReleased { issue: "done".into(), reason: ReleaseReason::Done, detail: None });
    events.push(Event::LockReleased { lock: issue_lock("done") });
    events.extend(claim("hot"));
    events.push(Event::IssueReleased { issue: "hot".into(), reason: ReleaseReason::Conflict, detail: None });
    events.push(Event::LockReleased { lock: issue_lock("hot") });
    events.push(Event::LockAcquired { lock: "merge".into(), holder_pid: 77, issue: None });
    let state = fold(events);
    let mut world = world_for(&state);
    world.branches = vec!["bdp/done".into(), "bdp/hot".into()];
    world.lock_holders.insert(77, false);
    world.run_dirs = vec!["/r/.bdp/runs/done".into(), "/r/.bdp/runs/hot".into()];
    assert!(!diff(&state, &world).iter().any(|f| f.kind == FindingKind::BranchWithoutClaim));

    let plan = |all| -> Vec<(String, Option<Kept>)> {
        cleanup(&state, &world, all).into_iter().map(|l| (l.finding.repair.name().to_string(), l.kept)).collect()
    };
    assert_eq!(
        plan(false),
        vec![
            ("delete_branch".into(), None),
            ("delete_branch".into(), Some(Kept::Conflicted)),
            ("remove_run_dir".into(), None),
            ("remove_run_dir".into(), Some(Kept::Conflicted)),
            ("break_lock".into(), None),
        ]
    );
    assert!(plan(true).iter().all(|(_, kept)| kept.is_none()));

    // While an orchestrator runs, its claims stay whatever `--all` says; a live holder keeps its lock.
    let mut events = claim("busy");
    events.push(Event::LockAcquired { lock: "merge".into(), holder_pid: 77, issue: None });
    let state = fold(events);
    world.branches = vec!["bdp/busy".into()];
    world.run_dirs.clear();
    world.live_orchestrator = Some(9);
    world.lock_holders.insert(77, true);
    let left = cleanup(&state, &world, true);
    let kept: Vec<Option<Kept>> = left.into_iter().map(|l| l.kept).collect();
    assert_eq!(kept, vec![Some(Kept::OrchestratorRunning(9)), Some(Kept::HolderRunning(77))]);
}
