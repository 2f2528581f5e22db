//! What the orchestrator makes of `bdp run`'s resolved options (defined in `src/run_options.rs`): the
//! rules `decide` runs by, and the order issues are taken in.

use std::time::Duration;

/// Where agents work (defined in the core).
pub use crate::dispatch::Isolation;
/// The options themselves, each defined once (flag, config key, default, help).
pub use crate::run_options::{PhaseLabels, RunOptions};

/// The labels bdp gives issues back with (defined in the core).
pub use crate::dispatch::model::{CONFLICT_LABEL, FAILED_LABEL};
pub use crate::dispatch::order::held_for_human;

/// The issues a run may take now, in plan order: ready by bd's rules, inside `--epic`/`--label`, and
/// not waiting for a human. Indices into `issues`. The run and `--dry-run` both use it.
pub fn run_order(issues: &[crate::plan::Issue], opts: &RunOptions, now: jiff::Timestamp) -> Vec<usize> {
    crate::dispatch::order::in_order(issues, opts.epic.as_deref(), opts.label.as_deref(), now)
}

impl RunOptions {
    /// What each attempt may take (a `--stall` of 0 is no stall limit).
    pub fn limits(&self) -> crate::supervisor::agent::Limits {
        let stall = Some(self.stall).filter(|s| !s.is_zero());
        crate::supervisor::agent::Limits { timeout: self.timeout, stall, grace: self.grace }
    }

    /// The rules the run loop decides by: these options, the base branch, the tracker's name and the
    /// orchestrator's pid.
    pub fn rules(&self, base: &str, tracker: &str, pid: u32) -> crate::dispatch::Rules {
        let ms = |d: Duration| d.as_millis() as u64;
        crate::dispatch::Rules {
            agents: self.agents,
            retries: self.retries,
            retry_backoff: ms(self.retry_backoff),
            timeout: ms(self.timeout),
            tracker_outage: ms(self.tracker_outage),
            isolation: self.isolation,
            merge: self.merge,
            check: self.check.clone(),
            max_issues: self.max_issues,
            // The JSONL tracker is left alone: such labels would churn the user's git diffs.
            phase_labels: tracker != "jsonl" && self.phase_labels == PhaseLabels::All,
            keep_worktrees: self.keep_worktrees,
            base: base.to_string(),
            refresh_after: 5_000,
            actor: self.actor.clone(),
            pid,
            epic: self.epic.clone(),
            label: self.label.clone(),
            max_cost: self.max_cost.map(micro_usd),
            max_issue_cost: self.max_issue_cost.map(micro_usd),
            resumes: self.agent.is_some(),
            retry_from: self.retry_from,
            on_conflict: self.on_conflict,
            review: self.review.is_some() || self.review_agent.is_some(),
            review_rounds: self.review_rounds,
            zones: self.zones.clone(),
            tracker: tracker.to_string(),
        }
    }
}

/// Dollars as the micro-dollars agents' costs are counted in (negative is none).
fn micro_usd(usd: f64) -> u64 {
    (usd.max(0.0) * 1e6).round() as u64
}
