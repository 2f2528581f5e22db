//! File locks for agents (`bdp lock`): the pure rules. What a lock's path is (repo-relative, normalized, or
//! a glob), which locks conflict, the canonical order a set is taken in, and the deadlock a wait-for graph
//! holds. No I/O: `cli/commands/lock.rs` keeps the locks on disk and calls these.
//!
//! A plain path locks that file, or that directory and everything under it. A glob (`*` within one path
//! part, `?` one character, `**` any number of parts) locks every path it covers. Two locks conflict when
//! something could be covered by both, unless both are shared.

pub mod graph;
pub mod path;
pub mod zones;

pub use graph::cycle_through;
pub use path::{LockPath, PathError};

use serde::{Deserialize, Serialize};

/// One held lock: a path (or glob) held by a holder, shared or exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub shared: bool,
    /// Who holds it: `ISSUE#ATTEMPT` under `bdp run`, or the `--holder` given.
    pub holder: String,
    /// The holder's process (its start time tells it from a later one with the same pid).
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// When it was taken (RFC 3339).
    pub since: String,
    /// Milliseconds since the epoch after which it is stale, when it was given a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

/// Whether a lock on `a` and one on `b` conflict (`shared` each): never two shared ones; otherwise when
/// some path could fall under both.
pub fn conflicts(a: &LockPath, a_shared: bool, b: &LockPath, b_shared: bool) -> bool {
    !(a_shared && b_shared) && a.overlaps(b)
}

/// The held entries (of other holders) that stand in the way of `holder` taking `wanted`.
pub fn blockers<'a>(wanted: &[LockPath], shared: bool, holder: &str, held: &'a [Entry]) -> Vec<&'a Entry> {
    held.iter()
        .filter(|e| e.holder != holder)
        .filter(|e| {
            let Ok(theirs) = LockPath::parse(&e.path) else { return true };
            wanted.iter().any(|w| conflicts(w, shared, &theirs, e.shared))
        })
        .collect()
}

/// `paths` in the one order every acquirer takes them (sorted, without repeats), so that two acquirers of
/// overlapping sets never each hold part of what the other wants.
pub fn canonical(mut paths: Vec<LockPath>) -> Vec<LockPath> {
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> LockPath {
        LockPath::parse(s).unwrap()
    }

    #[test]
    fn shared_goes_with_shared_and_exclusive_with_nothing() {
        assert!(!conflicts(&p("Cargo.toml"), true, &p("Cargo.toml"), true));
        assert!(conflicts(&p("Cargo.toml"), true, &p("Cargo.toml"), false));
        assert!(conflicts(&p("Cargo.toml"), false, &p("Cargo.toml"), false));
        assert!(!conflicts(&p("Cargo.toml"), false, &p("Cargo.lock"), false));
    }

    #[test]
    fn blockers_are_other_holders_conflicting_locks() {
        let entry = |path: &str, holder: &str, shared: bool| Entry {
            path: path.into(),
            shared,
            holder: holder.into(),
            pid: 1,
            start_time: None,
            since: "t".into(),
            expires_ms: None,
        };
        let held = [entry("src/db/**", "a#1", false), entry("README.md", "b#1", true), entry("x", "me", false)];
        let got: Vec<&str> = blockers(&[p("src/db/schema.sql"), p("README.md"), p("x")], false, "me", &held)
            .iter()
            .map(|e| e.holder.as_str())
            .collect();
        assert_eq!(got, ["a#1", "b#1"]);
        assert!(blockers(&[p("README.md")], true, "me", &held).is_empty(), "shared with shared");
    }

    #[test]
    fn the_canonical_order_is_sorted_without_repeats() {
        let got = canonical(vec![p("b"), p("a"), p("./b")]);
        assert_eq!(got, [p("a"), p("b")]);
    }
}
