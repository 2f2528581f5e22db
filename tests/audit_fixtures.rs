//! `bdp audit` on the audit fixtures (`replay-fixtures/audit-*`, one per finding kind that can be built
//! statically; see tests/common/audit_support): each is rebuilt from its builder (so it cannot drift), then
//! `bdp audit` and `bdp audit --json` are snapshot-tested with their exit codes, and where there are safe
//! repairs, `bdp audit --fix` followed by `bdp audit`, with the events the fix appended.
//!
//! Regenerate the committed fixtures after changing a builder: `BDP_BLESS=1 cargo test --test runner -- audit_fixtures::`.

use crate::common::audit_support;

use std::path::Path;

use audit_support::{AUDIT_FIXTURES, AuditFixture, bdp, events, files, fixtures_dir, materialize, shown};
use serde_json::Value;

#[test]
fn committed_audit_fixtures_match_their_builders() {
    for f in AUDIT_FIXTURES {
        let tmp = tempfile::tempdir().unwrap();
        (f.build)(tmp.path());
        let built = files(tmp.path());
        let committed_root = fixtures_dir().join(f.name);
        if std::env::var_os("BDP_BLESS").is_some() {
            let _ = std::fs::remove_dir_all(&committed_root);
            for (rel, bytes) in &built {
                let path = committed_root.join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
        }
        let committed = files(&committed_root);
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&committed), names(&built), "replay-fixtures/{}: files differ (BDP_BLESS=1)", f.name);
        assert!(committed == built, "replay-fixtures/{} differs from its builder (BDP_BLESS=1 regenerates)", f.name);
    }
}

/// The kinds of the findings of an `--json` report.
fn kinds(report: &Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_string()).collect()
}

fn json(root: &Path, args: &[&str]) -> (Value, i32) {
    let (stdout, stderr, code) = bdp(root, args);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bdp {args:?}: {e}\n{stdout}\n{stderr}"));
    (value, code)
}

/// The events appended since `before` records, one compact JSON line each.
fn appended(root: &Path, before: usize) -> String {
    let text: String = events(root)[before..].iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
    text.replace(&root.display().to_string(), "[REPO]")
}

fn check(f: &AuditFixture) {
    let name = f.name;
    let tmp = materialize(f);
    let root = tmp.path();
    // What it finds, and the exit code that goes with it.
    let (report, code) = json(root, &["audit", "--json"]);
    assert_eq!(kinds(&report), f.finds, "{name}: the findings");
    assert_eq!(code, if f.finds.is_empty() { 0 } else { 1 }, "{name}: the exit code");
    assert_eq!(report["summary"]["findings"], f.finds.len(), "{name}");
    let safe = report["summary"]["fixable"].as_u64().unwrap();
    assert_eq!(safe > 0, f.left_after_fix.is_some(), "{name}: has safe repairs");
    let (human, human_code) = shown(root, &["audit"]);
    assert_eq!(human_code, code, "{name}");
    let (json_text, _) = shown(root, &["audit", "--json"]);
    // Looking changes nothing.
    let before = events(root).len();
    assert_eq!(json(root, &["audit", "--json"]).0, report, "{name}: a second look");
    let mut transcript = human;
    if let Some(left) = f.left_after_fix {
        let (fixed, fix_code) = shown(root, &["audit", "--fix"]);
        let added = appended(root, before);
        let (after, after_code) = json(root, &["audit", "--json"]);
        assert_eq!(kinds(&after), *left, "{name}: what --fix leaves");
        assert_eq!(fix_code, if left.is_empty() { 0 } else { 1 }, "{name}: exit code of --fix");
        assert_eq!(after_code, fix_code, "{name}: exit code after --fix");
        // Each safe repair is in the log, once.
        let repairs = events(root)[before..].iter().filter(|e| e["type"] == "repair_applied").count();
        assert_eq!(repairs as u64, safe, "{name}: repair_applied events");
        let (again, _) = shown(root, &["audit"]);
        transcript = format!("{transcript}\n{fixed}--- appended to the log\n{added}\n{again}");
    }
    // The start time of pid 1 (in a reused-pid world text) is the machine's.
    insta::with_settings!({filters => vec![(r"started at tick \d+", "started at tick [TICK]")]}, {
        insta::assert_snapshot!(format!("{name}__human"), transcript);
    });
    let mut json_transcript = json_text;
    if f.left_after_fix.is_some() {
        // On a fresh copy: the report of --fix --json (fixed, and what is left).
        let tmp = materialize(f);
        let (fixed, _) = shown(tmp.path(), &["audit", "--fix", "--json"]);
        json_transcript = format!("{json_transcript}\n{fixed}");
    }
    insta::with_settings!({filters => vec![(r"started at tick \d+", "started at tick [TICK]")]}, {
        insta::assert_snapshot!(format!("{name}__json"), json_transcript);
    });
}

#[test]
fn audit_snapshots_on_every_fixture() {
    for f in AUDIT_FIXTURES {
        check(f);
    }
}
