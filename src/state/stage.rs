//! Where a claim stands, from the log alone: the one answer that `status`, `reconcile` (and through it
//! recovery) build on, so that they cannot disagree about which step a claim reached.

use super::{Attempt, Claim, IssueState, Merge, Retry, Worktree};

/// The step a claim reached, in the order the steps happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStage<'a> {
    /// No attempt yet; the worktree, when one was made.
    Preparing { worktree: Option<&'a Worktree> },
    /// An attempt was asked for and has no recorded outcome: its process decides (spawned or not).
    Attempting(&'a Attempt),
    /// A merge started and its end is not recorded.
    Merging(&'a Merge),
    /// bdp closed the issue in the tracker (at `seq`); the release is not recorded.
    Closed { seq: u64 },
    /// Merged as `commit`, not closed.
    Merged { commit: &'a str },
    /// A retry is scheduled; `after` is the attempt that failed, if any.
    RetryScheduled { retry: &'a Retry, after: Option<&'a Attempt> },
    /// The attempt passed its check: the merge is next.
    CheckPassed(&'a Attempt),
    /// The attempt ended (exited, failed its check, or was abandoned) and what follows is not recorded.
    Ended(&'a Attempt),
}

impl IssueState {
    /// The stage of the issue's claim (`None` when bdp does not hold it).
    pub fn claim_stage(&self) -> Option<ClaimStage<'_>> {
        self.claim.as_ref().map(|claim| claim.stage(self.closed_seq))
    }
}

impl Claim {
    /// The claim's stage; `closed_seq` is the issue's close by bdp, if any.
    pub fn stage(&self, closed_seq: Option<u64>) -> ClaimStage<'_> {
        let Some(a) = &self.attempt else {
            return match &self.retry {
                Some(retry) => ClaimStage::RetryScheduled { retry, after: None },
                None => ClaimStage::Preparing { worktree: self.worktree.as_ref() },
            };
        };
        if a.is_open() {
            return ClaimStage::Attempting(a);
        }
        if let Some(m) = self.merge.as_ref().filter(|m| m.commit.is_none()) {
            return ClaimStage::Merging(m);
        }
        if let Some(seq) = closed_seq {
            return ClaimStage::Closed { seq };
        }
        if let Some(commit) = self.merge.as_ref().and_then(|m| m.commit.as_deref()) {
            return ClaimStage::Merged { commit };
        }
        if let Some(retry) = &self.retry {
            return ClaimStage::RetryScheduled { retry, after: Some(a) };
        }
        if a.check_passed == Some(true) {
            return ClaimStage::CheckPassed(a);
        }
        ClaimStage::Ended(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MergeStrategy;
    use crate::state::AttemptOutcome;

    fn claim() -> Claim {
        Claim::new("s", 1, "bdp", 0)
    }

    fn attempt(outcome: Option<AttemptOutcome>, check_passed: Option<bool>) -> Attempt {
        Attempt {
            number: 1,
            requested_seq: 2,
            argv: vec![],
            cwd: ".".into(),
            marker: "m".into(),
            stdout: "o".into(),
            stderr: "e".into(),
            spawned: None,
            outcome,
            check_passed,
            carries_on: None,
            verdict: None,
            progress: None,
        }
    }

    fn exited(code: i32) -> Option<AttemptOutcome> {
        Some(AttemptOutcome::Exited { seq: 3, code: Some(code), signal: None, duration_ms: 5, timed_out: false })
    }

    fn merge(commit: Option<&str>) -> Merge {
        Merge {
            started_seq: 4,
            branch: "bdp/x".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
            commit: commit.map(str::to_string),
        }
    }

    #[test]
    fn each_stage_follows_from_what_the_log_recorded() {
        let retry = Retry { seq: 9, next_attempt: 2, backoff_ms: 10, reason: "agent exited 1".into(), carry_on: None };
        let wt = Worktree { path: "/w".into(), branch: "bdp/x".into(), base: "main".into() };
        let c = claim();
        assert_eq!(c.stage(None), ClaimStage::Preparing { worktree: None });
        let c = Claim { worktree: Some(wt.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::Preparing { worktree: Some(&wt) });
        let c = Claim { retry: Some(retry.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::RetryScheduled { retry: &retry, after: None });

        let open = attempt(None, None);
        let c = Claim { attempt: Some(open.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::Attempting(&open));

        let ended = attempt(exited(1), None);
        let c = Claim { attempt: Some(ended.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::Ended(&ended));
        let c = Claim { attempt: Some(ended.clone()), retry: Some(retry.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::RetryScheduled { retry: &retry, after: Some(&ended) });

        let passed = attempt(exited(0), Some(true));
        let c = Claim { attempt: Some(passed.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::CheckPassed(&passed));
        let failed = attempt(exited(0), Some(false));
        let c = Claim { attempt: Some(failed.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::Ended(&failed));

        let pending = merge(None);
        let c = Claim { attempt: Some(passed.clone()), merge: Some(pending.clone()), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::Merging(&pending));
        // A merge in flight comes before a close the log somehow has.
        assert_eq!(c.stage(Some(7)), ClaimStage::Merging(&pending));

        let c = Claim { attempt: Some(passed.clone()), merge: Some(merge(Some("abc"))), ..claim() };
        assert_eq!(c.stage(None), ClaimStage::Merged { commit: "abc" });
        assert_eq!(c.stage(Some(7)), ClaimStage::Closed { seq: 7 });
        // Closed under `--merge none`: no merge at all.
        let c = Claim { attempt: Some(passed.clone()), ..claim() };
        assert_eq!(c.stage(Some(8)), ClaimStage::Closed { seq: 8 });
    }
}
