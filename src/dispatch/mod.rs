//! The run loop's decisions, pure: no tokio, no std::fs, no process, no clock (time comes in as an input, in
//! milliseconds since the run started). The supervisor carries out what these functions decide, and their
//! tests are tables of facts in and decisions out, as cargo-nextest tests its dispatcher's `handle_event`.
//!
//! The run loop is one function, [`Model::decide`]: an [`Input`] (an agent exited, a merge is done, a
//! tracker write failed, a timer fired, a stop was asked for) against the [`Model`] gives the [`Action`]s to
//! carry out (append events, claim, make a worktree, spawn, check, merge, close, give back, set a timer,
//! report a [`RunEvent`]). The executor in `supervisor` carries them out off the dispatcher's thread where
//! they take time and feeds their results back; `examples/sim.rs` does the same against a simulated world.
//!
//! Files: `model.rs` what decisions are made on; `io.rs` inputs, actions and run events; `decide.rs` the
//! decisions; `order.rs` which issues a run may take and in what order; `after_exit.rs` what an attempt's
//! end leads to; `recovery.rs` how a recovering run carries the log's claims on; `outage.rs` when a failing tracker is read again; `stop.rs` how a stop escalates and
//! whether another issue may be claimed.

pub mod after_exit;
pub mod decide;
pub mod io;
pub mod model;
pub mod order;
pub mod outage;
pub mod recovery;
pub mod stop;

pub use after_exit::AgentEnd;
pub use io::{Action, BranchFacts, Input, MergeOutcome, Resume, RunEvent, Started, Timer, WriteError};
pub use model::{Ending, Isolation, Model, Rules};

/// Milliseconds since the run started: the only clock the core sees.
pub type Ms = u64;
