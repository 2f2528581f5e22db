//! The work graph among active issues: precedence edges, cycles (strongly connected components), the
//! critical path behind each issue, and tracks (connected components).
//!
//! Edge `u → v` means "u must be finished before v can start": `v` has a `blocks` or `conditional-blocks`
//! edge to `u`; or `v` waits for a spawner whose active child is `u`; or an active ancestor of `v` has such a
//! blocker `u` (a child of a blocked parent is blocked too). Only active issues (not closed, not pinned) are
//! nodes; finished work never constrains anything.
//!
//! - **Critical path** of `v`: the duration of `v` plus the longest chain of work behind it, i.e. the
//!   largest sum of durations along any path from `v` through its successors. This is what finishing `v`
//!   unlocks, measured transitively (bv counts only direct dependents).
//! - **Cycles**: components of more than one node, or a node with an edge to itself. They are reported with
//!   their ids (sorted), never looped on; the critical path counts a cycle's members once each.
//! - **Tracks**: connected components over precedence and active `parent-child` edges, direction ignored.
//!
//! Pure, and linear in nodes + edges (iterative Tarjan: no recursion, so 10k-long chains are fine).

use super::ready::Graph;

/// Precedence edges among active issues, as adjacency lists over issue positions.
#[derive(Debug)]
pub struct WorkGraph {
    pub active: Vec<bool>,
    /// `succ[u]`: issues that wait for `u`.
    pub succ: Vec<Vec<usize>>,
    /// `pred[v]`: issues `v` waits for.
    pub pred: Vec<Vec<usize>>,
}

impl WorkGraph {
    pub fn new(graph: &Graph<'_>) -> WorkGraph {
        let issues = graph.issues;
        let n = issues.len();
        let active: Vec<bool> = (0..n).map(|i| graph.is_canonical(i) && issues[i].is_active()).collect();
        // Direct predecessors.
        let mut direct: Vec<Vec<usize>> = vec![Vec::new(); n];
        for v in 0..n {
            if !active[v] {
                continue;
            }
            for dep in &issues[v].dependencies {
                let Some(t) = graph.get(&dep.depends_on_id) else { continue };
                if dep.is_blocking() && active[t] {
                    direct[v].push(t);
                } else if dep.is_waits_for() {
                    direct[v].extend(graph.children[t].iter().copied().filter(|&c| active[c]));
                }
            }
        }
        // Inherit the predecessors of active ancestors, parents before children (loops keep their own).
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut done = vec![false; n];
        let mut stack: Vec<usize> = (0..n).filter(|&i| graph.parent[i].is_none()).collect();
        while let Some(i) = stack.pop() {
            let mut p = std::mem::take(&mut direct[i]);
            if let Some(parent) = graph.parent[i].filter(|&p| active[p] && done[p]) {
                p.extend(pred[parent].iter().copied());
            }
            p.sort_unstable();
            p.dedup();
            pred[i] = p;
            done[i] = true;
            stack.extend(graph.children[i].iter().copied().filter(|&c| !done[c]));
        }
        for i in 0..n {
            if !done[i] {
                let mut p = std::mem::take(&mut direct[i]);
                p.sort_unstable();
                p.dedup();
                pred[i] = p;
            }
        }
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (v, ps) in pred.iter().enumerate() {
            for &u in ps {
                succ[u].push(v);
            }
        }
        WorkGraph { active, succ, pred }
    }

    /// Strongly connected components over active nodes, in reverse topological order (every component
    /// comes after all components it has edges to).
    pub fn components(&self) -> Vec<Vec<usize>> {
        let n = self.succ.len();
        const UNSEEN: usize = usize::MAX;
        let mut index = vec![UNSEEN; n];
        let mut low = vec![0usize; n];
        let mut on_stack = vec![false; n];
        let mut stack = Vec::new();
        let mut out = Vec::new();
        let mut next = 0usize;
        let mut call: Vec<(usize, usize)> = Vec::new();
        for root in 0..n {
            if !self.active[root] || index[root] != UNSEEN {
                continue;
            }
            call.push((root, 0));
            index[root] = next;
            low[root] = next;
            next += 1;
            stack.push(root);
            on_stack[root] = true;
            while let Some(&mut (v, ref mut edge)) = call.last_mut() {
                if let Some(&w) = self.succ[v].get(*edge) {
                    *edge += 1;
                    if index[w] == UNSEEN {
                        index[w] = next;
                        low[w] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w] = true;
                        call.push((w, 0));
                    } else if on_stack[w] {
                        low[v] = low[v].min(index[w]);
                    }
                    continue;
                }
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    out.push(comp);
                }
            }
        }
        out
    }
}

/// Critical path and cycle membership of every issue.
#[derive(Debug)]
pub struct Paths {
    /// Sum of durations on the longest chain starting at the issue (0 for inactive issues).
    pub critical_path: Vec<u64>,
    /// True for members of a cycle.
    pub in_cycle: Vec<bool>,
    /// Each cycle's members.
    pub cycles: Vec<Vec<usize>>,
}

pub fn critical_paths(work: &WorkGraph, duration: &[u64]) -> Paths {
    let n = work.succ.len();
    let comps = work.components();
    let mut comp_of = vec![usize::MAX; n];
    for (c, members) in comps.iter().enumerate() {
        for &m in members {
            comp_of[m] = c;
        }
    }
    let mut comp_len = vec![0u64; comps.len()];
    let mut in_cycle = vec![false; n];
    let mut cycles = Vec::new();
    for (c, members) in comps.iter().enumerate() {
        let own: u64 = members.iter().map(|&m| duration[m]).sum();
        let mut behind = 0u64;
        let mut self_loop = false;
        for &m in members {
            for &s in &work.succ[m] {
                if comp_of[s] == c {
                    self_loop = true;
                } else {
                    behind = behind.max(comp_len[comp_of[s]]);
                }
            }
        }
        comp_len[c] = own + behind;
        if members.len() > 1 || self_loop {
            for &m in members {
                in_cycle[m] = true;
            }
            cycles.push(members.clone());
        }
    }
    let critical_path = (0..n).map(|i| if comp_of[i] == usize::MAX { 0 } else { comp_len[comp_of[i]] }).collect();
    Paths { critical_path, in_cycle, cycles }
}

/// Union-find with path halving and union by size.
#[derive(Debug)]
pub struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind { parent: (0..n).collect(), size: vec![1; n] }
    }
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    pub fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

/// Connected components over precedence and active parent-child edges; returns each active issue's root.
pub fn track_roots(graph: &Graph<'_>, work: &WorkGraph) -> UnionFind {
    let n = work.succ.len();
    let mut uf = UnionFind::new(n);
    for v in 0..n {
        if !work.active[v] {
            continue;
        }
        for &u in &work.pred[v] {
            uf.union(u, v);
        }
        if let Some(p) = graph.parent[v].filter(|&p| work.active[p]) {
            uf.union(p, v);
        }
    }
    uf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::issue::{Dependency, Issue};

    fn issue(id: &str, deps: &[(&str, &str)]) -> Issue {
        Issue { dependencies: deps.iter().map(|(on, kind)| Dependency::on(on, kind)).collect(), ..Issue::open(id) }
    }

    #[test]
    fn chain_critical_path_counts_the_whole_chain() {
        // a ← b ← c (c depends on b depends on a), and d depends on a directly.
        let issues = vec![
            issue("a", &[]),
            issue("b", &[("a", "blocks")]),
            issue("c", &[("b", "blocks")]),
            issue("d", &[("a", "blocks")]),
        ];
        let g = Graph::new(&issues);
        let w = WorkGraph::new(&g);
        let p = critical_paths(&w, &[1, 1, 1, 1]);
        assert_eq!(p.critical_path, vec![3, 2, 1, 1]);
        assert!(p.cycles.is_empty());
    }

    #[test]
    fn cycles_are_found_not_looped_on() {
        let issues =
            vec![issue("a", &[("c", "blocks")]), issue("b", &[("a", "blocks")]), issue("c", &[("b", "blocks")])];
        let g = Graph::new(&issues);
        let w = WorkGraph::new(&g);
        let p = critical_paths(&w, &[1, 1, 1]);
        assert_eq!(p.cycles.len(), 1);
        assert_eq!(p.critical_path, vec![3, 3, 3]);
        let self_loop = vec![issue("s", &[("s", "blocks")])];
        let g = Graph::new(&self_loop);
        assert_eq!(critical_paths(&WorkGraph::new(&g), &[1]).cycles.len(), 1);
    }

    #[test]
    fn children_inherit_their_parents_blockers() {
        let issues = vec![
            issue("gate", &[]),
            issue("epic", &[("gate", "blocks")]),
            issue("epic.1", &[("epic", "parent-child")]),
        ];
        let g = Graph::new(&issues);
        let w = WorkGraph::new(&g);
        assert_eq!(w.pred[2], vec![0]);
        let mut uf = track_roots(&g, &w);
        assert_eq!(uf.find(0), uf.find(2));
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 20_000;
        let issues: Vec<Issue> = (0..n)
            .map(|i| {
                let prev = format!("i{}", i.max(1) - 1);
                if i == 0 { issue("i0", &[]) } else { issue(&format!("i{i}"), &[(prev.as_str(), "blocks")]) }
            })
            .collect();
        let g = Graph::new(&issues);
        let w = WorkGraph::new(&g);
        let p = critical_paths(&w, &vec![1; n]);
        assert_eq!(p.critical_path[0], n as u64);
    }
}
