//! What bdp observed of the world, as plain data: the tracker's view of each issue, the processes of
//! attempts, lock files, worktrees, branches, merges and checkpoints. The shell fills it in
//! ([`crate::observe`]); [`super::diff`] compares it with the log's state.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::IssueId;

/// Everything recovery and audit looked at, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct World {
    /// The assignee bdp claims issues as.
    pub actor: String,
    /// Another process holds the orchestrator lock (a run is live): its pid. Findings about what that
    /// run is doing right now are left to it.
    pub live_orchestrator: Option<u32>,
    /// The tracker's view of every issue it knows.
    pub tracker: BTreeMap<IssueId, TrackerView>,
    /// The current attempt of each claimed issue, as the processes and the attempt's files show it.
    pub attempts: BTreeMap<IssueId, AttemptView>,
    /// Processes that carry a bdp attempt marker for this repository, grouped by process group.
    pub marked: Vec<MarkedGroup>,
    /// Lock files under `.bdp/locks/`.
    pub lock_files: Vec<LockFile>,
    /// Agents' file locks under `.bdp/file-locks/` (`bdp lock`).
    pub file_locks: Vec<FileLockView>,
    /// Holders of the log's locks: pid → alive (pid and start time match, not a zombie).
    pub lock_holders: BTreeMap<u32, bool>,
    /// Worktrees under `.bdp/worktrees/`.
    pub worktrees: Vec<WorktreeView>,
    /// `bdp/*` branches.
    pub branches: Vec<String>,
    /// Worktrees outside `.bdp/worktrees/` (the main one, the user's): path and checked-out branch.
    pub other_worktrees: Vec<(String, Option<String>)>,
    /// Run directories under `.bdp/runs/` (one per issue), by path.
    pub run_dirs: Vec<String>,
    /// For each claim with a merge started and not recorded as done: is the branch in the base branch?
    pub merges: BTreeMap<IssueId, MergeView>,
    /// Checkpoints in the index that do not match the log (seq, why).
    pub bad_checkpoints: Vec<(u64, String)>,
    /// The log's chain or records are damaged (what `bdp verify` says).
    pub log_damage: Option<String>,
}

/// One issue as the tracker has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackerView {
    pub status: String,
    pub assignee: Option<String>,
    pub labels: Vec<String>,
}

/// The current attempt of a claimed issue, seen from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    pub attempt: u32,
    /// The recorded pid runs and started when the log says (not a zombie). Never set when the log has
    /// no start time.
    pub alive: bool,
    /// The recorded pid exists but is another process (a reused pid), or the log has no start time to
    /// tell: its start time.
    pub pid_reused: Option<u64>,
    /// Some process of the recorded group still runs (the wrapper may be gone, its children not).
    pub group_alive: bool,
    /// The wrapper's exit file.
    pub exit: Option<ExitView>,
    /// The exit file is there but cannot be read.
    pub exit_unreadable: Option<String>,
}

/// The wrapper's `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitView {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub pid: Option<u32>,
}

/// A process group whose members carry `BDP_MARKER=<marker>` (session/issue/attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkedGroup {
    pub marker: String,
    pub pgid: u32,
    /// The group leader (the wrapper), when it is among the members.
    pub leader: Option<u32>,
    pub leader_start_time: Option<u64>,
    pub pids: Vec<u32>,
}

/// A file under `.bdp/locks/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockFile {
    /// The log's lock name it stands for (unescaped file name, `.lock` dropped).
    pub name: String,
    pub path: String,
    /// Holder written in the file (`pid N start T since TS`), if readable.
    pub holder_pid: Option<u32>,
    /// The holder runs (pid and start time match).
    pub holder_alive: bool,
    /// Some process holds an flock on the file.
    pub flocked: bool,
}

/// A worktree under `.bdp/worktrees/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorktreeView {
    pub path: String,
    pub branch: Option<String>,
    /// The issue its directory name stands for.
    pub issue: Option<IssueId>,
    /// Processes whose working directory is inside it.
    pub users: Vec<u32>,
}

/// Where an unfinished merge stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MergeView {
    /// The branch's tip is in the base branch: the merge happened; the commit that brought it.
    Done { commit: String },
    /// Not in the base branch (or the branch is gone: `tip` is `None`).
    NotDone { tip: Option<String> },
}

/// One of the agents' file locks, as its file says, with what is alive of its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileLockView {
    /// The lock's own file.
    pub file: String,
    pub path: String,
    pub holder: String,
    pub pid: u32,
    /// Its holder process runs (pid and start time).
    pub alive: bool,
    /// Its TTL passed.
    pub expired: bool,
}
