//! The resolved options of one `bdp run` (flags over `.bdp/config.toml` over defaults), as the
//! orchestrator uses them. The CLI builds this; the orchestrator never parses anything.

use std::time::Duration;

use crate::event::MergeStrategy;

/// Where agents work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A git worktree and branch per issue, under `.bdp/worktrees/`.
    Worktree,
    /// In the repository itself (no branch, no merge).
    None,
}

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

/// Label put on an issue given back after its retries ran out.
pub const FAILED_LABEL: &str = "bdp:failed";
/// Label put on an issue whose branch could not be merged.
pub const CONFLICT_LABEL: &str = "bdp:conflict";

/// Whether an issue waits for a human: given back labelled `bdp:failed` or `bdp:conflict`.
pub fn held_for_human(issue: &crate::plan::Issue) -> bool {
    issue.labels.iter().any(|l| l == FAILED_LABEL || l == CONFLICT_LABEL)
}

/// The issues a run may take now, in plan order: ready by bd's rules, inside `--epic`/`--label`, and
/// not waiting for a human. Indices into `issues`. The run and `--dry-run` both use it.
pub fn run_order(issues: &[crate::plan::Issue], opts: &RunOptions, now: jiff::Timestamp) -> Vec<usize> {
    let filter = crate::tracker::ListFilter { statuses: vec![], label: opts.label.clone(), parent: opts.epic.clone() };
    let in_scope = filter.matching(issues);
    crate::plan::ready_in_order(issues, now)
        .into_iter()
        .filter(|&i| in_scope[i] && !held_for_human(&issues[i]))
        .collect()
}

mod millis {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl RunOptions {
    /// Backoff before attempt `n + 1` after `n` failed ones under the claim.
    pub fn backoff(&self, failed: u32) -> Duration {
        self.retry_backoff.saturating_mul(1u32 << failed.saturating_sub(1).min(10))
    }
}
