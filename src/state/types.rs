//! The value types that make up [`State`](super::State): sessions, issues, claims, attempts, locks.
//! All plain data, serializable (checkpoints store them), comparable (tests fold and compare).

use serde::{Deserialize, Serialize};

use crate::event::{IssueId, MergeStrategy, Phase, ReleaseReason, SessionEndReason};

/// One session as the log tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionInfo {
    pub id: String,
    pub started_seq: u64,
    pub started_ts: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    pub host: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovers: Option<String>,
    pub end: SessionEnd,
    /// Seq and timestamp of the last record written under this session id.
    pub last_seq: u64,
    pub last_ts: String,
    pub counts: SessionCounts,
}

/// How a session ended, as far as the log knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionEnd {
    /// Still running, or crashed and not yet taken over: the log cannot tell which.
    Open,
    Ended {
        seq: u64,
        ts: String,
        reason: SessionEndReason,
    },
    /// A later session started while this one had not ended: it crashed.
    Crashed {
        detected_seq: u64,
    },
}

/// What happened in a session, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionCounts {
    pub events: u64,
    pub claims: u64,
    pub spawns: u64,
    pub done: u64,
    pub failed: u64,
    pub conflicts: u64,
    pub released_other: u64,
    pub findings: u64,
    pub repairs: u64,
    /// Agent time (the exits recorded in this session), and what the agents that reported usage cost.
    #[serde(default)]
    pub agent_ms: u64,
    #[serde(default)]
    pub usage_reports: u64,
    #[serde(default)]
    pub cost_micro_usd: u64,
}

/// Everything the log says about one issue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssueState {
    /// Set while bdp holds the issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Box<Claim>>,
    /// Attempts ever requested for this issue, across claims and sessions.
    pub attempts: u32,
    /// Times the issue was claimed.
    pub claims: u32,
    /// The last phase reached (kept after release, for history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_release: Option<Release>,
    /// Seq of the tracker close bdp made, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Release {
    pub seq: u64,
    pub reason: ReleaseReason,
    /// Its merge had started and did not land (a conflict, git failing): its branch holds work, kept for a
    /// person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmerged_work: bool,
}

/// bdp's hold on an issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Claim {
    pub session: String,
    pub seq: u64,
    pub actor: String,
    /// Attempts the issue had before this claim: the claim's own attempts are numbered after it, and the
    /// retry budget counts only those.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts_before: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<Worktree>,
    /// The current (latest) attempt under this claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<Attempt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Set when the tracker was seen to give the issue to someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
    /// A merge of its branch did not land (a conflict, git failing): the branch holds work.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge_failed: bool,
    /// Reviews of this claim's work so far (`review_verdict`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reviews: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Claim {
    /// Its branch holds work bdp did not land and keeps for a person: a merge of it did not land (a
    /// conflict, git failing, a merge cut short), or its last review still requested changes.
    pub fn holds_unlanded_work(&self) -> bool {
        self.merge_failed
            || self.merge.as_ref().is_some_and(|m| m.commit.is_none())
            || self.attempt.as_ref().is_some_and(|a| a.verdict == Some(crate::event::Verdict::ChangesRequested))
    }

    /// A claim just taken (record `seq` of `session`, as `actor`), after `attempts_before` attempts of
    /// earlier claims: no worktree, attempt or merge yet.
    pub fn new(session: &str, seq: u64, actor: &str, attempts_before: u32) -> Claim {
        Claim {
            session: session.to_string(),
            seq,
            actor: actor.to_string(),
            attempts_before,
            worktree: None,
            attempt: None,
            merge: None,
            retry: None,
            lost: None,
            merge_failed: false,
            reviews: 0,
        }
    }

    /// Attempts made under this claim so far (the current one included).
    pub fn attempts_made(&self) -> u32 {
        self.attempt.as_ref().map_or(0, |a| a.number.saturating_sub(self.attempts_before))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Worktree {
    pub path: String,
    pub branch: String,
    pub base: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    pub number: u32,
    pub requested_seq: u64,
    pub argv: Vec<String>,
    pub cwd: String,
    pub marker: String,
    pub stdout: String,
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawned: Option<Spawned>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// `Some(true)` check passed, `Some(false)` failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_passed: Option<bool>,
    /// How this attempt carries on from the one before it (from the retry that asked for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carries_on: Option<crate::event::CarryOn>,
    /// The reviewer's verdict on this attempt's work, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::event::Verdict>,
    /// What its agent last said of its progress (`report_progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// An agent's last word on how far it is (`progress_reported`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Progress {
    pub seq: u64,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
}

impl Attempt {
    /// Spawned (or maybe spawned) and no outcome yet.
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Spawned {
    pub seq: u64,
    pub pid: u32,
    pub pgid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttemptOutcome {
    Exited {
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        duration_ms: u64,
        timed_out: bool,
    },
    Abandoned {
        seq: u64,
        reason: String,
    },
}

impl AttemptOutcome {
    pub fn seq(&self) -> u64 {
        match self {
            AttemptOutcome::Exited { seq, .. } | AttemptOutcome::Abandoned { seq, .. } => *seq,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Merge {
    pub started_seq: u64,
    pub branch: String,
    pub base: String,
    pub strategy: MergeStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Retry {
    pub seq: u64,
    pub next_attempt: u32,
    pub backoff_ms: u64,
    /// Why the attempt before failed (in the agent's own words when it said any).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// How the next attempt carries on from the one before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carry_on: Option<crate::event::CarryOn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LockState {
    pub holder_pid: u32,
    pub since_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<IssueId>,
}
