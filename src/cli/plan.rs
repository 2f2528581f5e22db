//! `bdp plan`: tracks of ready work and the makespan estimate. (Filled in by the tracker/planning issue.)

use clap::Args;

use super::Outcome;
use crate::error::{CliError, CliResult};
use crate::repo::Repo;

#[derive(Debug, Args)]
pub struct PlanArgs {}

pub fn run(_repo: &Repo, _args: &PlanArgs) -> CliResult<Outcome> {
    Err(CliError::user("bdp plan is not available in this build yet"))
}
