//! Trackers: the user's issue store, behind one [`Tracker`] trait with three backends.
//!
//! - [`jsonl::JsonlTracker`] reads and writes `.beads/issues.jsonl` directly (the embedded default: no
//!   tracker binary needed). Byte-preserving: untouched lines and unknown fields survive every write.
//! - [`cli_backend::CliTracker`] drives the `bd` or `br` CLI with `--json`, a timeout on every call, and
//!   claims verified by reading back.
//!
//! [`TrackerKind::Auto`] picks by what the repo holds and what is on PATH ([`select`]); it refuses to
//! write the JSONL behind a database's back. Every write made on behalf of the orchestrator is reported to a
//! [`TrackerEvents`] sink as the matching `Tracker*` event, after the tracker accepted it.
//!
//! This is the imperative shell: it does I/O and runs processes. Readiness and ordering live in the pure
//! `plan` module; the `jsonl` backend uses them for `ready`.

pub mod cli_backend;
pub mod jsonl;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::Event;
use crate::plan::{Graph, Issue};

pub use cli_backend::{CliTracker, Flavor};
pub use jsonl::JsonlTracker;

/// Which backend to use (`--tracker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TrackerKind {
    /// bd or br if the repo holds their database and the binary is on PATH, else the JSONL file.
    Auto,
    /// `.beads/issues.jsonl`, read and written directly.
    Jsonl,
    /// The bd CLI (beads, Dolt-backed).
    Bd,
    /// The br CLI (beads_rust, SQLite-backed).
    Br,
}

/// Everything that can go wrong talking to a tracker.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("{path}:{line}: {message}")]
    Parse { path: PathBuf, line: usize, message: String },
    #[error("{path}:{line}: duplicate issue id {id} (first at line {first})")]
    DuplicateId { path: PathBuf, line: usize, first: usize, id: String },
    #[error("no .beads directory in {0}")]
    NoBeadsDir(PathBuf),
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no issue {0} in the tracker")]
    NotFound(String),
    #[error("{id} is already claimed by {holder}")]
    AlreadyClaimed { id: String, holder: String },
    #[error("{id} cannot be claimed: its status is {status}")]
    NotClaimable { id: String, status: String },
    #[error("the claim of {id} did not hold: {detail}")]
    ClaimNotVerified { id: String, detail: String },
    #[error("`{command}` did not finish within {}s and was killed", timeout.as_secs_f64())]
    Timeout { command: String, timeout: Duration },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {output}")]
    CommandFailed { command: String, status: String, output: String },
    #[error("`{command}` printed output bdp cannot read: {message}")]
    BadOutput { command: String, message: String },
    #[error("{binary} not found on PATH")]
    BinaryMissing { binary: &'static str },
    #[error("this repo holds a {what} database ({path}) but {binary} is not on PATH")]
    DatabaseWithoutBinary { what: &'static str, path: PathBuf, binary: &'static str },
    #[error("the tracker accepted the change, but recording it in the event log failed: {0}")]
    Events(String),
}

pub type TrackerResult<T> = Result<T, TrackerError>;

/// Where a tracker's writes are recorded: the event log (on the orchestrator), or a Vec in tests.
pub trait TrackerEvents {
    fn record(&mut self, event: Event) -> Result<(), String>;
}

impl TrackerEvents for Vec<Event> {
    fn record(&mut self, event: Event) -> Result<(), String> {
        self.push(event);
        Ok(())
    }
}

/// Which issues `list` returns. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Any of these statuses.
    pub statuses: Vec<String>,
    /// Has this label.
    pub label: Option<String>,
    /// This issue's descendants over parent-child edges (recursive), as bd's `--parent`.
    pub parent: Option<String>,
}

impl ListFilter {
    /// Applies the filter to everything a tracker holds (the same code for every backend).
    pub fn apply(&self, issues: Vec<Issue>) -> Vec<Issue> {
        let keep = self.matching(&issues);
        issues.into_iter().zip(keep).filter_map(|(issue, k)| k.then_some(issue)).collect()
    }

    /// For each issue, whether the filter keeps it.
    pub fn matching(&self, issues: &[Issue]) -> Vec<bool> {
        {
            let graph = Graph::new(issues);
            let under: Option<Vec<bool>> = self.parent.as_ref().map(|p| {
                let mut under = vec![false; issues.len()];
                let mut stack: Vec<usize> = graph.get(p).map(|r| graph.children[r].clone()).unwrap_or_default();
                while let Some(i) = stack.pop() {
                    if !std::mem::replace(&mut under[i], true) {
                        stack.extend(graph.children[i].iter().copied());
                    }
                }
                under
            });
            issues
                .iter()
                .enumerate()
                .map(|(i, issue)| {
                    (self.statuses.is_empty() || self.statuses.contains(&issue.status))
                        && self.label.as_ref().is_none_or(|l| issue.labels.contains(l))
                        && under.as_ref().is_none_or(|u| u[i])
                })
                .collect()
        }
    }
}

pub use crate::plan::LabelChange;

/// How many processes a CLI tracker started, by the issue each concerned (a claim, a label, a close) or
/// for no single one (a list, an export, a write to several issues at once). The JSONL tracker starts
/// none and counts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub per_issue: std::collections::BTreeMap<String, u32>,
    pub other: u32,
}

impl CallCounts {
    pub fn is_empty(&self) -> bool {
        self.per_issue.is_empty() && self.other == 0
    }

    pub fn total(&self) -> u64 {
        self.per_issue.values().map(|&n| u64::from(n)).sum::<u64>() + u64::from(self.other)
    }

    pub fn count(&mut self, issue: Option<&str>) {
        match issue {
            Some(id) => *self.per_issue.entry(id.to_string()).or_default() += 1,
            None => self.other += 1,
        }
    }
}

/// One issue store. Writes report their event to `events` after the tracker accepted them.
pub trait Tracker: Send + Sync {
    /// `jsonl`, `bd` or `br`: the `backend` of the events it records.
    fn name(&self) -> &'static str;
    /// Every issue (closed included), filtered.
    fn list(&self, filter: &ListFilter) -> TrackerResult<Vec<Issue>>;
    fn show(&self, id: &str) -> TrackerResult<Issue>;
    /// The ready set by the tracker's own rules (for `jsonl`: bd's rules, in bdp's order).
    fn ready(&self) -> TrackerResult<Vec<Issue>>;
    /// Compare-and-set: `open` → `in_progress` with `assignee = actor`. Succeeds without a write when
    /// `actor` already holds it; fails with [`TrackerError::AlreadyClaimed`] when someone else does.
    fn claim(&self, id: &str, actor: &str, events: &mut dyn TrackerEvents) -> TrackerResult<Issue>;
    /// Back to `open`, assignee cleared.
    fn release(&self, id: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()>;
    /// Sets the status (closing goes through [`Tracker::close`], which records the reason).
    fn set_status(&self, id: &str, status: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()>;
    fn add_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()>;
    fn remove_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()>;
    fn close(&self, id: &str, reason: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()>;
    /// Adds and removes labels in one write where the backend can. Nothing is read first: the caller knows
    /// which labels it put on (adding a label that is on, or removing one that is not, changes nothing).
    fn change_labels(&self, id: &str, change: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        for label in &change.remove {
            self.remove_label(id, label, events)?;
        }
        for label in &change.add {
            self.add_label(id, label, events)?;
        }
        Ok(())
    }
    /// [`Tracker::claim`] and a label change, in one write where the backend can.
    fn claim_with_labels(
        &self,
        id: &str,
        actor: &str,
        labels: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> TrackerResult<Issue> {
        let issue = self.claim(id, actor, events)?;
        if !labels.is_empty() {
            self.change_labels(id, labels, events)?;
        }
        Ok(issue)
    }
    /// [`Tracker::release`] and a label change, in one write where the backend can.
    fn release_with_labels(&self, id: &str, labels: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        if !labels.is_empty() {
            self.change_labels(id, labels, events)?;
        }
        self.release(id, events)
    }
    /// Claims several issues, each with the same label change: one call where the backend can, and each
    /// issue's own result (a refused batch is made again one issue at a time, so one refusal costs only its
    /// issue).
    fn claim_many(
        &self,
        ids: &[String],
        actor: &str,
        labels: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> Vec<TrackerResult<Issue>> {
        ids.iter().map(|id| self.claim_with_labels(id, actor, labels, events)).collect()
    }
    /// Closes several issues with the same reason; one call where the backend can.
    fn close_many(&self, ids: &[String], reason: &str, events: &mut dyn TrackerEvents) -> Vec<TrackerResult<()>> {
        ids.iter().map(|id| self.close(id, reason, events)).collect()
    }
    /// The same label change on several issues; one call where the backend can.
    fn change_labels_many(
        &self,
        ids: &[String],
        change: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> Vec<TrackerResult<()>> {
        ids.iter().map(|id| self.change_labels(id, change, events)).collect()
    }
    /// The calls made since the last time this was asked, for trackers that start a process per call.
    fn take_calls(&self) -> Option<CallCounts> {
        None
    }
    /// Starts gathering writes to make them in one go at [`Tracker::end_batch`] (a backend that cannot
    /// batch writes each at once). Claims made inside a batch hold only once `end_batch` succeeded.
    fn begin_batch(&self) -> TrackerResult<()> {
        Ok(())
    }
    /// Makes the gathered writes durable; an error means none of them was made.
    fn end_batch(&self) -> TrackerResult<()> {
        Ok(())
    }
}

/// What a claim finds before writing: `Ok(true)` when `actor` already holds the issue.
pub(crate) fn check_claimable(issue: &Issue, actor: &str) -> TrackerResult<bool> {
    let holder = issue.assignee.as_deref().filter(|a| !a.is_empty());
    match (issue.status.as_str(), holder) {
        ("in_progress", Some(h)) if h == actor => Ok(true),
        ("open" | "in_progress", Some(h)) if h != actor => {
            Err(TrackerError::AlreadyClaimed { id: issue.id.clone(), holder: h.to_string() })
        }
        ("open", _) => Ok(false),
        (status, _) => Err(TrackerError::NotClaimable { id: issue.id.clone(), status: status.to_string() }),
    }
}

pub(crate) fn record(events: &mut dyn TrackerEvents, event: Event) -> TrackerResult<()> {
    events.record(event).map_err(TrackerError::Events)
}

/// The first executable called `name` on PATH.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A tracker database found in `.beads/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// bd's Dolt store (`.beads/embeddeddolt/` or `.beads/dolt/`).
    Dolt(PathBuf),
    /// A SQLite store (`.beads/*.db`): br's, or a pre-Dolt bd's.
    Sqlite(PathBuf),
}

pub fn find_database(beads_dir: &Path) -> Option<Database> {
    for dir in ["embeddeddolt", "dolt"] {
        let p = beads_dir.join(dir);
        if p.is_dir() {
            return Some(Database::Dolt(p));
        }
    }
    let mut dbs: Vec<PathBuf> = std::fs::read_dir(beads_dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "db") && p.is_file())
        .collect();
    dbs.sort();
    dbs.into_iter().next().map(Database::Sqlite)
}

/// The backend `kind` resolves to in `root`, given which binaries are on PATH (`bd`, `br`).
///
/// `auto`: a Dolt database → bd; a SQLite database → br, else bd; no database → jsonl. A database whose
/// binary is missing is an error: writing the JSONL behind its back would be undone by its next export.
pub fn resolve(
    kind: TrackerKind,
    root: &Path,
    bd: Option<PathBuf>,
    br: Option<PathBuf>,
) -> TrackerResult<(TrackerKind, Option<PathBuf>)> {
    match kind {
        TrackerKind::Jsonl => Ok((TrackerKind::Jsonl, None)),
        TrackerKind::Bd => bd.map(|b| (TrackerKind::Bd, Some(b))).ok_or(TrackerError::BinaryMissing { binary: "bd" }),
        TrackerKind::Br => br.map(|b| (TrackerKind::Br, Some(b))).ok_or(TrackerError::BinaryMissing { binary: "br" }),
        TrackerKind::Auto => match find_database(&root.join(".beads")) {
            None => Ok((TrackerKind::Jsonl, None)),
            Some(Database::Dolt(path)) => match bd {
                Some(b) => Ok((TrackerKind::Bd, Some(b))),
                None => Err(TrackerError::DatabaseWithoutBinary { what: "bd (Dolt)", path, binary: "bd" }),
            },
            Some(Database::Sqlite(path)) => match (br, bd) {
                (Some(b), _) => Ok((TrackerKind::Br, Some(b))),
                (None, Some(b)) => Ok((TrackerKind::Bd, Some(b))),
                (None, None) => Err(TrackerError::DatabaseWithoutBinary { what: "br (SQLite)", path, binary: "br" }),
            },
        },
    }
}

/// Opens the tracker `kind` selects for the repo at `root`.
pub fn select(kind: TrackerKind, root: &Path, timeout: Duration) -> TrackerResult<Box<dyn Tracker>> {
    let (kind, binary) = resolve(kind, root, find_on_path("bd"), find_on_path("br"))?;
    Ok(match (kind, binary) {
        (TrackerKind::Bd, Some(b)) => Box::new(CliTracker::new(Flavor::Bd, b, root.to_path_buf(), timeout)),
        (TrackerKind::Br, Some(b)) => Box::new(CliTracker::new(Flavor::Br, b, root.to_path_buf(), timeout)),
        _ => Box::new(JsonlTracker::new(root.join(".beads"))),
    })
}

/// An RFC 3339 UTC timestamp with whole seconds, as bd writes them.
pub(crate) fn now_string() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).map(|t| t.to_string()).unwrap_or_else(|_| now.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_by_database_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join(".beads")).unwrap();
        let bd = Some(PathBuf::from("/x/bd"));
        let br = Some(PathBuf::from("/x/br"));
        assert_eq!(resolve(TrackerKind::Auto, root, bd.clone(), br.clone()).unwrap().0, TrackerKind::Jsonl);
        std::fs::write(root.join(".beads/beads.db"), b"").unwrap();
        assert_eq!(resolve(TrackerKind::Auto, root, bd.clone(), br.clone()).unwrap().0, TrackerKind::Br);
        assert_eq!(resolve(TrackerKind::Auto, root, bd.clone(), None).unwrap().0, TrackerKind::Bd);
        let err = resolve(TrackerKind::Auto, root, None, None).unwrap_err();
        assert!(matches!(err, TrackerError::DatabaseWithoutBinary { binary: "br", .. }), "{err}");
        assert_eq!(resolve(TrackerKind::Jsonl, root, None, None).unwrap().0, TrackerKind::Jsonl);
        std::fs::create_dir(root.join(".beads/embeddeddolt")).unwrap();
        assert_eq!(resolve(TrackerKind::Auto, root, bd, br.clone()).unwrap().0, TrackerKind::Bd);
        assert!(matches!(
            resolve(TrackerKind::Auto, root, None, br).unwrap_err(),
            TrackerError::DatabaseWithoutBinary { binary: "bd", .. }
        ));
        assert!(matches!(
            resolve(TrackerKind::Bd, root, None, None).unwrap_err(),
            TrackerError::BinaryMissing { binary: "bd" }
        ));
    }

    #[test]
    fn claimable_rules() {
        let mut issue = Issue::from_json(&serde_json::json!({"id": "a", "status": "open"})).unwrap();
        assert!(!check_claimable(&issue, "me").unwrap());
        issue.status = "in_progress".into();
        issue.assignee = Some("me".into());
        assert!(check_claimable(&issue, "me").unwrap());
        assert!(matches!(check_claimable(&issue, "you"), Err(TrackerError::AlreadyClaimed { .. })));
        issue.status = "closed".into();
        assert!(matches!(check_claimable(&issue, "me"), Err(TrackerError::NotClaimable { .. })));
    }
}
