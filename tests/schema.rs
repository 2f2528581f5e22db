//! schema/: the record, state and audit schemas are generated from the Rust types (and must match the
//! committed files); every replay fixture's records, the `--json` output of verify, replay and status on
//! every fixture, and of `bdp audit` (and `--fix`) on every audit fixture, must validate against the
//! committed schemas.
//!
//! After changing an event or the state: `BDP_BLESS=1 cargo test --test runner -- schema::` rewrites the generated files.

use crate::common;
use crate::common::audit_support;

use std::path::{Path, PathBuf};

use bdp::event::record::{chain_hex, decode_line, split_line};
use serde_json::Value;

/// A record as it is on disk: the envelope, the event, and the chain value (see schema/README.md).
#[derive(schemars::JsonSchema)]
#[schemars(title = "bdp log record", description = "One line of .bdp/events/NNNNNN.jsonl.")]
#[allow(dead_code)]
struct Record {
    /// Gapless, from 1.
    #[schemars(range(min = 1))]
    seq: u64,
    /// Format version of the record (older versions are upcast when read).
    #[schemars(range(min = 1, max = bdp::event::FORMAT_VERSION))]
    v: u32,
    /// RFC 3339 UTC timestamp with milliseconds.
    ts: String,
    /// The session that wrote the record.
    session: String,
    event: bdp::event::Event,
    /// blake3(previous chain value ‖ body), 64 lowercase hex digits.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    chain: String,
}

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn check_generated(file: &str, generated: &schemars::Schema) {
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    let path = schema_dir().join(file);
    if std::env::var_os("BDP_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(committed, text, "schema/{file} is out of date: BDP_BLESS=1 cargo test --test runner -- schema::");
}

#[test]
fn generated_schemas_match_the_committed_files() {
    check_generated("record.schema.json", &schemars::schema_for!(Record));
    check_generated("state.schema.json", &schemars::schema_for!(bdp::state::State));
    check_generated("audit.schema.json", &schemars::schema_for!(bdp::cli::commands::audit::AuditReport));
    check_generated("summary.schema.json", &schemars::schema_for!(bdp::activity::Report));
}

#[test]
fn json_output_of_summary_validates_on_every_fixture() {
    let summary = load("summary.schema.json");
    let mut checked = 0;
    for (name, build) in common::FIXTURES {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let out = common::bdp(tmp.path()).args(["summary", "--json"]).output();
        let Ok(value) = serde_json::from_slice::<Value>(&out.unwrap().stdout) else {
            assert_eq!(*name, "corrupt-middle", "{name}: summary --json printed no JSON");
            continue;
        };
        assert_valid(&summary, &value, &format!("{name}: summary --json"));
        assert_eq!(value["schema"], "bdp.summary/1");
        checked += 1;
    }
    assert_eq!(checked, common::FIXTURES.len() - 1);
    // Not vacuous: another version, or a session state that does not exist, is refused.
    let tmp = tempfile::tempdir().unwrap();
    common::build_recovery(tmp.path());
    let out = common::bdp(tmp.path()).args(["summary", "--json"]).output();
    let mut bad: Value = serde_json::from_slice(&out.unwrap().stdout).unwrap();
    assert!(summary.is_valid(&bad));
    bad["sessions"][0]["end"] = "sleeping".into();
    assert!(!summary.is_valid(&bad));
    bad["sessions"][0]["end"] = "crashed".into();
    bad["schema"] = "bdp.summary/2".into();
    assert!(!summary.is_valid(&bad));
}

fn load(file: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_dir().join(file)).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema/{file} is not a valid schema: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} does not match its schema:\n{}", errors.join("\n"));
}

#[test]
fn every_fixture_record_validates_against_the_record_schema() {
    let record_schema = load("record.schema.json");
    let mut checked = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("replay-fixtures")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue; // the README
        }
        let segment = dir.join(".bdp/events/000001.jsonl");
        let bytes = std::fs::read(&segment).unwrap();
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() || !line.ends_with(b"}") {
                continue; // a torn tail is not a record
            }
            let what = format!("{}:{}", segment.display(), i + 1);
            let record = decode_line(line).unwrap_or_else(|e| panic!("{what}: {e}"));
            // The upcast record, as the current version writes it.
            let mut value = serde_json::to_value(&record).unwrap();
            value["v"] = bdp::event::FORMAT_VERSION.into();
            value["chain"] = chain_hex(&split_line(line).unwrap().chain).into();
            assert_valid(&record_schema, &value, &what);
            if record.v == bdp::event::FORMAT_VERSION {
                let raw: Value = serde_json::from_slice(line).unwrap();
                assert_valid(&record_schema, &raw, &what);
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} records checked: are the fixtures there?");
    // And the schema is not vacuous: an unknown event type or a short chain value is refused.
    let bad_type: Value =
        serde_json::from_str(r#"{"seq":1,"v":2,"ts":"t","session":"s","event":{"type":"teleported"},"chain":"00"}"#)
            .unwrap();
    assert!(!record_schema.is_valid(&bad_type));
    let mut good: Value = serde_json::from_str(
        r#"{"seq":1,"v":2,"ts":"t","session":"s","event":{"type":"session_ended","reason":"completed"},"chain":""}"#,
    )
    .unwrap();
    good["chain"] = "0".repeat(64).into();
    assert!(record_schema.is_valid(&good));
    good["chain"] = "0".repeat(63).into();
    assert!(!record_schema.is_valid(&good));
}

#[test]
fn json_output_of_verify_and_replay_validates_on_every_fixture() {
    let verify = load("verify.schema.json");
    let replay = load("replay.schema.json");
    let state = load("state.schema.json");
    for (name, build) in common::FIXTURES {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let run = |args: &[&str]| -> Option<Value> {
            let out = common::bdp(tmp.path()).args(args).output().unwrap();
            serde_json::from_slice(&out.stdout).ok()
        };
        let v = run(&["verify", "--json"]).unwrap_or_else(|| panic!("{name}: verify --json printed no JSON"));
        assert_valid(&verify, &v, &format!("{name}: verify --json"));
        if v["ok"] == false {
            continue;
        }
        let sessions = run(&["replay", "--json"]).unwrap();
        assert_valid(&replay, &sessions, &format!("{name}: replay --json"));
        let first = sessions["sessions"][0]["id"].as_str().unwrap().to_string();
        assert_valid(&replay, &run(&["replay", &first, "--json"]).unwrap(), &format!("{name}: replay SESSION"));
        let at = run(&["replay", "--at", "2", "--json"]).unwrap();
        assert_valid(&replay, &at, &format!("{name}: replay --at"));
        assert_valid(&state, &at["state"], &format!("{name}: replay --at (state)"));
        let timeline = run(&["replay", &first, "--json"]).unwrap();
        if let Some(issue) = timeline["events"].as_array().unwrap().iter().find_map(|r| r["event"]["issue"].as_str()) {
            let history = run(&["replay", "--issue", issue, "--json"]).unwrap();
            assert_valid(&replay, &history, &format!("{name}: replay --issue"));
        }
    }
}

#[test]
fn json_output_of_status_validates_on_every_fixture_and_without_data() {
    let status = load("status.schema.json");
    let run = |root: &Path| -> Value {
        let out = common::bdp(root).args(["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json in {}: {e}", root.display()))
    };
    let empty = tempfile::tempdir().unwrap();
    let value = run(empty.path());
    assert_valid(&status, &value, "status --json without .bdp");
    assert_eq!(value["initialized"], false);
    for (name, build) in common::FIXTURES {
        if *name == "corrupt-middle" {
            continue; // status refuses a damaged log (exit 2, no JSON)
        }
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let value = run(tmp.path());
        assert_valid(&status, &value, &format!("{name}: status --json"));
        assert_eq!(value["schema"], "bdp.status/1");
    }
    // Not vacuous: an unknown session state is refused.
    let mut bad = run(empty.path());
    bad["session"] = serde_json::json!({"id": "s", "state": "sleeping", "started_at": "t", "pid": 1,
        "ended_at": null, "end_reason": null, "counts": {}});
    assert!(!status.is_valid(&bad));
}

#[test]
fn json_output_of_audit_validates_on_every_audit_fixture() {
    let audit = load("audit.schema.json");
    let run = |root: &Path, args: &[&str]| -> Value {
        let (stdout, stderr, _) = audit_support::bdp(root, args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bdp {args:?} in {}: {e}\n{stderr}", root.display()))
    };
    let mut kinds = std::collections::BTreeSet::new();
    for f in audit_support::AUDIT_FIXTURES {
        let tmp = audit_support::materialize(f);
        let report = run(tmp.path(), &["audit", "--json"]);
        assert_valid(&audit, &report, &format!("{}: audit --json", f.name));
        assert_eq!(report["schema"], "bdp.audit/1");
        for finding in report["findings"].as_array().unwrap() {
            kinds.insert(finding["kind"].as_str().unwrap().to_string());
        }
        let fixed = run(tmp.path(), &["audit", "--fix", "--json"]);
        assert_valid(&audit, &fixed, &format!("{}: audit --fix --json", f.name));
    }
    // Every kind and repair the fixtures show went through the schema (the live ones: tests/audit_live.rs).
    assert_eq!(kinds.len(), 20, "{kinds:?}");
    // Not vacuous: an unknown finding kind, or a repair without its fields, is refused.
    let tmp = audit_support::materialize(audit_support::fixture("audit-lock-holder-dead"));
    let mut bad = run(tmp.path(), &["audit", "--json"]);
    assert!(audit.is_valid(&bad));
    bad["findings"][0]["kind"] = "teleported".into();
    assert!(!audit.is_valid(&bad));
    let mut bad = run(tmp.path(), &["audit", "--json"]);
    bad["findings"][0]["repair"] = serde_json::json!({"action": "take_over_lock"});
    assert!(!audit.is_valid(&bad));
    let mut bad = run(tmp.path(), &["audit", "--json"]);
    bad["schema"] = "bdp.audit/2".into();
    assert!(!audit.is_valid(&bad));
}
