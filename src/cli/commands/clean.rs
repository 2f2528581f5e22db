//! `bdp clean`: removes what runs left behind and no live claim owns — worktrees under `.bdp/worktrees/`
//! (`git worktree remove --force`, then `git worktree prune`), `bdp/*` branches, run directories under
//! `.bdp/runs/`, and lock files under `.bdp/locks/`.
//!
//! What stays and what goes is decided by `reconcile::cleanup` (the same ownership rules as recovery and
//! audit), and each removal is applied by `repair::apply_safe`, the code `audit --fix` uses. Never
//! removed: anything of a live claim (its agent runs, or an orchestrator does), a worktree some process
//! works in, a branch checked out in a worktree that stays, a lock file whose flock is held or whose lock
//! (in the log) has a live holder. By default the leftovers of an issue whose last release was a merge
//! conflict or a merge that did not land, and of a claim of a session that did not end, are kept too;
//! `--all` removes them.
//!
//! What it removes is recorded (`worktree_removed`, `lock_broken`, `repair_applied`) under a session id of
//! its own (`clean-YYYYMMDD-HHMMSS-PID`, with no `session_started`, which would mark a running
//! orchestrator's session as crashed). `.bdp` is never created.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Args;

use crate::cli::Outcome;
use crate::cli::live::{self, OrchestratorSeen};
use crate::cli::paths::display_path;
use crate::cli::render::one_line;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::log::{LogWriter, system_clock};
use crate::observe::Observer;
use crate::reconcile::{Leftover, Repair, cleanup};
use crate::repo::Repo;
use crate::state::State;

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Print what would be removed and remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also remove the worktrees and branches of issues whose last release was a merge conflict (kept by
    /// default: `bdp run` leaves them for you to resolve).
    #[arg(long)]
    pub all: bool,
}

/// What a leftover is, by the repair that removes it (the order things are listed in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Worktree,
    Branch,
    Runs,
    Lock,
}

impl Kind {
    fn of(repair: &Repair) -> Kind {
        match repair {
            Repair::RemoveWorktree { .. } => Kind::Worktree,
            Repair::DeleteBranch { .. } => Kind::Branch,
            Repair::RemoveRunDir { .. } => Kind::Runs,
            _ => Kind::Lock,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Worktree => "worktree",
            Kind::Branch => "branch",
            Kind::Runs => "runs",
            Kind::Lock => "lock",
        }
    }
    fn plural(self, n: usize) -> String {
        let (one, many) = match self {
            Kind::Worktree => ("worktree", "worktrees"),
            Kind::Branch => ("branch", "branches"),
            Kind::Runs => ("run dir", "run dirs"),
            Kind::Lock => ("lock file", "lock files"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }
}

pub fn run(repo: &Repo, args: &CleanArgs) -> CliResult<Outcome> {
    if !repo.bdp_dir().is_dir() {
        println!("nothing to clean: no bdp data in {} (nothing has run here yet)", repo.root.display());
        return Ok(Outcome::Ok);
    }
    let state = live::state(repo)?;
    let orchestrator = OrchestratorSeen::look(repo);
    let live_pid = orchestrator.running.then(|| orchestrator.holder.as_ref().map_or(0, |h| h.pid));
    let observer = Observer { repo, actor: "", live_orchestrator: live_pid };
    let leftovers = cleanup(&state, &observer.observe(&state, &[]), args.all);
    let shown = |path: &str| display_path(repo, Path::new(path));
    let subject = |l: &Leftover| one_line(&shown(l.finding.subject.as_deref().unwrap_or_default()));

    let verb = if args.dry_run { "would remove" } else { "removed" };
    let mut removed: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut failures = 0;
    let mut log: Option<LogWriter> = None;
    for leftover in leftovers.iter().filter(|l| l.kept.is_none()) {
        let kind = Kind::of(&leftover.finding.repair);
        if !args.dry_run
            && let Err(e) = remove(repo, &state, leftover, &mut log)
        {
            eprintln!("error: cannot remove {} {}: {e}", kind.name(), subject(leftover));
            failures += 1;
            continue;
        }
        let note = leftover.claimed_by.as_ref().map_or(String::new(), |session| {
            format!("  (still claimed in the log by session {}, whose orchestrator is gone)", one_line(session))
        });
        println!("{verb:<12} {:<8} {}{note}", kind.name(), subject(leftover));
        *removed.entry(kind).or_default() += 1;
    }
    if !args.dry_run {
        let _ = crate::git::run(&repo.root, ["worktree", "prune"]);
    }
    let kept: Vec<&Leftover> = leftovers.iter().filter(|l| l.kept.is_some()).collect();
    for leftover in &kept {
        let why = leftover.kept.as_ref().map(|k| k.describe(&shown)).unwrap_or_default();
        println!("{:<12} {:<8} {}  ({why})", "kept", Kind::of(&leftover.finding.repair).name(), subject(leftover));
    }
    println!("{}", summary(verb, &removed, kept.len()));
    if failures > 0 {
        return Err(CliError::new(ErrorKind::Io, format!("{failures} item(s) could not be removed (see above)"))
            .with_hint("a process may still use them; `bdp status` shows what is running"));
    }
    Ok(Outcome::Ok)
}

fn summary(verb: &str, removed: &BTreeMap<Kind, usize>, kept: usize) -> String {
    let kept = if kept > 0 { format!("; kept {kept} in use, conflicted or awaiting recovery") } else { String::new() };
    if removed.is_empty() {
        return format!("nothing to clean{kept}");
    }
    let parts: Vec<String> = removed.iter().map(|(k, n)| k.plural(*n)).collect();
    format!("{verb} {}{kept}", parts.join(", "))
}

/// Applies the leftover's repair (the code `audit --fix` uses) and records what it did in the log.
fn remove(repo: &Repo, state: &State, leftover: &Leftover, log: &mut Option<LogWriter>) -> Result<(), String> {
    let grace = std::time::Duration::from_secs(10);
    let events = crate::repair::apply_safe(repo, state, None, &leftover.finding, grace)?.unwrap_or_default();
    if log.is_none() {
        let session = format!("clean-{}-{}", jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S"), std::process::id());
        let (writer, _) = LogWriter::open(&repo.events_dir(), &repo.append_lock_path(), &session, system_clock())
            .map_err(|e| format!("removed, but cannot open the log to record it: {e}"))?;
        *log = Some(writer);
    }
    let writer = log.as_ref().ok_or("no log writer")?;
    writer.append(events).map(|_| ()).map_err(|e| format!("removed, but cannot record it in the log: {e}"))
}
