//! What an attempt's end leads to: a retry or giving the issue back, or (it succeeded) the check, the
//! merge queue or the close. Pure: the facts about the world (commits ahead of the base, a dirty worktree)
//! are gathered by the caller and passed in.

use std::time::Duration;

use crate::event::ReleaseReason;

/// How an agent (or a check) ended, as its supervision saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentEnd {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub timed_out: bool,
    /// The stop was asked for (`--now`), not a timeout.
    pub stopped: bool,
    /// Set when the agent could not be started at all (from the wrapper).
    pub error: Option<String>,
    /// Set when it was stopped for writing nothing for this long (ms): stalled (a permission prompt, a
    /// hung tool).
    pub stalled: Option<u64>,
    /// What the agent said when it ended: its JSON error, else the last line of its stderr.
    pub said: Option<String>,
    /// The agent CLI's own session id (Claude's `session_id`, Codex's thread id), when it printed one.
    pub session: Option<String>,
    /// The agent said it ran out of context (the conversation no longer fits the model's window).
    pub context_exhausted: bool,
    /// The `after_run` hook failed: why (an attempt whose agent succeeded fails on it).
    pub hook_failed: Option<String>,
}

impl AgentEnd {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out && !self.stopped
    }

    /// Why a failed attempt failed, in a few words and then the agent's own (`agent exited 1: API Error:
    /// Unable to connect to API`), or `timed out after 30m00s`.
    pub fn why_failed(&self, timeout: Duration) -> String {
        if let Some(ms) = self.stalled.filter(|_| !self.timed_out) {
            return format!("stalled: no output for {}", crate::text::duration(ms));
        }
        let how = match (self.timed_out, self.code, self.signal, &self.error) {
            (true, ..) => return format!("timed out after {}", crate::text::duration_of(timeout)),
            (_, _, _, Some(error)) => return error.clone(),
            (_, Some(code), ..) => format!("agent exited {code}"),
            (_, None, Some(sig), _) => format!("agent killed by signal {sig}"),
            _ => "agent ended without a status".to_string(),
        };
        match &self.said {
            Some(said) => format!("{how}: {said}"),
            None => how,
        }
    }
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Another attempt after `backoff`; `made` attempts of `budget` so far.
    Retry { backoff: Duration, made: u32, budget: u32 },
    /// Give the issue back: `label` it `bdp:failed` for a person when the retries ran out.
    GiveUp { reason: ReleaseReason, detail: String, label: bool },
}

/// The retry budget: `made` attempts failed under this claim (the latest included), `retries` allowed after
/// the first; while stopping nothing is retried. `backoff(n)` is the wait after `n` failed attempts.
pub fn after_failure(
    why: &str,
    timed_out: bool,
    made: u32,
    retries: u32,
    stopping: bool,
    backoff: impl Fn(u32) -> Duration,
) -> AfterFailure {
    if stopping {
        return AfterFailure::GiveUp {
            reason: ReleaseReason::Shutdown,
            detail: format!("{why}; not retried while stopping"),
            label: false,
        };
    }
    if made <= retries {
        return AfterFailure::Retry { backoff: backoff(made), made, budget: retries + 1 };
    }
    AfterFailure::GiveUp {
        reason: if timed_out { ReleaseReason::Timeout } else { ReleaseReason::Failed },
        detail: format!("{why} (after {made} attempt{})", if made == 1 { "" } else { "s" }),
        label: true,
    }
}

/// What a successful attempt leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landing {
    /// Close the issue with this reason (nothing to merge).
    Close(String),
    /// Run the `--check` command, then merge.
    Check,
    /// Into the merge queue.
    Merge,
    /// It did not do what a success must: a failed attempt after all.
    Failed(String),
}

/// The facts about a successful attempt's work, gathered by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `--isolation none`: the agent worked in the repository itself; nothing to merge.
    InPlace,
    /// Its branch is `ahead` commits ahead of the base; `dirty` when it left changes uncommitted.
    Branch { ahead: u64, dirty: bool },
}

pub fn landing(work: Work, has_check: bool) -> Landing {
    match work {
        Work::InPlace => {
            Landing::Close("bdp: the agent finished (run in the repository itself, --isolation none)".into())
        }
        Work::Branch { ahead: 0, dirty: true } => {
            Landing::Failed("the agent changed files but committed nothing".into())
        }
        Work::Branch { ahead: 0, dirty: false } => {
            Landing::Close("bdp: the agent finished with no code changes".into())
        }
        Work::Branch { .. } if has_check => Landing::Check,
        Work::Branch { .. } => Landing::Merge,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(code: Option<i32>, signal: Option<i32>, timed_out: bool, error: Option<&str>) -> AgentEnd {
        AgentEnd { code, signal, duration_ms: 5, timed_out, error: error.map(String::from), ..AgentEnd::default() }
    }

    #[test]
    fn why_an_attempt_failed() {
        let t = Duration::from_secs(1800);
        let table = [
            (end(Some(3), None, false, None), "agent exited 3"),
            (end(None, Some(9), false, None), "agent killed by signal 9"),
            (end(None, Some(15), true, None), "timed out after 30m00s"),
            (end(Some(127), None, false, Some("cannot start: no such file")), "cannot start: no such file"),
            (end(None, None, false, None), "agent ended without a status"),
            (
                AgentEnd { said: Some("API Error: 529".into()), ..end(Some(1), None, false, None) },
                "agent exited 1: API Error: 529",
            ),
            (
                AgentEnd { said: Some("killed".into()), ..end(None, Some(9), false, None) },
                "agent killed by signal 9: killed",
            ),
            (AgentEnd { stalled: Some(600_000), ..end(None, Some(15), false, None) }, "stalled: no output for 10m00s"),
            // A timeout is the reason, whatever the agent was saying.
            (
                AgentEnd { said: Some("still thinking".into()), ..end(None, Some(15), true, None) },
                "timed out after 30m00s",
            ),
        ];
        for (e, want) in table {
            assert!(!e.success());
            assert_eq!(e.why_failed(t), want);
        }
        assert!(end(Some(0), None, false, None).success());
        assert!(!AgentEnd { stopped: true, ..end(Some(0), None, false, None) }.success());
    }

    #[test]
    fn retries_within_the_budget_then_gives_up_labelled() {
        let backoff = |n: u32| Duration::from_secs(10 * u64::from(n));
        let table: [(u32, u32, bool, bool, AfterFailure); 6] = [
            (1, 2, false, false, AfterFailure::Retry { backoff: Duration::from_secs(10), made: 1, budget: 3 }),
            (2, 2, false, false, AfterFailure::Retry { backoff: Duration::from_secs(20), made: 2, budget: 3 }),
            (
                3,
                2,
                false,
                false,
                AfterFailure::GiveUp {
                    reason: ReleaseReason::Failed,
                    detail: "boom (after 3 attempts)".into(),
                    label: true,
                },
            ),
            (
                1,
                0,
                true,
                false,
                AfterFailure::GiveUp {
                    reason: ReleaseReason::Timeout,
                    detail: "boom (after 1 attempt)".into(),
                    label: true,
                },
            ),
            (
                1,
                2,
                false,
                true,
                AfterFailure::GiveUp {
                    reason: ReleaseReason::Shutdown,
                    detail: "boom; not retried while stopping".into(),
                    label: false,
                },
            ),
            (
                5,
                2,
                true,
                true,
                AfterFailure::GiveUp {
                    reason: ReleaseReason::Shutdown,
                    detail: "boom; not retried while stopping".into(),
                    label: false,
                },
            ),
        ];
        for (made, retries, timed_out, stopping, want) in table {
            assert_eq!(after_failure("boom", timed_out, made, retries, stopping, backoff), want, "{made} {retries}");
        }
    }

    #[test]
    fn where_a_success_lands() {
        let table = [
            (Work::InPlace, false, "close"),
            (Work::InPlace, true, "close"),
            (Work::Branch { ahead: 0, dirty: false }, true, "close"),
            (Work::Branch { ahead: 0, dirty: true }, false, "failed"),
            (Work::Branch { ahead: 2, dirty: true }, false, "merge"),
            (Work::Branch { ahead: 1, dirty: false }, true, "check"),
        ];
        for (work, check, want) in table {
            let got = match landing(work, check) {
                Landing::Close(_) => "close",
                Landing::Check => "check",
                Landing::Merge => "merge",
                Landing::Failed(_) => "failed",
            };
            assert_eq!(got, want, "{work:?} check={check}");
        }
        assert_eq!(
            landing(Work::Branch { ahead: 0, dirty: false }, false),
            Landing::Close("bdp: the agent finished with no code changes".into())
        );
    }
}
