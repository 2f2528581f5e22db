//! The ready set, by bd's rules (see beads-format.md, "Readiness"), and the problems found on the way.
//!
//! An issue is *active* when its status is neither `closed` nor `pinned`; only active issues block.
//! An issue is **ready** when all of these hold:
//! - its status is `open` (an unknown, custom status is never ready and is reported as a problem);
//! - it is not pinned, not ephemeral, and its type is not one of [`EXCLUDED_TYPES`];
//! - `defer_until` is absent or not after `now` (an unparseable one is reported and counts as deferred);
//! - no `blocks` or `conditional-blocks` edge points to an active issue (an edge to an id that is not in the
//!   tracker does not block, as in bd, but is reported);
//! - every `waits-for` gate is met: with the default `all-children` gate, no child of the spawner is active;
//!   with `{"gate":"any-children"}`, the spawner has no children, or one of them is closed, or none is active;
//! - no ancestor (over `parent-child` edges) is blocked by the rules above or deferred into the future.
//!   bd checks one level of parents; bdp applies the rule transitively (a grandchild of a blocked epic is
//!   blocked too), which is what "a child of a blocked parent is blocked" means when applied to the child.
//!
//! A `parent-child` edge alone never blocks the child. Pure: `now` is a parameter; no I/O.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;

use super::issue::{EXCLUDED_TYPES, Issue};

/// Something in the data a user should know about. Never fatal for planning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A status beads does not define: the issue is treated as not ready.
    UnknownStatus { id: String, status: String },
    /// A blocking, waits-for or parent-child edge to an id the tracker does not hold.
    MissingDependency { id: String, depends_on: String, dep_type: String },
    /// Two records with the same id; the first one is used.
    DuplicateId { id: String },
    /// A timestamp field that does not parse as RFC 3339.
    BadTimestamp { id: String, field: String, value: String },
    /// Issues that wait on each other (over blocking edges, or a parent-child loop), in cycle order.
    Cycle { ids: Vec<String> },
    /// A path an issue declares (`paths:` label, metadata `files`) that is not one in the repository: it
    /// is left out of the collisions.
    BadPath { detail: String },
}

/// Why an issue is not ready (the first reason found, in the order of the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    Status,
    Pinned,
    Ephemeral,
    ExcludedType,
    Deferred,
    Blocked,
    ParentBlocked,
    ParentDeferred,
}

/// The issue index shared by the planner's passes: id → position, parent-child children.
#[derive(Debug)]
pub struct Graph<'a> {
    pub issues: &'a [Issue],
    pub index: HashMap<&'a str, usize>,
    /// For each issue, its children (issues with a `parent-child` edge to it).
    pub children: Vec<Vec<usize>>,
    /// For each issue, its parent's position, if the parent is in the tracker.
    pub parent: Vec<Option<usize>>,
    pub problems: Vec<Problem>,
}

impl<'a> Graph<'a> {
    pub fn new(issues: &'a [Issue]) -> Graph<'a> {
        let mut index = HashMap::with_capacity(issues.len());
        let mut problems = Vec::new();
        for (i, issue) in issues.iter().enumerate() {
            if index.insert(issue.id.as_str(), i).is_some() {
                // Keep the first record, as the JSONL reader would have refused the file anyway.
                index.insert(issue.id.as_str(), index_of_first(issues, &issue.id));
                problems.push(Problem::DuplicateId { id: issue.id.clone() });
            }
        }
        let mut children = vec![Vec::new(); issues.len()];
        let mut parent = vec![None; issues.len()];
        for (i, issue) in issues.iter().enumerate() {
            if index.get(issue.id.as_str()) != Some(&i) {
                continue;
            }
            for dep in &issue.dependencies {
                let relevant = dep.is_blocking() || dep.is_waits_for() || dep.is_parent_child();
                match index.get(dep.depends_on_id.as_str()) {
                    Some(&p) if dep.is_parent_child() && parent[i].is_none() => {
                        parent[i] = Some(p);
                        children[p].push(i);
                    }
                    Some(_) => {}
                    None if relevant => problems.push(Problem::MissingDependency {
                        id: issue.id.clone(),
                        depends_on: dep.depends_on_id.clone(),
                        dep_type: dep.dep_type.clone(),
                    }),
                    None => {}
                }
            }
        }
        Graph { issues, index, children, parent, problems }
    }

    /// Whether position `i` is the record the index uses for its id (false for later duplicates).
    pub fn is_canonical(&self, i: usize) -> bool {
        self.index.get(self.issues[i].id.as_str()) == Some(&i)
    }

    pub fn get(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The ids on a parent-child loop that starts at `i`, if walking up from `i` comes back to a visited
    /// issue.
    fn parent_loop(&self, i: usize) -> Option<Vec<usize>> {
        let mut seen = vec![i];
        let mut at = i;
        while let Some(p) = self.parent[at] {
            if let Some(pos) = seen.iter().position(|&s| s == p) {
                return Some(seen[pos..].to_vec());
            }
            seen.push(p);
            at = p;
        }
        None
    }
}

fn index_of_first(issues: &[Issue], id: &str) -> usize {
    issues.iter().position(|i| i.id == id).unwrap_or(0)
}

/// The readiness of every issue.
#[derive(Debug)]
pub struct Readiness {
    /// `None` = ready; else the first reason it is not.
    pub verdict: Vec<Option<NotReady>>,
    /// Blocked by its own edges or an ancestor's (the "blocked" of `bd blocked`), whatever its status.
    pub blocked: Vec<bool>,
    pub problems: Vec<Problem>,
}

impl Readiness {
    pub fn is_ready(&self, i: usize) -> bool {
        self.verdict[i].is_none()
    }
    /// Positions of the ready issues, in file order.
    pub fn ready(&self) -> impl Iterator<Item = usize> + '_ {
        self.verdict.iter().enumerate().filter(|(_, v)| v.is_none()).map(|(i, _)| i)
    }
}

/// A deferral in the future, or `Err` for an unparseable value.
fn deferred(issue: &Issue, now: Timestamp) -> Result<bool, Problem> {
    let Some(text) = issue.defer_until.as_deref().filter(|t| !t.is_empty()) else { return Ok(false) };
    match parse_timestamp(text) {
        Some(t) => Ok(t > now),
        None => Err(Problem::BadTimestamp { id: issue.id.clone(), field: "defer_until".into(), value: text.into() }),
    }
}

/// RFC 3339 with any offset, or a bare date (midnight UTC).
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t);
    }
    let date = text.parse::<jiff::civil::Date>().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// Applies bd's readiness rules to every issue.
pub fn readiness(graph: &Graph<'_>, now: Timestamp) -> Readiness {
    let issues = graph.issues;
    let n = issues.len();
    let mut problems = Vec::new();
    let active = |i: usize| issues[i].is_active();

    // Own blockers: blocks / conditional-blocks to an active issue, or an unmet waits-for gate.
    let mut own_blocked = vec![false; n];
    for (i, issue) in issues.iter().enumerate() {
        if !active(i) || !graph.is_canonical(i) {
            continue;
        }
        for dep in &issue.dependencies {
            let Some(t) = graph.get(&dep.depends_on_id) else { continue };
            if dep.is_blocking() && active(t) {
                own_blocked[i] = true;
            } else if dep.is_waits_for() {
                let kids = &graph.children[t];
                let any_active = kids.iter().any(|&c| active(c));
                let unmet = if dep.waits_for_any_child() {
                    !kids.is_empty() && any_active && !kids.iter().any(|&c| issues[c].status == "closed")
                } else {
                    any_active
                };
                own_blocked[i] |= unmet;
            }
        }
    }

    let mut own_deferred = vec![false; n];
    for (i, issue) in issues.iter().enumerate() {
        match deferred(issue, now) {
            Ok(d) => own_deferred[i] = d,
            Err(p) => {
                own_deferred[i] = true;
                problems.push(p);
            }
        }
        if !issue.has_known_status() {
            problems.push(Problem::UnknownStatus { id: issue.id.clone(), status: issue.status.clone() });
        }
    }

    // Inherit down the parent-child tree (memoized walk up; loops are reported once and end the walk).
    #[derive(Clone, Copy, PartialEq)]
    enum Inherit {
        Unknown,
        Clear,
        Blocked,
        Deferred,
    }
    // What an issue passes on to its children: what it inherits, else its own state. A deferred parent
    // only counts while active (a closed epic neither blocks nor defers its children).
    let passes = |i: usize, inherited: Inherit| -> Inherit {
        if inherited != Inherit::Clear {
            inherited
        } else if own_blocked[i] {
            Inherit::Blocked
        } else if own_deferred[i] && active(i) {
            Inherit::Deferred
        } else {
            Inherit::Clear
        }
    };
    let mut inherit = vec![Inherit::Unknown; n];
    let mut reported_loop = vec![false; n];
    for start in 0..n {
        if inherit[start] != Inherit::Unknown {
            continue;
        }
        // Walk up to an issue whose inheritance is known, the root, or a loop.
        let mut chain = Vec::new();
        let mut on_chain = std::collections::HashSet::new();
        let mut at = Some(start);
        while let Some(i) = at {
            if inherit[i] != Inherit::Unknown {
                break;
            }
            if !on_chain.insert(i) {
                if let Some(cycle) = graph.parent_loop(i)
                    && !cycle.iter().any(|&c| reported_loop[c])
                {
                    for &c in &cycle {
                        reported_loop[c] = true;
                    }
                    let ids = cycle.iter().map(|&c| issues[c].id.clone()).collect();
                    problems.push(Problem::Cycle { ids });
                }
                at = None;
                break;
            }
            chain.push(i);
            at = graph.parent[i];
        }
        let mut above = match at {
            Some(i) => passes(i, inherit[i]),
            None => Inherit::Clear,
        };
        for &i in chain.iter().rev() {
            inherit[i] = above;
            above = passes(i, above);
        }
    }

    let mut verdict = vec![None; n];
    let mut blocked = vec![false; n];
    for (i, issue) in issues.iter().enumerate() {
        blocked[i] = own_blocked[i] || inherit[i] == Inherit::Blocked;
        verdict[i] = if !graph.is_canonical(i) || issue.status != "open" {
            Some(NotReady::Status)
        } else if issue.pinned {
            Some(NotReady::Pinned)
        } else if issue.ephemeral {
            Some(NotReady::Ephemeral)
        } else if issue.issue_type.as_deref().is_some_and(|t| EXCLUDED_TYPES.contains(&t)) {
            Some(NotReady::ExcludedType)
        } else if own_deferred[i] {
            Some(NotReady::Deferred)
        } else if own_blocked[i] {
            Some(NotReady::Blocked)
        } else if inherit[i] == Inherit::Blocked {
            Some(NotReady::ParentBlocked)
        } else if inherit[i] == Inherit::Deferred {
            Some(NotReady::ParentDeferred)
        } else {
            None
        };
    }
    Readiness { verdict, blocked, problems }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ready_ids(lines: &[Value], now: &str) -> (Vec<String>, Vec<Problem>) {
        let issues: Vec<Issue> = lines.iter().map(|v| Issue::from_json(v).unwrap()).collect();
        let graph = Graph::new(&issues);
        let r = readiness(&graph, now.parse().unwrap());
        let mut ids: Vec<String> = r.ready().map(|i| issues[i].id.clone()).collect();
        ids.sort();
        let mut problems = graph.problems.clone();
        problems.extend(r.problems);
        (ids, problems)
    }

    fn dep(t: &str, k: &str) -> Value {
        json!({"depends_on_id": t, "type": k})
    }

    const NOW: &str = "2026-06-01T00:00:00Z";

    #[test]
    fn statuses_flags_and_types() {
        let (ids, problems) = ready_ids(
            &[
                json!({"id": "open", "status": "open"}),
                json!({"id": "wip", "status": "in_progress"}),
                json!({"id": "pinned", "status": "open", "pinned": true}),
                json!({"id": "eph", "status": "open", "ephemeral": true}),
                json!({"id": "gate", "status": "open", "issue_type": "gate"}),
                json!({"id": "msg", "status": "open", "issue_type": "message"}),
                json!({"id": "epic", "status": "open", "issue_type": "epic"}),
                json!({"id": "custom", "status": "review"}),
                json!({"id": "later", "status": "open", "defer_until": "2026-07-01T00:00:00Z"}),
                json!({"id": "past", "status": "open", "defer_until": "2026-05-01T00:00:00Z"}),
                json!({"id": "bad", "status": "open", "defer_until": "soon"}),
            ],
            NOW,
        );
        assert_eq!(ids, ["epic", "open", "past"]);
        assert!(problems.contains(&Problem::UnknownStatus { id: "custom".into(), status: "review".into() }));
        assert!(problems.iter().any(|p| matches!(p, Problem::BadTimestamp { id, .. } if id == "bad")));
    }

    #[test]
    fn blocking_edges() {
        let (ids, problems) = ready_ids(
            &[
                json!({"id": "blocker", "status": "open"}),
                json!({"id": "done", "status": "closed"}),
                json!({"id": "pin", "status": "pinned"}),
                json!({"id": "b1", "status": "open", "dependencies": [dep("blocker", "blocks")]}),
                json!({"id": "b2", "status": "open", "dependencies": [dep("blocker", "conditional-blocks")]}),
                json!({"id": "b3", "status": "open", "dependencies": [dep("done", "blocks"), dep("pin", "blocks")]}),
                json!({"id": "b4", "status": "open", "dependencies": [dep("blocker", "related"), dep("blocker", "discovered-from")]}),
                json!({"id": "b5", "status": "open", "dependencies": [dep("ghost", "blocks")]}),
            ],
            NOW,
        );
        assert_eq!(ids, ["b3", "b4", "b5", "blocker"]);
        assert_eq!(
            problems,
            [Problem::MissingDependency { id: "b5".into(), depends_on: "ghost".into(), dep_type: "blocks".into() }]
        );
    }

    #[test]
    fn parents_pass_blocking_and_deferral_down_transitively_but_parent_child_alone_does_not_block() {
        let (ids, _) = ready_ids(
            &[
                json!({"id": "gate", "status": "open"}),
                json!({"id": "epic", "status": "open", "dependencies": [dep("gate", "blocks")]}),
                json!({"id": "epic.1", "status": "open", "dependencies": [dep("epic", "parent-child")]}),
                json!({"id": "epic.1.1", "status": "open", "dependencies": [dep("epic.1", "parent-child")]}),
                json!({"id": "free", "status": "open"}),
                json!({"id": "free.1", "status": "open", "dependencies": [dep("free", "parent-child")]}),
                json!({"id": "sleepy", "status": "open", "defer_until": "2027-01-01"}),
                json!({"id": "sleepy.1", "status": "open", "dependencies": [dep("sleepy", "parent-child")]}),
                json!({"id": "shut", "status": "closed", "defer_until": "2027-01-01"}),
                json!({"id": "shut.1", "status": "open", "dependencies": [dep("shut", "parent-child")]}),
            ],
            NOW,
        );
        assert_eq!(ids, ["free", "free.1", "gate", "shut.1"]);
    }

    #[test]
    fn waits_for_gates() {
        let spawner_with = |kids: &[(&str, &str)]| {
            let mut v = vec![json!({"id": "sp", "status": "in_progress"})];
            for (id, status) in kids {
                v.push(json!({"id": id, "status": status, "dependencies": [dep("sp", "parent-child")]}));
            }
            v
        };
        let waiter = |meta: Option<&str>| {
            let mut d = dep("sp", "waits-for");
            if let Some(m) = meta {
                d["metadata"] = json!(m);
            }
            json!({"id": "w", "status": "open", "dependencies": [d]})
        };
        let ready = |kids: &[(&str, &str)], meta: Option<&str>| {
            let mut v = spawner_with(kids);
            v.push(waiter(meta));
            ready_ids(&v, NOW).0.contains(&"w".to_string())
        };
        let any = Some(r#"{"gate":"any-children"}"#);
        assert!(ready(&[], None));
        assert!(!ready(&[("k1", "in_progress"), ("k2", "closed")], None));
        assert!(ready(&[("k1", "closed"), ("k2", "closed")], None));
        assert!(ready(&[], any));
        assert!(ready(&[("k1", "in_progress"), ("k2", "closed")], any));
        assert!(!ready(&[("k1", "in_progress"), ("k2", "in_progress")], any));
    }

    #[test]
    fn parent_loops_are_reported_not_followed() {
        let (ids, problems) = ready_ids(
            &[
                json!({"id": "a", "status": "open", "dependencies": [dep("b", "parent-child")]}),
                json!({"id": "b", "status": "open", "dependencies": [dep("a", "parent-child")]}),
            ],
            NOW,
        );
        assert_eq!(ids, ["a", "b"]);
        assert!(problems.iter().any(|p| matches!(p, Problem::Cycle { ids } if ids.len() == 2)));
    }
}
