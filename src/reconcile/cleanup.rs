//! `bdp clean`'s findings: what runs left behind (worktrees under `.bdp/worktrees/`, `bdp/*` branches,
//! run directories, lock files), each either kept with the reason, or with the repair that removes it.
//! The shell applies those repairs with the same code as `audit --fix` (`crate::repair::apply_safe`).
//!
//! Who owns what is decided here, once: a thing belongs to the issue its name stands for, and stays
//! while that issue's claim is live (its agent runs, or an orchestrator does), while something uses it,
//! and (unless `--all`) while it waits for a person (a conflict, a merge that did not land) or for the
//! next run's recovery (a claim of a session that did not end). Done issues' leftovers go: `clean` is
//! the user asking for them to go, where `audit` reports only what bdp did not keep on purpose.

use std::collections::BTreeSet;

use super::{BranchOwners, Finding, FindingKind, Repair, World, describe_unclaimed};
use crate::event::ReleaseReason;
use crate::repo::unescape_path_component;
use crate::state::{IssueState, State};

/// Why a leftover stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// The claim's agent runs (its pid).
    AgentRunning(u32),
    /// An orchestrator runs and owns every claim (its pid, 0 when its lock file names none).
    OrchestratorRunning(u32),
    /// Processes work inside the worktree.
    InUse(Vec<u32>),
    /// The branch is checked out in a worktree that stays (its path).
    CheckedOutAt(String),
    /// Some process holds the lock file's flock.
    Locked,
    /// The log's lock is held by a process that runs.
    HolderRunning(u32),
    /// Claimed by a session that did not end (its id): the next `bdp run` recovers it.
    AwaitingRecovery(String),
    /// Released as a conflict: kept for a person to resolve.
    Conflicted,
    /// Its merge did not land: the work is on the branch, for a person.
    Unmerged,
}

impl Kept {
    /// In words; `path` writes a path for people (repo-relative where it can).
    pub fn describe(&self, path: &dyn Fn(&str) -> String) -> String {
        match self {
            Kept::AgentRunning(pid) => format!("agent pid {pid} is running"),
            Kept::OrchestratorRunning(0) => "claimed by the running orchestrator".into(),
            Kept::OrchestratorRunning(pid) => format!("claimed by the running orchestrator (pid {pid})"),
            Kept::InUse(pids) => format!("in use by pid {}", super::join(pids)),
            Kept::CheckedOutAt(at) => format!("checked out at {}", path(at)),
            Kept::Locked => "locked right now".into(),
            Kept::HolderRunning(pid) => format!("held in the log by pid {pid}, which is running"),
            Kept::AwaitingRecovery(session) => format!(
                "still claimed by session {session}, which did not end: the next `bdp run` recovers it; --all removes it"
            ),
            Kept::Conflicted => "conflicted, kept by `bdp run` for you to resolve; --all removes it".into(),
            Kept::Unmerged => "its merge did not land, kept by `bdp run` for you; --all removes it".into(),
        }
    }
}

/// One thing `clean` looked at: the finding (its subject is the path or branch, its repair removes it),
/// and why it stays, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub finding: Finding,
    pub kept: Option<Kept>,
    /// Removed although the log still claims it, for a session whose orchestrator is gone (`--all`).
    pub claimed_by: Option<String>,
}

/// Every leftover, worktrees first (a branch checked out in a removed worktree can go after it), then
/// branches, run directories and lock files, each in name order.
pub fn cleanup(state: &State, world: &World, all: bool) -> Vec<Leftover> {
    let owners = Owners { state, world, all };
    let mut out = Vec::new();
    let mut removed_worktrees = BTreeSet::new();
    for wt in &world.worktrees {
        let kept = owners
            .keep_work(wt.issue.as_deref())
            .or_else(|| (!wt.users.is_empty()).then(|| Kept::InUse(wt.users.clone())));
        if kept.is_none() {
            removed_worktrees.insert(wt.path.as_str());
        }
        let world_text = match &wt.branch {
            Some(b) => format!("a worktree on {b}"),
            None => "a worktree (detached)".into(),
        };
        out.push(owners.leftover(
            FindingKind::WorktreeWithoutClaim,
            wt.issue.clone(),
            &wt.path,
            world_text,
            Repair::RemoveWorktree { path: wt.path.clone() },
            kept,
        ));
    }
    let branch_owners = BranchOwners::of(state);
    for branch in &world.branches {
        let issue = branch_owners.issue(branch);
        let checked_out = world
            .worktrees
            .iter()
            .filter(|w| !removed_worktrees.contains(w.path.as_str()))
            .map(|w| (&w.path, &w.branch))
            .chain(world.other_worktrees.iter().map(|(path, branch)| (path, branch)))
            .find(|(_, b)| b.as_deref() == Some(branch.as_str()))
            .map(|(path, _)| Kept::CheckedOutAt(path.clone()));
        let kept = owners.keep_work(issue.as_deref()).or(checked_out);
        let repair = Repair::DeleteBranch { branch: branch.clone() };
        out.push(owners.leftover(
            FindingKind::BranchWithoutClaim,
            issue,
            branch,
            "the branch exists".into(),
            repair,
            kept,
        ));
    }
    for dir in &world.run_dirs {
        let name = dir.rsplit('/').next().unwrap_or(dir);
        let issue = unescape_path_component(name);
        let kept = owners.keep_work(issue.as_deref());
        let repair = Repair::RemoveRunDir { path: dir.clone() };
        out.push(owners.leftover(FindingKind::RunDirWithoutClaim, issue, dir, "a run directory".into(), repair, kept));
    }
    for file in &world.lock_files {
        let lock = state.locks.get(&file.name);
        let issue = lock.and_then(|l| l.issue.clone());
        let kept = if file.flocked {
            Some(Kept::Locked)
        } else if let Some(lock) = lock {
            owners.keep_work(issue.as_deref()).or_else(|| {
                (world.lock_holders.get(&lock.holder_pid) == Some(&true))
                    .then_some(Kept::HolderRunning(lock.holder_pid))
            })
        } else {
            None
        };
        let (kind, repair) = match lock {
            Some(_) if issue.is_some() => {
                (FindingKind::LockOfFinishedIssue, Repair::BreakLock { lock: file.name.clone() })
            }
            Some(_) => (FindingKind::LockHolderDead, Repair::BreakLock { lock: file.name.clone() }),
            None => (FindingKind::LockFileWithoutLock, Repair::RemoveLockFile { path: file.path.clone() }),
        };
        let held = match lock {
            Some(l) => format!("held by pid {} since seq {}", l.holder_pid, l.since_seq),
            None => format!("no lock {}", file.name),
        };
        let mut leftover = owners.leftover(kind, issue, &file.path, "a lock file".into(), repair, kept);
        leftover.finding.log = held;
        out.push(leftover);
    }
    out
}

struct Owners<'a> {
    state: &'a State,
    world: &'a World,
    all: bool,
}

impl Owners<'_> {
    fn issue(&self, id: Option<&str>) -> Option<&IssueState> {
        self.state.issues.get(id?)
    }

    /// A live claim: its agent runs, or an orchestrator does.
    fn live(&self, id: Option<&str>) -> Option<Kept> {
        let claim = self.issue(id)?.claim.as_ref()?;
        let attempt = claim.attempt.as_ref().filter(|a| a.outcome.is_none());
        if let Some(spawned) = attempt.and_then(|a| a.spawned.as_ref())
            && self.world.attempts.get(id?).is_some_and(|v| v.alive && Some(v.attempt) == attempt.map(|a| a.number))
        {
            return Some(Kept::AgentRunning(spawned.pid));
        }
        self.world.live_orchestrator.map(Kept::OrchestratorRunning)
    }

    /// Why an issue's worktree, branch, run directory or lock stays.
    fn keep_work(&self, id: Option<&str>) -> Option<Kept> {
        if let Some(live) = self.live(id) {
            return Some(live);
        }
        let issue = self.issue(id)?;
        if self.all {
            return None;
        }
        if let Some(claim) = &issue.claim {
            return Some(Kept::AwaitingRecovery(claim.session.clone()));
        }
        let release = issue.last_release.as_ref()?;
        if release.reason == ReleaseReason::Conflict {
            return Some(Kept::Conflicted);
        }
        release.unmerged_work.then_some(Kept::Unmerged)
    }

    fn leftover(
        &self,
        kind: FindingKind,
        issue: Option<String>,
        subject: &str,
        world: String,
        repair: Repair,
        kept: Option<Kept>,
    ) -> Leftover {
        let state = self.issue(issue.as_deref());
        let claimed_by = state.and_then(|i| i.claim.as_ref()).map(|c| c.session.clone()).filter(|_| kept.is_none());
        let finding =
            Finding { kind, issue, subject: Some(subject.to_string()), log: describe_unclaimed(state), world, repair };
        Leftover { finding, kept, claimed_by }
    }
}
