//! The current state of bdp: a pure fold over the event log.
//!
//! [`State::apply`] is the only place a transition happens. It does no I/O and reads no clock: the same
//! records always give the same state. A record that describes an impossible transition (a release of an
//! issue that is not claimed, a second spawn of one attempt…) is refused with a [`TransitionError`] naming
//! its seq, and the state is left untouched.

mod error;
mod stage;
mod types;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Event, IssueId, Record, ReleaseReason};

pub use error::{TransitionError, TransitionErrorKind};
pub use stage::ClaimStage;
pub use types::*;

/// Everything the log says, folded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct State {
    /// Seq of the last record applied (0 before any).
    pub last_seq: u64,
    /// Sessions in the order they started.
    pub sessions: Vec<SessionInfo>,
    /// The session that started last and has not ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_session: Option<String>,
    pub issues: BTreeMap<IssueId, IssueState>,
    pub locks: BTreeMap<String, LockState>,
    /// Torn tails cut off the log so far.
    pub truncations: u64,
}

type Res = Result<(), TransitionErrorKind>;

impl State {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds records in order, stopping at the first refused one.
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<State, TransitionError> {
        let mut state = State::new();
        for record in records {
            state.apply(record)?;
        }
        Ok(state)
    }

    /// Applies one record. On error nothing changes.
    pub fn apply(&mut self, record: &Record) -> Result<(), TransitionError> {
        let fail = |kind| TransitionError { seq: record.seq, event: record.event.kind(), kind };
        let expected = self.last_seq + 1;
        if record.seq != expected {
            return Err(fail(TransitionErrorKind::SeqOutOfOrder { expected, found: record.seq }));
        }
        self.transition(record).map_err(fail)?;
        self.last_seq = record.seq;
        if let Some(session) = self.session_mut(&record.session) {
            session.last_seq = record.seq;
            session.last_ts.clone_from(&record.ts);
            session.counts.events += 1;
        }
        Ok(())
    }

    /// Finds a session by id (the latest sessions are looked at first).
    pub fn session(&self, id: &str) -> Option<&SessionInfo> {
        self.sessions.iter().rev().find(|s| s.id == id)
    }

    fn session_mut(&mut self, id: &str) -> Option<&mut SessionInfo> {
        self.sessions.iter_mut().rev().find(|s| s.id == id)
    }

    fn count(&mut self, session: &str, bump: impl FnOnce(&mut SessionCounts)) {
        if let Some(s) = self.session_mut(session) {
            bump(&mut s.counts);
        }
    }

    /// Issues bdp holds right now.
    pub fn claimed(&self) -> impl Iterator<Item = (&IssueId, &Claim)> {
        self.issues.iter().filter_map(|(id, issue)| issue.claim.as_deref().map(|c| (id, c)))
    }

    fn claim_mut(&mut self, issue: &str) -> Result<&mut Claim, TransitionErrorKind> {
        self.issues
            .get_mut(issue)
            .and_then(|i| i.claim.as_deref_mut())
            .ok_or_else(|| TransitionErrorKind::NotClaimed { issue: issue.to_string() })
    }

    /// The current attempt of a claimed issue, checked to be `attempt`.
    fn attempt_mut(&mut self, issue: &str, attempt: u32) -> Result<&mut Attempt, TransitionErrorKind> {
        let claim = self.claim_mut(issue)?;
        let current = claim.attempt.as_ref().map(|a| a.number);
        match claim.attempt.as_mut() {
            Some(a) if a.number == attempt => Ok(a),
            _ => Err(TransitionErrorKind::NoSuchAttempt { issue: issue.to_string(), attempt, current }),
        }
    }

    fn transition(&mut self, record: &Record) -> Res {
        let seq = record.seq;
        let session = record.session.as_str();
        match &record.event {
            Event::SessionStarted { pid, start_time, host, version, recovers, .. } => {
                if let Some(existing) = self.session(session) {
                    return Err(TransitionErrorKind::DuplicateSession {
                        session: session.to_string(),
                        started_seq: existing.started_seq,
                    });
                }
                if let Some(previous) = self.open_session.take()
                    && let Some(prev) = self.session_mut(&previous)
                {
                    prev.end = SessionEnd::Crashed { detected_seq: seq };
                }
                self.sessions.push(SessionInfo {
                    id: session.to_string(),
                    started_seq: seq,
                    started_ts: record.ts.clone(),
                    pid: *pid,
                    start_time: *start_time,
                    host: host.clone(),
                    version: version.clone(),
                    recovers: recovers.clone(),
                    end: SessionEnd::Open,
                    last_seq: seq,
                    last_ts: record.ts.clone(),
                    counts: SessionCounts::default(),
                });
                self.open_session = Some(session.to_string());
            }
            Event::SessionEnded { reason, .. } => {
                if self.open_session.as_deref() != Some(session) {
                    return Err(TransitionErrorKind::SessionMismatch {
                        open: self.open_session.clone(),
                        found: session.to_string(),
                    });
                }
                self.open_session = None;
                let s = self.session_mut(session).expect("the open session is always in the list");
                s.end = SessionEnd::Ended { seq, ts: record.ts.clone(), reason: *reason };
            }
            Event::IssueClaimed { issue, actor } => {
                let entry = self.issues.entry(issue.clone()).or_default();
                if let Some(claim) = &entry.claim {
                    return Err(TransitionErrorKind::AlreadyClaimed { issue: issue.clone(), since_seq: claim.seq });
                }
                entry.claim = Some(Box::new(Claim::new(session, seq, actor, entry.attempts)));
                entry.claims += 1;
                entry.phase = Some(crate::event::Phase::Claimed);
                self.count(session, |c| c.claims += 1);
            }
            Event::ClaimLost { issue, holder, detail } => {
                let claim = self.claim_mut(issue)?;
                claim.lost = Some(match holder {
                    Some(h) => format!("held by {h}: {detail}"),
                    None => detail.clone(),
                });
            }
            Event::IssueReleased { issue, reason, .. } => {
                let claim = self.claim_mut(issue)?;
                if let Some(a) = claim.attempt.as_ref().filter(|a| a.is_open()) {
                    return Err(TransitionErrorKind::AttemptStillOpen { issue: issue.clone(), attempt: a.number });
                }
                // A merge that started and did not land leaves work on the branch that bdp did not land: the
                // branch is kept for a person.
                let unmerged = claim.holds_unlanded_work();
                let entry = self.issues.get_mut(issue).expect("claimed issues exist");
                entry.claim = None;
                entry.last_release = Some(Release { seq, reason: *reason, unmerged_work: unmerged });
                let reason = *reason;
                self.count(session, |c| match reason {
                    ReleaseReason::Done => c.done += 1,
                    ReleaseReason::Failed | ReleaseReason::Timeout => c.failed += 1,
                    ReleaseReason::Conflict => c.conflicts += 1,
                    ReleaseReason::Abandoned | ReleaseReason::Shutdown => c.released_other += 1,
                });
            }
            Event::WorktreeCreated { issue, path, branch, base } => {
                let claim = self.claim_mut(issue)?;
                if let Some(wt) = &claim.worktree {
                    return Err(TransitionErrorKind::WorktreeExists { issue: issue.clone(), path: wt.path.clone() });
                }
                claim.worktree = Some(Worktree { path: path.clone(), branch: branch.clone(), base: base.clone() });
            }
            Event::WorktreeRemoved { issue, path } => {
                // Also legal without a claim: `bdp clean` removes leftovers nobody holds.
                if let Some(claim) = self.issues.get_mut(issue).and_then(|i| i.claim.as_mut())
                    && claim.worktree.as_ref().is_some_and(|w| &w.path == path)
                {
                    claim.worktree = None;
                }
            }
            Event::SpawnRequested { issue, attempt, argv, cwd, marker, stdout, stderr } => {
                let attempts = self.issues.get(issue).map_or(0, |i| i.attempts);
                let claim = self.claim_mut(issue)?;
                if let Some(a) = claim.attempt.as_ref().filter(|a| a.is_open()) {
                    return Err(TransitionErrorKind::AttemptStillOpen { issue: issue.clone(), attempt: a.number });
                }
                if *attempt != attempts + 1 {
                    return Err(TransitionErrorKind::AttemptOutOfOrder {
                        issue: issue.clone(),
                        expected: attempts + 1,
                        found: *attempt,
                    });
                }
                let carries_on = claim.retry.take().and_then(|r| r.carry_on);
                claim.attempt = Some(Attempt {
                    number: *attempt,
                    requested_seq: seq,
                    argv: argv.clone(),
                    cwd: cwd.clone(),
                    marker: marker.clone(),
                    stdout: stdout.clone(),
                    stderr: stderr.clone(),
                    spawned: None,
                    outcome: None,
                    check_passed: None,
                    carries_on,
                    verdict: None,
                    progress: None,
                });
                self.issues.get_mut(issue).expect("claimed issues exist").attempts = *attempt;
            }
            Event::AgentSpawned { issue, attempt, pid, pgid, start_time } => {
                let a = self.attempt_mut(issue, *attempt)?;
                if let Some(s) = &a.spawned {
                    return Err(TransitionErrorKind::AlreadySpawned {
                        issue: issue.clone(),
                        attempt: *attempt,
                        at_seq: s.seq,
                    });
                }
                if let Some(o) = &a.outcome {
                    return Err(TransitionErrorKind::AttemptAlreadyEnded {
                        issue: issue.clone(),
                        attempt: *attempt,
                        at_seq: o.seq(),
                    });
                }
                a.spawned = Some(Spawned { seq, pid: *pid, pgid: *pgid, start_time: *start_time });
                self.count(session, |c| c.spawns += 1);
            }
            Event::AgentExited { issue, attempt, code, signal, duration_ms, timed_out, usage, .. } => {
                let a = self.attempt_mut(issue, *attempt)?;
                if a.spawned.is_none() {
                    return Err(TransitionErrorKind::NotSpawned { issue: issue.clone(), attempt: *attempt });
                }
                if let Some(o) = &a.outcome {
                    return Err(TransitionErrorKind::AttemptAlreadyEnded {
                        issue: issue.clone(),
                        attempt: *attempt,
                        at_seq: o.seq(),
                    });
                }
                a.outcome = Some(AttemptOutcome::Exited {
                    seq,
                    code: *code,
                    signal: *signal,
                    duration_ms: *duration_ms,
                    timed_out: *timed_out,
                });
                let (ms, cost) = (*duration_ms, usage.as_ref().map(|u| u.cost_micro_usd.unwrap_or(0)));
                self.count(session, |c| {
                    c.agent_ms += ms;
                    if let Some(cost) = cost {
                        c.usage_reports += 1;
                        c.cost_micro_usd += cost;
                    }
                });
            }
            Event::AttemptAbandoned { issue, attempt, reason } => {
                let a = self.attempt_mut(issue, *attempt)?;
                if let Some(o) = &a.outcome {
                    return Err(TransitionErrorKind::AttemptAlreadyEnded {
                        issue: issue.clone(),
                        attempt: *attempt,
                        at_seq: o.seq(),
                    });
                }
                a.outcome = Some(AttemptOutcome::Abandoned { seq, reason: reason.clone() });
            }
            Event::PhaseChanged { issue, phase } => {
                self.claim_mut(issue)?;
                self.issues.get_mut(issue).expect("claimed issues exist").phase = Some(*phase);
            }
            Event::CheckPassed { issue, attempt, .. } | Event::CheckFailed { issue, attempt, .. } => {
                let passed = matches!(record.event, Event::CheckPassed { .. });
                let a = self.attempt_mut(issue, *attempt)?;
                if !matches!(a.outcome, Some(AttemptOutcome::Exited { .. })) {
                    return Err(TransitionErrorKind::AttemptNotExited { issue: issue.clone(), attempt: *attempt });
                }
                a.check_passed = Some(passed);
            }
            Event::ReviewVerdict { issue, attempt, verdict, .. } => {
                let a = self.attempt_mut(issue, *attempt)?;
                if !matches!(a.outcome, Some(AttemptOutcome::Exited { .. })) {
                    return Err(TransitionErrorKind::AttemptNotExited { issue: issue.clone(), attempt: *attempt });
                }
                a.verdict = Some(*verdict);
                self.claim_mut(issue)?.reviews += 1;
            }
            Event::MergeStarted { issue, branch, base, strategy } => {
                let claim = self.claim_mut(issue)?;
                if let Some(commit) = claim.merge.as_ref().and_then(|m| m.commit.clone()) {
                    return Err(TransitionErrorKind::AlreadyMerged { issue: issue.clone(), commit });
                }
                // A merge that started and never finished may be started again (recovery redoes it); a new
                // merge of a branch whose conflict an attempt resolved is not a failed one.
                claim.merge_failed = false;
                claim.merge = Some(Merge {
                    started_seq: seq,
                    branch: branch.clone(),
                    base: base.clone(),
                    strategy: *strategy,
                    commit: None,
                });
            }
            Event::Merged { issue, commit } => {
                let claim = self.claim_mut(issue)?;
                let merge = claim
                    .merge
                    .as_mut()
                    .ok_or_else(|| TransitionErrorKind::NoMergeInProgress { issue: issue.clone() })?;
                if let Some(done) = &merge.commit {
                    return Err(TransitionErrorKind::AlreadyMerged { issue: issue.clone(), commit: done.clone() });
                }
                merge.commit = Some(commit.clone());
                self.issues.get_mut(issue).expect("claimed issues exist").merged_commit = Some(commit.clone());
            }
            Event::MergeConflicted { issue, .. } => {
                let claim = self.claim_mut(issue)?;
                match &claim.merge {
                    Some(m) if m.commit.is_none() => {
                        claim.merge = None;
                        claim.merge_failed = true;
                    }
                    Some(m) => {
                        let commit = m.commit.clone().unwrap_or_default();
                        return Err(TransitionErrorKind::AlreadyMerged { issue: issue.clone(), commit });
                    }
                    None => return Err(TransitionErrorKind::NoMergeInProgress { issue: issue.clone() }),
                }
            }
            Event::LockAcquired { lock, holder_pid, issue } => {
                if let Some(held) = self.locks.get(lock) {
                    return Err(TransitionErrorKind::LockHeld {
                        lock: lock.clone(),
                        holder_pid: held.holder_pid,
                        since_seq: held.since_seq,
                    });
                }
                self.locks
                    .insert(lock.clone(), LockState { holder_pid: *holder_pid, since_seq: seq, issue: issue.clone() });
            }
            Event::LockReleased { lock } | Event::LockBroken { lock, .. } => {
                if self.locks.remove(lock).is_none() {
                    return Err(TransitionErrorKind::LockNotHeld { lock: lock.clone() });
                }
            }
            Event::TrackerStatusSet { .. }
            | Event::TrackerLabelsChanged { .. }
            | Event::TrackerCalls { .. }
            | Event::TrackerDown { .. }
            | Event::TrackerBack { .. }
            | Event::ClaimsStopped { .. }
            | Event::HookRan { .. }
            | Event::FileLockAcquired { .. }
            | Event::FileLockRefused { .. }
            | Event::FileLockReleased { .. }
            | Event::FileLockBroken { .. } => {}
            // An agent's word on its progress: kept on its attempt while that is the claim's open attempt. A
            // report that arrives after its attempt ended (the agent's tool server outliving it) is history
            // only, not an inconsistency.
            Event::ProgressReported { issue, attempt, status, percent, step, steps } => {
                let open = self
                    .issues
                    .get_mut(issue)
                    .and_then(|i| i.claim.as_mut())
                    .and_then(|c| c.attempt.as_mut())
                    .filter(|a| a.number == *attempt && a.is_open());
                if let Some(a) = open {
                    a.progress =
                        Some(Progress { seq, status: status.clone(), percent: *percent, step: *step, steps: *steps });
                }
            }
            Event::TrackerIssueClosed { issue, .. } => {
                self.issues.entry(issue.clone()).or_default().closed_seq = Some(seq);
            }
            Event::ReconcileFinding { .. } => self.count(session, |c| c.findings += 1),
            Event::RepairApplied { .. } => self.count(session, |c| c.repairs += 1),
            Event::RetryScheduled { issue, next_attempt, backoff_ms, reason, carry_on } => {
                let attempts = self.issues.get(issue).map_or(0, |i| i.attempts);
                let claim = self.claim_mut(issue)?;
                if let Some(a) = claim.attempt.as_ref().filter(|a| a.is_open()) {
                    return Err(TransitionErrorKind::AttemptStillOpen { issue: issue.clone(), attempt: a.number });
                }
                if *next_attempt != attempts + 1 {
                    return Err(TransitionErrorKind::AttemptOutOfOrder {
                        issue: issue.clone(),
                        expected: attempts + 1,
                        found: *next_attempt,
                    });
                }
                let (next_attempt, backoff_ms, reason) = (*next_attempt, *backoff_ms, reason.clone());
                claim.retry = Some(Retry { seq, next_attempt, backoff_ms, reason, carry_on: carry_on.clone() });
            }
            Event::LogTruncated { .. } => self.truncations += 1,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
