//! What is alive right now, for the commands that look at a repo from outside a run (`status`, `clean`,
//! `logs --follow`): is an orchestrator holding the orchestrator lock, and the log's state plus the
//! timestamps of chosen records.
//!
//! It only looks: it never takes a lock for longer than one probe and never writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::CliResult;
use crate::log::lock::Holder;
use crate::log::{LogError, load};
use crate::process;
use crate::repo::Repo;
use crate::state::State;

pub use crate::process::flock_held;

/// The orchestrator as seen from outside: who the lock file names, and whether its flock is held.
#[derive(Debug, Clone)]
pub struct OrchestratorSeen {
    /// The lock file exists.
    pub lock_file: bool,
    /// Someone holds the flock on it: an orchestrator is running.
    pub running: bool,
    /// What the file says (the current holder when `running`, else the last one).
    pub holder: Option<Holder>,
}

impl OrchestratorSeen {
    pub fn look(repo: &Repo) -> OrchestratorSeen {
        let path = repo.orchestrator_lock_path();
        let lock_file = path.exists();
        let running = lock_file && flock_held(&path).unwrap_or(false);
        OrchestratorSeen { lock_file, running, holder: Holder::read(&path) }
    }

    /// Whether the pid the lock file names is alive (and started when the file says).
    pub fn holder_alive(&self) -> bool {
        self.holder.as_ref().is_some_and(|h| process::is_alive(h.pid, h.start_time))
    }
}

/// The log's state (checkpoint + tail, read-only), or an empty state when there is no log yet.
pub fn state(repo: &Repo) -> CliResult<State> {
    if !repo.events_dir().is_dir() {
        return Ok(State::new());
    }
    match load::read(repo) {
        Ok(loaded) => Ok(loaded.state),
        Err(LogError::NoLog { .. }) => Ok(State::new()),
        Err(e) => Err(crate::error::CliError::from(e).with_hint("`bdp verify` says exactly where the log is damaged")),
    }
}

/// The timestamps of the records `seqs`, each found by bisection (a few small reads, whatever the length
/// of the log: see `log::seek`).
pub fn timestamps(repo: &Repo, seqs: impl IntoIterator<Item = u64>) -> CliResult<BTreeMap<u64, String>> {
    let mut wanted: Vec<u64> = seqs.into_iter().collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let records = crate::log::seek::records_at(&repo.events_dir(), &wanted)?;
    Ok(records.into_iter().map(|r| (r.seq, r.ts)).collect())
}

/// Milliseconds from an RFC 3339 timestamp to now (0 if it is unreadable or in the future).
pub fn elapsed_ms(ts: &str) -> Option<u64> {
    let then: jiff::Timestamp = ts.parse().ok()?;
    let ms = jiff::Timestamp::now().as_millisecond() - then.as_millisecond();
    Some(ms.max(0) as u64)
}

/// Entries of a directory (empty when it does not exist), sorted by name.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort();
    out
}
