//! Impossible transitions: what the fold refuses, and the seq it refused at.

use crate::event::IssueId;

/// A record the fold refused. The state is left exactly as it was before the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seq {seq} ({event}): {kind}")]
pub struct TransitionError {
    pub seq: u64,
    /// The event's `type` tag.
    pub event: &'static str,
    pub kind: TransitionErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionErrorKind {
    #[error("expected seq {expected} next, found {found}")]
    SeqOutOfOrder { expected: u64, found: u64 },
    #[error("session {session} already started at seq {started_seq}")]
    DuplicateSession { session: String, started_seq: u64 },
    #[error("session {found} ends, but the open session is {}", open.as_deref().unwrap_or("none"))]
    SessionMismatch { open: Option<String>, found: String },
    #[error("issue {issue} is not claimed")]
    NotClaimed { issue: IssueId },
    #[error("issue {issue} is already claimed (since seq {since_seq})")]
    AlreadyClaimed { issue: IssueId, since_seq: u64 },
    #[error("issue {issue} still has attempt {attempt} whose outcome is unknown")]
    AttemptStillOpen { issue: IssueId, attempt: u32 },
    #[error("issue {issue}: attempt {found} out of order, the next attempt is {expected}")]
    AttemptOutOfOrder { issue: IssueId, expected: u32, found: u32 },
    #[error("issue {issue}: attempt {attempt} does not exist (current: {})", current.map_or("none".to_string(), |c| c.to_string()))]
    NoSuchAttempt { issue: IssueId, attempt: u32, current: Option<u32> },
    #[error("issue {issue}: attempt {attempt} was already spawned at seq {at_seq}")]
    AlreadySpawned { issue: IssueId, attempt: u32, at_seq: u64 },
    #[error("issue {issue}: attempt {attempt} was never spawned")]
    NotSpawned { issue: IssueId, attempt: u32 },
    #[error("issue {issue}: attempt {attempt} already ended at seq {at_seq}")]
    AttemptAlreadyEnded { issue: IssueId, attempt: u32, at_seq: u64 },
    #[error("issue {issue}: attempt {attempt} has not exited")]
    AttemptNotExited { issue: IssueId, attempt: u32 },
    #[error("issue {issue} already has a worktree at {path}")]
    WorktreeExists { issue: IssueId, path: String },
    #[error("issue {issue} has no merge in progress")]
    NoMergeInProgress { issue: IssueId },
    #[error("issue {issue} is already merged (commit {commit})")]
    AlreadyMerged { issue: IssueId, commit: String },
    #[error("lock {lock} is already held by pid {holder_pid} (since seq {since_seq})")]
    LockHeld { lock: String, holder_pid: u32, since_seq: u64 },
    #[error("lock {lock} is not held")]
    LockNotHeld { lock: String },
}
