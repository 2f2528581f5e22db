//! bdp: run many coding agents in parallel over the ready issues of a beads tracker, on a durable,
//! hash-chained event log.
//!
//! Layers (see DESIGN.md): a pure core (`event`, `state`, `plan`, `reconcile`, `dispatch`, `activity`) that does no I/O, and an imperative
//! shell around it (`log`, `tracker`, `git`, `process`, `observe`, `supervisor`, `repo`, `cli`).

// Under `--cfg loom` (the loom models of the log writer, src/log/loom_tests.rs) tokio has no process
// or signal module, so the layers that spawn agents and catch signals are left out.
pub mod activity;
#[cfg(not(loom))]
pub mod cli;
pub mod dispatch;
pub mod error;
pub mod event;
pub mod git;
pub mod log;
// Looking at the world and repairing it use the supervisor's process handling: left out with it.
#[cfg(not(loom))]
pub mod observe;
pub mod plan;
pub mod process;
pub mod reconcile;
#[cfg(not(loom))]
pub mod repair;
pub mod repo;
pub mod state;
#[cfg(not(loom))]
pub mod supervisor;
pub mod tracker;
