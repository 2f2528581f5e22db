//! bdp: run many coding agents in parallel over the ready issues of a beads tracker, on a durable,
//! hash-chained event log.
//!
//! Layers (see DESIGN.md): a pure core (`event`, `state`) that does no I/O, and an imperative shell
//! around it (`log`, `repo`, `cli`).

pub mod cli;
pub mod error;
pub mod event;
pub mod log;
pub mod plan;
pub mod repo;
pub mod state;
pub mod tracker;
