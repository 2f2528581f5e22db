//! How a checkpoint keeps its issues: compact rows, a few thousand to a part, parsed in parallel.
//!
//! A long run's state is mostly issues at rest (80 000 of them after a 1M-record run of no-op agents). As
//! `State`'s own JSON they are 15 MB, 176 bytes an issue, half of it field names; parsed on one thread they
//! took ~40 ms of a recovery. Here an issue is a JSON array (`["bd-7",1,1,"closed",[217,"done",false],214,
//! "2b24…",null]`), and the parts are parsed one run of parts per core.
//!
//! The row is this module's own shape, not part of any contract: it converts to and from `IssueState` by
//! destructuring every field, so a field added to `IssueState` or `Release` does not compile until it is
//! added here too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{IssueId, Phase, ReleaseReason};
use crate::state::{Claim, IssueState, Release};

/// Issues per part.
pub const ISSUES_PER_PART: usize = 4096;

/// An issue as a part stores it: id, attempts, claims, phase, last release (seq, reason, unmerged work),
/// closed seq, merged commit, claim.
#[derive(Serialize, Deserialize)]
struct Row(
    IssueId,
    u32,
    u32,
    Option<Phase>,
    Option<(u64, ReleaseReason, bool)>,
    Option<u64>,
    Option<String>,
    Option<Box<Claim>>,
);

/// An issue read back from a row.
#[derive(Deserialize)]
#[serde(from = "Row")]
struct Entry(IssueId, IssueState);

impl From<Row> for Entry {
    fn from(Row(id, attempts, claims, phase, last_release, closed_seq, merged_commit, claim): Row) -> Entry {
        let last_release = last_release.map(|(seq, reason, unmerged_work)| Release { seq, reason, unmerged_work });
        Entry(id, IssueState { claim, attempts, claims, phase, last_release, closed_seq, merged_commit })
    }
}

fn row(id: &IssueId, issue: &IssueState) -> Row {
    let IssueState { claim, attempts, claims, phase, last_release, closed_seq, merged_commit } = issue;
    let last_release = last_release.as_ref().map(|r| {
        let Release { seq, reason, unmerged_work } = r;
        (*seq, *reason, *unmerged_work)
    });
    Row(id.clone(), *attempts, *claims, *phase, last_release, *closed_seq, merged_commit.clone(), claim.clone())
}

/// The issues as parts of [`ISSUES_PER_PART`] rows, in id order.
pub fn split(issues: &BTreeMap<IssueId, IssueState>) -> serde_json::Result<Vec<String>> {
    let rows: Vec<Row> = issues.iter().map(|(id, issue)| row(id, issue)).collect();
    rows.chunks(ISSUES_PER_PART).map(serde_json::to_string).collect()
}

/// Parses the parts, a run of consecutive parts per core, into the issues map.
pub fn parse(parts: &[Vec<u8>]) -> serde_json::Result<BTreeMap<IssueId, IssueState>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, parts.len().max(1));
    let mut runs = parts.chunks(parts.len().div_ceil(threads).max(1));
    let first = runs.next().unwrap_or_default();
    let results: Vec<serde_json::Result<Vec<Part>>> = std::thread::scope(|scope| {
        let others: Vec<_> = runs.map(|run| scope.spawn(move || parse_run(run))).collect();
        let mut results = vec![parse_run(first)];
        results.extend(others.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))));
        results
    });
    let mut parsed = Vec::with_capacity(results.len());
    for result in results {
        parsed.extend(result?);
    }
    let mut entries = Vec::with_capacity(parsed.iter().map(|p| p.0.len()).sum());
    for part in parsed {
        entries.extend(part.0.into_iter().map(|Entry(id, issue)| (id, issue)));
    }
    // The ids come sorted: the map is built in bulk, not one insert at a time.
    Ok(entries.into_iter().collect())
}

fn parse_run(run: &[Vec<u8>]) -> serde_json::Result<Vec<Part>> {
    run.iter().map(|part| serde_json::from_slice(part)).collect()
}

/// A part's rows, read into a vector made for a whole part at once.
struct Part(Vec<Entry>);

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Part, D::Error> {
        struct Rows;
        impl<'de> serde::de::Visitor<'de> for Rows {
            type Value = Part;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of issue rows")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Part, A::Error> {
                let mut rows = Vec::with_capacity(ISSUES_PER_PART);
                while let Some(entry) = seq.next_element()? {
                    rows.push(entry);
                }
                Ok(Part(rows))
            }
        }
        deserializer.deserialize_seq(Rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Worktree;

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
        let bytes: Vec<Vec<u8>> = parts.into_iter().map(String::into_bytes).collect();
        assert_eq!(parse(&bytes).unwrap(), issues);
        assert_eq!(parse(&[]).unwrap(), BTreeMap::new());
    }

    #[test]
    fn a_damaged_part_is_an_error_not_a_short_map() {
        let issues: BTreeMap<IssueId, IssueState> = (0..10).map(|n| (format!("bd-{n}"), issue(n))).collect();
        let mut part = split(&issues).unwrap().remove(0).into_bytes();
        part.truncate(part.len() / 2);
        assert!(parse(&[part]).is_err());
    }
}
