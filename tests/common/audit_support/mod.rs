//! The audit fixtures (`replay-fixtures/audit-*`): deterministic builders of a log (fixed clock), the
//! tracker's view (`.beads/issues.jsonl`), lock files and exit files that each show one kind of finding of
//! `bdp audit`; the set-up some of them need around the copied fixture at test time (a git repository, a
//! checkpoint index); and helpers to run `bdp` on them. `builders.rs` has one builder per fixture,
//! `pieces.rs` the events and files they are made of, `around.rs` the set-up made at test time.
//!
//! Pids: `DEAD_*` pids (4194000 and up) are above any pid a test machine hands out, so they are gone.
//! pid 1 with start time 999999999 is a reused pid: pid 1 runs, but it did not start then.
//! Regenerate the committed fixtures after changing a builder: `BDP_BLESS=1 cargo test --test runner -- audit_fixtures::`.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod around;
mod builders;
mod pieces;

pub use around::*;
pub use builders::*;
pub use pieces::*;

/// The orchestrator of the crashed sessions (gone).
pub const DEAD_ORCHESTRATOR: u32 = 4_194_000;
/// A start time pid 1 cannot have (it started at boot, a few ticks in).
pub const NOT_INITS_START: u64 = 999_999_999;

/// One audit fixture: how to build it, what the test sets up around it, and what `bdp audit` must say.
pub struct AuditFixture {
    /// `replay-fixtures/<name>/`.
    pub name: &'static str,
    pub build: fn(&Path),
    /// What the test builds around the copied fixture (git, an index), if anything.
    pub around: Option<fn(&Path)>,
    /// The finding kinds `bdp audit` reports on it, in order.
    pub finds: &'static [&'static str],
    /// With safe repairs: the kinds left after `bdp audit --fix` (empty: exit 0). `None`: no safe repair.
    pub left_after_fix: Option<&'static [&'static str]>,
}

pub const AUDIT_FIXTURES: &[AuditFixture] = &[
    AuditFixture { name: "audit-clean", build: build_clean, around: None, finds: &[], left_after_fix: None },
    AuditFixture {
        name: "audit-log-damaged",
        build: build_log_damaged,
        around: None,
        finds: &["log_damaged"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-checkpoint-mismatch",
        build: build_clean,
        around: Some(bad_checkpoints),
        finds: &["checkpoint_mismatch", "checkpoint_mismatch"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-agent-exited-unrecorded",
        build: build_agent_exited_unrecorded,
        around: None,
        finds: &["agent_exited_unrecorded", "agent_exited_unrecorded"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-agent-crashed",
        build: build_agent_crashed,
        around: None,
        finds: &["agent_crashed", "agent_crashed", "agent_crashed", "agent_crashed"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-spawn-unconfirmed-exited",
        build: build_spawn_unconfirmed_exited,
        around: None,
        finds: &["spawn_unconfirmed_exited"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-spawn-unconfirmed-gone",
        build: build_spawn_unconfirmed_gone,
        around: None,
        finds: &["spawn_unconfirmed_gone"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-step-interrupted",
        build: build_step_interrupted,
        around: None,
        finds: &[
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
            "step_interrupted",
        ],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claim-not-in-tracker",
        build: build_claim_not_in_tracker,
        around: None,
        finds: &["claim_not_in_tracker", "step_interrupted", "claim_not_in_tracker"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claim-taken",
        build: build_claim_taken,
        around: None,
        finds: &["claim_taken"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claim-closed-elsewhere",
        build: build_claim_closed_elsewhere,
        around: None,
        finds: &["claim_closed_elsewhere"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-claimed-issue-missing",
        build: build_claimed_issue_missing,
        around: None,
        finds: &["claimed_issue_missing"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-tracker-claim-without-log",
        build: build_tracker_claim_without_log,
        around: None,
        finds: &["tracker_claim_without_log", "tracker_claim_without_log"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-lock-holder-dead",
        build: build_lock_holder_dead,
        around: None,
        finds: &["lock_holder_dead", "lock_holder_dead", "step_interrupted"],
        left_after_fix: Some(&["lock_holder_dead", "step_interrupted"]),
    },
    AuditFixture {
        name: "audit-lock-of-finished-issue",
        build: build_lock_of_finished_issue,
        around: None,
        finds: &["lock_of_finished_issue"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-lock-file-without-lock",
        build: build_lock_file_without_lock,
        around: None,
        finds: &["lock_file_without_lock", "lock_file_without_lock"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-lock-file-missing",
        build: build_lock_file_missing,
        around: None,
        finds: &["lock_file_missing"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-worktree-without-claim",
        build: build_worktree_without_claim,
        around: Some(worktrees_around),
        finds: &["worktree_without_claim", "branch_without_claim"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-branch-without-claim",
        build: build_branch_without_claim,
        around: Some(branches_around),
        finds: &["branch_without_claim", "branch_without_claim"],
        left_after_fix: Some(&[]),
    },
    AuditFixture {
        name: "audit-merge-unrecorded",
        build: build_merge_unrecorded,
        around: Some(merged_around),
        finds: &["merge_unrecorded"],
        left_after_fix: None,
    },
    AuditFixture {
        name: "audit-merge-interrupted",
        build: build_merge_interrupted,
        around: Some(unmerged_around),
        finds: &["merge_interrupted", "merge_interrupted"],
        left_after_fix: None,
    },
];

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("replay-fixtures")
}

pub fn fixture(name: &str) -> &'static AuditFixture {
    AUDIT_FIXTURES.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no audit fixture {name}"))
}

/// Every file under `dir`, as (path relative to `dir`, bytes), sorted.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A copy of the committed fixture in a temp dir (commands must not write into the committed one), with
/// what the test builds around it.
pub fn materialize(f: &AuditFixture) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, bytes) in files(&fixtures_dir().join(f.name)) {
        let path = tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    if let Some(around) = f.around {
        around(tmp.path());
    }
    tmp
}

/// `bdp --repo ROOT ARGS`: (stdout, stderr, exit code).
pub fn bdp(root: &Path, args: &[&str]) -> (String, String, i32) {
    let out = crate::common::bdp(root).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code().unwrap_or(-1))
}

/// The command, its output and its exit code, as a snapshot shows them.
pub fn shown(root: &Path, args: &[&str]) -> (String, i32) {
    let text = crate::common::transcript(root, args);
    let code = text.rsplit("--- exit ").next().and_then(|c| c.trim().parse().ok()).unwrap_or(-1);
    (text, code)
}

/// Validates a `bdp audit --json` report against schema/audit.schema.json.
pub fn assert_valid_audit_json(report: &serde_json::Value, what: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/audit.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(report).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} does not match schema/audit.schema.json:\n{}", errors.join("\n"));
}

/// The events of every log record (in order).
pub fn events(root: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (_, bytes) in files(&root.join(".bdp/events")) {
        for line in String::from_utf8(bytes).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push(record["event"].clone());
        }
    }
    out
}
