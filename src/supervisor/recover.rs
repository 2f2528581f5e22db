//! Recovery at the start of `bdp run`: the findings of [`crate::reconcile::diff`] (the log of a session
//! that did not end, against the world) are recorded, printed, and repaired before anything new is
//! claimed. Each repair is appended as a `repair_applied` event; claims that are kept are taken over
//! (their issue lock names this orchestrator) and go on through the normal steps: an adopted agent is
//! supervised to its end, a recorded exit leads to the check and the merge queue, a crash to a retry.

use std::path::Path;

use crate::dispatch::recovery::{self, WorktreeSeen};
use crate::dispatch::{Input, Resume};
use crate::event::{Event, ReleaseReason};
use crate::git;
use crate::reconcile::{Finding, Repair, Step};
use crate::supervisor::agent::{self, Adopted, AgentEnd};

use super::options::Isolation;
use super::orchestrator::{Orchestrator, RunResult};

impl Orchestrator {
    /// Records every finding, then applies the repairs in order.
    pub(super) async fn recover(&mut self, findings: Vec<Finding>) -> RunResult<()> {
        if findings.is_empty() {
            return Ok(());
        }
        self.append(
            findings
                .iter()
                .map(|f| Event::ReconcileFinding {
                    kind: f.kind.name().to_string(),
                    issue: f.issue.clone(),
                    detail: f.detail(),
                })
                .collect(),
        )?;
        self.progress.line(&format!("recovering: {} finding(s) from the log against the world", findings.len()));
        for f in &findings {
            let what = f.issue.as_deref().or(f.subject.as_deref()).unwrap_or("-");
            self.progress.line(&format!(
                "  {:<24} {}  {}; {} → {}",
                f.kind.name(),
                super::progress::one_line(what, 40),
                f.log,
                f.world,
                f.repair.describe()
            ));
        }
        // Claims that are kept are taken over before any of their steps go on.
        let kept = crate::dispatch::recovery::kept_claims(self.state(), &findings);
        let mut result = kept.into_iter().try_for_each(|issue| self.feed(Input::TakeOver { issue }));
        if result.is_ok() {
            for f in findings {
                if let Err(e) = self.repair(f) {
                    result = Err(e);
                    break;
                }
            }
        }
        // The repairs wrote to the tracker: read it again.
        result.and_then(|()| self.feed_tracker_read())?;
        self.append(Vec::new())
    }

    fn repaired(&mut self, f: &Finding, action: String) {
        self.defer(vec![Event::RepairApplied { kind: f.kind.name().to_string(), issue: f.issue.clone(), action }]);
    }

    fn repair(&mut self, f: Finding) -> RunResult<()> {
        let id = f.issue.clone().unwrap_or_default();
        // A claim that an earlier repair of this recovery already ended needs nothing more.
        if recovery::moot(&self.model, &f) {
            return Ok(());
        }
        match &f.repair {
            // Nothing to do here; a dead holder's issue lock was taken over above, with its claim.
            Repair::Manual { .. } => Ok(()),
            Repair::TakeOverLock { .. } => {
                self.repaired(&f, f.repair.describe());
                Ok(())
            }
            r if r.is_safe() => {
                let outcome = {
                    let _git = self.git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    crate::repair::apply_safe(
                        &self.repo,
                        &self.model.state,
                        Some(self.tracker.as_ref()),
                        &f,
                        self.opts.grace,
                    )
                };
                match outcome {
                    Ok(events) => self.defer(events.unwrap_or_default()),
                    Err(e) if f.repair == Repair::ReleaseInTracker => {
                        self.progress
                            .line(&format!("  could not {}: {e}; trying again when the run ends", f.repair.describe()));
                        self.unrepaired.push(f.clone());
                    }
                    Err(e) => self.progress.line(&format!("  could not {}: {e}", f.repair.describe())),
                }
                Ok(())
            }
            Repair::DropClaim { reason, release } => self.drop_claim(&f, &id, reason, *release),
            Repair::Reclaim => {
                let mut events = Vec::new();
                match self.tracker.claim(&id, &self.opts.actor, &mut events) {
                    Ok(_) => {
                        self.defer(events);
                        self.repaired(&f, f.repair.describe());
                        Ok(())
                    }
                    Err(e) => {
                        self.defer(events);
                        let reason = format!("claiming it again failed: {e}");
                        self.drop_claim(&f, &id, &reason, ReleaseReason::Abandoned)
                    }
                }
            }
            Repair::Adopt { attempt, pid, pgid, start_time } => {
                self.repaired(&f, f.repair.describe());
                self.adopt(&id, *attempt, *pid, *pgid, *start_time)
            }
            Repair::RecordSpawnAndAdopt { attempt, pid, pgid, start_time } => {
                self.defer(vec![Event::AgentSpawned {
                    issue: id.clone(),
                    attempt: *attempt,
                    pid: *pid,
                    pgid: *pgid,
                    start_time: *start_time,
                }]);
                self.repaired(&f, f.repair.describe());
                self.append(Vec::new())?;
                self.adopt(&id, *attempt, *pid, *pgid, *start_time)
            }
            Repair::ApplyExit { attempt, record_spawn, code, signal, duration_ms } => {
                if let Some(pid) = record_spawn {
                    self.defer(vec![Event::AgentSpawned {
                        issue: id.clone(),
                        attempt: *attempt,
                        pid: *pid,
                        pgid: *pid,
                        start_time: None,
                    }]);
                }
                self.repaired(&f, f.repair.describe());
                let dir = self.repo.attempt_dir(&id, *attempt);
                let error = agent_error(&dir);
                let words = super::agent_output::from_files(&dir);
                let usage = words.usage;
                let end = AgentEnd {
                    code: *code,
                    signal: *signal,
                    duration_ms: *duration_ms,
                    error,
                    said: words.said,
                    session: words.session.or_else(|| self.named_session(&id, *attempt)),
                    context_exhausted: words.context_exhausted,
                    ..AgentEnd::default()
                };
                self.feed(Input::AgentExited { issue: id, attempt: *attempt, end, usage })
            }
            Repair::RecordCrash { attempt, pgid } => {
                if let Some(pgid) = pgid {
                    crate::process_group::stop_group_blocking(*pgid, self.opts.grace);
                }
                self.repaired(&f, f.repair.describe());
                self.feed(Input::AgentExited { issue: id, attempt: *attempt, end: recovery::crashed(), usage: None })
            }
            Repair::AbandonAttempt { attempt } => {
                // What is left of the wrapper's group would run unwatched.
                if let Some(g) = self
                    .state()
                    .issues
                    .get(&id)
                    .and_then(|i| i.claim.as_ref()?.attempt.clone())
                    .and_then(|a| self.marked_group(&a.marker))
                {
                    crate::process_group::stop_group_blocking(g, self.opts.grace);
                }
                let reason = recovery::NEVER_STARTED;
                self.defer(vec![Event::AttemptAbandoned {
                    issue: id.clone(),
                    attempt: *attempt,
                    reason: reason.into(),
                }]);
                self.repaired(&f, f.repair.describe());
                self.feed(Input::Resume { issue: id, resume: Resume::Failed { why: reason.into() } })
            }
            Repair::RecordMerge { commit } => {
                self.repaired(&f, f.repair.describe());
                self.feed(Input::Resume { issue: id, resume: Resume::Merged { commit: commit.clone() } })
            }
            Repair::RedoMerge => {
                if self.opts.isolation == Isolation::Worktree {
                    // A rebase the crash interrupted.
                    let _ = git::run(&self.repo.worktree_path(&id), ["rebase", "--abort"]);
                }
                self.repaired(&f, f.repair.describe());
                self.feed(Input::Resume { issue: id, resume: Resume::Merge })
            }
            Repair::Resume { step } => {
                self.repaired(&f, f.repair.describe());
                self.resume(&id, *step)
            }
            // Handled by the `is_safe` arm above.
            Repair::ReleaseInTracker
            | Repair::BreakFileLock { .. }
            | Repair::BreakLock { .. }
            | Repair::RemoveLockFile { .. }
            | Repair::StopAgent { .. }
            | Repair::RemoveWorktree { .. }
            | Repair::RemoveRunDir { .. }
            | Repair::DeleteBranch { .. }
            | Repair::DropCheckpoint { .. } => Ok(()),
        }
    }

    /// The tracker repairs recovery could not make (the tracker did not work then), tried again as the run ends,
    /// when no tracker call is out.
    pub(super) fn repair_again(&mut self) {
        for f in std::mem::take(&mut self.unrepaired) {
            match crate::repair::apply_safe(
                &self.repo,
                &self.model.state,
                Some(self.tracker.as_ref()),
                &f,
                self.opts.grace,
            ) {
                Ok(events) => {
                    self.progress.line(&format!("recovered: {}", f.repair.describe()));
                    self.defer(events.unwrap_or_default());
                }
                Err(e) => self.progress.line(&format!("could not {}: {e}; left for the next run", f.repair.describe())),
            }
        }
    }

    /// Carries a claim on from the step the log says it reached.
    fn resume(&mut self, id: &str, step: Step) -> RunResult<()> {
        let claim = self.state().issues.get(id).and_then(|i| i.claim.clone());
        let Some(claim) = claim else { return Ok(()) };
        let seen = match &claim.worktree {
            _ if self.opts.isolation != Isolation::Worktree => WorktreeSeen::NotIsolated,
            Some(wt) if !Path::new(&wt.path).is_dir() => WorktreeSeen::Missing,
            _ => WorktreeSeen::Present,
        };
        let Some(next) = recovery::resuming(id, &claim, step, seen) else { return Ok(()) };
        if !next.record.is_empty() {
            self.defer(next.record);
            self.append(Vec::new())?;
        }
        if next.reset_worktree {
            self.reset_worktree(id)?;
        }
        self.feed(Input::Resume { issue: id.to_string(), resume: next.resume })
    }

    /// Gives a claim up without touching the tracker: its agent is stopped and its attempt closed first.
    fn drop_claim(&mut self, f: &Finding, id: &str, reason: &str, release: ReleaseReason) -> RunResult<()> {
        let claim = self.state().issues.get(id).and_then(|i| i.claim.clone());
        let Some(claim) = claim else { return Ok(()) };
        if let Some(a) = claim.attempt.as_ref().filter(|a| a.is_open()) {
            // The recorded group only while its leader is still the agent (pid and start time): a pgid
            // left by a dead agent may be someone else's now. Else the group that carries its marker.
            let pgid = a
                .spawned
                .as_ref()
                .filter(|s| s.start_time.is_some() && crate::process::is_running(s.pid, s.start_time))
                .map(|s| s.pgid)
                .or_else(|| self.marked_group(&a.marker));
            if let Some(pgid) = pgid {
                crate::process_group::stop_group_blocking(pgid, self.opts.grace);
            }
            self.defer(vec![Event::AttemptAbandoned {
                issue: id.to_string(),
                attempt: a.number,
                reason: format!("the claim was given up: {reason}"),
            }]);
        }
        if claim.merge.as_ref().is_some_and(|m| m.commit.is_none()) {
            self.defer(vec![Event::MergeConflicted {
                issue: id.to_string(),
                detail: format!("not finished: the claim was given up ({reason})"),
            }]);
        }
        self.defer(vec![Event::ClaimLost { issue: id.to_string(), holder: None, detail: reason.to_string() }]);
        self.repaired(f, f.repair.describe());
        self.append(Vec::new())?;
        self.feed(Input::Resume { issue: id.to_string(), resume: Resume::Drop { reason: reason.to_string(), release } })
    }

    /// The process group of a running process that carries `marker`, if any.
    fn marked_group(&self, marker: &str) -> Option<u32> {
        let root = self.repo.root.display().to_string();
        crate::process::with_env(&["BDP_MARKER", "BDP_WORKTREE"])
            .into_iter()
            .find(|p| {
                p.values[0].as_deref() == Some(marker) && p.values[1].as_deref().is_some_and(|w| w.starts_with(&root))
            })
            .map(|p| p.pgid)
    }

    /// Supervises an agent a crashed orchestrator started, to its end.
    fn adopt(&mut self, id: &str, attempt: u32, pid: u32, pgid: u32, start_time: Option<u64>) -> RunResult<()> {
        let elapsed = start_time.and_then(crate::process::age).unwrap_or_default();
        let stop = self.stop_now.subscribe();
        let dir = self.repo.attempt_dir(id, attempt);
        let adopted = Adopted { pid, pgid, start_time, elapsed };
        let supervision = agent::supervise_adopted(adopted, self.opts.limits(), dir.clone(), stop);
        self.watch(id, attempt, dir, supervision);
        self.feed(Input::Adopted { issue: id.to_string(), attempt, pid })
    }

    /// Reads the tracker and tells the run loop what it holds.
    fn feed_tracker_read(&mut self) -> RunResult<()> {
        let result = self.tracker.list(&crate::tracker::ListFilter::default()).map_err(|e| e.to_string());
        self.feed(Input::TrackerRead { result, at: jiff::Timestamp::now() })
    }
}

/// The wrapper's error (the agent could not be started), from the exit file.
fn agent_error(dir: &Path) -> Option<String> {
    crate::exit_file::read_exit_file(dir).ok().flatten().and_then(|r| r.error)
}
