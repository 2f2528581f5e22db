//! `bdp verify`: checks the whole event log — every record's shape, the gapless seqs, the hash chain, and
//! that the fold accepts every transition. Exit 0 intact, 1 damaged (the first bad seq and why), 2 error.
//!
//! A torn tail (bytes after the last newline: a write a crash interrupted, never acknowledged) is not
//! damage: it is reported, and the next append cuts it.

use clap::Args;
use serde_json::json;

use crate::cli::Outcome;
use crate::cli::paths::display_path;
use crate::error::CliResult;
use crate::event::record::chain_hex;
use crate::log::{LogError, load};
use crate::repo::Repo;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Print the result as JSON (shape: schema/verify.schema.json).
    #[arg(long)]
    pub json: bool,
}

pub fn run(repo: &Repo, args: &VerifyArgs) -> CliResult<Outcome> {
    let events_dir = repo.events_dir();
    let result = load::fold_verified(&events_dir, None, |_, _| {});
    let (outcome, report, human) = match result {
        Ok((state, summary)) => {
            if summary.records == 0 {
                return Err(crate::error::CliError::user(format!(
                    "nothing to verify: {} holds no records",
                    display_path(repo, &events_dir)
                ))
                .with_hint("`bdp run` writes the log"));
            }
            let torn = summary
                .torn_tail
                .as_ref()
                .map(|t| json!({"segment": display_path(repo, &t.segment), "offset": t.offset, "bytes": t.bytes}));
            let mut human = format!(
                "ok: {} records in {} segment{}, seq 1..{}, {} session{}, chain {}",
                summary.records,
                summary.segments.len(),
                plural(summary.segments.len() as u64),
                summary.last_seq,
                state.sessions.len(),
                plural(state.sessions.len() as u64),
                &chain_hex(&summary.last_chain)[..16],
            );
            if let Some(t) = &summary.torn_tail {
                human.push_str(&format!(
                    "\nnote: a torn tail of {} bytes after seq {} at {} (byte {}): an interrupted write, never acknowledged; the next append cuts it",
                    t.bytes,
                    summary.last_seq,
                    display_path(repo, &t.segment),
                    t.offset
                ));
            }
            let report = json!({
                "schema": "bdp.verify/1",
                "ok": true,
                "records": summary.records,
                "segments": summary.segments.len(),
                "last_seq": summary.last_seq,
                "last_chain": chain_hex(&summary.last_chain),
                "sessions": state.sessions.len(),
                "torn_tail": torn,
                "problem": null,
            });
            (Outcome::Ok, report, human)
        }
        Err(err) => {
            let problem = match err.root() {
                LogError::Corrupt(c) => json!({
                    "seq": c.seq,
                    "kind": problem_kind(&c.problem),
                    "message": c.problem.to_string(),
                    "segment": display_path(repo, &c.location.segment),
                    "line": c.location.line,
                    "offset": c.location.offset,
                }),
                LogError::Transition(t, location) => json!({
                    "seq": t.seq,
                    "kind": "impossible_transition",
                    "message": t.kind.to_string(),
                    "segment": display_path(repo, &location.segment),
                    "line": location.line,
                    "offset": location.offset,
                }),
                _ => return Err(err.into()),
            };
            let seq = problem["seq"].as_u64().unwrap_or(0);
            let place = match problem["line"].as_u64() {
                Some(0) | None => problem["segment"].as_str().unwrap_or_default().to_string(),
                Some(line) => {
                    format!("{}:{line} (byte {})", problem["segment"].as_str().unwrap_or_default(), problem["offset"])
                }
            };
            let human = format!(
                "damaged: seq {seq}: {} at {place}\n{}",
                problem["message"].as_str().unwrap_or_default(),
                if seq > 1 {
                    format!("the records before it (seq 1..{}) are intact", seq - 1)
                } else {
                    "no record before it can be trusted".to_string()
                }
            );
            let report = json!({"schema": "bdp.verify/1", "ok": false, "problem": problem});
            (Outcome::Found, report, human)
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("JSON values serialize"));
    } else {
        println!("{human}");
    }
    Ok(outcome)
}

fn problem_kind(problem: &crate::log::Problem) -> &'static str {
    use crate::log::Problem;
    match problem {
        Problem::Decode(_) => "bad_record",
        Problem::ChainMismatch => "chain_mismatch",
        Problem::SeqOutOfOrder { .. } => "seq_out_of_order",
        Problem::MissingSegment { .. } => "missing_segment",
        Problem::EmptySegment => "empty_segment",
        Problem::IncompleteLine => "incomplete_line",
        Problem::OverwrittenNewline => "overwritten_newline",
    }
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
