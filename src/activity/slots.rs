//! The rows of the Gantt chart: each attempt gets the lowest-numbered row free at its start (interval
//! partitioning, greedy by start time), so bars in one row never overlap and the number of rows is the most
//! attempts in flight at any instant. A bar may start exactly where the previous one in its row ended.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::AttemptSpan;

/// Sets every attempt's `slot`; returns how many slots there are. O(n log n).
pub fn assign(attempts: &mut [AttemptSpan]) -> usize {
    let mut order: Vec<usize> = (0..attempts.len()).collect();
    order.sort_by_key(|&i| (attempts[i].start_ms, i));
    let mut busy: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut free: BinaryHeap<Reverse<usize>> = BinaryHeap::new();
    let mut slots = 0;
    for i in order {
        let (start, end) = (attempts[i].start_ms, attempts[i].end_ms.max(attempts[i].start_ms));
        while let Some(&Reverse((busy_until, slot))) = busy.peek() {
            if busy_until > start {
                break;
            }
            busy.pop();
            free.push(Reverse(slot));
        }
        let slot = match free.pop() {
            Some(Reverse(slot)) => slot,
            None => {
                slots += 1;
                slots - 1
            }
        };
        attempts[i].slot = slot;
        busy.push(Reverse((end, slot)));
    }
    slots
}
