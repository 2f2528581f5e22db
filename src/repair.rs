//! The safe repairs of [`crate::reconcile`] findings, applied to the world: stop a stray process group,
//! remove a worktree, a branch or a lock file, break a lock, give an issue back in the tracker, drop a
//! checkpoint. `bdp audit --fix` applies them; `bdp run` applies the same ones while it recovers. Each
//! returns the events that record what it did (the caller appends them, with a `repair_applied`).

use std::path::Path;
use std::time::Duration;

use crate::event::Event;
use crate::git;
use crate::reconcile::{Finding, Repair};
use crate::repo::Repo;
use crate::state::State;
use crate::tracker::Tracker;

/// Applies one safe repair. `Ok(None)` when the repair is not a safe one (it is left for `bdp run`).
pub fn apply_safe(
    repo: &Repo,
    state: &State,
    tracker: &dyn Tracker,
    finding: &Finding,
    grace: Duration,
) -> Result<Option<Vec<Event>>, String> {
    let mut events = Vec::new();
    match &finding.repair {
        Repair::StopAgent { pgid } => crate::process_group::stop_group_blocking(*pgid, grace),
        Repair::RemoveWorktree { path } => {
            let path = Path::new(path);
            git::remove_worktree(&repo.root, path).map_err(|e| e.to_string())?;
            if path.is_dir() {
                std::fs::remove_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if let Some(issue) = &finding.issue {
                events.push(Event::WorktreeRemoved { issue: issue.clone(), path: path.display().to_string() });
            }
        }
        Repair::DeleteBranch { branch } => git::delete_branch(&repo.root, branch).map_err(|e| e.to_string())?,
        Repair::RemoveLockFile { path } => remove_file(Path::new(path))?,
        Repair::BreakLock { lock } => {
            remove_file(&repo.lock_path(lock))?;
            if state.locks.contains_key(lock) {
                events.push(Event::LockBroken { lock: lock.clone(), reason: finding.detail() });
            }
        }
        Repair::ReleaseInTracker => {
            let issue = finding.issue.as_deref().ok_or("a tracker repair without an issue")?;
            tracker.release(issue, &mut events).map_err(|e| e.to_string())?;
        }
        Repair::DropCheckpoint { seq } => {
            crate::log::index::Index::open(&repo.index_path())
                .and_then(|index| index.drop_checkpoint(*seq))
                .map_err(|e| e.to_string())?;
        }
        // What only `bdp run` does (supervise, merge, retry, claim) or a person does. Listed, not `_`, so that a
        // new repair is placed here or above by the compiler's say.
        Repair::Manual { .. }
        | Repair::Adopt { .. }
        | Repair::RecordSpawnAndAdopt { .. }
        | Repair::ApplyExit { .. }
        | Repair::RecordCrash { .. }
        | Repair::AbandonAttempt { .. }
        | Repair::RecordMerge { .. }
        | Repair::RedoMerge
        | Repair::Resume { .. }
        | Repair::Reclaim
        | Repair::DropClaim { .. }
        | Repair::TakeOverLock { .. } => return Ok(None),
    }
    events.push(Event::RepairApplied {
        kind: finding.kind.name().to_string(),
        issue: finding.issue.clone(),
        action: finding.repair.describe(),
    });
    Ok(Some(events))
}

fn remove_file(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
