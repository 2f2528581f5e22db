//! The fold from records to [`Activity`]: one pass in seq order, then each attempt's outcome, end and
//! agent time are settled once the whole log has been seen (see the definitions in the module doc).

use std::collections::{BTreeMap, HashMap};

use crate::event::{Event, Phase, Record, ReleaseReason};

use super::{
    Activity, AttemptSpan, FileLockMark, IssueSpan, MergeMark, Millis, Outcome, PhaseMark, ProgressMark, RecoveryMark,
    SessionEndKind, SessionSpan, TrackerCallsMark, slots,
};

/// What is known about an attempt only while folding.
#[derive(Default)]
struct Pending {
    followed: bool,
    abandoned: bool,
    release: Option<ReleaseReason>,
    spawned_in: Option<String>,
    ended_in: Option<String>,
}

/// A claim's records before its first attempt (they belong to that attempt's bar).
struct Setup {
    at_ms: Millis,
    seqs: Vec<u64>,
    phases: Vec<PhaseMark>,
    session: String,
}

#[derive(Default)]
struct IssueFold {
    held: bool,
    setup: Option<Setup>,
    current: Option<usize>,
}

#[derive(Default)]
struct Fold {
    out: Activity,
    pending: Vec<Pending>,
    session_index: HashMap<String, usize>,
    by_attempt: HashMap<(String, u32), usize>,
    issues: HashMap<String, IssueFold>,
    last_ms: Option<Millis>,
}

/// Builds an [`Activity`] one record at a time (records in seq order), so a caller that walks the log
/// need not keep the records.
#[derive(Default)]
pub struct ActivityBuilder(Fold);

impl ActivityBuilder {
    pub fn new() -> ActivityBuilder {
        ActivityBuilder::default()
    }

    pub fn push(&mut self, record: &Record) {
        self.0.record(record);
    }

    pub fn finish(self) -> Activity {
        self.0.finish()
    }
}

pub fn build(records: &[Record]) -> Activity {
    let mut builder = ActivityBuilder::new();
    for record in records {
        builder.push(record);
    }
    builder.finish()
}

/// The attempt an event is about, if it names one.
fn attempt_of(event: &Event) -> Option<u32> {
    match event {
        Event::AgentSpawned { attempt, .. }
        | Event::AgentExited { attempt, .. }
        | Event::AttemptAbandoned { attempt, .. }
        | Event::CheckPassed { attempt, .. }
        | Event::CheckFailed { attempt, .. }
        | Event::ReviewVerdict { attempt, .. }
        | Event::HookRan { attempt, .. }
        | Event::ProgressReported { attempt, .. } => Some(*attempt),
        _ => None,
    }
}

fn agents_of(config: &serde_json::Value) -> Option<usize> {
    let n = config.pointer("/options/agents").or_else(|| config.get("agents"))?;
    n.as_u64().map(|n| n as usize)
}

impl Fold {
    fn millis(&mut self, ts: &str) -> Millis {
        match ts.parse::<jiff::Timestamp>() {
            Ok(t) => {
                let ms = t.as_millisecond();
                self.last_ms = Some(ms);
                ms
            }
            Err(_) => {
                self.out.bad_timestamps += 1;
                self.last_ms.unwrap_or(0)
            }
        }
    }

    fn session(&mut self, record: &Record, at_ms: Millis) -> usize {
        if let Some(&i) = self.session_index.get(&record.session) {
            return i;
        }
        // A record of a session whose start is not in the records given: start it here.
        self.out.sessions.push(SessionSpan {
            id: record.session.clone(),
            started_ts: record.ts.clone(),
            start_ms: at_ms,
            last_ts: record.ts.clone(),
            last_ms: at_ms,
            end: SessionEndKind::Open,
            recovers: None,
            agents: None,
            events: 0,
        });
        self.session_index.insert(record.session.clone(), self.out.sessions.len() - 1);
        self.out.sessions.len() - 1
    }

    fn record(&mut self, record: &Record) {
        let at_ms = self.millis(&record.ts);
        if let Event::SessionStarted { config, recovers, .. } = &record.event {
            for s in &mut self.out.sessions {
                if s.end == SessionEndKind::Open {
                    s.end = SessionEndKind::Crashed;
                }
            }
            let i = self.session(record, at_ms);
            let s = &mut self.out.sessions[i];
            s.recovers.clone_from(recovers);
            s.agents = agents_of(config);
        }
        let i = self.session(record, at_ms);
        let s = &mut self.out.sessions[i];
        s.last_ts.clone_from(&record.ts);
        s.last_ms = at_ms;
        s.events += 1;
        if let Event::SessionEnded { reason, .. } = &record.event {
            s.end = SessionEndKind::Ended(*reason);
        }
        self.marks(record, at_ms);
        if let Some(issue) = record.event.issue() {
            self.issue_event(issue, record, at_ms);
        }
    }

    fn marks(&mut self, record: &Record, at_ms: Millis) {
        let session = record.session.clone();
        match &record.event {
            Event::ReconcileFinding { kind, issue, detail } => self.out.recoveries.push(RecoveryMark {
                seq: record.seq,
                at_ms,
                session,
                repair: false,
                kind: kind.clone(),
                issue: issue.clone(),
                text: detail.clone(),
            }),
            Event::RepairApplied { kind, issue, action } => self.out.recoveries.push(RecoveryMark {
                seq: record.seq,
                at_ms,
                session,
                repair: true,
                kind: kind.clone(),
                issue: issue.clone(),
                text: action.clone(),
            }),
            Event::Merged { issue, .. } => {
                self.out.merges.push(MergeMark { seq: record.seq, at_ms, session, issue: issue.clone() })
            }
            Event::FileLockAcquired { waited_ms, .. } => {
                self.out.file_locks.push(FileLockMark { at_ms, granted: true, waited_ms: *waited_ms, deadlock: false })
            }
            Event::FileLockRefused { waited_ms, deadlock, .. } => self.out.file_locks.push(FileLockMark {
                at_ms,
                granted: false,
                waited_ms: *waited_ms,
                deadlock: !deadlock.is_empty(),
            }),
            Event::TrackerCalls { backend, issues, other } => self.out.tracker_calls.push(TrackerCallsMark {
                session,
                backend: backend.clone(),
                issues: issues.clone(),
                other: *other,
            }),
            _ => {}
        }
    }

    fn issue_event(&mut self, issue: &str, record: &Record, at_ms: Millis) {
        let span = self.out.issues.entry(issue.to_string()).or_insert_with(|| IssueSpan {
            first_claim_ms: at_ms,
            released_ms: None,
            ending: None,
            why: None,
            claims: 0,
            attempts: 0,
            sessions: Vec::new(),
        });
        if !span.sessions.contains(&record.session) {
            span.sessions.push(record.session.clone());
        }
        let fold = self.issues.entry(issue.to_string()).or_default();
        match &record.event {
            Event::IssueClaimed { .. } => {
                if span.claims == 0 {
                    span.first_claim_ms = at_ms;
                }
                span.claims += 1;
                span.released_ms = None;
                span.ending = None;
                fold.held = true;
                fold.current = None;
                fold.setup = Some(Setup {
                    at_ms,
                    seqs: vec![record.seq],
                    phases: vec![PhaseMark { phase: Phase::Claimed, at_ms }],
                    session: record.session.clone(),
                });
                return;
            }
            Event::SpawnRequested { attempt, .. } => {
                span.attempts += 1;
                if let Some(prev) = fold.current {
                    self.pending[prev].followed = true;
                }
                let setup = fold.setup.take();
                let mut sessions = Vec::new();
                if let Some(s) = setup.as_ref().filter(|s| s.session != record.session) {
                    sessions.push(s.session.clone());
                }
                sessions.push(record.session.clone());
                let (start_ms, mut seqs, phases) = match setup {
                    Some(s) => (s.at_ms, s.seqs, s.phases),
                    None => (at_ms, Vec::new(), Vec::new()),
                };
                seqs.push(record.seq);
                let index = self.out.attempts.len();
                self.out.attempts.push(AttemptSpan {
                    issue: issue.to_string(),
                    attempt: *attempt,
                    sessions,
                    start_ms,
                    end_ms: at_ms,
                    spawned_ms: None,
                    ended_ms: None,
                    outcome: Outcome::Unknown,
                    agent_ms: None,
                    exit_code: None,
                    exit_signal: None,
                    timed_out: false,
                    check_ms: None,
                    check_passed: None,
                    verdict: None,
                    progress: Vec::new(),
                    merge_started_ms: None,
                    merged_ms: None,
                    phases,
                    usage: None,
                    exited_in: None,
                    seqs,
                    slot: 0,
                });
                self.pending.push(Pending::default());
                fold.current = Some(index);
                self.by_attempt.insert((issue.to_string(), *attempt), index);
                return;
            }
            Event::IssueReleased { reason, detail, .. } => {
                span.released_ms = Some(at_ms);
                span.ending = Some(*reason);
                span.why = detail.clone().filter(|_| matches!(reason, ReleaseReason::Failed | ReleaseReason::Timeout));
            }
            _ => {}
        }
        let named = attempt_of(&record.event).and_then(|n| self.by_attempt.get(&(issue.to_string(), n)).copied());
        let target = match named {
            Some(i) => Some(i),
            None if fold.held => fold.current,
            None => None,
        };
        let released = matches!(record.event, Event::IssueReleased { .. });
        if released {
            fold.held = false;
        }
        let Some(index) = target else {
            // Before the claim's first attempt: part of its set-up.
            if let Some(setup) = fold.setup.as_mut() {
                setup.seqs.push(record.seq);
                if let Event::PhaseChanged { phase, .. } = &record.event {
                    setup.phases.push(PhaseMark { phase: *phase, at_ms });
                }
                if released {
                    fold.setup = None; // a claim given back before any attempt: no bar
                }
            }
            return;
        };
        let a = &mut self.out.attempts[index];
        let p = &mut self.pending[index];
        a.seqs.push(record.seq);
        a.end_ms = a.end_ms.max(at_ms);
        if !a.sessions.contains(&record.session) {
            a.sessions.push(record.session.clone());
        }
        match &record.event {
            Event::AgentSpawned { .. } => {
                a.spawned_ms = Some(at_ms);
                p.spawned_in = Some(record.session.clone());
            }
            Event::AgentExited { code, signal, duration_ms, timed_out, usage, .. } => {
                a.ended_ms = Some(at_ms);
                a.exit_code = *code;
                a.exit_signal = *signal;
                a.timed_out = *timed_out;
                a.agent_ms = Some(*duration_ms);
                a.usage.clone_from(usage);
                a.exited_in = Some(record.session.clone());
            }
            Event::AttemptAbandoned { .. } => {
                a.ended_ms = Some(at_ms);
                p.abandoned = true;
                p.ended_in = Some(record.session.clone());
            }
            Event::PhaseChanged { phase, .. } => a.phases.push(PhaseMark { phase: *phase, at_ms }),
            Event::CheckPassed { duration_ms, .. } | Event::CheckFailed { duration_ms, .. } => {
                a.check_ms = Some(*duration_ms);
                a.check_passed = Some(matches!(record.event, Event::CheckPassed { .. }));
            }
            Event::ReviewVerdict { verdict, .. } => a.verdict = Some(*verdict),
            Event::ProgressReported { status, percent, step, steps, .. } => a
                .progress
                .push(ProgressMark { at_ms, text: crate::text::progress_line(status, *percent, *step, *steps) }),
            Event::MergeStarted { .. } => {
                a.merge_started_ms.get_or_insert(at_ms);
            }
            Event::Merged { .. } => a.merged_ms = Some(at_ms),
            Event::IssueReleased { reason, .. } => p.release = Some(*reason),
            _ => {}
        }
    }

    fn finish(mut self) -> Activity {
        let sessions: BTreeMap<&str, &SessionSpan> = self.out.sessions.iter().map(|s| (s.id.as_str(), s)).collect();
        let log_last = self.last_ms.unwrap_or(0);
        for (a, p) in self.out.attempts.iter_mut().zip(&self.pending) {
            let last_session = a.sessions.last().and_then(|s| sessions.get(s.as_str()));
            let open = last_session.is_some_and(|s| s.end == SessionEndKind::Open);
            a.outcome = if p.abandoned {
                Outcome::Abandoned
            } else if let Some(reason) = p.release {
                match reason {
                    ReleaseReason::Done => Outcome::Done,
                    ReleaseReason::Failed => Outcome::Failed,
                    ReleaseReason::Timeout => Outcome::Timeout,
                    ReleaseReason::Conflict => Outcome::Conflict,
                    ReleaseReason::Abandoned => Outcome::Abandoned,
                    ReleaseReason::Shutdown => Outcome::Stopped,
                }
            } else if p.followed {
                if a.timed_out { Outcome::Timeout } else { Outcome::Failed }
            } else if open {
                Outcome::Running
            } else {
                Outcome::Unknown
            };
            let spawning = p.spawned_in.as_deref().and_then(|s| sessions.get(s));
            match a.outcome {
                Outcome::Running => a.end_ms = a.end_ms.max(log_last),
                Outcome::Unknown => a.end_ms = a.end_ms.max(last_session.map_or(a.end_ms, |s| s.last_ms)),
                _ => {}
            }
            if a.agent_ms.is_none()
                && let Some(spawned) = a.spawned_ms
            {
                let until = match (a.outcome, a.ended_ms) {
                    (Outcome::Abandoned, Some(ended)) => match spawning {
                        Some(s) if s.end == SessionEndKind::Crashed && p.ended_in.as_deref() != Some(s.id.as_str()) => {
                            s.last_ms.min(ended)
                        }
                        _ => ended,
                    },
                    (Outcome::Running, _) => log_last,
                    _ => spawning.map_or(a.end_ms, |s| s.last_ms).min(a.end_ms),
                };
                a.agent_ms = Some((until - spawned).max(0) as u64);
            }
        }
        self.out.first_ms = self.out.sessions.iter().map(|s| s.start_ms).min().unwrap_or(0);
        self.out.last_ms = log_last;
        self.out.slots = slots::assign(&mut self.out.attempts);
        self.out
    }
}
