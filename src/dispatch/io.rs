//! What goes into the run loop's decisions ([`Input`]: something happened) and what comes out ([`Action`]:
//! something to do, and [`RunEvent`]: something to tell the user). The executor turns each action's result
//! into an input; nothing here does anything.

use crate::event::{AgentUsage, Event, MergeStrategy, Phase};
use crate::plan::{Issue, LabelChange};

use super::Ms;
use super::after_exit::AgentEnd;
use super::model::Ending;
use super::stop::StopLevel;

/// How a merge of a branch into the base ended (a git failure is the input's `Err`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The base branch now points at `commit`.
    Merged { commit: String },
    /// Not merged; nothing was changed. `reason` says why (local changes in the checkout that has the
    /// base branch, a branch that is not a fast-forward).
    Refused { reason: String },
    /// Not merged, nothing changed: the branch conflicts with the base (at `base_commit`) in `files`.
    Conflicted { base_commit: String, files: Vec<String> },
}

impl MergeOutcome {
    /// A conflict, or another refusal, in words ("merge conflict in a.rs, b.rs").
    pub fn refusal(&self) -> Option<String> {
        match self {
            MergeOutcome::Merged { .. } => None,
            MergeOutcome::Refused { reason } => Some(reason.clone()),
            MergeOutcome::Conflicted { files, .. } => Some(format!("merge conflict in {}", files.join(", "))),
        }
    }
}

/// Why a tracker write for one issue did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The tracker said no to this issue (someone else has it, it cannot be claimed).
    Refused(String),
    /// The tracker has no such issue (any more).
    NotFound(String),
    /// The tracker does not work (a bad line, a command that failed or timed out).
    Failed(String),
}

/// What bdp learned about a successful attempt's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchFacts {
    /// Commits ahead of the base.
    pub ahead: u64,
    /// Uncommitted changes in the worktree (looked at only when nothing was committed).
    pub dirty: bool,
    /// The branch's head commit.
    pub head: String,
}

/// A process bdp started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    pub start_time: Option<u64>,
}

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The backoff before the issue's next attempt is over.
    Retry(String),
    /// Time to read a failing tracker again (or to give up on it).
    Tracker,
}

/// Where recovery takes a claim it kept, as the log says it stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Make its worktree (or, without worktrees, spawn).
    Worktree,
    /// Its worktree is there (reset by the executor when it holds work): spawn the next attempt.
    Spawn,
    /// Its attempt ended: what the end leads to.
    AfterExit { attempt: u32, end: AgentEnd },
    /// Its attempt failed (or its check did).
    Failed { why: String },
    /// Into the merge queue.
    Merge,
    /// Its merge happened but was not recorded: record it, then close.
    Merged { commit: String },
    /// Its work is merged as `commit`: close it.
    Close { commit: String },
    /// Closed in the tracker before the crash: release it.
    Release,
    /// Give the claim up without touching the tracker.
    Drop { reason: String, release: crate::event::ReleaseReason },
}

/// Something that happened, for the run loop to decide on.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A dispatch step: the closes due are made, then issues are claimed while slots are free.
    /// `machine_busy` says why the machine has no room for another agent (load, memory), if it has none.
    Step {
        machine_busy: Option<String>,
    },
    /// The dispatcher is about to wait: the phase labels due are written.
    Idle,
    /// The tracker was read (`at`: the wall-clock time, for deferred issues).
    TrackerRead {
        result: Result<Vec<Issue>, String>,
        at: jiff::Timestamp,
    },
    /// Claims were made, each issue with its result.
    Claimed {
        results: Vec<(String, Result<(), WriteError>)>,
    },
    /// A tracker call outside the steps failed (opening a batch of writes).
    TrackerFailed {
        what: String,
        error: String,
    },
    /// The issue's worktree was made: its path and branch (or why not).
    WorktreeReady {
        issue: String,
        result: Result<(String, String), String>,
    },
    /// The agent of an attempt whose spawn intent is durable was started (or could not be).
    Spawned {
        issue: String,
        attempt: u32,
        result: Result<Started, String>,
    },
    /// A workspace hook ran for an attempt (`failure`: why it failed, with the end of its output).
    HookRan {
        issue: String,
        attempt: u32,
        hook: crate::event::Hook,
        code: Option<i32>,
        duration_ms: u64,
        failure: Option<String>,
    },
    /// Recovery adopted an agent a crashed orchestrator started: it is watched from now.
    Adopted {
        issue: String,
        attempt: u32,
        pid: u32,
    },
    AgentExited {
        issue: String,
        attempt: u32,
        end: AgentEnd,
        usage: Option<AgentUsage>,
    },
    BranchLooked {
        issue: String,
        result: Result<BranchFacts, String>,
    },
    CheckDone {
        issue: String,
        attempt: u32,
        passed: bool,
        code: Option<i32>,
        duration_ms: u64,
    },
    /// The reviewer of an attempt's work gave its verdict and comments, or could not (why).
    ReviewDone {
        issue: String,
        attempt: u32,
        result: Result<(crate::event::Verdict, String), String>,
    },
    WorktreeReset {
        issue: String,
        result: Result<(), String>,
    },
    MergeDone {
        issue: String,
        outcome: Result<MergeOutcome, String>,
    },
    ClosesDone {
        results: Vec<(String, Result<(), WriteError>)>,
    },
    GaveBack {
        issue: String,
        result: Result<(), WriteError>,
    },
    /// The worktree (and the branch, unless kept) of a released issue was removed, or not.
    Removed {
        issue: String,
        worktree: Result<(), String>,
        branch: Result<(), String>,
    },
    /// Phase labels were written, each issue with its change and result.
    LabelsDone {
        results: Vec<(String, LabelChange, Result<(), String>)>,
    },
    TimerFired(Timer),
    StopAsked(StopLevel),
    /// Recovery keeps a claim: this run holds it from now.
    TakeOver {
        issue: String,
    },
    /// Recovery carries a kept claim on.
    Resume {
        issue: String,
        resume: Resume,
    },
}

/// Something to do. The executor carries actions out in order; an `Append` with `durable` is on disk before
/// the next action starts (an intent before its act).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Append events; `durable`: now, with everything queued before (else they go with the next durable
    /// append, or before the dispatcher waits).
    Append {
        events: Vec<Event>,
        durable: bool,
    },
    /// Read the tracker's issues.
    ReadTracker,
    /// Claim issues in the tracker, each with the same label change (one call where it can).
    Claim {
        ids: Vec<String>,
        labels: LabelChange,
    },
    /// Write `.bdp/locks/<issue:ID>.lock`, naming this orchestrator.
    WriteLockFile {
        issue: String,
    },
    RemoveLockFile {
        issue: String,
    },
    /// Create the issue's worktree and branch from the base (removing leftovers first).
    MakeWorktree {
        issue: String,
    },
    /// Start the attempts' agents (issue, attempt): the executor writes each prompt and records every spawn
    /// intent (argv, paths) durably, in one append, before it starts the processes.
    Spawn {
        items: Vec<(String, u32)>,
    },
    /// Count commits on the issue's branch and look at its worktree.
    LookAtBranch {
        issue: String,
    },
    /// Give back every file lock (`bdp lock`) the attempt's agent still holds: its attempt ended.
    ReleaseFileLocks {
        issue: String,
        attempt: u32,
    },
    /// Run the reviewer on the attempt's work (review `round` of the claim).
    RunReview {
        issue: String,
        attempt: u32,
        round: u32,
    },
    RunCheck {
        issue: String,
        attempt: u32,
        command: String,
    },
    /// Reset the worktree to the base for a retry; or, with `keep` (a continuation after the agent ran out
    /// of context), commit what it holds as work in progress instead, for the next attempt to go on from.
    ResetWorktree {
        issue: String,
        keep: bool,
    },
    /// Merge (or rebase and merge) the issue's branch into the base; its intent is durable.
    Merge {
        issue: String,
        strategy: MergeStrategy,
        title: String,
    },
    Close {
        ids: Vec<String>,
        reason: String,
    },
    /// Give the issue back (open, unassigned) with a label change.
    GiveBack {
        issue: String,
        labels: LabelChange,
    },
    /// Change labels, the same change for every issue (one call where it can).
    ChangeLabels {
        ids: Vec<String>,
        change: LabelChange,
    },
    /// Remove the issue's worktree, and its branch unless `keep_branch`.
    RemoveWorktree {
        issue: String,
        path: String,
        branch: String,
        keep_branch: bool,
    },
    /// Stop every agent and check (TERM, grace, KILL).
    StopAll,
    SetTimer {
        at: Ms,
        timer: Timer,
    },
    Report(RunEvent),
}

impl Action {
    /// A call to the tracker (a read or a write): the executor makes these off the dispatcher's thread, in
    /// order, and feeds their answers back.
    pub fn is_tracker_call(&self) -> bool {
        matches!(
            self,
            Action::Claim { .. }
                | Action::Close { .. }
                | Action::GiveBack { .. }
                | Action::ChangeLabels { .. }
                | Action::ReadTracker
        )
    }
}

impl Input {
    /// The answer to a tracker call ([`Action::is_tracker_call`]): the executor feeds these back from the
    /// tracker's thread.
    pub fn is_tracker_answer(&self) -> bool {
        matches!(
            self,
            Input::Claimed { .. }
                | Input::ClosesDone { .. }
                | Input::GaveBack { .. }
                | Input::LabelsDone { .. }
                | Input::TrackerRead { .. }
        )
    }
}

/// What the user is told: typed, formatted by the progress output (and the dashboard).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run's `--max-cost` is spent: it stops claiming and drains.
    BudgetSpent {
        spent: u64,
        limit: u64,
    },
    /// A budget is set and this issue's agent ended without reporting its cost (said once per run).
    CostUnreported {
        issue: String,
    },
    /// The first attempts of several issues failed the same way: the run stops claiming and drains.
    CrashLoop {
        why: String,
        issues: Vec<String>,
    },
    /// An attempt's agent runs (`adopted`: its pid, when a crashed orchestrator started it).
    Started {
        issue: String,
        attempt: u32,
        title: String,
        adopted: Option<u32>,
    },
    /// Where an issue is now (`claimed`, `checking`, `merging`, `waiting to merge`…).
    Phase {
        issue: String,
        phase: String,
    },
    /// An issue is done with in this run.
    Ended {
        issue: String,
        ending: Ending,
        detail: String,
        label: Option<&'static str>,
        branch_kept: Option<String>,
        took: Option<Ms>,
    },
    Retry {
        issue: String,
        why: String,
        attempt: u32,
        of: u32,
        backoff: Ms,
    },
    /// A branch conflicts with the base: attempt `attempt` is to merge the base in and resolve it.
    Resolving {
        issue: String,
        files: Vec<String>,
        attempt: u32,
    },
    /// The tracker said no to a claim.
    Skipped {
        issue: String,
        why: String,
    },
    /// The tracker no longer has an issue bdp gives back.
    NotInTracker {
        issue: String,
    },
    /// A worktree or branch could not be removed.
    /// A reviewer gave its verdict (`comments`: its first line).
    Reviewed {
        issue: String,
        round: u32,
        verdict: crate::event::Verdict,
        comments: String,
        /// Changes requested: the attempt that addresses them; `None` when no round is left.
        next: Option<u32>,
    },
    /// A hook whose failure fails nothing (`before_remove`) failed: why.
    HookFailed {
        issue: String,
        why: String,
    },
    Left {
        issue: String,
        what: &'static str,
        name: String,
        error: String,
    },
    MachineBusy {
        why: String,
    },
    /// A ready issue waits: it may not run beside one that runs (the files both touch), or an older one
    /// goes first in a sequential zone.
    HeldBack {
        issue: String,
        why: String,
    },
    TrackerDown {
        error: String,
        retry_in: Ms,
    },
    TrackerStillDown {
        error: String,
    },
    TrackerBack {
        down: Ms,
        waiting: usize,
    },
    TrackerGaveUp {
        why: String,
    },
    /// A tracker write waits for the next run.
    LeftWaiting {
        issue: String,
    },
    Stopping {
        level: StopLevel,
        running: usize,
    },
}

impl RunEvent {
    pub fn phase(issue: &str, phase: impl Into<String>) -> RunEvent {
        RunEvent::Phase { issue: issue.to_string(), phase: phase.into() }
    }
}

/// The phase label of a phase (`phase:running`).
pub fn phase_label(phase: Phase) -> String {
    format!("phase:{}", phase.as_str())
}
