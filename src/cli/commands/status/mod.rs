//! `bdp status`: what bdp is doing in this repo right now, from the log's state and a look at the live
//! processes: the orchestrator (the orchestrator lock's holder), the last session and its totals, the
//! tracker in use, running agents, claimed issues that are not running, and locks.
//!
//! It never fails because of the tracker (an error opening it is shown in the output) and never writes,
//! except what reading the log always may do (`index.sqlite` checkpoints). `--json` shape:
//! schema/status.schema.json (`"schema": "bdp.status/1"`).

pub mod dashboard;
pub mod text;

use clap::Args;
use serde::Serialize;

use crate::cli::Outcome;
use crate::cli::live::{self, OrchestratorSeen};
use crate::cli::paths::display_path;
use crate::cli::render::{duration, short};
use crate::error::CliResult;
use crate::repo::{Repo, escape_path_component};
use crate::state::{AttemptOutcome, Claim, ClaimStage, SessionCounts, SessionEnd, State};
use crate::tracker::TrackerKind;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON (shape: schema/status.schema.json).
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// A live full-screen view (redrawn every second): session, counts, agents and their last output, the
    /// queue, locks, recent events. q, Esc or Ctrl-C quits. Needs a terminal.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) schema: &'static str,
    pub(crate) repo: String,
    /// `.bdp` exists (false: nothing has run here yet, and every list is empty).
    pub(crate) initialized: bool,
    pub(crate) last_seq: u64,
    pub(crate) orchestrator: OrchestratorReport,
    /// The last session the log knows: the open one if any.
    pub(crate) session: Option<SessionReport>,
    pub(crate) tracker: TrackerReport,
    pub(crate) agents: Vec<AgentReport>,
    pub(crate) claimed: Vec<ClaimReport>,
    pub(crate) locks: Vec<LockReport>,
    /// Agents' file locks (`bdp lock`) and who waits for them.
    pub(crate) file_locks: crate::file_locks::Listing,
}

#[derive(Debug, Serialize)]
pub(crate) struct OrchestratorReport {
    pub(crate) running: bool,
    pub(crate) lock_file: bool,
    pub(crate) pid: Option<u32>,
    pub(crate) start_time: Option<u64>,
    pub(crate) since: Option<String>,
    pub(crate) pid_alive: Option<bool>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SessionReport {
    pub(crate) id: String,
    /// running, crashed (open in the log with no orchestrator running, or taken over), or ended.
    pub(crate) state: &'static str,
    pub(crate) started_at: String,
    pub(crate) pid: u32,
    pub(crate) ended_at: Option<String>,
    pub(crate) end_reason: Option<String>,
    pub(crate) counts: SessionCounts,
}

#[derive(Debug, Serialize)]
pub(crate) struct TrackerReport {
    pub(crate) name: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) hint: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AgentReport {
    pub(crate) issue: String,
    pub(crate) attempt: u32,
    pub(crate) pid: u32,
    pub(crate) pgid: u32,
    pub(crate) start_time: Option<u64>,
    pub(crate) alive: bool,
    pub(crate) phase: String,
    pub(crate) spawned_at: Option<String>,
    pub(crate) elapsed_ms: Option<u64>,
    /// What the agent last said of its progress (`report_progress` of `bdp mcp`).
    pub(crate) progress: Option<crate::state::Progress>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ClaimReport {
    pub(crate) issue: String,
    pub(crate) phase: String,
    /// preparing, spawning, exited, checked, check_failed, merging, merged, closed, waiting_retry, abandoned,
    /// lost.
    pub(crate) state: &'static str,
    pub(crate) detail: String,
    pub(crate) attempt: Option<u32>,
    pub(crate) claimed_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LockReport {
    pub(crate) name: String,
    /// Held according to the log.
    pub(crate) in_log: bool,
    pub(crate) holder_pid: Option<u32>,
    pub(crate) holder_alive: Option<bool>,
    pub(crate) issue: Option<String>,
    pub(crate) since_seq: Option<u64>,
    /// The matching file under `.bdp/locks/`, if any, and whether its flock is held right now.
    pub(crate) file: Option<String>,
    pub(crate) file_locked: Option<bool>,
}

pub fn run(repo: &Repo, tracker: TrackerKind, args: &StatusArgs) -> CliResult<Outcome> {
    if args.watch {
        return crate::cli::commands::status::dashboard::run(repo, tracker);
    }
    let initialized = repo.bdp_dir().is_dir();
    let report = if initialized { build(repo, tracker)? } else { empty(repo) };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes"));
    } else if !initialized {
        println!("no bdp data in {} (nothing has run here yet)", repo.root.display());
    } else {
        crate::cli::commands::status::text::print(&report);
    }
    Ok(Outcome::Ok)
}

fn empty(repo: &Repo) -> Report {
    Report {
        schema: "bdp.status/1",
        repo: repo.root.display().to_string(),
        initialized: false,
        last_seq: 0,
        orchestrator: OrchestratorReport {
            running: false,
            lock_file: false,
            pid: None,
            start_time: None,
            since: None,
            pid_alive: None,
        },
        session: None,
        tracker: TrackerReport { name: None, error: None, hint: None },
        agents: Vec::new(),
        claimed: Vec::new(),
        locks: Vec::new(),
        file_locks: Default::default(),
    }
}

fn build(repo: &Repo, tracker: TrackerKind) -> CliResult<Report> {
    let state = live::state(repo)?;
    let orchestrator = OrchestratorSeen::look(repo);
    let mut seqs: Vec<u64> = Vec::new();
    for (_, claim) in state.claimed() {
        seqs.push(claim.seq);
        if let Some(s) = claim.attempt.as_ref().and_then(|a| a.spawned.as_ref()) {
            seqs.push(s.seq);
        }
        if let Some(r) = &claim.retry {
            seqs.push(r.seq);
        }
    }
    let ts = live::timestamps(repo, seqs)?;
    let mut agents = Vec::new();
    let mut claimed = Vec::new();
    for (id, claim) in state.claimed() {
        let issue = &state.issues[id];
        let phase = issue.phase.map_or("claimed", |p| p.as_str()).to_string();
        let stage = claim.stage(issue.closed_seq);
        match stage {
            ClaimStage::Attempting(attempt) if let Some(spawned) = &attempt.spawned => agents.push(AgentReport {
                issue: id.clone(),
                attempt: attempt.number,
                pid: spawned.pid,
                pgid: spawned.pgid,
                start_time: spawned.start_time,
                alive: crate::process::is_alive(spawned.pid, spawned.start_time),
                phase,
                spawned_at: ts.get(&spawned.seq).cloned(),
                elapsed_ms: ts.get(&spawned.seq).and_then(|t| live::elapsed_ms(t)),
                progress: attempt.progress.clone(),
            }),
            _ => {
                let (state, detail) = describe_claim(claim, stage, &ts);
                claimed.push(ClaimReport {
                    issue: id.clone(),
                    phase,
                    state,
                    detail,
                    attempt: claim.attempt.as_ref().map(|a| a.number),
                    claimed_at: ts.get(&claim.seq).cloned(),
                });
            }
        }
    }
    let tracker = match crate::cli::tracker::open(repo, tracker) {
        Ok(t) => TrackerReport { name: Some(t.name().to_string()), error: None, hint: None },
        Err(e) => TrackerReport { name: None, error: Some(e.message), hint: e.hint },
    };
    Ok(Report {
        schema: "bdp.status/1",
        repo: repo.root.display().to_string(),
        initialized: true,
        last_seq: state.last_seq,
        orchestrator: OrchestratorReport {
            running: orchestrator.running,
            lock_file: orchestrator.lock_file,
            pid: orchestrator.holder.as_ref().map(|h| h.pid),
            start_time: orchestrator.holder.as_ref().and_then(|h| h.start_time),
            since: orchestrator.holder.as_ref().map(|h| h.since.clone()),
            pid_alive: orchestrator.holder.as_ref().map(|_| orchestrator.holder_alive()),
        },
        session: session(&state, &orchestrator),
        tracker,
        agents,
        claimed,
        locks: locks(repo, &state),
        file_locks: crate::file_locks::snapshot(repo),
    })
}

fn session(state: &State, orchestrator: &OrchestratorSeen) -> Option<SessionReport> {
    let s = state.sessions.last()?;
    let (st, ended_at, end_reason) = match &s.end {
        SessionEnd::Open if orchestrator.running => ("running", None, None),
        SessionEnd::Open | SessionEnd::Crashed { .. } => ("crashed", None, None),
        SessionEnd::Ended { ts, reason, .. } => ("ended", Some(ts.clone()), Some(format!("{reason:?}").to_lowercase())),
    };
    Some(SessionReport {
        id: s.id.clone(),
        state: st,
        started_at: s.started_ts.clone(),
        pid: s.pid,
        ended_at,
        end_reason,
        counts: s.counts.clone(),
    })
}

/// What a claimed issue without a running agent is waiting for.
fn describe_claim(
    claim: &Claim,
    stage: ClaimStage<'_>,
    ts: &std::collections::BTreeMap<u64, String>,
) -> (&'static str, String) {
    if let Some(lost) = &claim.lost {
        return ("lost", format!("claim lost: {lost}"));
    }
    let exit = |a: &crate::state::Attempt| match &a.outcome {
        Some(AttemptOutcome::Exited { code: Some(c), .. }) => format!("exit {c}"),
        Some(AttemptOutcome::Exited { signal: Some(s), .. }) => format!("signal {s}"),
        _ => "exit unknown".to_string(),
    };
    match stage {
        ClaimStage::Preparing { worktree } => {
            let what = if worktree.is_some() { "worktree ready" } else { "no worktree yet" };
            ("preparing", format!("{what}, no attempt yet"))
        }
        ClaimStage::Attempting(a) => ("spawning", format!("attempt {} spawn requested, not confirmed", a.number)),
        ClaimStage::Merging(m) => ("merging", format!("merging {} into {}", m.branch, m.base)),
        ClaimStage::Closed { .. } => ("closed", "closed, releasing".to_string()),
        ClaimStage::Merged { commit } => ("merged", format!("merged as {}, closing", short(commit))),
        ClaimStage::RetryScheduled { retry: r, .. } => {
            let when = match ts.get(&r.seq).and_then(|t| live::elapsed_ms(t)) {
                Some(waited) if waited < r.backoff_ms => format!("in {}", duration(r.backoff_ms - waited)),
                Some(_) => "due now".to_string(),
                None => format!("after {}", duration(r.backoff_ms)),
            };
            let after = if r.reason.is_empty() { String::new() } else { format!("; the last one: {}", r.reason) };
            ("waiting_retry", format!("attempt {} {when}{after}", r.next_attempt))
        }
        ClaimStage::CheckPassed(a) => {
            ("checked", format!("attempt {} ({}) passed the check, waiting to merge", a.number, exit(a)))
        }
        ClaimStage::Ended(a) => match (&a.outcome, a.check_passed) {
            (Some(AttemptOutcome::Abandoned { reason, .. }), _) => {
                ("abandoned", format!("attempt {} abandoned: {reason}", a.number))
            }
            (_, Some(false)) => ("check_failed", format!("attempt {} ({}) failed the check", a.number, exit(a))),
            _ => ("exited", format!("attempt {} ended ({}), checking", a.number, exit(a))),
        },
    }
}

/// Locks the log says are held, and lock files under `.bdp/locks/` (a file `NAME` or `NAME.lock`, NAME
/// escaped like a path component, belongs to the log's lock NAME).
fn locks(repo: &Repo, state: &State) -> Vec<LockReport> {
    let mut files: Vec<(String, std::path::PathBuf)> = live::entries(&repo.locks_dir())
        .into_iter()
        .filter_map(|p| Some((p.file_name()?.to_string_lossy().into_owned(), p)))
        .collect();
    let mut out = Vec::new();
    for (name, lock) in &state.locks {
        let escaped = escape_path_component(name);
        let file =
            files.iter().position(|(f, _)| *f == escaped || *f == format!("{escaped}.lock")).map(|i| files.remove(i));
        out.push(LockReport {
            name: name.clone(),
            in_log: true,
            holder_pid: Some(lock.holder_pid),
            holder_alive: Some(crate::process::is_alive(lock.holder_pid, None)),
            issue: lock.issue.clone(),
            since_seq: Some(lock.since_seq),
            file_locked: file.as_ref().map(|(_, p)| live::flock_held(p).unwrap_or(false)),
            file: file.map(|(_, p)| display_path(repo, &p)),
        });
    }
    for (name, path) in files {
        out.push(LockReport {
            name,
            in_log: false,
            holder_pid: None,
            holder_alive: None,
            issue: None,
            since_seq: None,
            file_locked: Some(live::flock_held(&path).unwrap_or(false)),
            file: Some(display_path(repo, &path)),
        });
    }
    out
}
