//! Loom models of the file-lock protocol: `RUSTFLAGS="--cfg loom" cargo test --release --lib filelock`.
//!
//! `bdp lock` and `bdp mcp` take the table's guard (a flock), look at the held locks and the waiters,
//! and act on [`super::step`] before they let go: a grant, a wait written down, or giving up on a deadlock.
//! Here the table is in memory behind a loom `Mutex` (the guard), and each acquirer is a loom thread
//! running that protocol on the real [`super::step`]; loom runs every interleaving (up to a preemption
//! bound). Where the real acquirer sleeps and looks again, the model's waits on a `Condvar` that every
//! release and every new wait signal: the two things that can change its answer. Each holder counts itself
//! in and out of what it holds, so two conflicting holders at once, a deadlock nobody breaks, or an
//! acquirer left waiting forever (loom reports it) shows in some interleaving.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};

use super::{Entry, LockPath, Step, Waiting, canonical, step};

/// The lock table: held locks and waiters, behind the guard; `changed` is signalled on every release and
/// every new wait.
#[derive(Default)]
struct State {
    held: Vec<Entry>,
    waiters: Vec<Waiting>,
}

#[derive(Default)]
struct Table {
    state: Mutex<State>,
    changed: Condvar,
}

/// Every interleaving with up to this many preemptions (loom's bound; the protocol's steps are few).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// What is inside each path right now: exclusive holders, shared holders.
#[derive(Default)]
struct Inside {
    exclusive: AtomicUsize,
    shared: AtomicUsize,
}

/// How an acquire ended.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Granted,
    GaveUp,
}

/// The acquire protocol of `crate::file_locks::acquire`: look under the guard, grant or write the wait
/// down (or give up), let go, look again when something changed.
fn acquire(table: &Table, me: &str, since: i64, paths: &[&str], shared: bool) -> Got {
    let wanted = canonical(paths.iter().map(|p| LockPath::parse(p).unwrap()).collect());
    let mut t = table.state.lock().unwrap();
    loop {
        let others: Vec<Waiting> = t.waiters.iter().filter(|w| w.holder != me).cloned().collect();
        match step(&wanted, shared, me, since, &t.held, &others) {
            Step::Grant => {
                t.waiters.retain(|w| w.holder != me);
                for p in &wanted {
                    t.held.push(Entry {
                        path: p.as_string(),
                        shared,
                        holder: me.into(),
                        pid: 1,
                        start_time: None,
                        since: String::new(),
                        expires_ms: None,
                    });
                }
                return Got::Granted;
            }
            Step::GiveUp { .. } => {
                t.waiters.retain(|w| w.holder != me);
                return Got::GaveUp;
            }
            Step::Wait { held_by } => {
                let known = t.waiters.iter().any(|w| w.holder == me && w.waits_for == held_by);
                if !known {
                    t.waiters.retain(|w| w.holder != me);
                    t.waiters.push(Waiting {
                        holder: me.into(),
                        paths: paths.iter().map(|p| p.to_string()).collect(),
                        waits_for: held_by,
                        pid: 1,
                        start_time: None,
                        since_ms: since,
                    });
                    table.changed.notify_all();
                }
                t = table.changed.wait(t).unwrap();
            }
        }
    }
}

fn release_all(table: &Table, me: &str) {
    table.state.lock().unwrap().held.retain(|e| e.holder != me);
    table.changed.notify_all();
}

/// Counts `me` into `inside` and checks that nobody conflicting is there.
fn enter(inside: &Inside, shared: bool) {
    if shared {
        inside.shared.fetch_add(1, Ordering::SeqCst);
        assert_eq!(inside.exclusive.load(Ordering::SeqCst), 0, "a shared holder beside an exclusive one");
    } else {
        assert_eq!(inside.exclusive.fetch_add(1, Ordering::SeqCst), 0, "two exclusive holders at once");
        assert_eq!(inside.shared.load(Ordering::SeqCst), 0, "an exclusive holder beside a shared one");
    }
}

fn leave(inside: &Inside, shared: bool) {
    let counter = if shared { &inside.shared } else { &inside.exclusive };
    counter.fetch_sub(1, Ordering::SeqCst);
}

/// Two acquirers of one path, exclusive: each gets it, never both at once.
#[test]
fn two_exclusive_acquirers_never_hold_one_path_at_once() {
    model(|| {
        let table = Arc::new(Table::default());
        let inside = Arc::new(Inside::default());
        let handles: Vec<_> = ["a#1", "b#1"]
            .into_iter()
            .enumerate()
            .map(|(n, me)| {
                let (table, inside) = (table.clone(), inside.clone());
                loom::thread::spawn(move || {
                    assert_eq!(acquire(&table, me, n as i64, &["Cargo.toml"], false), Got::Granted);
                    enter(&inside, false);
                    leave(&inside, false);
                    release_all(&table, me);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(table.state.lock().unwrap().held.is_empty());
    });
}

/// A glob and a path it covers conflict; two shared holders go together, never with the exclusive one.
#[test]
fn shared_holders_go_together_and_never_with_an_exclusive_one() {
    model(|| {
        let table = Arc::new(Table::default());
        let inside = Arc::new(Inside::default());
        let handles: Vec<_> =
            [("r1#1", "src/db/schema.rs", true), ("r2#1", "src/db/**", true), ("w#1", "src/**", false)]
                .into_iter()
                .enumerate()
                .map(|(n, (me, path, shared))| {
                    let (table, inside) = (table.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        assert_eq!(acquire(&table, me, n as i64, &[path], shared), Got::Granted);
                        enter(&inside, shared);
                        leave(&inside, shared);
                        release_all(&table, me);
                    })
                })
                .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Two holders each hold one path and want the other's: whatever the interleaving, one of them gives up
/// (the younger waiter of the cycle), gives back what it holds, and the other gets both. Nobody waits
/// forever (loom reports a thread that never finishes).
#[test]
fn a_two_holder_deadlock_is_broken_by_the_youngest_waiter() {
    model(|| {
        let table = Arc::new(Table::default());
        let inside = Arc::new([Inside::default(), Inside::default()]);
        let gave_up = Arc::new(AtomicUsize::new(0));
        let plan = [("a#1", 0i64, "x", "y", 0usize, 1usize), ("b#1", 1, "y", "x", 1, 0)];
        let handles: Vec<_> = plan
            .into_iter()
            .map(|(me, since, first, second, i_first, i_second)| {
                let (table, inside, gave_up) = (table.clone(), inside.clone(), gave_up.clone());
                loom::thread::spawn(move || {
                    assert_eq!(acquire(&table, me, since, &[first], false), Got::Granted);
                    enter(&inside[i_first], false);
                    match acquire(&table, me, since, &[second], false) {
                        Got::Granted => {
                            enter(&inside[i_second], false);
                            leave(&inside[i_second], false);
                        }
                        Got::GaveUp => {
                            gave_up.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    leave(&inside[i_first], false);
                    release_all(&table, me);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(gave_up.load(Ordering::SeqCst) <= 1, "only the youngest of a cycle gives up");
        let t = table.state.lock().unwrap();
        assert!(t.held.is_empty() && t.waiters.is_empty());
    });
}
