//! The resolved options of one `bdp run` (flags over `.bdp/config.toml` over defaults), as the
//! orchestrator uses them. The CLI builds this; the orchestrator never parses anything.

use std::time::Duration;

use crate::event::MergeStrategy;

/// Where agents work (defined in the core).
pub use crate::dispatch::Isolation;

/// Which phases a bd or br tracker is told about, as `phase:*` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseLabels {
    /// Each phase the issue reaches (one label at a time, changed in one call per dispatch step).
    All,
    /// None: only the claim and the close (or release) touch the tracker.
    None,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOptions {
    pub agents: usize,
    /// The agent's argv template; argv[0] is already an absolute path.
    pub template: Vec<String>,
    /// The user's check command, run with `sh -c` in the worktree.
    pub check: Option<String>,
    /// The branch merged into (default: the branch checked out when the run starts).
    pub base: Option<String>,
    pub isolation: Isolation,
    pub merge: MergeStrategy,
    #[serde(with = "millis")]
    pub timeout: Duration,
    #[serde(with = "millis")]
    pub grace: Duration,
    pub retries: u32,
    /// The first retry waits this long; each later one twice as long as the one before.
    #[serde(with = "millis")]
    pub retry_backoff: Duration,
    /// How long the tracker may fail before the run drains.
    #[serde(with = "millis")]
    pub tracker_outage: Duration,
    pub max_issues: Option<usize>,
    pub epic: Option<String>,
    pub label: Option<String>,
    pub keep_worktrees: bool,
    pub phase_labels: PhaseLabels,
    pub max_load: f64,
    pub max_mem: f64,
    /// The assignee bdp claims issues as.
    pub actor: String,
    /// Plain progress lines even on a terminal.
    pub plain: bool,
}

/// The labels bdp gives issues back with (defined in the core).
pub use crate::dispatch::model::{CONFLICT_LABEL, FAILED_LABEL};
pub use crate::dispatch::order::held_for_human;

/// The issues a run may take now, in plan order: ready by bd's rules, inside `--epic`/`--label`, and
/// not waiting for a human. Indices into `issues`. The run and `--dry-run` both use it.
pub fn run_order(issues: &[crate::plan::Issue], opts: &RunOptions, now: jiff::Timestamp) -> Vec<usize> {
    crate::dispatch::order::in_order(issues, opts.epic.as_deref(), opts.label.as_deref(), now)
}

mod millis {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl RunOptions {
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
            tracker: tracker.to_string(),
        }
    }
}
