//! The supervisor: the imperative shell that runs `bdp run` — spawns agents, watches them, runs the
//! merge queue, and stops cleanly.
//!
//! - [`wrapper`]: `bdp __wrap`, the process bdp spawns; it runs the agent and writes `exit.json`;
//! - [`agent`]: spawn in a new session/process group, timeout → TERM → grace → KILL;
//! - [`orchestrator`]: the executor: the dispatcher loop around the pure `dispatch::Model::decide`, the log
//!   and the tracker; [`steps`]: how it carries out one issue's actions; [`tracker_thread`]: the tracker's
//!   calls, off the dispatcher's thread; [`recover`]: recovery at the start;
//! - [`options`], [`template`] (argv and presets), [`prompt`], [`usage`] (tokens and cost), [`guard`]
//!   (load and memory), [`progress`] (what the user sees).

pub mod agent;
pub mod agent_output;
mod checkpointer;
pub mod guard;
pub mod hooks;
pub mod options;
pub mod orchestrator;
pub mod previous;
pub mod progress;
pub mod prompt;
mod recover;
pub mod review;
mod steps;
pub mod template;
mod tracker_thread;
pub mod wrapper;
#[cfg(test)]
mod wrapper_tests;
