//! `bdp status`: what bdp is doing in this repo right now, from the log's state and a look at the live
//! processes: the orchestrator (the orchestrator lock's holder), the last session and its totals, the
//! tracker in use, running agents, claimed issues that are not running, and locks.
//!
//! It never fails because of the tracker (an error opening it is shown in the output) and never writes,
//! except what reading the log always may do (`index.sqlite` checkpoints). `--json` shape:
//! schema/status.schema.json (`"schema": "bdp.status/1"`).

use clap::Args;
use serde::Serialize;

use super::Outcome;
use super::live::{self, Orchestrator};
use super::paths::display_path;
use super::render::{duration, one_line, short};
use crate::error::CliResult;
use crate::repo::{Repo, escape_path_component};
use crate::state::{AttemptOutcome, Claim, SessionCounts, SessionEnd, State};
use crate::tracker::TrackerKind;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON (shape: schema/status.schema.json).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    repo: String,
    /// `.bdp` exists (false: nothing has run here yet, and every list is empty).
    initialized: bool,
    last_seq: u64,
    orchestrator: OrchestratorReport,
    /// The last session the log knows: the open one if any.
    session: Option<SessionReport>,
    tracker: TrackerReport,
    agents: Vec<AgentReport>,
    claimed: Vec<ClaimReport>,
    locks: Vec<LockReport>,
}

#[derive(Debug, Serialize)]
struct OrchestratorReport {
    running: bool,
    lock_file: bool,
    pid: Option<u32>,
    start_time: Option<u64>,
    since: Option<String>,
    pid_alive: Option<bool>,
}

#[derive(Debug, Serialize)]
struct SessionReport {
    id: String,
    /// running, crashed (open in the log with no orchestrator running, or taken over), or ended.
    state: &'static str,
    started_at: String,
    pid: u32,
    ended_at: Option<String>,
    end_reason: Option<String>,
    counts: SessionCounts,
}

#[derive(Debug, Serialize)]
struct TrackerReport {
    name: Option<String>,
    error: Option<String>,
    hint: Option<String>,
}

#[derive(Debug, Serialize)]
struct AgentReport {
    issue: String,
    attempt: u32,
    pid: u32,
    pgid: u32,
    start_time: Option<u64>,
    alive: bool,
    phase: String,
    spawned_at: Option<String>,
    elapsed_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ClaimReport {
    issue: String,
    phase: String,
    /// preparing, spawning, exited, checked, check_failed, merging, merged, waiting_retry, abandoned, lost.
    state: &'static str,
    detail: String,
    attempt: Option<u32>,
    claimed_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct LockReport {
    name: String,
    /// Held according to the log.
    in_log: bool,
    holder_pid: Option<u32>,
    holder_alive: Option<bool>,
    issue: Option<String>,
    since_seq: Option<u64>,
    /// The matching file under `.bdp/locks/`, if any, and whether its flock is held right now.
    file: Option<String>,
    file_locked: Option<bool>,
}

pub fn run(repo: &Repo, tracker: TrackerKind, args: &StatusArgs) -> CliResult<Outcome> {
    let initialized = repo.bdp_dir().is_dir();
    let report = if initialized { build(repo, tracker)? } else { empty(repo) };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes"));
    } else if !initialized {
        println!("no bdp data in {} (nothing has run here yet)", repo.root.display());
    } else {
        print_human(&report);
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
    }
}

fn build(repo: &Repo, tracker: TrackerKind) -> CliResult<Report> {
    let state = live::state(repo)?;
    let orchestrator = Orchestrator::look(repo);
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
        let phase = state.issues[id].phase.map_or("claimed", |p| p.as_str()).to_string();
        match claim.attempt.as_ref().filter(|a| a.outcome.is_none()).and_then(|a| Some((a, a.spawned.as_ref()?))) {
            Some((attempt, spawned)) => agents.push(AgentReport {
                issue: id.clone(),
                attempt: attempt.number,
                pid: spawned.pid,
                pgid: spawned.pgid,
                start_time: spawned.start_time,
                alive: crate::process::is_alive(spawned.pid, spawned.start_time),
                phase,
                spawned_at: ts.get(&spawned.seq).cloned(),
                elapsed_ms: ts.get(&spawned.seq).and_then(|t| live::elapsed_ms(t)),
            }),
            None => {
                let (state, detail) = describe_claim(claim, &ts);
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
    let tracker = match super::tracker::open(repo, tracker) {
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
    })
}

fn session(state: &State, orchestrator: &Orchestrator) -> Option<SessionReport> {
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
fn describe_claim(claim: &Claim, ts: &std::collections::BTreeMap<u64, String>) -> (&'static str, String) {
    if let Some(lost) = &claim.lost {
        return ("lost", format!("claim lost: {lost}"));
    }
    if let Some(m) = &claim.merge {
        return match &m.commit {
            Some(c) => ("merged", format!("merged as {}, closing", short(c))),
            None => ("merging", format!("merging {} into {}", m.branch, m.base)),
        };
    }
    if let Some(r) = &claim.retry {
        let when = match ts.get(&r.seq).and_then(|t| live::elapsed_ms(t)) {
            Some(waited) if waited < r.backoff_ms => format!("in {}", duration(r.backoff_ms - waited)),
            Some(_) => "due now".to_string(),
            None => format!("after {}", duration(r.backoff_ms)),
        };
        return ("waiting_retry", format!("attempt {} {when}", r.next_attempt));
    }
    match &claim.attempt {
        None => {
            let what = if claim.worktree.is_some() { "worktree ready" } else { "no worktree yet" };
            ("preparing", format!("{what}, no attempt yet"))
        }
        Some(a) => match (&a.outcome, a.check_passed) {
            (None, _) => ("spawning", format!("attempt {} spawn requested, not confirmed", a.number)),
            (Some(AttemptOutcome::Abandoned { reason, .. }), _) => {
                ("abandoned", format!("attempt {} abandoned: {reason}", a.number))
            }
            (Some(AttemptOutcome::Exited { code, signal, .. }), check) => {
                let how = match (code, signal) {
                    (Some(c), _) => format!("exit {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => "exit unknown".to_string(),
                };
                match check {
                    None => ("exited", format!("attempt {} ended ({how}), checking", a.number)),
                    Some(true) => {
                        ("checked", format!("attempt {} ({how}) passed the check, waiting to merge", a.number))
                    }
                    Some(false) => ("check_failed", format!("attempt {} ({how}) failed the check", a.number)),
                }
            }
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

fn print_human(r: &Report) {
    let o = &r.orchestrator;
    let holder = match (o.pid, &o.since) {
        (Some(pid), Some(since)) => format!("pid {pid} since {since}"),
        _ => "holder unknown".to_string(),
    };
    let orchestrator = if o.running {
        format!("running, {holder}")
    } else if o.lock_file && o.pid.is_some() {
        let gone = if o.pid_alive == Some(true) { "alive but no longer holding the lock" } else { "gone" };
        format!("not running (last: {holder}, {gone})")
    } else {
        "not running".to_string()
    };
    println!("{:<13} {orchestrator}", "orchestrator");
    match &r.session {
        None => println!("{:<13} none yet", "session"),
        Some(s) => {
            let how = match s.state {
                "running" => "running".to_string(),
                "ended" => format!(
                    "ended {} ({})",
                    s.ended_at.as_deref().unwrap_or("?"),
                    s.end_reason.as_deref().unwrap_or("?")
                ),
                _ if o.running => "crashed (the running orchestrator takes it over)".to_string(),
                _ => "crashed: open in the log, but no orchestrator is running (`bdp run` recovers it)".to_string(),
            };
            println!("{:<13} {}, started {} by pid {}: {how}", "session", one_line(&s.id), s.started_at, s.pid);
            let c = &s.counts;
            println!(
                "{:<13} {} claimed, {} done, {} failed, {} conflicts",
                "totals", c.claims, c.done, c.failed, c.conflicts
            );
        }
    }
    match (&r.tracker.name, &r.tracker.error) {
        (Some(name), _) => println!("{:<13} {name}", "tracker"),
        (None, Some(err)) => {
            println!("{:<13} cannot open: {}", "tracker", one_line(err));
            if let Some(hint) = &r.tracker.hint {
                println!("{:<13} hint: {}", "", one_line(hint));
            }
        }
        (None, None) => println!("{:<13} unknown", "tracker"),
    }
    print_agents(&r.agents);
    print_claimed(&r.claimed);
    print_locks(&r.locks);
}

fn width<'a>(items: impl Iterator<Item = &'a str>) -> usize {
    items.map(|s| one_line(s).chars().count()).max().unwrap_or(0)
}

fn print_agents(agents: &[AgentReport]) {
    if agents.is_empty() {
        println!("{:<13} none running", "agents");
        return;
    }
    let dead = agents.iter().filter(|a| !a.alive).count();
    let gone = if dead > 0 { format!(" ({dead} not alive)") } else { String::new() };
    println!("{:<13} {}{gone}", "agents", agents.len());
    let w = width(agents.iter().map(|a| a.issue.as_str()));
    let phw = agents.iter().map(|a| a.phase.len()).max().unwrap_or(0);
    for a in agents {
        let elapsed = a.elapsed_ms.map_or("?".to_string(), duration);
        println!(
            "  {:<w$}  #{:<3} {:<phw$}  {:<5}  pid {}, {elapsed}",
            one_line(&a.issue),
            a.attempt,
            a.phase,
            if a.alive { "alive" } else { "DEAD" },
            a.pid,
        );
    }
}

fn print_claimed(claimed: &[ClaimReport]) {
    if claimed.is_empty() {
        return;
    }
    println!("{:<13} {} not running", "claimed", claimed.len());
    let w = width(claimed.iter().map(|c| c.issue.as_str()));
    let phw = claimed.iter().map(|c| c.phase.len()).max().unwrap_or(0);
    for c in claimed {
        println!("  {:<w$}  {:<phw$}  {}", one_line(&c.issue), c.phase, one_line(&c.detail));
    }
}

fn print_locks(locks: &[LockReport]) {
    if locks.is_empty() {
        println!("{:<13} none", "locks");
        return;
    }
    println!("{:<13} {}", "locks", locks.len());
    let w = width(locks.iter().map(|l| l.name.as_str()));
    for l in locks {
        let mut parts = Vec::new();
        if l.in_log {
            let mut held = format!("held by pid {}", l.holder_pid.unwrap_or(0));
            if l.holder_alive == Some(false) {
                held.push_str(" (gone)");
            }
            if let Some(issue) = &l.issue {
                held.push_str(&format!(" for {}", one_line(issue)));
            }
            held.push_str(&format!(" since seq {}", l.since_seq.unwrap_or(0)));
            parts.push(held);
        } else {
            parts.push("not in the log".to_string());
        }
        if let Some(file) = &l.file {
            let state = if l.file_locked == Some(true) { "locked" } else { "not locked" };
            parts.push(format!("file {} ({state})", one_line(file)));
        }
        println!("  {:<w$}  {}", one_line(&l.name), parts.join("; "));
    }
}
