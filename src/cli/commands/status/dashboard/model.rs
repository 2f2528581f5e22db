//! What the dashboard shows, as plain data: [`Model::build`] is a pure function of the log's state, what
//! the log said during the current run ([`RunActivity`], fed record by record), and a look at the world
//! ([`World`]: the time, the orchestrator, which agents are alive, their last output line, the tracker).
//!
//! No I/O and no clock here, so the screen can be tested from fixed inputs. Text from issues and agents is
//! hostile: every string that reaches the model is made one line with control characters escaped.
//!
//! The run is the last session plus the crashed sessions it recovers (`session_started.recovers`), so a
//! crash and its recovery count as one run for the totals.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::cli::render::{one_line, record_line};
use crate::event::{AgentUsage, Event, Record};
use crate::plan::Issue;
use crate::state::{SessionEnd, State};

/// Recent records kept for the screen.
pub const RECENT: usize = 12;
/// Ready issues listed in the queue.
pub const QUEUE_SHOWN: usize = 8;

/// What the records of the current run add up to (the state does not keep it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunActivity {
    /// The session the last record came from, and when the run's first session started.
    session: Option<String>,
    pub run_started_ts: Option<String>,
    /// Sum of `agent_exited.duration_ms` in the run.
    pub agent_ms: u64,
    /// Summed usage of the agents that reported it; `None` if none did.
    pub usage: Option<AgentUsage>,
    pub recent: VecDeque<Record>,
    /// Timestamps of `agent_spawned` records (a running agent's elapsed time counts from it).
    pub spawn_ts: BTreeMap<u64, String>,
}

impl RunActivity {
    /// Takes one record in, in log order.
    pub fn observe(&mut self, record: &Record) {
        match &record.event {
            Event::SessionStarted { recovers, .. } => {
                let continues = recovers.is_some() && *recovers == self.session;
                if !continues {
                    let spawn_ts = std::mem::take(&mut self.spawn_ts);
                    let recent = std::mem::take(&mut self.recent);
                    *self = RunActivity { spawn_ts, recent, ..RunActivity::default() };
                    self.run_started_ts = Some(record.ts.clone());
                }
                self.session = Some(record.session.clone());
            }
            Event::AgentExited { duration_ms, usage, .. } => {
                self.agent_ms += duration_ms;
                if let Some(u) = usage {
                    let total = self.usage.get_or_insert_with(AgentUsage::default);
                    total.input_tokens += u.input_tokens;
                    total.cached_input_tokens += u.cached_input_tokens;
                    total.output_tokens += u.output_tokens;
                    if let Some(c) = u.cost_micro_usd {
                        total.cost_micro_usd = Some(total.cost_micro_usd.unwrap_or(0) + c);
                    }
                }
            }
            Event::AgentSpawned { .. } => {
                self.spawn_ts.insert(record.seq, record.ts.clone());
            }
            _ => {}
        }
        self.recent.push_back(record.clone());
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }
}

/// The seq the current run starts at: the last session's start, or that of the first crashed session it
/// (transitively) recovers. 1 when there is no session.
pub fn run_start_seq(state: &State) -> u64 {
    let Some(mut session) = state.sessions.last() else { return 1 };
    while let Some(previous) = session.recovers.as_deref().and_then(|id| state.session(id)) {
        if previous.started_seq >= session.started_seq {
            break;
        }
        session = previous;
    }
    session.started_seq
}

/// What was seen of the world at one tick.
#[derive(Debug, Clone)]
pub struct World {
    pub now: jiff::Timestamp,
    /// Someone holds the orchestrator lock, and the pid its file names.
    pub orchestrator_running: bool,
    pub orchestrator_pid: Option<u32>,
    /// Whether the agent of each claimed issue with a spawned attempt is alive (pid + start time).
    pub alive: BTreeMap<String, bool>,
    /// The last line of each running attempt's stdout, by issue.
    pub last_lines: BTreeMap<String, String>,
    /// The tracker's issues, or why they could not be read.
    pub tracker: Result<Arc<TrackerView>, String>,
    /// Lock holders seen alive, by pid.
    pub lock_holders_alive: BTreeMap<u32, bool>,
    /// Agents' file locks and who waits for them (`.bdp/file-locks/`).
    pub file_locks: crate::file_locks::Listing,
    /// Whether each file lock's holder (by pid) is alive.
    pub file_lock_holders_alive: BTreeMap<u32, bool>,
}

/// The tracker's issues and the ready ones in plan order, worked out once per read of the tracker.
#[derive(Debug, Clone)]
pub struct TrackerView {
    pub issues: Vec<Issue>,
    /// Indices into `issues`: ready by bd's rules, in bdp's order, not labelled for a human.
    pub ready: Vec<usize>,
}

impl TrackerView {
    pub fn new(issues: Vec<Issue>, now: jiff::Timestamp) -> TrackerView {
        let ready = crate::plan::ready_in_order(&issues, now)
            .into_iter()
            .filter(|&i| !crate::supervisor::options::held_for_human(&issues[i]))
            .collect();
        TrackerView { issues, ready }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub repo: String,
    pub last_seq: u64,
    pub session: Option<SessionView>,
    pub counts: Counts,
    /// Sum of agent time over wall time since the run started; `None` before any agent exited.
    pub speedup: Option<f64>,
    pub usage: Option<AgentUsage>,
    pub agents: Vec<AgentView>,
    pub queue: Vec<QueueItem>,
    /// Why the queue is unknown (the tracker could not be read).
    pub queue_error: Option<String>,
    pub recent: Vec<String>,
    pub locks: Vec<LockView>,
    pub file_locks: Vec<FileLockView>,
    /// The log could not be followed any more (damage): shown instead of silently freezing.
    pub log_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionView {
    pub id: String,
    /// running, crashed or ended.
    pub state: &'static str,
    pub orchestrator_pid: Option<u32>,
    pub started_ts: String,
    /// From the session's start to its end, or to now while it is open.
    pub elapsed_ms: Option<u64>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub done: u64,
    pub failed: u64,
    pub conflicted: u64,
    pub running: usize,
    /// Ready issues not claimed (unknown without the tracker).
    pub queued: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    pub issue: String,
    pub title: Option<String>,
    pub phase: String,
    pub attempt: Option<u32>,
    /// Since the agent was spawned (an attempt still open), else `None`.
    pub elapsed_ms: Option<u64>,
    /// `None` when no agent was spawned for the current attempt.
    pub alive: Option<bool>,
    pub last_line: Option<String>,
    /// What the agent last said of its progress (`report_progress`).
    pub progress: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: String,
    pub priority: i64,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockView {
    pub name: String,
    pub holder_pid: u32,
    pub holder_alive: Option<bool>,
    pub issue: Option<String>,
}

/// An agent's file lock (`bdp lock`, `lock_acquire`), or a wait for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileLockView {
    Held { path: String, shared: bool, holder: String, alive: bool },
    Waiting { holder: String, paths: String, held_by: String },
}

fn ms_between(from: &str, to: jiff::Timestamp) -> Option<u64> {
    let from: jiff::Timestamp = from.parse().ok()?;
    Some((to.as_millisecond() - from.as_millisecond()).max(0) as u64)
}

/// Realized speedup: agent time over wall time (may move to a shared `activity` module).
pub fn realized_speedup(agent_ms: u64, wall_ms: u64) -> Option<f64> {
    (agent_ms > 0 && wall_ms > 0).then(|| agent_ms as f64 / wall_ms as f64)
}

impl Model {
    pub fn build(repo: &str, state: &State, activity: &RunActivity, world: &World, log_error: Option<String>) -> Model {
        let session = state.sessions.last().map(|s| {
            let (st, end_ts, end_reason) = match &s.end {
                SessionEnd::Open if world.orchestrator_running => ("running", None, None),
                SessionEnd::Open | SessionEnd::Crashed { .. } => ("crashed", Some(s.last_ts.as_str()), None),
                SessionEnd::Ended { ts, reason, .. } => ("ended", Some(ts.as_str()), Some(reason.as_str().to_string())),
            };
            let until = end_ts.and_then(|t| t.parse().ok()).unwrap_or(world.now);
            SessionView {
                id: one_line(&s.id),
                state: st,
                orchestrator_pid: if st == "running" { world.orchestrator_pid.or(Some(s.pid)) } else { Some(s.pid) },
                started_ts: s.started_ts.clone(),
                elapsed_ms: ms_between(&s.started_ts, until),
                end_reason,
            }
        });
        let titles: BTreeMap<&str, &str> = match &world.tracker {
            Ok(t) => t.issues.iter().map(|i| (i.id.as_str(), i.title.as_str())).collect(),
            Err(_) => BTreeMap::new(),
        };
        let agents: Vec<AgentView> = state
            .claimed()
            .map(|(id, claim)| {
                let attempt = claim.attempt.as_ref();
                let open = attempt.filter(|a| a.is_open());
                let spawned = open.and_then(|a| a.spawned.as_ref());
                AgentView {
                    issue: one_line(id),
                    title: titles.get(id.as_str()).map(|t| one_line(t)),
                    phase: state.issues[id].phase.map_or("claimed", |p| p.as_str()).to_string(),
                    attempt: attempt.map(|a| a.number),
                    elapsed_ms: spawned.and_then(|s| ms_between(activity.spawn_ts.get(&s.seq)?, world.now)),
                    alive: spawned.map(|_| world.alive.get(id).copied().unwrap_or(false)),
                    last_line: world.last_lines.get(id).map(|l| one_line(l)),
                    progress: open
                        .and_then(|a| a.progress.as_ref())
                        .map(|p| crate::text::progress_line(&p.status, p.percent, p.step, p.steps)),
                }
            })
            .collect();
        let (queue, queue_total, queue_error) = match &world.tracker {
            Ok(t) => {
                let issues = &t.issues;
                let order: Vec<usize> = t
                    .ready
                    .iter()
                    .copied()
                    .filter(|&i| state.issues.get(&issues[i].id).is_none_or(|s| s.claim.is_none()))
                    .collect();
                let shown = order
                    .iter()
                    .take(QUEUE_SHOWN)
                    .map(|&i| QueueItem {
                        id: one_line(&issues[i].id),
                        priority: issues[i].priority,
                        title: one_line(&issues[i].title),
                    })
                    .collect();
                (shown, Some(order.len()), None)
            }
            Err(e) => (Vec::new(), None, Some(one_line(e))),
        };
        let run_from = run_start_seq(state);
        let mut counts = Counts { queued: queue_total, ..Counts::default() };
        for s in state.sessions.iter().filter(|s| s.started_seq >= run_from) {
            counts.done += s.counts.done;
            counts.failed += s.counts.failed;
            counts.conflicted += s.counts.conflicts;
        }
        counts.running = agents.iter().filter(|a| a.alive == Some(true)).count();
        let wall_ms = activity.run_started_ts.as_deref().and_then(|t| {
            let end = session.as_ref().filter(|s| s.state != "running").and_then(|s| {
                let started: jiff::Timestamp = s.started_ts.parse().ok()?;
                started.checked_add(jiff::SignedDuration::from_millis(s.elapsed_ms? as i64)).ok()
            });
            ms_between(t, end.unwrap_or(world.now))
        });
        Model {
            repo: one_line(repo),
            last_seq: state.last_seq,
            session,
            counts,
            speedup: wall_ms.and_then(|w| realized_speedup(activity.agent_ms, w)),
            usage: activity.usage.clone(),
            agents,
            queue,
            queue_error,
            recent: activity.recent.iter().rev().map(|r| one_line(&record_line(r, false))).collect(),
            locks: state
                .locks
                .iter()
                .map(|(name, lock)| LockView {
                    name: one_line(name),
                    holder_pid: lock.holder_pid,
                    holder_alive: world.lock_holders_alive.get(&lock.holder_pid).copied(),
                    issue: lock.issue.as_deref().map(one_line),
                })
                .collect(),
            file_locks: world
                .file_locks
                .locks
                .iter()
                .map(|l| FileLockView::Held {
                    path: one_line(&l.path),
                    shared: l.shared,
                    holder: one_line(&l.holder),
                    alive: world.file_lock_holders_alive.get(&l.pid).copied().unwrap_or(true),
                })
                .chain(world.file_locks.waiting.iter().map(|w| FileLockView::Waiting {
                    holder: one_line(&w.holder),
                    paths: one_line(&w.paths.join(", ")),
                    held_by: one_line(&w.waits_for.join(", ")),
                }))
                .collect(),
            log_error,
        }
    }
}
