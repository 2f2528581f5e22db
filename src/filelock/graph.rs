//! Deadlock detection: who waits for a lock held by whom. A cycle through a waiter means none of its
//! members can ever get what it waits for; the youngest waiter of the cycle gives up at once, naming it.

use std::collections::{BTreeMap, BTreeSet};

/// A cycle of the wait-for graph `waits` (waiter → the holders it waits for) that goes through `start`,
/// as the holders in order from `start` (and back to it); `None` when there is none.
pub fn cycle_through(start: &str, waits: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first from `start`, keeping the path; a way back to `start` closes the cycle.
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    fn walk(
        at: &str,
        start: &str,
        waits: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in waits.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, waits, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(start, start, waits, &mut path, &mut seen).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    }

    #[test]
    fn cycles_of_two_and_three_are_found_and_chains_are_not() {
        assert_eq!(cycle_through("a", &graph(&[("a", "b"), ("b", "a")])), Some(vec!["a".into(), "b".into()]));
        let three = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
        assert_eq!(cycle_through("b", &three), Some(vec!["b".into(), "c".into(), "a".into()]));
        assert_eq!(cycle_through("a", &graph(&[("a", "b"), ("b", "c")])), None);
        // A cycle elsewhere is not this waiter's.
        assert_eq!(cycle_through("a", &graph(&[("a", "b"), ("b", "c"), ("c", "b")])), None);
    }
}
