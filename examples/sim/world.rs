//! The simulated world the run loop acts on: a tracker (with a competing claimer and outages), agents (that
//! finish, fail, hang, crash, or take random time), git (worktrees, branches, merges that conflict or fail),
//! lock files. It is observed for recovery as `bdp run` observes the real one ([`World::observe`]).

use std::collections::{BTreeMap, BTreeSet};

use bdp::plan::{Dependency, Issue, LabelChange};
use bdp::reconcile::{AttemptView, ExitView, LockFile, MarkedGroup, MergeView, TrackerView, WorktreeView};
use bdp::state::State;

use crate::rng::Rng;

pub const ACTOR: &str = "bdp";

/// One issue in the simulated tracker.
#[derive(Debug, Clone)]
pub struct SimIssue {
    pub issue: Issue,
    /// How many times bdp closed it.
    pub closes: u32,
}

/// An agent process (the wrapper and its group).
#[derive(Debug, Clone)]
pub struct Agent {
    pub issue: String,
    pub attempt: u32,
    pub pid: u32,
    pub marker: String,
    pub alive: bool,
    /// When it ends by itself (`None`: it hangs until stopped).
    pub ends_at: Option<u64>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub started_at: u64,
    /// The exit file, once it ended.
    pub exit: Option<ExitView>,
    /// The orchestrator incarnation that watches it (its end is reported to that one only).
    pub watched_by: Option<u32>,
    /// What it leaves on its branch when it succeeds: commits, or uncommitted changes.
    pub commits: u64,
    pub dirty: bool,
    /// Stopped by bdp (TERM, grace, KILL).
    pub stopped: bool,
    pub timed_out: bool,
}

/// An issue's branch.
#[derive(Debug, Clone, Default)]
pub struct Branch {
    pub ahead: u64,
    pub dirty: bool,
    pub head: String,
    /// The merge commit that brought it into the base.
    pub merged: Option<String>,
}

#[derive(Debug, Default)]
pub struct World {
    pub issues: BTreeMap<String, SimIssue>,
    /// The tracker fails every call until then.
    pub tracker_down_until: u64,
    pub agents: Vec<Agent>,
    /// Worktrees by issue: (path, branch).
    pub worktrees: BTreeMap<String, (String, String)>,
    pub branches: BTreeMap<String, Branch>,
    /// Lock files by issue: the pid written in them.
    pub lock_files: BTreeMap<String, u32>,
    /// Orchestrator pids that are alive.
    pub live_pids: BTreeSet<u32>,
    pub next_pid: u32,
    pub commits: u64,
}

impl World {
    /// A backlog of `n` issues, some blocked by earlier ones.
    pub fn new(rng: &mut Rng, n: usize) -> World {
        let mut world = World { next_pid: 5000, ..World::default() };
        for i in 0..n {
            let id = format!("sim-{i}");
            let mut dependencies = Vec::new();
            if i > 0 && rng.chance(0.25) {
                let on = rng.below(i as u64);
                dependencies.push(Dependency::on(&format!("sim-{on}"), "blocks"));
            }
            // Some issues declare the files they touch: a shared manifest, a directory, a migration.
            let mut labels = Vec::new();
            if rng.chance(0.3) {
                let paths = ["Cargo.toml", "src/db/**", "src/db/schema.rs", "docs/guide.md"];
                labels.push(format!("paths:{}", paths[rng.below(paths.len() as u64) as usize]));
            }
            if rng.chance(0.2) {
                labels.push(format!("paths:migrations/{:04}.sql", i));
            }
            let issue = Issue {
                title: format!("issue {i}"),
                priority: rng.below(4) as i64,
                labels,
                dependencies,
                created_at: Some(format!("2026-01-01T00:00:{:02}Z", i % 60)),
                ..Issue::open(&id)
            };
            world.issues.insert(id, SimIssue { issue, closes: 0 });
        }
        world
    }

    pub fn tracker_works(&self, now: u64) -> bool {
        now >= self.tracker_down_until
    }

    pub fn list(&self) -> Vec<Issue> {
        self.issues.values().map(|i| i.issue.clone()).collect()
    }

    pub fn issue_mut(&mut self, id: &str) -> Option<&mut Issue> {
        self.issues.get_mut(id).map(|i| &mut i.issue)
    }

    pub fn apply_labels(&mut self, id: &str, change: &LabelChange) {
        if let Some(issue) = self.issue_mut(id) {
            change.apply(&mut issue.labels);
        }
    }

    pub fn pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    /// Ends an agent now (it writes its exit file).
    pub fn end_agent(agent: &mut Agent, now: u64) {
        agent.alive = false;
        agent.exit = Some(ExitView {
            code: agent.code,
            signal: agent.signal,
            duration_ms: now.saturating_sub(agent.started_at),
            error: None,
            pid: Some(agent.pid),
        });
    }

    /// The world as `bdp run` observes it when it starts (see `bdp::observe`).
    pub fn observe(&self, state: &State) -> bdp::reconcile::World {
        let marked: Vec<MarkedGroup> = self
            .agents
            .iter()
            .filter(|a| a.alive)
            .map(|a| MarkedGroup {
                marker: a.marker.clone(),
                pgid: a.pid,
                leader: Some(a.pid),
                leader_start_time: Some(a.pid as u64),
                pids: vec![a.pid],
            })
            .collect();
        let mut attempts = BTreeMap::new();
        for (id, claim) in state.claimed() {
            let Some(a) = &claim.attempt else { continue };
            let mut view = AttemptView { attempt: a.number, ..AttemptView::default() };
            let agent = self.agents.iter().find(|g| &g.issue == id && g.attempt == a.number);
            if let Some(sp) = &a.spawned {
                view.alive = sp.start_time.is_some() && agent.is_some_and(|g| g.alive && g.pid == sp.pid);
                view.group_alive = view.alive || marked.iter().any(|g| g.pgid == sp.pgid && g.marker == a.marker);
            }
            view.exit = agent.and_then(|g| g.exit.clone());
            attempts.insert(id.clone(), view);
        }
        let lock_holders =
            state.locks.values().map(|l| (l.holder_pid, self.live_pids.contains(&l.holder_pid))).collect();
        let merges = state
            .claimed()
            .filter_map(|(id, c)| {
                c.merge.as_ref().filter(|m| m.commit.is_none())?;
                let view = match self.branches.get(id) {
                    Some(Branch { merged: Some(commit), .. }) => MergeView::Done { commit: commit.clone() },
                    Some(b) => MergeView::NotDone { tip: Some(b.head.clone()) },
                    None => MergeView::NotDone { tip: None },
                };
                Some((id.clone(), view))
            })
            .collect();
        bdp::reconcile::World {
            actor: ACTOR.into(),
            live_orchestrator: None,
            tracker: self
                .issues
                .iter()
                .map(|(id, i)| {
                    let view = TrackerView {
                        status: i.issue.status.clone(),
                        assignee: i.issue.assignee.clone(),
                        labels: i.issue.labels.clone(),
                    };
                    (id.clone(), view)
                })
                .collect(),
            attempts,
            marked,
            file_locks: Vec::new(),
            lock_files: self
                .lock_files
                .iter()
                .map(|(issue, pid)| LockFile {
                    name: bdp::reconcile::issue_lock(issue),
                    path: lock_path(issue),
                    holder_pid: Some(*pid),
                    holder_alive: self.live_pids.contains(pid),
                    flocked: false,
                })
                .collect(),
            lock_holders,
            worktrees: self
                .worktrees
                .iter()
                .map(|(issue, (path, branch))| WorktreeView {
                    path: path.clone(),
                    branch: Some(branch.clone()),
                    issue: Some(issue.clone()),
                    users: self.agents.iter().filter(|a| a.alive && &a.issue == issue).map(|a| a.pid).collect(),
                })
                .collect(),
            branches: self.branches.keys().map(|id| bdp::repo::branch_name(id)).collect(),
            other_worktrees: vec![],
            run_dirs: vec![],
            merges,
            bad_checkpoints: vec![],
            log_damage: None,
        }
    }
}

pub fn worktree_path(issue: &str) -> String {
    format!("/sim/.bdp/worktrees/{}", bdp::repo::escape_path_component(issue))
}

pub fn lock_path(issue: &str) -> String {
    format!("/sim/.bdp/locks/{}.lock", bdp::repo::escape_path_component(&bdp::reconcile::issue_lock(issue)))
}

/// The issue a path under `/sim/.bdp/locks/` or a branch stands for.
pub fn issue_of_branch(branch: &str) -> Option<String> {
    branch.strip_prefix(bdp::repo::BRANCH_PREFIX).and_then(bdp::repo::unescape_path_component)
}
