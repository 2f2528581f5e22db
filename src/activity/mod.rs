//! Activity: what the agents did and when, out of the log — sessions, attempts as bars in time, per-issue
//! endings, merges, crashes and what recovery did — and the figures derived from it (agent time against
//! wall time, realized speedup, parallel efficiency, usage).
//!
//! This is the one place those figures are defined; `bdp summary`, `bdp replay --html`, and later `bdp demo`
//! and the live dashboard read them from here. Pure core: no I/O, no clock (there is nothing "now" in it: an
//! attempt still running ends, for the figures, at the log's last record), never a panic on odd data (an
//! unreadable timestamp counts as the previous record's and is counted in [`Activity::bad_timestamps`]).
//!
//! ```text
//! let activity = Activity::from_records(&records);   // every record, in seq order
//! let mut b = ActivityBuilder::new(); b.push(&record); b.finish()   // the same, streaming
//! activity.speedup()                                 // agent time / wall time
//! activity.restrict(|s| s.id == wanted)              // one session's part (attempts keep their real spans)
//! Report::new(&activity)                             // everything `bdp summary` prints
//! ```
//!
//! Files: `build.rs` the fold from records to [`Activity`]; `slots.rs` the rows of the Gantt chart;
//! `figures.rs` times, speedup, usage sums, percentiles; `report.rs` the summary ([`Report`], serialized as
//! `bdp summary --json`); `tests.rs` tables of built events in, activity out.
//!
//! # Definitions
//!
//! - An **attempt** is one `spawn_requested` of an issue. Its bar starts at the claim for the first attempt
//!   of a claim (the set-up belongs to it) and at its `spawn_requested` for a retry; it ends at the last
//!   event of that issue before the next attempt, the release, or (no outcome yet) the last record of the
//!   log for an open session / of the session that crashed. An attempt that crosses a crash is one bar.
//! - **Agent time** of an attempt: the `duration_ms` its exit reports (measured by the wrapper from the real
//!   start, so right for adopted agents); abandoned: from `agent_spawned` to the abandonment, or to the last
//!   record of the session that spawned it if that session crashed (the last moment bdp knew of it); still
//!   running: to the log's last record; never spawned: none.
//! - **Wall time**: the union of the sessions' spans (start to last record); a gap between a crash and the
//!   recovering session is not wall time.
//! - **Speedup** = agent time while a session ran (each agent interval clipped to the session spans, so an
//!   adopted agent's time during the crash gap counts in neither) / wall time; **parallel efficiency** = speedup / the most agents any session
//!   was configured with (`config.options.agents`, or `config.agents` in older logs).
//! - **Tracker calls** are the processes bdp started to talk to bd or br (`tracker_calls` records); per
//!   issue, they are all calls (lists included) over the issues claimed.
//! - **Usage** is only what agents reported on `agent_exited`; an attempt that reported nothing is unknown,
//!   never zero: sums say how many attempts reported.

mod build;
mod figures;
mod report;
mod slots;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{AgentUsage, IssueId, Phase, ReleaseReason, SessionEndReason};

pub use build::ActivityBuilder;
pub use figures::{Stat, UsageSum, percentile};
pub use report::{
    CrashReport, IssueUsage, PhaseStats, PlanEstimate, REPORT_SCHEMA, Report, SessionReport, Totals, TrackerCallsReport,
};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Everything the log says about activity, folded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Activity {
    /// In the order they started.
    pub sessions: Vec<SessionSpan>,
    /// In the order they were requested.
    pub attempts: Vec<AttemptSpan>,
    /// Per issue, by id.
    pub issues: BTreeMap<IssueId, IssueSpan>,
    /// Reconcile findings and repairs, in log order.
    pub recoveries: Vec<RecoveryMark>,
    /// Branches merged, in log order.
    pub merges: Vec<MergeMark>,
    /// Calls made to a CLI tracker (bd, br), as recorded, in log order.
    pub tracker_calls: Vec<TrackerCallsMark>,
    /// File locks taken and refused (`bdp lock`), in log order.
    pub file_locks: Vec<FileLockMark>,
    /// Rows needed so that no two bars in a row overlap (see [`AttemptSpan::slot`]).
    pub slots: usize,
    /// Records whose timestamp could not be read (each counted as its predecessor's).
    pub bad_timestamps: u64,
    /// Timestamp of the first and last record considered (0 for an empty log).
    pub first_ms: Millis,
    pub last_ms: Millis,
}

/// One session's span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSpan {
    pub id: String,
    pub started_ts: String,
    pub start_ms: Millis,
    /// The last record written under this session.
    pub last_ts: String,
    pub last_ms: Millis,
    pub end: SessionEndKind,
    /// The session it took over from.
    pub recovers: Option<String>,
    /// `config.options.agents` (or `config.agents`), when the session recorded it.
    pub agents: Option<usize>,
    pub events: u64,
}

/// How a session ended, as far as the log knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum SessionEndKind {
    Ended(SessionEndReason),
    /// A later session started while it had not ended.
    Crashed,
    /// Last in the log and not ended: running, or crashed with nobody started since.
    Open,
}

/// How an attempt turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its issue was released done (merged and closed, or closed with no code changes).
    Done,
    /// Non-zero exit, a signal, a failed check; retried or given back.
    Failed,
    /// Killed after `--timeout`.
    Timeout,
    /// Its outcome can never be learned (its session crashed and recovery found it gone).
    Abandoned,
    /// Its branch did not merge.
    Conflict,
    /// Given back on `stop --now`.
    Stopped,
    /// No outcome yet, in the log's open session.
    Running,
    /// No outcome, and its session is over: nobody recorded what happened.
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Done,
        Outcome::Failed,
        Outcome::Timeout,
        Outcome::Abandoned,
        Outcome::Conflict,
        Outcome::Stopped,
        Outcome::Running,
        Outcome::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Abandoned => "abandoned",
            Outcome::Conflict => "conflict",
            Outcome::Stopped => "stopped",
            Outcome::Running => "running",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One attempt: a bar of the Gantt chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptSpan {
    pub issue: IssueId,
    pub attempt: u32,
    /// Sessions that wrote its events, in order of first appearance (two when it crossed a crash).
    pub sessions: Vec<String>,
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub spawned_ms: Option<Millis>,
    /// When its exit or abandonment was recorded.
    pub ended_ms: Option<Millis>,
    pub outcome: Outcome,
    /// See the module doc; `None` when it never spawned.
    pub agent_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub timed_out: bool,
    pub check_ms: Option<u64>,
    pub check_passed: Option<bool>,
    /// The reviewer's verdict on its work (`--review`).
    pub verdict: Option<crate::event::Verdict>,
    pub merge_started_ms: Option<Millis>,
    pub merged_ms: Option<Millis>,
    /// Phase changes inside the bar, in order (the claim as `claimed` for the first attempt of a claim).
    pub phases: Vec<PhaseMark>,
    /// What the agent reported, if anything.
    pub usage: Option<AgentUsage>,
    /// The agent's own reports of its progress (`report_progress`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<ProgressMark>,
    /// The session that recorded its exit.
    pub exited_in: Option<String>,
    /// Seqs of the records about it (claim and set-up included for the first attempt of a claim).
    pub seqs: Vec<u64>,
    /// Its row in the chart: bars in one row never overlap.
    pub slot: usize,
}

impl AttemptSpan {
    /// Exit to the merge queue taking it (`merge_started`), when both happened.
    pub fn merge_wait_ms(&self) -> Option<u64> {
        let exited = self.ended_ms?;
        let started = self.merge_started_ms?;
        Some((started - exited).max(0) as u64)
    }
}

/// An agent's progress report, as one line, and when it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressMark {
    pub at_ms: Millis,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PhaseMark {
    pub phase: Phase,
    pub at_ms: Millis,
}

/// One issue across claims and sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IssueSpan {
    pub first_claim_ms: Millis,
    /// The last release, if it is not held now.
    pub released_ms: Option<Millis>,
    /// The last release's reason; `None` while held.
    pub ending: Option<ReleaseReason>,
    /// Why the last release gave it back, when it failed or timed out: its detail (the failure, in the
    /// agent's own words when it said any).
    pub why: Option<String>,
    pub claims: u32,
    pub attempts: u32,
    /// Sessions it had records in.
    pub sessions: Vec<String>,
}

/// A reconcile finding or a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryMark {
    pub seq: u64,
    pub at_ms: Millis,
    pub session: String,
    pub repair: bool,
    /// The finding's kind.
    pub kind: String,
    pub issue: Option<IssueId>,
    /// The finding's detail or the repair's action.
    pub text: String,
}

/// One `file_lock_acquired` or `file_lock_refused` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileLockMark {
    pub at_ms: Millis,
    pub granted: bool,
    pub waited_ms: u64,
    /// Refused at once: its wait closed a cycle.
    pub deadlock: bool,
}

/// One `tracker_calls` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackerCallsMark {
    pub session: String,
    pub backend: String,
    pub issues: BTreeMap<IssueId, u32>,
    pub other: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeMark {
    pub seq: u64,
    pub at_ms: Millis,
    pub session: String,
    pub issue: IssueId,
}

impl Activity {
    /// Folds the records (every record of the log, in seq order) into the activity. Never fails: records
    /// the state fold would refuse are not expected here (the caller folds them first), and anything odd is
    /// taken as it comes.
    pub fn from_records(records: &[crate::event::Record]) -> Activity {
        build::build(records)
    }

    /// The part of the activity that touches the sessions `keep` selects: those sessions, the attempts with
    /// records in them (with their whole spans, also what happened in other sessions) and their issues, their
    /// recoveries and merges. Slots are assigned again.
    pub fn restrict(&self, keep: impl Fn(&SessionSpan) -> bool) -> Activity {
        let kept: Vec<&SessionSpan> = self.sessions.iter().filter(|s| keep(s)).collect();
        let ids: std::collections::BTreeSet<&str> = kept.iter().map(|s| s.id.as_str()).collect();
        let touches = |sessions: &[String]| sessions.iter().any(|s| ids.contains(s.as_str()));
        let mut out = Activity {
            sessions: kept.iter().map(|s| (*s).clone()).collect(),
            attempts: self.attempts.iter().filter(|a| touches(&a.sessions)).cloned().collect(),
            issues: BTreeMap::new(),
            recoveries: self.recoveries.iter().filter(|r| ids.contains(r.session.as_str())).cloned().collect(),
            merges: self.merges.iter().filter(|m| ids.contains(m.session.as_str())).cloned().collect(),
            tracker_calls: self.tracker_calls.iter().filter(|c| ids.contains(c.session.as_str())).cloned().collect(),
            // Agents lock from processes of their own: what happened while a kept session ran.
            file_locks: self
                .file_locks
                .iter()
                .filter(|l| kept.iter().any(|s| (s.start_ms..=s.last_ms).contains(&l.at_ms)))
                .cloned()
                .collect(),
            slots: 0,
            bad_timestamps: self.bad_timestamps,
            first_ms: 0,
            last_ms: 0,
        };
        // Issues with an attempt kept, or touched by a kept session and never attempted (a claim given back
        // before any spawn); not those a kept session merely mentions (a finding about old work).
        let attempted: std::collections::BTreeSet<&str> = out.attempts.iter().map(|a| a.issue.as_str()).collect();
        out.issues = self
            .issues
            .iter()
            .filter(|(id, i)| attempted.contains(id.as_str()) || (i.attempts == 0 && touches(&i.sessions)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.first_ms =
            out.sessions.iter().map(|s| s.start_ms).chain(out.attempts.iter().map(|a| a.start_ms)).min().unwrap_or(0);
        out.last_ms =
            out.sessions.iter().map(|s| s.last_ms).chain(out.attempts.iter().map(|a| a.end_ms)).max().unwrap_or(0);
        out.slots = slots::assign(&mut out.attempts);
        out
    }

    /// Sum of the attempts' agent time (see the module doc).
    pub fn agent_ms(&self) -> u64 {
        self.attempts.iter().filter_map(|a| a.agent_ms).sum()
    }

    /// The union of the sessions' spans.
    pub fn wall_ms(&self) -> u64 {
        figures::union_ms(self.session_spans())
    }

    fn session_spans(&self) -> impl Iterator<Item = (Millis, Millis)> + '_ {
        self.sessions.iter().map(|s| (s.start_ms, s.last_ms))
    }

    /// Agent time while a session ran: each attempt's agent interval (ending at its exit, or at the end the
    /// module doc gives) clipped to the sessions' spans. An adopted agent that ran on while no orchestrator
    /// did counts only the part under a session, as wall time does.
    pub fn agent_ms_in_wall(&self) -> u64 {
        let union = figures::union(self.session_spans());
        self.attempts
            .iter()
            .filter_map(|a| {
                let ms = a.agent_ms? as Millis;
                // An exit is recorded as it happens; other ends are estimates from the spawn.
                let end = match (&a.exited_in, a.ended_ms) {
                    (Some(_), Some(exited)) => exited,
                    _ => a.spawned_ms? + ms,
                };
                Some(figures::overlap_ms(&union, (end - ms, end)))
            })
            .sum()
    }

    /// Agent time while a session ran over wall time (both in the same spans); `None` when no wall time
    /// passed.
    pub fn speedup(&self) -> Option<f64> {
        let wall = self.wall_ms();
        (wall > 0).then(|| self.agent_ms_in_wall() as f64 / wall as f64)
    }

    /// The most agents a session was configured with.
    pub fn max_agents(&self) -> Option<usize> {
        self.sessions.iter().filter_map(|s| s.agents).max()
    }

    /// Speedup over the most agents configured: 1.0 means every agent was busy all the time.
    pub fn parallel_efficiency(&self) -> Option<f64> {
        let agents = self.max_agents().filter(|&n| n > 0)?;
        Some(self.speedup()? / agents as f64)
    }

    /// Attempts beyond the first of each issue.
    pub fn retries(&self) -> u64 {
        self.issues.values().map(|i| u64::from(i.attempts.saturating_sub(1))).sum()
    }

    /// How many attempts ended each way.
    pub fn outcomes(&self) -> BTreeMap<Outcome, u64> {
        let mut out = BTreeMap::new();
        for a in &self.attempts {
            *out.entry(a.outcome).or_default() += 1;
        }
        out
    }

    /// Issues whose last release had `reason`.
    pub fn issues_ended(&self, reason: ReleaseReason) -> u64 {
        self.issues.values().filter(|i| i.ending == Some(reason)).count() as u64
    }

    /// Usage summed over every attempt that reported some.
    pub fn usage(&self) -> UsageSum {
        UsageSum::of(self.attempts.iter())
    }
}

#[cfg(test)]
mod tests;
