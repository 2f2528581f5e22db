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
pub mod progress;
pub mod prompt;
mod recover;
mod steps;
pub mod template;
pub mod usage;
pub mod wrapper;

use std::time::Duration;

/// A duration for people: `850ms`, `4.2s`, `3m05s`, `1h02m`.
pub fn progress_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}
