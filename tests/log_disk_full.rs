//! A full disk in the middle of an append, simulated with a file size limit (RLIMIT_FSIZE).
//!
//! The limit is set in a child process (this test binary run again for one ignored test) that ignores
//! SIGXFSZ, so `write` returns EFBIG as it would ENOSPC: the kernel writes the bytes up to the limit, then
//! refuses the rest. The append must fail with an error naming the segment, leave no partial record (the
//! writer cuts the file back), and the same writer once the limit is lifted, and a new one afterwards,
//! chain on from the last whole record; `bdp verify` then finds the log intact.

use crate::common;
use common::lock;

use std::path::Path;
use std::process::Command;

use bdp::log::LogWriter;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

const CHILD: &str = "child_appends_under_a_file_size_limit";

fn open(events: &Path, session: &str) -> LogWriter {
    let append_lock = events.parent().unwrap().join("append.lock");
    LogWriter::open(events, &append_lock, session, common::fixed_clock(60_000)).unwrap().0
}

/// Run by [`an_append_that_fills_the_disk_fails_cleanly_and_the_log_goes_on`] in a child process.
#[test]
#[ignore = "run in a child process with a file size limit by an_append_that_fills_the_disk_fails_cleanly_…"]
fn child_appends_under_a_file_size_limit() {
    let events = std::path::PathBuf::from(std::env::var("BDP_FAULT_EVENTS").unwrap());
    let limit: u64 = std::env::var("BDP_FAULT_LIMIT").unwrap().parse().unwrap();
    let segment = events.join("000001.jsonl");
    let before = std::fs::read(&segment).unwrap();
    // SAFETY: no other thread of this process handles signals; ignoring SIGXFSZ makes write return EFBIG.
    unsafe { nix::sys::signal::signal(nix::sys::signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn) }.unwrap();
    let hard = getrlimit(Resource::Fsize).maximum;
    setrlimit(Resource::Fsize, Rlimit { current: Some(limit), maximum: hard }).unwrap();

    let writer = open(&events, "s-full");
    // 40 records of about 150 bytes: far past the limit, which falls inside the first one.
    let failed = writer.append((0..40).map(|i| lock(&format!("full-{i}"))).collect());
    let after_failure = std::fs::read(&segment).unwrap();
    let (error, cli) = match failed {
        Ok(records) => (format!("the append succeeded ({} records)", records.len()), String::new()),
        Err(e) => (e.to_string(), bdp::error::CliError::from(e).to_string()),
    };

    setrlimit(Resource::Fsize, Rlimit { current: hard, maximum: hard }).unwrap();
    let retry = writer.append_one(lock("after-the-limit")).map(|r| r.seq).map_err(|e| e.to_string());
    let report = serde_json::json!({
        "error": error,
        "cli": cli,
        "unchanged_after_failure": after_failure == before,
        "len_after_failure": after_failure.len(),
        "retry": format!("{retry:?}"),
    });
    println!("RESULT {report}");
}

#[test]
fn an_append_that_fills_the_disk_fails_cleanly_and_the_log_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_crash_before_spawned(tmp.path());
    let events = tmp.path().join(".bdp/events");
    let segment = events.join("000001.jsonl");
    let before = std::fs::read(&segment).unwrap();
    let last_seq = before.iter().filter(|b| **b == b'\n').count() as u64;

    let out = Command::new(std::env::current_exe().unwrap())
        .args([&common::test_name(module_path!(), CHILD), "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("BDP_FAULT_EVENTS", &events)
        .env("BDP_FAULT_LIMIT", (before.len() + 40).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the child failed: {:?}\n{all}", out.status);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result:\n{all}"));
    let report: serde_json::Value = serde_json::from_str(line).unwrap();

    // A clear error that names the segment, and a hint that says nothing partial was written.
    let error = report["error"].as_str().unwrap();
    assert!(error.contains(&segment.display().to_string()), "{error}");
    assert!(error.contains("File too large"), "{error}");
    let cli = report["cli"].as_str().unwrap();
    assert!(cli.contains("hint: free some disk space") && cli.contains("nothing partial was written"), "{cli}");
    // The bytes written up to the limit were cut off again.
    assert_eq!(report["len_after_failure"], before.len(), "{report}");
    assert_eq!(report["unchanged_after_failure"], true, "{report}");
    // The same writer goes on once there is room, right after the last whole record.
    assert_eq!(report["retry"], format!("Ok({})", last_seq + 1), "{report}");

    // So does a new writer, and the whole log verifies.
    let now = std::fs::read(&segment).unwrap();
    assert_eq!(&now[..before.len()], &before[..]);
    assert_eq!(now[before.len()..].iter().filter(|b| **b == b'\n').count(), 1, "one record was added");
    let writer = open(&events, "s-later");
    assert_eq!(writer.append_one(lock("later")).unwrap().seq, last_seq + 2);
    drop(writer);
    let verify = common::bdp(tmp.path()).arg("verify").output().unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(verify.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(text.starts_with(&format!("ok: {} records", last_seq + 2)), "{text}");
}
