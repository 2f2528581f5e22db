//! The command line: global options, the subcommand enum, dispatch, and printing errors. Each
//! subcommand is a module of `commands/`; the helpers they share are the other modules here.

pub mod commands;
mod errors;
mod live;
mod paths;
mod render;
mod tracker;

use commands::{audit, clean, demo, events, lock, logs, mcp, plan, replay, run, status, stop, summary, verify};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::CliResult;
use crate::repo::Repo;

/// Run many coding agents in parallel over a beads tracker, on a durable, hash-chained event log.
#[derive(Debug, Parser)]
#[command(name = "bdp", version, about, propagate_version = true)]
pub struct Cli {
    /// The repository to work on (default: walk up from the current directory to the repo root).
    #[arg(long, global = true, value_name = "DIR", display_order = 900)]
    pub repo: Option<PathBuf>,

    /// More logging on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, display_order = 901)]
    pub verbose: u8,

    /// Which tracker to read and write: bd or br if the repo has their database and the binary is on
    /// PATH, else .beads/issues.jsonl directly.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "KIND",
        env = "BDP_TRACKER",
        display_order = 902
    )]
    pub tracker: crate::tracker::TrackerKind,

    #[command(subcommand)]
    pub command: Command,
}

/// Arguments of `bdp __wrap` (the same as `bdp-wrap`'s).
#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    /// The attempt's directory: stdout, stderr and exit.json go there.
    #[arg(long)]
    pub dir: PathBuf,
    /// The agent's argv.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// See bdp work: a sandbox repo, scripted agents, a SIGKILL half way, the recovery, audit and timeline.
    ///
    /// Makes a git repository with 12 beads issues in 3 tracks (.beads/issues.jsonl, no bd or br needed)
    /// in a temp dir (removed afterwards) or in --keep DIR, and runs `bdp run` on it as a child process with
    /// scripted agents (a hidden subcommand of bdp). About half way it kills the run with SIGKILL while
    /// agents work, shows `bdp status`, runs `bdp run` again (which recovers and finishes), then `bdp audit`,
    /// the sessions, an HTML timeline and the realized speedup. Exit 0 when all of that happened.
    Demo(demo::DemoArgs),
    /// Internal: the scripted agent of `bdp demo`.
    #[command(name = "__demo-agent", hide = true)]
    DemoAgent(demo::DemoAgentArgs),
    /// Check the whole event log: chain, seqs, record shapes, transitions. Exit 0 intact, 1 damaged, 2 error.
    Verify(verify::VerifyArgs),
    /// Inspect past sessions: list them, one session's timeline, the state at a seq, one issue's history.
    Replay(replay::ReplayArgs),
    /// Run agents in parallel over the ready issues: worktrees, timeouts, retries, merge queue.
    Run(Box<run::RunArgs>),
    /// Ask the running `bdp run` to stop: drain (default) or now.
    Stop(stop::StopArgs),
    /// File locks for agents: acquire (all or none, waiting; deadlocks found at once), release, list.
    Lock(lock::LockArgs),
    /// An MCP server on stdio for an agent of `bdp run`: lock_acquire, lock_release, lock_list,
    /// report_progress, issue. The claude and codex presets start it for each agent.
    Mcp(mcp::McpArgs),
    /// Show the tracks of ready work and the estimated makespan with N agents.
    Plan(plan::PlanArgs),
    /// Summarize past sessions: issues done/failed/conflicted, time per issue and phase, speedup, crashes, usage.
    Summary(summary::SummaryArgs),
    /// Show what bdp is doing here now: orchestrator, session, running agents, claims, locks.
    Status(status::StatusArgs),
    /// Print agent output (one attempt with --issue, else every attempt of the current session).
    ///
    /// Output lives in .bdp/runs/<issue>/<attempt>/{stdout,stderr}. Without --issue, each line is prefixed
    /// `<issue>#<attempt> | ` (every attempt the open or latest session requested, and the current attempt
    /// of every claimed issue). Streams: stdout by default; --stderr prints stderr instead; --both prints
    /// stdout, then stderr with each line prefixed `stderr| ` (the files carry no timestamps, so they are
    /// not interleaved in time; with --follow, new lines of either are printed as they arrive). --follow
    /// polls every 200 ms and ends by itself once each followed attempt is over: its exit.json appeared,
    /// or its agent (pid + start time from the log) is gone.
    Logs(logs::LogsArgs),
    /// Remove worktrees, bdp/* branches, run dirs and lock files that no live claim owns.
    ///
    /// A claim is live while an orchestrator holds .bdp/orchestrator.lock, or while its agent is alive
    /// (pid + start time). Also kept: worktrees some process works in, branches checked out outside
    /// .bdp/worktrees, locked lock files, and (without --all) the worktree and branch of an issue whose
    /// last release was a merge conflict or a merge that did not land, or that a session which did not end
    /// still claims. What it removes is recorded in the log (worktree_removed, lock_broken, repair_applied).
    Clean(clean::CleanArgs),
    /// Internal: the wrapper bdp spawns around each agent (writes the attempt's exit.json).
    #[command(name = "__wrap", hide = true)]
    Wrap(WrapArgs),
    /// Compare the log with the world: locks, tracker, processes, worktrees, branches, checkpoints.
    ///
    /// One line per finding (kind, issue, what the log and the world say, the repair), a summary, and the
    /// classic check (lock files against in_progress issues). Read-only, also while a run is live. Exit 0
    /// when nothing is found, 1 otherwise; --fix applies the safe repairs and exits 0 if nothing is left.
    Audit(audit::AuditArgs),
    /// Print the log's records as they are appended (--json: one JSON object per line), from --after SEQ.
    ///
    /// Every record is verified (seqs and chain) before it is printed. --follow keeps printing new records
    /// until SIGINT or SIGTERM (exit 0); a closed pipe ends it quietly.
    Events(events::EventsArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What a command reports when it did not fail: plain success, or "found something".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Found,
}

pub fn main() -> ExitCode {
    // A file-size limit (RLIMIT_FSIZE) must give a write error (EFBIG) that bdp reports, not kill it
    // mid-append. The wrapper gives agents the default back.
    // SAFETY: setting a signal's disposition to SIG_IGN touches no memory; nothing else runs yet.
    unsafe {
        let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn);
    }
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    // A command that only prints (`bdp summary | head`) ends quietly when its reader goes away, as Unix
    // tools do, instead of failing on EPIPE. Not `run` or `demo`, which must outlive a closed stdout (their
    // agents' supervision matters more than their progress lines), nor the wrapper; `events` handles a
    // closed pipe itself (exit 0, for tools that follow the log and stop reading).
    let own_pipe = matches!(
        cli.command,
        Command::Run(_) | Command::Demo(_) | Command::Wrap(_) | Command::DemoAgent(_) | Command::Events(_)
    );
    if !own_pipe {
        // SAFETY: as above; SIG_DFL for SIGPIPE, before any thread is started.
        unsafe {
            let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
        }
    }
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Found) => ExitCode::from(crate::error::EXIT_FOUND),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: Cli) -> CliResult<Outcome> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bdp", &mut std::io::stdout());
            Ok(Outcome::Ok)
        }
        Command::Wrap(args) => {
            let argv: Vec<std::ffi::OsString> = args.argv.iter().map(std::ffi::OsString::from).collect();
            let code = crate::supervisor::wrapper::run(&args.dir, &argv);
            std::process::exit(i32::from(code));
        }
        Command::DemoAgent(args) => std::process::exit(i32::from(demo::run_agent(&args))),
        Command::Demo(args) => demo::run(&args),
        Command::Verify(args) => verify::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Replay(args) => replay::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Run(args) => run::run(&Repo::discover(cli.repo.as_deref())?, cli.tracker, &args),
        Command::Stop(args) => stop::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Lock(args) => lock::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Mcp(args) => mcp::run(&Repo::discover(cli.repo.as_deref())?, cli.tracker, &args),
        Command::Plan(args) => plan::run(&Repo::discover(cli.repo.as_deref())?, cli.tracker, &args),
        Command::Summary(args) => summary::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Status(args) => status::run(&Repo::discover(cli.repo.as_deref())?, cli.tracker, &args),
        Command::Logs(args) => logs::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Audit(args) => audit::run(&Repo::discover(cli.repo.as_deref())?, cli.tracker, &args),
        Command::Events(args) => events::run(&Repo::discover(cli.repo.as_deref())?, &args),
        Command::Clean(args) => clean::run(&Repo::discover(cli.repo.as_deref())?, &args),
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
}
