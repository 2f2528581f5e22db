//! `bdp logs`: agent output, from `.bdp/runs/<escaped id>/<attempt>/{stdout,stderr}`.
//!
//! - `--issue ID [--attempt N]`: one attempt (default: the issue's latest in the log, else the highest
//!   numbered directory under its runs), printed as is;
//! - no `--issue`: every attempt the open (or else the latest) session requested, plus the current
//!   attempt of every claimed issue (agents a recovering session adopted), each line prefixed with
//!   `<issue>#<attempt> | `, like `docker compose logs`;
//! - `--follow` keeps printing what is appended, polling every 200 ms, and ends on its own once each
//!   followed attempt is over: its `exit.json` appeared, or its agent (pid + start time from the log) is
//!   gone.
//!
//! Issue ids are hostile data: they reach a path only through `Repo::attempt_dir` (escaped), and are
//! shown with control characters escaped. The agents' output itself is printed byte for byte.

pub mod source;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::Outcome;
use crate::cli::commands::logs::source::{Source, Stream};
use crate::cli::live;
use crate::cli::paths::display_path;
use crate::cli::render::one_line;
use crate::error::{CliError, CliResult};
use crate::event::Event;
use crate::log::{Decode, walk};
use crate::repo::{Repo, unescape_path_component};
use crate::state::State;

/// Arguments of `bdp logs` (the long help is on `Command::Logs`).
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The issue whose output to print (default: every attempt of the open or latest session).
    #[arg(long, value_name = "ID")]
    pub issue: Option<String>,
    /// Which attempt of --issue (default: the latest).
    #[arg(long, value_name = "N", requires = "issue")]
    pub attempt: Option<u32>,
    /// Print only the last N lines (of each attempt and stream).
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<u64>,
    /// Keep printing appended output until the attempt's agent is done (exit.json written, or the agent
    /// gone). Without --issue: follow every attempt still running.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print stderr instead of stdout.
    #[arg(long, conflicts_with = "both")]
    pub stderr: bool,
    /// Print stdout, then stderr with lines prefixed `stderr| `.
    #[arg(long)]
    pub both: bool,
}

/// How often `--follow` looks for new output.
const POLL: Duration = Duration::from_millis(200);
/// How often `--follow` rereads the log (to learn a pid that was not spawned yet).
const RELOAD: Duration = Duration::from_secs(2);

/// One attempt whose output is printed.
#[derive(Debug, Clone)]
struct Target {
    issue: String,
    attempt: u32,
    dir: PathBuf,
}

pub fn run(repo: &Repo, args: &LogsArgs) -> CliResult<Outcome> {
    if !repo.bdp_dir().is_dir() {
        return Err(CliError::user(format!("no bdp data in {} (nothing has run here yet)", repo.root.display()))
            .with_hint("`bdp run` starts agents; their output lands in .bdp/runs/"));
    }
    let state = live::state(repo)?;
    let (targets, labelled) = match &args.issue {
        Some(issue) => (vec![one_attempt(repo, &state, issue, args.attempt)?], false),
        None => (session_attempts(repo, &state)?, true),
    };
    let streams: Vec<Stream> = match (args.stderr, args.both) {
        (true, _) => vec![Stream::Stderr],
        (_, true) => vec![Stream::Stdout, Stream::Stderr],
        _ => vec![Stream::Stdout],
    };
    let width = targets.iter().map(|t| label(t).chars().count()).max().unwrap_or(0);
    let mut sources = Vec::new();
    for t in &targets {
        for stream in &streams {
            let mut prefix = if labelled { format!("{:<width$} | ", label(t)) } else { String::new() };
            if *stream == Stream::Stderr && args.both {
                prefix.push_str("stderr| ");
            }
            sources.push(Source::new(t.dir.join(stream.file_name()), prefix, labelled || args.both));
        }
    }
    for source in sources.iter_mut() {
        source.start(args.tail).map_err(|e| CliError::io("read", &source.path, &e))?;
    }
    if !args.follow {
        for t in targets.iter().filter(|t| !t.dir.exists()) {
            eprintln!("note: {} has no output yet ({} does not exist)", label(t), display_path(repo, &t.dir));
        }
    }
    let mut out = std::io::stdout().lock();
    let result = print_all(repo, args, &targets, &mut sources, streams.len(), &mut out);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Ok),
        Err(e) => Err(CliError::io("write", std::path::Path::new("stdout"), &e)),
        Ok(()) => Ok(Outcome::Ok),
    }
}

fn label(t: &Target) -> String {
    format!("{}#{}", one_line(&t.issue), t.attempt)
}

fn print_all(
    repo: &Repo,
    args: &LogsArgs,
    targets: &[Target],
    sources: &mut [Source],
    per_target: usize,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if !args.follow {
        for source in sources.iter_mut() {
            source.print_new(out, true)?;
        }
        return out.flush();
    }
    // Sources come in groups of `per_target`, one group per target, in the targets' order.
    let mut state = live::state(repo).unwrap_or_default();
    let mut reloaded = Instant::now();
    let mut done = vec![false; targets.len()];
    loop {
        for (i, group) in sources.chunks_mut(per_target).enumerate() {
            if done[i] {
                continue;
            }
            // Decide before reading, so that nothing written before the end is missed.
            let over = is_over(repo, &state, &targets[i]);
            for s in group.iter_mut() {
                s.print_new(out, over)?;
            }
            done[i] = over;
        }
        out.flush()?;
        if done.iter().all(|d| *d) {
            return Ok(());
        }
        std::thread::sleep(POLL);
        if reloaded.elapsed() >= RELOAD {
            state = live::state(repo).unwrap_or(state);
            reloaded = Instant::now();
        }
    }
}

/// Whether an attempt will write no more output: its exit file exists, the log says it ended, the agent
/// the log names is gone, or it was never spawned and no orchestrator is running to spawn it.
fn is_over(repo: &Repo, state: &State, t: &Target) -> bool {
    if t.dir.join(crate::exit_file::EXIT_FILE).exists() {
        return true;
    }
    let Some(claim) = state.issues.get(&t.issue).and_then(|i| i.claim.as_ref()) else { return true };
    let Some(attempt) = claim.attempt.as_ref().filter(|a| a.number == t.attempt) else { return true };
    if attempt.outcome.is_some() {
        return true;
    }
    match &attempt.spawned {
        Some(s) => !crate::process::is_alive(s.pid, s.start_time),
        // Spawn requested: the agent may still appear, while an orchestrator runs to start it.
        None => !live::OrchestratorSeen::look(repo).running,
    }
}

/// The attempt `--issue ID [--attempt N]` means.
fn one_attempt(repo: &Repo, state: &State, issue: &str, attempt: Option<u32>) -> CliResult<Target> {
    let in_log = state.issues.get(issue).map_or(0, |i| i.attempts);
    let on_disk = attempt_dirs(repo, issue);
    if in_log == 0 && on_disk.is_empty() {
        return Err(unknown_issue(repo, state, issue));
    }
    let number = match attempt {
        Some(n) => n,
        None => in_log.max(on_disk.last().copied().unwrap_or(0)),
    };
    if !on_disk.contains(&number) && number > in_log {
        let known: Vec<String> = on_disk.iter().map(u32::to_string).collect();
        return Err(CliError::user(format!(
            "issue {} has no attempt {number} (attempts in the log: {in_log}; on disk: {})",
            one_line(issue),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )));
    }
    Ok(Target { issue: issue.to_string(), attempt: number, dir: repo.attempt_dir(issue, number) })
}

/// Attempt numbers with a directory under the issue's runs, ascending.
fn attempt_dirs(repo: &Repo, issue: &str) -> Vec<u32> {
    let mut numbers: Vec<u32> = live::entries(&repo.issue_runs_dir(issue))
        .iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name()?.to_str()?.parse().ok())
        .collect();
    numbers.sort_unstable();
    numbers
}

fn unknown_issue(repo: &Repo, state: &State, issue: &str) -> CliError {
    let mut known: Vec<String> =
        state.issues.iter().filter(|(_, i)| i.attempts > 0).map(|(id, _)| one_line(id)).collect();
    for dir in live::entries(&repo.runs_dir()) {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else { continue };
        let id = unescape_path_component(name).unwrap_or_else(|| name.to_string());
        if state.issues.get(&id).is_none_or(|i| i.attempts == 0) {
            known.push(one_line(&id));
        }
    }
    let err = CliError::user(format!("no runs of issue {} in {}", one_line(issue), repo.root.display()));
    if known.is_empty() {
        err.with_hint("no agent has run here yet")
    } else {
        err.with_hint(format!("issues with runs: {}", known.join(", ")))
    }
}

/// Every attempt of the open session, or of the latest one, in the order they were requested; plus the
/// current attempt of every claimed issue (a recovering session adopts agents an earlier one spawned).
fn session_attempts(repo: &Repo, state: &State) -> CliResult<Vec<Target>> {
    let Some(session) = state.open_session.as_deref().and_then(|id| state.session(id)).or(state.sessions.last()) else {
        return Err(CliError::user("the event log holds no session yet: no agent has run here")
            .with_hint("`bdp run` starts agents"));
    };
    let mut found: Vec<(u64, String, u32)> = Vec::new();
    walk(&repo.events_dir(), None, &Decode::Range(session.started_seq..=session.last_seq), |record, _| {
        if record.session == session.id
            && let Event::SpawnRequested { issue, attempt, .. } = &record.event
        {
            found.push((record.seq, issue.clone(), *attempt));
        }
        Ok(())
    })?;
    for (id, claim) in state.claimed() {
        if let Some(a) = &claim.attempt
            && !found.iter().any(|(_, i, n)| i == id && *n == a.number)
        {
            found.push((a.requested_seq, id.clone(), a.number));
        }
    }
    if found.is_empty() {
        return Err(CliError::user(format!("session {} started no agent", one_line(&session.id)))
            .with_hint("`bdp logs --issue ID` shows any issue's runs"));
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|(_, issue, attempt)| Target { dir: repo.attempt_dir(&issue, attempt), issue, attempt })
        .collect())
}
