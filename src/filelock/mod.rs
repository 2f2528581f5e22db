//! File locks for agents (`bdp lock`): the pure rules. What a lock's path is (repo-relative, normalized, or
//! a glob), which locks conflict, the canonical order a set is taken in, and the deadlock a wait-for graph
//! holds. No I/O: `cli/commands/lock.rs` keeps the locks on disk and calls these.
//!
//! A plain path locks that file, or that directory and everything under it. A glob (`*` within one path
//! part, `?` one character, `**` any number of parts) locks every path it covers. Two locks conflict when
//! something could be covered by both, unless both are shared.

pub mod graph;
#[cfg(all(test, loom))]
mod loom_tests;
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

/// A waiter: who waits, for what, held by whom (as of its last look), and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub holder: String,
    pub paths: Vec<String>,
    /// The holders it waits for, as of its last look.
    pub waits_for: Vec<String>,
    /// The waiting process (`bdp lock`, `bdp mcp`): its wait ends with it.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// When it began to wait (ms since the epoch): the youngest waiter of a cycle gives up.
    pub since_ms: i64,
}

/// What an acquirer does after one look at the table, made under the table's guard: the look and what
/// follows are one step for every acquirer (the protocol `loom_tests` models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing stands in the way: take every path now.
    Grant,
    /// Others hold what it wants: wait (its wait says for whom), look again later.
    Wait { held_by: Vec<String> },
    /// Its wait closes a cycle of waiters and it is the youngest of the cycle: give up at once.
    GiveUp { held_by: Vec<String>, cycle: Vec<String> },
}

/// One look: `me` wants `wanted` (`shared` or not) and has waited since `since_ms`; `held` are the locks
/// held, `waiters` the other live waiters.
pub fn step(wanted: &[LockPath], shared: bool, me: &str, since_ms: i64, held: &[Entry], waiters: &[Waiting]) -> Step {
    let blocking = blockers(wanted, shared, me, held);
    if blocking.is_empty() {
        return Step::Grant;
    }
    let held_by: Vec<String> =
        blocking.iter().map(|e| e.holder.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = waiters
        .iter()
        .filter(|w| w.holder != me)
        .map(|w| (w.holder.clone(), w.waits_for.iter().cloned().collect()))
        .collect();
    graph.insert(me.to_string(), held_by.iter().cloned().collect());
    if let Some(cycle) = cycle_through(me, &graph) {
        let since =
            |h: &str| if h == me { Some(since_ms) } else { waiters.iter().find(|w| w.holder == h).map(|w| w.since_ms) };
        let youngest = cycle.iter().filter_map(|h| Some((since(h)?, h.clone()))).max();
        if youngest.is_some_and(|(_, h)| h == me) {
            return Step::GiveUp { held_by, cycle };
        }
    }
    Step::Wait { held_by }
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
