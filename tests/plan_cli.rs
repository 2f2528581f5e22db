//! `bdp plan` end to end on small fixture graphs (tests/fixtures/plan/) and the real beads files in
//! ../shared/fixtures/: insta snapshots of text and JSON, the JSON validated against schema/plan.schema.json.

use std::path::{Path, PathBuf};

use serde_json::Value;
use std::process::Command;

const NOW: &str = "2026-06-01T00:00:00Z";

/// A temp repo whose `.beads/issues.jsonl` is a copy of `source`.
fn repo_with(source: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".beads")).unwrap();
    std::fs::copy(source, dir.path().join(".beads/issues.jsonl")).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan").join(name)
}

fn shared_fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    assert!(
        dir.is_dir(),
        "missing {}: the real beads fixtures must sit next to the project (see README)",
        dir.display()
    );
    dir
}

fn bdp(repo: &Path) -> Command {
    let mut cmd = crate::common::bdp(repo);
    cmd.arg("--tracker").arg("jsonl").env("PATH", "/usr/bin:/bin");
    cmd
}

fn plan_text(repo: &Path, extra: &[&str]) -> String {
    let out = bdp(repo).args(["plan", "--now", NOW]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn plan_json(repo: &Path, extra: &[&str]) -> Value {
    let out = bdp(repo).args(["plan", "--json", "--now", NOW]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    validate(&value);
    value
}

fn validate(value: &Value) {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/plan.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "plan --json does not match schema/plan.schema.json: {errors:#?}");
}

#[test]
fn diamond() {
    let repo = repo_with(&fixture("diamond.jsonl"));
    insta::assert_snapshot!("diamond_text", plan_text(repo.path(), &["--agents", "2"]));
    insta::assert_json_snapshot!("diamond_json", plan_json(repo.path(), &["--agents", "2"]));
}

#[test]
fn three_independent_tracks() {
    let repo = repo_with(&fixture("three-tracks.jsonl"));
    let json = plan_json(repo.path(), &["--agents", "3"]);
    assert_eq!(json["tracks"].as_array().unwrap().len(), 3);
    insta::assert_snapshot!("three_tracks_text", plan_text(repo.path(), &["--agents", "3"]));
    insta::assert_json_snapshot!("three_tracks_json", json);
    // --label keeps blockers outside the label in mind but shows only labelled issues.
    let docs = plan_json(repo.path(), &["--label", "docs"]);
    assert_eq!(docs["summary"]["issues"], 2);
    assert_eq!(docs["tracks"][0]["ready"][0]["id"], "tt-4");
}

#[test]
fn epic_of_200() {
    let repo = repo_with(&fixture("epic-200.jsonl"));
    let json = plan_json(repo.path(), &["--agents", "8", "--epic", "ep-0"]);
    assert_eq!(json["summary"]["issues"], 201);
    insta::assert_snapshot!("epic_200_text", plan_text(repo.path(), &["--agents", "8", "--epic", "ep-0"]));
    insta::assert_json_snapshot!("epic_200_json", json);
    let backend = plan_json(repo.path(), &["--agents", "8", "--label", "backend"]);
    assert_eq!(backend["summary"]["issues"], 100);
}

#[test]
fn unknown_epic_is_a_user_error() {
    let repo = repo_with(&fixture("diamond.jsonl"));
    let out = bdp(repo.path()).args(["plan", "--epic", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no issue nope"));
}

#[test]
fn every_real_fixture_plans_and_matches_the_schema() {
    for entry in std::fs::read_dir(shared_fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let repo = repo_with(&path);
        let json = plan_json(repo.path(), &[]);
        assert!(json["summary"]["issues"].as_u64().unwrap() > 0, "{}", path.display());
        plan_text(repo.path(), &[]);
    }
}

#[test]
fn malformed_line_is_an_error_naming_file_and_line_and_nothing_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".beads")).unwrap();
    let body = b"{\"id\":\"a\",\"title\":\"A\",\"status\":\"open\"}\n{\"id\":\"b\",\"title\":\n";
    std::fs::write(dir.path().join(".beads/issues.jsonl"), body).unwrap();
    let out = bdp(dir.path()).arg("plan").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("issues.jsonl:2:"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join(".beads/issues.jsonl")).unwrap(), body);
}

#[test]
fn missing_beads_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bdp(dir.path()).arg("plan").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no .beads directory"), "{stderr}");
}

#[test]
fn auto_refuses_a_database_whose_binary_is_missing() {
    let repo = repo_with(&fixture("diamond.jsonl"));
    std::fs::write(repo.path().join(".beads/beads.db"), b"").unwrap();
    let out = crate::common::bdp(repo.path()).args(["plan"]).env("PATH", "/nonexistent").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("br is not on PATH") && stderr.contains("--tracker jsonl"), "{stderr}");
    // --tracker jsonl overrides, knowingly.
    let out = bdp(repo.path()).arg("plan").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tracker: jsonl"));
}

#[test]
fn empty_file_plans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".beads")).unwrap();
    std::fs::write(dir.path().join(".beads/issues.jsonl"), b"").unwrap();
    let json = plan_json(dir.path(), &[]);
    assert_eq!(json["summary"]["issues"], 0);
    assert_eq!(json["makespan"]["with_agents"], 0);
}
