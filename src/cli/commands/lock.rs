//! `bdp lock acquire|release|list|check`: file locks for agents working side by side. A lock names a
//! repo-relative path or glob (`src/db/**`), exclusive or `--shared`, held by an issue's attempt
//! (`$BDP_ISSUE#$BDP_ATTEMPT` under `bdp run`) or `--holder ID`. This file reads the arguments and says
//! what happened; `crate::file_locks` keeps the locks (on disk, and in the event log).

use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cli::Outcome;
use crate::error::{CliError, CliResult};
use crate::file_locks::{Acquired, Request, holder_of, owner_pid, user_paths};
use crate::filelock::LockPath;
use crate::repo::Repo;

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(subcommand)]
    pub command: LockCommand,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take locks on PATHs (all or none), waiting for them up to --wait. Exit 0 taken, 1 still held
    /// (naming the holder) or a deadlock (naming it), 2 error.
    Acquire(AcquireArgs),
    /// Give locks back: PATHs, or --all of the holder's.
    Release(ReleaseArgs),
    /// The locks held, and who waits for what.
    List(ListArgs),
    /// Exit 1 when a PATH (default: the paths staged for commit) is locked exclusively by another holder,
    /// naming it (the pre-commit hook of `bdp run --lock-hook`).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Repo-relative paths [default: `git diff --cached --name-only`].
    pub paths: Vec<String>,
    #[arg(long, value_name = "ID")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// Repo-relative paths or globs (`src/db/**`); absolute paths inside the repository or the worktree.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// How long to wait for locks others hold.
    #[arg(long, default_value = "60s", value_parser = crate::text::parse_duration, value_name = "DURATION")]
    pub wait: Duration,
    /// The lock is stale (and broken by the next acquirer) after this long.
    #[arg(long, value_parser = crate::text::parse_duration, value_name = "DURATION")]
    pub ttl: Option<Duration>,
    /// A shared lock: goes with other shared locks, not with an exclusive one.
    #[arg(long)]
    pub shared: bool,
    /// Who holds it [default: $BDP_ISSUE#$BDP_ATTEMPT, as bdp run sets them].
    #[arg(long, value_name = "ID")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The paths to give back, as they were taken.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub paths: Vec<String>,
    /// Every lock of the holder.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_name = "ID")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(repo: &Repo, args: &LockArgs) -> CliResult<Outcome> {
    match &args.command {
        LockCommand::Acquire(a) => acquire(repo, a),
        LockCommand::Release(r) => release(repo, r),
        LockCommand::List(l) => list(repo, l),
        LockCommand::Check(c) => check(repo, c),
    }
}

fn acquire(repo: &Repo, args: &AcquireArgs) -> CliResult<Outcome> {
    let holder = holder_of(&args.holder)?;
    let paths = user_paths(repo, &args.paths).map_err(|e| {
        CliError::user(format!("cannot lock: {e}")).with_hint("paths are relative to the repository's top")
    })?;
    let request = Request { holder, paths, shared: args.shared, wait: args.wait, ttl: args.ttl, pid: owner_pid() };
    let acquired = crate::file_locks::acquire(repo, &request)?;
    println!("{}", acquired.message(&request));
    Ok(match acquired {
        Acquired::Granted { .. } => Outcome::Ok,
        Acquired::Held { .. } | Acquired::Deadlock { .. } => Outcome::Found,
    })
}

fn release(repo: &Repo, args: &ReleaseArgs) -> CliResult<Outcome> {
    let holder = holder_of(&args.holder)?;
    let paths = if args.all {
        None
    } else {
        Some(user_paths(repo, &args.paths).map_err(|e| CliError::user(format!("cannot release: {e}")))?)
    };
    let released = crate::file_locks::release(repo, &holder, paths.as_deref())?;
    if released.is_empty() {
        println!("{holder} holds none of these locks");
    } else {
        println!("unlocked {} (held by {holder})", released.join(", "));
    }
    Ok(Outcome::Ok)
}

fn list(repo: &Repo, args: &ListArgs) -> CliResult<Outcome> {
    let listing = crate::file_locks::list(repo)?;
    if args.json {
        let text = serde_json::to_string_pretty(&listing).map_err(|e| CliError::internal(e.to_string()))?;
        println!("{text}");
        return Ok(Outcome::Ok);
    }
    if listing.locks.is_empty() {
        println!("no file locks held");
    } else {
        println!("{:<32}  {:<9}  {:<16}  {:>8}  SINCE", "PATH", "MODE", "HOLDER", "PID");
        for e in &listing.locks {
            let mode = if e.shared { "shared" } else { "exclusive" };
            let expires =
                e.expires_ms.map(|at| format!(" (until {})", crate::file_locks::ms_text(at))).unwrap_or_default();
            println!("{:<32}  {:<9}  {:<16}  {:>8}  {}{expires}", e.path, mode, e.holder, e.pid, e.since);
        }
    }
    for w in &listing.waiting {
        println!(
            "waiting: {} for {} (held by {}) since {}",
            w.holder,
            w.paths.join(", "),
            w.waits_for.join(", "),
            crate::file_locks::ms_text(w.since_ms)
        );
    }
    Ok(Outcome::Ok)
}

fn check(repo: &Repo, args: &CheckArgs) -> CliResult<Outcome> {
    // No holder (a person's commit): every exclusive lock counts.
    let me = holder_of(&args.holder).unwrap_or_default();
    let paths: Vec<String> = if args.paths.is_empty() {
        let cwd = std::env::current_dir().map_err(|e| CliError::io("read", Path::new("."), &e))?;
        let staged = crate::git::run(&cwd, ["diff", "--cached", "--name-only"])
            .map_err(|e| CliError::user(format!("cannot list the staged paths: {e}")))?;
        staged.lines().map(str::to_string).collect()
    } else {
        args.paths.clone()
    };
    let locks = crate::file_locks::snapshot(repo).locks;
    let mut refused = Vec::new();
    for text in &paths {
        let Ok(path) = LockPath::parse(text) else { continue };
        for lock in locks.iter().filter(|l| !l.shared && l.holder != me) {
            if LockPath::parse(&lock.path).is_ok_and(|theirs| theirs.overlaps(&path)) {
                refused.push(format!("{text} is locked by {} ({}, since {})", lock.holder, lock.path, lock.since));
            }
        }
    }
    if refused.is_empty() {
        return Ok(Outcome::Ok);
    }
    // The refusal last: what an agent's failure is reported by.
    eprintln!("bdp: locked by another holder; wait for the lock (`bdp lock acquire PATH`) or leave the file to it");
    for line in &refused {
        eprintln!("bdp: refused: {line}");
    }
    Ok(Outcome::Found)
}

/// The pre-commit hook of `bdp run --lock-hook`: `bdp lock check` on the staged paths, then the
/// repository's own pre-commit hook, if it has one.
pub fn pre_commit_hook(bdp: &Path) -> String {
    let quoted =
        bdp.display().to_string().replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`");
    format!(
        "#!/bin/sh\n# bdp run --lock-hook: refuse a commit that touches a path another agent holds an exclusive\n\
         # file lock on (bdp lock), then run the repository's own pre-commit hook.\n\
         \"{quoted}\" lock check || exit 1\n\
         common=$(git rev-parse --git-common-dir)\n\
         if [ -x \"$common/hooks/pre-commit\" ]; then exec \"$common/hooks/pre-commit\" \"$@\"; fi\n"
    )
}
