//! Every integration test in one binary: each file of `tests/` is a module here, so the suite links once
//! instead of twenty times. Two files are binaries of their own (Cargo.toml, `autotests = false`):
//! `crash.rs`, the crash harness, built with `--features failpoints` in release for its long sweeps; and
//! `sim.rs`, which compiles the simulator of `examples/sim/` as its crate root.
//!
//! Run one file's tests with `cargo test --test runner -- run::` (the module name is the file name).
//! What they share is in `common/`: how to run bdp and show its output, builders of log events,
//! `common/run_support.rs` (a sandbox repository with scripted agents), `common/audit_support/` (audit's
//! fixtures) and `common/fake_bd.py` (a bd-shaped stand-in).

mod common;

mod activity;
mod agent_cli;
mod agent_supervise;
mod audit_fixtures;
mod audit_live;
mod dashboard_tmux;
mod demo;
mod events;
mod git_merge;
mod lock;
mod log_bad_input;
mod log_disk_full;
mod log_faults;
mod log_tail;
mod log_writer;
mod mcp;
mod orchestrator_lock;
mod plan_cli;
mod recover;
mod replay_fixtures;
mod run;
mod schema;
mod status_logs_clean;
mod tracker_contract;
mod tracker_jsonl;

/// A test file that is neither a module here nor a test binary of its own in Cargo.toml would never run.
#[test]
fn no_test_file_is_forgotten() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let runner = std::fs::read_to_string(dir.join("runner.rs")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("../Cargo.toml")).unwrap();
    let mut forgotten = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(module) = name.strip_suffix(".rs") else { continue };
        let listed = runner.lines().any(|l| l == format!("mod {module};"));
        let own_binary = manifest.contains(&format!("path = \"tests/{name}\""));
        if !listed && !own_binary {
            forgotten.push(name);
        }
    }
    assert!(forgotten.is_empty(), "tests/{forgotten:?}: add `mod NAME;` to tests/runner.rs");
}
