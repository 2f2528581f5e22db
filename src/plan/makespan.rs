//! The makespan estimate: how long the remaining work takes with N agents, by list scheduling.
//!
//! Work items are given with their durations and precedence edges (from [`super::tracks::WorkGraph`]).
//! The simulation starts at time 0 with every item whose predecessors are all done; whenever an agent is
//! free it takes the best available item (the caller's priority order: the same order `bdp plan` lists
//! ready work in); when an item finishes, items whose last predecessor it was become available. With one
//! agent the result is the total work; with many it is at least the critical path. List scheduling is
//! within a factor of 2 of the optimum (Graham), which is plenty for an estimate.
//!
//! Pure and O((nodes + edges) log nodes).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time when the last item finishes.
    pub makespan: u64,
    /// Sum of all durations.
    pub total_work: u64,
}

/// Simulates `agents` agents over the items in `members` (positions into the other slices).
/// `rank[i]` orders available items (lower first). Edges from or to items outside `members` are ignored:
/// the caller removes what cannot be scheduled first. `conflicts[i]` are the items that may not run while
/// `i` does (files both touch): an available item that conflicts with a running one waits.
pub fn simulate(
    members: &[usize],
    pred: &[Vec<usize>],
    succ: &[Vec<usize>],
    duration: &[u64],
    rank: &[u64],
    conflicts: &[Vec<usize>],
    agents: usize,
) -> Schedule {
    let agents = agents.max(1);
    let n = duration.len();
    let mut member = vec![false; n];
    for &m in members {
        member[m] = true;
    }
    let mut waiting = vec![0usize; n];
    let mut available = BinaryHeap::new();
    for &m in members {
        waiting[m] = pred[m].iter().filter(|&&p| member[p]).count();
        if waiting[m] == 0 {
            available.push(Reverse((rank[m], m)));
        }
    }
    let total_work: u64 = members.iter().map(|&m| duration[m]).sum();
    let mut running: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut now = 0u64;
    let mut makespan = 0u64;
    loop {
        let mut waiting_out = Vec::new();
        while running.len() < agents {
            let Some(Reverse((r, m))) = available.pop() else { break };
            let busy = conflicts.get(m).is_some_and(|c| running.iter().any(|Reverse((_, o))| c.contains(o)));
            if busy {
                waiting_out.push(Reverse((r, m)));
                continue;
            }
            running.push(Reverse((now + duration[m], m)));
        }
        available.extend(waiting_out);
        let Some(Reverse((finish, m))) = running.pop() else { break };
        now = finish;
        makespan = makespan.max(finish);
        let mut finished = vec![m];
        // Everything finishing at the same instant frees its agent together.
        while let Some(&Reverse((f, other))) = running.peek() {
            if f != now {
                break;
            }
            running.pop();
            finished.push(other);
        }
        for f in finished {
            for &s in &succ[f] {
                if member[s] {
                    waiting[s] -= 1;
                    if waiting[s] == 0 {
                        available.push(Reverse((rank[s], s)));
                    }
                }
            }
        }
    }
    Schedule { makespan, total_work }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diamond_with_two_agents() {
        // a → b, a → c, b → d, c → d
        let pred = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let succ = vec![vec![1, 2], vec![3], vec![3], vec![]];
        let dur = vec![1, 1, 1, 1];
        let rank = vec![0, 1, 2, 3];
        assert_eq!(simulate(&[0, 1, 2, 3], &pred, &succ, &dur, &rank, &[], 1).makespan, 4);
        assert_eq!(simulate(&[0, 1, 2, 3], &pred, &succ, &dur, &rank, &[], 2).makespan, 3);
        assert_eq!(simulate(&[0, 1, 2, 3], &pred, &succ, &dur, &rank, &[], 8).makespan, 3);
    }

    #[test]
    fn independent_items_spread_over_agents() {
        let pred = vec![vec![]; 5];
        let succ = vec![vec![]; 5];
        let dur = vec![30, 30, 30, 30, 60];
        let rank = vec![1, 2, 3, 4, 0];
        let s = simulate(&[0, 1, 2, 3, 4], &pred, &succ, &dur, &rank, &[], 2);
        assert_eq!((s.makespan, s.total_work), (90, 180));
    }

    #[test]
    fn conflicting_items_do_not_run_at_once() {
        let pred = vec![vec![]; 3];
        let succ = vec![vec![]; 3];
        let dur = vec![10, 10, 10];
        let rank = vec![0, 1, 2];
        let conflicts = vec![vec![1], vec![0], vec![]];
        assert_eq!(simulate(&[0, 1, 2], &pred, &succ, &dur, &rank, &[], 3).makespan, 10);
        assert_eq!(simulate(&[0, 1, 2], &pred, &succ, &dur, &rank, &conflicts, 3).makespan, 20);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(simulate(&[], &[], &[], &[], &[], &[], 3), Schedule { makespan: 0, total_work: 0 });
    }
}
