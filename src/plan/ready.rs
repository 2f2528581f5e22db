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
                    Some(&p) if dep.is_parent_child() => {
                        if parent[i].is_none() {
                            parent[i] = Some(p);
                            children[p].push(i);
                        }
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
                if let Some(cycle) = graph.parent_loop(i) {
                    if !cycle.iter().any(|&c| reported_loop[c]) {
                        for &c in &cycle {
                            reported_loop[c] = true;
                        }
                        let ids = cycle.iter().map(|&c| issues[c].id.clone()).collect();
                        problems.push(Problem::Cycle { ids });
                    }
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
