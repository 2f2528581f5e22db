//! Planning: which issues are ready, how they group into independent tracks, in what order to take them,
//! and how long the remaining work takes with N agents. Pure core: no I/O, no clock (`now` is an input),
//! and it never imports std::fs, std::process or tokio.
//!
//! # Order of ready work
//!
//! Within a track and across tracks, ready items are ordered by, in turn:
//! 1. priority (0 = P0 first);
//! 2. critical path, longest first: the duration of the item plus the longest chain of work that waits on it
//!    (transitively, over blocking edges, waits-for gates and inherited parent blockers) — finishing it
//!    shortens the whole plan the most;
//! 3. direct unblocks, most first: how many issues wait directly on it;
//! 4. age: `created_at`, oldest first (a missing or unparseable one sorts last);
//! 5. id, for a total order.
//!
//! Tracks are listed in the order of their best ready item; tracks with no ready item (all blocked) last.
//!
//! # Makespan
//!
//! Work items are the active issues in scope that an agent could take once unblocked: status `open` (not
//! pinned, ephemeral, deferred or of an excluded type) or `in_progress` (counted as remaining work).
//! Durations are one unit per issue, unless some item sets `estimated_minutes`: then the unit is minutes
//! and items without an estimate count as the median of the given estimates. Items in a cycle, or waiting
//! on something that is not a work item (a `hooked` or custom-status issue, a deferred one, an issue outside
//! `--epic`/`--label`), can never start: they are counted as `unschedulable` and left out, with everything
//! behind them.

pub mod issue;
pub mod makespan;
pub mod ready;
pub mod tracks;

use std::cmp::Reverse;

use jiff::Timestamp;
use serde::Serialize;

pub use issue::{Dependency, Issue, IssueShapeError, LabelChange};
pub use ready::{Graph, NotReady, Problem, Readiness, readiness};

/// The version tag of `bdp plan --json` (schema/plan.schema.json).
pub const PLAN_SCHEMA: &str = "bdp.plan/1";

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub agents: usize,
    /// Only this epic and its descendants.
    pub epic: Option<String>,
    /// Only issues with this label.
    pub label: Option<String>,
    pub now: Timestamp,
    /// The ownership rules (`[ownership]` of `.bdp/config.toml`): issues that collide do not run at once.
    pub zones: Vec<crate::filelock::zones::Zone>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no issue {0} in the tracker")]
    EpicNotFound(String),
}

/// The result of `bdp plan`, serialized as-is by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub schema: &'static str,
    pub tracker: String,
    pub now: String,
    pub scope: Scope,
    pub summary: Summary,
    pub tracks: Vec<Track>,
    pub makespan: Makespan,
    /// Pairs of workable issues that will not run at once: a path both declare, or a zone both touch.
    pub collisions: Vec<crate::filelock::zones::Collision>,
    /// The order issues run in, in each sequential zone that two or more touch.
    pub sequences: Vec<Sequence>,
    pub problems: Vec<Problem>,
}

/// The issues of a sequential zone, in the order they run (oldest first).
#[derive(Debug, Clone, Serialize)]
pub struct Sequence {
    pub zone: String,
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scope {
    pub epic: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Issues in scope (every record, closed included).
    pub issues: usize,
    pub open: usize,
    pub in_progress: usize,
    pub closed: usize,
    pub ready: usize,
    /// Active issues blocked by an active issue (directly, through a gate, or through an ancestor).
    pub blocked: usize,
    pub tracks: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Track {
    pub track_id: String,
    /// Active issues in the track.
    pub size: usize,
    pub blocked: usize,
    /// Longest chain of work in the track.
    pub critical_path: u64,
    pub ready: Vec<ReadyItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadyItem {
    pub id: String,
    pub title: String,
    pub priority: i64,
    pub issue_type: Option<String>,
    pub critical_path: u64,
    /// Issues that wait on this one only: closing it makes them unblocked.
    pub unblocks: Vec<String>,
    /// How many issues wait on it directly.
    pub dependents: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Makespan {
    /// `issue` (one unit per issue) or `minutes` (from `estimated_minutes`).
    pub unit: &'static str,
    pub agents: usize,
    pub work_items: usize,
    pub unschedulable: usize,
    pub total_work: u64,
    pub critical_path: u64,
    pub single_agent: u64,
    pub with_agents: u64,
    pub speedup: f64,
}

fn sort_key(issue: &Issue) -> Option<Timestamp> {
    issue.created_at.as_deref().and_then(ready::parse_timestamp)
}

/// Which issues are in scope.
fn scope_members(graph: &Graph<'_>, opts: &PlanOptions) -> Result<Vec<bool>, PlanError> {
    let issues = graph.issues;
    let n = issues.len();
    let mut member: Vec<bool> = (0..n).map(|i| graph.is_canonical(i)).collect();
    if let Some(epic) = &opts.epic {
        let root = graph.get(epic).ok_or_else(|| PlanError::EpicNotFound(epic.clone()))?;
        let mut under = vec![false; n];
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut under[i], true) {
                continue;
            }
            stack.extend(graph.children[i].iter().copied());
        }
        // bd also counts dotted ids (`EPIC.1`) without an explicit parent as children.
        let prefix = format!("{epic}.");
        for (i, issue) in issues.iter().enumerate() {
            if graph.parent[i].is_none() && issue.id.starts_with(&prefix) {
                under[i] = true;
            }
        }
        for i in 0..n {
            member[i] &= under[i];
        }
    }
    if let Some(label) = &opts.label {
        for (i, issue) in issues.iter().enumerate() {
            member[i] &= issue.labels.iter().any(|l| l == label);
        }
    }
    Ok(member)
}

/// Plans `issues` (everything the tracker holds: blockers outside the scope still count).
pub fn plan(issues: &[Issue], tracker: &str, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let n = issues.len();
    let graph = Graph::new(issues);
    let ready = readiness(&graph, opts.now);
    let work = tracks::WorkGraph::new(&graph);
    let scope = scope_members(&graph, opts)?;

    // Work items and durations.
    let is_work = |i: usize| -> bool {
        let issue = &issues[i];
        scope[i]
            && work.active[i]
            && match issue.status.as_str() {
                "in_progress" => true,
                "open" => matches!(ready.verdict[i], None | Some(NotReady::Blocked) | Some(NotReady::ParentBlocked)),
                _ => false,
            }
    };
    let work_items: Vec<usize> = (0..n).filter(|&i| is_work(i)).collect();
    let mut estimates: Vec<u64> = work_items.iter().filter_map(|&i| issues[i].estimated_minutes).collect();
    let (unit, default_duration) = if estimates.is_empty() {
        ("issue", 1)
    } else {
        estimates.sort_unstable();
        ("minutes", estimates[estimates.len() / 2].max(1))
    };
    let duration: Vec<u64> = issues
        .iter()
        .map(|i| if unit == "minutes" { i.estimated_minutes.unwrap_or(default_duration) } else { 1 })
        .collect();
    let paths = tracks::critical_paths(&work, &duration);

    // Order: priority, critical path, direct unblocks, age, id.
    let mut order: Vec<usize> = (0..n).filter(|&i| work.active[i]).collect();
    let created: Vec<Option<Timestamp>> = issues.iter().map(sort_key).collect();
    order.sort_by(|&a, &b| order_key(issues, &paths, &work, &created, a, b));
    let mut rank = vec![u64::MAX; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as u64;
    }

    // Tracks.
    let mut uf = tracks::track_roots(&graph, &work);
    let mut track_of_root: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    struct Acc {
        members: Vec<usize>,
    }
    let mut accs: Vec<Acc> = Vec::new();
    for &i in &order {
        if !scope[i] {
            continue;
        }
        let root = uf.find(i);
        let t = *track_of_root.entry(root).or_insert_with(|| {
            accs.push(Acc { members: Vec::new() });
            accs.len() - 1
        });
        accs[t].members.push(i);
    }
    let mut built: Vec<(bool, u64, Track)> = Vec::new();
    for acc in accs {
        let ready_items: Vec<ReadyItem> = acc
            .members
            .iter()
            .filter(|&&i| ready.is_ready(i))
            .map(|&i| ReadyItem {
                id: issues[i].id.clone(),
                title: issues[i].title.clone(),
                priority: issues[i].priority,
                issue_type: issues[i].issue_type.clone(),
                critical_path: paths.critical_path[i],
                unblocks: work.succ[i]
                    .iter()
                    .filter(|&&s| work.pred[s].len() == 1)
                    .map(|&s| issues[s].id.clone())
                    .collect(),
                dependents: work.succ[i].len(),
            })
            .collect();
        let blocked = acc.members.iter().filter(|&&i| ready.blocked[i]).count();
        if ready_items.is_empty() && blocked == 0 {
            continue;
        }
        let first_rank = acc.members.iter().filter(|&&i| ready.is_ready(i)).map(|&i| rank[i]).min();
        let critical_path = acc.members.iter().map(|&i| paths.critical_path[i]).max().unwrap_or(0);
        let track =
            Track { track_id: String::new(), size: acc.members.len(), blocked, critical_path, ready: ready_items };
        built.push((first_rank.is_none(), first_rank.unwrap_or_else(|| rank[acc.members[0]]), track));
    }
    built.sort_by_key(|(no_ready, r, _)| (*no_ready, *r));
    let tracks: Vec<Track> = built
        .into_iter()
        .enumerate()
        .map(|(k, (_, _, mut t))| {
            t.track_id = format!("track-{}", k + 1);
            t
        })
        .collect();

    // Makespan: drop what can never start, then simulate.
    let mut schedulable = vec![false; n];
    for &i in &work_items {
        schedulable[i] = true;
    }
    let mut stack: Vec<usize> = work_items
        .iter()
        .copied()
        .filter(|&i| paths.in_cycle[i] || work.pred[i].iter().any(|&p| !is_work(p)))
        .collect();
    for &i in &stack {
        schedulable[i] = false;
    }
    while let Some(i) = stack.pop() {
        for &s in &work.succ[i] {
            if std::mem::replace(&mut schedulable[s], false) {
                stack.push(s);
            }
        }
    }
    let members: Vec<usize> = work_items.iter().copied().filter(|&i| schedulable[i]).collect();

    // What the work items touch: pairs that do not run at once, and the order in sequential zones, which
    // the simulation keeps too (an edge from each issue of a zone to the next).
    let declared: Vec<crate::filelock::zones::Declared> = (0..n)
        .map(|i| if is_work(i) { crate::filelock::zones::declared(&issues[i]) } else { Default::default() })
        .collect();
    let touching: Vec<usize> = order.iter().copied().filter(|&i| is_work(i) && !declared[i].paths.is_empty()).collect();
    let view: Vec<(&Issue, &[crate::filelock::LockPath])> =
        touching.iter().map(|&i| (&issues[i], declared[i].paths.as_slice())).collect();
    let collisions = crate::filelock::zones::collisions(&view, &opts.zones);
    let sequences: Vec<Sequence> = crate::filelock::zones::sequences(&view, &opts.zones)
        .into_iter()
        .map(|(zone, ids)| Sequence { zone, ids })
        .collect();
    let index: std::collections::HashMap<&str, usize> = touching.iter().map(|&i| (issues[i].id.as_str(), i)).collect();
    let mut conflicts: Vec<Vec<usize>> = vec![Vec::new(); n];
    for c in &collisions {
        let (a, b) = (index[c.a.as_str()], index[c.b.as_str()]);
        conflicts[a].push(b);
        conflicts[b].push(a);
    }
    let (mut pred, mut succ) = (work.pred.clone(), work.succ.clone());
    for seq in &sequences {
        for pair in seq.ids.windows(2) {
            let (a, b) = (index[pair[0].as_str()], index[pair[1].as_str()]);
            if !pred[b].contains(&a) {
                pred[b].push(a);
                succ[a].push(b);
            }
        }
    }
    let one = makespan::simulate(&members, &pred, &succ, &duration, &rank, &conflicts, 1);
    let many = makespan::simulate(&members, &pred, &succ, &duration, &rank, &conflicts, opts.agents);
    let critical_path = members.iter().map(|&i| paths.critical_path[i]).max().unwrap_or(0);
    let speedup = if many.makespan == 0 { 1.0 } else { one.makespan as f64 / many.makespan as f64 };
    let makespan = Makespan {
        unit,
        agents: opts.agents,
        work_items: members.len(),
        unschedulable: work_items.len() - members.len(),
        total_work: one.total_work,
        critical_path,
        single_agent: one.makespan,
        with_agents: many.makespan,
        speedup: (speedup * 100.0).round() / 100.0,
    };

    let mut summary = Summary { tracks: tracks.len(), ..Summary::default() };
    for i in (0..n).filter(|&i| scope[i]) {
        summary.issues += 1;
        match issues[i].status.as_str() {
            "open" => summary.open += 1,
            "in_progress" => summary.in_progress += 1,
            "closed" => summary.closed += 1,
            _ => {}
        }
        summary.ready += usize::from(ready.is_ready(i));
        summary.blocked += usize::from(work.active[i] && ready.blocked[i]);
    }

    let mut problems = graph.problems.clone();
    for d in &declared {
        problems.extend(d.bad.iter().map(|detail| Problem::BadPath { detail: detail.clone() }));
    }
    problems.extend(ready.problems.iter().cloned());
    for cycle in &paths.cycles {
        let mut ids: Vec<String> = cycle.iter().map(|&i| issues[i].id.clone()).collect();
        ids.sort();
        problems.push(Problem::Cycle { ids });
    }
    problems.sort();
    problems.dedup();

    Ok(Plan {
        schema: PLAN_SCHEMA,
        tracker: tracker.to_string(),
        now: opts.now.to_string(),
        scope: Scope { epic: opts.epic.clone(), label: opts.label.clone() },
        summary,
        tracks,
        makespan,
        collisions,
        sequences,
        problems,
    })
}

/// The ready issues in bdp's order (priority, critical path, direct unblocks, age, id), by bd's rules.
pub fn ready_in_order(issues: &[Issue], now: Timestamp) -> Vec<usize> {
    let graph = Graph::new(issues);
    let ready = readiness(&graph, now);
    let work = tracks::WorkGraph::new(&graph);
    let paths = tracks::critical_paths(&work, &vec![1; issues.len()]);
    let mut out: Vec<usize> = ready.ready().collect();
    let created: Vec<Option<Timestamp>> = issues.iter().map(sort_key).collect();
    out.sort_by(|&a, &b| order_key(issues, &paths, &work, &created, a, b));
    out
}

fn order_key(
    issues: &[Issue],
    paths: &tracks::Paths,
    work: &tracks::WorkGraph,
    created: &[Option<Timestamp>],
    a: usize,
    b: usize,
) -> std::cmp::Ordering {
    let key = |i: usize| {
        (
            issues[i].priority,
            Reverse(paths.critical_path[i]),
            Reverse(work.succ[i].len()),
            created[i].is_none(),
            created[i],
        )
    };
    key(a).cmp(&key(b)).then_with(|| issues[a].id.cmp(&issues[b].id))
}
