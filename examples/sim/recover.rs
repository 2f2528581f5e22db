//! Recovery in the simulator, as `supervisor::recover` does it: the findings of `reconcile::diff` recorded,
//! the kept claims taken over, each repair carried out in the simulated world and fed to `decide` as inputs,
//! the tracker read again.

use bdp::dispatch::recovery::{self, WorktreeSeen};
use bdp::dispatch::{AgentEnd, Input, Resume};
use bdp::event::{Event, ReleaseReason};
use bdp::reconcile::{Finding, Repair};

use crate::check::Violation;
use crate::execute::status_event;
use crate::run::{Halt, Sim};
use crate::world::{ACTOR, World};

impl Sim {
    /// As `supervisor::recover`: records the findings, takes the kept claims over, repairs in order, reads the
    /// tracker again.
    pub(crate) fn recover(&mut self, findings: Vec<Finding>) -> Result<(), Halt> {
        if findings.is_empty() {
            return Ok(());
        }
        let events = findings
            .iter()
            .map(|f| Event::ReconcileFinding { kind: f.kind.name().into(), issue: f.issue.clone(), detail: f.detail() })
            .collect();
        self.append(events, true)?;
        for issue in recovery::kept_claims(&self.model.state, &findings) {
            self.feed(Input::TakeOver { issue })?;
        }
        for f in findings {
            self.repair(f)?;
        }
        let result = self.read_tracker();
        self.feed(Input::TrackerRead { result, at: jiff::Timestamp::UNIX_EPOCH })?;
        self.append(vec![], true)?;
        // Every claim the log has is carried on by this run: none is lost.
        for (id, _) in self.model.state.claimed() {
            if !self.model.held.contains_key(id) {
                return Err(Violation::new(self, format!("recovery left the claim of {id} to nobody")).into());
            }
        }
        Ok(())
    }

    pub(crate) fn repaired(&mut self, f: &Finding) {
        self.pending.push(Event::RepairApplied {
            kind: f.kind.name().into(),
            issue: f.issue.clone(),
            action: f.repair.describe(),
        });
    }

    pub(crate) fn repair(&mut self, f: Finding) -> Result<(), Halt> {
        let id = f.issue.clone().unwrap_or_default();
        if recovery::moot(&self.model, &f) {
            return Ok(());
        }
        let resume = |s: &mut Sim, resume: Resume| s.feed(Input::Resume { issue: id.clone(), resume });
        match f.repair.clone() {
            Repair::Manual { .. } => Ok(()),
            Repair::TakeOverLock { .. } => {
                self.repaired(&f);
                Ok(())
            }
            // The simulated agents take no file locks.
            Repair::BreakFileLock { .. } => Ok(()),
            Repair::StopAgent { pgid } => {
                self.stop_group(pgid);
                self.repaired(&f);
                Ok(())
            }
            Repair::RemoveWorktree { path } => {
                self.world.worktrees.retain(|_, (p, _)| *p != path);
                if let Some(issue) = &f.issue {
                    self.pending.push(Event::WorktreeRemoved { issue: issue.clone(), path });
                }
                self.repaired(&f);
                Ok(())
            }
            Repair::DeleteBranch { branch } => {
                if let Some(issue) = crate::world::issue_of_branch(&branch) {
                    self.world.branches.remove(&issue);
                }
                self.repaired(&f);
                Ok(())
            }
            Repair::RemoveLockFile { path } => {
                self.world.lock_files.retain(|issue, _| crate::world::lock_path(issue) != path);
                self.repaired(&f);
                Ok(())
            }
            Repair::BreakLock { lock } => {
                self.world.lock_files.retain(|issue, _| bdp::reconcile::issue_lock(issue) != lock);
                if self.model.state.locks.contains_key(&lock) {
                    self.pending.push(Event::LockBroken { lock, reason: f.detail() });
                }
                self.repaired(&f);
                Ok(())
            }
            Repair::ReleaseInTracker => {
                if !self.release_in_tracker(&f) {
                    // As `supervisor::recover`: tried again as the run ends.
                    self.unrepaired.push(f);
                }
                Ok(())
            }
            // Only `bdp clean` finds run directories; the simulated world has none.
            Repair::DropCheckpoint { .. } | Repair::RemoveRunDir { .. } => Ok(()),
            Repair::DropClaim { reason, release } => self.drop_claim(&f, &id, &reason, release),
            Repair::Reclaim => {
                let works = self.world.tracker_works(self.now);
                let mine = self
                    .world
                    .issues
                    .get(&id)
                    .is_some_and(|i| i.issue.status == "open" || i.issue.assignee.as_deref() == Some(ACTOR));
                if works && mine {
                    if let Some(issue) = self.world.issue_mut(&id) {
                        issue.status = "in_progress".into();
                        issue.assignee = Some(ACTOR.into());
                    }
                    self.pending.push(status_event(&id, "in_progress", Some(ACTOR)));
                    self.repaired(&f);
                    Ok(())
                } else {
                    self.drop_claim(&f, &id, "claiming it again failed", ReleaseReason::Abandoned)
                }
            }
            Repair::Adopt { attempt, .. } => {
                self.repaired(&f);
                self.adopt(&id, attempt)
            }
            Repair::RecordSpawnAndAdopt { attempt, pid, pgid, start_time } => {
                self.pending.push(Event::AgentSpawned { issue: id.clone(), attempt, pid, pgid, start_time });
                self.repaired(&f);
                self.append(vec![], true)?;
                self.adopt(&id, attempt)
            }
            Repair::ApplyExit { attempt, record_spawn, code, signal, duration_ms } => {
                if let Some(pid) = record_spawn {
                    self.pending.push(Event::AgentSpawned {
                        issue: id.clone(),
                        attempt,
                        pid,
                        pgid: pid,
                        start_time: None,
                    });
                }
                self.repaired(&f);
                let end = AgentEnd { code, signal, duration_ms, ..AgentEnd::default() };
                self.feed(Input::AgentExited { issue: id.clone(), attempt, end, usage: None })
            }
            Repair::RecordCrash { attempt, pgid } => {
                if let Some(pgid) = pgid {
                    self.stop_group(pgid);
                }
                self.repaired(&f);
                self.feed(Input::AgentExited { issue: id.clone(), attempt, end: recovery::crashed(), usage: None })
            }
            Repair::AbandonAttempt { attempt } => {
                self.stop_marked(&id, attempt);
                let reason = recovery::NEVER_STARTED;
                self.pending.push(Event::AttemptAbandoned { issue: id.clone(), attempt, reason: reason.into() });
                self.repaired(&f);
                resume(self, Resume::Failed { why: reason.into() })
            }
            Repair::RecordMerge { commit } => {
                self.repaired(&f);
                resume(self, Resume::Merged { commit })
            }
            Repair::RedoMerge => {
                self.repaired(&f);
                resume(self, Resume::Merge)
            }
            Repair::Resume { step } => {
                self.repaired(&f);
                let Some(claim) = self.model.state.issues.get(&id).and_then(|i| i.claim.clone()) else { return Ok(()) };
                let seen =
                    if self.world.worktrees.contains_key(&id) { WorktreeSeen::Present } else { WorktreeSeen::Missing };
                let Some(next) = recovery::resuming(&id, &claim, step, seen) else { return Ok(()) };
                if !next.record.is_empty() {
                    self.pending.extend(next.record);
                    self.append(vec![], true)?;
                }
                if next.reset_worktree {
                    self.reset(&id);
                }
                resume(self, next.resume)
            }
        }
    }

    /// Sets the issue of `f` back to open and unassigned, if the tracker works; whether it did.
    pub(crate) fn release_in_tracker(&mut self, f: &Finding) -> bool {
        let id = f.issue.clone().unwrap_or_default();
        if !self.world.tracker_works(self.now) {
            return false;
        }
        if let Some(issue) = self.world.issue_mut(&id) {
            issue.status = "open".into();
            issue.assignee = None;
            self.pending.push(status_event(&id, "open", None));
            self.repaired(f);
        }
        true
    }

    /// As `Orchestrator::repair_again`: the tracker repairs recovery could not make, as the run ends.
    pub(crate) fn repair_again(&mut self) {
        for f in std::mem::take(&mut self.unrepaired) {
            self.release_in_tracker(&f);
        }
    }

    pub(crate) fn drop_claim(
        &mut self,
        f: &Finding,
        id: &str,
        reason: &str,
        release: ReleaseReason,
    ) -> Result<(), Halt> {
        let Some(claim) = self.model.state.issues.get(id).and_then(|i| i.claim.clone()) else { return Ok(()) };
        if let Some(a) = claim.attempt.as_ref().filter(|a| a.is_open()) {
            self.stop_marked(id, a.number);
            self.pending.push(Event::AttemptAbandoned {
                issue: id.into(),
                attempt: a.number,
                reason: format!("the claim was given up: {reason}"),
            });
        }
        if claim.merge.as_ref().is_some_and(|m| m.commit.is_none()) {
            self.pending.push(Event::MergeConflicted { issue: id.into(), detail: format!("not finished ({reason})") });
        }
        self.pending.push(Event::ClaimLost { issue: id.into(), holder: None, detail: reason.into() });
        self.repaired(f);
        self.append(vec![], true)?;
        self.feed(Input::Resume { issue: id.into(), resume: Resume::Drop { reason: reason.into(), release } })
    }

    pub(crate) fn adopt(&mut self, id: &str, attempt: u32) -> Result<(), Halt> {
        let inc = self.incarnation;
        let Some(index) = self.world.agents.iter().position(|a| a.issue == id && a.attempt == attempt) else {
            return Ok(());
        };
        let agent = &mut self.world.agents[index];
        agent.watched_by = Some(inc);
        let (pid, alive) = (agent.pid, agent.alive);
        self.feed(Input::Adopted { issue: id.into(), attempt, pid })?;
        if !alive {
            // It ended between the look and the adoption: its end is seen at once.
            self.agent_ended(index)?;
        }
        Ok(())
    }

    pub(crate) fn stop_group(&mut self, pgid: u32) {
        let now = self.now;
        for a in self.world.agents.iter_mut().filter(|a| a.alive && a.pid == pgid) {
            a.signal = Some(15);
            a.code = None;
            World::end_agent(a, now);
        }
    }

    pub(crate) fn stop_marked(&mut self, id: &str, attempt: u32) {
        let now = self.now;
        for a in self.world.agents.iter_mut().filter(|a| a.alive && a.issue == id && a.attempt == attempt) {
            a.signal = Some(15);
            a.code = None;
            World::end_agent(a, now);
        }
    }

    pub(crate) fn reset(&mut self, id: &str) {
        if let Some(b) = self.world.branches.get_mut(id) {
            b.ahead = 0;
            b.dirty = false;
            b.head = "base".into();
        }
    }
}
