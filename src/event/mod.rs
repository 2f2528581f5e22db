//! The vocabulary of bdp's event log: every event the orchestrator and its helpers may append.
//!
//! This module owns the `Event` enum and the small value types its variants carry. It is part of the
//! pure core: no I/O, no clock, no randomness. Timestamps, pids and paths arrive as plain data.
//!
//! Rules for changing it (the log is forever):
//! - adding a variant or an optional field (`#[serde(default)]`) is backward compatible;
//! - renaming or changing the meaning of anything is not: bump [`FORMAT_VERSION`] and teach
//!   [`upcast`] to rewrite the older shape into the new one;
//! - every change to a variant's fields or their serde attributes goes into the mirror list in `fast.rs`
//!   too (the decoder's fast path; a forgotten field is a compile error, a new variant a test failure).

mod fast;
pub mod record;
pub mod upcast;

use serde::{Deserialize, Serialize};

pub use record::{ChainHash, DecodeError, Record, decode_line, encode_record};

/// The record format version written by this build. Older versions are upcast on read.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this build can still read.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// An issue id as the tracker spells it (`bd-a3f8`, `bd-a3f8.1`). Data from a shared repo: never a path
/// component or shell word without escaping.
pub type IssueId = String;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionEndReason {
    /// Nothing left to do (or `--max-issues` reached).
    Completed,
    /// A graceful stop: running agents were waited for.
    Drained,
    /// An immediate stop: running agents were signalled.
    Stopped,
    /// The orchestrator gave up on an error it could not handle.
    Error,
}

/// Why a claim on an issue was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    Done,
    Failed,
    Timeout,
    Abandoned,
    Shutdown,
    Conflict,
}

/// The phases an issue goes through while bdp holds it, in their usual order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Claimed,
    WorktreeReady,
    Running,
    Exited,
    Checked,
    Merged,
    Closed,
}

impl SessionEndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEndReason::Completed => "completed",
            SessionEndReason::Drained => "drained",
            SessionEndReason::Stopped => "stopped",
            SessionEndReason::Error => "error",
        }
    }
}

impl ReleaseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseReason::Done => "done",
            ReleaseReason::Failed => "failed",
            ReleaseReason::Timeout => "timeout",
            ReleaseReason::Abandoned => "abandoned",
            ReleaseReason::Shutdown => "shutdown",
            ReleaseReason::Conflict => "conflict",
        }
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Claimed => "claimed",
            Phase::WorktreeReady => "worktree_ready",
            Phase::Running => "running",
            Phase::Exited => "exited",
            Phase::Checked => "checked",
            Phase::Merged => "merged",
            Phase::Closed => "closed",
        }
    }
}

/// How the merge queue integrates a finished branch (`bdp run --merge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategy {
    Merge,
    Rebase,
    None,
}

/// How a retry carries on from the attempt before it, instead of starting afresh from the base with a
/// new conversation. Every field may be combined with the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CarryOn {
    /// That attempt was cut short (a timeout, a stall, a signal): the next one resumes its agent's
    /// conversation, this session (`claude --resume`, `codex exec resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// That attempt's work stays on the branch (what it left uncommitted is committed as work in progress)
    /// and the next attempt goes on from it: it ran out of context, or `--retry-from last`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
    /// The branch conflicts with the base: the next attempt merges the base in and resolves the conflict
    /// (`--on-conflict resolve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<Conflict>,
    /// The review of that attempt's work requested changes: the next attempt addresses these comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
}

impl CarryOn {
    /// `None` when it carries nothing on (a retry afresh).
    pub fn or_none(self) -> Option<CarryOn> {
        (self != CarryOn::default()).then_some(self)
    }
}

/// A reviewer's verdict on an attempt's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    ChangesRequested,
}

/// The workspace hooks, in the order they run for an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    AfterCreate,
    BeforeRun,
    AfterRun,
    BeforeRemove,
}

impl Hook {
    /// Its key in `.bdp/config.toml`.
    pub fn key(self) -> &'static str {
        match self {
            Hook::AfterCreate => "after_create",
            Hook::BeforeRun => "before_run",
            Hook::AfterRun => "after_run",
            Hook::BeforeRemove => "before_remove",
        }
    }
}

/// A branch's conflict with the base it is to be merged into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Conflict {
    /// The base commit the branch conflicts with.
    pub base_commit: String,
    /// The files both changed.
    pub files: Vec<String>,
}

/// What an agent reported it used. Costs are integer micro-dollars so events stay exactly comparable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micro_usd: Option<u64>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// One event. Serialized internally tagged: `{"type":"issue_claimed","issue":"bd-1",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An orchestrator (or another bdp process that writes to the log) started a session.
    SessionStarted {
        pid: u32,
        /// The orchestrator's process start time (clock ticks since boot), to tell it from a reused pid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<u64>,
        host: String,
        version: String,
        /// The effective configuration, as the session saw it.
        #[serde(default)]
        config: serde_json::Value,
        /// The session this one takes over from, when it recovers a crashed one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovers: Option<String>,
    },
    /// The session ended on purpose. A session without this event crashed.
    SessionEnded {
        reason: SessionEndReason,
        /// Issues whose agent (or check) the run left running when it ended on an error: the next `bdp run`
        /// adopts them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left_running: Vec<IssueId>,
    },

    /// bdp now holds the issue (the tracker claim succeeded and was verified).
    IssueClaimed {
        issue: IssueId,
        actor: String,
    },
    /// The tracker says someone else holds an issue bdp believed it held.
    ClaimLost {
        issue: IssueId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
        detail: String,
    },
    /// bdp gave the issue back (to open, or after closing it).
    IssueReleased {
        issue: IssueId,
        reason: ReleaseReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },

    WorktreeCreated {
        issue: IssueId,
        path: String,
        branch: String,
        base: String,
    },
    WorktreeRemoved {
        issue: IssueId,
        path: String,
    },

    /// Intent: bdp is about to spawn an agent. Without a matching `AgentSpawned` the outcome is unknown.
    SpawnRequested {
        issue: IssueId,
        attempt: u32,
        argv: Vec<String>,
        cwd: String,
        /// A value placed in the agent's environment so recovery can find the process by it.
        marker: String,
        stdout: String,
        stderr: String,
    },
    /// The agent process exists. Liveness later is `pid` and `start_time` (clock ticks since boot,
    /// field 22 of /proc/PID/stat); `None` means unknown and such a process is never adopted.
    AgentSpawned {
        issue: IssueId,
        attempt: u32,
        pid: u32,
        pgid: u32,
        start_time: Option<u64>,
    },
    /// The agent exited; exactly one of `code` or `signal` is set.
    AgentExited {
        issue: IssueId,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        duration_ms: u64,
        #[serde(default)]
        timed_out: bool,
        /// Tokens and cost, when the agent reported them (Claude Code's and Codex's JSON output).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<AgentUsage>,
        /// The agent CLI's own session id, when it printed one (Claude's `session_id`, Codex's thread id):
        /// what a later attempt resumes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
    /// The attempt's outcome can never be learned (process gone, no exit file; or a spawn that never
    /// happened). It counts as a failed attempt.
    AttemptAbandoned {
        issue: IssueId,
        attempt: u32,
        reason: String,
    },

    PhaseChanged {
        issue: IssueId,
        phase: Phase,
    },

    CheckPassed {
        issue: IssueId,
        attempt: u32,
        command: String,
        duration_ms: u64,
    },
    CheckFailed {
        issue: IssueId,
        attempt: u32,
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        duration_ms: u64,
    },

    MergeStarted {
        issue: IssueId,
        branch: String,
        base: String,
        strategy: MergeStrategy,
    },
    /// The branch is on the base branch; `commit` is the base branch's new head.
    Merged {
        issue: IssueId,
        commit: String,
    },
    MergeConflicted {
        issue: IssueId,
        detail: String,
    },

    LockAcquired {
        lock: String,
        holder_pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issue: Option<IssueId>,
    },
    LockReleased {
        lock: String,
    },
    /// A lock was taken away from a holder that is gone.
    LockBroken {
        lock: String,
        reason: String,
    },

    /// bdp wrote a status (and assignee) to the tracker.
    TrackerStatusSet {
        issue: IssueId,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
        backend: String,
    },
    TrackerLabelsChanged {
        issue: IssueId,
        #[serde(default)]
        added: Vec<String>,
        #[serde(default)]
        removed: Vec<String>,
        backend: String,
    },
    TrackerIssueClosed {
        issue: IssueId,
        reason: String,
        backend: String,
    },
    /// The tracker stopped working (`error`: the file and line, or the command and what it printed): claims
    /// paused, closes and give-backs wait. Recorded once per outage.
    TrackerDown {
        error: String,
    },
    /// The tracker works again after `down_ms`; `waiting` writes are made now.
    TrackerBack {
        down_ms: u64,
        waiting: u32,
    },
    /// The reviewer (`--review`, `--review-agent`) of an attempt's work gave its verdict: `round` counts
    /// the reviews of this claim from 1.
    ReviewVerdict {
        issue: IssueId,
        attempt: u32,
        round: u32,
        verdict: Verdict,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        comments: String,
    },
    /// `bdp lock acquire`: `holder` took locks on `paths` (all of them, or none), after waiting `waited_ms`.
    FileLockAcquired {
        holder: String,
        paths: Vec<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        shared: bool,
        pid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<u64>,
        waited_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// `holder` gave up waiting for `paths`: still held by `held_by` after `waited_ms`, or at once when its
    /// wait closed a cycle of waiters (`deadlock`, the holders in order).
    FileLockRefused {
        holder: String,
        paths: Vec<String>,
        held_by: Vec<String>,
        waited_ms: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deadlock: Vec<String>,
    },
    /// `holder` released its locks on `paths`.
    FileLockReleased {
        holder: String,
        paths: Vec<String>,
    },
    /// A stale lock was broken: its holder is dead, its attempt ended, or its TTL passed (`reason`); `by`
    /// says who broke it.
    FileLockBroken {
        holder: String,
        path: String,
        reason: String,
        by: String,
    },
    /// The agent of `attempt` said how far it is (`report_progress`, a tool of `bdp mcp`): a status line,
    /// and a percent or a step count (`step` of `steps`) when it gave one.
    ProgressReported {
        issue: IssueId,
        attempt: u32,
        status: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percent: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        steps: Option<u32>,
    },
    /// A workspace hook (`[hooks]` in `.bdp/config.toml`) ran in the issue's worktree for `attempt`
    /// (`after_create` and `before_run` before its agent, `after_run` after it, `before_remove` before the
    /// worktree goes); `code` is its exit status (none: killed or not started).
    HookRan {
        issue: IssueId,
        attempt: u32,
        hook: Hook,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        duration_ms: u64,
    },
    /// The run stopped claiming by itself (not asked to): the first attempts of several issues failed the
    /// same way (a broken agent setup), or `--max-cost` was spent. `reason` says which, in words.
    ClaimsStopped {
        reason: String,
    },
    /// Processes bdp started to talk to a CLI tracker (bd, br) since the last such record: per issue they
    /// concerned, and for no one issue (lists, exports). Written with the next append, never alone.
    TrackerCalls {
        backend: String,
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        issues: std::collections::BTreeMap<IssueId, u32>,
        #[serde(default, skip_serializing_if = "is_zero")]
        other: u32,
    },

    /// Reconciliation saw a mismatch between the log and the world.
    ReconcileFinding {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issue: Option<IssueId>,
        detail: String,
    },
    /// A repair was applied for a finding.
    RepairApplied {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issue: Option<IssueId>,
        action: String,
    },

    RetryScheduled {
        issue: IssueId,
        next_attempt: u32,
        backoff_ms: u64,
        reason: String,
        /// How the next attempt carries on from this one; absent: afresh, from the base.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carry_on: Option<CarryOn>,
    },

    /// On open, a torn tail (a crash mid-write) was cut off the log.
    LogTruncated {
        segment: String,
        offset: u64,
        dropped_bytes: u64,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Each variant's `type` tag as written in the log, listed once: [`Event::kind`] and [`Event::KINDS`] are made
/// from this list (a variant missing from it does not compile), and `event::fast`'s tests check every tag
/// against serde's.
macro_rules! event_kinds {
    ($($variant:ident => $tag:literal,)*) => {
        impl Event {
            /// The `type` tag as written in the log.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$variant { .. } => $tag,)*
                }
            }

            /// Every `type` tag this build understands, for error messages and the schema test.
            pub const KINDS: &'static [&'static str] = &[$($tag,)*];
        }
    };
}

event_kinds! {
    SessionStarted => "session_started",
    SessionEnded => "session_ended",
    IssueClaimed => "issue_claimed",
    ClaimLost => "claim_lost",
    IssueReleased => "issue_released",
    WorktreeCreated => "worktree_created",
    WorktreeRemoved => "worktree_removed",
    SpawnRequested => "spawn_requested",
    AgentSpawned => "agent_spawned",
    AgentExited => "agent_exited",
    AttemptAbandoned => "attempt_abandoned",
    PhaseChanged => "phase_changed",
    CheckPassed => "check_passed",
    CheckFailed => "check_failed",
    MergeStarted => "merge_started",
    Merged => "merged",
    MergeConflicted => "merge_conflicted",
    LockAcquired => "lock_acquired",
    LockReleased => "lock_released",
    LockBroken => "lock_broken",
    TrackerStatusSet => "tracker_status_set",
    TrackerLabelsChanged => "tracker_labels_changed",
    TrackerIssueClosed => "tracker_issue_closed",
    TrackerCalls => "tracker_calls",
    TrackerDown => "tracker_down",
    TrackerBack => "tracker_back",
    ClaimsStopped => "claims_stopped",
    HookRan => "hook_ran",
    ReviewVerdict => "review_verdict",
    FileLockAcquired => "file_lock_acquired",
    FileLockRefused => "file_lock_refused",
    FileLockReleased => "file_lock_released",
    FileLockBroken => "file_lock_broken",
    ProgressReported => "progress_reported",
    ReconcileFinding => "reconcile_finding",
    RepairApplied => "repair_applied",
    RetryScheduled => "retry_scheduled",
    LogTruncated => "log_truncated",
}

impl Event {
    /// The issue this event is about, if any.
    pub fn issue(&self) -> Option<&str> {
        match self {
            Event::IssueClaimed { issue, .. }
            | Event::ClaimLost { issue, .. }
            | Event::IssueReleased { issue, .. }
            | Event::WorktreeCreated { issue, .. }
            | Event::WorktreeRemoved { issue, .. }
            | Event::SpawnRequested { issue, .. }
            | Event::AgentSpawned { issue, .. }
            | Event::AgentExited { issue, .. }
            | Event::AttemptAbandoned { issue, .. }
            | Event::PhaseChanged { issue, .. }
            | Event::CheckPassed { issue, .. }
            | Event::CheckFailed { issue, .. }
            | Event::MergeStarted { issue, .. }
            | Event::Merged { issue, .. }
            | Event::MergeConflicted { issue, .. }
            | Event::TrackerStatusSet { issue, .. }
            | Event::TrackerLabelsChanged { issue, .. }
            | Event::TrackerIssueClosed { issue, .. }
            | Event::RetryScheduled { issue, .. }
            | Event::HookRan { issue, .. }
            | Event::ReviewVerdict { issue, .. }
            | Event::ProgressReported { issue, .. } => Some(issue),
            Event::LockAcquired { issue, .. }
            | Event::ReconcileFinding { issue, .. }
            | Event::RepairApplied { issue, .. } => issue.as_deref(),
            Event::SessionStarted { .. }
            | Event::SessionEnded { .. }
            | Event::LockReleased { .. }
            | Event::LockBroken { .. }
            | Event::TrackerCalls { .. }
            | Event::TrackerDown { .. }
            | Event::TrackerBack { .. }
            | Event::ClaimsStopped { .. }
            | Event::FileLockAcquired { .. }
            | Event::FileLockRefused { .. }
            | Event::FileLockReleased { .. }
            | Event::FileLockBroken { .. }
            | Event::LogTruncated { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant of each enum that has `as_str`; a new variant does not compile here until listed.
    fn phases() -> [Phase; 7] {
        let _listed = |p: Phase| match p {
            Phase::Claimed
            | Phase::WorktreeReady
            | Phase::Running
            | Phase::Exited
            | Phase::Checked
            | Phase::Merged
            | Phase::Closed => (),
        };
        [
            Phase::Claimed,
            Phase::WorktreeReady,
            Phase::Running,
            Phase::Exited,
            Phase::Checked,
            Phase::Merged,
            Phase::Closed,
        ]
    }

    fn reasons() -> [ReleaseReason; 6] {
        use ReleaseReason::*;
        let _listed = |r: ReleaseReason| match r {
            Done | Failed | Timeout | Abandoned | Shutdown | Conflict => (),
        };
        [Done, Failed, Timeout, Abandoned, Shutdown, Conflict]
    }

    fn session_ends() -> [SessionEndReason; 4] {
        use SessionEndReason::*;
        let _listed = |r: SessionEndReason| match r {
            Completed | Drained | Stopped | Error => (),
        };
        [Completed, Drained, Stopped, Error]
    }

    /// `as_str` is the name the log writes (checkpoints store names by `as_str` and read them by serde).
    #[test]
    fn as_str_is_the_serde_name() {
        let serde_name = |v: serde_json::Value| v.as_str().map(str::to_string);
        for p in phases() {
            assert_eq!(serde_name(serde_json::to_value(p).unwrap()).as_deref(), Some(p.as_str()));
        }
        for r in reasons() {
            assert_eq!(serde_name(serde_json::to_value(r).unwrap()).as_deref(), Some(r.as_str()));
        }
        for r in session_ends() {
            assert_eq!(serde_name(serde_json::to_value(r).unwrap()).as_deref(), Some(r.as_str()));
        }
    }
}
