//! Looking at the world for recovery and audit: the tracker's issues, the processes of attempts (pid and
//! start time, process groups, bdp's markers in their environment), exit files, lock files, worktrees,
//! `bdp/*` branches and unfinished merges. The result is a [`World`], which the pure
//! [`crate::reconcile::diff`] compares with the log.
//!
//! It only looks: no lock is held longer than a probe, nothing is written.

use std::collections::BTreeMap;
use std::path::Path;

use crate::exit_file::read_exit_file;
use crate::git;
use crate::log::lock::Holder;
use crate::plan::Issue;
use crate::process;
use crate::reconcile::{
    AttemptView, ExitView, FileLockView, LockFile, MarkedGroup, MergeView, TrackerView, WorktreeView, World,
};
use crate::repo::{BRANCH_PREFIX, Repo, unescape_path_component};
use crate::state::State;

/// Who is looking.
pub struct Observer<'a> {
    pub repo: &'a Repo,
    pub actor: &'a str,
    /// Another process runs as the orchestrator (audit while a run is live).
    pub live_orchestrator: Option<u32>,
}

impl Observer<'_> {
    /// Observes everything [`World`] holds except the log's own health (the caller adds that).
    pub fn observe(&self, state: &State, issues: &[Issue]) -> World {
        let mut world = World {
            actor: self.actor.to_string(),
            live_orchestrator: self.live_orchestrator,
            tracker: issues
                .iter()
                .map(|i| {
                    let view = TrackerView {
                        status: i.status.clone(),
                        assignee: i.assignee.clone().filter(|a| !a.is_empty()),
                        labels: i.labels.clone(),
                    };
                    (i.id.clone(), view)
                })
                .collect(),
            ..World::default()
        };
        // Processes first, then files: an agent seen alive is adopted, and one that exits meanwhile has
        // written its exit file before it was gone.
        world.marked = self.marked_groups();
        world.attempts = self.attempts(state, &world.marked);
        world.lock_files = self.lock_files();
        world.file_locks = self.file_locks();
        world.run_dirs = self.run_dirs();
        world.lock_holders = state
            .locks
            .values()
            .map(|lock| {
                let start = world.lock_files.iter().find_map(|f| {
                    (f.holder_pid == Some(lock.holder_pid)).then(|| Holder::read(Path::new(&f.path))?.start_time)?
                });
                (lock.holder_pid, process::is_running(lock.holder_pid, start))
            })
            .collect();
        if git::run(&self.repo.root, ["rev-parse", "--git-dir"]).is_ok() {
            (world.worktrees, world.other_worktrees) = self.worktrees();
            world.branches = git::branches_with_prefix(&self.repo.root, BRANCH_PREFIX).unwrap_or_default();
            world.merges = self.merges(state);
        }
        world
    }

    fn attempts(&self, state: &State, marked: &[MarkedGroup]) -> BTreeMap<String, AttemptView> {
        let mut out = BTreeMap::new();
        for (id, claim) in state.claimed() {
            let Some(a) = &claim.attempt else { continue };
            let mut view = AttemptView { attempt: a.number, ..AttemptView::default() };
            if let Some(sp) = &a.spawned {
                // Without a recorded start time a live pid cannot be told from a reused one: it is never
                // taken for the agent (and so never adopted or signalled).
                view.alive = sp.start_time.is_some() && process::is_running(sp.pid, sp.start_time);
                if !view.alive
                    && let Some(now) = process::start_time(sp.pid)
                    && sp.start_time != Some(now)
                {
                    view.pid_reused = Some(now);
                }
                // Only members that carry the attempt's marker count: a reused pgid is someone else's.
                view.group_alive = view.alive || marked.iter().any(|g| g.pgid == sp.pgid && g.marker == a.marker);
            }
            match read_exit_file(&self.repo.attempt_dir(id, a.number)) {
                Ok(Some(r)) => {
                    view.exit = Some(ExitView {
                        code: r.code,
                        signal: r.signal,
                        duration_ms: r.duration_ms,
                        error: r.error,
                        pid: r.pid,
                    })
                }
                Ok(None) => {}
                Err(e) => view.exit_unreadable = Some(e),
            }
            out.insert(id.clone(), view);
        }
        out
    }

    /// Process groups whose members carry a bdp marker and work for this repository.
    fn marked_groups(&self) -> Vec<MarkedGroup> {
        let root = self.repo.root.display().to_string();
        let mut groups: BTreeMap<(String, u32), MarkedGroup> = BTreeMap::new();
        for found in process::with_env(&["BDP_MARKER", "BDP_WORKTREE"]) {
            let (Some(marker), Some(workdir)) = (found.values[0].clone(), found.values[1].clone()) else { continue };
            if !Path::new(&workdir).starts_with(&root) {
                continue;
            }
            let group = groups.entry((marker.clone(), found.pgid)).or_insert_with(|| MarkedGroup {
                marker,
                pgid: found.pgid,
                leader: None,
                leader_start_time: None,
                pids: Vec::new(),
            });
            if found.pid == found.pgid {
                group.leader = Some(found.pid);
                group.leader_start_time = Some(found.start_time);
            }
            group.pids.push(found.pid);
        }
        groups.into_values().collect()
    }

    /// The agents' file locks (`bdp lock`), each with whether its holder runs and its TTL passed. A file
    /// that cannot be read is left out here: `bdp lock` names it when it meets it.
    fn file_locks(&self) -> Vec<FileLockView> {
        let Ok(read) = std::fs::read_dir(self.repo.file_locks_dir()) else { return Vec::new() };
        let mut paths: Vec<_> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let now = jiff::Timestamp::now().as_millisecond();
        paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let entry: crate::filelock::Entry = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                Some(FileLockView {
                    file: p.display().to_string(),
                    alive: process::is_running(entry.pid, entry.start_time),
                    expired: entry.expires_ms.is_some_and(|at| at <= now),
                    path: entry.path,
                    holder: entry.holder,
                    pid: entry.pid,
                })
            })
            .collect()
    }

    fn lock_files(&self) -> Vec<LockFile> {
        let mut out = Vec::new();
        let Ok(read) = std::fs::read_dir(self.repo.locks_dir()) else { return out };
        let mut paths: Vec<_> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let flocks = process::FlockTable::read();
        for path in paths {
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let stem = file_name.strip_suffix(".lock").unwrap_or(file_name);
            let name = unescape_path_component(stem).unwrap_or_else(|| stem.to_string());
            let holder = Holder::read(&path);
            out.push(LockFile {
                name,
                path: path.display().to_string(),
                holder_pid: holder.as_ref().map(|h| h.pid),
                holder_alive: holder.as_ref().is_some_and(|h| process::is_running(h.pid, h.start_time)),
                flocked: match (&flocks, std::fs::metadata(&path)) {
                    (Some(table), Ok(meta)) => table.holds(&meta),
                    _ => process::flock_held(&path).unwrap_or(false),
                },
            });
        }
        out
    }

    /// Worktrees under `.bdp/worktrees/` (registered with git or plain directories), and the others git
    /// knows (path, branch).
    #[allow(clippy::type_complexity)]
    fn worktrees(&self) -> (Vec<WorktreeView>, Vec<(String, Option<String>)>) {
        let dir = self.repo.worktrees_dir();
        let canonical = dir.canonicalize().unwrap_or(dir.clone());
        let listed = git::worktrees(&self.repo.root).unwrap_or_default();
        let ours = |p: &Path| p.parent() == Some(dir.as_path()) || p.parent() == Some(canonical.as_path());
        let others =
            listed.iter().filter(|(p, _)| !ours(p)).map(|(p, b)| (p.display().to_string(), b.clone())).collect();
        let mut out: Vec<WorktreeView> = listed
            .into_iter()
            .filter(|(p, _)| ours(p))
            .map(|(p, branch)| WorktreeView {
                issue: p.file_name().and_then(|n| n.to_str()).and_then(unescape_path_component),
                users: process::processes_in(&p),
                path: p.display().to_string(),
                branch,
            })
            .collect();
        // Directories git does not list (a worktree whose registration was pruned) are worktrees too.
        if let Ok(read) = std::fs::read_dir(&dir) {
            for entry in read.flatten() {
                let p = entry.path();
                if p.is_dir()
                    && !out
                        .iter()
                        .any(|w| Path::new(&w.path) == p || Path::new(&w.path) == canonical.join(entry.file_name()))
                {
                    out.push(WorktreeView {
                        issue: p.file_name().and_then(|n| n.to_str()).and_then(unescape_path_component),
                        users: process::processes_in(&p),
                        path: p.display().to_string(),
                        branch: None,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        (out, others)
    }

    fn run_dirs(&self) -> Vec<String> {
        let Ok(read) = std::fs::read_dir(self.repo.runs_dir()) else { return Vec::new() };
        let mut out: Vec<String> = read.flatten().map(|e| e.path().display().to_string()).collect();
        out.sort();
        out
    }

    fn merges(&self, state: &State) -> BTreeMap<String, MergeView> {
        let mut out = BTreeMap::new();
        for (id, claim) in state.claimed() {
            let Some(merge) = claim.merge.as_ref().filter(|m| m.commit.is_none()) else { continue };
            let root = &self.repo.root;
            let tip = git::rev_parse(root, &format!("refs/heads/{}", merge.branch)).ok().flatten();
            let base = git::rev_parse(root, &format!("refs/heads/{}", merge.base)).ok().flatten();
            let view = match (&tip, &base) {
                (Some(tip), Some(base)) if git::is_ancestor(root, tip, base).unwrap_or(false) => {
                    MergeView::Done { commit: base.clone() }
                }
                _ => MergeView::NotDone { tip },
            };
            out.insert(id.clone(), view);
        }
        out
    }
}
