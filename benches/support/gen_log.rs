//! A realistic event log for the benchmarks, generated deterministically (fixed seed).
//!
//! [`Sim`] plays an orchestrator: sessions of 5 000–50 000 events (one in five crashes; the next session
//! recovers it, abandoning the orphaned attempt and releasing the issue), 8 agents in flight, each issue going
//! claim → worktree → spawn requested → spawned → exited → check → merge (under the `merge` lock) → close →
//! release, with failed agents and checks retried (up to 3 attempts, then released as failed) and merge
//! conflicts. Every event is a real `Event` variant and every transition is legal, so a fold does real work.
//! A pool of 10 000 issue ids is reused round-robin, so the state stays the size of a big tracker however long
//! the history is. Each [`Step`] is one decision step: the events an orchestrator appends together.
//!
//! [`LogBuilder`] writes the records straight to segment files with the real record encoder
//! (`event::record::encode_record`), splitting segments like the writer does, without an fsync per batch.
//!
//! Shared by `benches/append.rs`, `benches/replay.rs` and `examples/gen_log.rs` (via `#[path]`).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use bdp::event::record::{GENESIS, encode_record};
use bdp::event::{ChainHash, Event, FORMAT_VERSION, MergeStrategy, Phase, Record, ReleaseReason, SessionEndReason};
use bdp::log::segment::{SEGMENT_MAX_BYTES, segment_path};

/// A small deterministic PRNG (64-bit LCG, high bits).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x2545_f491_4f6c_dd1d)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One decision step: the events one session appends together, with the step's timestamp.
pub struct Step {
    pub session: String,
    pub ts: String,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Spawn,
    Spawned,
    Exit,
    Check,
    Retry,
    GiveUp,
    Merge,
    Close,
    Conflict,
}

#[derive(Debug, Clone)]
struct Flight {
    issue: usize,
    stage: Stage,
    attempt: u32,
    tries: u32,
}

impl Flight {
    /// Spawn requested and no outcome yet.
    fn attempt_open(&self) -> bool {
        matches!(self.stage, Stage::Spawned | Stage::Exit)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionPhase {
    NotStarted,
    Running,
    Draining,
}

/// The simulated orchestrator.
pub struct Sim {
    rng: Rng,
    attempts: Vec<u32>,
    busy: Vec<bool>,
    cursor: usize,
    slots: Vec<Option<Flight>>,
    orphans: Vec<Flight>,
    session: String,
    session_no: u32,
    session_pid: u32,
    recovers: Option<String>,
    phase: SessionPhase,
    session_left: i64,
    next_pid: u32,
    clock_ms: i64,
    /// In single-session mode, claims left before the session drains and ends (and the log with it).
    claim_budget: Option<usize>,
}

pub const ISSUE_POOL: usize = 10_000;
pub const AGENTS: usize = 8;
const MAX_TRIES: u32 = 3;

impl Sim {
    pub fn new(seed: u64) -> Sim {
        Sim::with_pool(seed, ISSUE_POOL, AGENTS)
    }

    pub fn with_pool(seed: u64, issues: usize, agents: usize) -> Sim {
        assert!(issues > agents, "the pool must hold more issues than agents");
        Sim {
            rng: Rng::new(seed),
            attempts: vec![0; issues],
            busy: vec![false; issues],
            cursor: 0,
            slots: vec![None; agents],
            orphans: Vec::new(),
            session: String::new(),
            session_no: 0,
            session_pid: 0,
            recovers: None,
            phase: SessionPhase::NotStarted,
            session_left: 0,
            next_pid: 300_000,
            // 2026-11-25T06:00:00Z
            clock_ms: 1_795_586_400_000,
            claim_budget: None,
        }
    }

    /// One session that claims `issues` distinct issues with `agents` in flight (retries, failures and
    /// conflicts as usual, no crash), then drains and ends: `bdp replay --html` on "a session of N issues".
    pub fn single_session(seed: u64, issues: usize, agents: usize) -> Sim {
        let mut sim = Sim::with_pool(seed, issues + agents + 1, agents);
        sim.claim_budget = Some(issues);
        sim
    }

    /// In single-session mode: the session has ended.
    pub fn finished(&self) -> bool {
        self.claim_budget == Some(0) && self.phase == SessionPhase::NotStarted && self.session_no > 0
    }

    fn issue_id(issue: usize) -> String {
        if issue % 7 == 3 {
            format!("bd-{:x}.{}", 0x10000 + issue, issue % 5 + 1)
        } else {
            format!("bd-{:x}", 0x10000 + issue)
        }
    }

    fn ts(&mut self) -> String {
        self.clock_ms += 1 + self.rng.below(400) as i64;
        let t = jiff::Timestamp::from_millisecond(self.clock_ms).expect("a valid timestamp");
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    /// The next `n` events, flattened (for benchmarks that only need realistic records).
    pub fn events(&mut self, n: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(n + 16);
        while out.len() < n {
            out.extend(self.next_step().events);
        }
        out.truncate(n);
        out
    }

    /// The next decision step.
    pub fn next_step(&mut self) -> Step {
        let events = self.step_events();
        self.session_left -= events.len() as i64;
        let ts = self.ts();
        Step { session: self.session.clone(), ts, events }
    }

    fn step_events(&mut self) -> Vec<Event> {
        loop {
            match self.phase {
                SessionPhase::NotStarted => return self.start_session(),
                _ if !self.orphans.is_empty() => {
                    let orphan = self.orphans.pop().expect("not empty");
                    return self.recover_orphan(orphan);
                }
                SessionPhase::Running if self.claim_budget == Some(0) => self.phase = SessionPhase::Draining,
                SessionPhase::Running if self.session_left <= 0 && self.claim_budget.is_none() => {
                    if self.rng.chance(20) {
                        // Crash: the in-flight issues are left for the next session to recover.
                        self.orphans = self.slots.iter_mut().filter_map(Option::take).collect();
                        self.recovers = Some(self.session.clone());
                        self.phase = SessionPhase::NotStarted;
                    } else {
                        self.phase = SessionPhase::Draining;
                    }
                }
                SessionPhase::Draining if self.slots.iter().all(Option::is_none) => {
                    self.phase = SessionPhase::NotStarted;
                    self.recovers = None;
                    return vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }];
                }
                phase => {
                    let slot = self.rng.below(self.slots.len() as u64) as usize;
                    match self.slots[slot].take() {
                        Some(flight) => {
                            let (events, next) = self.advance(flight);
                            self.slots[slot] = next;
                            return events;
                        }
                        None if phase == SessionPhase::Running => {
                            let (events, flight) = self.claim();
                            self.slots[slot] = Some(flight);
                            return events;
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn start_session(&mut self) -> Vec<Event> {
        self.session_no += 1;
        self.session = format!("s-20261125-{:06}-{:04x}", self.session_no, self.rng.below(0x10000));
        self.session_pid = self.next_pid;
        self.next_pid += 1;
        self.phase = SessionPhase::Running;
        self.session_left = 5_000 + self.rng.below(45_000) as i64;
        vec![Event::SessionStarted {
            pid: self.session_pid,
            start_time: Some(1_000_000 + u64::from(self.session_no) * 977),
            host: "build-7".into(),
            version: "0.1.0".into(),
            config: serde_json::json!({
                "agents": self.slots.len(), "tracker": "jsonl", "check": "cargo test",
                "merge": "merge", "timeout_s": 1800, "max_attempts": MAX_TRIES
            }),
            recovers: self.recovers.take(),
        }]
    }

    fn claim(&mut self) -> (Vec<Event>, Flight) {
        if let Some(left) = self.claim_budget.as_mut() {
            *left -= 1;
        }
        while self.busy[self.cursor] {
            self.cursor = (self.cursor + 1) % self.busy.len();
        }
        let issue = self.cursor;
        self.cursor = (self.cursor + 1) % self.busy.len();
        self.busy[issue] = true;
        let i = Self::issue_id(issue);
        let events = vec![
            Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
            Event::TrackerStatusSet {
                issue: i.clone(),
                status: "in_progress".into(),
                assignee: Some("bdp".into()),
                backend: "jsonl".into(),
            },
            Event::WorktreeCreated {
                issue: i.clone(),
                path: format!(".bdp/worktrees/{i}"),
                branch: format!("bdp/{i}"),
                base: "main".into(),
            },
            Event::PhaseChanged { issue: i, phase: Phase::WorktreeReady },
        ];
        (events, Flight { issue, stage: Stage::Spawn, attempt: 0, tries: 0 })
    }

    /// The flight's next step, and the flight afterwards (`None` once released).
    fn advance(&mut self, mut f: Flight) -> (Vec<Event>, Option<Flight>) {
        let i = Self::issue_id(f.issue);
        let a = f.attempt;
        let events = match f.stage {
            Stage::Spawn => {
                let attempt = self.attempts[f.issue] + 1;
                self.attempts[f.issue] = attempt;
                f.attempt = attempt;
                f.tries += 1;
                f.stage = Stage::Spawned;
                let run = format!(".bdp/runs/{i}/{attempt}");
                vec![Event::SpawnRequested {
                    issue: i.clone(),
                    attempt,
                    argv: vec![
                        "claude".into(),
                        "-p".into(),
                        "--output-format".into(),
                        "stream-json".into(),
                        format!("{run}/prompt.md"),
                    ],
                    cwd: format!(".bdp/worktrees/{i}"),
                    marker: format!("bdp-{}-{i}-{attempt}", self.session),
                    stdout: format!("{run}/stdout.log"),
                    stderr: format!("{run}/stderr.log"),
                }]
            }
            Stage::Spawned => {
                let pid = self.next_pid;
                self.next_pid += 1;
                f.stage = Stage::Exit;
                vec![
                    Event::AgentSpawned {
                        issue: i.clone(),
                        attempt: a,
                        pid,
                        pgid: pid,
                        start_time: Some(2_000_000 + u64::from(pid)),
                    },
                    Event::PhaseChanged { issue: i, phase: Phase::Running },
                ]
            }
            Stage::Exit => {
                let r = self.rng.below(100);
                let duration_ms = 30_000 + self.rng.below(1_500_000);
                let (code, signal, timed_out) = match r {
                    0..85 => (Some(0), None, false),
                    85..95 => (Some(1), None, false),
                    _ => (None, Some(9), true),
                };
                f.stage = if r < 85 {
                    Stage::Check
                } else if f.tries < MAX_TRIES {
                    Stage::Retry
                } else {
                    Stage::GiveUp
                };
                vec![
                    Event::AgentExited {
                        issue: i.clone(),
                        attempt: a,
                        code,
                        signal,
                        duration_ms,
                        timed_out,
                        usage: None,
                        session: None,
                    },
                    Event::PhaseChanged { issue: i, phase: Phase::Exited },
                ]
            }
            Stage::Check => {
                let duration_ms = 5_000 + self.rng.below(120_000);
                if self.rng.chance(90) {
                    f.stage = Stage::Merge;
                    vec![
                        Event::CheckPassed { issue: i.clone(), attempt: a, command: "cargo test".into(), duration_ms },
                        Event::PhaseChanged { issue: i, phase: Phase::Checked },
                    ]
                } else {
                    f.stage = if f.tries < MAX_TRIES { Stage::Retry } else { Stage::GiveUp };
                    vec![Event::CheckFailed {
                        issue: i,
                        attempt: a,
                        command: "cargo test".into(),
                        code: Some(101),
                        duration_ms,
                    }]
                }
            }
            Stage::Retry => {
                f.stage = Stage::Spawn;
                vec![Event::RetryScheduled {
                    issue: i,
                    next_attempt: self.attempts[f.issue] + 1,
                    backoff_ms: 5_000 << f.tries,
                    reason: format!("attempt {a} failed"),
                    carry_on: None,
                }]
            }
            Stage::Merge => {
                let conflict = self.rng.chance(5);
                let mut events = vec![
                    Event::LockAcquired { lock: "merge".into(), holder_pid: self.session_pid, issue: Some(i.clone()) },
                    Event::MergeStarted {
                        issue: i.clone(),
                        branch: format!("bdp/{i}"),
                        base: "main".into(),
                        strategy: MergeStrategy::Merge,
                    },
                ];
                if conflict {
                    f.stage = Stage::Conflict;
                    events.push(Event::MergeConflicted {
                        issue: i.clone(),
                        detail: "CONFLICT (content): Merge conflict in src/lib.rs".into(),
                    });
                    events.push(Event::LockReleased { lock: "merge".into() });
                } else {
                    f.stage = Stage::Close;
                    let commit: String = (0..5).map(|_| format!("{:08x}", self.rng.next() as u32)).collect();
                    events.push(Event::Merged { issue: i.clone(), commit });
                    events.push(Event::LockReleased { lock: "merge".into() });
                    events.push(Event::PhaseChanged { issue: i, phase: Phase::Merged });
                }
                events
            }
            Stage::Close => {
                let events = vec![
                    Event::TrackerIssueClosed {
                        issue: i.clone(),
                        reason: format!("bdp: merged attempt {a}"),
                        backend: "jsonl".into(),
                    },
                    Event::PhaseChanged { issue: i.clone(), phase: Phase::Closed },
                    Event::WorktreeRemoved { issue: i.clone(), path: format!(".bdp/worktrees/{i}") },
                    Event::IssueReleased { issue: i, reason: ReleaseReason::Done, detail: None },
                ];
                self.busy[f.issue] = false;
                return (events, None);
            }
            Stage::GiveUp | Stage::Conflict => {
                let (label, reason, detail) = if f.stage == Stage::GiveUp {
                    ("bdp:failed", ReleaseReason::Failed, format!("{} attempts failed", f.tries))
                } else {
                    ("bdp:conflict", ReleaseReason::Conflict, "merge conflict".to_string())
                };
                let events = vec![
                    Event::TrackerLabelsChanged {
                        issue: i.clone(),
                        added: vec![label.into()],
                        removed: vec![],
                        backend: "jsonl".into(),
                    },
                    Event::TrackerStatusSet {
                        issue: i.clone(),
                        status: "open".into(),
                        assignee: None,
                        backend: "jsonl".into(),
                    },
                    Event::WorktreeRemoved { issue: i.clone(), path: format!(".bdp/worktrees/{i}") },
                    Event::IssueReleased { issue: i, reason, detail: Some(detail) },
                ];
                self.busy[f.issue] = false;
                return (events, None);
            }
        };
        (events, Some(f))
    }

    /// What a recovering session appends for an issue a crashed session left claimed.
    fn recover_orphan(&mut self, f: Flight) -> Vec<Event> {
        let i = Self::issue_id(f.issue);
        let kind = if f.attempt_open() { "agent_dead_no_exit_file" } else { "claim_without_agent" };
        let mut events = vec![Event::ReconcileFinding {
            kind: kind.into(),
            issue: Some(i.clone()),
            detail: format!("attempt {} of the crashed session", f.attempt),
        }];
        if f.attempt_open() {
            events.push(Event::AttemptAbandoned {
                issue: i.clone(),
                attempt: f.attempt,
                reason: "process gone, no exit file".into(),
            });
        }
        events.extend([
            Event::RepairApplied { kind: kind.into(), issue: Some(i.clone()), action: "release".into() },
            Event::WorktreeRemoved { issue: i.clone(), path: format!(".bdp/worktrees/{i}") },
            Event::TrackerStatusSet {
                issue: i.clone(),
                status: "open".into(),
                assignee: None,
                backend: "jsonl".into(),
            },
            Event::IssueReleased { issue: i, reason: ReleaseReason::Abandoned, detail: Some("session crashed".into()) },
        ]);
        self.busy[f.issue] = false;
        events
    }
}

/// Writes a simulated log under an events directory with the real record encoder.
pub struct LogBuilder {
    sim: Sim,
    dir: PathBuf,
    segment: u32,
    file: BufWriter<File>,
    len: u64,
    seq: u64,
    chain: ChainHash,
    bytes: u64,
    line: Vec<u8>,
    pending: VecDeque<Event>,
    pending_session: String,
    pending_ts: String,
}

impl LogBuilder {
    /// Starts a new log in `events_dir` (created; it must hold no segments).
    pub fn create(events_dir: &Path, seed: u64) -> io::Result<LogBuilder> {
        Self::create_with(events_dir, Sim::new(seed))
    }

    /// Like [`LogBuilder::create`], with the simulator given.
    pub fn create_with(events_dir: &Path, sim: Sim) -> io::Result<LogBuilder> {
        std::fs::create_dir_all(events_dir)?;
        let path = segment_path(events_dir, 1);
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(LogBuilder {
            sim,
            dir: events_dir.to_path_buf(),
            segment: 1,
            file: BufWriter::with_capacity(1 << 20, file),
            len: 0,
            seq: 0,
            chain: GENESIS,
            bytes: 0,
            line: Vec::with_capacity(4096),
            pending: VecDeque::new(),
            pending_session: String::new(),
            pending_ts: String::new(),
        })
    }

    /// Seq of the last record written.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn segments(&self) -> u32 {
        self.segment
    }

    /// Appends records until the log holds `last_seq` of them, then flushes and fsyncs.
    pub fn fill_to(&mut self, last_seq: u64) -> io::Result<()> {
        while self.seq < last_seq {
            self.append_next()?;
        }
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Appends records until a single-session simulator's session has ended (see [`Sim::single_session`]),
    /// then flushes and fsyncs.
    pub fn fill_until_finished(&mut self) -> io::Result<()> {
        while !(self.sim.finished() && self.pending.is_empty()) {
            self.append_next()?;
        }
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    /// Appends the next record of the simulation.
    fn append_next(&mut self) -> io::Result<()> {
        let event = loop {
            match self.pending.pop_front() {
                Some(event) => break event,
                None => {
                    let step = self.sim.next_step();
                    self.pending.extend(step.events);
                    self.pending_session = step.session;
                    self.pending_ts = step.ts;
                }
            }
        };
        self.seq += 1;
        let record = Record {
            seq: self.seq,
            v: FORMAT_VERSION,
            ts: self.pending_ts.clone(),
            session: self.pending_session.clone(),
            event,
        };
        self.line.clear();
        self.chain = encode_record(&record, &self.chain, &mut self.line);
        if self.len > 0 && self.len + self.line.len() as u64 > SEGMENT_MAX_BYTES {
            self.roll()?;
        }
        self.file.write_all(&self.line)?;
        self.len += self.line.len() as u64;
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    fn roll(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()?;
        self.segment += 1;
        let path = segment_path(&self.dir, self.segment);
        self.file = BufWriter::with_capacity(1 << 20, File::options().write(true).create_new(true).open(&path)?);
        self.len = 0;
        Ok(())
    }
}

/// Writes a log of exactly `n` records into `events_dir`; returns the builder (to continue it).
pub fn generate(events_dir: &Path, n: u64, seed: u64) -> io::Result<LogBuilder> {
    let mut builder = LogBuilder::create(events_dir, seed)?;
    builder.fill_to(n)?;
    Ok(builder)
}
