//! The run loop's decisions, pure: no tokio, no std::fs, no process, no clock (time comes in as an input, in
//! milliseconds since the run started). The supervisor carries out what these functions decide, and their
//! tests are tables of facts in and decisions out, as cargo-nextest tests its dispatcher's `handle_event`.
//!
//! Files: `after_exit.rs` what an attempt's end leads to (retry, give up, check, merge, close);
//! `outage.rs` when a failing tracker is read again and when the run stops waiting for it; `stop.rs` how a
//! stop escalates and whether another issue may be claimed.
//!
//! This is the first part of the decide/act split of DESIGN.md ("The run loop"): the decisions the
//! supervisor used to make inline, now made here. The model of the whole loop (`decide(&Model, Input) ->
//! Vec<Action>`) grows from these.

pub mod after_exit;
pub mod outage;
pub mod stop;

/// Milliseconds since the run started: the only clock the core sees.
pub type Ms = u64;
