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

/// Declared paths (`paths:` labels, metadata `files`) and `[ownership]`: the pairs that will not run at
/// once, the order of a sequential zone, a makespan that keeps both, and a hostile path named.
#[test]
fn ownership_rules_and_declared_paths() {
    let repo = repo_with(&fixture("ownership.jsonl"));
    std::fs::create_dir_all(repo.path().join(".bdp")).unwrap();
    std::fs::write(
        repo.path().join(".bdp/config.toml"),
        "[ownership]\n\"migrations/**\" = \"sequential\"\n\"Cargo.lock\" = \"exclusive\"\n",
    )
    .unwrap();
    insta::assert_snapshot!("ownership_text", plan_text(repo.path(), &["--agents", "4"]));
    let json = plan_json(repo.path(), &["--agents", "4"]);
    let pairs: Vec<(&str, &str)> = json["collisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["a"].as_str().unwrap(), c["b"].as_str().unwrap()))
        .collect();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    assert!(pairs.contains(&("own-1", "own-2")) || pairs.contains(&("own-2", "own-1")), "{pairs:?}");
    assert_eq!(json["sequences"][0]["ids"], serde_json::json!(["own-3", "own-4"]));
    // Six issues of one unit on six agents take one unit, but the pair own-1/own-2 and the sequence
    // own-3 → own-4 each take two.
    let six = plan_json(repo.path(), &["--agents", "6"]);
    assert_eq!(six["makespan"]["with_agents"], 2);
    assert_eq!(six["makespan"]["single_agent"], 6);
    std::fs::rename(repo.path().join(".beads/issues.jsonl"), repo.path().join("kept.jsonl")).unwrap();
    let undeclared: String = std::fs::read_to_string(repo.path().join("kept.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("labels");
            v.as_object_mut().unwrap().remove("metadata");
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(repo.path().join(".beads/issues.jsonl"), undeclared).unwrap();
    assert_eq!(
        plan_json(repo.path(), &["--agents", "6"])["makespan"]["with_agents"],
        1,
        "nothing declared: all at once"
    );
    std::fs::rename(repo.path().join("kept.jsonl"), repo.path().join(".beads/issues.jsonl")).unwrap();
    let problems = json["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["kind"] == "bad_path" && p["detail"].as_str().unwrap().starts_with("own-6:")),
        "{problems:?}"
    );
    // A bad rule is refused, naming the file.
    std::fs::write(repo.path().join(".bdp/config.toml"), "[ownership]\n\"/etc\" = \"exclusive\"\n").unwrap();
    let out = bdp(repo.path()).args(["plan", "--now", NOW]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml: [ownership] \"/etc\" is outside the repository"), "{err}");
    std::fs::write(repo.path().join(".bdp/config.toml"), "[ownership]\n\"a\" = \"sometimes\"\n").unwrap();
    let out = bdp(repo.path()).args(["plan", "--now", NOW]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.toml line 2") && err.contains("sometimes"), "{err}");
}
