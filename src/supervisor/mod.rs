//! The supervisor: the imperative shell that spawns agents, watches them, and runs the merge queue.
//!
//! - [`wrapper`]: `bdp __wrap`, the process bdp spawns; it runs the agent and writes `exit.json`;
//! - [`agent`]: spawn in a new session/process group, timeout → TERM → grace → KILL.

pub mod agent;
pub mod wrapper;
