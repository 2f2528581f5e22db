//! The safe repairs of [`crate::reconcile`] findings, applied to the world: stop a stray process group,
//! remove a worktree, a branch or a lock file, break a lock, give an issue back in the tracker, drop a
//! checkpoint, remove a run directory. `bdp audit --fix` applies them, `bdp clean` applies those of its
//! leftovers, and `bdp run` applies the same ones while it recovers. Each returns the events that record
//! what it did (the caller appends them), ending with a `repair_applied`.

use std::path::Path;
use std::time::Duration;

use crate::event::Event;
use crate::git;
use crate::reconcile::{Finding, Repair};
use crate::repo::Repo;
use crate::state::State;
use crate::tracker::Tracker;

/// Applies one safe repair. `Ok(None)` when the repair is not a safe one (it is left for `bdp run`).
/// `tracker` may be `None` where no tracker repair can come up (`bdp clean`).
pub fn apply_safe(
    repo: &Repo,
    state: &State,
    tracker: Option<&dyn Tracker>,
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
                // The path as the log has it for the issue's claim, when it is this worktree: the fold then
                // knows the claim's worktree is gone.
                let logged = state
                    .issues
                    .get(issue)
                    .and_then(|i| i.claim.as_ref()?.worktree.as_ref())
                    .map(|w| w.path.clone())
                    .filter(|logged| Path::new(logged).file_name() == path.file_name());
                let path = logged.unwrap_or_else(|| path.display().to_string());
                events.push(Event::WorktreeRemoved { issue: issue.clone(), path });
            }
        }
        Repair::DeleteBranch { branch } => git::delete_branch(&repo.root, branch).map_err(|e| e.to_string())?,
        Repair::RemoveRunDir { path } => match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{path}: {e}")),
            _ => {}
        },
        Repair::RemoveLockFile { path } => remove_file(Path::new(path))?,
        Repair::BreakFileLock { file, path, holder } => {
            remove_file(Path::new(file))?;
            events.push(Event::FileLockBroken {
                holder: holder.clone(),
                path: path.clone(),
                reason: finding.world.clone(),
                by: "bdp (audit)".into(),
            });
        }
        Repair::BreakLock { lock } => {
            remove_file(&repo.lock_path(lock))?;
            if state.locks.contains_key(lock) {
                events.push(Event::LockBroken { lock: lock.clone(), reason: finding.detail() });
            }
        }
        Repair::ReleaseInTracker => {
            let issue = finding.issue.as_deref().ok_or("a tracker repair without an issue")?;
            let tracker = tracker.ok_or("a tracker repair where no tracker is open")?;
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
