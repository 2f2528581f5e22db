//! The run loop's deterministic simulator (examples/sim) as a test: a fixed set of seeds, each the real
//! `decide`, fold and `reconcile::diff` against a simulated world with faults and crashes, every invariant
//! checked at every step. `.ci/run` runs many more seeds; a failing seed reproduces with
//! `cargo run --release --example sim -- --seed S`.

#[path = "../examples/sim/check.rs"]
mod check;
#[path = "../examples/sim/execute.rs"]
mod execute;
#[path = "../examples/sim/recover.rs"]
mod recover;
#[path = "../examples/sim/rng.rs"]
mod rng;
#[path = "../examples/sim/run.rs"]
mod run;
#[path = "../examples/sim/world.rs"]
mod world;

#[test]
fn three_hundred_seeds_keep_every_invariant() {
    let mut crashes = 0;
    let mut closed = 0;
    for seed in 1..=300 {
        let report = run::Sim::new(seed, 5_000, run::Faults::default()).run();
        assert_eq!(report.violation, None, "seed {seed}");
        crashes += report.crashes;
        closed += report.closed;
    }
    // The seeds do exercise recovery and land work (a simulator that does nothing keeps every invariant).
    assert!(crashes > 100, "{crashes} crashes");
    assert!(closed > 1_000, "{closed} issues closed");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = run::Sim::new(42, 5_000, run::Faults::default()).run();
    let b = run::Sim::new(42, 5_000, run::Faults::default()).run();
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.steps, b.steps);
    let c = run::Sim::new(43, 5_000, run::Faults::default()).run();
    assert_ne!(a.trace, c.trace);
}
