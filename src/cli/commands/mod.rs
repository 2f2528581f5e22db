//! One module per subcommand: its clap arguments (`…Args`) and its `run`. A command of several files is
//! a folder (`run/` holds `--dry-run`, `status/` the dashboard of `--watch`). What several commands
//! share lives beside this folder, in `src/cli/`: errors and exit codes, records in words, what is alive,
//! paths for people, opening the tracker.

pub mod audit;
pub mod clean;
pub mod demo;
pub mod events;
pub mod lock;
pub mod logs;
pub mod mcp;
pub mod plan;
pub mod replay;
pub mod run;
pub mod status;
pub mod stop;
pub mod summary;
pub mod verify;
