//! How a checkpoint keeps its issues: compact binary rows, a few thousand to a part, decoded in parallel.
//!
//! A long run's state is mostly issues at rest (80 000 of them after a 1M-record run of no-op agents). As
//! `State`'s own JSON they are 15 MB, 176 bytes an issue, half of it field names; parsed on one thread they
//! took ~40 ms of a recovery. Here an issue is a row in postcard's encoding (lengths and varints, ~64 bytes
//! an issue), and the parts are decoded one run of parts per core.
//!
//! The row is this module's own shape, not part of any contract, and it does not lean on the order of enum
//! variants: the phase and the release reason are stored by their names (as in the log), and a claim (an
//! issue held when the checkpoint was taken: a handful) as its JSON. It converts to and from `IssueState`
//! by destructuring every field, so a field added to `IssueState` or `Release` does not compile until it is
//! added here too; a change to the row's own shape must change [`FORMAT`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{IssueId, Phase, ReleaseReason};
use crate::state::{IssueState, Release};

/// Issues per part.
pub const ISSUES_PER_PART: usize = 4096;

/// The rows' format, stored with each checkpoint: a checkpoint of another format is not read.
pub const FORMAT: i64 = 1;

/// An issue as a part stores it: id, attempts, claims, phase, last release (seq, reason, unmerged work),
/// closed seq, merged commit, claim (JSON). Read into owned strings where the map keeps them; the names are
/// borrowed from the part.
#[derive(Deserialize)]
struct Row<'a>(
    IssueId,
    u32,
    u32,
    Option<&'a str>,
    Option<(u64, &'a str, bool)>,
    Option<u64>,
    Option<String>,
    Option<String>,
);

/// The same row as it is written: borrowed from the state, so writing a checkpoint copies no id or commit.
/// Its fields encode exactly as [`Row`]'s (a `&str` as a `String`); the round-trip tests hold them together.
#[derive(Serialize)]
struct RowRef<'a>(
    &'a str,
    u32,
    u32,
    Option<&'static str>,
    Option<(u64, &'static str, bool)>,
    Option<u64>,
    Option<&'a str>,
    Option<String>,
);

/// A unit enum from its serde name.
fn from_name<'de, T: Deserialize<'de>>(name: &'de str) -> Result<T, String> {
    T::deserialize(serde::de::value::BorrowedStrDeserializer::<serde::de::value::Error>::new(name))
        .map_err(|e| e.to_string())
}

/// An issue's row, borrowing from it. The phase and the release reason are their names as the log writes
/// them (`as_str`, which `event`'s tests hold to serde's names), so naming them allocates nothing.
fn row<'a>(id: &'a str, issue: &'a IssueState) -> Result<RowRef<'a>, String> {
    let IssueState { claim, attempts, claims, phase, last_release, closed_seq, merged_commit } = issue;
    let last_release = last_release.as_ref().map(|r| {
        let Release { seq, reason, unmerged_work } = r;
        (*seq, reason.as_str(), *unmerged_work)
    });
    let claim = claim.as_deref().map(serde_json::to_string).transpose().map_err(|e| e.to_string())?;
    let phase = phase.map(Phase::as_str);
    Ok(RowRef(id, *attempts, *claims, phase, last_release, *closed_seq, merged_commit.as_deref(), claim))
}

fn entry(row: Row<'_>) -> Result<(IssueId, IssueState), String> {
    let Row(id, attempts, claims, phase, last_release, closed_seq, merged_commit, claim) = row;
    let phase = phase.map(from_name::<Phase>).transpose()?;
    let last_release = match last_release {
        Some((seq, reason, unmerged_work)) => {
            Some(Release { seq, reason: from_name::<ReleaseReason>(reason)?, unmerged_work })
        }
        None => None,
    };
    let claim = claim.map(|c| serde_json::from_str(&c).map(Box::new)).transpose().map_err(|e| e.to_string())?;
    Ok((id, IssueState { claim, attempts, claims, phase, last_release, closed_seq, merged_commit }))
}

/// The issues as parts of [`ISSUES_PER_PART`] rows, in id order.
pub fn split(issues: &BTreeMap<IssueId, IssueState>) -> Result<Vec<Vec<u8>>, String> {
    let mut parts = Vec::with_capacity(issues.len().div_ceil(ISSUES_PER_PART));
    let mut rows = Vec::with_capacity(issues.len().min(ISSUES_PER_PART));
    for (id, issue) in issues {
        rows.push(row(id, issue)?);
        if rows.len() == ISSUES_PER_PART {
            parts.push(postcard::to_allocvec(&rows).map_err(|e| e.to_string())?);
            rows.clear();
        }
    }
    if !rows.is_empty() {
        parts.push(postcard::to_allocvec(&rows).map_err(|e| e.to_string())?);
    }
    Ok(parts)
}

/// Decodes the parts, a run of consecutive parts per core, into the issues map.
pub fn parse(parts: &[Vec<u8>]) -> Result<BTreeMap<IssueId, IssueState>, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, parts.len().max(1));
    let mut runs = parts.chunks(parts.len().div_ceil(threads).max(1));
    let first = runs.next().unwrap_or_default();
    let (first, others) = std::thread::scope(|scope| {
        let others: Vec<_> = runs.map(|run| scope.spawn(move || decode_run(run, Vec::new()))).collect();
        // The first run decodes into a vector with room for every issue: the others are appended to it, and
        // the map is built from it in place.
        let first = decode_run(first, Vec::with_capacity(parts.len() * ISSUES_PER_PART));
        let others: Vec<_> =
            others.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
        (first, others)
    });
    let mut entries = first?;
    for run in others {
        entries.extend(run?);
    }
    // The ids come sorted, so the map is built in bulk (`from_iter` sorts the vector it is given, which takes
    // one pass over sorted input, and reuses its buffer), not one insert at a time.
    Ok(entries.into_iter().collect())
}

fn decode_run(run: &[Vec<u8>], mut out: Vec<(IssueId, IssueState)>) -> Result<Vec<(IssueId, IssueState)>, String> {
    out.reserve(run.len() * ISSUES_PER_PART);
    for part in run {
        let rows: Vec<Row<'_>> = postcard::from_bytes(part).map_err(|e| e.to_string())?;
        for row in rows {
            out.push(entry(row)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Claim, Worktree};

    fn issue(n: u32) -> IssueState {
        let mut issue = IssueState {
            attempts: n % 4,
            claims: n % 3,
            phase: [None, Some(Phase::Closed), Some(Phase::Running)][n as usize % 3],
            last_release: n.is_multiple_of(2).then(|| Release {
                seq: u64::from(n) * 7,
                reason: ReleaseReason::Done,
                unmerged_work: n.is_multiple_of(4),
            }),
            closed_seq: n.is_multiple_of(5).then_some(u64::from(n)),
            merged_commit: n.is_multiple_of(5).then(|| format!("{n:040x}")),
            ..IssueState::default()
        };
        if n.is_multiple_of(7) {
            let mut claim = Claim::new("s1", u64::from(n), "bdp", 1);
            claim.worktree =
                Some(Worktree { path: "/w/\"quoted\"".into(), branch: "bdp/x".into(), base: "main".into() });
            issue.claim = Some(Box::new(claim));
        }
        issue
    }

    #[test]
    fn issues_come_back_as_they_were_saved_over_many_parts() {
        let issues: BTreeMap<IssueId, IssueState> = (0..10_000).map(|n| (format!("bd-{n}"), issue(n))).collect();
        let parts = split(&issues).unwrap();
        assert_eq!(parts.len(), 10_000usize.div_ceil(ISSUES_PER_PART));
        assert_eq!(parse(&parts).unwrap(), issues);
        assert_eq!(parse(&[]).unwrap(), BTreeMap::new());
    }

    /// Format 1 as it was first written (owned strings, names through serde): the borrowed rows written now
    /// are the same bytes, so checkpoints written before read as they did.
    #[test]
    fn rows_are_written_byte_for_byte_as_format_1_always_was() {
        #[derive(Serialize)]
        struct Owned(
            String,
            u32,
            u32,
            Option<String>,
            Option<(u64, String, bool)>,
            Option<u64>,
            Option<String>,
            Option<String>,
        );
        let name = |v: serde_json::Value| v.as_str().unwrap().to_string();
        let issues: BTreeMap<IssueId, IssueState> = (0..100).map(|n| (format!("bd-{n}"), issue(n))).collect();
        let owned: Vec<Owned> = issues
            .iter()
            .map(|(id, i)| {
                Owned(
                    id.clone(),
                    i.attempts,
                    i.claims,
                    i.phase.map(|p| name(serde_json::to_value(p).unwrap())),
                    i.last_release
                        .as_ref()
                        .map(|r| (r.seq, name(serde_json::to_value(r.reason).unwrap()), r.unmerged_work)),
                    i.closed_seq,
                    i.merged_commit.clone(),
                    i.claim.as_deref().map(|c| serde_json::to_string(c).unwrap()),
                )
            })
            .collect();
        assert_eq!(split(&issues).unwrap(), vec![postcard::to_allocvec(&owned).unwrap()]);
    }

    #[test]
    fn a_damaged_part_is_an_error_not_a_short_map() {
        let issues: BTreeMap<IssueId, IssueState> = (0..10).map(|n| (format!("bd-{n}"), issue(n))).collect();
        let mut part = split(&issues).unwrap().remove(0);
        part.truncate(part.len() / 2);
        assert!(parse(&[part]).is_err());
    }
}
