//! `bdp demo`: the whole of bdp in under a minute, in a sandbox, with nothing to install.
//!
//! It makes a git repository with twelve beads issues in three tracks (`sandbox.rs`, `scenario.rs`), runs
//! `bdp run` on it as a real child process with scripted agents (`bdp __demo-agent`, `agent.rs`), kills
//! that run with SIGKILL about half way while agents work, shows what a person would find (`bdp status`),
//! runs `bdp run` again (it recovers: adopts the agents still running, applies the exits of those that
//! finished meanwhile) and lets it finish. Then `bdp audit`, the sessions, the HTML timeline and a report
//! (`report.rs`). Every step is the real binary on a real repository: the demo only drives and narrates.
//!
//! It never touches anything outside its sandbox directory (and the timeline file it names).

mod agent;
mod child;
mod report;
mod sandbox;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

pub use agent::{DemoAgentArgs, run as run_agent};

use self::child::{Child, bdp_output};
use self::report::{DemoReport, Facts};
use crate::cli::Outcome;
use crate::error::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Make the sandbox in DIR (new or empty) and keep it afterwards, to look around with
    /// `bdp --repo DIR replay`, `status`, `logs`, `summary`.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// How many agents run at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=12))]
    pub agents: u32,
}

/// Killed once this many issues are done (about half), with at least [`RUNNING_AT_KILL`] agents working.
const DONE_AT_KILL: u64 = 6;
const RUNNING_AT_KILL: usize = 2;
/// How long the demo waits, with bdp down, for one of the orphaned agents to finish.
const ORPHAN_WAIT: Duration = Duration::from_secs(4);
/// A run of the demo that takes longer than this is stopped: something is wrong.
const RUN_LIMIT: Duration = Duration::from_secs(120);

pub fn run(args: &DemoArgs) -> CliResult<Outcome> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }
    let exe = std::env::current_exe().map_err(|e| CliError::io("find", Path::new("the bdp executable"), &e))?;
    let started = Instant::now();
    let sandbox = sandbox::Sandbox::create(args.keep.as_deref())?;
    let root = sandbox.root.clone();
    let say = |text: &str| println!("{text}");

    say(
        "bdp demo: several agents at once over a beads tracker, a crash in the middle, and a recovery that loses nothing.",
    );
    say("");
    say(&format!("sandbox   {} (a git repo on main; .beads/issues.jsonl: 12 issues in 3 tracks)", root.display()));
    say("agents    scripted (bdp __demo-agent): each works 1-3 s, appends a line to a file and commits it;");
    say(&format!(
        "          {} fails its first attempt; {} and {} both change {}, so one merge conflicts (with 2 agents or more) and one more attempt resolves it",
        scenario::FLAKY,
        scenario::CONFLICT_PAIR.0,
        scenario::CONFLICT_PAIR.1,
        scenario::SHARED_FILE
    ));
    say("");
    say(&child::heading(
        1,
        &format!(
            "bdp run --agents {}: claim, worktree, spawn, merge, close; one issue at a time per agent",
            args.agents
        ),
    ));
    let run_args = run_args(&root, &exe, args.agents);
    let mut first = Child::spawn(&exe, &run_args, "│")?;
    let kill = first.watch_until_half(&root, DONE_AT_KILL, RUNNING_AT_KILL, &interrupted, RUN_LIMIT)?;
    if interrupted.load(Ordering::SeqCst) {
        return Err(CliError::user("interrupted").with_hint(format!("the sandbox is at {}", root.display())));
    }
    let mut facts = Facts::default();
    match &kill {
        Some(at) => {
            say("");
            say(&child::heading(
                2,
                &format!(
                    "kill -9 {}: {} of 12 issues done, {} agent(s) working. No clean-up, no last word in the log.",
                    first.pid(),
                    at.done,
                    at.running.len()
                ),
            ));
            facts.killed = Some(at.clone());
        }
        None => say("(the first run ended before the demo could kill it: nothing to recover)"),
    }
    say("");
    say(&child::heading(3, "what a person finds now: `bdp status`"));
    let status = bdp_output(&exe, &["--repo", &root.display().to_string(), "status"])?;
    child::print_indented(&status.text, "│");
    if let Some(at) = &kill {
        let (finished, still) = child::wait_for_an_orphan(&at.running, ORPHAN_WAIT, &interrupted);
        say("");
        say(&format!(
            "while bdp is down the agents carry on in their own process groups: {}",
            child::orphans_line(&finished, &still)
        ));
    }
    say("");
    say(&child::heading(4, "bdp run again: it replays the log, compares it with the world, repairs, and carries on"));
    let mut second = Child::spawn(&exe, &run_args, "│")?;
    let code = second.wait(RUN_LIMIT, &interrupted)?;
    facts.second_run_exit = code;
    if interrupted.load(Ordering::SeqCst) {
        return Err(CliError::user("interrupted").with_hint(format!("the sandbox is at {}", root.display())));
    }
    say("");
    say(&child::heading(
        5,
        "`bdp audit`: does the log agree with the tracker, processes, locks, worktrees and branches?",
    ));
    let audit = bdp_output(&exe, &["--repo", &root.display().to_string(), "audit"])?;
    child::print_indented(&audit.text, "│");
    facts.audit_exit = audit.code;
    say("");
    say(&child::heading(6, "`bdp replay`: the sessions in the log"));
    let sessions = bdp_output(&exe, &["--repo", &root.display().to_string(), "replay"])?;
    child::print_indented(&sessions.text, "│");
    let timeline = timeline_path(&root, args.keep.is_some());
    let html = bdp_output(
        &exe,
        &["--repo", &root.display().to_string(), "replay", "--html", &timeline.display().to_string()],
    )?;
    facts.timeline = (html.code == Some(0)).then_some(timeline);
    if html.code != Some(0) {
        child::print_indented(&html.text, "│");
    }
    facts.kept = args.keep.is_some();
    facts.sandbox = root.clone();
    facts.agents = args.agents;
    facts.demo_wall = started.elapsed();
    let report = DemoReport::gather(&root, facts)?;
    say("");
    print!("{}", report.render());
    drop(sandbox);
    Ok(if report.as_expected() { Outcome::Ok } else { Outcome::Found })
}

/// `bdp run`'s arguments for the sandbox: the embedded tracker, the scripted agent, short backoffs, and
/// no load guard (the demo's agents sleep; a busy machine must not hold them back).
fn run_args(root: &Path, exe: &Path, agents: u32) -> Vec<String> {
    let agent = [exe.display().to_string(), "__demo-agent".into()]
        .into_iter()
        .chain((agents >= 2).then(|| "--together".to_string()))
        .chain(["{id}", "{attempt}", "{prompt_file}"].map(String::from));
    [
        "--repo",
        &root.display().to_string(),
        "--tracker",
        "jsonl",
        "run",
        "--agents",
        &agents.to_string(),
        "--retry-backoff",
        "1s",
        "--timeout",
        "60s",
        "--max-load",
        "1000",
        "--plain",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(agent)
    .collect()
}

/// Inside the sandbox when it is kept, else beside it in the temp dir (the sandbox is removed).
fn timeline_path(root: &Path, kept: bool) -> PathBuf {
    if kept {
        return root.join("timeline.html");
    }
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bdp-demo".into());
    std::env::temp_dir().join(format!("{name}-timeline.html"))
}
