//! The demo's script: twelve issues in three tracks, and what each scripted agent does for one.
//!
//! Plain data, no I/O. The sandbox (`sandbox.rs`) writes these issues to `.beads/issues.jsonl`; the
//! scripted agent (`agent.rs`) looks its issue up here by id, so nothing outside the bdp binary is needed.
//! Two things are planted on purpose:
//! - [`FLAKY`] fails its first attempt (bdp retries it, and the retry passes);
//! - [`CONFLICT_PAIR`] both append to `api/routes.txt`: the first is a root that merges while the second
//!   (branched off when its blocker was merged) still works, so the second conflicts, and bdp gives it one
//!   more attempt, told to merge main in and resolve (the scripted agent does). With two agents or more
//!   the script's times make it so (both starting issues are priority 0, the first pair's work is 1.0 s and
//!   2.5 s, the second 2.6 s), and on a slow machine the pair also wait for each other (`agent.rs`).

/// One issue of the demo and its agent's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoIssue {
    pub id: &'static str,
    pub title: &'static str,
    pub track: &'static str,
    pub priority: i64,
    /// Issues that block this one.
    pub blockers: &'static [&'static str],
    /// How long the scripted agent works.
    pub work_ms: u64,
    /// The file it writes (appends a line to), relative to the worktree.
    pub file: &'static str,
    /// The line it appends.
    pub line: &'static str,
}

/// Fails its first attempt: its agent exits 1 part of the way through.
pub const FLAKY: &str = "demo-10";
/// Both append a route to `api/routes.txt`; the second was branched before the first was merged, and
/// finishes after it: it conflicts.
pub const CONFLICT_PAIR: (&str, &str) = ("demo-6", "demo-7");
/// The file the conflicting pair both change (present in the first commit).
pub const SHARED_FILE: &str = "api/routes.txt";

pub const ISSUES: &[DemoIssue] = &[
    // parser: a chain of four.
    issue(
        "demo-1",
        "Tokenizer for the query language",
        "parser",
        1,
        &[],
        1500,
        "parser/tokenizer.txt",
        "tokens: word, quote, colon",
    ),
    issue(
        "demo-2",
        "Parser for filter expressions",
        "parser",
        1,
        &["demo-1"],
        2000,
        "parser/parser.txt",
        "grammar: expr := term (AND term)*",
    ),
    issue(
        "demo-3",
        "Pretty-printer for parsed queries",
        "parser",
        2,
        &["demo-2"],
        1500,
        "parser/printer.txt",
        "print: one clause per line",
    ),
    issue("demo-4", "Document the query language", "parser", 3, &["demo-3"], 1000, "docs/queries.md", "# Queries"),
    // api: the skeleton and the GET route start at once; the POST route starts when the skeleton is merged,
    // so its branch does not have the GET route, which is merged while it works: it conflicts.
    issue("demo-5", "HTTP server skeleton", "api", 0, &[], 1000, "api/server.txt", "listen 127.0.0.1:8080"),
    issue("demo-6", "GET /issues route", "api", 0, &[], 2500, SHARED_FILE, "GET  /issues      -> list_issues"),
    issue(
        "demo-7",
        "POST /issues route",
        "api",
        0,
        &["demo-5"],
        2600,
        SHARED_FILE,
        "POST /issues      -> create_issue",
    ),
    issue("demo-8", "Document the HTTP API", "api", 3, &["demo-5", "demo-6"], 1500, "docs/api.md", "# HTTP API"),
    // cli: a skeleton, then flags (flaky) and a config file, and completions beside them.
    issue("demo-9", "CLI skeleton", "cli", 1, &[], 1000, "cli/main.txt", "usage: demo [OPTIONS] COMMAND"),
    issue(
        "demo-10",
        "Parse --jobs and --verbose flags",
        "cli",
        1,
        &["demo-9"],
        1500,
        "cli/flags.txt",
        "--jobs N, --verbose",
    ),
    issue(
        "demo-11",
        "Read settings from a config file",
        "cli",
        2,
        &["demo-10"],
        2500,
        "cli/config.txt",
        "config: ~/.config/demo.toml",
    ),
    issue(
        "demo-12",
        "Shell completions",
        "cli",
        3,
        &["demo-9"],
        2000,
        "cli/completions.txt",
        "completions: bash zsh fish",
    ),
];

#[allow(clippy::too_many_arguments)]
const fn issue(
    id: &'static str,
    title: &'static str,
    track: &'static str,
    priority: i64,
    blockers: &'static [&'static str],
    work_ms: u64,
    file: &'static str,
    line: &'static str,
) -> DemoIssue {
    DemoIssue { id, title, track, priority, blockers, work_ms, file, line }
}

/// The issue with this id, if it is one of the demo's.
pub fn find(id: &str) -> Option<&'static DemoIssue> {
    ISSUES.iter().find(|i| i.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blockers_are_issues_of_the_same_track_listed_earlier() {
        for (n, issue) in ISSUES.iter().enumerate() {
            for blocker in issue.blockers {
                let at = ISSUES.iter().position(|i| i.id == *blocker).expect("a blocker is a demo issue");
                assert!(at < n, "{} is blocked by a later issue {blocker}", issue.id);
                assert_eq!(ISSUES[at].track, issue.track, "{} crosses tracks", issue.id);
            }
        }
    }

    #[test]
    fn the_planted_cases_exist_and_the_conflicting_pair_starts_together() {
        assert!(find(FLAKY).is_some());
        let (a, b) = (find(CONFLICT_PAIR.0).unwrap(), find(CONFLICT_PAIR.1).unwrap());
        assert_eq!((a.file, b.file), (SHARED_FILE, SHARED_FILE));
        assert!(a.blockers.is_empty(), "the first starts at once");
        let blocker = find(b.blockers[0]).unwrap();
        assert!(blocker.blockers.is_empty() && blocker.work_ms + 1000 < a.work_ms, "the second branches off early");
        assert!(blocker.work_ms + b.work_ms > a.work_ms + 1000, "and finishes well after the first merged");
        // Neither blocks anything that the demo needs finished, except through the first one.
        assert!(ISSUES.iter().all(|i| !i.blockers.contains(&b.id)), "the conflicted issue blocks nothing");
    }

    #[test]
    fn three_tracks_of_four() {
        for track in ["parser", "api", "cli"] {
            assert_eq!(ISSUES.iter().filter(|i| i.track == track).count(), 4, "{track}");
        }
        assert_eq!(ISSUES.len(), 12);
    }
}
