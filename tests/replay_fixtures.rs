//! The replay fixtures in `replay-fixtures/`: each is rebuilt from its builder (so they cannot drift) and
//! `bdp verify` / `bdp replay` on it are snapshot-tested, human and `--json`.
//!
//! To regenerate the committed fixtures after changing a builder: `BDP_BLESS=1 cargo test --test runner -- replay_fixtures::`.

use crate::common;

use std::path::{Path, PathBuf};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("replay-fixtures")
}

fn event_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let dir = root.join(".bdp/events");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        out.push((path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()));
    }
    out
}

#[test]
fn committed_fixtures_match_their_builders() {
    for (name, build) in common::FIXTURES {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let built = event_files(tmp.path());
        let committed_root = fixtures_dir().join(name);
        if std::env::var_os("BDP_BLESS").is_some() {
            let events = committed_root.join(".bdp/events");
            let _ = std::fs::remove_dir_all(&events);
            std::fs::create_dir_all(&events).unwrap();
            for (file, bytes) in &built {
                std::fs::write(events.join(file), bytes).unwrap();
            }
        }
        let committed = event_files(&committed_root);
        assert_eq!(committed, built, "replay-fixtures/{name} differs from its builder (BDP_BLESS=1 regenerates)");
    }
}

/// Copies a fixture into a temp dir (commands must not write into the committed fixture).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join(".bdp/events");
    std::fs::create_dir_all(&events).unwrap();
    for (file, bytes) in event_files(&fixtures_dir().join(name)) {
        std::fs::write(events.join(file), bytes).unwrap();
    }
    tmp
}

fn run(root: &Path, args: &[&str]) -> String {
    common::transcript(root, args)
}

/// (fixture, a session to show, a seq for --at, an issue for --issue)
const CASES: &[(&str, &str, &str, &str)] = &[
    ("normal-session", "s-20261125-060000-a1", "30", "bd-b2"),
    ("crash-before-spawned", "s-20261125-060000-b2", "6", "bd-x9"),
    ("torn-tail", "s-20261125-060000-a1", "55", "bd-c3.1"),
    ("corrupt-middle", "s-20261125-060000-a1", "3", "bd-a1"),
    ("recovery", "s-20261125-061500-d4", "29", "bd-k2"),
    ("v1-upcast", "s-20250601", "4", "bd-old1"),
];

#[test]
fn replay_and_verify_snapshots() {
    for (name, session, at, issue) in CASES {
        let tmp = copy_fixture(name);
        let root = tmp.path();
        let human = [
            run(root, &["verify"]),
            run(root, &["replay"]),
            run(root, &["replay", session]),
            run(root, &["replay", "--at", at]),
            run(root, &["replay", "--issue", issue]),
        ]
        .join("\n");
        insta::assert_snapshot!(format!("{name}__human"), human);
        let json = [
            run(root, &["verify", "--json"]),
            run(root, &["replay", "--json"]),
            run(root, &["replay", session, "--json"]),
            run(root, &["replay", "--at", at, "--json"]),
            run(root, &["replay", "--issue", issue, "--json"]),
        ]
        .join("\n");
        insta::assert_snapshot!(format!("{name}__json"), json);
    }
}
