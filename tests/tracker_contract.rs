//! One contract, every backend: the embedded JSONL store (always), `bd` through a FAKE bd script
//! (tests/common/fake_bd.py: bd-shaped JSON from a state file, not the real bd), and the real `br` when it
//! is on PATH (CI installs it; without it the br case prints a notice and is skipped).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bdp::event::Event;
use bdp::tracker::{CliTracker, Flavor, JsonlTracker, LabelChange, ListFilter, Tracker, TrackerError};

const SEED: &str = r#"{"id":"c-1","title":"One","status":"open","priority":1,"issue_type":"task","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}
{"id":"c-2","title":"Two","status":"open","priority":2,"issue_type":"task","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","dependencies":[{"issue_id":"c-2","depends_on_id":"c-1","type":"blocks","created_at":"2026-01-01T00:00:00Z"}]}
{"id":"c-3","title":"Three","status":"in_progress","assignee":"other","priority":2,"issue_type":"task","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}
{"id":"c-4","title":"Four","status":"closed","priority":2,"issue_type":"task","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","closed_at":"2026-01-01T00:00:00Z"}
{"id":"c-6","title":"Epic","status":"open","priority":2,"issue_type":"epic","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}
{"id":"c-5","title":"Five","status":"open","priority":3,"issue_type":"task","labels":["x"],"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","dependencies":[{"issue_id":"c-5","depends_on_id":"c-6","type":"parent-child","created_at":"2026-01-01T00:00:00Z"}]}
"#;

fn ids(issues: &[bdp::plan::Issue]) -> Vec<String> {
    let mut v: Vec<String> = issues.iter().map(|i| i.id.clone()).collect();
    v.sort();
    v
}

/// The contract every backend must meet, from the SEED state.
fn contract(t: &dyn Tracker) {
    let name = t.name();
    let all = t.list(&ListFilter::default()).unwrap();
    assert_eq!(ids(&all), ["c-1", "c-2", "c-3", "c-4", "c-5", "c-6"], "{name}: list");
    let open = t.list(&ListFilter { statuses: vec!["open".into()], ..Default::default() }).unwrap();
    assert_eq!(ids(&open), ["c-1", "c-2", "c-5", "c-6"], "{name}: list --status open");
    let labelled = t.list(&ListFilter { label: Some("x".into()), ..Default::default() }).unwrap();
    assert_eq!(ids(&labelled), ["c-5"], "{name}: list --label");
    let children = t.list(&ListFilter { parent: Some("c-6".into()), ..Default::default() }).unwrap();
    assert_eq!(ids(&children), ["c-5"], "{name}: list --parent");
    assert_eq!(t.show("c-2").unwrap().dependencies[0].depends_on_id, "c-1", "{name}: show");
    assert!(matches!(t.show("c-404"), Err(TrackerError::NotFound(_))), "{name}: show missing");

    let ready = ids(&t.ready().unwrap());
    assert!(ready.contains(&"c-1".to_string()), "{name}: ready {ready:?}");
    assert!(!ready.iter().any(|i| i == "c-2" || i == "c-3" || i == "c-4"), "{name}: ready {ready:?}");

    let mut events: Vec<Event> = Vec::new();
    let claimed = t.claim("c-1", "bdp", &mut events).unwrap();
    assert_eq!((claimed.status.as_str(), claimed.assignee.as_deref()), ("in_progress", Some("bdp")), "{name}");
    // Idempotent: claiming what one holds succeeds and changes nothing. The JSONL store skips the write; the
    // CLIs are asked once more, without a read first (br bumps `updated_at` even then), and it is recorded.
    let again = t.claim("c-1", "bdp", &mut events).unwrap();
    assert_eq!((again.status.as_str(), again.assignee.as_deref()), ("in_progress", Some("bdp")), "{name}");
    let claims = if name == "jsonl" { 1 } else { 2 };
    assert_eq!(events.len(), claims, "{name}: {events:?}");
    assert!(
        matches!(&events[0], Event::TrackerStatusSet { issue, status, assignee: Some(a), backend }
            if issue == "c-1" && status == "in_progress" && a == "bdp" && backend == name),
        "{name}: {events:?}"
    );
    match t.claim("c-1", "rival", &mut events) {
        Err(TrackerError::AlreadyClaimed { holder, .. }) => assert_eq!(holder, "bdp", "{name}"),
        other => panic!("{name}: claim by a rival gave {other:?}"),
    }
    assert!(matches!(t.claim("c-3", "bdp", &mut events), Err(TrackerError::AlreadyClaimed { .. })), "{name}");
    assert!(matches!(t.claim("c-404", "bdp", &mut events), Err(TrackerError::NotFound(_))), "{name}");
    assert_eq!(events.len(), claims, "{name}: failed claims record nothing");

    t.release("c-1", &mut events).unwrap();
    let c1 = t.show("c-1").unwrap();
    assert_eq!((c1.status.as_str(), c1.assignee.as_deref()), ("open", None), "{name}: release");

    t.set_status("c-5", "blocked", &mut events).unwrap();
    assert_eq!(t.show("c-5").unwrap().status, "blocked", "{name}: set status");
    t.set_status("c-5", "open", &mut events).unwrap();

    t.add_label("c-1", "bdp-run", &mut events).unwrap();
    assert!(t.show("c-1").unwrap().labels.contains(&"bdp-run".to_string()), "{name}: add label");
    t.remove_label("c-1", "bdp-run", &mut events).unwrap();
    assert!(!t.show("c-1").unwrap().labels.contains(&"bdp-run".to_string()), "{name}: remove label");

    t.close("c-1", "done by bdp", &mut events).unwrap();
    let c1 = t.show("c-1").unwrap();
    assert_eq!(c1.status, "closed", "{name}: close");
    assert!(ids(&t.ready().unwrap()).contains(&"c-2".to_string()), "{name}: closing c-1 unblocks c-2");

    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).skip(claims - 1).collect();
    assert_eq!(
        kinds,
        [
            "tracker_status_set",
            "tracker_status_set",
            "tracker_status_set",
            "tracker_status_set",
            "tracker_labels_changed",
            "tracker_labels_changed",
            "tracker_issue_closed"
        ],
        "{name}"
    );
    assert!(events.iter().all(|e| match e {
        Event::TrackerStatusSet { backend, .. }
        | Event::TrackerLabelsChanged { backend, .. }
        | Event::TrackerIssueClosed { backend, .. } => backend == name,
        _ => false,
    }));

    // Labels ride along with the claim and the release, and change in one write, without a read first.
    let change = |add: &[&str], remove: &[&str]| LabelChange {
        add: add.iter().map(|l| l.to_string()).collect(),
        remove: remove.iter().map(|l| l.to_string()).collect(),
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    t.take_calls();
    let claimed = t.claim_with_labels("c-2", "bdp", &change(&["phase:claimed"], &[]), &mut events).unwrap();
    assert_eq!(claimed.status, "in_progress", "{name}");
    t.change_labels("c-2", &change(&["phase:running"], &["phase:claimed"]), &mut events).unwrap();
    t.release_with_labels("c-2", &change(&["bdp:failed"], &[]), &mut events).unwrap();
    if let Some(calls) = t.take_calls() {
        // bd's claim is read back (it races); br's prints the result of its own transaction.
        let claim = if name == "bd" { 2 } else { 1 };
        assert_eq!(calls.per_issue.get("c-2"), Some(&(claim + 2)), "{name}: {calls:?}");
        assert_eq!(calls.other, 0, "{name}: {calls:?}");
    }
    let c2 = t.show("c-2").unwrap();
    assert_eq!((c2.status.as_str(), c2.assignee.as_deref()), ("open", None), "{name}");
    assert_eq!(sorted(c2.labels), ["bdp:failed", "phase:running"], "{name}");
    let n = events.len();
    let tail: Vec<&str> = events[n - 5..].iter().map(|e| e.kind()).collect();
    many(t);
    assert_eq!(
        tail,
        [
            "tracker_status_set",
            "tracker_labels_changed",
            "tracker_labels_changed",
            "tracker_status_set",
            "tracker_labels_changed"
        ],
        "{name}"
    );
}

/// Several issues at once: one call where the backend can, each issue's own result, and a refusal that
/// costs only its issue. Starts where [`contract`] ends (c-2 open, c-5 open, c-3 held by "other").
fn many(t: &dyn Tracker) {
    let name = t.name();
    let ids = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    let claimed = LabelChange { add: vec!["phase:claimed".into()], remove: vec![] };
    let mut events: Vec<Event> = Vec::new();
    t.take_calls();
    let results = t.claim_many(&ids(&["c-2", "c-5"]), "bdp", &claimed, &mut events);
    assert!(results.iter().all(Result::is_ok), "{name}: {results:?}");
    if let Some(calls) = t.take_calls() {
        // One update for both; bd reads both back in one `show`.
        assert_eq!(calls.total(), if name == "bd" { 2 } else { 1 }, "{name}: {calls:?}");
    }
    for id in ["c-2", "c-5"] {
        let i = t.show(id).unwrap();
        assert_eq!((i.status.as_str(), i.assignee.as_deref()), ("in_progress", Some("bdp")), "{name} {id}");
        assert!(i.labels.contains(&"phase:claimed".to_string()), "{name} {id}");
    }
    let running = LabelChange { add: vec!["phase:running".into()], remove: vec!["phase:claimed".into()] };
    let results = t.change_labels_many(&ids(&["c-2", "c-5"]), &running, &mut events);
    assert!(results.iter().all(Result::is_ok), "{name}: {results:?}");
    for id in ["c-2", "c-5"] {
        let labels = t.show(id).unwrap().labels;
        assert!(labels.contains(&"phase:running".to_string()) && !labels.contains(&"phase:claimed".to_string()));
    }
    t.take_calls();
    let results = t.close_many(&ids(&["c-2", "c-5"]), "done by bdp", &mut events);
    assert!(results.iter().all(Result::is_ok), "{name}: {results:?}");
    if let Some(calls) = t.take_calls() {
        assert_eq!(calls.total(), 1, "{name}: {calls:?}");
    }
    assert!(["c-2", "c-5"].iter().all(|id| t.show(id).unwrap().status == "closed"), "{name}");
    // A close of what is closed already holds (br says "nothing to do").
    t.close("c-2", "again", &mut events).unwrap();
    assert_eq!(t.show("c-2").unwrap().status, "closed", "{name}");
    // One of the batch is held by someone else: the other is claimed all the same.
    let results = t.claim_many(&ids(&["c-3", "c-6"]), "bdp", &claimed, &mut events);
    assert!(
        matches!(&results[0], Err(TrackerError::AlreadyClaimed { holder, .. }) if holder == "other"),
        "{name}: {results:?}"
    );
    assert!(results[1].is_ok(), "{name}: {results:?}");
    assert_eq!(t.show("c-6").unwrap().assignee.as_deref(), Some("bdp"), "{name}");
    assert_eq!(t.show("c-3").unwrap().assignee.as_deref(), Some("other"), "{name}");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    let closes = kinds.iter().filter(|k| **k == "tracker_issue_closed").count();
    assert_eq!(closes, 3, "{name}: {kinds:?}");
}

#[test]
fn jsonl_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".beads")).unwrap();
    std::fs::write(dir.path().join(".beads/issues.jsonl"), SEED).unwrap();
    contract(&JsonlTracker::new(dir.path().join(".beads")));
}

/// A repo dir holding the fake bd's state, and the path of a wrapper that runs the fake bd with `knobs`
/// (environment variables set to 1, so tests running in parallel do not share them).
fn fake_bd_with(knobs: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state: Vec<serde_json::Value> = SEED.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    std::fs::write(dir.path().join("fake_bd_state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/fake_bd.py");
    let bin = dir.path().join("bd");
    let env: String = knobs.iter().map(|k| format!("{k}=1 ")).collect();
    std::fs::write(&bin, format!("#!/bin/sh\n{env}exec python3 {} \"$@\"\n", script.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

fn fake_bd() -> (tempfile::TempDir, PathBuf) {
    fake_bd_with(&[])
}

#[test]
fn bd_meets_the_contract_through_a_fake_bd() {
    let (dir, bin) = fake_bd();
    contract(&CliTracker::new(Flavor::Bd, bin, dir.path().to_path_buf(), Duration::from_secs(20)));
}

#[test]
fn bd_envelope_output_is_accepted() {
    let (dir, bin) = fake_bd_with(&["FAKE_BD_ENVELOPE"]);
    let t = CliTracker::new(Flavor::Bd, bin, dir.path().to_path_buf(), Duration::from_secs(20));
    let issues = t.list(&ListFilter::default()).unwrap();
    assert_eq!(issues.len(), 6);
}

#[test]
fn a_claim_that_does_not_read_back_fails() {
    let (dir, bin) = fake_bd_with(&["FAKE_BD_LOSE_CLAIM"]);
    let t = CliTracker::new(Flavor::Bd, bin, dir.path().to_path_buf(), Duration::from_secs(20));
    let mut events = Vec::new();
    let err = t.claim("c-1", "bdp", &mut events).unwrap_err();
    assert!(matches!(err, TrackerError::ClaimNotVerified { .. }), "{err}");
    assert!(events.is_empty());
}

#[test]
fn a_hanging_bd_times_out_with_the_command_in_the_error() {
    let (dir, bin) = fake_bd_with(&["FAKE_BD_HANG"]);
    let t = CliTracker::new(Flavor::Bd, bin, dir.path().to_path_buf(), Duration::from_millis(500));
    let start = std::time::Instant::now();
    let err = t.list(&ListFilter::default()).unwrap_err();
    assert!(matches!(err, TrackerError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("list --json -n 0 --all"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_binary_and_a_failing_one_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = CliTracker::new(Flavor::Bd, dir.path().join("bd"), dir.path().to_path_buf(), Duration::from_secs(5));
    assert!(matches!(t.ready(), Err(TrackerError::Spawn { .. })));
    let (dir, bin) = fake_bd();
    std::fs::write(dir.path().join("fake_bd_state.json"), b"not json").unwrap();
    let t = CliTracker::new(Flavor::Bd, bin, dir.path().to_path_buf(), Duration::from_secs(20));
    let err = t.ready().unwrap_err();
    assert!(matches!(err, TrackerError::CommandFailed { .. }), "{err}");
    assert!(err.to_string().contains("ready --json --limit 0") && err.to_string().contains("JSONDecodeError"), "{err}");
}

#[test]
fn br_meets_the_contract_when_installed() {
    let Some(br) = bdp::tracker::find_on_path("br") else {
        eprintln!("SKIPPED: br is not on PATH (.ci/run installs it); the br backend was not tested");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&br).args(args).current_dir(dir.path()).output().unwrap();
        assert!(out.status.success(), "br {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["init", "--prefix", "c"]);
    std::fs::write(dir.path().join(".beads/issues.jsonl"), SEED).unwrap();
    run(&["sync", "--import-only"]);
    contract(&CliTracker::new(Flavor::Br, br, dir.path().to_path_buf(), Duration::from_secs(60)));
}
