//! `bdp summary [--since DURATION] [--session ID] [--json]`: the activity of past sessions — issues done,
//! failed, conflicted; time per issue and per phase; agent time against wall time (realized speedup,
//! parallel efficiency) beside the plan's estimate; retries; crashes and what recovery did; tokens and cost.
//!
//! Reads the log (verifying its chain) and never writes anything. The figures are defined in
//! `crate::activity`; this file selects the sessions and prints. `--json` is `activity::Report`
//! (schema/summary.schema.json, `"schema": "bdp.summary/1"`).

pub mod text;

use std::time::Duration;

use clap::Args;

use crate::activity::{ActivityBuilder, Report};
use crate::cli::Outcome;
use crate::cli::commands::replay::{empty_log, find_session};
use crate::error::{CliError, CliResult};
use crate::event::Record;
use crate::log::load;
use crate::repo::Repo;

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Only sessions that wrote to the log in this last stretch of time (24h, 90m, 7d…).
    #[arg(long, value_name = "DURATION", value_parser = crate::text::parse_duration)]
    pub since: Option<Duration>,
    /// Only this session (an id or a unique prefix). Its attempts keep their whole spans, also the part
    /// before a crash it recovered from.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Print the result as JSON (schema/summary.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub fn run(repo: &Repo, args: &SummaryArgs) -> CliResult<Outcome> {
    let mut builder = ActivityBuilder::new();
    let state = walk_log(repo, |record| builder.push(record))?;
    let mut activity = builder.finish();
    if let Some(wanted) = &args.session {
        let id = find_session(&state, wanted)?.id.clone();
        activity = activity.restrict(|s| s.id == id);
    }
    if let Some(since) = args.since {
        let cutoff = jiff::Timestamp::now().as_millisecond().saturating_sub(since.as_millis() as i64);
        activity = activity.restrict(|s| s.last_ms >= cutoff);
    }
    let report = Report::new(&activity);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes"));
    } else {
        let window = args.since.map(|d| crate::cli::render::duration(d.as_millis() as u64));
        print!("{}", crate::cli::commands::summary::text::render(&report, window.as_deref()));
    }
    Ok(Outcome::Ok)
}

/// Hands every record of the verified log to `each`; returns the fold (for session lookup). Refuses an
/// empty log. Reads only.
pub(crate) fn walk_log(repo: &Repo, mut each: impl FnMut(&Record)) -> CliResult<crate::state::State> {
    let (state, summary) = load::fold_verified(&repo.events_dir(), None, |record, _| each(record))
        .map_err(|e| CliError::from(e).with_hint("`bdp verify` says exactly where the log is damaged"))?;
    if summary.records == 0 {
        return Err(empty_log());
    }
    Ok(state)
}
