//! The activity summary: every figure `bdp summary` prints, as one serializable value (`--json`, schema
//! `bdp.summary/1`, schema/summary.schema.json generated from these types). Pure: computed from an
//! [`Activity`] alone.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Activity, AttemptSpan, Outcome, SessionEndKind, Stat, UsageSum};
use crate::event::{ReleaseReason, Verdict};
use crate::plan::makespan;

/// The version tag of `bdp summary --json`.
pub const REPORT_SCHEMA: &str = "bdp.summary/1";

/// `bdp summary --json`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(title = "bdp summary", description = "`bdp summary --json`: the activity of the sessions selected.")]
pub struct Report {
    /// Always `bdp.summary/1`.
    #[schemars(regex(pattern = r"^bdp\.summary/1$"))]
    pub schema: String,
    /// Start of the first session selected (RFC 3339), `null` when none.
    pub from: Option<String>,
    /// The last record of the last session selected.
    pub to: Option<String>,
    pub sessions: Vec<SessionReport>,
    pub totals: Totals,
    /// First claim to last release, over the issues released.
    pub per_issue: Stat,
    pub phases: PhaseStats,
    /// Sum of the attempts' agent time (ms).
    pub agent_ms: u64,
    /// The part of it while a session ran (what speedup counts).
    pub agent_ms_in_wall: u64,
    /// Union of the sessions' spans (ms).
    pub wall_ms: u64,
    /// agent_ms_in_wall / wall_ms.
    pub speedup: Option<f64>,
    /// speedup / max_agents.
    pub parallel_efficiency: Option<f64>,
    /// The most agents a session was configured with.
    pub max_agents: Option<u64>,
    pub plan_estimate: Option<PlanEstimate>,
    /// Sessions that crashed, and what the session after each did.
    pub crashes: Vec<CrashReport>,
    /// Over every attempt; `reported == 0` means unknown.
    pub usage: UsageSum,
    /// One entry per issue, by id.
    pub issues: Vec<IssueUsage>,
    /// Calls made to a CLI tracker (bd, br); `null` when none were recorded (the JSONL tracker makes none).
    pub tracker_calls: Option<TrackerCallsReport>,
    /// File lock contention (`bdp lock`); `null` when no lock was asked for.
    pub file_locks: Option<FileLocksReport>,
    /// Records whose timestamp could not be read.
    pub bad_timestamps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SessionReport {
    pub id: String,
    pub started_at: String,
    pub last_at: String,
    /// `ended`, `crashed`, or `open` (last in the log and not ended: running, or crashed unnoticed).
    #[schemars(regex(pattern = r"^(ended|crashed|open)$"))]
    pub end: String,
    pub end_reason: Option<String>,
    pub recovers: Option<String>,
    pub agents: Option<u64>,
    pub wall_ms: u64,
    /// Attempts whose last record is in this session, by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Agent time of the attempts that exited (or were abandoned) in this session.
    pub agent_ms: u64,
    /// Usage reported by agents whose exit this session recorded.
    pub usage: UsageSum,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Totals {
    pub issues: u64,
    pub done: u64,
    /// Released failed or timed out.
    pub failed: u64,
    pub conflicted: u64,
    /// Released abandoned or on shutdown.
    pub released_other: u64,
    /// Still claimed at the end of the log.
    pub held: u64,
    pub attempts: u64,
    /// Attempts beyond the first of each issue.
    pub retries: u64,
    /// Attempts by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Reviews (`--review`): attempts whose work was approved, and whose review requested changes.
    pub reviews_approved: u64,
    pub reviews_changes_requested: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PhaseStats {
    /// The agent's run time per attempt.
    pub agent: Stat,
    /// The check's run time per attempt checked.
    pub check: Stat,
    /// Agent exit to the merge queue starting its merge.
    pub merge_queue_wait: Stat,
}

/// What `bdp plan` would have estimated for the same issues.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PlanEstimate {
    pub agents: u64,
    pub issues: u64,
    /// List scheduling of the issues over `agents` agents.
    pub makespan_ms: u64,
    /// The same with one agent (the total work).
    pub single_agent_ms: u64,
    /// single_agent_ms / makespan_ms.
    pub speedup: Option<f64>,
    /// How the estimate was made.
    pub basis: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CrashReport {
    pub session: String,
    /// Its last record.
    pub last_at: String,
    /// The session that took over (names it in `recovers`, else the next one).
    pub recovered_by: Option<String>,
    /// Findings of the recovering session, by kind.
    pub findings: BTreeMap<String, u64>,
    /// Repairs of the recovering session, by kind.
    pub repairs: BTreeMap<String, u64>,
    /// Attempts that ran across the crash and finished under the recovering session.
    pub attempts_adopted: u64,
    /// Attempts of the crashed session recorded abandoned.
    pub attempts_abandoned: u64,
}

/// How agents' file locks went: taken, refused, and the waits (the contention).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FileLocksReport {
    /// Acquires granted.
    pub granted: u64,
    /// Acquires refused: still held after the wait, or a deadlock.
    pub refused: u64,
    /// Of those refused, deadlocks (given up at once).
    pub deadlocks: u64,
    /// Acquires that had to wait (granted after a wait, or refused).
    pub waits: u64,
    /// How long those waited (ms).
    pub wait: Stat,
}

/// The processes bdp started to talk to bd or br.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TrackerCallsReport {
    /// `bd` or `br` (several, comma-separated, if the sessions used several).
    pub backend: String,
    /// Every call.
    pub calls: u64,
    /// Those about one issue (claim, labels, close, release, show).
    pub on_issues: u64,
    /// Those about no single issue (list, export, ready, a write to several issues at once).
    pub other: u64,
    /// calls / the issues claimed; `null` when none was claimed.
    pub per_issue: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct IssueUsage {
    pub id: String,
    /// The last release's reason, or `held`.
    pub ending: String,
    pub attempts: u64,
    /// First claim to last release; `null` while held.
    pub time_ms: Option<u64>,
    pub agent_ms: u64,
    pub usage: UsageSum,
    /// Tracker calls about this issue (0 with the JSONL tracker).
    pub tracker_calls: u64,
    /// Why it was given back, when it failed or timed out (the failure, in the agent's own words when it
    /// said any); `null` otherwise.
    pub why: Option<String>,
}

fn outcome_counts<'a>(attempts: impl Iterator<Item = &'a AttemptSpan>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for a in attempts {
        *out.entry(a.outcome.as_str().to_string()).or_default() += 1;
    }
    out
}

impl Report {
    pub fn new(activity: &Activity) -> Report {
        let a = activity;
        let ended = |r| a.issues_ended(r);
        let totals = Totals {
            issues: a.issues.values().filter(|i| i.claims > 0).count() as u64,
            done: ended(ReleaseReason::Done),
            failed: ended(ReleaseReason::Failed) + ended(ReleaseReason::Timeout),
            conflicted: ended(ReleaseReason::Conflict),
            released_other: ended(ReleaseReason::Abandoned) + ended(ReleaseReason::Shutdown),
            held: a.issues.values().filter(|i| i.claims > 0 && i.ending.is_none()).count() as u64,
            attempts: a.attempts.len() as u64,
            retries: a.retries(),
            outcomes: outcome_counts(a.attempts.iter()),
            reviews_approved: a.attempts.iter().filter(|t| t.verdict == Some(Verdict::Approve)).count() as u64,
            reviews_changes_requested: a
                .attempts
                .iter()
                .filter(|t| t.verdict == Some(Verdict::ChangesRequested))
                .count() as u64,
        };
        let per_issue =
            Stat::of(a.issues.values().filter_map(|i| i.released_ms.map(|r| (r - i.first_claim_ms).max(0) as u64)));
        let phases = PhaseStats {
            agent: Stat::of(a.attempts.iter().filter_map(|t| t.agent_ms)),
            check: Stat::of(a.attempts.iter().filter_map(|t| t.check_ms)),
            merge_queue_wait: Stat::of(a.attempts.iter().filter_map(AttemptSpan::merge_wait_ms)),
        };
        let claimed = totals.issues;
        Report {
            schema: REPORT_SCHEMA.to_string(),
            from: a.sessions.first().map(|s| s.started_ts.clone()),
            to: a.sessions.iter().max_by_key(|s| s.last_ms).map(|s| s.last_ts.clone()),
            sessions: sessions(a),
            totals,
            per_issue,
            phases,
            agent_ms: a.agent_ms(),
            agent_ms_in_wall: a.agent_ms_in_wall(),
            wall_ms: a.wall_ms(),
            speedup: a.speedup(),
            parallel_efficiency: a.parallel_efficiency(),
            max_agents: a.max_agents().map(|n| n as u64),
            plan_estimate: plan_estimate(a),
            crashes: crashes(a),
            usage: a.usage(),
            tracker_calls: tracker_calls(a, claimed),
            file_locks: file_locks(a),
            issues: issues(a),
            bad_timestamps: a.bad_timestamps,
        }
    }
}

fn sessions(a: &Activity) -> Vec<SessionReport> {
    a.sessions
        .iter()
        .map(|s| {
            let last_here = |t: &&AttemptSpan| t.sessions.last() == Some(&s.id);
            let exited_here = |t: &&AttemptSpan| t.exited_in.as_ref() == Some(&s.id);
            let (end, end_reason) = match s.end {
                SessionEndKind::Ended(r) => ("ended", Some(r.as_str().to_string())),
                SessionEndKind::Crashed => ("crashed", None),
                SessionEndKind::Open => ("open", None),
            };
            SessionReport {
                id: s.id.clone(),
                started_at: s.started_ts.clone(),
                last_at: s.last_ts.clone(),
                end: end.to_string(),
                end_reason,
                recovers: s.recovers.clone(),
                agents: s.agents.map(|n| n as u64),
                wall_ms: (s.last_ms - s.start_ms).max(0) as u64,
                outcomes: outcome_counts(a.attempts.iter().filter(last_here)),
                agent_ms: a.attempts.iter().filter(last_here).filter_map(|t| t.agent_ms).sum(),
                usage: UsageSum::of(a.attempts.iter().filter(exited_here)),
            }
        })
        .collect()
}

fn crashes(a: &Activity) -> Vec<CrashReport> {
    let mut out = Vec::new();
    for (i, s) in a.sessions.iter().enumerate() {
        if s.end != SessionEndKind::Crashed {
            continue;
        }
        let by = a
            .sessions
            .iter()
            .find(|n| n.recovers.as_deref() == Some(s.id.as_str()))
            .or_else(|| a.sessions.get(i + 1))
            .map(|n| n.id.clone());
        let mut findings = BTreeMap::new();
        let mut repairs = BTreeMap::new();
        for r in a.recoveries.iter().filter(|r| Some(&r.session) == by.as_ref()) {
            *(if r.repair { &mut repairs } else { &mut findings }).entry(r.kind.clone()).or_default() += 1;
        }
        let crossed = |t: &&AttemptSpan| t.sessions.contains(&s.id) && t.sessions.last() != Some(&s.id);
        out.push(CrashReport {
            session: s.id.clone(),
            last_at: s.last_ts.clone(),
            recovered_by: by,
            findings,
            repairs,
            attempts_adopted: a.attempts.iter().filter(crossed).filter(|t| t.outcome != Outcome::Abandoned).count()
                as u64,
            attempts_abandoned: a
                .attempts
                .iter()
                .filter(|t| t.sessions.contains(&s.id) && t.outcome == Outcome::Abandoned)
                .count() as u64,
        });
    }
    out
}

/// Per issue: its attempts' agent time and usage.
fn per_issue(a: &Activity) -> BTreeMap<&str, Vec<&AttemptSpan>> {
    let mut by: BTreeMap<&str, Vec<&AttemptSpan>> = BTreeMap::new();
    for t in &a.attempts {
        by.entry(t.issue.as_str()).or_default().push(t);
    }
    by
}

fn issues(a: &Activity) -> Vec<IssueUsage> {
    let by = per_issue(a);
    a.issues
        .iter()
        .filter(|(_, i)| i.claims > 0)
        .map(|(id, i)| {
            let attempts = by.get(id.as_str()).map_or(&[][..], Vec::as_slice);
            IssueUsage {
                id: id.clone(),
                ending: i.ending.map_or("held", ReleaseReason::as_str).to_string(),
                attempts: u64::from(i.attempts),
                time_ms: i.released_ms.map(|r| (r - i.first_claim_ms).max(0) as u64),
                agent_ms: attempts.iter().filter_map(|t| t.agent_ms).sum(),
                usage: UsageSum::of(attempts.iter().copied()),
                tracker_calls: a.tracker_calls.iter().filter_map(|c| c.issues.get(id)).map(|&n| u64::from(n)).sum(),
                why: i.why.clone(),
            }
        })
        .collect()
}

/// The makespan `bdp plan` computes (list scheduling, `plan::makespan`), for the issues of the activity with
/// each issue's actual agent time as its duration, over the most agents configured. The log records no
/// dependencies between issues, so none are assumed: the estimate is a lower bound of what the plan would say
/// with them.
fn plan_estimate(a: &Activity) -> Option<PlanEstimate> {
    let agents = a.max_agents().filter(|&n| n > 0)?;
    let by = per_issue(a);
    let mut items: Vec<(i64, u64)> = by
        .iter()
        .filter_map(|(id, ts)| {
            let first = a.issues.get(*id).map_or(0, |i| i.first_claim_ms);
            let work: u64 = ts.iter().filter_map(|t| t.agent_ms).sum();
            (work > 0).then_some((first, work))
        })
        .collect();
    if items.is_empty() {
        return None;
    }
    items.sort_unstable();
    let n = items.len();
    let duration: Vec<u64> = items.iter().map(|(_, d)| *d).collect();
    let rank: Vec<u64> = (0..n as u64).collect();
    let members: Vec<usize> = (0..n).collect();
    let none = vec![Vec::new(); n];
    let many = makespan::simulate(&members, &none, &none, &duration, &rank, &[], agents);
    Some(PlanEstimate {
        agents: agents as u64,
        issues: n as u64,
        makespan_ms: many.makespan,
        single_agent_ms: many.total_work,
        speedup: (many.makespan > 0).then(|| many.total_work as f64 / many.makespan as f64),
        basis: format!(
            "list scheduling (as bdp plan) of each issue's actual agent time over {agents} agents, in claim \
             order; the log records no dependencies, so none are assumed"
        ),
    })
}

fn file_locks(a: &Activity) -> Option<FileLocksReport> {
    if a.file_locks.is_empty() {
        return None;
    }
    let waited = a.file_locks.iter().filter(|l| l.waited_ms > 0 || !l.granted);
    Some(FileLocksReport {
        granted: a.file_locks.iter().filter(|l| l.granted).count() as u64,
        refused: a.file_locks.iter().filter(|l| !l.granted).count() as u64,
        deadlocks: a.file_locks.iter().filter(|l| l.deadlock).count() as u64,
        waits: waited.clone().count() as u64,
        wait: Stat::of(waited.map(|l| l.waited_ms)),
    })
}

fn tracker_calls(a: &Activity, claimed: u64) -> Option<TrackerCallsReport> {
    if a.tracker_calls.is_empty() {
        return None;
    }
    let mut backends: Vec<&str> = a.tracker_calls.iter().map(|c| c.backend.as_str()).collect();
    backends.sort_unstable();
    backends.dedup();
    let on_issues: u64 = a.tracker_calls.iter().flat_map(|c| c.issues.values()).map(|&n| u64::from(n)).sum();
    let other: u64 = a.tracker_calls.iter().map(|c| u64::from(c.other)).sum();
    let calls = on_issues + other;
    Some(TrackerCallsReport {
        backend: backends.join(","),
        calls,
        on_issues,
        other,
        per_issue: (claimed > 0).then(|| calls as f64 / claimed as f64),
    })
}
