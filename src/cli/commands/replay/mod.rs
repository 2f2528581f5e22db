//! `bdp replay`: inspect past sessions from the log.
//!
//! - no argument: the sessions (id, start, end or "crashed", counts);
//! - `SESSION` (or a unique prefix): that session's timeline;
//! - `--at SEQ`: the state right after SEQ;
//! - `--issue ID`: one issue's history across sessions;
//! - `--html FILE` (with or without `SESSION`): a self-contained HTML timeline (`replay_html.rs`).
//!
//! Every form verifies the whole log's chain first (refusing a damaged log) and decodes what it needs.
//! `--json` shapes are in schema/replay.schema.json.

pub mod html;

use clap::Args;
use serde_json::json;

use crate::cli::Outcome;
use crate::cli::commands::verify::plural;
use crate::cli::render::{claim_line, one_line, record_line, session_end};
use crate::error::{CliError, CliResult};
use crate::event::Record;
use crate::log::{issue_index, load};
use crate::process;
use crate::repo::Repo;
use crate::state::{SessionEnd, SessionInfo, State};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The session to show (an id or a unique prefix of one). Without it, list all sessions.
    pub session: Option<String>,
    /// Print the state right after this seq.
    #[arg(long, value_name = "SEQ", conflicts_with_all = ["session", "issue"])]
    pub at: Option<u64>,
    /// Print one issue's history across sessions.
    #[arg(long, value_name = "ID", conflicts_with = "session")]
    pub issue: Option<String>,
    /// Print the result as JSON (shapes: schema/replay.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Write the timeline as one self-contained HTML file: a Gantt chart of the attempts (a row per agent
    /// slot), merges, crashes and recoveries on the time axis, each attempt's events on hover and click.
    /// With SESSION, that session's attempts; without, all sessions.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["at", "issue", "json"])]
    pub html: Option<std::path::PathBuf>,
}

pub fn run(repo: &Repo, args: &ReplayArgs) -> CliResult<Outcome> {
    if let Some(file) = &args.html {
        return crate::cli::commands::replay::html::run(repo, args.session.as_deref(), file);
    }
    let events_dir = repo.events_dir();
    if let Some(at) = args.at {
        let (state, summary) = load::fold_verified(&events_dir, Some(at), |_, _| {})?;
        if at == 0 || at > summary.last_seq {
            return Err(CliError::user(format!("--at {at}: the log holds seq 1..{}", summary.last_seq)));
        }
        print_state(&state, args.json);
        return Ok(Outcome::Ok);
    }
    if let Some(issue) = args.issue.as_deref() {
        let (records, summary) = issue_index::issue_records(&events_dir, &repo.index_path(), issue)?;
        if summary.records == 0 {
            return Err(empty_log());
        }
        if records.is_empty() {
            return Err(CliError::user(format!("issue {} does not appear in the log", one_line(issue))));
        }
        print_issue(issue, &records, args.json);
        return Ok(Outcome::Ok);
    }
    let mut records: Vec<Record> = Vec::new();
    let keep_all = args.session.is_some();
    let (state, summary) = load::fold_verified(&events_dir, None, |record, _| {
        if keep_all {
            records.push(record.clone());
        }
    })?;
    if summary.records == 0 {
        return Err(empty_log());
    }
    if let Some(wanted) = &args.session {
        let session = find_session(&state, wanted)?;
        records.retain(|r| r.session == session.id);
        print_timeline(session, &records, running(&state, session), args.json);
    } else {
        print_sessions(&state, args.json);
    }
    Ok(Outcome::Ok)
}

pub(crate) fn empty_log() -> CliError {
    CliError::user("the event log is empty: no sessions recorded yet").with_hint("`bdp run` writes the log")
}

pub(crate) fn find_session<'a>(state: &'a State, wanted: &str) -> CliResult<&'a SessionInfo> {
    if let Some(exact) = state.session(wanted) {
        return Ok(exact);
    }
    let matches: Vec<&SessionInfo> = state.sessions.iter().filter(|s| s.id.starts_with(wanted)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            Err(CliError::user(format!("no session {wanted} in the log")).with_hint("`bdp replay` lists the sessions"))
        }
        many => Err(CliError::user(format!(
            "session prefix {wanted} is ambiguous: {}",
            many.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// An open session whose orchestrator is still alive is running; any other open session crashed.
fn running(state: &State, session: &SessionInfo) -> bool {
    matches!(session.end, SessionEnd::Open)
        && state.open_session.as_deref() == Some(session.id.as_str())
        && session.start_time.is_some()
        && process::is_alive(session.pid, session.start_time)
}

fn session_json(state: &State, s: &SessionInfo) -> serde_json::Value {
    let (end, ended_at, reason) = match &s.end {
        SessionEnd::Ended { ts, reason, .. } => ("ended", Some(ts.clone()), Some(format!("{reason:?}").to_lowercase())),
        SessionEnd::Crashed { .. } => ("crashed", None, None),
        SessionEnd::Open if running(state, s) => ("running", None, None),
        SessionEnd::Open => ("crashed", None, None),
    };
    json!({
        "id": s.id,
        "started_at": s.started_ts,
        "started_seq": s.started_seq,
        "last_seq": s.last_seq,
        "last_at": s.last_ts,
        "end": end,
        "ended_at": ended_at,
        "end_reason": reason,
        "pid": s.pid,
        "host": s.host,
        "version": s.version,
        "recovers": s.recovers,
        "counts": s.counts,
    })
}

fn print_sessions(state: &State, json: bool) {
    if json {
        let sessions: Vec<_> = state.sessions.iter().map(|s| session_json(state, s)).collect();
        let out = json!({"schema": "bdp.replay.sessions/1", "last_seq": state.last_seq, "sessions": sessions});
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
        return;
    }
    let width = state.sessions.iter().map(|s| s.id.len()).max().unwrap_or(7).max(7);
    println!(
        "{:<width$}  {:<24}  {:<36}  {:>6}  {:>6}  {:>4}  {:>6}  {:>8}",
        "SESSION", "STARTED", "ENDED", "EVENTS", "CLAIMS", "DONE", "FAILED", "CONFLICT"
    );
    for s in &state.sessions {
        println!(
            "{:<width$}  {:<24}  {:<36}  {:>6}  {:>6}  {:>4}  {:>6}  {:>8}",
            s.id,
            s.started_ts,
            session_end(s, running(state, s)),
            s.counts.events,
            s.counts.claims,
            s.counts.done,
            s.counts.failed,
            s.counts.conflicts
        );
    }
    println!("{} session{}, {} events", state.sessions.len(), plural(state.sessions.len() as u64), state.last_seq);
}

fn print_timeline(session: &SessionInfo, records: &[Record], running: bool, json: bool) {
    if json {
        let out = json!({
            "schema": "bdp.replay.timeline/1",
            "session": {
                "id": session.id,
                "started_at": session.started_ts,
                "end": match &session.end { SessionEnd::Ended { .. } => "ended", SessionEnd::Open if running => "running", _ => "crashed" },
                "counts": session.counts,
            },
            "events": records,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
        return;
    }
    println!(
        "session {}: started {} by pid {} on {} (bdp {}), {}",
        session.id,
        session.started_ts,
        session.pid,
        one_line(&session.host),
        one_line(&session.version),
        match &session.end {
            SessionEnd::Ended { ts, reason, .. } => format!("ended {ts} ({})", format!("{reason:?}").to_lowercase()),
            SessionEnd::Open if running => "still running".to_string(),
            _ => format!("crashed after seq {} ({})", session.last_seq, session.last_ts),
        }
    );
    println!("{:>7}  {:<12}  {:<22}  {:<12}  DETAIL", "SEQ", "TIME", "EVENT", "ISSUE");
    for record in records {
        println!("{}", record_line(record, false));
    }
    let c = &session.counts;
    println!(
        "{} events: {} claimed, {} spawned, {} done, {} failed, {} conflicted, {} findings, {} repairs",
        c.events, c.claims, c.spawns, c.done, c.failed, c.conflicts, c.findings, c.repairs
    );
}

fn print_issue(issue: &str, records: &[Record], json: bool) {
    if json {
        let out = json!({"schema": "bdp.replay.issue/1", "issue": issue, "events": records});
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
        return;
    }
    let mut sessions: Vec<&str> = records.iter().map(|r| r.session.as_str()).collect();
    sessions.dedup();
    println!(
        "issue {}: {} event{} in {} session{}",
        one_line(issue),
        records.len(),
        plural(records.len() as u64),
        sessions.len(),
        plural(sessions.len() as u64)
    );
    println!("{:>7}  {:<12}  {:<22}  {:<22}  {:<12}  DETAIL", "SEQ", "TIME", "SESSION", "EVENT", "ISSUE");
    for record in records {
        println!("{}", record_line(record, true));
    }
}

fn print_state(state: &State, json: bool) {
    if json {
        let out = json!({"schema": "bdp.replay.state/1", "at": state.last_seq, "state": state});
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON values serialize"));
        return;
    }
    let ts = state.sessions.iter().map(|s| s.last_ts.as_str()).max().unwrap_or("-");
    println!("state after seq {} ({ts})", state.last_seq);
    match &state.open_session {
        Some(open) => println!("sessions: {} (open: {open})", state.sessions.len()),
        None => println!("sessions: {} (none open)", state.sessions.len()),
    }
    let claimed: Vec<_> = state.claimed().collect();
    println!("claimed issues: {}", claimed.len());
    for (id, claim) in &claimed {
        println!("  {}", claim_line(id, &state.issues[*id], claim));
    }
    let others: Vec<_> = state.issues.iter().filter(|(_, i)| i.claim.is_none()).collect();
    println!("other issues: {}", others.len());
    for (id, issue) in others {
        let mut line = one_line(id);
        if let Some(r) = &issue.last_release {
            line.push_str(&format!("  released ({}) at seq {}", format!("{:?}", r.reason).to_lowercase(), r.seq));
        }
        line.push_str(&format!(", {} attempt{}", issue.attempts, plural(issue.attempts as u64)));
        if let Some(c) = &issue.merged_commit {
            line.push_str(&format!(", merged {}", crate::cli::render::short(c)));
        }
        if let Some(seq) = issue.closed_seq {
            line.push_str(&format!(", closed at seq {seq}"));
        }
        println!("  {line}");
    }
    println!("locks: {}", state.locks.len());
    for (name, lock) in &state.locks {
        println!("  {}  held by pid {} since seq {}", one_line(name), lock.holder_pid, lock.since_seq);
    }
    if state.truncations > 0 {
        println!("torn tails cut so far: {}", state.truncations);
    }
}
