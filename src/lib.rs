//! bdp: run many coding agents in parallel over the ready issues of a beads tracker, on a durable,
//! hash-chained event log.
//!
//! Layers (see ARCHITECTURE.md): a pure core (`event`, `state`, `plan`, `reconcile`, `dispatch`, `activity`,
//! `filelock`, `text`) that does no I/O, and an imperative shell around it (`log`, `tracker`, `git`, `process`,
//! `observe`, `repair`, `supervisor`, `run_options`, `repo`, `cli`).

// Under `--cfg loom` (the loom models of the log writer, src/log/loom_tests.rs) tokio has no process
// or signal module, so the layers that spawn agents and catch signals are left out.
pub mod activity;
#[cfg(not(loom))]
pub mod cli;
pub mod dispatch;
pub mod error;
pub mod event;
#[cfg(not(loom))]
pub mod exit_file;
#[cfg(not(loom))]
pub mod file_locks;
pub mod filelock;
pub mod git;
pub mod log;
// Looking at the world and repairing it stop process groups (tokio): left out with the supervisor.
#[cfg(not(loom))]
pub mod observe;
pub mod plan;
pub mod process;
#[cfg(not(loom))]
pub mod process_group;
pub mod reconcile;
#[cfg(not(loom))]
pub mod repair;
pub mod repo;
#[cfg(not(loom))]
pub mod run_options;
pub mod state;
#[cfg(not(loom))]
pub mod supervisor;
pub mod text;
pub mod tracker;

/// ARCHITECTURE.md stays true: every path it names exists.
#[cfg(test)]
mod architecture_map {
    #[test]
    fn every_path_in_the_architecture_map_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
        let mut named = 0;
        for quoted in text.split('`').skip(1).step_by(2) {
            let path = quoted.trim_end_matches('/');
            let roots = ["src/", "tests/", "examples/", "schema", "replay-fixtures"];
            if !roots.iter().any(|r| path.starts_with(r)) || path.contains('<') {
                continue;
            }
            named += 1;
            assert!(root.join(path).exists(), "ARCHITECTURE.md names {path}, which does not exist");
        }
        assert!(named > 20, "only {named} paths found: the map lost its paths");
    }
}
