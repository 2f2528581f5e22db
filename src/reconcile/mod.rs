//! Reconciliation, the pure core of recovery and audit: [`diff`] compares what the log says (the folded
//! [`State`]) with what bdp observed of the world ([`World`]: tracker, processes, exit files, lock files,
//! worktrees, branches, merges, checkpoints) and returns [`Finding`]s, each with its named [`Repair`].
//!
//! It does no I/O and reads no clock: a test is a state and a world in, findings out. The shell observes
//! the world ([`crate::observe`]) and applies the repairs (`bdp run` recovers, `bdp audit --fix` applies
//! the safe ones), appending each finding and repair to the log.
//!
//! When another orchestrator is live, what it is doing right now (its claims, agents, worktrees, locks)
//! is its business and changes under our feet: only findings that cannot race with it are reported.

mod cleanup;
mod finding;
mod world;

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{IssueId, ReleaseReason};
use crate::plan::issue::{CONFLICT_LABEL, FAILED_LABEL};
use crate::repo::{BRANCH_PREFIX, branch_name, escape_path_component, unescape_path_component};
use crate::state::{Attempt, Claim, ClaimStage, IssueState, SessionEnd, State};

pub use cleanup::{Kept, Leftover, cleanup};
pub use finding::{Finding, FindingKind, Repair, Step};
pub use world::*;

/// Labels bdp puts on an issue it gives back for a person to look at.
const HELD_LABELS: [&str; 2] = [FAILED_LABEL, CONFLICT_LABEL];

/// The name of the lock bdp holds on an issue while it is claimed (file `.bdp/locks/<escaped>.lock`).
pub fn issue_lock(issue: &str) -> String {
    format!("issue:{issue}")
}

/// Every finding, in the order repairs should be applied: the log and checkpoints, strays (agents,
/// worktrees before their branches, locks), the tracker, then each claim.
pub fn diff(state: &State, world: &World) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(damage) = &world.log_damage {
        out.push(Finding {
            kind: FindingKind::LogDamaged,
            issue: None,
            subject: None,
            log: damage.clone(),
            world: "the log cannot be trusted past the damage".into(),
            repair: Repair::Manual { hint: "run `bdp verify` to see where; bdp does not run on a damaged log".into() },
        });
    }
    for (seq, why) in &world.bad_checkpoints {
        out.push(Finding {
            kind: FindingKind::CheckpointMismatch,
            issue: None,
            subject: Some(format!("checkpoint at seq {seq}")),
            log: why.clone(),
            world: "index.sqlite holds it".into(),
            repair: Repair::DropCheckpoint { seq: *seq },
        });
    }
    if world.log_damage.is_some() {
        return out;
    }
    let live = world.live_orchestrator.is_some();
    if !live {
        strays(state, world, &mut out);
    }
    locks(state, world, &mut out);
    file_locks(state, world, &mut out);
    if live {
        return out;
    }
    for (id, view) in &world.tracker {
        let ours = view.status == "in_progress" && view.assignee.as_deref() == Some(world.actor.as_str());
        if ours && state.issues.get(id).is_none_or(|i| i.claim.is_none()) {
            out.push(Finding {
                kind: FindingKind::TrackerClaimWithoutLog,
                issue: Some(id.clone()),
                subject: None,
                log: "not claimed".into(),
                world: format!("in_progress, assigned to {}", world.actor),
                repair: Repair::ReleaseInTracker,
            });
        }
    }
    for (id, issue) in &state.issues {
        if let Some(claim) = &issue.claim {
            claim_findings(state, world, id, issue, claim, &mut out);
        }
    }
    out
}

/// Processes, worktrees and branches that no claim owns.
fn strays(state: &State, world: &World, out: &mut Vec<Finding>) {
    let open_markers: BTreeSet<&str> = state
        .claimed()
        .filter_map(|(_, c)| c.attempt.as_ref().filter(|a| a.is_open()).map(|a| a.marker.as_str()))
        .collect();
    for group in &world.marked {
        if !open_markers.contains(group.marker.as_str()) {
            out.push(Finding {
                kind: FindingKind::AgentWithoutClaim,
                issue: None,
                subject: Some(format!("process group {}", group.pgid)),
                log: format!("no open attempt has the marker {}", group.marker),
                world: format!("{} process(es) run with it: {}", group.pids.len(), join(&group.pids)),
                repair: Repair::StopAgent { pgid: group.pgid },
            });
        }
    }
    let mut worktree_branches = BTreeSet::new();
    for wt in &world.worktrees {
        let issue = wt.issue.as_ref().and_then(|id| state.issues.get(id));
        if issue.is_some_and(|i| i.claim.is_some()) || issue.is_some_and(kept_on_purpose) {
            continue;
        }
        if let Some(branch) = &wt.branch {
            worktree_branches.insert(branch.clone());
        }
        let repair = if wt.users.is_empty() {
            Repair::RemoveWorktree { path: wt.path.clone() }
        } else {
            Repair::Manual { hint: format!("processes {} work in it; stop them, then `bdp clean`", join(&wt.users)) }
        };
        out.push(Finding {
            kind: FindingKind::WorktreeWithoutClaim,
            issue: wt.issue.clone(),
            subject: Some(wt.path.clone()),
            log: describe_unclaimed(issue),
            world: match &wt.branch {
                Some(b) => format!("a worktree on {b}"),
                None => "a worktree (detached)".into(),
            },
            repair,
        });
    }
    let owners = BranchOwners::of(state);
    for branch in &world.branches {
        let id = owners.issue(branch);
        let issue = id.as_ref().and_then(|id| state.issues.get(id));
        if issue.is_some_and(|i| i.claim.is_some()) || issue.is_some_and(kept_on_purpose) {
            continue;
        }
        let note = if worktree_branches.contains(branch) { " (its worktree is removed first)" } else { "" };
        out.push(Finding {
            kind: FindingKind::BranchWithoutClaim,
            issue: id,
            subject: Some(branch.clone()),
            log: describe_unclaimed(issue),
            world: format!("the branch exists{note}"),
            repair: Repair::DeleteBranch { branch: branch.clone() },
        });
    }
}

/// Whose `bdp/*` branches are whose: the log's issues by their branch name, made once per look.
struct BranchOwners<'a>(BTreeMap<String, &'a IssueId>);

impl<'a> BranchOwners<'a> {
    fn of(state: &'a State) -> Self {
        BranchOwners(state.issues.keys().map(|id| (branch_name(id), id)).collect())
    }

    /// The issue a branch belongs to: one of the log's issues whose branch it is, else the id its name
    /// stands for.
    fn issue(&self, branch: &str) -> Option<IssueId> {
        self.0
            .get(branch)
            .map(|id| (*id).clone())
            .or_else(|| branch.strip_prefix(BRANCH_PREFIX).and_then(unescape_path_component))
    }
}

/// bdp keeps the branch (and with --keep-worktrees the worktree) of a conflicted issue, or of one whose merge
/// git failed, for a person to resolve, and of a done one under `--merge none` or `--keep-worktrees`.
fn kept_on_purpose(issue: &IssueState) -> bool {
    issue.claim.is_none()
        && issue
            .last_release
            .as_ref()
            .is_some_and(|r| r.unmerged_work || matches!(r.reason, ReleaseReason::Conflict | ReleaseReason::Done))
}

fn describe_unclaimed(issue: Option<&IssueState>) -> String {
    match issue.and_then(|i| i.last_release.as_ref()) {
        Some(r) => format!("not claimed (released at seq {} as {})", r.seq, r.reason.as_str()),
        None if issue.is_some() => "not claimed".into(),
        None => "never claimed".into(),
    }
}

/// The log's locks against their holders and files, and lock files against the log.
fn locks(state: &State, world: &World, out: &mut Vec<Finding>) {
    let live = world.live_orchestrator;
    let files: BTreeMap<&str, &LockFile> = world.lock_files.iter().map(|f| (f.name.as_str(), f)).collect();
    for (name, lock) in &state.locks {
        let holder_alive = live == Some(lock.holder_pid) || world.lock_holders.get(&lock.holder_pid) == Some(&true);
        let claimed = lock.issue.as_ref().and_then(|i| state.issues.get(i)).and_then(|i| i.claim.as_ref());
        if live.is_some() && (holder_alive || claimed.is_some()) {
            continue;
        }
        let file = files.get(name.as_str());
        if let (Some(issue), None) = (&lock.issue, claimed) {
            out.push(Finding {
                kind: FindingKind::LockOfFinishedIssue,
                issue: Some(issue.clone()),
                subject: Some(name.clone()),
                log: format!("held since seq {} for {issue}, which bdp no longer holds", lock.since_seq),
                world: lock_world(lock.holder_pid, holder_alive, file.copied()),
                repair: Repair::BreakLock { lock: name.clone() },
            });
        } else if !holder_alive {
            let repair = match claimed {
                Some(_) => Repair::TakeOverLock { lock: name.clone() },
                None => Repair::BreakLock { lock: name.clone() },
            };
            out.push(Finding {
                kind: FindingKind::LockHolderDead,
                issue: lock.issue.clone(),
                subject: Some(name.clone()),
                log: format!("held by pid {} since seq {}", lock.holder_pid, lock.since_seq),
                world: lock_world(lock.holder_pid, holder_alive, file.copied()),
                repair,
            });
        } else if file.is_none() && live.is_none() {
            out.push(Finding {
                kind: FindingKind::LockFileMissing,
                issue: lock.issue.clone(),
                subject: Some(name.clone()),
                log: format!("held by pid {} since seq {}", lock.holder_pid, lock.since_seq),
                world: format!("no file .bdp/locks/{}.lock", escape_path_component(name)),
                repair: Repair::BreakLock { lock: name.clone() },
            });
        }
    }
    if live.is_some() {
        return;
    }
    for file in &world.lock_files {
        if state.locks.contains_key(&file.name) || file.flocked {
            continue;
        }
        let holder = match (file.holder_pid, file.holder_alive) {
            (Some(pid), true) => format!("written by pid {pid}, which runs"),
            (Some(pid), false) => format!("written by pid {pid}, which is gone"),
            (None, _) => "no holder written in it".into(),
        };
        out.push(Finding {
            kind: FindingKind::LockFileWithoutLock,
            issue: file.name.strip_prefix("issue:").map(str::to_string),
            subject: Some(file.path.clone()),
            log: format!("no lock {}", file.name),
            world: holder,
            repair: Repair::RemoveLockFile { path: file.path.clone() },
        });
    }
}

/// Agents' file locks nobody should hold any more: the holder is dead, the TTL passed, or (with no run
/// live, which gives an attempt's locks back itself) the holder's attempt (`ISSUE#ATTEMPT`) is over.
fn file_locks(state: &State, world: &World, out: &mut Vec<Finding>) {
    for lock in &world.file_locks {
        let attempt_over = || -> Option<String> {
            let (id, n) = lock.holder.rsplit_once('#')?;
            let n: u32 = n.parse().ok()?;
            // A holder named like an attempt of an issue the tracker or the log knows.
            if !world.tracker.contains_key(id) && !state.issues.contains_key(id) {
                return None;
            }
            let claim = state.issues.get(id).and_then(|i| i.claim.as_ref());
            let Some(claim) = claim else { return Some(format!("{id} is not claimed")) };
            match &claim.attempt {
                Some(a) if a.number == n && a.outcome.is_none() => None,
                Some(a) if a.number == n => Some(format!("attempt {n} of {id} ended")),
                Some(a) => Some(format!("{id} is at attempt {}, not {n}", a.number)),
                None => Some(format!("{id} has no attempt {n}")),
            }
        };
        let why = if !lock.alive {
            Some((format!("taken by {}", lock.holder), format!("its holder (pid {}) is dead", lock.pid)))
        } else if lock.expired {
            Some((format!("taken by {}", lock.holder), "its TTL passed".to_string()))
        } else if world.live_orchestrator.is_none() {
            attempt_over().map(|over| (over, format!("held by pid {}, which runs", lock.pid)))
        } else {
            None
        };
        let Some((log, world_text)) = why else { continue };
        out.push(Finding {
            kind: FindingKind::FileLockStale,
            issue: lock
                .holder
                .rsplit_once('#')
                .map(|(id, _)| id.to_string())
                .filter(|id| state.issues.contains_key(id) || world.tracker.contains_key(id)),
            subject: Some(format!("{} (held by {})", lock.path, lock.holder)),
            log,
            world: world_text,
            repair: Repair::BreakFileLock {
                file: lock.file.clone(),
                path: lock.path.clone(),
                holder: lock.holder.clone(),
            },
        });
    }
}

fn lock_world(pid: u32, alive: bool, file: Option<&LockFile>) -> String {
    let holder =
        if alive { format!("pid {pid} runs") } else { format!("pid {pid} is gone (or is another process now)") };
    match file {
        Some(f) => format!("{holder}; {}", f.path),
        None => format!("{holder}; no lock file"),
    }
}

/// A claim of a session that is not running: the tracker's side, then where its steps stood.
fn claim_findings(
    state: &State,
    world: &World,
    id: &IssueId,
    issue: &IssueState,
    claim: &Claim,
    out: &mut Vec<Finding>,
) {
    let session = session_text(state, &claim.session);
    let finding = |kind, log: String, world: String, repair| Finding {
        kind,
        issue: Some(id.clone()),
        subject: None,
        log,
        world,
        repair,
    };
    let succeeded = claim.attempt.as_ref().is_some_and(attempt_succeeded);
    let ours = |t: &TrackerView| t.assignee.as_deref() == Some(world.actor.as_str());
    match world.tracker.get(id) {
        None => {
            out.push(finding(
                FindingKind::ClaimedIssueMissing,
                format!("claimed by {session}"),
                "the tracker has no such issue".into(),
                Repair::DropClaim {
                    reason: "the tracker does not know the issue".into(),
                    release: ReleaseReason::Abandoned,
                },
            ));
            return;
        }
        Some(t) if t.status == "closed" && issue.closed_seq.is_none() && !succeeded => {
            out.push(finding(
                FindingKind::ClaimClosedElsewhere,
                format!("claimed by {session}; bdp did not close it"),
                format!("closed{}", t.assignee.as_ref().map(|a| format!(", assigned to {a}")).unwrap_or_default()),
                Repair::DropClaim {
                    reason: "closed in the tracker by someone else".into(),
                    release: ReleaseReason::Abandoned,
                },
            ));
            return;
        }
        Some(t) if t.status != "closed" && t.assignee.is_some() && !ours(t) => {
            out.push(finding(
                FindingKind::ClaimTaken,
                format!("claimed as {} by {session}", claim.actor),
                format!("{}, assigned to {}", t.status, t.assignee.as_deref().unwrap_or_default()),
                Repair::DropClaim {
                    reason: format!("the tracker gives it to {}", t.assignee.as_deref().unwrap_or("?")),
                    release: ReleaseReason::Abandoned,
                },
            ));
            return;
        }
        Some(t) if t.status != "closed" && (t.status != "in_progress" || t.assignee.is_none()) => {
            if let Some(label) = HELD_LABELS.iter().find(|l| t.labels.iter().any(|x| x == *l)) {
                out.push(finding(
                    FindingKind::ClaimNotInTracker,
                    format!("claimed by {session}"),
                    format!("{} and unassigned, labelled {label}: bdp was giving it back", t.status),
                    Repair::DropClaim {
                        reason: format!("the tracker has it back, labelled {label}"),
                        release: if *label == CONFLICT_LABEL { ReleaseReason::Conflict } else { ReleaseReason::Failed },
                    },
                ));
                return;
            }
            out.push(finding(
                FindingKind::ClaimNotInTracker,
                format!("claimed by {session}"),
                format!(
                    "{}{}",
                    t.status,
                    t.assignee.as_ref().map(|a| format!(", assigned to {a}")).unwrap_or(", unassigned".into())
                ),
                Repair::Reclaim,
            ));
        }
        Some(_) => {}
    }
    let closed_in_tracker = world.tracker.get(id).is_some_and(|t| t.status == "closed");
    out.push(step_finding(world, id, issue, claim, &session, closed_in_tracker));
}

fn step_finding(
    world: &World,
    id: &IssueId,
    issue: &IssueState,
    claim: &Claim,
    session: &str,
    closed_in_tracker: bool,
) -> Finding {
    let make = |kind, log: String, world: String, repair| Finding {
        kind,
        issue: Some(id.clone()),
        subject: None,
        log: format!("claimed by {session}; {log}"),
        world,
        repair,
    };
    let resume = |log: String, world: &str, step| {
        make(FindingKind::StepInterrupted, log, world.to_string(), Repair::Resume { step })
    };
    let spawn = |log: String| resume(log, "no agent runs for it", Step::Spawn);
    match claim.stage(issue.closed_seq) {
        ClaimStage::Preparing { worktree: Some(wt) } => spawn(format!("worktree {} ready, no attempt yet", wt.path)),
        ClaimStage::Preparing { worktree: None } => {
            resume("no worktree, no attempt yet".into(), "no agent runs for it", Step::Worktree)
        }
        ClaimStage::RetryScheduled { after: None, .. } => spawn("a retry was scheduled".into()),
        ClaimStage::Attempting(a) => {
            let view = world.attempts.get(id).filter(|v| v.attempt == a.number);
            open_attempt(world, a, view, make)
        }
        ClaimStage::Merging(merge) => {
            let log = format!(
                "merge of {} into {} started at seq {}, its end not recorded",
                merge.branch, merge.base, merge.started_seq
            );
            match world.merges.get(id) {
                Some(MergeView::Done { commit }) => make(
                    FindingKind::MergeUnrecorded,
                    log,
                    format!("{} is in {} (commit {})", merge.branch, merge.base, short(commit)),
                    Repair::RecordMerge { commit: commit.clone() },
                ),
                other => make(
                    FindingKind::MergeInterrupted,
                    log,
                    match other {
                        Some(MergeView::NotDone { tip: None }) => format!("the branch {} is gone", merge.branch),
                        _ => format!("{} is not in {}", merge.branch, merge.base),
                    },
                    Repair::RedoMerge,
                ),
            }
        }
        ClaimStage::Closed { seq } => {
            resume(format!("closed at seq {seq}, not released"), "closed in the tracker", Step::Release)
        }
        // The tracker has the close the log missed.
        ClaimStage::Merged { .. }
        | ClaimStage::RetryScheduled { after: Some(_), .. }
        | ClaimStage::CheckPassed(_)
        | ClaimStage::Ended(_)
            if closed_in_tracker && claim.attempt.as_ref().is_some_and(attempt_succeeded) =>
        {
            let n = claim.attempt.as_ref().map_or(0, |a| a.number);
            resume(format!("attempt {n} succeeded, the close not recorded"), "closed in the tracker", Step::Release)
        }
        ClaimStage::Merged { commit } => {
            resume(format!("merged as {}, not closed", short(commit)), "open in the tracker", Step::Close)
        }
        ClaimStage::RetryScheduled { after: Some(a), .. } => {
            spawn(format!("attempt {} failed, a retry was scheduled", a.number))
        }
        ClaimStage::CheckPassed(a) => resume(
            format!("attempt {} passed the check, not merged", a.number),
            "no merge in the base branch",
            Step::Merge,
        ),
        ClaimStage::Ended(a) => {
            let how = match &a.outcome {
                Some(crate::state::AttemptOutcome::Exited { code: Some(c), .. }) => format!("exited {c}"),
                Some(crate::state::AttemptOutcome::Exited { signal: Some(s), .. }) => format!("killed by signal {s}"),
                Some(crate::state::AttemptOutcome::Abandoned { reason, .. }) => format!("abandoned ({reason})"),
                _ => "ended".into(),
            };
            resume(
                format!("attempt {} {how}, what follows not done", a.number),
                "no agent runs for it",
                Step::AfterExit,
            )
        }
    }
}

/// An attempt with no recorded outcome: its process decides.
fn open_attempt(
    world: &World,
    a: &Attempt,
    view: Option<&AttemptView>,
    make: impl Fn(FindingKind, String, String, Repair) -> Finding,
) -> Finding {
    let n = a.number;
    let exit = view.and_then(|v| v.exit.as_ref());
    let exit_text = |e: &ExitView| match (e.code, e.signal) {
        (Some(c), _) => format!("exit file: exit {c}"),
        (None, Some(s)) => format!("exit file: signal {s}"),
        _ => "exit file without a status".into(),
    };
    if let Some(sp) = &a.spawned {
        let log = format!("attempt {n} running (pid {}, spawned at seq {})", sp.pid, sp.seq);
        if view.is_some_and(|v| v.alive) {
            return make(
                FindingKind::AgentAlive,
                log,
                format!("pid {} runs, same start time", sp.pid),
                Repair::Adopt { attempt: n, pid: sp.pid, pgid: sp.pgid, start_time: sp.start_time },
            );
        }
        if let Some(e) = exit {
            return make(
                FindingKind::AgentExitedUnrecorded,
                log,
                format!("pid {} gone; {}", sp.pid, exit_text(e)),
                Repair::ApplyExit {
                    attempt: n,
                    record_spawn: None,
                    code: e.code,
                    signal: e.signal,
                    duration_ms: e.duration_ms,
                },
            );
        }
        let mut world_text = match view.and_then(|v| v.pid_reused) {
            Some(_) if sp.start_time.is_none() => {
                format!("pid {} runs, but the log has no start time to tell it from a reused pid; no exit file", sp.pid)
            }
            Some(start) => format!("pid {} is another process now (started at tick {start}); no exit file", sp.pid),
            None => format!("pid {} gone; no exit file", sp.pid),
        };
        if let Some(why) = view.and_then(|v| v.exit_unreadable.as_ref()) {
            world_text = format!("pid {} gone; exit file unreadable: {why}", sp.pid);
        }
        let group = view.is_some_and(|v| v.group_alive).then_some(sp.pgid);
        if group.is_some() {
            world_text.push_str(&format!("; process group {} still has members", sp.pgid));
        }
        return make(FindingKind::AgentCrashed, log, world_text, Repair::RecordCrash { attempt: n, pgid: group });
    }
    let log = format!("spawn of attempt {n} asked for at seq {}, never confirmed", a.requested_seq);
    let group = world.marked.iter().find(|g| g.marker == a.marker);
    if let Some(g) = group
        && let Some(leader) = g.leader
    {
        return make(
            FindingKind::SpawnUnconfirmedAlive,
            log,
            format!("pid {leader} runs with its marker {}", a.marker),
            Repair::RecordSpawnAndAdopt { attempt: n, pid: leader, pgid: g.pgid, start_time: g.leader_start_time },
        );
    }
    if let Some(e) = exit {
        return make(
            FindingKind::SpawnUnconfirmedExited,
            log,
            format!("no process with its marker; {}", exit_text(e)),
            Repair::ApplyExit {
                attempt: n,
                record_spawn: Some(e.pid.unwrap_or(0)),
                code: e.code,
                signal: e.signal,
                duration_ms: e.duration_ms,
            },
        );
    }
    let world_text = match group {
        Some(g) => format!("the wrapper is gone; {} process(es) of group {} remain", g.pids.len(), g.pgid),
        None => format!("no process with its marker {}, no exit file", a.marker),
    };
    make(FindingKind::SpawnUnconfirmedGone, log, world_text, Repair::AbandonAttempt { attempt: n })
}

fn attempt_succeeded(a: &Attempt) -> bool {
    matches!(a.outcome, Some(crate::state::AttemptOutcome::Exited { code: Some(0), timed_out: false, .. }))
        && a.check_passed != Some(false)
}

fn session_text(state: &State, id: &str) -> String {
    match state.session(id).map(|s| &s.end) {
        Some(SessionEnd::Ended { reason, .. }) => format!("session {id} (ended: {})", reason.as_str()),
        Some(SessionEnd::Crashed { .. }) | Some(SessionEnd::Open) => format!("session {id}, which did not end"),
        None => format!("session {id}"),
    }
}

use crate::text::short;

fn join(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
