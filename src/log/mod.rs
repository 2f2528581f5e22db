//! The durable event log under `.bdp/events/`: segments of JSON lines, hash-chained with blake3.
//!
//! - [`walk`](walk::walk) reads and verifies (chain, seqs, torn tail) and decodes what the caller wants;
//!   `chain` is the one check that a line continues the log, for the walker and the writer;
//! - [`LogWriter`](writer::LogWriter) appends durably with group commit, cutting a torn tail on open;
//! - [`lock`] holds the orchestrator lock and the append lock;
//! - [`index`] keeps checkpoints and the query index in `.bdp/index.sqlite` (a cache: deleting it
//!   changes no answer); [`checkpoint_parts`] is how a checkpoint stores its issues;
//! - [`tail`] follows the log as it grows, reading only what was appended;
//! - [`load`] rebuilds the state: newest matching checkpoint plus the tail, or a full fold;
//! - `sync` gives the writer std's locks, or loom's for the loom models (`loom_tests`, `--cfg loom`).

mod chain;
pub mod checkpoint_parts;
pub mod error;
pub mod failpoint;
pub mod index;
pub mod issue_index;
pub mod load;
pub mod lock;
pub mod seek;
pub mod segment;
mod sync;
pub mod tail;
mod torn;
pub mod walk;
pub mod writer;

#[cfg(all(test, loom))]
mod loom_tests;

pub use error::{Corruption, Location, LogError, Problem};
pub use walk::{Decode, Position, StartAfter, TornTail, WalkSummary, walk};
pub use writer::{Clock, CommitMode, LogWriter, system_clock};
