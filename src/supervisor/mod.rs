//! The supervisor: the imperative shell that runs `bdp run` — spawns agents, watches them, runs the
//! merge queue, and stops cleanly.
//!
//! - [`wrapper`]: `bdp __wrap`, the process bdp spawns; it runs the agent and writes `exit.json`;
//! - [`agent`]: spawn in a new session/process group, timeout → TERM → grace → KILL;
//! - [`orchestrator`]: the dispatcher (state, log, tracker) and its loop; [`steps`]: one issue's steps;
//! - [`options`], [`template`] (argv and presets), [`prompt`], [`usage`] (tokens and cost), [`guard`]
//!   (load and memory), [`progress`] (what the user sees).

pub mod agent;
mod checkpointer;
pub mod guard;
pub mod options;
pub mod orchestrator;
mod outage;
pub mod progress;
pub mod prompt;
mod recover;
mod steps;
pub mod template;
pub mod usage;
pub mod wrapper;

/// A duration for people: `850ms`, `4.2s`, `3m05s`, `1h02m` (defined in the core).
pub use crate::dispatch::after_exit::duration_text as progress_duration;
