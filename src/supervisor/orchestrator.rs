//! The orchestrator of `bdp run`: a dispatcher that owns the state (the fold of the log), the log writer
//! and the tracker, and one executor task per running agent (or check) that reports back over a channel —
//! the shape of cargo-nextest's runner.
//!
//! The dispatcher is the only one that decides, writes the log or touches the tracker and git, so claims,
//! merges (the merge queue) and tracker writes are serialized by construction. Each step is appended to
//! the log before it acts when it is an intent (spawn requested, merge started) and its outcome after;
//! the state is updated only from the records the log acknowledged.
//!
//! The per-issue steps are in [`super::steps`]; stopping and the end summary are here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::event::{AgentUsage, Event, Phase, SessionEndReason};
use crate::log::LogWriter;
use crate::plan::Issue;
use crate::repo::Repo;
use crate::state::State;
use crate::supervisor::agent::AgentEnd;
use crate::tracker::{LabelChange, ListFilter, Tracker};

use super::options::{CONFLICT_LABEL, FAILED_LABEL, Isolation, PhaseLabels, RunOptions};
use super::progress::Progress;

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error("{0}")]
    Tracker(#[from] crate::tracker::TrackerError),
    #[error("{0}")]
    Git(#[from] crate::git::GitError),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// A record the log accepted was refused by the fold: a bug in bdp.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type RunResult<T> = Result<T, RunError>;

/// What executor tasks and signal handlers tell the dispatcher.
#[derive(Debug)]
pub enum Msg {
    Exited {
        issue: String,
        attempt: u32,
        end: AgentEnd,
        usage: Option<AgentUsage>,
    },
    Checked {
        issue: String,
        attempt: u32,
        passed: bool,
        code: Option<i32>,
        duration_ms: u64,
    },
    RetryDue {
        issue: String,
    },
    WorktreeReady {
        issue: String,
        result: Result<(), String>,
    },
    /// The merge queue's git work for one branch ended (a git failure as its message).
    MergeDone {
        issue: String,
        outcome: Result<crate::git::MergeOutcome, String>,
    },
    Stop(StopLevel),
}

/// How hard the user asked to stop (defined in the core, where it is decided).
pub use crate::dispatch::stop::StopLevel;

/// An issue this session holds, as the dispatcher tracks it beside the log.
#[derive(Debug)]
pub(super) struct Live {
    pub title: String,
    pub since: Instant,
    /// An agent or check task is running for it.
    pub busy: bool,
}

/// How one issue ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Done,
    Failed,
    Conflict,
    Released,
}

/// What the run did, for the summary and the exit code. The counts of how issues ended are this session's
/// counts in the fold of the log (`SessionCounts`), filled in when the session ends.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub done: usize,
    pub failed: usize,
    pub conflicted: usize,
    pub released: usize,
    pub attempts: usize,
    pub agent_time: Duration,
    pub wall: Duration,
    pub cost_micro_usd: u64,
    pub usage_reports: usize,
    pub stop: Option<SessionEndReason>,
    pub session: String,
    /// Set when nothing could be started: why.
    pub nothing_ready: Option<String>,
    /// Set when the run drained because the tracker did not work for `--tracker-outage`: why.
    pub tracker_outage: Option<String>,
    /// Issues whose close or give-back still waited for the tracker when the run ended (the next run makes
    /// those writes).
    pub left_waiting: usize,
}

pub struct Orchestrator {
    pub(super) repo: Repo,
    pub(super) opts: RunOptions,
    pub(super) tracker: Box<dyn Tracker>,
    pub(super) log: LogWriter,
    pub(super) state: State,
    pub(super) bdp_exe: PathBuf,
    pub(super) base: String,
    pub(super) git_dir: String,
    pub(super) issues: Vec<Issue>,
    pub(super) queue: VecDeque<String>,
    pub(super) dirty: bool,
    /// Issues not to pick again in this run (given up, conflicted, refused by the tracker).
    pub(super) skip: HashSet<String>,
    pub(super) live: HashMap<String, Live>,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub(super) stop: StopLevel,
    pub(super) stop_now: watch::Sender<bool>,
    pub(super) claims_made: usize,
    pub(super) summary: RunSummary,
    pub(super) progress: Progress,
    pub(super) last_refresh: Instant,
    busy_note: Option<String>,
    /// Observations (phase changes) waiting to go out with the next append: they need no fsync of
    /// their own, and are flushed before the dispatcher waits for anything.
    pub(super) pending: Vec<Event>,
    /// Set while the tracker does not work (claims paused, writes waiting).
    pub(super) outage: Option<crate::dispatch::outage::Outage<Instant>>,
    /// The branch being merged (its git work runs in a task), and those waiting for their turn.
    pub(super) merging: Option<String>,
    pub(super) merge_queue: VecDeque<String>,
    /// Closes asked for in this dispatch step (made together when it ends).
    pub(super) closes_due: Vec<super::steps::CloseDue>,
    /// Tracker writes waiting for the tracker to work again, in order.
    pub(super) waiting: Vec<super::outage::Waiting>,
    /// Phase labels not yet written to the tracker: the latest phase of each issue.
    pub(super) phase_due: HashMap<String, Phase>,
    /// A tracker batch is open (see [`Orchestrator::begin_batch`]).
    batch_open: bool,
    /// Held around every git operation that adds, removes or lists worktrees, or moves the base branch:
    /// git does not make concurrent `worktree add`/`prune`/`list` safe, and worktrees are made in tasks.
    pub(super) git_lock: std::sync::Arc<std::sync::Mutex<()>>,
    /// What this orchestrator writes into the issue lock files it holds (`pid N start T since TS`).
    pub(super) holder: crate::log::lock::Holder,
    /// Findings of the recovery to repair before anything new is claimed.
    pub(super) recovery: Vec<crate::reconcile::Finding>,
    /// Saves checkpoints as the run goes, on a thread of its own.
    checkpoints: super::checkpointer::Checkpointer,
}

/// Everything the orchestrator is built from.
pub struct Setup {
    pub repo: Repo,
    pub opts: RunOptions,
    pub tracker: Box<dyn Tracker>,
    pub log: LogWriter,
    pub state: State,
    pub bdp_exe: PathBuf,
    pub base: String,
    pub git_dir: String,
    pub issues: Vec<Issue>,
}

impl Orchestrator {
    pub fn new(setup: Setup) -> Orchestrator {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_now, _) = watch::channel(false);
        let progress = Progress::new(setup.opts.plain);
        let session = setup.log.session().to_string();
        let checkpoints = super::checkpointer::Checkpointer::start(&setup.repo, setup.state.last_seq);
        Orchestrator {
            repo: setup.repo,
            opts: setup.opts,
            tracker: setup.tracker,
            log: setup.log,
            state: setup.state,
            bdp_exe: setup.bdp_exe,
            base: setup.base,
            git_dir: setup.git_dir,
            issues: setup.issues,
            queue: VecDeque::new(),
            dirty: true,
            skip: HashSet::new(),
            live: HashMap::new(),
            tx,
            rx,
            stop: StopLevel::None,
            stop_now,
            claims_made: 0,
            summary: RunSummary { session, ..RunSummary::default() },
            progress,
            last_refresh: Instant::now(),
            busy_note: None,
            pending: Vec::new(),
            phase_due: HashMap::new(),
            outage: None,
            closes_due: Vec::new(),
            merging: None,
            merge_queue: VecDeque::new(),
            waiting: Vec::new(),
            batch_open: false,
            git_lock: Default::default(),
            holder: crate::log::lock::Holder { pid: std::process::id(), start_time: None, since: String::new() },
            recovery: Vec::new(),
            checkpoints,
        }
    }

    /// A sender for stop requests (the signal handlers use it).
    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    /// Records the session's start, with the effective configuration, before the loop runs.
    pub fn start_session(
        &mut self,
        holder: crate::log::lock::Holder,
        config: serde_json::Value,
        recovers: Option<String>,
    ) -> RunResult<()> {
        let (pid, start_time) = (holder.pid, holder.start_time);
        self.holder = holder;
        self.append(vec![Event::SessionStarted {
            pid,
            start_time,
            host: rustix::system::uname().nodename().to_string_lossy().into_owned(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config,
            recovers,
        }])
    }

    /// Findings to repair first, when the loop starts (see [`super::recover`]).
    pub fn set_recovery(&mut self, findings: Vec<crate::reconcile::Finding>) {
        self.recovery = findings;
    }

    /// Appends events; the state follows the records the log acknowledged (other processes' first).
    pub(super) fn append(&mut self, events: Vec<Event>) -> RunResult<()> {
        let mut events = if self.pending.is_empty() {
            events
        } else {
            let mut all = std::mem::take(&mut self.pending);
            all.extend(events);
            all
        };
        if let Some(calls) = self.tracker.take_calls().filter(|c| !c.is_empty()) {
            events.push(Event::TrackerCalls {
                backend: self.tracker.name().to_string(),
                issues: calls.per_issue,
                other: calls.other,
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        if self.batch_open {
            // The tracker's writes are made before the log records them.
            self.tracker.end_batch()?;
            if let Err(e) = self.tracker.begin_batch() {
                self.batch_open = false;
                self.tracker_failed("reading the tracker", &e);
            }
        }
        let records = self.log.append(events)?;
        for record in self.log.take_foreign().iter().chain(records.iter()) {
            self.state.apply(record).map_err(|e| RunError::Internal(format!("the log refused its own record: {e}")))?;
        }
        self.checkpoints.note(&self.state, || self.log.last_position());
        Ok(())
    }

    /// Gathers the tracker writes of one dispatch step into one write (with the JSONL tracker: one
    /// rewrite of the file instead of one per claim or close).
    pub(super) fn begin_batch(&mut self) -> RunResult<()> {
        match self.tracker.begin_batch() {
            Ok(()) => self.batch_open = true,
            // Each write then reads the tracker itself, fails the same way, and waits.
            Err(e) => self.tracker_failed("reading the tracker", &e),
        }
        Ok(())
    }

    pub(super) fn end_batch(&mut self) -> RunResult<()> {
        if std::mem::take(&mut self.batch_open) {
            self.tracker.end_batch()?;
        }
        Ok(())
    }

    /// Queues observations (outcomes, not intents) to go out, in order, with the next append or before the
    /// dispatcher next waits — so the events of many issues share one fsync. Intents (spawn requested,
    /// merge started) go through [`Orchestrator::append`] and are durable before the act. Code that reads
    /// the state sees queued events only after that flush: every read the steps make follows an append.
    pub(super) fn defer(&mut self, events: Vec<Event>) {
        self.pending.extend(events);
    }

    /// Records a phase change. It goes out with the next append (or before the dispatcher next waits), in
    /// order: a phase is an observation, and an intent that follows it is never acted on before both are
    /// durable. Its tracker label is written when the dispatcher next waits ([`Orchestrator::flush_phase_labels`]).
    pub(super) fn phase(&mut self, issue: &str, phase: Phase) {
        self.pending.push(Event::PhaseChanged { issue: issue.to_string(), phase });
        self.progress.phase(issue, phase.as_str());
        if self.phase_labels_on() {
            self.phase_due.insert(issue.to_string(), phase);
        }
    }

    /// Whether an agent, check or worktree task is working for the issue.
    pub(super) fn set_busy(&mut self, issue: &str, busy: bool) {
        if let Some(live) = self.live.get_mut(issue) {
            live.busy = busy;
        }
    }

    /// Whether the tracker gets `phase:*` labels: bd and br with `--phase-labels all` (the JSONL tracker is
    /// left alone: such labels would churn the user's git diffs).
    fn phase_labels_on(&self) -> bool {
        self.tracker.name() != "jsonl" && self.opts.phase_labels == PhaseLabels::All
    }

    /// The label change that puts `phase:PHASE` on the issue in place of the phase labels it has (as bdp
    /// last read or wrote them: nothing is read). Empty when labels are off or it is on already.
    pub(super) fn phase_label_change(&self, issue: &str, phase: Phase) -> LabelChange {
        if !self.phase_labels_on() {
            return LabelChange::default();
        }
        let new = format!("phase:{}", phase.as_str());
        let old: Vec<String> = self
            .issues
            .iter()
            .find(|i| i.id == issue)
            .map(|i| i.labels.iter().filter(|l| l.starts_with("phase:")).cloned().collect())
            .unwrap_or_default();
        if old == [new.clone()] {
            return LabelChange::default();
        }
        LabelChange { remove: old.into_iter().filter(|l| *l != new).collect(), add: vec![new] }
    }

    /// Writes the phase labels due, one call per issue whatever the number of phases it went through since
    /// the last write: the latest phase goes on, the one before comes off. Labels are a courtesy to people
    /// watching the tracker: a failed write is logged and the run goes on.
    pub(super) fn flush_phase_labels(&mut self) {
        // A branch in the merge queue gets its label when the merge is done (a merge takes moments, and its
        // close follows): one write fewer per issue.
        let merging = |id: &String| self.merging.as_ref() == Some(id) || self.merge_queue.contains(id);
        let held: Vec<(String, Phase)> =
            self.phase_due.iter().filter(|(id, _)| merging(id)).map(|(i, p)| (i.clone(), *p)).collect();
        let mut due: Vec<(String, Phase)> = self.phase_due.drain().filter(|(id, _)| !merging(id)).collect();
        self.phase_due.extend(held);
        due.sort();
        // The same change for several issues (claimed → running for all spawned in this step) is one call.
        let changes: Vec<(LabelChange, String)> = due
            .into_iter()
            .map(|(issue, phase)| (self.phase_label_change(&issue, phase), issue))
            .filter(|(change, _)| !change.is_empty())
            .collect();
        let groups = grouped(changes);
        let mut events = Vec::new();
        for (change, members) in groups {
            let results = self.tracker.change_labels_many(&members, &change, &mut events);
            for (issue, result) in members.iter().zip(results) {
                match result {
                    Ok(()) => {
                        if let Some(i) = self.issues.iter_mut().find(|i| &i.id == issue) {
                            change.apply(&mut i.labels);
                        }
                    }
                    Err(e) => tracing::warn!("the phase label of {issue}: {e}"),
                }
            }
        }
        self.defer(events);
    }

    /// Runs until nothing is ready, `--max-issues` is reached, or a stop; then ends the session.
    pub async fn run(mut self) -> (RunSummary, RunResult<()>) {
        let started = Instant::now();
        let findings = std::mem::take(&mut self.recovery);
        let result = match self.recover(findings).await {
            Ok(()) => self.main_loop().await,
            Err(e) => Err(e),
        };
        let reason = match (&result, self.stop) {
            (Err(_), _) => SessionEndReason::Error,
            (Ok(()), StopLevel::None) => SessionEndReason::Completed,
            (Ok(()), StopLevel::Drain) => SessionEndReason::Drained,
            (Ok(()), StopLevel::Now) => SessionEndReason::Stopped,
        };
        if result.is_err() {
            // Only an explicit stop (`--now`, a second Ctrl-C) kills agents. An error ends the dispatcher,
            // not the agents' work: they keep running, and the next `bdp run` adopts them (or applies the exit
            // files of those that finished meanwhile).
            let running: Vec<&String> = self.live.iter().filter(|(_, l)| l.busy).map(|(id, _)| id).collect();
            if !running.is_empty() {
                let ids: Vec<&str> = running.iter().map(|s| s.as_str()).collect();
                self.progress.line(&format!(
                    "left running for the next `bdp run` to adopt: {} ({} agent(s) or check(s))",
                    ids.join(", "),
                    ids.len()
                ));
            }
        }
        if result.is_ok() {
            let closed = self.flush_closes();
            if let Err(e) = closed {
                tracing::warn!("closing at the end of the run: {e}");
            }
        }
        self.flush_phase_labels();
        let ended = self.append(vec![Event::SessionEnded { reason }]);
        self.checkpoints.finish(&self.state, self.log.last_position());
        self.progress.clear();
        self.summary.wall = started.elapsed();
        self.summary.stop = Some(reason);
        // How the issues ended is the log's: this session's counts in the fold.
        if let Some(counts) = self.state.session(self.log.session()).map(|s| s.counts.clone()) {
            self.summary.done = counts.done as usize;
            self.summary.failed = counts.failed as usize;
            self.summary.conflicted = counts.conflicts as usize;
            self.summary.released = counts.released_other as usize;
            self.summary.attempts = counts.spawns as usize;
        }
        (self.summary, result.and(ended))
    }

    async fn main_loop(&mut self) -> RunResult<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.tend_outage()?;
            if !self.closes_due.is_empty() {
                self.begin_batch()?;
                let flushed = self.flush_closes();
                let ended = self.end_batch();
                flushed?;
                ended?;
            }
            if crate::dispatch::stop::may_claim(self.claim_gate(0)) {
                self.fill_slots()?;
            }
            if self.live.is_empty() {
                if self.stop != StopLevel::None || !self.can_start_more(0) {
                    return Ok(());
                }
                if self.tracker_down() {
                    // Nothing runs and nothing can be claimed: wait for the tracker (or the outage limit).
                    let msg = tokio::select! {
                        msg = self.rx.recv() => msg,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => None,
                    };
                    if let Some(msg) = msg {
                        self.handle(msg)?;
                    }
                    continue;
                }
                // Nothing to pick: look at the tracker once more before calling it done.
                self.refresh_issues()?;
                if self.tracker_down() {
                    continue;
                }
                match self.next_candidate() {
                    // Put it back: the next `fill_slots` takes it.
                    Some(id) => self.queue.push_front(id),
                    None => {
                        if self.claims_made == 0 {
                            self.summary.nothing_ready = Some(self.why_nothing_ready());
                        }
                        return Ok(());
                    }
                }
                continue;
            }
            self.flush_phase_labels();
            self.append(Vec::new())?;
            let first = tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => Some(msg),
                    None => return Err(RunError::Internal("the dispatcher's channel closed".into())),
                },
                _ = tick.tick() => None,
            };
            if let Some(first) = first {
                // This message and everything else already waiting, with one tracker write.
                self.begin_batch()?;
                let handled = self.handle(first).and_then(|()| {
                    while let Ok(msg) = self.rx.try_recv() {
                        self.handle(msg)?;
                    }
                    self.flush_closes()
                });
                let ended = self.end_batch();
                handled?;
                ended?;
            }
        }
    }

    fn handle(&mut self, msg: Msg) -> RunResult<()> {
        match msg {
            Msg::Exited { issue, attempt, end, usage } => self.on_exited(&issue, attempt, end, usage),
            Msg::Checked { issue, attempt, passed, code, duration_ms } => {
                self.on_checked(&issue, attempt, passed, code, duration_ms)
            }
            Msg::RetryDue { issue } => self.on_retry_due(&issue),
            Msg::WorktreeReady { issue, result } => self.on_worktree_ready(&issue, result),
            Msg::MergeDone { issue, outcome } => self.on_merge_done(&issue, outcome),
            Msg::Stop(level) => {
                self.request_stop(level);
                Ok(())
            }
        }
    }

    /// Escalates the stop level; a second drain request means now.
    pub(super) fn request_stop(&mut self, level: StopLevel) {
        let next = crate::dispatch::stop::escalate(self.stop, level);
        if next == self.stop {
            return;
        }
        self.stop = next;
        match next {
            StopLevel::Drain => self.progress.line(&format!(
                "stopping: no new issues; waiting for {} running agent(s) (Ctrl-C again or `bdp stop --now` to stop them)",
                self.live.len()
            )),
            StopLevel::Now => {
                self.progress.line("stopping now: terminating running agents");
                let _ = self.stop_now.send(true);
            }
            StopLevel::None => {}
        }
    }

    /// Whether `--max-issues` allows another claim beyond `picked` ones about to be made.
    fn can_start_more(&self, picked: usize) -> bool {
        // The issue limit alone (the caller looks at the stop, and waits out an outage).
        crate::dispatch::stop::may_claim(crate::dispatch::stop::ClaimGate {
            stop: StopLevel::None,
            tracker_down: false,
            ..self.claim_gate(picked)
        })
    }

    /// What claiming depends on now, with `picked` issues about to be claimed in this step.
    fn claim_gate(&self, picked: usize) -> crate::dispatch::stop::ClaimGate {
        crate::dispatch::stop::ClaimGate {
            stop: self.stop,
            tracker_down: self.tracker_down(),
            claims_made: self.claims_made,
            picked,
            max_issues: self.opts.max_issues,
        }
    }

    /// Starts agents while there are free slots, ready issues and room on the machine.
    /// Picks what fits, claims it all in one tracker write, then prepares and spawns (the spawn intents
    /// in one log append).
    fn fill_slots(&mut self) -> RunResult<()> {
        let mut picked: Vec<String> = Vec::new();
        while self.live.len() + picked.len() < self.opts.agents
            && crate::dispatch::stop::may_claim(self.claim_gate(picked.len()))
        {
            if !(self.live.is_empty() && picked.is_empty())
                && let Some(why) = super::guard::busy(self.opts.max_load, self.opts.max_mem)
            {
                if self.busy_note.is_none() {
                    self.progress.line(&format!("waiting: {why}"));
                    self.busy_note = Some(why);
                }
                break;
            }
            self.busy_note = None;
            if self.queue.is_empty() && self.last_refresh.elapsed() > Duration::from_secs(5) {
                self.refresh_issues()?;
                if self.tracker_down() {
                    break;
                }
            }
            let Some(id) = self.next_candidate() else { break };
            if !picked.contains(&id) {
                picked.push(id);
            }
        }
        if picked.is_empty() {
            return Ok(());
        }
        self.begin_batch()?;
        let result = self.claim_issues(&picked);
        let ended = self.end_batch();
        let claimed = result?;
        ended?;
        match self.opts.isolation {
            Isolation::Worktree => {
                for id in &claimed {
                    self.start_worktree(id);
                }
                Ok(())
            }
            Isolation::None => self.spawn_attempts(claimed),
        }
    }

    /// Reads the tracker again (others may have changed it). A read that fails starts an outage (claims
    /// pause; see [`super::outage`]), not the end of the run.
    pub(super) fn refresh_issues(&mut self) -> RunResult<()> {
        match self.tracker.list(&ListFilter::default()) {
            Ok(issues) => {
                self.issues = issues;
                self.last_refresh = Instant::now();
                self.dirty = true;
            }
            Err(e) => self.tracker_failed("reading the tracker", &e),
        }
        Ok(())
    }

    /// The next ready issue in plan order that this run may take.
    fn next_candidate(&mut self) -> Option<String> {
        if self.dirty {
            self.recompute_queue();
        }
        while let Some(id) = self.queue.pop_front() {
            if self.pickable(&id) {
                return Some(id);
            }
        }
        None
    }

    fn pickable(&self, id: &str) -> bool {
        !self.skip.contains(id)
            && !self.live.contains_key(id)
            && self.state.issues.get(id).is_none_or(|i| i.claim.is_none())
    }

    fn recompute_queue(&mut self) {
        let order = super::options::run_order(&self.issues, &self.opts, jiff::Timestamp::now());
        self.queue = order.into_iter().map(|i| self.issues[i].id.clone()).collect();
        self.dirty = false;
    }

    /// One sentence on why nothing could start.
    fn why_nothing_ready(&self) -> String {
        let opts = crate::plan::PlanOptions {
            agents: 1,
            epic: self.opts.epic.clone(),
            label: self.opts.label.clone(),
            now: jiff::Timestamp::now(),
        };
        let scope = match (&self.opts.epic, &self.opts.label) {
            (Some(e), _) => format!(" under epic {e}"),
            (None, Some(l)) => format!(" with label {l}"),
            (None, None) => String::new(),
        };
        let Ok(plan) = crate::plan::plan(&self.issues, self.tracker.name(), &opts) else {
            return format!("nothing is ready{scope}");
        };
        let s = &plan.summary;
        let labelled = self.issues.iter().filter(|i| i.status == "open" && super::options::held_for_human(i)).count();
        if s.issues == 0 {
            return format!("nothing to do: no issues{scope}");
        }
        let mut parts = Vec::new();
        if s.closed > 0 {
            parts.push(format!("{} closed", s.closed));
        }
        if s.blocked > 0 {
            parts.push(format!("{} blocked", s.blocked));
        }
        if s.in_progress > 0 {
            parts.push(format!("{} in progress (claimed)", s.in_progress));
        }
        if labelled > 0 {
            parts.push(format!("{labelled} labelled {FAILED_LABEL} or {CONFLICT_LABEL} (remove the label to retry)"));
        }
        if s.closed == s.issues {
            format!("nothing is ready: all {} issues{scope} are closed", s.issues)
        } else {
            format!("nothing is ready{scope}: {}", parts.join(", "))
        }
    }

    /// Records how an issue ended in this run and stops showing it.
    pub(super) fn ended(&mut self, issue: &str, ending: Ending, text: &str) {
        self.live.remove(issue);
        if matches!(ending, Ending::Failed | Ending::Conflict) {
            self.skip.insert(issue.to_string());
        }
        self.progress.finished(issue);
        self.progress.line(text);
        self.dirty = true;
    }
}

/// Items grouped by key, groups and members in the order they came: the tracker writes of one dispatch step
/// that can go in one call (the same label change, the same close reason).
pub(super) fn grouped<K: PartialEq, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<(K, Vec<V>)> {
    let mut groups: Vec<(K, Vec<V>)> = Vec::new();
    for (key, item) in items {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    groups
}
