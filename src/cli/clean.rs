//! `bdp clean`: removes what runs left behind and no live claim owns — worktrees under `.bdp/worktrees/`
//! (`git worktree remove --force`, then `git worktree prune`), `bdp/*` branches, run directories under
//! `.bdp/runs/`, and lock files under `.bdp/locks/`.
//!
//! A claim is live when it is claimed in the log and an orchestrator holds the orchestrator lock, or the
//! claim's agent is alive (pid + start time). Never removed: anything of a live claim, a worktree some
//! process is working in (its cwd is inside), a branch checked out outside `.bdp/worktrees/`, a lock file
//! whose flock is held or whose lock (in the log) has a live holder. By default the worktree and branch
//! of an issue whose last release was a merge conflict are kept too (`bdp run` leaves them for the user);
//! `--all` removes them.
//!
//! Each removed worktree is recorded as a `worktree_removed` event under a session id of its own
//! (`clean-YYYYMMDD-HHMMSS-PID`, with no `session_started`, which would mark a running orchestrator's
//! session as crashed). `.bdp` is never created.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Outcome;
use super::live::{self, OrchestratorSeen};
use super::paths::display_path;
use super::render::one_line;
use crate::error::{CliError, CliResult, ErrorKind};
use crate::event::{Event, ReleaseReason};
use crate::git;
use crate::log::{LogWriter, system_clock};
use crate::repo::{BRANCH_PREFIX, Repo, branch_name, escape_path_component, unescape_path_component};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Worktree,
    Branch,
    Runs,
    Lock,
}

impl Kind {
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

/// One thing `clean` looked at.
#[derive(Debug)]
struct Item {
    kind: Kind,
    /// Shown to the user: a repo-relative path or a branch name.
    shown: String,
    /// The path (worktrees, runs, locks) or the branch name.
    target: String,
    issue: Option<String>,
    /// Why it stays, when it does.
    keep: Option<String>,
    /// A remark printed with a removal.
    note: Option<String>,
    /// For worktrees: git knows it (else it is a plain directory).
    registered: bool,
}

pub fn run(repo: &Repo, args: &CleanArgs) -> CliResult<Outcome> {
    if !repo.bdp_dir().is_dir() {
        println!("nothing to clean: no bdp data in {} (nothing has run here yet)", repo.root.display());
        return Ok(Outcome::Ok);
    }
    let state = live::state(repo)?;
    let orchestrator = OrchestratorSeen::look(repo);
    let owners = Owners::new(&state, &orchestrator, args.all);
    let has_git = git::toplevel(&repo.root).is_ok();
    let mut items = worktrees(repo, &owners, has_git)?;
    if has_git {
        items.extend(branches(repo, &owners, &items)?);
    }
    items.extend(runs(repo, &owners));
    items.extend(lock_files(repo, &state, &owners));

    let verb = if args.dry_run { "would remove" } else { "removed" };
    let mut removed: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut failures = 0;
    let mut log: Option<LogWriter> = None;
    for item in items.iter().filter(|i| i.keep.is_none()) {
        if !args.dry_run
            && let Err(e) = remove(repo, item, &state, &mut log)
        {
            eprintln!("error: cannot remove {} {}: {e}", item.kind.name(), one_line(&item.shown));
            failures += 1;
            continue;
        }
        let note = item.note.as_ref().map_or(String::new(), |n| format!("  ({n})"));
        println!("{verb:<12} {:<8} {}{note}", item.kind.name(), one_line(&item.shown));
        *removed.entry(item.kind).or_default() += 1;
    }
    if has_git && !args.dry_run {
        let _ = git::run(&repo.root, ["worktree", "prune"]);
    }
    let kept: Vec<&Item> = items.iter().filter(|i| i.keep.is_some()).collect();
    for item in &kept {
        println!(
            "{:<12} {:<8} {}  ({})",
            "kept",
            item.kind.name(),
            one_line(&item.shown),
            item.keep.as_deref().unwrap_or("")
        );
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

/// Who owns what: the issue a worktree, branch or run dir belongs to, and whether it must be kept.
struct Owners<'a> {
    state: &'a State,
    orchestrator: &'a OrchestratorSeen,
    all: bool,
    /// Escaped path component → issue id, and branch name → issue id, for the issues in the log.
    by_component: BTreeMap<String, String>,
    by_branch: BTreeMap<String, String>,
}

impl<'a> Owners<'a> {
    fn new(state: &'a State, orchestrator: &'a OrchestratorSeen, all: bool) -> Self {
        let by_component = state.issues.keys().map(|id| (escape_path_component(id), id.clone())).collect();
        let by_branch = state.issues.keys().map(|id| (branch_name(id), id.clone())).collect();
        Owners { state, orchestrator, all, by_component, by_branch }
    }

    fn issue_of_component(&self, component: &str) -> Option<String> {
        self.by_component.get(component).cloned().or_else(|| unescape_path_component(component))
    }

    fn issue_of_branch(&self, branch: &str) -> Option<String> {
        self.by_branch
            .get(branch)
            .cloned()
            .or_else(|| branch.strip_prefix(BRANCH_PREFIX).and_then(unescape_path_component))
    }

    /// Why the issue's things must stay: a live claim.
    fn live(&self, issue: Option<&str>) -> Option<String> {
        let claim = self.state.issues.get(issue?)?.claim.as_ref()?;
        live::claim_liveness(self.orchestrator, claim)
    }

    /// Why the issue's worktree and branch stay: a live claim, or an unresolved conflict (without --all).
    fn keep_work(&self, issue: Option<&str>) -> Option<String> {
        if let Some(why) = self.live(issue) {
            return Some(why);
        }
        let state = self.state.issues.get(issue?)?;
        // A claim of a session that crashed: its branch, exit file and output are what recovery needs to
        // learn the outcome and merge the work. Only --all throws them away.
        if let Some(claim) = state.claim.as_ref().filter(|_| !self.all) {
            return Some(format!(
                "still claimed by session {}, which did not end: the next `bdp run` recovers it; --all removes it",
                one_line(&claim.session)
            ));
        }
        let release = state.last_release.as_ref().filter(|_| state.claim.is_none() && !self.all)?;
        if release.reason == ReleaseReason::Conflict {
            return Some("conflicted, kept by `bdp run` for you to resolve; --all removes it".into());
        }
        // git failed to merge it: the work is on the branch, for a person to land.
        release.unmerged_work.then(|| "its merge did not land, kept by `bdp run` for you; --all removes it".into())
    }

    /// A remark for a removal: the issue is still claimed in the log, by a session no orchestrator runs.
    fn note(&self, issue: Option<&str>) -> Option<String> {
        let claim = self.state.issues.get(issue?)?.claim.as_ref()?;
        Some(format!("still claimed in the log by session {}, whose orchestrator is gone", one_line(&claim.session)))
    }
}

fn worktrees(repo: &Repo, owners: &Owners, has_git: bool) -> CliResult<Vec<Item>> {
    let dir = repo.worktrees_dir();
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    let mut found: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    for path in live::entries(&dir) {
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            found.insert(name.to_string(), (path.clone(), false));
        }
    }
    if has_git {
        let listed = git::worktrees(&repo.root).map_err(|e| CliError::new(ErrorKind::Io, e.to_string()))?;
        for (path, _) in listed {
            let Some(rest) = path.strip_prefix(&canonical).or_else(|_| path.strip_prefix(&dir)).ok() else { continue };
            let Some(name) = rest.components().next().and_then(|c| c.as_os_str().to_str()) else { continue };
            found.insert(name.to_string(), (dir.join(name), true));
        }
    }
    Ok(found
        .into_iter()
        .map(|(name, (path, registered))| {
            let issue = owners.issue_of_component(&name);
            let users = live::processes_in(&path);
            let keep = owners
                .keep_work(issue.as_deref())
                .or_else(|| (!users.is_empty()).then(|| format!("in use by pid {}", join(&users))));
            Item {
                kind: Kind::Worktree,
                shown: display_path(repo, &path),
                target: path.display().to_string(),
                note: owners.note(issue.as_deref()),
                issue,
                keep,
                registered,
            }
        })
        .collect())
}

fn branches(repo: &Repo, owners: &Owners, worktree_items: &[Item]) -> CliResult<Vec<Item>> {
    let io = |e: git::GitError| CliError::new(ErrorKind::Io, e.to_string());
    let checked_out = git::worktrees(&repo.root).map_err(io)?;
    let removed_worktrees: Vec<PathBuf> = worktree_items
        .iter()
        .filter(|i| i.keep.is_none())
        .filter_map(|i| Path::new(&i.target).canonicalize().ok())
        .collect();
    Ok(git::branches_with_prefix(&repo.root, BRANCH_PREFIX)
        .map_err(io)?
        .into_iter()
        .map(|branch| {
            let issue = owners.issue_of_branch(&branch);
            let elsewhere = checked_out
                .iter()
                .find(|(path, b)| b.as_deref() == Some(branch.as_str()) && !removed_worktrees.contains(path))
                .map(|(path, _)| format!("checked out at {}", display_path(repo, path)));
            Item {
                kind: Kind::Branch,
                shown: branch.clone(),
                target: branch,
                keep: owners.keep_work(issue.as_deref()).or(elsewhere),
                note: owners.note(issue.as_deref()),
                issue,
                registered: false,
            }
        })
        .collect())
}

fn runs(repo: &Repo, owners: &Owners) -> Vec<Item> {
    live::entries(&repo.runs_dir())
        .into_iter()
        .map(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let issue = owners.issue_of_component(&name);
            Item {
                kind: Kind::Runs,
                shown: display_path(repo, &path),
                target: path.display().to_string(),
                keep: owners.keep_work(issue.as_deref()),
                note: owners.note(issue.as_deref()),
                issue,
                registered: false,
            }
        })
        .collect()
}

/// Lock files: a file `NAME` or `NAME.lock` (NAME escaped) belongs to the log's lock NAME.
fn lock_files(repo: &Repo, state: &State, owners: &Owners) -> Vec<Item> {
    live::entries(&repo.locks_dir())
        .into_iter()
        .map(|path| {
            let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let lock = state.locks.iter().find(|(name, _)| {
                let escaped = escape_path_component(name);
                file == escaped || file == format!("{escaped}.lock")
            });
            let keep = if live::flock_held(&path).unwrap_or(false) {
                Some("locked right now".to_string())
            } else if let Some((_, l)) = lock {
                owners.live(l.issue.as_deref()).or_else(|| {
                    crate::process::is_alive(l.holder_pid, None)
                        .then(|| format!("held in the log by pid {}, which is running", l.holder_pid))
                })
            } else {
                None
            };
            Item {
                kind: Kind::Lock,
                shown: display_path(repo, &path),
                target: path.display().to_string(),
                keep,
                note: None,
                issue: lock.and_then(|(_, l)| l.issue.clone()),
                registered: false,
            }
        })
        .collect()
}

fn join(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn remove(repo: &Repo, item: &Item, state: &State, log: &mut Option<LogWriter>) -> Result<(), String> {
    let path = Path::new(&item.target);
    match item.kind {
        Kind::Worktree => {
            if item.registered {
                git::remove_worktree(&repo.root, path).map_err(|e| e.to_string())?;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(path).map_err(|e| e.to_string())?;
            } else if path.symlink_metadata().is_ok() {
                std::fs::remove_file(path).map_err(|e| e.to_string())?;
            }
            if let Some(issue) = &item.issue {
                record_removal(repo, issue, item, state, log)?;
            }
            Ok(())
        }
        Kind::Branch => git::delete_branch(&repo.root, &item.target).map_err(|e| e.to_string()),
        Kind::Runs | Kind::Lock if path.is_dir() => std::fs::remove_dir_all(path).map_err(|e| e.to_string()),
        Kind::Runs | Kind::Lock => std::fs::remove_file(path).map_err(|e| e.to_string()),
    }
}

/// Appends `worktree_removed`, with the path the log knows for the issue's worktree if it is this one.
fn record_removal(
    repo: &Repo,
    issue: &str,
    item: &Item,
    state: &State,
    log: &mut Option<LogWriter>,
) -> Result<(), String> {
    let logged = state
        .issues
        .get(issue)
        .and_then(|i| i.claim.as_ref()?.worktree.as_ref())
        .map(|w| w.path.clone())
        .filter(|p| Path::new(p).file_name() == Path::new(&item.target).file_name());
    let path = logged.unwrap_or_else(|| item.shown.clone());
    if log.is_none() {
        let session = format!("clean-{}-{}", jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S"), std::process::id());
        let (writer, _) = LogWriter::open(&repo.events_dir(), &repo.append_lock_path(), &session, system_clock())
            .map_err(|e| format!("removed, but cannot open the log to record it: {e}"))?;
        *log = Some(writer);
    }
    let writer = log.as_ref().expect("opened above");
    writer
        .append_one(Event::WorktreeRemoved { issue: issue.to_string(), path })
        .map(|_| ())
        .map_err(|e| format!("removed, but cannot record it in the log: {e}"))
}
