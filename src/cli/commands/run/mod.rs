//! `bdp run`: parse and resolve the options (flags over `.bdp/config.toml` over defaults), check
//! everything that can be checked before claiming anything, then start a session and hand over to the
//! orchestrator (`supervisor::orchestrator`). Prints the summary at the end.

pub mod dry;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::log::LogWriter;
use crate::log::lock::{Holder, OrchestratorLock};
use crate::repo::Repo;
use crate::run_options::{ConfigFile, OptionError, RunFlags};
use crate::supervisor::options::{Isolation, RunOptions};
use crate::supervisor::orchestrator::{Msg, Orchestrator, RunSummary, Setup, StopLevel};
use crate::supervisor::template::resolve_program;
use crate::tracker::{ListFilter, TrackerKind};

use crate::cli::Outcome;

#[derive(Debug, Args)]
#[command(after_help = "\
The agent command comes after `--`; these placeholders are replaced inside its arguments (never through a shell):
  {id}           the issue id                {prompt_file}  the issue's prompt file (title, description, …)
  {worktree}     the directory it works in   {attempt}      the attempt number (1, 2, …)
  {git_dir}      the repository's .git
  {worktree_git_dir}  the worktree's own git dir (where its index and HEAD live)
  {agent_session}  a UUID for the attempt's agent session (the claude preset's --session-id)
Its environment has BDP_ISSUE, BDP_WORKTREE, BDP_SESSION, BDP_ATTEMPT, BDP_PROMPT_FILE and BDP_MARKER.

Every option can also be set in .bdp/config.toml (same names, `_` for `-`; `command = [\"my-agent\", \"{prompt_file}\"]`); flags win.
Exit status: 0 when every issue taken was done, 1 when some failed or conflicted, 2 on error.

Examples:
  bdp run --agents 3 -- ./agent.sh {id} {prompt_file}
  bdp run --agent claude --check 'cargo test' --epic bd-12
  bdp run --dry-run --agent codex
  bdp run --agent codex -- -c model=\"o3\"    (after `--` with --agent: flags for the agent CLI)")]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: RunFlags,
    /// Print what would run, in what order, with which argv; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The agent command and its arguments; with --agent, flags added to the preset's.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A bad option or config key, said as the user's input (the file, the line, the key).
pub fn option_error(e: OptionError) -> CliError {
    CliError::user(e.message).with_hint("keys are `bdp run`'s long options with `_` for `-` (bdp run --help)")
}

/// Flags over the config file over defaults; the agent program resolved to an absolute path.
fn resolve(repo: &Repo, args: &RunArgs) -> CliResult<RunOptions> {
    let file = ConfigFile::load(&repo.config_path()).map_err(option_error)?;
    let mut opts = RunOptions::resolve(&args.flags, &file).map_err(option_error)?;
    let extra_flags = args.command.first().is_some_and(|w| w.starts_with('-'));
    let mut template = if let (Some(preset), true) = (opts.agent, extra_flags) {
        // `--agent X -- FLAGS`: flags for the agent CLI, added to the preset's.
        preset.template_with(&args.command)
    } else if let (Some(preset), Some(first)) = (args.flags.agent, args.command.first()) {
        return Err(CliError::user(format!("--agent {} and a command ({first} …) both name the agent", preset_name(preset)))
            .with_hint("after `--`, --agent takes flags for its CLI (bdp run --agent codex -- -c model=\"o3\"); or drop --agent and give the whole command"));
    } else if !args.command.is_empty() {
        args.command.clone()
    } else if let Some(preset) = opts.agent {
        preset.template()
    } else if let Some(command) = &file.command {
        command.clone()
    } else {
        return Err(CliError::user("no agent command")
            .with_hint("give it after `--` (bdp run -- ./agent.sh {id} {prompt_file}), or use --agent claude|codex"));
    };
    let cwd = std::env::current_dir().map_err(|e| CliError::io("read", Path::new("."), &e))?;
    let program = resolve_program(&template[0], &cwd).map_err(|e| {
        CliError::user(e.to_string()).with_hint("nothing was claimed; fix the agent command and run again")
    })?;
    template[0] = program.display().to_string();
    opts.template = template;
    if opts.review.is_some() && opts.review_agent.is_some() {
        return Err(CliError::user("--review and --review-agent both name the reviewer").with_hint("give one of them"));
    }
    if let Some(preset) = opts.review_agent {
        let reviewer = preset.template()[0].clone();
        resolve_program(&reviewer, &cwd).map_err(|e| {
            CliError::user(format!("--review-agent {}: {e}", preset_name(preset)))
                .with_hint("nothing was claimed; install it or drop --review-agent")
        })?;
    }
    if opts.agents == 0 {
        return Err(CliError::user("--agents must be at least 1"));
    }
    Ok(opts)
}

fn preset_name(preset: crate::supervisor::template::Preset) -> String {
    use clap::ValueEnum;
    preset.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string())
}

pub fn run(repo: &Repo, tracker_kind: TrackerKind, args: &RunArgs) -> CliResult<Outcome> {
    let mut opts = resolve(repo, args)?;
    let (base, git_dir) = git_setup(repo, &mut opts)?;
    let tracker = crate::cli::tracker::open(repo, tracker_kind)?;
    let issues = tracker.list(&ListFilter::default()).map_err(crate::cli::tracker::to_cli_error)?;
    if let Some(epic) = &opts.epic
        && !issues.iter().any(|i| &i.id == epic)
    {
        return Err(CliError::user(format!("--epic {epic}: no such issue in the {} tracker", tracker.name())));
    }
    if args.dry_run {
        return crate::cli::commands::run::dry::print(repo, &opts, &issues, &base, &git_dir, tracker.name());
    }

    prepare_bdp_dir(repo, &git_dir)?;
    let pid = std::process::id();
    let start_time = crate::process::start_time(pid);
    let since = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let holder = Holder { pid, start_time, since };
    let _lock = OrchestratorLock::acquire(&repo.orchestrator_lock_path(), &holder.render()).map_err(|e| {
        CliError::from(e).with_hint("one `bdp run` per repository; `bdp stop` asks the running one to stop")
    })?;
    let session = new_session_id();
    // Read (and so check) the whole log before anything is written to it: a damaged log is refused as it is.
    let damaged = |e: crate::log::LogError| {
        CliError::from(e).with_hint("`bdp verify` says exactly where the log is damaged; nothing was written")
    };
    let mut loaded = match crate::log::load::recover(repo) {
        Ok(loaded) => Some(loaded),
        Err(crate::log::LogError::NoLog { .. }) => None,
        Err(e) => return Err(damaged(e)),
    };
    let (log, torn) =
        LogWriter::open(&repo.events_dir(), &repo.append_lock_path(), &session, crate::log::system_clock())?;
    if let Some(torn) = torn {
        eprintln!(
            "note: cut a torn last record ({} bytes) off {} — a crash in the middle of a write",
            torn.bytes,
            torn.segment.display()
        );
        loaded = None;
    }
    // Again after a cut: the state must include the log_truncated record the writer appended.
    let loaded = match loaded {
        Some(loaded) => loaded,
        None => crate::log::load::recover(repo).map_err(damaged)?,
    };
    // The last session did not end (or left things behind): compare the log with the world first.
    let recovers = loaded.state.open_session.clone();
    if recovers.is_some() {
        wait_for_orphaned_git(repo);
    }
    let observer = crate::observe::Observer { repo, actor: &opts.actor, live_orchestrator: None };
    let findings = crate::reconcile::diff(&loaded.state, &observer.observe(&loaded.state, &issues));
    let tracker_name = tracker.name();
    let mut orchestrator = Orchestrator::new(Setup {
        repo: repo.clone(),
        opts: opts.clone(),
        tracker,
        log,
        state: loaded.state,
        bdp_exe: std::env::current_exe().map_err(|e| CliError::io("find", Path::new("the bdp executable"), &e))?,
        base: base.clone(),
        git_dir,
        issues,
    });
    let config = serde_json::json!({ "options": &opts, "base": &base, "tracker": tracker_name });
    orchestrator.start_session(holder, config, recovers).map_err(CliError::from)?;
    orchestrator.set_recovery(findings);
    println!(
        "bdp run: session {session}, {} agent(s), tracker {tracker_name}, base {}",
        opts.agents,
        if opts.isolation == Isolation::None { "(none: agents run in the repository)" } else { base.as_str() }
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))?;
    let (summary, result) = runtime.block_on(async {
        listen_for_signals(orchestrator.sender());
        orchestrator.run().await
    });
    print_summary(&summary);
    result.map_err(CliError::from)?;
    if let Some(why) = &summary.tracker_outage {
        let left = match summary.left_waiting {
            0 => String::new(),
            n => format!("; {n} issue(s) whose close or give-back waited are left for the next run"),
        };
        return Err(CliError::new(crate::error::ErrorKind::Io, format!("{why}{left}"))
            .with_hint("fix the tracker (the message names the file and line, or the command), then `bdp run` again: it carries on where this one stopped"));
    }
    if let Some(why) = &summary.crash_loop {
        return Err(CliError::new(
            crate::error::ErrorKind::Io,
            format!("the agent failed the same way on the first attempt of every issue it tried: {why}"),
        )
        .with_hint("the agent command or its setup is broken, not the issues: run it by hand in a worktree (`bdp logs --issue ID` shows what it printed), fix it, then `bdp run` again"));
    }
    Ok(if summary.failed + summary.conflicted > 0 { Outcome::Found } else { Outcome::Ok })
}

/// A killed orchestrator leaves its git commands running (a `git worktree add` half done): let them end
/// (10 s at most) before looking at worktrees, so recovery does not race them.
fn wait_for_orphaned_git(repo: &Repo) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut said = false;
    loop {
        let left = crate::process::git_processes_in(&repo.root);
        if left.is_empty() || std::time::Instant::now() >= until {
            return;
        }
        if !said {
            let pids: Vec<String> = left.iter().map(u32::to_string).collect();
            eprintln!("note: waiting for git processes in the repository to end (pids {})", pids.join(", "));
            said = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the repository and finds the base branch and the git dir.
fn git_setup(repo: &Repo, opts: &mut RunOptions) -> CliResult<(String, String)> {
    let git_err = |e: crate::git::GitError| CliError::user(e.to_string());
    let is_git = crate::git::run(&repo.root, ["rev-parse", "--git-dir"]).is_ok();
    if !is_git {
        if opts.isolation == Isolation::Worktree {
            return Err(CliError::user(format!("{} is not a git repository", repo.root.display()))
                .with_hint("agents work in git worktrees; run `git init`, or pass --isolation none"));
        }
        return Ok((String::new(), String::new()));
    }
    let git_dir = crate::git::run(&repo.root, ["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map_err(git_err)?
        .trim()
        .to_string();
    let base = match &opts.base {
        Some(b) => b.clone(),
        None => match crate::git::current_branch(&repo.root).map_err(git_err)? {
            Some(b) => b,
            None if opts.isolation == Isolation::None => String::new(),
            None => {
                return Err(CliError::user("HEAD is detached: there is no branch to merge into")
                    .with_hint("check out a branch, or pass --base BRANCH"));
            }
        },
    };
    if opts.isolation == Isolation::Worktree
        && crate::git::rev_parse(&repo.root, &format!("refs/heads/{base}")).map_err(git_err)?.is_none()
    {
        return Err(CliError::user(format!("--base {base}: no such branch"))
            .with_hint("a branch needs at least one commit before worktrees can be made from it"));
    }
    opts.base = Some(base.clone());
    Ok((base, git_dir))
}

/// Creates `.bdp/` and keeps it out of git (`.git/info/exclude`, never the user's `.gitignore`).
/// `git_dir` is the repository's common git dir (empty outside git).
fn prepare_bdp_dir(repo: &Repo, git_dir: &str) -> CliResult<()> {
    let dir = repo.bdp_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CliError::io("create", &dir, &e))?;
    if git_dir.is_empty() {
        return Ok(());
    }
    let exclude = PathBuf::from(git_dir).join("info").join("exclude");
    let text = std::fs::read_to_string(&exclude).unwrap_or_default();
    if !text.lines().any(|l| l.trim() == "/.bdp/" || l.trim() == ".bdp/" || l.trim() == ".bdp") {
        if let Some(parent) = exclude.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CliError::io("create", parent, &e))?;
        }
        let mut new = text;
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str("/.bdp/\n");
        std::fs::write(&exclude, new).map_err(|e| CliError::io("write", &exclude, &e))?;
    }
    Ok(())
}

/// `s-20261125-061500-d4f1`: time of day and a short random part (pid and clock mixed).
fn new_session_id() -> String {
    let now = jiff::Timestamp::now();
    let salt = (u64::from(std::process::id()) << 20) ^ u64::from(now.subsec_nanosecond() as u32);
    let tag = blake3::hash(&salt.to_le_bytes()).to_hex();
    format!("s-{}-{}", now.strftime("%Y%m%d-%H%M%S"), &tag[..4])
}

/// SIGINT/SIGTERM: drain (a second one: now). SIGUSR1 (`bdp stop --now`): now.
fn listen_for_signals(tx: tokio::sync::mpsc::UnboundedSender<Msg>) {
    use tokio::signal::unix::{SignalKind, signal};
    let kinds = [
        (SignalKind::interrupt(), StopLevel::Drain),
        (SignalKind::terminate(), StopLevel::Drain),
        (SignalKind::user_defined1(), StopLevel::Now),
    ];
    for (kind, level) in kinds {
        let Ok(mut stream) = signal(kind) else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(Msg::StopAsked(level)).is_err() {
                    break;
                }
            }
        });
    }
}

fn print_summary(s: &RunSummary) {
    if let Some(why) = &s.nothing_ready {
        println!("{why}");
        return;
    }
    let wall = s.wall.as_secs_f64().max(0.001);
    let speedup = s.agent_time.as_secs_f64() / wall;
    let how = match s.stop {
        Some(crate::event::SessionEndReason::Drained) => " (stopped: drained)",
        Some(crate::event::SessionEndReason::Stopped) => " (stopped now)",
        Some(crate::event::SessionEndReason::Error) => " (ended on an error)",
        _ => "",
    };
    println!(
        "summary: {} done, {} failed, {} conflicted, {} released{how}; {} attempt(s) in {}",
        s.done,
        s.failed,
        s.conflicted,
        s.released,
        s.attempts,
        crate::text::duration_of(s.wall)
    );
    println!(
        "agent time {} over wall time {}: {speedup:.1}x parallel",
        crate::text::duration_of(s.agent_time),
        crate::text::duration_of(s.wall)
    );
    if s.usage_reports > 0 {
        println!("agents reported usage {} time(s), cost ${:.2}", s.usage_reports, s.cost_micro_usd as f64 / 1e6);
    }
    if let Some(spent) = &s.budget_spent {
        println!("--max-cost reached ({spent}): no new issue was claimed after that");
    }
    println!("session {}: `bdp replay {}` shows every step", s.session, s.session);
}
