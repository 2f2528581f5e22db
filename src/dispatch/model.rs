//! The model the run loop decides on: the run's rules (its options), the fold of the log, the tracker as bdp
//! last read and wrote it, and what this run does with each issue it holds. Plain data, no I/O: the
//! decisions in [`super::decide`] change it, and the executor (the supervisor) folds the records the log
//! acknowledged into its `state`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::event::{MergeStrategy, Phase, ReleaseReason};
use crate::plan::Issue;
use crate::state::State;

use super::Ms;
use super::outage::Outage;
use super::stop::StopLevel;

/// Where agents work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A git worktree and branch per issue, under `.bdp/worktrees/`.
    Worktree,
    /// In the repository itself (no branch, no merge).
    None,
}

/// Where a retry starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetryFrom {
    /// Afresh: the branch back at the base, the failed attempt's changes gone (its story is in the prompt).
    Base,
    /// From the failed attempt's commits (what it left uncommitted is committed as work in progress).
    Last,
}

/// What a branch that conflicts with the base gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// One more attempt on its own branch, to merge the base in and resolve; labelled bdp:conflict only if
    /// that fails too.
    Resolve,
    /// Given back at once, labelled bdp:conflict, its branch kept.
    Label,
}

pub use crate::plan::issue::{CONFLICT_LABEL, FAILED_LABEL};

/// The run's options, as the decisions need them.
#[derive(Debug, Clone)]
pub struct Rules {
    pub agents: usize,
    pub retries: u32,
    /// The first retry waits this long; each later one twice as long as the one before.
    pub retry_backoff: Ms,
    /// An attempt's time limit (for the words of a timeout).
    pub timeout: Ms,
    /// How long the tracker may fail before the run drains.
    pub tracker_outage: Ms,
    pub isolation: Isolation,
    pub merge: MergeStrategy,
    pub check: Option<String>,
    pub max_issues: Option<usize>,
    /// Whether the tracker gets `phase:*` labels.
    pub phase_labels: bool,
    pub keep_worktrees: bool,
    /// The branch merged into.
    pub base: String,
    /// How long a tracker read stays fresh while slots are filled.
    pub refresh_after: Ms,
    /// The assignee bdp claims issues as.
    pub actor: String,
    /// The orchestrator's pid (its issue locks name it).
    pub pid: u32,
    /// `--epic` and `--label`: the issues a run may take.
    pub epic: Option<String>,
    pub label: Option<String>,
    /// The tracker's name (for the words of "nothing is ready").
    pub tracker: String,
    /// `--max-cost` and `--max-issue-cost`, in micro-dollars.
    pub max_cost: Option<u64>,
    pub max_issue_cost: Option<u64>,
    /// The agent CLI can resume a conversation by its session id (the claude and codex presets): a retry
    /// after an attempt was cut short resumes it.
    pub resumes: bool,
    /// `--retry-from`.
    pub retry_from: RetryFrom,
    /// `--on-conflict`.
    pub on_conflict: OnConflict,
    /// A reviewer is set (`--review`, `--review-agent`): its approval comes before each merge.
    pub review: bool,
    /// `--review-rounds`.
    pub review_rounds: u32,
    /// `[ownership]` of the config file: issues whose declared paths collide do not run at once.
    pub zones: Vec<crate::filelock::zones::Zone>,
}

impl Rules {
    /// Rules for the core's tests: two agents, one retry, worktrees, merge commits, phase labels, br.
    /// A test changes the fields it is about (`Rules { agents: 1, ..Rules::sample() }`).
    #[cfg(test)]
    pub fn sample() -> Rules {
        Rules {
            agents: 2,
            retries: 1,
            retry_backoff: 1_000,
            timeout: 60_000,
            tracker_outage: 600_000,
            isolation: Isolation::Worktree,
            merge: crate::event::MergeStrategy::Merge,
            check: None,
            max_issues: None,
            phase_labels: true,
            keep_worktrees: false,
            base: "main".into(),
            refresh_after: 5_000,
            actor: "bdp".into(),
            pid: 42,
            epic: None,
            label: None,
            tracker: "br".into(),
            max_cost: None,
            max_issue_cost: None,
            resumes: true,
            retry_from: RetryFrom::Base,
            on_conflict: OnConflict::Label,
            review: false,
            review_rounds: 2,
            zones: vec![],
        }
    }

    /// Backoff before attempt `n + 1` after `n` failed ones under the claim.
    pub fn backoff(&self, failed: u32) -> Ms {
        self.retry_backoff.saturating_mul(1u64 << failed.saturating_sub(1).min(10))
    }
}

/// What this run is doing with an issue it holds, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Claimed (or taken over by recovery), nothing started yet.
    Claimed,
    MakingWorktree,
    /// Its spawn is asked for; the executor reports whether the agent started.
    Spawning,
    Running,
    /// The agent succeeded; its branch is being looked at.
    LookingAtBranch,
    Checking,
    /// The reviewer looks at its work.
    Reviewing,
    /// A failed attempt's worktree is being reset for the retry.
    Resetting,
    /// Waiting for the retry's backoff.
    BackingOff,
    /// Waiting for its turn in the merge queue.
    MergeQueued,
    Merging,
    /// Its close is due, or being made.
    Closing,
    /// Its close or give-back waits for the tracker to work again.
    WaitingForTracker,
    /// Its give-back is being written to the tracker.
    GivingBack,
    /// Released in the tracker (or closed); its worktree is being removed.
    Removing,
}

impl Stage {
    /// Whether an agent, check, worktree or merge task works for the issue (the run must wait for it).
    pub fn busy(self) -> bool {
        matches!(
            self,
            Stage::MakingWorktree
                | Stage::Spawning
                | Stage::Running
                | Stage::Checking
                | Stage::Reviewing
                | Stage::Merging
        )
    }
}

/// An issue this run holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub title: String,
    /// When this run took it.
    pub since: Ms,
    pub stage: Stage,
    /// The current attempt's number (0 before the first of this claim's attempts).
    pub attempt: u32,
    /// Attempts made under this claim.
    pub made: u32,
    /// Its worktree as recorded, while it has one: (path, branch).
    pub worktree: Option<(String, String)>,
    /// Its branch's head, as last looked at (for `--merge none`).
    pub head: Option<String>,
    /// The release under way (give-back, then worktree removal, then the record).
    pub release: Option<Release>,
    /// The close being made.
    pub close: Option<CloseDue>,
    /// The label change of the give-back being made.
    pub give_back: crate::plan::LabelChange,
    /// Why the last attempt failed, and the backoff before the next (while its worktree is reset).
    pub why: String,
    pub backoff: Ms,
    /// The last attempt's agent session, when the attempt was cut short (a timeout, a stall, a signal)
    /// and its CLI can resume it: a retry resumes the conversation.
    pub resume: Option<String>,
    /// The last attempt ran out of context: a retry goes on from its work, in a new conversation.
    pub out_of_context: bool,
    /// The next attempt does not count against `--retries` (it resolves a conflict, or addresses a review).
    pub free_attempt: bool,
    /// The current attempt's work is approved by the reviewer (also in the log, once acknowledged).
    pub approved: bool,
    /// This run wrote its issue lock.
    pub locked: bool,
    /// The branch is looked at for its head only (`--merge none` after a check or a recovery).
    pub look_for_head: bool,
}

/// How one issue ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Done,
    Failed,
    Conflict,
    Released,
}

impl Ending {
    /// How an issue released for `reason` ended (the one mapping from the log's reasons).
    pub fn of(reason: crate::event::ReleaseReason) -> Ending {
        use crate::event::ReleaseReason as R;
        match reason {
            R::Done => Ending::Done,
            R::Conflict => Ending::Conflict,
            R::Failed | R::Timeout => Ending::Failed,
            R::Shutdown | R::Abandoned => Ending::Released,
        }
    }
}

/// What a release does to the issue in the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveBack {
    /// Nothing: it is closed, or someone else holds it.
    No,
    /// Back to open, unassigned.
    Open,
    /// Back to open, unassigned, with this label (for a person to look at).
    Labelled(&'static str),
}

/// A release and how the issue ended, kept whole so it can wait for the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub reason: ReleaseReason,
    pub detail: String,
    pub give_back: GiveBack,
    pub keep_branch: bool,
    pub ending: Ending,
    /// The branch kept for a person, named in what the user sees.
    pub branch_kept: Option<String>,
    /// Whether the user is shown how long the issue took (a done issue).
    pub show_took: bool,
    /// How the ending is shown (a claim recovery gives up is shown as released, whatever its reason).
    pub shown_as: Ending,
    /// What the user is told, when it is not the recorded detail.
    pub said: Option<String>,
}

/// A close asked for in this dispatch step, made when the step ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseDue {
    pub id: String,
    pub reason: String,
    pub keep_branch: bool,
}

/// A tracker write that waits for the tracker to work again, in the order it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The work is merged (or there was none); the close waits.
    Close(CloseDue),
    /// The issue goes back to the tracker (failed, conflicted, stopped); the give-back waits.
    Release { id: String, release: Release },
}

impl Waiting {
    pub fn issue(&self) -> &str {
        match self {
            Waiting::Close(c) => &c.id,
            Waiting::Release { id, .. } => id,
        }
    }
}

/// Why a run ended early (beside a stop asked for by the user).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Set when nothing could be started: why.
    pub nothing_ready: Option<String>,
    /// Set when the run drained because the tracker did not work for `--tracker-outage`: why.
    pub tracker_outage: Option<String>,
    /// Issues whose close or give-back still waited for the tracker when the run ended.
    pub left_waiting: usize,
    /// Set when the first attempts of [`CRASH_LOOP_ISSUES`] different issues failed the same way (exit
    /// status and the agent's last words) and the run stopped claiming: that failure.
    pub crash_loop: Option<String>,
    /// Set when the run stopped claiming because `--max-cost` was spent: what was spent, of what.
    pub budget_spent: Option<String>,
    /// A budget is set and an agent ended without reporting its cost (codex reports tokens only): the
    /// first such issue. Budgets count only what agents report.
    pub cost_unreported: Option<String>,
}

/// How many different issues' first attempts must fail the same way before the run stops claiming: a
/// broken agent setup must not burn through the backlog.
pub const CRASH_LOOP_ISSUES: usize = 3;

/// Everything the run loop decides on.
#[derive(Debug, Clone)]
pub struct Model {
    pub rules: Rules,
    /// The fold of the log: the executor applies the records the log acknowledged.
    pub state: State,
    /// The tracker's issues as bdp last read them, with bdp's own writes since folded in.
    pub issues: Vec<Issue>,
    /// When the tracker was last read (run time, and wall-clock time for deferred issues).
    pub read_at: Option<Ms>,
    pub read_ts: jiff::Timestamp,
    /// A fill waits for the tracker read it asked for.
    pub fill_after_read: bool,
    /// Why the machine had no room for another agent, as the last step saw it.
    pub machine_busy: Option<String>,
    /// When the outage timer fires, if one is set.
    pub tracker_timer_at: Option<Ms>,
    /// The time of the decision being made.
    pub now: Ms,
    /// Ready issues in plan order, not yet looked at.
    pub queue: VecDeque<String>,
    /// The queue must be worked out again from `issues`.
    pub dirty: bool,
    /// The tracker was read once more because nothing seemed left: the next empty look ends the run.
    pub looked_again: bool,
    /// Issues not to pick again in this run (given up, conflicted, refused by the tracker).
    pub skip: BTreeSet<String>,
    pub held: BTreeMap<String, Held>,
    /// Issues whose claim went to the tracker, the answer not back yet (the executor calls the tracker off the
    /// dispatcher's thread): they take a slot and are not picked again.
    pub claiming: BTreeSet<String>,
    /// A read of the tracker went out, the answer not back yet.
    pub reading: bool,
    pub stop: StopLevel,
    pub claims_made: usize,
    /// Set while the tracker does not work (claims paused, writes waiting).
    pub outage: Option<Outage<std::time::Duration>>,
    /// The branch being merged, and those waiting for their turn.
    pub merging: Option<String>,
    pub merge_queue: VecDeque<String>,
    /// Closes asked for in this dispatch step.
    pub closes_due: Vec<CloseDue>,
    /// Tracker writes waiting for the tracker to work again, in order.
    pub waiting: Vec<Waiting>,
    /// Phase labels not yet written to the tracker: the latest phase of each issue.
    pub phase_due: BTreeMap<String, Phase>,
    /// Why the machine had no room when last said (said once until it changes).
    pub busy_note: Option<String>,
    /// Issues held back by what they touch, with why, as last said (said once until it changes).
    pub held_back: BTreeMap<String, String>,
    /// First attempts that failed, by how they failed (exit status and the agent's last words): the
    /// issues. For the crash-loop guard.
    pub first_failures: BTreeMap<String, BTreeSet<String>>,
    /// What agents of this run reported spending, in micro-dollars: in all, and per issue.
    pub spent: u64,
    pub issue_spent: BTreeMap<String, u64>,
    /// The run is over: nothing runs and nothing more will start.
    pub finished: bool,
    pub outcome: Outcome,
}

impl Model {
    /// The model at the start of a run: the log's fold and the tracker as read at `read_ts`.
    pub fn new(rules: Rules, state: State, issues: Vec<Issue>, read_ts: jiff::Timestamp) -> Model {
        Model {
            rules,
            state,
            issues,
            read_at: Some(0),
            read_ts,
            fill_after_read: false,
            machine_busy: None,
            tracker_timer_at: None,
            now: 0,
            queue: VecDeque::new(),
            dirty: true,
            looked_again: false,
            skip: BTreeSet::new(),
            held: BTreeMap::new(),
            claiming: BTreeSet::new(),
            reading: false,
            stop: StopLevel::None,
            claims_made: 0,
            outage: None,
            merging: None,
            merge_queue: VecDeque::new(),
            closes_due: Vec::new(),
            waiting: Vec::new(),
            phase_due: BTreeMap::new(),
            busy_note: None,
            held_back: BTreeMap::new(),
            first_failures: BTreeMap::new(),
            spent: 0,
            issue_spent: BTreeMap::new(),
            finished: false,
            outcome: Outcome::default(),
        }
    }

    /// Whether claims are paused because the tracker does not work.
    pub fn tracker_down(&self) -> bool {
        self.outage.is_some()
    }

    /// Issues with an agent, check, worktree or merge task working for them.
    pub fn busy(&self) -> impl Iterator<Item = &String> {
        self.held.iter().filter(|(_, h)| h.stage.busy()).map(|(id, _)| id)
    }

    /// The tracker's copy of an issue, as bdp knows it.
    pub fn issue(&self, id: &str) -> Option<&Issue> {
        self.issues.iter().find(|i| i.id == id)
    }

    pub(super) fn issue_mut(&mut self, id: &str) -> Option<&mut Issue> {
        self.issues.iter_mut().find(|i| i.id == id)
    }
}
