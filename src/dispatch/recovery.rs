//! What recovery feeds the run loop, decided from the log: the claims a recovering run takes over, the
//! repairs an earlier repair made moot, and how a claim carries on from the step `reconcile` found. Pure:
//! the executor (`supervisor::recover`, and the simulator's copy of the world) looks at the world and
//! carries the effects out, so the two cannot drift apart.

use crate::event::{Event, IssueId};
use crate::reconcile::{Finding, Repair, Step};
use crate::state::{AttemptOutcome, Claim, State};

use super::{AgentEnd, Model, Resume};

/// The claims recovery takes over, before any repair: every claim of the log that no finding gives up.
pub fn kept_claims(state: &State, findings: &[Finding]) -> Vec<IssueId> {
    let dropped: Vec<&str> = findings
        .iter()
        .filter(|f| matches!(f.repair, Repair::DropClaim { .. }))
        .filter_map(|f| f.issue.as_deref())
        .collect();
    state.claimed().map(|(id, _)| id.clone()).filter(|id| !dropped.contains(&id.as_str())).collect()
}

/// Whether a finding's repair is moot: it carries a claim on, and an earlier repair of this recovery already
/// ended that claim (or the run does not hold it).
pub fn moot(model: &Model, f: &Finding) -> bool {
    let id = f.issue.as_deref().unwrap_or_default();
    let claimed = model.state.issues.get(id).is_some_and(|i| i.claim.is_some());
    let carries_claim = !f.repair.is_safe()
        && !matches!(f.repair, Repair::Manual { .. } | Repair::TakeOverLock { .. } | Repair::DropClaim { .. });
    carries_claim && !(claimed && model.held.contains_key(id))
}

/// What the executor sees of a claim's worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorktreeSeen {
    /// The run does not use worktrees.
    NotIsolated,
    Present,
    Missing,
}

/// How a claim carries on.
#[derive(Debug, Clone, PartialEq)]
pub struct Resuming {
    /// To record first (the worktree the log has is gone).
    pub record: Vec<Event>,
    /// Reset the worktree to the base before the next attempt (it may hold the last attempt's work).
    pub reset_worktree: bool,
    pub resume: Resume,
}

/// How `claim` carries on from `step` (from [`crate::reconcile::diff`]); `None` when there is nothing to
/// resume (its attempt is still open: the process decides, through another repair).
pub fn resuming(id: &str, claim: &Claim, step: Step, worktree: WorktreeSeen) -> Option<Resuming> {
    let go = |resume| Some(Resuming { record: vec![], reset_worktree: false, resume });
    match step {
        Step::Worktree => go(Resume::Worktree),
        Step::Spawn => match (&claim.worktree, worktree) {
            (_, WorktreeSeen::NotIsolated) => go(Resume::Spawn),
            (Some(wt), WorktreeSeen::Missing) => Some(Resuming {
                record: vec![Event::WorktreeRemoved { issue: id.to_string(), path: wt.path.clone() }],
                reset_worktree: false,
                resume: Resume::Worktree,
            }),
            (Some(_), WorktreeSeen::Present) => {
                // A retry that continues an attempt which ran out of context keeps that attempt's work.
                let keep = claim.retry.as_ref().and_then(|r| r.carry_on.as_ref()).is_some_and(|c| c.keep);
                Some(Resuming { record: vec![], reset_worktree: !keep, resume: Resume::Spawn })
            }
            (None, _) => go(Resume::Worktree),
        },
        Step::AfterExit => match &claim.attempt {
            None => go(Resume::Spawn),
            Some(a) if a.check_passed == Some(false) => go(Resume::Failed { why: "the check failed".into() }),
            Some(a) => match &a.outcome {
                Some(AttemptOutcome::Exited { code, signal, duration_ms, timed_out, .. }) => go(Resume::AfterExit {
                    attempt: a.number,
                    end: AgentEnd {
                        code: *code,
                        signal: *signal,
                        duration_ms: *duration_ms,
                        timed_out: *timed_out,
                        ..AgentEnd::default()
                    },
                }),
                Some(AttemptOutcome::Abandoned { reason, .. }) => {
                    go(Resume::Failed { why: format!("attempt abandoned: {reason}") })
                }
                None => None,
            },
        },
        Step::Merge => go(Resume::Merge),
        Step::Close => {
            go(Resume::Close { commit: claim.merge.as_ref().and_then(|m| m.commit.clone()).unwrap_or_default() })
        }
        Step::Release => go(Resume::Release),
    }
}

/// The end of an attempt that ended while no bdp watched it and left no exit file.
pub fn crashed() -> AgentEnd {
    AgentEnd {
        error: Some("the agent ended while no bdp watched it and left no exit file (crashed or killed)".into()),
        ..AgentEnd::default()
    }
}

/// Why recovery abandons an attempt whose spawn was never confirmed and of which nothing runs.
pub const NEVER_STARTED: &str = "its spawn was never confirmed and nothing of it runs (bdp stopped in between)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CarryOn;
    use crate::state::{Attempt, Merge, Worktree};

    fn claim(worktree: bool, attempt: Option<AttemptOutcome>, check: Option<bool>) -> Claim {
        Claim {
            worktree: worktree.then(|| Worktree { path: "/w/a".into(), branch: "bdp/a".into(), base: "main".into() }),
            attempt: attempt.map(|outcome| Attempt {
                number: 2,
                requested_seq: 2,
                argv: vec![],
                cwd: ".".into(),
                marker: "m".into(),
                stdout: "o".into(),
                stderr: "e".into(),
                spawned: None,
                outcome: Some(outcome),
                check_passed: check,
                carries_on: None,
                verdict: None,
                progress: None,
            }),
            ..Claim::new("s", 1, "bdp", 0)
        }
    }

    fn exited(code: i32) -> Option<AttemptOutcome> {
        Some(AttemptOutcome::Exited { seq: 3, code: Some(code), signal: None, duration_ms: 7, timed_out: true })
    }

    #[test]
    fn a_spawn_resumes_in_a_reset_worktree_or_a_new_one() {
        let c = claim(true, None, None);
        let r = resuming("a", &c, Step::Spawn, WorktreeSeen::Present).unwrap();
        assert_eq!(r, Resuming { record: vec![], reset_worktree: true, resume: Resume::Spawn });
        // Unless the retry continues the work of an attempt that ran out of context.
        let retry =
            |carry_on| crate::state::Retry { seq: 4, next_attempt: 3, backoff_ms: 1, reason: "r".into(), carry_on };
        let keep = CarryOn { keep: true, ..CarryOn::default() };
        let continuing = Claim { retry: Some(retry(Some(keep))), ..c.clone() };
        let r = resuming("a", &continuing, Step::Spawn, WorktreeSeen::Present).unwrap();
        assert!(!r.reset_worktree, "{r:?}");
        let resume = CarryOn { resume: Some("s".into()), ..CarryOn::default() };
        let resuming_session = Claim { retry: Some(retry(Some(resume))), ..c.clone() };
        assert!(resuming("a", &resuming_session, Step::Spawn, WorktreeSeen::Present).unwrap().reset_worktree);
        let r = resuming("a", &c, Step::Spawn, WorktreeSeen::Missing).unwrap();
        assert_eq!(r.record, vec![Event::WorktreeRemoved { issue: "a".into(), path: "/w/a".into() }]);
        assert_eq!((r.reset_worktree, r.resume), (false, Resume::Worktree));
        let r = resuming("a", &c, Step::Spawn, WorktreeSeen::NotIsolated).unwrap();
        assert_eq!((r.reset_worktree, r.resume), (false, Resume::Spawn));
        let r = resuming("a", &claim(false, None, None), Step::Spawn, WorktreeSeen::Missing).unwrap();
        assert_eq!(r.resume, Resume::Worktree);
    }

    #[test]
    fn after_an_exit_the_recorded_end_decides() {
        let c = claim(true, exited(3), None);
        let r = resuming("a", &c, Step::AfterExit, WorktreeSeen::Present).unwrap();
        let Resume::AfterExit { attempt, end } = r.resume else { panic!("{:?}", r.resume) };
        assert_eq!((attempt, end.code, end.duration_ms, end.timed_out, end.stopped), (2, Some(3), 7, true, false));
        let c = claim(true, exited(0), Some(false));
        let r = resuming("a", &c, Step::AfterExit, WorktreeSeen::Present).unwrap();
        assert_eq!(r.resume, Resume::Failed { why: "the check failed".into() });
        let c = claim(true, Some(AttemptOutcome::Abandoned { seq: 3, reason: "gone".into() }), None);
        let r = resuming("a", &c, Step::AfterExit, WorktreeSeen::Present).unwrap();
        assert_eq!(r.resume, Resume::Failed { why: "attempt abandoned: gone".into() });
        let mut open = claim(true, exited(0), None);
        open.attempt.as_mut().unwrap().outcome = None;
        assert_eq!(resuming("a", &open, Step::AfterExit, WorktreeSeen::Present), None);
    }

    #[test]
    fn a_merged_claim_closes_with_its_commit() {
        let mut c = claim(true, exited(0), Some(true));
        c.merge = Some(Merge {
            started_seq: 4,
            branch: "bdp/a".into(),
            base: "main".into(),
            strategy: crate::event::MergeStrategy::Merge,
            commit: Some("abc123".into()),
        });
        let r = resuming("a", &c, Step::Close, WorktreeSeen::Present).unwrap();
        assert_eq!(r.resume, Resume::Close { commit: "abc123".into() });
        assert_eq!(resuming("a", &c, Step::Release, WorktreeSeen::Present).unwrap().resume, Resume::Release);
        assert_eq!(resuming("a", &c, Step::Merge, WorktreeSeen::Present).unwrap().resume, Resume::Merge);
        assert_eq!(resuming("a", &c, Step::Worktree, WorktreeSeen::Present).unwrap().resume, Resume::Worktree);
    }
}

#[cfg(test)]
mod moot_tests {
    use super::*;
    use crate::event::ReleaseReason;
    use crate::reconcile::FindingKind;

    fn finding(repair: Repair) -> Finding {
        Finding {
            kind: FindingKind::StepInterrupted,
            issue: Some("a".into()),
            subject: None,
            log: String::new(),
            world: String::new(),
            repair,
        }
    }

    #[test]
    fn a_repair_that_carries_a_claim_on_is_moot_once_the_claim_is_gone() {
        let rules = crate::dispatch::Rules { agents: 1, retries: 0, ..crate::dispatch::Rules::sample() };
        let mut state = State::new();
        state.issues.insert("a".into(), crate::state::IssueState::default());
        let mut m = Model::new(rules, state, vec![], jiff::Timestamp::UNIX_EPOCH);
        let resume = finding(Repair::Resume { step: Step::Spawn });
        let drop = finding(Repair::DropClaim { reason: "r".into(), release: ReleaseReason::Abandoned });
        let safe = finding(Repair::ReleaseInTracker);
        // No claim in the log: carrying it on is moot; giving it up and safe repairs are not.
        assert!(moot(&m, &resume));
        assert!(!moot(&m, &drop) && !moot(&m, &safe));
        // Claimed in the log but not held by this run (an earlier repair ended it): moot.
        m.state.issues.get_mut("a").unwrap().claim = Some(Box::new(crate::state::Claim::new("s", 1, "bdp", 0)));
        assert!(moot(&m, &resume));
        m.decide(0, crate::dispatch::Input::TakeOver { issue: "a".into() });
        assert!(!moot(&m, &resume));
    }
}
