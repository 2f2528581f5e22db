//! Generates a realistic bdp event log for benchmarks (see `benches/support/gen_log.rs`): N records
//! (default 1 000 000) of simulated sessions, claims, worktrees, spawns, exits, checks, merges and releases,
//! hash-chained, in segment files under `DIR/.bdp/events/`. Deterministic for a given seed.
//!
//! cargo run --release --example gen_log -- DIR [N] [SEED]
//! cargo run --release --example gen_log -- DIR --issues 2000 [SEED]   # one session of 2 000 issues, 8 agents
//! bdp --repo DIR verify        # the result is a valid log

#[path = "../benches/support/gen_log.rs"]
mod gen_log;

use std::path::PathBuf;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: gen_log DIR [N] [SEED] | gen_log DIR --issues N [SEED]");
        std::process::exit(2);
    };
    let first = args.next();
    let start = Instant::now();
    let builder = if first.as_deref() == Some("--issues") {
        let issues: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
        let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
        let sim = gen_log::Sim::single_session(seed, issues, gen_log::AGENTS);
        let mut builder = gen_log::LogBuilder::create_with(&dir.join(".bdp/events"), sim)?;
        builder.fill_until_finished()?;
        builder
    } else {
        let n: u64 = first.and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
        let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
        gen_log::generate(&dir.join(".bdp/events"), n, seed)?
    };
    eprintln!(
        "{} records, {} bytes in {} segments under {} ({:.1} s)",
        builder.last_seq(),
        builder.bytes(),
        builder.segments(),
        dir.join(".bdp/events").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
