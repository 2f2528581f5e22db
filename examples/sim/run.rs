//! One seed: the real `decide`, the real fold and the real `reconcile::diff`, run against the simulated world
//! on a virtual clock, with faults injected and the orchestrator crashed at random action boundaries. This is
//! the simulator's executor: it carries out actions as `supervisor::orchestrator` and `supervisor::steps` do,
//! and recovers as `supervisor::recover` does (the fold of the durable log, the diff against the world, the
//! repairs fed to `decide` as inputs).

use std::collections::BTreeMap;

use bdp::dispatch::model::{OnConflict, RetryFrom};
use bdp::dispatch::{Input, Isolation, MergeOutcome, Model, Rules};
use bdp::event::{Event, FORMAT_VERSION, MergeStrategy, Record};
use bdp::filelock::zones::{Zone, ZoneMode};
use bdp::state::State;

use crate::check::Violation;
use crate::rng::Rng;
use crate::world::{ACTOR, World};

/// How likely each fault is.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Per action carried out: the orchestrator dies before it.
    pub crash: f64,
    /// Per durable append: it fails (the run ends with an error, as on a full disk), or tears.
    pub append_fails: f64,
    /// Per step: the tracker goes down for a while.
    pub outage: f64,
    /// Per step: someone else claims an open issue.
    pub competitor: f64,
    /// Per step: the user asks the run to stop.
    pub stop: f64,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults { crash: 0.002, append_fails: 0.0005, outage: 0.002, competitor: 0.003, stop: 0.0005 }
    }
}

/// Why the orchestrator stopped in the middle of an action.
#[derive(Debug)]
pub enum Halt {
    /// It crashed (or its log failed): recovery follows.
    Crash,
    /// An invariant does not hold.
    Violation(Violation),
}

impl From<Violation> for Halt {
    fn from(v: Violation) -> Halt {
        Halt::Violation(v)
    }
}

/// Something due later: a task's result for an orchestrator incarnation, or a change in the world.
#[derive(Debug)]
pub(crate) enum Due {
    Input { incarnation: u32, input: Input },
    AgentEnds { index: usize },
    TrackerBack,
    CompetitorLetsGo { issue: String, close: bool },
}

/// What one seed did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub seed: u64,
    pub steps: u64,
    pub runs: u32,
    pub crashes: u32,
    pub records: usize,
    pub closed: usize,
    pub issues: usize,
    pub trace: String,
    pub violation: Option<String>,
}

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub now: u64,
    pub world: World,
    /// The durable log.
    pub log: Vec<Record>,
    /// Observations the live orchestrator has not yet appended (lost if it dies).
    pub(crate) pending: Vec<Event>,
    pub model: Model,
    pub(crate) rules: Rules,
    pub incarnation: u32,
    pub(crate) pid: u32,
    pub(crate) session: String,
    pub(crate) due: BTreeMap<(u64, u64), Due>,
    pub(crate) n: u64,
    pub steps: u64,
    pub max_steps: u64,
    pub(crate) trace: blake3::Hasher,
    pub(crate) faults: Faults,
    pub crashes: u32,
    pub runs: u32,
    /// Worktrees and merges in flight (a crash leaves them done or not).
    pub(crate) inflight: Vec<(String, bool)>,
    /// Nothing is left to do before the step budget is spent.
    pub(crate) budget_spent: bool,
    /// Tracker answers come back later, as from the executor's tracker thread (this seed's choice).
    pub(crate) tracker_async: bool,
    /// Tracker calls are answered at once (recovery, and the end of a run).
    pub(crate) tracker_in_place: bool,
    /// When the last tracker answer is due (they come back in order).
    pub(crate) tracker_answer_at: u64,
    /// Tracker repairs of the recovery that failed, tried again as the run ends.
    pub(crate) unrepaired: Vec<bdp::reconcile::Finding>,
}

fn rules(rng: &mut Rng) -> Rules {
    Rules {
        agents: rng.between(1, 4) as usize,
        retries: rng.between(0, 2) as u32,
        retry_backoff: 1_000,
        timeout: 30_000,
        tracker_outage: 60_000,
        isolation: Isolation::Worktree,
        merge: if rng.chance(0.1) { MergeStrategy::None } else { MergeStrategy::Merge },
        check: rng.chance(0.5).then(|| "make check".to_string()),
        max_issues: None,
        phase_labels: rng.chance(0.5),
        keep_worktrees: false,
        base: "main".into(),
        refresh_after: 5_000,
        actor: ACTOR.into(),
        pid: 0,
        epic: None,
        label: None,
        tracker: "sim".into(),
        max_cost: None,
        max_issue_cost: None,
        resumes: rng.chance(0.5),
        retry_from: if rng.chance(0.5) { RetryFrom::Last } else { RetryFrom::Base },
        on_conflict: if rng.chance(0.5) { OnConflict::Resolve } else { OnConflict::Label },
        review: rng.chance(0.3),
        review_rounds: rng.between(0, 2) as u32,
        zones: if rng.chance(0.5) {
            let mode = if rng.chance(0.5) { ZoneMode::Sequential } else { ZoneMode::Exclusive };
            vec![Zone { path: bdp::filelock::LockPath::parse("migrations/**").unwrap(), mode }]
        } else {
            vec![]
        },
    }
}

impl Sim {
    pub fn new(seed: u64, max_steps: u64, faults: Faults) -> Sim {
        let mut rng = Rng::new(seed);
        let issues = rng.between(3, 16) as usize;
        let world = World::new(&mut rng, issues);
        let rules = rules(&mut rng);
        let tracker_async = rng.chance(0.5) && std::env::var_os("SIM_SYNC").is_none();
        let model = Model::new(rules.clone(), State::new(), vec![], jiff::Timestamp::UNIX_EPOCH);
        Sim {
            seed,
            rng,
            now: 0,
            world,
            log: Vec::new(),
            pending: Vec::new(),
            model,
            rules,
            incarnation: 0,
            pid: 0,
            session: String::new(),
            due: BTreeMap::new(),
            n: 0,
            steps: 0,
            max_steps,
            trace: blake3::Hasher::new(),
            faults,
            crashes: 0,
            runs: 0,
            inflight: Vec::new(),
            budget_spent: false,
            tracker_async,
            tracker_in_place: true,
            tracker_answer_at: 0,
            unrepaired: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, at: u64, due: Due) {
        self.n += 1;
        self.due.insert((at, self.n), due);
    }

    pub(crate) fn later(&mut self, lo: u64, hi: u64, input: Input) {
        let at = self.now + self.rng.between(lo, hi);
        self.at(at, Due::Input { incarnation: self.incarnation, input });
    }

    /// Runs the seed to its end: runs of `bdp run` (each after a crash or a stop recovers) until the backlog is
    /// done or the step budget is spent. The last run is left to finish without faults, then the world must be
    /// quiet.
    pub fn run(mut self) -> Report {
        let violation = match self.drive() {
            Ok(()) => None,
            Err(v) => Some(v.to_string()),
        };
        if violation.is_some() && std::env::var_os("SIM_LOG").is_some() {
            for r in &self.log {
                eprintln!("{:>5} {} {}", r.seq, r.session, serde_json::to_string(&r.event).unwrap_or_default());
            }
        }
        Report {
            seed: self.seed,
            steps: self.steps,
            runs: self.runs,
            crashes: self.crashes,
            records: self.log.len(),
            closed: self.world.issues.values().filter(|i| i.issue.status == "closed").count(),
            issues: self.world.issues.len(),
            trace: self.trace.finalize().to_hex()[..16].to_string(),
            violation,
        }
    }

    pub(crate) fn drive(&mut self) -> Result<(), Violation> {
        let mut calm = false;
        loop {
            if (self.steps >= self.max_steps || self.budget_spent) && !calm {
                // Faults off: the last run must bring everything to an end.
                calm = true;
                self.faults = Faults { crash: 0.0, append_fails: 0.0, outage: 0.0, competitor: 0.0, stop: 0.0 };
                self.world.tracker_down_until = self.world.tracker_down_until.min(self.now);
            }
            match self.one_run() {
                Ok(()) => {}
                Err(Halt::Violation(v)) => return Err(v),
                Err(Halt::Crash) => {
                    self.crashed();
                    continue;
                }
            }
            // Work is left while an issue is ready, or someone else holds one that may come back.
            let list = self.world.list();
            let ready = !bdp::dispatch::order::in_order(&list, None, None, jiff::Timestamp::UNIX_EPOCH).is_empty();
            let elsewhere = list.iter().any(|i| i.assignee.as_deref() == Some("someone-else"));
            let open = ready || elsewhere;
            if calm && (!open || self.runs > 200) {
                return crate::check::quiet(self);
            }
            if !open && !calm {
                self.budget_spent = true;
            }
            if calm {
                // What the competitor holds comes back.
                self.settle_world();
            }
            if let Err(Halt::Violation(v)) = self.between_runs() {
                return Err(v);
            }
        }
    }

    /// One `bdp run`: start (recovering what the last one left), loop until it ends.
    pub(crate) fn one_run(&mut self) -> Result<(), Halt> {
        self.start()?;
        self.tracker_in_place = false;
        loop {
            self.feed(Input::Step { machine_busy: None })?;
            if self.model.finished && !self.tracker_answers_due() {
                self.tracker_in_place = true;
                self.feed(Input::Step { machine_busy: None })?;
                self.feed(Input::Idle)?;
                self.repair_again();
                let reason = match self.model.stop {
                    bdp::dispatch::stop::StopLevel::None => bdp::event::SessionEndReason::Completed,
                    bdp::dispatch::stop::StopLevel::Drain => bdp::event::SessionEndReason::Drained,
                    bdp::dispatch::stop::StopLevel::Now => bdp::event::SessionEndReason::Stopped,
                };
                self.append(vec![Event::SessionEnded { reason, left_running: vec![] }], true)?;
                self.world.live_pids.remove(&self.pid);
                // A run that ended by itself (not left waiting for the tracker) leaves nothing behind.
                if self.model.outcome.tracker_outage.is_none() {
                    crate::check::quiet(self)?;
                }
                return Ok(());
            }
            self.feed(Input::Idle)?;
            self.append(vec![], true)?;
            self.world_step()?;
            self.next_due()?;
        }
    }

    /// Whether a tracker call of this run waits for its answer.
    fn tracker_answers_due(&self) -> bool {
        self.due.values().any(|d| match d {
            Due::Input { incarnation, input } => *incarnation == self.incarnation && input.is_tracker_answer(),
            _ => false,
        })
    }

    /// Starts a run: the fold of the durable log, the diff against the world, the repairs.
    pub(crate) fn start(&mut self) -> Result<(), Halt> {
        self.tracker_in_place = true;
        self.unrepaired.clear();
        self.runs += 1;
        self.incarnation += 1;
        self.pid = 1_000 + self.incarnation;
        self.world.live_pids.insert(self.pid);
        self.session = format!("s{}", self.incarnation);
        self.pending.clear();
        let state =
            State::fold(&self.log).map_err(|e| Violation::new(self, format!("the fold refused the log: {e}")))?;
        let recovers = state.open_session.clone();
        let mut rules = self.rules.clone();
        rules.pid = self.pid;
        let issues = self.world.list();
        self.model = Model::new(rules, state, issues, jiff::Timestamp::UNIX_EPOCH);
        self.append(
            vec![Event::SessionStarted {
                pid: self.pid,
                start_time: Some(self.pid as u64),
                host: "sim".into(),
                version: "sim".into(),
                config: serde_json::Value::Null,
                recovers,
            }],
            true,
        )?;
        let findings = bdp::reconcile::diff(&self.model.state, &self.world.observe(&self.model.state));
        self.recover(findings)
    }

    /// The orchestrator died: what it had not appended is lost; its tasks' results never arrive; git work in
    /// flight finished or not; agents keep running.
    pub(crate) fn crashed(&mut self) {
        self.crashes += 1;
        self.world.live_pids.remove(&self.pid);
        self.pending.clear();
        for (issue, merge) in std::mem::take(&mut self.inflight) {
            if !self.rng.chance(0.5) {
                continue;
            }
            if merge {
                self.merge_in_world(&issue);
            } else {
                self.make_worktree_in_world(&issue);
            }
        }
        self.due.retain(|_, d| !matches!(d, Due::Input { .. }));
        for a in self.world.agents.iter_mut() {
            a.watched_by = None;
        }
    }

    // ----- the executor -----

    pub fn feed(&mut self, input: Input) -> Result<(), Halt> {
        self.steps += 1;
        self.trace.update(format!("{} {input:?}\n", self.now).as_bytes());
        let actions = self.model.decide(self.now, input);
        for action in actions {
            if self.rng.chance(self.faults.crash) {
                return Err(Halt::Crash);
            }
            self.trace.update(format!("{action:?}\n").as_bytes());
            for next in self.execute(action)? {
                self.feed(next)?;
            }
        }
        crate::check::always(self)?;
        Ok(())
    }

    /// Appends (durable: with everything queued), folding the records into the model as the log acknowledges
    /// them. A failing or torn append ends this orchestrator.
    pub(crate) fn append(&mut self, events: Vec<Event>, durable: bool) -> Result<(), Halt> {
        self.pending.extend(events);
        if !durable || self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let fails = self.rng.chance(self.faults.append_fails);
        let keep = if fails { self.rng.below(batch.len() as u64 + 1) as usize } else { batch.len() };
        for event in batch.into_iter().take(keep) {
            let record = Record {
                seq: self.log.len() as u64 + 1,
                v: FORMAT_VERSION,
                ts: format!("2026-01-01T00:00:00.{:03}Z", self.now % 1000),
                session: self.session.clone(),
                event,
            };
            self.model.state.apply(&record).map_err(|e| {
                Violation::new(self, format!("the fold refused a record decide appended: {e} ({:?})", record.event))
            })?;
            self.log.push(record);
        }
        if fails {
            return Err(Halt::Crash);
        }
        Ok(())
    }

    /// The world moves on its own: the tracker goes down, someone else claims an issue, the user asks to stop.
    pub(crate) fn world_step(&mut self) -> Result<(), Halt> {
        if self.rng.chance(self.faults.outage) && self.world.tracker_works(self.now) {
            let long = self.rng.chance(0.1);
            let for_ms = if long { self.rng.between(60_000, 90_000) } else { self.rng.between(500, 20_000) };
            self.world.tracker_down_until = self.now + for_ms;
            self.at(self.now + for_ms, Due::TrackerBack);
        }
        if self.rng.chance(self.faults.competitor) {
            let open: Vec<String> = self
                .world
                .issues
                .iter()
                .filter(|(_, i)| i.issue.status == "open" && i.issue.assignee.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            if !open.is_empty() {
                let id = open[self.rng.below(open.len() as u64) as usize].clone();
                if let Some(i) = self.world.issue_mut(&id) {
                    i.status = "in_progress".into();
                    i.assignee = Some("someone-else".into());
                }
                let close = self.rng.chance(0.3);
                let at = self.now + self.rng.between(1_000, 30_000);
                self.at(at, Due::CompetitorLetsGo { issue: id, close });
            }
        }
        if self.rng.chance(self.faults.stop) {
            let level = if self.rng.chance(0.5) {
                bdp::dispatch::stop::StopLevel::Drain
            } else {
                bdp::dispatch::stop::StopLevel::Now
            };
            self.feed(Input::StopAsked(level))?;
        }
        Ok(())
    }

    /// The user runs `bdp run` again after a pause, or when something changed: the world moves on meanwhile
    /// (agents end, the tracker comes back, the competitor lets go). What the last orchestrator's tasks would
    /// have reported is lost with it.
    pub(crate) fn between_runs(&mut self) -> Result<(), Halt> {
        self.due.retain(|_, d| !matches!(d, Due::Input { .. }));
        let next = self.due.keys().next().map_or(0, |&(at, _)| at);
        self.now = (self.now + 1_000).max(next);
        while let Some((&(at, n), _)) = self.due.iter().next() {
            if at > self.now {
                break;
            }
            match self.due.remove(&(at, n)).expect("the first key is there") {
                Due::AgentEnds { index } => {
                    let a = &self.world.agents[index];
                    if a.alive && a.ends_at == Some(at) {
                        self.agent_ended(index)?;
                    }
                }
                Due::CompetitorLetsGo { issue, close } => self.let_go(&issue, close),
                Due::TrackerBack | Due::Input { .. } => {}
            }
        }
        Ok(())
    }

    /// The competitor lets go of what it holds (the seed is ending).
    pub(crate) fn settle_world(&mut self) {
        let due = std::mem::take(&mut self.due);
        for (key, d) in due {
            match d {
                Due::CompetitorLetsGo { issue, close } => self.let_go(&issue, close),
                d => {
                    self.due.insert(key, d);
                }
            }
        }
    }

    pub(crate) fn let_go(&mut self, issue: &str, close: bool) {
        if let Some(i) = self.world.issue_mut(issue)
            && i.assignee.as_deref() == Some("someone-else")
        {
            i.assignee = None;
            i.status = if close { "closed".into() } else { "open".into() };
        }
    }

    /// Waits for the next thing due (or half a second: the dispatcher's tick) and hands it over.
    pub(crate) fn next_due(&mut self) -> Result<(), Halt> {
        let tick = self.now + 500;
        let Some((&(at, n), _)) = self.due.iter().next() else {
            self.now = tick;
            return Ok(());
        };
        if at > tick {
            self.now = tick;
            return Ok(());
        }
        let due = self.due.remove(&(at, n)).expect("the first key is there");
        self.now = self.now.max(at);
        match due {
            Due::Input { incarnation, input } => {
                if incarnation != self.incarnation {
                    return Ok(());
                }
                match &input {
                    Input::WorktreeReady { issue, result: Ok(_) } => {
                        let issue = issue.clone();
                        self.inflight.retain(|(i, m)| i != &issue || *m);
                        self.make_worktree_in_world(&issue);
                    }
                    Input::MergeDone { issue, outcome: Ok(MergeOutcome::Merged { commit }) } => {
                        let (issue, commit) = (issue.clone(), commit.clone());
                        self.inflight.retain(|(i, m)| i != &issue || !*m);
                        if let Some(b) = self.world.branches.get_mut(&issue) {
                            b.merged = Some(commit);
                        }
                    }
                    _ => {}
                }
                self.feed(input)
            }
            Due::AgentEnds { index } => {
                let a = &self.world.agents[index];
                if !a.alive || a.ends_at != Some(at) {
                    return Ok(());
                }
                self.agent_ended(index)
            }
            Due::TrackerBack => Ok(()),
            Due::CompetitorLetsGo { issue, close } => {
                self.let_go(&issue, close);
                Ok(())
            }
        }
    }
}
