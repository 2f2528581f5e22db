//! The executor of `bdp run`: the dispatcher loop around the pure [`crate::dispatch::Model::decide`], the
//! shape of cargo-nextest's runner. It owns the log writer, the tracker and the tasks; it feeds every
//! [`Input`] (an agent exited, a merge is done, a timer fired, a stop was asked for) to `decide` and carries
//! out the [`Action`]s that come back ([`super::steps`]), turning each result into the next input.
//!
//! The dispatcher is the only one that writes the log; the tracker's calls are made, in order, on one tracker
//! thread ([`super::tracker_thread`]), a job per dispatch step; merges go one at a time through the merge
//! queue. So claims, merges and tracker writes are serialized by construction. Everything that takes time
//! (tracker calls, worktrees, agents, checks, merges, timers) runs off the dispatcher's thread and reports
//! back over a channel, so a stop is handled at once. The model's `state` is updated only from the records the
//! log acknowledged.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::dispatch::{Action, Input, Model};
use crate::event::{Event, SessionEndReason};
use crate::log::LogWriter;
use crate::plan::Issue;
use crate::repo::Repo;
use crate::state::State;
use crate::tracker::Tracker;

use super::options::RunOptions;
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

/// What tasks and signal handlers tell the dispatcher: an input for `decide`.
pub type Msg = Input;

/// How hard the user asked to stop (defined in the core, where it is decided).
pub use crate::dispatch::stop::StopLevel;

/// How one issue ended in this run (defined in the core).
pub use crate::dispatch::Ending;

/// What the run did, for the summary and the exit code. The counts (how issues ended, attempts, agent time,
/// cost) are this session's counts in the fold of the log (`SessionCounts`), filled in when the session ends.
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
    /// Set when the run stopped claiming because first attempts kept failing the same way: that failure.
    pub crash_loop: Option<String>,
    /// Set when the run stopped claiming because `--max-cost` was spent: what was spent, of what.
    pub budget_spent: Option<String>,
}

pub struct Orchestrator {
    pub(super) repo: Repo,
    pub(super) opts: RunOptions,
    pub(super) tracker: std::sync::Arc<dyn Tracker>,
    pub(super) log: LogWriter,
    /// What the run loop decides on (the fold of the log is its `state`).
    pub(super) model: Model,
    pub(super) bdp_exe: PathBuf,
    pub(super) base: String,
    pub(super) git_dir: String,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub(super) stop_now: watch::Sender<bool>,
    pub(super) summary: RunSummary,
    pub(super) progress: Progress,
    /// When the run started: `decide`'s clock counts from here.
    pub(super) started: Instant,
    /// Observations waiting to go out with the next append: they need no fsync of their own, and are
    /// flushed before the dispatcher waits for anything.
    pub(super) pending: Vec<Event>,
    /// Makes the tracker calls off the dispatcher's thread, a job per dispatch step.
    tracker_thread: super::tracker_thread::TrackerThread,
    tracker_done: mpsc::UnboundedReceiver<super::tracker_thread::Done>,
    /// The tracker calls of this step, to go out as one job.
    outbox: Vec<Action>,
    /// Tracker calls are made in place, one by one (during recovery and at the end of the run).
    tracker_in_place: bool,
    /// Held around every git operation that adds, removes or lists worktrees, or moves the base branch:
    /// git does not make concurrent `worktree add`/`prune`/`list` safe, and worktrees are made in tasks.
    pub(super) git_lock: std::sync::Arc<std::sync::Mutex<()>>,
    /// Issues whose worktree this run made and whose `after_create` hook has not passed yet.
    pub(super) fresh_worktrees: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// What this orchestrator writes into the issue lock files it holds (`pid N start T since TS`).
    pub(super) holder: crate::log::lock::Holder,
    /// Findings of the recovery to repair before anything new is claimed.
    pub(super) recovery: Vec<crate::reconcile::Finding>,
    /// Tracker repairs of the recovery that failed (the tracker did not work): tried again as the run ends.
    pub(super) unrepaired: Vec<crate::reconcile::Finding>,
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
        let pid = std::process::id();
        let rules = setup.opts.rules(&setup.base, setup.tracker.name(), pid);
        let model = Model::new(rules, setup.state, setup.issues, jiff::Timestamp::now());
        let tracker: std::sync::Arc<dyn Tracker> = std::sync::Arc::from(setup.tracker);
        let (done_tx, tracker_done) = mpsc::unbounded_channel();
        let tracker_thread =
            super::tracker_thread::TrackerThread::start(tracker.clone(), setup.opts.actor.clone(), done_tx);
        Orchestrator {
            repo: setup.repo,
            opts: setup.opts,
            tracker,
            log: setup.log,
            model,
            bdp_exe: setup.bdp_exe,
            base: setup.base,
            git_dir: setup.git_dir,
            tx,
            rx,
            stop_now,
            summary: RunSummary { session, ..RunSummary::default() },
            progress,
            started: Instant::now(),
            pending: Vec::new(),
            tracker_thread,
            tracker_done,
            outbox: Vec::new(),
            tracker_in_place: true,
            git_lock: Default::default(),
            fresh_worktrees: Default::default(),
            holder: crate::log::lock::Holder { pid, start_time: None, since: String::new() },
            recovery: Vec::new(),
            unrepaired: Vec::new(),
            checkpoints,
        }
    }

    /// A sender for stop requests (the signal handlers use it).
    pub fn sender(&self) -> mpsc::UnboundedSender<Msg> {
        self.tx.clone()
    }

    /// The fold of the log, as far as this run has appended.
    pub(super) fn state(&self) -> &State {
        &self.model.state
    }

    /// `decide`'s clock: milliseconds since the run started.
    pub(super) fn now(&self) -> crate::dispatch::Ms {
        self.started.elapsed().as_millis() as u64
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
        self.model.rules.pid = pid;
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

    /// Appends events (after those queued); the state follows the records the log acknowledged (other
    /// processes' first).
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
        let records = self.log.append(events)?;
        for record in self.log.take_foreign().iter().chain(records.iter()) {
            self.model
                .state
                .apply(record)
                .map_err(|e| RunError::Internal(format!("the log refused its own record: {e}")))?;
        }
        self.checkpoints.note(&self.model.state, || self.log.last_position());
        Ok(())
    }

    /// Queues observations (outcomes, not intents) to go out, in order, with the next append or before the
    /// dispatcher next waits — so the events of many issues share one fsync.
    pub(super) fn defer(&mut self, events: Vec<Event>) {
        self.pending.extend(events);
    }

    /// Sends the tracker calls of this step to the tracker's thread, as one job.
    fn send_tracker_job(&mut self) -> RunResult<()> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let job = std::mem::take(&mut self.outbox);
        if let Err(job) = self.tracker_thread.send(job) {
            // No tracker thread (it could not be started): the calls are made here.
            for input in self.call_tracker_here(job) {
                self.feed(input)?;
            }
        }
        Ok(())
    }

    /// Makes tracker calls on this thread (recovery, the end of a run, no tracker thread): what they
    /// observed is recorded, their results come back.
    fn call_tracker_here(&mut self, actions: Vec<Action>) -> Vec<Input> {
        let done = super::tracker_thread::run_job(self.tracker.as_ref(), &self.opts.actor, actions);
        self.defer(done.events);
        done.inputs
    }

    /// A job of the tracker's thread is done: what its calls observed is recorded, its results are inputs.
    fn tracker_job_done(&mut self, done: super::tracker_thread::Done, inputs: &mut Vec<Input>) {
        self.tracker_thread.took_done(&done);
        self.defer(done.events);
        inputs.extend(done.inputs);
    }

    /// Decides on an input and carries the actions out, each result decided on before the next action
    /// (depth first, as the steps happen).
    pub(super) fn feed(&mut self, input: Input) -> RunResult<()> {
        let actions = self.model.decide(self.now(), input);
        for action in actions {
            for next in self.execute(action)? {
                self.feed(next)?;
            }
        }
        Ok(())
    }

    /// Runs until nothing is ready, `--max-issues` is reached, or a stop; then ends the session.
    pub async fn run(mut self) -> (RunSummary, RunResult<()>) {
        let findings = std::mem::take(&mut self.recovery);
        let result = match self.recover(findings).await {
            Ok(()) => {
                self.tracker_in_place = false;
                let result = self.main_loop().await;
                self.tracker_in_place = true;
                result
            }
            Err(e) => Err(e),
        };
        let reason = match (&result, self.model.stop) {
            (Err(_), _) => SessionEndReason::Error,
            (Ok(()), StopLevel::None) => SessionEndReason::Completed,
            (Ok(()), StopLevel::Drain) => SessionEndReason::Drained,
            (Ok(()), StopLevel::Now) => SessionEndReason::Stopped,
        };
        let mut left_running = Vec::new();
        if result.is_err() {
            // Only an explicit stop (`--now`, a second Ctrl-C) kills agents. An error ends the dispatcher,
            // not the agents' work: they keep running, and the next `bdp run` adopts them (or applies the exit
            // files of those that finished meanwhile). The session's end says which.
            left_running = self.model.busy().cloned().collect();
            let running: Vec<&str> = left_running.iter().map(String::as_str).collect();
            if !running.is_empty() {
                self.progress.line(&format!(
                    "left running for the next `bdp run` to adopt: {} ({} agent(s) or check(s))",
                    running.join(", "),
                    running.len()
                ));
            }
        } else if let Err(e) = self.feed(Input::Step { machine_busy: None }) {
            // The closes still due (the run ends: nothing more is claimed).
            tracing::warn!("closing at the end of the run: {e}");
        }
        if let Err(e) = self.feed(Input::Idle) {
            tracing::warn!("the phase labels at the end of the run: {e}");
        }
        if self.tracker_thread.idle() {
            self.repair_again();
        }
        self.tracker_thread.finish();
        let ended = self.append(vec![Event::SessionEnded { reason, left_running }]);
        self.checkpoints.finish(&self.model.state, self.log.last_position());
        self.progress.clear();
        self.summary.wall = self.started.elapsed();
        self.summary.stop = Some(reason);
        // How the issues ended is the log's: this session's counts in the fold.
        if let Some(counts) = self.model.state.session(self.log.session()).map(|s| s.counts.clone()) {
            self.summary.done = counts.done as usize;
            self.summary.failed = counts.failed as usize;
            self.summary.conflicted = counts.conflicts as usize;
            self.summary.released = counts.released_other as usize;
            self.summary.attempts = counts.spawns as usize;
            self.summary.agent_time = Duration::from_millis(counts.agent_ms);
            self.summary.usage_reports = counts.usage_reports as usize;
            self.summary.cost_micro_usd = counts.cost_micro_usd;
        }
        let outcome = &self.model.outcome;
        self.summary.nothing_ready.clone_from(&outcome.nothing_ready);
        self.summary.tracker_outage.clone_from(&outcome.tracker_outage);
        self.summary.left_waiting = outcome.left_waiting;
        self.summary.crash_loop.clone_from(&outcome.crash_loop);
        self.summary.budget_spent.clone_from(&outcome.budget_spent);
        (self.summary, result.and(ended))
    }

    async fn main_loop(&mut self) -> RunResult<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut inputs: Vec<Input> = Vec::new();
        loop {
            // What came in, then a step (closes due, claims); its tracker calls go out as one job.
            let machine_busy = super::guard::busy(self.opts.max_load, self.opts.max_mem);
            inputs.drain(..).try_for_each(|input| self.feed(input))?;
            self.feed(Input::Step { machine_busy })?;
            if !self.model.finished {
                self.feed(Input::Idle)?;
            }
            self.send_tracker_job()?;
            if self.model.finished && self.tracker_thread.idle() {
                return Ok(());
            }
            self.append(Vec::new())?;
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => inputs.push(msg),
                    None => return Err(RunError::Internal("the dispatcher's channel closed".into())),
                },
                done = self.tracker_done.recv() => match done {
                    Some(done) => self.tracker_job_done(done, &mut inputs),
                    None => return Err(RunError::Internal("the tracker's thread ended".into())),
                },
                _ = tick.tick() => {}
            }
            while let Ok(msg) = self.rx.try_recv() {
                inputs.push(msg);
            }
            while let Ok(done) = self.tracker_done.try_recv() {
                self.tracker_job_done(done, &mut inputs);
            }
        }
    }

    /// Carries out one action; what it learned comes back as inputs.
    fn execute(&mut self, action: Action) -> RunResult<Vec<Input>> {
        match action {
            Action::Append { events, durable: true } => self.append(events).map(|()| vec![]),
            Action::Append { events, durable: false } => {
                self.defer(events);
                Ok(vec![])
            }
            Action::Report(event) => {
                self.progress.report(&event);
                Ok(vec![])
            }
            action if action.is_tracker_call() => {
                if !self.tracker_in_place {
                    self.outbox.push(action);
                    return Ok(vec![]);
                }
                Ok(self.call_tracker_here(vec![action]))
            }
            Action::StopAll => {
                let _ = self.stop_now.send(true);
                Ok(vec![])
            }
            Action::SetTimer { at, timer } => {
                let (tx, when) = (self.tx.clone(), self.started + Duration::from_millis(at));
                tokio::spawn(async move {
                    tokio::time::sleep_until(when.into()).await;
                    let _ = tx.send(Input::TimerFired(timer));
                });
                Ok(vec![])
            }
            other => self.execute_step(other),
        }
    }
}
