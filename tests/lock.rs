//! `bdp lock` end to end, with real processes: many acquirers contending for one path (never two holders
//! at once), a stale lock broken for each cause, deadlocks of two and three holders found at once (not
//! after the wait), hostile paths refused by name, and `bdp run` giving back an attempt's locks when it
//! ends.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::run_support::{Sandbox, stderr, stdout};

fn lock(sb: &Sandbox, args: &[&str]) -> Output {
    let mut all = vec!["lock"];
    all.extend_from_slice(args);
    sb.bdp(&all)
}

fn sandbox() -> Sandbox {
    Sandbox::new(&[("l1", "one", 2, &[][..])])
}

/// Acquirers in 8 processes, each taking and giving back one path over and over (`BDP_LOCK_TRIES` times
/// each, 25 by default): inside the lock each makes a directory that must not exist, so two holders at
/// once would show. Every try is granted, and never twice at once.
#[test]
fn contending_processes_never_hold_one_path_at_once() {
    let sb = sandbox();
    let tries: usize = std::env::var("BDP_LOCK_TRIES").ok().and_then(|t| t.parse().ok()).unwrap_or(25);
    let out = sb.root().join(".scripts/contention");
    std::fs::create_dir_all(&out).unwrap();
    let script = sb.script(
        "contend.sh",
        &format!(
            r#"i=0
while [ $i -lt {tries} ]; do
  "$BDP" lock acquire shared.txt --holder "p$N" --wait 120s >/dev/null || {{ echo "p$N: not granted" >> {out}/errors; exit 1; }}
  mkdir {out}/inside 2>/dev/null || echo "p$N: double grant" >> {out}/errors
  echo "$N" >> {out}/grants
  rmdir {out}/inside
  "$BDP" lock release shared.txt --holder "p$N" >/dev/null || echo "p$N: release failed" >> {out}/errors
  i=$((i+1))
done"#,
            out = out.display()
        ),
    );
    let children: Vec<_> = (0..8)
        .map(|n| {
            std::process::Command::new(&script)
                .current_dir(sb.root())
                .env("BDP", env!("CARGO_BIN_EXE_bdp"))
                .env("N", n.to_string())
                .env_remove("BDP_ISSUE")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let errors = std::fs::read_to_string(out.join("errors")).unwrap_or_default();
    assert_eq!(errors, "", "no double grant, no refusal");
    let grants = std::fs::read_to_string(out.join("grants")).unwrap();
    assert_eq!(grants.lines().count(), 8 * tries);
    assert_eq!(sb.events("file_lock_acquired").len(), 8 * tries);
    assert_eq!(sb.events("file_lock_released").len(), 8 * tries);
    assert!(stdout(&lock(&sb, &["list"])).contains("no file locks held"));
}

/// A stale lock is broken by the next acquirer, saying why: its holder died, or its TTL passed.
#[test]
fn stale_locks_are_broken_for_each_cause() {
    let sb = sandbox();
    // The holder is the shell that ran `bdp lock` (`; true` keeps it from exec'ing bdp): gone once it ends.
    let bdp = env!("CARGO_BIN_EXE_bdp");
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("{bdp} lock acquire a.txt --holder gone >/dev/null; true")])
        .current_dir(sb.root())
        .status()
        .unwrap();
    assert!(status.success());
    let got = lock(&sb, &["acquire", "a.txt", "--holder", "next", "--wait", "5s"]);
    assert!(got.status.success(), "{}{}", stdout(&got), stderr(&got));
    let broken = &sb.events("file_lock_broken")[0];
    assert_eq!((broken["holder"].as_str(), broken["by"].as_str()), (Some("gone"), Some("next")));
    assert!(broken["reason"].as_str().unwrap().starts_with("its holder is dead (pid "), "{broken}");

    let got = lock(&sb, &["acquire", "b.txt", "--holder", "brief", "--ttl", "1s"]);
    assert!(got.status.success());
    let held = lock(&sb, &["acquire", "b.txt", "--holder", "other", "--wait", "0s"]);
    assert_eq!(held.status.code(), Some(1), "still fresh: {}", stdout(&held));
    assert!(stdout(&held).contains("b.txt by brief (pid "), "{}", stdout(&held));
    std::thread::sleep(Duration::from_millis(1100));
    let got = lock(&sb, &["acquire", "b.txt", "--holder", "other", "--wait", "5s"]);
    assert!(got.status.success(), "{}", stdout(&got));
    let broken = &sb.events("file_lock_broken")[1];
    assert!(broken["reason"].as_str().unwrap().starts_with("its TTL passed"), "{broken}");
}

/// Two holders each holding what the other waits for: the younger waiter gives up at once, naming the
/// cycle, instead of both waiting out their 60 s; the older one gets its lock once the younger lets go.
#[test]
fn a_two_holder_deadlock_is_found_at_once() {
    let sb = sandbox();
    assert!(lock(&sb, &["acquire", "x", "--holder", "A"]).status.success());
    assert!(lock(&sb, &["acquire", "y", "--holder", "B"]).status.success());
    let started = Instant::now();
    let older =
        sb.bdp_cmd(&["lock", "acquire", "y", "--holder", "A", "--wait", "60s"]).stdout(Stdio::piped()).spawn().unwrap();
    wait_until(|| stdout(&lock(&sb, &["list"])).contains("waiting: A for y"));
    let status = stdout(&sb.bdp(&["status"]));
    assert!(status.contains("file locks    2") && status.contains("waiting: A for y (held by B)"), "{status}");
    let younger = sb.bdp_cmd(&["lock", "acquire", "x", "--holder", "B", "--wait", "60s"]).output().unwrap();
    assert_eq!(younger.status.code(), Some(1), "{}{}", stdout(&younger), stderr(&younger));
    assert!(
        stdout(&younger).starts_with("deadlock: B → A → B; B waited least, so it gives up x"),
        "{}",
        stdout(&younger)
    );
    assert!(started.elapsed() < Duration::from_secs(30), "found at once, not after the wait");
    let refused = &sb.events("file_lock_refused")[0];
    assert_eq!(refused["deadlock"], serde_json::json!(["B", "A"]));
    assert!(lock(&sb, &["release", "--all", "--holder", "B"]).status.success());
    let older = older.wait_with_output().unwrap();
    assert!(older.status.success(), "{}", stdout(&older));
}

/// Three holders in a ring (A waits for B, B for C, C for A): the youngest, C, gives up at once.
#[test]
fn a_three_holder_deadlock_is_found_at_once() {
    let sb = sandbox();
    for (path, holder) in [("x", "A"), ("y", "B"), ("z", "C")] {
        assert!(lock(&sb, &["acquire", path, "--holder", holder]).status.success());
    }
    let a =
        sb.bdp_cmd(&["lock", "acquire", "y", "--holder", "A", "--wait", "60s"]).stdout(Stdio::piped()).spawn().unwrap();
    wait_until(|| stdout(&lock(&sb, &["list"])).contains("waiting: A for y"));
    let b =
        sb.bdp_cmd(&["lock", "acquire", "z", "--holder", "B", "--wait", "60s"]).stdout(Stdio::piped()).spawn().unwrap();
    wait_until(|| stdout(&lock(&sb, &["list"])).contains("waiting: B for z"));
    let c = sb.bdp_cmd(&["lock", "acquire", "x", "--holder", "C", "--wait", "60s"]).output().unwrap();
    assert_eq!(c.status.code(), Some(1), "{}", stdout(&c));
    assert!(stdout(&c).starts_with("deadlock: C → A → B → C; C waited least"), "{}", stdout(&c));
    assert!(lock(&sb, &["release", "--all", "--holder", "C"]).status.success());
    let b = b.wait_with_output().unwrap();
    assert!(b.status.success(), "B gets z once C let go: {}", stdout(&b));
    assert!(lock(&sb, &["release", "--all", "--holder", "B"]).status.success());
    assert!(a.wait_with_output().unwrap().status.success(), "then A gets y");
}

/// Paths are repo-relative and normalized; one leaving the repository is refused by name, a glob of
/// everything conflicts with every path, unicode is a path like any other.
#[test]
fn hostile_paths_are_refused_and_globs_cover_what_they_match() {
    let sb = sandbox();
    for (path, says) in [
        ("../outside", "cannot lock: \"../outside\" is outside the repository"),
        ("/etc/passwd", "cannot lock: \"/etc/passwd\" is outside the repository"),
        ("a/../../b", "cannot lock: \"a/../../b\" is outside the repository"),
        ("./.", "cannot lock: \"./.\" is empty"),
    ] {
        let out = lock(&sb, &["acquire", path, "--holder", "h"]);
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert!(stderr(&out).contains(says), "{path}: {}", stderr(&out));
    }
    let long = "d/".repeat(2100) + "f";
    let out = lock(&sb, &["acquire", &long, "--holder", "h"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is longer than 4096 bytes"), "{}", stderr(&out));
    let root = sb.root().display().to_string();
    let out = lock(&sb, &["acquire", &format!("{root}/src/./ünï/../файл.rs"), "--holder", "h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("locked src/файл.rs"), "{}", stdout(&out));
    let out = lock(&sb, &["acquire", "**", "--holder", "all", "--wait", "0s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("src/файл.rs by h"), "{}", stdout(&out));
}

/// Under `bdp run`, an agent's locks are its attempt's (`ISSUE#ATTEMPT`, alive as long as its wrapper),
/// and whatever it still holds is given back when the attempt ends.
#[test]
fn a_run_gives_back_the_locks_of_an_attempt_that_ended() {
    let sb = sandbox();
    let agent = sb.committing_agent_after(
        "agent.sh",
        r#""$BDP_EXE" lock acquire Cargo.toml "migrations/**"
"$BDP_EXE" lock list > "$BDP_WORKTREE/../../../.scripts/during.txt""#,
    );
    std::fs::create_dir_all(sb.root().join(".scripts")).unwrap();
    let out = sb
        .bdp_cmd(&["run", "--plain", "--", agent.to_str().unwrap()])
        .env("BDP_EXE", env!("CARGO_BIN_EXE_bdp"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let during = std::fs::read_to_string(sb.root().join(".scripts/during.txt")).unwrap();
    assert!(during.contains("Cargo.toml") && during.contains("l1#1"), "{during}");
    let acquired = &sb.events("file_lock_acquired")[0];
    let spawned = &sb.events("agent_spawned")[0];
    assert_eq!(acquired["pid"], spawned["pid"], "the lock follows the agent's wrapper");
    let released = &sb.events("file_lock_released")[0];
    assert_eq!(released["holder"], "l1#1");
    assert_eq!(released["paths"], serde_json::json!(["Cargo.toml", "migrations/**"]));
    assert!(stdout(&lock(&sb, &["list"])).contains("no file locks held"));
    let summary = stdout(&sb.bdp(&["summary"]));
    assert!(summary.contains("file locks: 1 granted, 0 refused (0 deadlocks); 0 waited, mean -, p95 -"), "{summary}");
    sb.assert_clean_end();
}

fn wait_until(mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `bdp audit` reports file locks nobody should hold (a dead holder; with no run live, an attempt that is
/// over), and `--fix` breaks them, recorded as broken by the audit.
#[test]
fn audit_reports_stale_file_locks_and_fix_breaks_them() {
    let sb = sandbox();
    // l1 is an issue of the tracker that no run claimed: its attempt 1 is not running.
    assert!(lock(&sb, &["acquire", "b.txt", "--holder", "l1#1"]).status.success());
    assert!(lock(&sb, &["acquire", "c.txt", "--holder", "a-person"]).status.success());
    // Last: an acquire breaks the stale locks it meets.
    let bdp = env!("CARGO_BIN_EXE_bdp");
    let dead = std::process::Command::new("sh")
        .args(["-c", &format!("{bdp} lock acquire a.txt --holder gone >/dev/null; true")])
        .current_dir(sb.root())
        .status()
        .unwrap();
    assert!(dead.success());
    let audit = sb.bdp(&["audit"]);
    assert_eq!(audit.status.code(), Some(1), "{}{}", stdout(&audit), stderr(&audit));
    let text = stdout(&audit);
    assert!(text.contains("file_lock_stale") && text.contains("a.txt (held by gone)"), "{text}");
    assert!(text.contains("l1 is not claimed") && text.contains("break l1#1's file lock on b.txt"), "{text}");
    assert!(!text.contains("c.txt"), "a live holder that is no attempt is left alone: {text}");
    let fix = sb.bdp(&["audit", "--fix"]);
    assert!(stdout(&fix).contains("break gone's file lock on a.txt"), "{}", stdout(&fix));
    let listing = stdout(&lock(&sb, &["list"]));
    assert!(!listing.contains("a.txt") && !listing.contains("b.txt") && listing.contains("c.txt"), "{listing}");
    let broken: Vec<_> = sb.events("file_lock_broken").iter().map(|e| e["by"].as_str().unwrap().to_string()).collect();
    assert_eq!(broken, ["bdp (audit)", "bdp (audit)"]);
}

/// `bdp run --lock-hook`: each worktree's pre-commit hook refuses a commit touching a path another holder
/// locked exclusively, naming it; the agent's attempt fails in those words. Other paths commit as usual.
#[test]
fn the_lock_hook_refuses_a_commit_of_a_path_another_holds() {
    let sb = Sandbox::new(&[("h1", "touches the schema", 2, &[][..]), ("h2", "touches the docs", 2, &[][..])]);
    assert!(lock(&sb, &["acquire", "schema/**", "--holder", "migration-owner"]).status.success());
    let agent = sb.script(
        "agent.sh",
        r#"set -e
if [ "$BDP_ISSUE" = h1 ]; then mkdir -p schema; echo x > schema/users.sql; else echo y > docs.txt; fi
git add -A; git commit -q -m "work on $BDP_ISSUE""#,
    );
    let out = sb.bdp(&["run", "--plain", "--retries", "0", "--lock-hook", "--", agent.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let issues = sb.issues();
    assert_eq!(issues["h2"]["status"], "closed", "a path nobody locked commits");
    let released = sb.events("issue_released").into_iter().find(|r| r["issue"] == "h1").unwrap();
    let detail = released["detail"].as_str().unwrap();
    assert!(
        detail.contains("bdp: refused: schema/users.sql is locked by migration-owner (schema/**, since "),
        "{detail}"
    );
    assert!(sb.main_subjects().contains(&"work on h2".to_string()));
    assert!(!sb.main_subjects().contains(&"work on h1".to_string()));
}

/// A lock the log cannot record is not held: the acquire fails naming why, and nothing is locked.
#[test]
fn a_grant_the_log_cannot_record_is_taken_back() {
    let sb = sandbox();
    std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
    std::fs::write(sb.root().join(".bdp/events"), "not a directory").unwrap();
    let out = lock(&sb, &["acquire", "a.txt", "--holder", "h"]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains(".bdp/events") && stderr(&out).contains("nothing was locked"), "{}", stderr(&out));
    assert!(stdout(&lock(&sb, &["list"])).contains("no file locks held"));
}

/// What `bdp lock` says, as a person sees it (pids and times filtered).
#[test]
fn lock_transcripts() {
    let sb = sandbox();
    let root = sb.root();
    let mut text = String::new();
    for args in [
        &["lock", "acquire", "Cargo.toml", "src/db/**", "--holder", "bd-1#1"][..],
        &["lock", "acquire", "src/db/schema.sql", "--holder", "bd-2#1", "--wait", "0s"],
        &["lock", "acquire", "README.md", "--shared", "--holder", "bd-2#1", "--ttl", "30m"],
        &["lock", "list"],
        &["lock", "check", "src/db/x.sql", "docs/a.md", "--holder", "bd-2#1"],
        &["lock", "release", "--all", "--holder", "bd-1#1"],
        &["lock", "release", "nothing.txt", "--holder", "bd-1#1"],
        &["lock", "acquire", "../elsewhere", "--holder", "bd-1#1"],
    ] {
        text.push_str(&crate::common::transcript(root, args));
    }
    let filters = vec![
        (r"pid \d+", "pid [PID]"),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]"),
        // The pid column is right-aligned: its padding varies with the pid's length.
        (r"(?m)^(\S+\s+(?:exclusive|shared)\s+\S+)\s+\d+", "$1  [PID]"),
    ];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("lock_transcripts", text);
    });
}

/// Issues that declare the same file do not run at once (the run says why one waits), and a sequential
/// zone of `[ownership]` runs its issues oldest first, one after the other; an issue that declares nothing
/// runs beside them.
#[test]
fn a_run_does_not_start_issues_that_touch_the_same_files_at_once() {
    let sb = Sandbox::new(&[
        ("o1", "one", 1, &[][..]),
        ("o2", "two", 1, &[]),
        ("o3", "three", 1, &[]),
        ("m1", "m one", 2, &[]),
        ("m2", "m two", 2, &[]),
    ]);
    let path = sb.root().join(".beads/issues.jsonl");
    let text: String = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let (label, created) = match v["id"].as_str().unwrap() {
                "o1" => ("paths:Cargo.toml", "2026-01-01T00:00:00Z"),
                "o2" => ("paths:Cargo.toml,src/**", "2026-01-02T00:00:00Z"),
                "m1" => ("paths:migrations/0001.sql", "2026-01-04T00:00:00Z"),
                "m2" => ("paths:migrations/0002.sql", "2026-01-03T00:00:00Z"),
                _ => ("other", "2026-01-05T00:00:00Z"),
            };
            v["labels"] = serde_json::json!([label]);
            v["created_at"] = serde_json::json!(created);
            v.to_string() + "\n"
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
    std::fs::write(sb.root().join(".bdp/config.toml"), "[ownership]\n\"migrations/**\" = \"sequential\"\n").unwrap();
    sb.git(&["add", "-A"]);
    sb.git(&["commit", "-q", "-m", "declared paths"]);
    let times = sb.root().join(".scripts/times");
    let agent = sb.committing_agent_after(
        "agent.sh",
        &format!(
            r#"echo "start $BDP_ISSUE $(date +%s%N)" >> {t}
sleep 0.3
echo "end $BDP_ISSUE $(date +%s%N)" >> {t}"#,
            t = times.display()
        ),
    );
    let dry = sb.bdp(&["run", "--dry-run", "--agents", "5", "--", agent.to_str().unwrap()]);
    let said = stdout(&dry);
    assert!(said.contains("not at once: o1 and o2: both touch Cargo.toml\n"), "{said}");
    assert!(said.contains("both touch migrations/** (sequential zone)"), "{said}");
    let out = sb.bdp_cmd(&["run", "--plain", "--agents", "5", "--", agent.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("waits    o2  both touch Cargo.toml with o1, which runs"), "{text}");
    assert!(text.contains("waits    m1  both touch migrations/** (sequential zone) with m2, which runs"), "{text}");
    let log = std::fs::read_to_string(&times).unwrap();
    let at = |what: &str, id: &str| -> u128 {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("{what} {id} ")))
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("{what} {id} in {log}"))
    };
    assert!(at("end", "o1") <= at("start", "o2"), "o2 waited for o1: {log}");
    assert!(at("end", "m2") <= at("start", "m1"), "the older m2 went first: {log}");
    assert!(sb.issues().values().all(|i| i["status"] == "closed"));
    sb.assert_clean_end();
}

/// A waiter killed while it waits leaves its wait behind; the next acquirer removes it (and never counts a
/// dead waiter in the wait-for graph).
#[test]
fn the_wait_of_a_killed_waiter_is_cleared_by_the_next_acquirer() {
    let sb = sandbox();
    assert!(lock(&sb, &["acquire", "x", "--holder", "h"]).status.success());
    let mut waiter = sb
        .bdp_cmd(&["lock", "acquire", "x", "--holder", "w", "--wait", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waits = sb.root().join(".bdp/file-locks/waits");
    let count = || {
        std::fs::read_dir(&waits).map_or(0, |d| {
            d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
        })
    };
    wait_until(|| count() == 1);
    waiter.kill().unwrap();
    waiter.wait().unwrap();
    assert_eq!(count(), 1, "a killed waiter cannot clear its own wait");
    let got = lock(&sb, &["acquire", "y", "--holder", "other"]);
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(count(), 0, "the next acquirer cleared it");
}
