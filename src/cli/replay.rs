//! `bdp replay`: inspect past sessions.

use clap::Args;

use super::Outcome;
use crate::error::CliResult;
use crate::repo::Repo;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The session to show (default: list all sessions).
    pub session: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_repo: &Repo, _args: &ReplayArgs) -> CliResult<Outcome> {
    Ok(Outcome::Ok)
}
