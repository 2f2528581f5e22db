//! The deterministic simulator of `bdp run`: the real run loop (`dispatch::Model::decide`), the real fold
//! (`State::apply`) and the real `reconcile::diff`, run against a simulated world on a virtual clock, with
//! agents that finish, fail, hang and crash, a tracker that fails and is raced, git that conflicts and fails,
//! a log whose appends fail or tear, and an orchestrator that crashes at any action. Invariants are checked
//! at every step; a violation prints the seed and step that reproduce it, and the run exits 1.
//!
//! ```text
//! cargo run --release --example sim -- --seed 7 [--seeds 1000] [--steps 20000] [--json]
//! ```
//!
//! The same seed gives the same trace (its hash is printed).

mod check;
mod execute;
mod recover;
mod rng;
mod run;
mod world;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut seed = 1u64;
    let mut seeds = 1u64;
    let mut steps = 20_000u64;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name} {v}: not a number"))
        };
        let parsed = match arg.as_str() {
            "--seed" => value("--seed").map(|v| seed = v),
            "--seeds" => value("--seeds").map(|v| seeds = v),
            "--steps" => value("--steps").map(|v| steps = v),
            "--json" => {
                json = true;
                Ok(())
            }
            "-h" | "--help" => {
                println!("usage: sim [--seed S] [--seeds N] [--steps N] [--json]");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other}")),
        };
        if let Err(e) = parsed {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    }
    let started = std::time::Instant::now();
    let (mut total_steps, mut crashes, mut failed) = (0u64, 0u64, 0u64);
    let mut traces = blake3::Hasher::new();
    for s in seed..seed + seeds {
        let report = run::Sim::new(s, steps, run::Faults::default()).run();
        total_steps += report.steps;
        crashes += report.crashes as u64;
        traces.update(report.trace.as_bytes());
        if json {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        } else if seeds == 1 || report.violation.is_some() {
            println!(
                "seed {}: {} steps, {} run(s), {} crash(es), {} records, {}/{} issues closed, trace {}",
                report.seed,
                report.steps,
                report.runs,
                report.crashes,
                report.records,
                report.closed,
                report.issues,
                report.trace
            );
        }
        if let Some(v) = &report.violation {
            eprintln!("VIOLATION {v}\n  reproduce: cargo run --release --example sim -- --seed {s} --steps {steps}");
            failed += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if !json {
        println!(
            "{seeds} seed(s) from {seed}: {total_steps} steps, {crashes} crash(es) recovered, {failed} violation(s), {:.0} steps/s, traces {}",
            total_steps as f64 / secs.max(1e-9),
            &traces.finalize().to_hex()[..16]
        );
    }
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
