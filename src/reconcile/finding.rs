//! A finding: one mismatch between the log and the world (or one step a crash interrupted), with the
//! repair that resolves it. Kinds and repairs have stable snake_case names: they are written to the log
//! (`reconcile_finding`, `repair_applied`) and to `bdp audit --json`.

use serde::Serialize;

use crate::event::{IssueId, ReleaseReason};

/// What kind of mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The log's chain or a record is damaged.
    LogDamaged,
    /// A checkpoint in the index disagrees with the log.
    CheckpointMismatch,
    /// The log says an attempt runs, and its process (pid and start time) does.
    AgentAlive,
    /// The log says an attempt runs; its process is gone and left an exit file.
    AgentExitedUnrecorded,
    /// The log says an attempt runs; its process is gone without an exit file (or its pid is reused).
    AgentCrashed,
    /// A spawn was asked for and never confirmed; the process with its marker runs.
    SpawnUnconfirmedAlive,
    /// A spawn was asked for and never confirmed; the agent ran and left an exit file.
    SpawnUnconfirmedExited,
    /// A spawn was asked for and never confirmed; no process, no exit file.
    SpawnUnconfirmedGone,
    /// A merge started and its end was not recorded; the branch is in the base branch.
    MergeUnrecorded,
    /// A merge started and its end was not recorded; the branch is not in the base branch.
    MergeInterrupted,
    /// A claim whose next step a crash interrupted (the log knows where it stood).
    StepInterrupted,
    /// Claimed in the log; the tracker has it open and unassigned.
    ClaimNotInTracker,
    /// Claimed in the log; the tracker gives it to someone else.
    ClaimTaken,
    /// Claimed in the log; the tracker closed it, and bdp did not.
    ClaimClosedElsewhere,
    /// Claimed in the log; the tracker does not know the issue.
    ClaimedIssueMissing,
    /// `in_progress` and assigned to bdp in the tracker, with no claim in the log.
    TrackerClaimWithoutLog,
    /// A lock in the log whose holder is dead (or its pid reused).
    LockHolderDead,
    /// A lock in the log held for an issue bdp no longer holds.
    LockOfFinishedIssue,
    /// A lock file with no lock in the log.
    LockFileWithoutLock,
    /// A lock in the log with no lock file.
    LockFileMissing,
    /// A process group with a bdp attempt marker that no open attempt owns.
    AgentWithoutClaim,
    /// A worktree under `.bdp/worktrees/` that no claim owns.
    WorktreeWithoutClaim,
    /// A `bdp/*` branch that no claim owns and that bdp did not keep on purpose.
    BranchWithoutClaim,
    /// A run directory under `.bdp/runs/` that no live claim needs (only `bdp clean` looks for these).
    RunDirWithoutClaim,
    /// An agent's file lock (`bdp lock`) whose holder is dead, whose attempt ended, or whose TTL passed.
    FileLockStale,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::LogDamaged => "log_damaged",
            FindingKind::CheckpointMismatch => "checkpoint_mismatch",
            FindingKind::AgentAlive => "agent_alive",
            FindingKind::AgentExitedUnrecorded => "agent_exited_unrecorded",
            FindingKind::AgentCrashed => "agent_crashed",
            FindingKind::SpawnUnconfirmedAlive => "spawn_unconfirmed_alive",
            FindingKind::SpawnUnconfirmedExited => "spawn_unconfirmed_exited",
            FindingKind::SpawnUnconfirmedGone => "spawn_unconfirmed_gone",
            FindingKind::MergeUnrecorded => "merge_unrecorded",
            FindingKind::MergeInterrupted => "merge_interrupted",
            FindingKind::StepInterrupted => "step_interrupted",
            FindingKind::ClaimNotInTracker => "claim_not_in_tracker",
            FindingKind::ClaimTaken => "claim_taken",
            FindingKind::ClaimClosedElsewhere => "claim_closed_elsewhere",
            FindingKind::ClaimedIssueMissing => "claimed_issue_missing",
            FindingKind::TrackerClaimWithoutLog => "tracker_claim_without_log",
            FindingKind::LockHolderDead => "lock_holder_dead",
            FindingKind::LockOfFinishedIssue => "lock_of_finished_issue",
            FindingKind::LockFileWithoutLock => "lock_file_without_lock",
            FindingKind::LockFileMissing => "lock_file_missing",
            FindingKind::AgentWithoutClaim => "agent_without_claim",
            FindingKind::WorktreeWithoutClaim => "worktree_without_claim",
            FindingKind::BranchWithoutClaim => "branch_without_claim",
            FindingKind::RunDirWithoutClaim => "run_dir_without_claim",
            FindingKind::FileLockStale => "file_lock_stale",
        }
    }
}

/// The step of a claim to carry on with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Make the worktree (none recorded yet).
    Worktree,
    /// Start the next attempt (a worktree is there, or a retry was scheduled).
    Spawn,
    /// Decide what the attempt's recorded exit leads to: check, merge, close, retry or give up.
    AfterExit,
    /// The check passed: merge.
    Merge,
    /// Merged: close the issue in the tracker.
    Close,
    /// Closed: remove the worktree and release.
    Release,
}

/// The repair of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Repair {
    /// Nothing bdp can do by itself; the detail says what a person should do.
    Manual { hint: String },
    /// Supervise the running attempt to its end.
    Adopt { attempt: u32, pid: u32, pgid: u32, start_time: Option<u64> },
    /// Record the spawn the log missed, then supervise it.
    RecordSpawnAndAdopt { attempt: u32, pid: u32, pgid: u32, start_time: Option<u64> },
    /// Record the exit (and the spawn, when `record_spawn`), then go on as if just observed.
    ApplyExit { attempt: u32, record_spawn: Option<u32>, code: Option<i32>, signal: Option<i32>, duration_ms: u64 },
    /// Record that the attempt crashed (stopping what is left of its group); retry within the budget.
    RecordCrash { attempt: u32, pgid: Option<u32> },
    /// Record that the attempt was never started; retry within the budget.
    AbandonAttempt { attempt: u32 },
    /// Record the merge that happened.
    RecordMerge { commit: String },
    /// Merge again.
    RedoMerge,
    /// Carry on with the claim's next step.
    Resume { step: Step },
    /// Claim the issue in the tracker again, then carry on.
    Reclaim,
    /// Give the claim up without touching the tracker (stopping its agent, if any), recorded as a release
    /// for `release`.
    DropClaim { reason: String, release: ReleaseReason },
    /// Set the issue back to open and unassigned in the tracker.
    ReleaseInTracker,
    /// Remove the lock from the log (and its file).
    BreakLock { lock: String },
    /// The recovering run takes the lock over with the claim it belongs to.
    TakeOverLock { lock: String },
    /// Remove the lock file.
    RemoveLockFile { path: String },
    /// Stop the process group (TERM, grace, KILL).
    StopAgent { pgid: u32 },
    /// `git worktree remove --force` (and prune).
    RemoveWorktree { path: String },
    /// `git branch -D`.
    DeleteBranch { branch: String },
    /// Remove an issue's run directory (its attempts' prompts, output and exit files).
    RemoveRunDir { path: String },
    /// Delete the checkpoint from the index (it is a cache).
    DropCheckpoint { seq: u64 },
    /// Break an agent's file lock: remove its file (`file`), recorded as broken.
    BreakFileLock { file: String, path: String, holder: String },
}

impl Repair {
    pub fn name(&self) -> &'static str {
        match self {
            Repair::Manual { .. } => "manual",
            Repair::Adopt { .. } => "adopt",
            Repair::RecordSpawnAndAdopt { .. } => "record_spawn_and_adopt",
            Repair::ApplyExit { .. } => "apply_exit",
            Repair::RecordCrash { .. } => "record_crash",
            Repair::AbandonAttempt { .. } => "abandon_attempt",
            Repair::RecordMerge { .. } => "record_merge",
            Repair::RedoMerge => "redo_merge",
            Repair::Resume { .. } => "resume",
            Repair::Reclaim => "reclaim",
            Repair::DropClaim { .. } => "drop_claim",
            Repair::ReleaseInTracker => "release_in_tracker",
            Repair::BreakLock { .. } => "break_lock",
            Repair::TakeOverLock { .. } => "take_over_lock",
            Repair::RemoveLockFile { .. } => "remove_lock_file",
            Repair::StopAgent { .. } => "stop_agent",
            Repair::RemoveWorktree { .. } => "remove_worktree",
            Repair::DeleteBranch { .. } => "delete_branch",
            Repair::RemoveRunDir { .. } => "remove_run_dir",
            Repair::DropCheckpoint { .. } => "drop_checkpoint",
            Repair::BreakFileLock { .. } => "break_file_lock",
        }
    }

    /// Whether `bdp audit --fix` may apply it: it needs no supervision, merge or retry (those are what
    /// `bdp run` does when it recovers) and loses no work.
    pub fn is_safe(&self) -> bool {
        matches!(
            self,
            Repair::ReleaseInTracker
                | Repair::BreakLock { .. }
                | Repair::RemoveLockFile { .. }
                | Repair::StopAgent { .. }
                | Repair::RemoveWorktree { .. }
                | Repair::DeleteBranch { .. }
                | Repair::RemoveRunDir { .. }
                | Repair::DropCheckpoint { .. }
                | Repair::BreakFileLock { .. }
        )
    }

    /// One line for people: what the repair does.
    pub fn describe(&self) -> String {
        match self {
            Repair::Manual { hint } => hint.clone(),
            Repair::Adopt { attempt, pid, .. } => format!("adopt attempt {attempt} (pid {pid}) and supervise it"),
            Repair::RecordSpawnAndAdopt { attempt, pid, .. } => {
                format!("record the spawn of attempt {attempt} (pid {pid}) and supervise it")
            }
            Repair::ApplyExit { attempt, code, signal, .. } => {
                let how = match (code, signal) {
                    (Some(c), _) => format!("exit {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => "no status".into(),
                };
                format!("apply the exit of attempt {attempt} ({how}) as if just seen")
            }
            Repair::RecordCrash { attempt, .. } => {
                format!("record attempt {attempt} as crashed; retry within the budget")
            }
            Repair::AbandonAttempt { attempt } => {
                format!("record attempt {attempt} as never started; retry within the budget")
            }
            Repair::RecordMerge { commit } => format!("record the merge ({})", crate::text::short(commit)),
            Repair::RedoMerge => "merge again".into(),
            Repair::Resume { step } => format!("carry on: {}", step_text(*step)),
            Repair::Reclaim => "claim it in the tracker again and carry on".into(),
            Repair::DropClaim { reason, .. } => format!("give the claim up ({reason}); the tracker is left as it is"),
            Repair::ReleaseInTracker => "set it back to open and unassigned in the tracker".into(),
            Repair::BreakLock { lock } => format!("break the lock {lock}"),
            Repair::TakeOverLock { lock } => format!("take the lock {lock} over with its claim"),
            Repair::RemoveLockFile { path } => format!("remove {path}"),
            Repair::StopAgent { pgid } => format!("stop process group {pgid} (TERM, then KILL)"),
            Repair::RemoveWorktree { path } => format!("remove the worktree {path}"),
            Repair::DeleteBranch { branch } => format!("delete the branch {branch}"),
            Repair::RemoveRunDir { path } => format!("remove the run directory {path}"),
            Repair::DropCheckpoint { seq } => format!("drop the checkpoint at seq {seq}"),
            Repair::BreakFileLock { path, holder, .. } => format!("break {holder}'s file lock on {path}"),
        }
    }
}

fn step_text(step: Step) -> &'static str {
    match step {
        Step::Worktree => "make the worktree and start the agent",
        Step::Spawn => "start the next attempt",
        Step::AfterExit => "check, merge and close (or retry) after the recorded exit",
        Step::Merge => "merge the checked branch",
        Step::Close => "close the merged issue",
        Step::Release => "release the closed issue",
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub kind: FindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue: Option<IssueId>,
    /// What else it is about (a lock, a path, a branch, a process group), when not only an issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What the log says.
    pub log: String,
    /// What the world says (tracker, processes, files, git).
    pub world: String,
    pub repair: Repair,
}

impl Finding {
    /// The text stored in a `reconcile_finding` event.
    pub fn detail(&self) -> String {
        format!("log: {}; world: {}", self.log, self.world)
    }
}
