//! `bdp run` end to end: real git, real processes, scripted agents, the embedded JSONL tracker.

use crate::common::run_support;

use std::time::{Duration, Instant};

use run_support::{Sandbox, stderr, stdout};

/// Seq of the first record matching `pred`.
fn seq_of(sb: &Sandbox, pred: impl Fn(&serde_json::Value) -> bool) -> Option<u64> {
    sb.records().into_iter().find(|r| pred(&r["event"])).map(|r| r["seq"].as_u64().unwrap())
}

#[test]
fn twelve_issues_in_three_tracks_with_three_agents() {
    // Three independent chains of four: a1 ← a2 ← a3 ← a4, and so on.
    let mut spec: Vec<(String, String, Vec<String>)> = Vec::new();
    for track in ["a", "b", "c"] {
        for n in 1..=4 {
            let blockers = if n > 1 { vec![format!("{track}{}", n - 1)] } else { vec![] };
            spec.push((format!("{track}{n}"), format!("step {n} of track {track}"), blockers));
        }
    }
    let issues: Vec<(&str, &str, i64, Vec<&str>)> =
        spec.iter().map(|(id, t, b)| (id.as_str(), t.as_str(), 2, b.iter().map(String::as_str).collect())).collect();
    let borrowed: Vec<(&str, &str, i64, &[&str])> =
        issues.iter().map(|(id, t, p, b)| (*id, *t, *p, b.as_slice())).collect();
    let sb = Sandbox::new(&borrowed);
    // A moment of work each, so that agents overlap even on a loaded machine.
    let agent = sb.committing_agent_after("agent.sh", "sleep 0.3");
    let out = sb.bdp(&["run", "--plain", "--agents", "3", "--", agent.to_str().unwrap(), "{id}", "{prompt_file}"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    // Every issue closed, once, with a reason naming the merge commit.
    let tracker = sb.issues();
    for (id, _, _) in &spec {
        assert_eq!(tracker[id]["status"], "closed", "{id}");
        assert!(tracker[id]["close_reason"].as_str().unwrap().starts_with("bdp: merged "), "{id}");
    }
    let closes = sb.events("tracker_issue_closed");
    assert_eq!(closes.len(), 12);
    // Each commit merged once.
    let subjects = sb.main_subjects();
    for (id, _, _) in &spec {
        assert_eq!(subjects.iter().filter(|s| **s == format!("work on {id}")).count(), 1, "{id}: {subjects:?}");
    }
    // Dependencies respected: nothing was requested before its blocker was closed.
    for (id, _, blockers) in &spec {
        let spawn = seq_of(&sb, |e| e["type"] == "spawn_requested" && e["issue"] == id.as_str()).unwrap();
        for b in blockers {
            let closed = seq_of(&sb, |e| e["type"] == "tracker_issue_closed" && e["issue"] == b.as_str()).unwrap();
            assert!(closed < spawn, "{id} started (seq {spawn}) before {b} closed (seq {closed})");
        }
    }
    // Up to three at once, and more than one at some point.
    let mut running = 0i32;
    let mut peak = 0;
    for r in sb.records() {
        match r["event"]["type"].as_str().unwrap() {
            "agent_spawned" => running += 1,
            "agent_exited" => running -= 1,
            _ => {}
        }
        peak = peak.max(running);
    }
    assert!((2..=3).contains(&peak), "peak concurrency {peak}");
    assert!(sb.bdp_branches().is_empty(), "{:?}", sb.bdp_branches());
    sb.assert_clean_end();
    // The other commands read the same story: status (nothing running, 12 done), replay.
    let status: serde_json::Value = serde_json::from_slice(&sb.bdp(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["orchestrator"]["running"], false);
    assert_eq!(status["session"]["end_reason"], "completed");
    assert_eq!(status["session"]["counts"]["done"], 12);
    let session = status["session"]["id"].as_str().unwrap().to_string();
    let replay = sb.bdp(&["replay", &session]);
    assert!(replay.status.success());
    assert!(stdout(&replay).matches("merged").count() >= 12, "{}", stdout(&replay));
    // The user's checkout has the work (the merge brought it along).
    assert_eq!(
        std::fs::read_dir(sb.root())
            .unwrap()
            .filter(|e| { e.as_ref().unwrap().file_name().to_string_lossy().starts_with("file-") })
            .count(),
        12
    );
}

/// One agent whose behaviour depends on the issue id.
fn scripted(sb: &Sandbox) -> std::path::PathBuf {
    sb.script(
        "agent.sh",
        r#"commit() { printf '%s\n' "$2" > "$1"; git add "$1"; git commit -q -m "work on $BDP_ISSUE"; }
case "$BDP_ISSUE" in
  exit3) exit 3 ;;
  hang) sleep 30 ;;
  stubborn) trap '' TERM; sleep 30 & wait; sleep 30 ;;
  segv) kill -SEGV $$ ;;
  nothing) exit 0 ;;
  dirty) echo x > untracked.txt; exit 0 ;;
  flaky) if [ "$BDP_ATTEMPT" = 1 ]; then exit 1; fi; commit flaky.txt ok ;;
  conflict-a) commit shared.txt "from a" ;;
  conflict-b) sleep 1; commit shared.txt "from b" ;;
  badcheck) commit badcheck.txt x; touch FAIL_CHECK; git add FAIL_CHECK; git commit -q -m fail ;;
  *) commit "$BDP_ISSUE.txt" ok ;;
esac
"#,
    )
}

#[test]
fn failures_end_as_documented_and_leave_nothing_behind() {
    let ids =
        ["exit3", "hang", "stubborn", "segv", "nothing", "dirty", "flaky", "conflict-a", "conflict-b", "badcheck"];
    let issues: Vec<(&str, &str, i64, &[&str])> = ids.iter().map(|id| (*id, *id, 2, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let agent = scripted(&sb);
    let started = Instant::now();
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--agents",
        "10",
        "--retries",
        "1",
        "--retry-backoff",
        "50ms",
        "--timeout",
        "4s",
        "--grace",
        "300ms",
        "--check",
        "test ! -f FAIL_CHECK",
        "--",
        agent.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "some failed → exit 1\n{text}\n{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    let tracker = sb.issues();
    let labels = |id: &str| -> Vec<String> {
        tracker[id]["labels"]
            .as_array()
            .map(|a| a.iter().map(|l| l.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let attempts = |id: &str| sb.events("spawn_requested").iter().filter(|e| e["issue"] == id).count();
    let release = |id: &str| -> serde_json::Value {
        sb.events("issue_released").into_iter().rfind(|e| e["issue"] == id).unwrap()
    };
    // Given back open, labelled, after the retry: non-zero exit, timeouts, TERM ignored, a signal, a failing
    // check, uncommitted changes.
    for (id, reason) in [
        ("exit3", "failed"),
        ("hang", "timeout"),
        ("stubborn", "timeout"),
        ("segv", "failed"),
        ("badcheck", "failed"),
        ("dirty", "failed"),
    ] {
        assert_eq!(tracker[id]["status"], "open", "{id}");
        assert!(tracker[id].get("assignee").is_none_or(|a| a.is_null() || a == ""), "{id}: {}", tracker[id]);
        assert_eq!(labels(id), ["bdp:failed"], "{id}");
        assert_eq!(attempts(id), 2, "{id}: one try and one retry");
        assert_eq!(release(id)["reason"], reason, "{id}");
    }
    assert!(release("segv")["detail"].as_str().unwrap().contains("signal 11"));
    assert!(release("badcheck")["detail"].as_str().unwrap().contains("test ! -f FAIL_CHECK"));
    assert!(release("hang")["detail"].as_str().unwrap().contains("timed out"));
    // Exit 0 with no commit: closed, saying so.
    assert_eq!(tracker["nothing"]["status"], "closed");
    assert!(tracker["nothing"]["close_reason"].as_str().unwrap().contains("no code changes"));
    // A failed first attempt, then success.
    assert_eq!(tracker["flaky"]["status"], "closed");
    assert_eq!(attempts("flaky"), 2);
    // Two branches writing the same file: the first merges, the second conflicts and keeps its branch.
    assert_eq!(tracker["conflict-a"]["status"], "closed");
    assert_eq!(tracker["conflict-b"]["status"], "open");
    assert_eq!(labels("conflict-b"), ["bdp:conflict"]);
    assert_eq!(release("conflict-b")["reason"], "conflict");
    assert!(release("conflict-b")["detail"].as_str().unwrap().contains("shared.txt"));
    assert_eq!(sb.bdp_branches(), ["bdp/conflict-b"]);
    assert_eq!(std::fs::read_to_string(sb.root().join("shared.txt")).unwrap(), "from a\n");
    // Timeouts were enforced, and the agent that ignores TERM was killed.
    let exits = sb.events("agent_exited");
    assert!(exits.iter().filter(|e| e["issue"] == "stubborn").all(|e| e["timed_out"] == true));
    sb.assert_clean_end();
    // A second run takes nothing: failed and conflicted issues wait for a human.
    let again = sb.bdp(&["run", "--plain", "--", agent.to_str().unwrap()]);
    assert!(again.status.success());
    let again = stdout(&again);
    assert!(again.contains("nothing is ready") && again.contains("labelled bdp:failed or bdp:conflict"), "{again}");
}

#[test]
fn hostile_issue_text_and_ids_never_reach_a_shell_or_leave_bdp_dir() {
    let ids = ["../../escape", "x;touch PWNED", "$(touch PWNED2)", ".hidden"];
    let issues: Vec<(&str, &str, i64, &[&str])> =
        ids.iter().map(|id| (*id, "title with `touch PWNED3` and $(touch PWNED4)\nsecond line", 1, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let agent = sb.committing_agent();
    let out = sb.bdp(&["run", "--plain", "--agents", "2", "--", agent.to_str().unwrap(), "--id={id}", "{prompt_file}"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for name in ["PWNED", "PWNED2", "PWNED3", "PWNED4", "INJECTED", "INJECTED2"] {
        assert!(!sb.root().join(name).exists(), "{name} was created");
        assert!(!sb.root().parent().unwrap().join(name).exists(), "{name} was created");
    }
    assert!(!sb.root().parent().unwrap().join("escape").exists());
    for spawn in sb.events("spawn_requested") {
        let id = spawn["issue"].as_str().unwrap();
        // The id reached the agent as one whole argument.
        assert_eq!(spawn["argv"][1], format!("--id={id}"));
        for key in ["cwd", "stdout", "stderr"] {
            let path = std::path::Path::new(spawn[key].as_str().unwrap());
            let canonical_bdp = sb.root().join(".bdp");
            assert!(path.starts_with(&canonical_bdp), "{key} {} is outside .bdp", path.display());
            assert!(!path.components().any(|c| c == std::path::Component::ParentDir), "{}", path.display());
        }
    }
    let tracker = sb.issues();
    assert!(ids.iter().all(|id| tracker[*id]["status"] == "closed"));
    // The prompt holds the text, as text.
    let prompt = std::fs::read_to_string(sb.root().join(".bdp/runs/x%3Btouch%20PWNED/1/prompt.md")).unwrap();
    assert!(prompt.contains("$(touch INJECTED)"), "{prompt}");
    sb.assert_clean_end();
}

#[test]
fn ctrl_c_drains_and_a_second_one_stops_now() {
    let issues: Vec<(&str, &str, i64, &[&str])> =
        ["s1", "s2", "s3", "s4"].iter().map(|id| (*id, *id, 2, &[][..])).collect();
    // Drain: the two running agents finish and are merged; nothing else is started.
    let sb = Sandbox::new(&issues);
    let agent = sb.script(
        "slow.sh",
        r#"sleep 1.5; printf x > "$BDP_ISSUE.txt"; git add -A; git commit -q -m "work on $BDP_ISSUE""#,
    );
    let child = sb
        .bdp_cmd(&["run", "--plain", "--agents", "2", "--", agent.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| sb.root().join(".bdp/events").exists() && sb.events("agent_spawned").len() == 2);
    signal(child.id(), rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("stopping: no new issues"), "{text}");
    let tracker = sb.issues();
    let closed = tracker.values().filter(|i| i["status"] == "closed").count();
    let open =
        tracker.values().filter(|i| i["status"] == "open" && i.get("assignee").is_none_or(|a| a.is_null())).count();
    assert_eq!((closed, open), (2, 2), "{tracker:?}");
    assert_eq!(sb.events("session_ended").last().unwrap()["reason"], "drained");
    sb.assert_clean_end();

    // Now: two Ctrl-C; the agents are terminated and their issues released, open, unlabelled.
    let sb = Sandbox::new(&issues);
    let agent = sb.script("sleepy.sh", "sleep 30");
    let child = sb
        .bdp_cmd(&["run", "--plain", "--agents", "2", "--grace", "500ms", "--", agent.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| sb.root().join(".bdp/events").exists() && sb.events("agent_spawned").len() == 2);
    signal(child.id(), rustix::process::Signal::INT);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    signal(child.id(), rustix::process::Signal::INT);
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out.status.success(), "{}", stdout(&out));
    let tracker = sb.issues();
    assert!(tracker.values().all(|i| i["status"] == "open" && i.get("labels").is_none()), "{tracker:?}");
    let released: Vec<_> = sb.events("issue_released").iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(released, ["shutdown", "shutdown"]);
    assert_eq!(sb.events("session_ended").last().unwrap()["reason"], "stopped");
    sb.assert_clean_end();
}

#[test]
fn bdp_stop_asks_the_running_orchestrator_to_stop() {
    let issues: Vec<(&str, &str, i64, &[&str])> = ["q1", "q2"].iter().map(|id| (*id, *id, 2, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let out = sb.bdp(&["stop"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("no `bdp run` is running"));
    let agent = sb.script("sleepy.sh", "sleep 30");
    let child = sb
        .bdp_cmd(&["run", "--plain", "--agents", "2", "--grace", "300ms", "--", agent.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| sb.root().join(".bdp/events").exists() && sb.events("agent_spawned").len() == 2);
    // A second orchestrator is refused and told who holds the lock.
    let second = sb.bdp(&["run", "--plain", "--", agent.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(2));
    assert!(stderr(&second).contains(&format!("pid {}", child.id())), "{}", stderr(&second));
    let stop = sb.bdp(&["stop", "--now", "--wait"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(stdout(&stop).contains("stop now"));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(sb.events("session_ended").last().unwrap()["reason"], "stopped");
    sb.assert_clean_end();
}

#[test]
fn refusals_before_anything_is_claimed() {
    let issues: Vec<(&str, &str, i64, &[&str])> = vec![("r1", "r1", 2, &[][..])];
    let sb = Sandbox::new(&issues);
    let before = std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap();
    let out = sb.bdp(&["run", "--", "./no-such-agent.sh", "{id}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no-such-agent.sh does not exist"), "{}", stderr(&out));
    let out = sb.bdp(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no agent command"), "{}", stderr(&out));
    // A preset and a command both name the agent: neither silently wins.
    let out = sb.bdp(&["run", "--agent", "claude", "--", "./agent.sh", "{id}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--agent claude and a command (./agent.sh …) both name the agent"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap(), before);
    assert!(!sb.root().join(".bdp").exists(), "nothing was written");
    // Dry run: prints the plan, writes nothing.
    let out = sb.bdp(&["run", "--dry-run", "--", "/bin/true", "{id}", "{prompt_file}"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("/bin/true r1 "), "{}", stdout(&out));
    assert!(!sb.root().join(".bdp").exists(), "dry run wrote nothing");
    assert_eq!(std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap(), before);
}

/// `--agent codex -- FLAGS`: the flags go to the CLI, before the prompt; the preset names the worktree's
/// own git dir beside the repository's (codex's sandbox lets a commit write only what is named).
#[test]
fn a_presets_own_flags_come_after_the_dashes() {
    let sb = Sandbox::new(&[("p1", "p1", 2, &[][..])]);
    let codex = sb.script("codex", "exit 0");
    let path = format!("{}:{}", codex.parent().unwrap().display(), std::env::var("PATH").unwrap());
    let out = sb
        .bdp_cmd(&["run", "--dry-run", "--agent", "codex", "--", "-c", "model=\"o3\""])
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let git_dir = sb.root().join(".git").canonicalize().unwrap().display().to_string();
    let want =
        format!("exec --json --sandbox workspace-write --add-dir {git_dir} --add-dir {git_dir}/worktrees/p1 -c ");
    assert!(text.contains(&want), "{want}\n{text}");
    // Then the preset's MCP server (bdp mcp), then the user's flags, then the prompt.
    let mcp = text.find("mcp_servers.bdp.command=").expect("the MCP server is configured");
    let user = text.find("-c 'model=\"o3\"' 'Your task").expect("the user's flags come before the prompt");
    assert!(mcp < user, "{text}");
}

#[test]
fn config_file_sets_options_and_flags_win() {
    let issues: Vec<(&str, &str, i64, &[&str])> = ["k1", "k2", "k3"].iter().map(|id| (*id, *id, 2, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let agent = sb.committing_agent();
    std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
    std::fs::write(
        sb.root().join(".bdp/config.toml"),
        format!("agents = 1\nmax_issues = 1\ncommand = [{:?}]\nactor = \"robot\"\n", agent.display().to_string()),
    )
    .unwrap();
    let out = sb.bdp(&["run", "--plain", "--max-issues", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let claims = sb.events("issue_claimed");
    assert_eq!(claims.len(), 2, "the flag (2) won over the file (1)");
    assert!(claims.iter().all(|c| c["actor"] == "robot"));
    std::fs::write(sb.root().join(".bdp/config.toml"), "agnets = 2\n").unwrap();
    let out = sb.bdp(&["run", "--plain"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("config.toml line 1") && stderr(&out).contains("agnets"), "{}", stderr(&out));
}

/// Each option's help and default come from its one definition (src/run_options.rs).
#[test]
fn run_help_names_every_option_and_its_default() {
    let out =
        assert_cmd::Command::cargo_bin("bdp").unwrap().args(["run", "--help"]).env("COLUMNS", "100").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for key in bdp::run_options::KEYS.iter().map(|(key, _)| key.replace('_', "-")) {
        assert!(help.contains(&format!("--{key}")), "--{key} missing from bdp run --help");
    }
    insta::assert_snapshot!(help);
}

#[test]
fn plain_output_of_a_small_run() {
    let issues: Vec<(&str, &str, i64, &[&str])> =
        vec![("p1", "first thing", 1, &[][..]), ("p2", "second thing", 2, &["p1"][..]), ("p3", "no-op", 3, &[][..])];
    let sb = Sandbox::new(&issues);
    let agent = sb.script(
        "agent.sh",
        r#"[ "$BDP_ISSUE" = p3 ] && exit 0
printf x > "$BDP_ISSUE.txt"; git add -A; git commit -q -m "work on $BDP_ISSUE""#,
    );
    let dry = sb.bdp(&["run", "--dry-run", "--agents", "1", "--", agent.to_str().unwrap(), "{id}", "{prompt_file}"]);
    let out = sb.bdp(&["run", "--plain", "--agents", "1", "--", agent.to_str().unwrap(), "{id}"]);
    assert!(out.status.success());
    let mut filters: Vec<(String, &str)> = vec![
        (regex_escape(&sb.root().display().to_string()), "[REPO]"),
        (r"s-\d{8}-\d{6}-[0-9a-f]{4}".into(), "[SESSION]"),
        (r"[0-9a-f]{12}".into(), "[COMMIT]"),
        (r"\d+(\.\d+)?(ms|s)\b".into(), "[TIME]"),
        (r"\d+\.\dx".into(), "[N]x"),
    ];
    filters.push((r"(?m)^agent time.*$".into(), "[AGENT TIME LINE]"));
    let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("run_dry_run", stdout(&dry));
        insta::assert_snapshot!("run_plain", stdout(&out));
    });
}

fn regex_escape(s: &str) -> String {
    s.chars().flat_map(|c| if "\\.+*?()|[]{}^$".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

fn wait_for(mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig).unwrap();
}

#[test]
fn a_worktree_that_cannot_be_made_gives_the_issue_back_and_the_run_goes_on() {
    let issues: Vec<(&str, &str, i64, &[&str])> = vec![("w1", "w1", 1, &[][..]), ("w2", "w2", 2, &[][..])];
    let sb = Sandbox::new(&issues);
    let agent = sb.committing_agent();
    // Something that is not a worktree sits where w1's worktree goes.
    std::fs::create_dir_all(sb.root().join(".bdp/worktrees")).unwrap();
    std::fs::write(sb.root().join(".bdp/worktrees/w1"), "in the way").unwrap();
    let out = sb.bdp(&["run", "--plain", "--agents", "2", "--", agent.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let tracker = sb.issues();
    assert_eq!(tracker["w1"]["status"], "open");
    assert_eq!(tracker["w2"]["status"], "closed");
    let release = sb.events("issue_released").into_iter().find(|e| e["issue"] == "w1").unwrap();
    assert_eq!(release["reason"], "failed");
    assert!(release["detail"].as_str().unwrap().contains("cannot create the worktree"), "{release}");
    assert!(sb.events("spawn_requested").iter().all(|e| e["issue"] != "w1"), "no agent ran for w1");
    assert_eq!(std::fs::read_to_string(sb.root().join(".bdp/worktrees/w1")).unwrap(), "in the way");
    let verify = sb.bdp(&["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn an_attempt_that_cannot_be_prepared_fails_that_issue_alone() {
    let issues: Vec<(&str, &str, i64, &[&str])> = vec![("p1", "p1", 1, &[][..]), ("p2", "p2", 2, &[][..])];
    let sb = Sandbox::new(&issues);
    let agent = sb.committing_agent();
    // A file sits where p1's attempt directories go: its prompt cannot be written.
    std::fs::create_dir_all(sb.root().join(".bdp/runs")).unwrap();
    std::fs::write(sb.root().join(".bdp/runs/p1"), "in the way").unwrap();
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--agents",
        "2",
        "--retries",
        "1",
        "--retry-backoff",
        "10ms",
        "--",
        agent.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!stderr(&out).contains("internal error"), "{}", stderr(&out));
    let tracker = sb.issues();
    assert_eq!(tracker["p1"]["status"], "open");
    assert_eq!(tracker["p2"]["status"], "closed");
    // Both attempts were recorded, and abandoned with the reason, then the issue was given back.
    let abandoned: Vec<_> = sb.events("attempt_abandoned").into_iter().filter(|e| e["issue"] == "p1").collect();
    assert_eq!(abandoned.len(), 2, "{abandoned:?}");
    assert!(abandoned[0]["reason"].as_str().unwrap().contains(".bdp/runs/p1/1"), "{}", abandoned[0]);
    let release = sb.events("issue_released").into_iter().find(|e| e["issue"] == "p1").unwrap();
    assert_eq!(release["reason"], "failed");
    assert!(stdout(&out).contains("cannot create"), "{}", stdout(&out));
    let verify = sb.bdp(&["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    let audit = sb.bdp(&["audit"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}

#[test]
fn many_worktrees_made_at_once_do_not_race() {
    // Eight agents that finish at once: worktrees are added and removed concurrently with merges.
    let ids: Vec<String> = (0..24).map(|i| format!("m{i}")).collect();
    let issues: Vec<(&str, &str, i64, &[&str])> = ids.iter().map(|id| (id.as_str(), "m", 2, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let agent = sb.committing_agent();
    let out = sb.bdp(&["run", "--plain", "--agents", "8", "--retries", "0", "--", agent.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(sb.issues().values().all(|i| i["status"] == "closed"), "{}", stdout(&out));
    assert_eq!(sb.main_subjects().iter().filter(|s| s.starts_with("work on ")).count(), 24);
    assert!(sb.bdp_branches().is_empty());
    sb.assert_clean_end();
}

#[test]
fn a_run_with_the_br_tracker_closes_in_br_and_labels_phases() {
    let Some(br) = bdp::tracker::find_on_path("br") else {
        eprintln!("SKIPPED: br is not on PATH (.ci/run installs it); bdp run was not tested against br");
        return;
    };
    let sb = Sandbox::new(&[]);
    std::fs::remove_file(sb.root().join(".beads/issues.jsonl")).unwrap();
    let br_cmd = |args: &[&str]| -> String {
        let out = std::process::Command::new(&br).args(args).current_dir(sb.root()).output().unwrap();
        assert!(out.status.success(), "br {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    br_cmd(&["init", "--prefix", "rb"]);
    for title in ["first", "second"] {
        br_cmd(&["create", title, "--json"]);
    }
    sb.git(&["add", "-A"]);
    sb.git(&["commit", "-q", "-m", "br"]);
    let agent = sb.committing_agent();
    // A shim first on PATH logs each call bdp makes, then runs the real br.
    let log = sb.root().join(".scripts/br-calls.log");
    let shim =
        sb.script("br", &format!("printf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"", log.display(), br.display()));
    let mut path = std::ffi::OsString::from(shim.parent().unwrap());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let out = sb
        .bdp_cmd(&[
            "--tracker",
            "br",
            "run",
            "--plain",
            "--max-load",
            "1000",
            "--agents",
            "2",
            "--",
            agent.to_str().unwrap(),
        ])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let listed: serde_json::Value = serde_json::from_str(&br_cmd(&["list", "--all", "--json"])).unwrap();
    let issues = listed.get("issues").unwrap_or(&listed).as_array().unwrap().clone();
    assert_eq!(issues.len(), 2);
    for issue in &issues {
        assert_eq!(issue["status"], "closed", "{issue}");
        assert!(issue["close_reason"].as_str().unwrap().starts_with("bdp: merged "), "{issue}");
        assert_eq!(issue["labels"], serde_json::json!(["phase:closed"]), "{issue}");
    }
    assert!(sb.events("tracker_labels_changed").iter().all(|e| e["backend"] == "br"));
    // At most four calls per issue (claim with its label, running, close, closed), and the log counts them
    // all, as the shim saw them.
    let calls: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    let mut recorded = 0;
    for e in sb.events("tracker_calls") {
        recorded += e["other"].as_u64().unwrap_or(0);
        recorded += e["issues"].as_object().map_or(0, |m| m.values().map(|n| n.as_u64().unwrap()).sum());
    }
    assert_eq!(recorded, calls.len() as u64, "{calls:?}");
    for issue in &issues {
        let id = issue["id"].as_str().unwrap();
        let names = |c: &str| c.split(' ').skip(1).take_while(|w| !w.starts_with("--")).any(|w| w == id);
        let mine = calls.iter().filter(|c| names(c)).count();
        assert!(mine <= 4, "{id}: {mine} calls: {calls:?}");
    }
    assert!(sb.bdp_branches().is_empty());
    sb.assert_clean_end();
}

/// A FAKE bd (tests/common/fake_bd.py, not beads) holding the sandbox's issues, first on the PATH returned.
/// It logs every call to `fake_bd_calls.jsonl` and refuses flags bd does not have.
fn fake_bd_on_path(sb: &Sandbox) -> std::ffi::OsString {
    let issues: Vec<serde_json::Value> = sb.issues().into_values().collect();
    std::fs::write(sb.root().join("fake_bd_state.json"), serde_json::to_vec(&issues).unwrap()).unwrap();
    let exclude = sb.root().join(".git/info/exclude");
    let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
    text.push_str("/fake_bd_state.json\n/fake_bd_calls.jsonl\n");
    std::fs::write(&exclude, text).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/fake_bd.py");
    let bd = sb.script("bd", &format!("exec python3 {} \"$@\"", script.display()));
    let mut path = std::ffi::OsString::from(bd.parent().unwrap());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

/// The fake bd's calls, each as its argv.
fn fake_bd_calls(sb: &Sandbox) -> Vec<Vec<String>> {
    std::fs::read_to_string(sb.root().join("fake_bd_calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The issues a bd call names: `update|show|close ID...`, `label add|remove ID`.
fn call_issues(argv: &[String]) -> Vec<&str> {
    match argv.first().map(String::as_str) {
        Some("update" | "show" | "close") => {
            argv[1..].iter().take_while(|a| !a.starts_with("--")).map(String::as_str).collect()
        }
        Some("label") => argv.get(2).map(String::as_str).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn run_on_fake_bd(sb: &Sandbox, path: &std::ffi::OsString, extra: &[&str], agent: &std::path::Path) {
    let mut args = vec!["--tracker", "bd", "run", "--plain", "--max-load", "1000", "--agents", "2"];
    args.extend_from_slice(extra);
    args.extend(["--", agent.to_str().unwrap()]);
    let out = sb.bdp_cmd(&args).env("PATH", path).output().unwrap();
    let code = out.status.code();
    let calls = fake_bd_calls(sb);
    assert!(code == Some(0) || code == Some(1), "{}\n{}\ncalls: {calls:?}", stdout(&out), stderr(&out));
}

#[test]
fn a_stop_is_handled_while_a_slow_tracker_call_runs_and_the_call_still_lands() {
    let sb = Sandbox::new(&[("sc-1", "fast", 1, &[]), ("sc-2", "slow", 2, &[])]);
    let path = fake_bd_on_path(&sb);
    let agent = sb.committing_agent_after("agent.sh", r#"if [ "$BDP_ISSUE" = sc-2 ]; then sleep 60; fi"#);
    let args = ["--tracker", "bd", "run", "--plain", "--max-load", "1000", "--agents", "2", "--grace", "300ms"];
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--", agent.to_str().unwrap()]);
    let child = sb
        .bdp_cmd(&args)
        .env("PATH", &path)
        .env("FAKE_BD_SLOW_CLOSE", "4")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // sc-1's close has gone to bd, which takes seconds over it; sc-2's agent runs.
    wait_for(|| fake_bd_calls(&sb).iter().any(|c| c[0] == "close"));
    let stop = sb.bdp(&["stop", "--now"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    // The stop was decided on while bd still worked on the close: sc-2's agent was stopped and its end
    // recorded before the close's answer came back. Then the close landed, and was recorded.
    let records = sb.records();
    let seq = |kind: &str, id: &str| {
        records.iter().find(|r| r["event"]["type"] == kind && r["event"]["issue"] == id).and_then(|r| r["seq"].as_u64())
    };
    let stopped = seq("agent_exited", "sc-2").expect("sc-2's end is recorded");
    let closed = seq("tracker_issue_closed", "sc-1").expect("sc-1's close is recorded");
    assert!(stopped < closed, "sc-2 stopped at seq {stopped}, sc-1's close answered at seq {closed}");
    assert_eq!(sb.events("session_ended").last().unwrap()["reason"], "stopped");
    let state: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(sb.root().join("fake_bd_state.json")).unwrap()).unwrap();
    let status = |id: &str| state.iter().find(|i| i["id"] == id).unwrap()["status"].clone();
    assert_eq!(status("sc-1"), "closed");
    assert_eq!(status("sc-2"), "open");
}

/// Every call the run recorded in `tracker_calls` records: per issue, and in all.
fn recorded_calls(sb: &Sandbox) -> (std::collections::BTreeMap<String, u64>, u64) {
    let mut per_issue = std::collections::BTreeMap::new();
    let mut total = 0;
    for e in sb.events("tracker_calls") {
        assert_eq!(e["backend"], "bd");
        for (id, n) in e["issues"].as_object().cloned().unwrap_or_default() {
            *per_issue.entry(id).or_default() += n.as_u64().unwrap();
            total += n.as_u64().unwrap();
        }
        total += e["other"].as_u64().unwrap_or(0);
    }
    (per_issue, total)
}

#[test]
fn with_bd_each_issue_takes_at_most_five_calls_with_phase_labels_and_they_are_recorded() {
    let sb = Sandbox::new(&[("fb-1", "one", 2, &[]), ("fb-2", "two", 2, &["fb-1"]), ("fb-3", "three", 2, &[])]);
    let path = fake_bd_on_path(&sb);
    let agent = sb.committing_agent();
    run_on_fake_bd(&sb, &path, &[], &agent);
    let calls = fake_bd_calls(&sb);
    let state: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(sb.root().join("fake_bd_state.json")).unwrap()).unwrap();
    for issue in &state {
        assert_eq!(issue["status"], "closed", "{issue}");
        assert_eq!(issue["labels"], serde_json::json!(["phase:closed"]), "{issue}");
    }
    // The two issues ready at the start are claimed in one call (and read back in one).
    assert!(
        calls.iter().any(|c| c.contains(&"--claim".to_string()) && call_issues(c) == ["fb-1", "fb-3"]),
        "{calls:?}"
    );
    // The calls naming each issue: a claim that carries its phase label, the read-back bd's racy claim
    // needs, a label write per dispatch step that changed the phase (running, unless the agent was done
    // before the dispatcher next waited), the close, its label. Each label write takes off the one before.
    let strings = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
    for id in ["fb-1", "fb-2", "fb-3"] {
        let mine: Vec<&Vec<String>> = calls.iter().filter(|c| call_issues(c).contains(&id)).collect();
        assert!((4..=5).contains(&mine.len()), "{id}: {mine:?}");
        let flags =
            |c: &Vec<String>| -> Vec<String> { c.iter().skip_while(|a| !a.starts_with("--")).cloned().collect() };
        assert_eq!(
            (mine[0][0].as_str(), flags(mine[0])),
            ("update", strings(&["--claim", "--actor", "bdp", "--add-label", "phase:claimed", "--json"]))
        );
        assert_eq!(mine[1][0], "show", "{id}: {mine:?}");
        let close = mine.len() - 2;
        assert_eq!(mine[close][0], "close", "{id}: {mine:?}");
        let mut on = "phase:claimed".to_string();
        for (i, call) in mine.iter().enumerate().skip(2).filter(|(i, _)| *i != close) {
            let f = flags(call);
            assert_eq!(call[0], "update", "{id}: {call:?}");
            assert_eq!(f.len(), 5, "{id}: {call:?}");
            assert_eq!(f[0], "--add-label", "{id}: {call:?}");
            assert_eq!(f[2..], strings(&["--remove-label", &on, "--json"]), "{id}: {call:?}");
            on.clone_from(&f[1]);
            assert_eq!(on, if i == mine.len() - 1 { "phase:closed" } else { "phase:running" }, "{id}");
        }
    }
    let lists = calls.iter().filter(|c| call_issues(c).is_empty()).count();
    assert!(lists <= 3, "lists: {calls:?}");
    assert!(calls.len() <= 3 * 5 + lists, "{calls:?}");
    // What the log recorded is what the fake saw: single-issue calls per issue, the rest in all.
    let (per_issue, total) = recorded_calls(&sb);
    assert_eq!(total, calls.len() as u64);
    for (id, n) in &per_issue {
        let alone = calls.iter().filter(|c| call_issues(c) == [id.as_str()]).count() as u64;
        assert_eq!(*n, alone, "{id}");
    }
    let summary = sb.bdp(&["summary", "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(summary["tracker_calls"]["calls"], calls.len() as u64);
    assert_eq!(summary["tracker_calls"]["per_issue"], calls.len() as f64 / 3.0);
    let text = stdout(&sb.bdp(&["summary"]));
    assert!(text.contains(&format!("tracker calls: {} to bd", calls.len())), "{text}");
    sb.assert_clean_end();
}

#[test]
fn with_bd_and_phase_labels_off_only_the_claim_and_the_close_touch_the_tracker() {
    let sb = Sandbox::new(&[("fn-1", "one", 2, &[]), ("fn-2", "two", 2, &[])]);
    let path = fake_bd_on_path(&sb);
    let agent = sb.committing_agent();
    // As a config key (the flag is `--phase-labels none`).
    std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
    std::fs::write(sb.root().join(".bdp/config.toml"), "phase_labels = \"none\"\n").unwrap();
    run_on_fake_bd(&sb, &path, &[], &agent);
    let calls = fake_bd_calls(&sb);
    for id in ["fn-1", "fn-2"] {
        let verbs: Vec<&str> =
            calls.iter().filter(|c| call_issues(c).contains(&id)).map(|c| c[0].as_str()).collect::<Vec<_>>();
        assert_eq!(verbs, ["update", "show", "close"], "{id}: {calls:?}");
    }
    assert!(!calls.iter().flatten().any(|a| a.starts_with("phase:")), "{calls:?}");
    sb.assert_clean_end();
}

#[test]
fn with_bd_a_given_up_issue_is_released_and_labelled_in_one_call() {
    let sb = Sandbox::new(&[("ff-1", "one", 2, &[])]);
    let path = fake_bd_on_path(&sb);
    let agent = sb.script("fail.sh", "exit 3");
    run_on_fake_bd(&sb, &path, &["--retries", "0"], &agent);
    let calls: Vec<Vec<String>> = fake_bd_calls(&sb).into_iter().filter(|c| call_issues(c) == ["ff-1"]).collect();
    // Claim, read back, the running phase (unless the agent had failed before the dispatcher next waited),
    // and the release with both labels.
    assert!((3..=4).contains(&calls.len()), "{calls:?}");
    let release = calls.last().unwrap();
    let was_on = if calls.len() == 4 { "phase:running" } else { "phase:claimed" };
    let has = |flag: &str, value: &str| release.windows(2).any(|w| w[0] == flag && w[1] == value);
    assert!(has("--status", "open") && has("--assignee", ""), "{release:?}");
    assert!(has("--add-label", "bdp:failed") && has("--add-label", "phase:exited"), "{release:?}");
    assert!(has("--remove-label", was_on), "{release:?}");
    let state: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(sb.root().join("fake_bd_state.json")).unwrap()).unwrap();
    assert_eq!(state[0]["status"], "open");
    assert!(state[0].get("assignee").is_none(), "{}", state[0]);
    let mut labels: Vec<&str> = state[0]["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["bdp:failed", "phase:exited"]);
}

/// Waits until the log has a record of `kind`; tolerates a line being written.
fn wait_for_event(sb: &Sandbox, kind: &str) {
    wait_for(|| {
        let segments = std::fs::read_dir(sb.root().join(".bdp/events")).into_iter().flatten().flatten();
        segments.into_iter().any(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .any(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|r| r["event"]["type"] == kind))
        })
    });
}

/// Replaces the tracker file atomically (as an editor or `git checkout` would).
fn put_tracker_file(sb: &Sandbox, bytes: &[u8]) {
    let tmp = sb.root().join(".beads/issues.jsonl.edit");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, sb.root().join(".beads/issues.jsonl")).unwrap();
}

#[test]
fn a_tracker_file_briefly_unreadable_pauses_claims_and_the_run_carries_on() {
    let sb = Sandbox::new(&[("ou-1", "one", 1, &[]), ("ou-2", "two", 2, &[])]);
    let agent = sb.committing_agent_after("slow.sh", "sleep 1.5");
    let child = sb.spawn_bdp(&["run", "--plain", "--agents", "1", "--", agent.to_str().unwrap()]);
    wait_for_event(&sb, "agent_spawned");
    // A bad edit lands while the agent works, and is mended after the agent has finished.
    let good = std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap();
    let mut bad = good.clone();
    bad.extend_from_slice(b"{\"id\": \"ou-3\", \"title\": <<<<<<< HEAD\n");
    put_tracker_file(&sb, &bad);
    wait_for_event(&sb, "agent_exited");
    std::thread::sleep(Duration::from_millis(1500));
    put_tracker_file(&sb, &good);
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    // One line that names the file and the line, one when it is mended; no error, no agent killed.
    let paused: Vec<&str> = text.lines().filter(|l| l.contains("new claims paused")).collect();
    assert_eq!(paused.len(), 1, "{text}");
    assert!(paused[0].contains("issues.jsonl:3"), "{text}");
    assert!(text.contains("works again"), "{text}");
    assert!(!text.contains("internal error") && !stderr(&out).contains("error"), "{text}\n{}", stderr(&out));
    for exited in sb.events("agent_exited") {
        assert_eq!(exited["code"], 0, "{exited}");
    }
    assert!(sb.issues().values().all(|i| i["status"] == "closed"), "{:?}", sb.issues());
    assert_eq!(sb.events("tracker_issue_closed").len(), 2);
    // The log has the outage, once, and its end.
    let down = sb.events("tracker_down");
    assert_eq!(down.len(), 1, "{down:?}");
    assert!(down[0]["error"].as_str().unwrap().contains("issues.jsonl:3"), "{down:?}");
    let back = sb.events("tracker_back");
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(back[0]["down_ms"].as_u64().unwrap() >= 1000, "{back:?}");
    let events = stdout(&sb.bdp(&["events"]));
    assert!(events.contains("tracker_down") && events.contains("tracker_back"), "{events}");
    // What the user reads about it.
    let tracker_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("tracker ")).collect();
    let filters = [
        (regex_escape(&sb.root().display().to_string()), "[REPO]"),
        (r"\d+(\.\d+)?(ms|s)\b".to_string(), "[TIME]"),
        (r"column \d+".to_string(), "column [N]"),
        // How many writes waited depends on how far the merge got before the file was mended.
        (r"\d+ waiting write".to_string(), "[N] waiting write"),
    ];
    let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("run_tracker_outage_lines", tracker_lines.join("\n"));
    });
    sb.assert_clean_end();
}

#[test]
fn a_tracker_down_longer_than_the_outage_limit_drains_and_the_next_run_closes() {
    let sb = Sandbox::new(&[("od-1", "one", 1, &[]), ("od-2", "two", 2, &[])]);
    let agent = sb.committing_agent_after("slow.sh", "sleep 1");
    let child =
        sb.spawn_bdp(&["run", "--plain", "--agents", "1", "--tracker-outage", "2s", "--", agent.to_str().unwrap()]);
    wait_for_event(&sb, "agent_spawned");
    let good = std::fs::read(sb.root().join(".beads/issues.jsonl")).unwrap();
    let mut bad = good.clone();
    bad.extend_from_slice(b"not json\n");
    put_tracker_file(&sb, &bad);
    let out = child.wait_with_output().unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert!(err.contains("the tracker has not worked for 2.0s") && err.contains("issues.jsonl:3"), "{err}");
    assert!(!err.contains("internal error"), "{err}");
    let filters =
        [(regex_escape(&sb.root().display().to_string()), "[REPO]"), (r"column \d+".to_string(), "column [N]")];
    let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("run_tracker_outage_error", err);
    });
    assert!(text.contains("left     od-1"), "{text}");
    assert_eq!(sb.events("tracker_down").len(), 1);
    assert!(sb.events("tracker_back").is_empty());
    // The agent's work was merged; only the close waited. The next run, with the file mended, closes it once.
    assert_eq!(sb.events("merged").len(), 1);
    assert!(sb.events("tracker_issue_closed").is_empty());
    put_tracker_file(&sb, &good);
    let agent = sb.committing_agent();
    let out = sb.bdp(&["run", "--plain", "--agents", "1", "--", agent.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(sb.issues().values().all(|i| i["status"] == "closed"), "{:?}", sb.issues());
    let closed: Vec<String> =
        sb.events("tracker_issue_closed").iter().map(|e| e["issue"].as_str().unwrap().to_string()).collect();
    assert_eq!(closed, ["od-1", "od-2"]);
    sb.assert_clean_end();
}

#[test]
fn a_stop_is_handled_while_a_long_merge_runs_and_the_merge_still_lands() {
    let sb = Sandbox::new(&[("mq-1", "quick", 1, &[]), ("mq-2", "slow", 2, &[])]);
    // Moving `main` takes 3 s (a reference-transaction hook), so the merge of mq-1 is long.
    let hook = sb.root().join(".git/hooks/reference-transaction");
    std::fs::write(
        &hook,
        "#!/bin/sh\n[ \"$1\" = prepared ] || exit 0\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/main ] && sleep 3\ndone\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    // mq-2's agent is running (it says so in a file) before mq-1's agent finishes and its merge starts.
    let started = sb.root().join(".scripts/mq-2-started");
    let agent = sb.committing_agent_after(
        "agent.sh",
        &format!(
            "if [ \"$BDP_ISSUE\" = mq-2 ]; then touch '{started}'; sleep 60; fi\nwhile [ ! -e '{started}' ]; do sleep 0.05; done",
            started = started.display()
        ),
    );
    let child = sb.spawn_bdp(&["run", "--plain", "--agents", "2", "--grace", "1s", "--", agent.to_str().unwrap()]);
    wait_for_event(&sb, "merge_started");
    let stop = sb.bdp(&["stop", "--now"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(!stderr(&out).contains("error"), "{text}\n{}", stderr(&out));
    // The stop reached mq-2's agent while mq-1's merge was still running; the merge then landed and closed.
    let kinds: Vec<String> =
        sb.records().iter().map(|r| format!("{} {}", r["event"]["type"], r["event"]["issue"])).collect();
    let seq = |kind: &str, issue: &str| {
        seq_of(&sb, |e| e["type"] == kind && e["issue"] == issue)
            .unwrap_or_else(|| panic!("no {kind} of {issue}\n{text}\n{kinds:#?}"))
    };
    assert!(seq("agent_exited", "mq-2") < seq("merged", "mq-1"), "{text}");
    let exited = sb.events("agent_exited").into_iter().find(|e| e["issue"] == "mq-2").unwrap();
    assert!(exited["code"] != 0, "{exited}");
    let issues = sb.issues();
    assert_eq!(issues["mq-1"]["status"], "closed");
    assert_eq!(issues["mq-2"]["status"], "open");
    assert!(sb.main_subjects().iter().any(|s| s == "work on mq-1"));
    sb.assert_clean_end();
}

#[test]
fn a_stop_now_during_a_long_check_stops_the_check_and_gives_the_issue_back() {
    let sb = Sandbox::new(&[("ck-1", "checked slowly", 1, &[])]);
    let agent = sb.committing_agent_after("agent.sh", "");
    let started = sb.root().join(".scripts/check-started");
    let check = format!("touch '{}'; sleep 60", started.display());
    let child = sb.spawn_bdp(&["run", "--plain", "--grace", "1s", "--check", &check, "--", agent.to_str().unwrap()]);
    wait_for(|| started.exists());
    let stop = sb.bdp(&["stop", "--now"]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    // The check was stopped (no exit code), and the issue went back open, not retried and not merged.
    let failed = sb.events("check_failed");
    assert_eq!(failed.len(), 1, "{text}");
    assert!(failed[0]["code"].is_null(), "{}", failed[0]);
    let released = sb.events("issue_released");
    assert_eq!(released[0]["reason"], "shutdown", "{text}");
    assert!(sb.events("merge_started").is_empty(), "{text}");
    assert_eq!(sb.issues()["ck-1"]["status"], "open");
    assert!(text.contains("released ck-1  stopped (bdp stop --now)"), "{text}");
    sb.assert_clean_end();
}

#[test]
fn a_run_that_cannot_write_its_log_ends_leaving_agents_running_and_the_next_run_adopts_them() {
    let sb = Sandbox::new(&[("fz-1", "long", 1, &[]), ("fz-2", "short", 2, &[])]);
    let agent = sb.committing_agent_after("agent.sh", r#"if [ "$BDP_ISSUE" = fz-1 ]; then sleep 6; else sleep 2; fi"#);
    let mut cmd = sb.bdp_cmd(&["run", "--plain", "--agents", "2", "--", agent.to_str().unwrap()]);
    // A write past the file size limit then fails with EFBIG, as a full disk fails with ENOSPC.
    use std::os::unix::process::CommandExt;
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::signal(nix::sys::signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn)
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for_event(&sb, "agent_spawned");
    while sb.events("agent_spawned").len() < 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The log cannot grow any more: the next append (fz-2's exit) fails.
    let segment = sb.root().join(".bdp/events/000001.jsonl");
    let size = std::fs::metadata(&segment).unwrap().len();
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let limit = rustix::process::Rlimit { current: Some(size), maximum: None };
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Fsize, limit).unwrap();
    let out = child.wait_with_output().unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert!(!err.contains("internal error"), "{err}");
    assert!(err.contains("000001.jsonl") && err.contains("file size limit"), "{err}");
    let left: Vec<&str> = text.lines().filter(|l| l.starts_with("left running")).collect();
    assert!(left.len() == 1 && left[0].contains("fz-1"), "{text}");
    // fz-1's agent is still working; the next run adopts it and finishes both.
    let spawned = sb.events("agent_spawned").into_iter().find(|e| e["issue"] == "fz-1").unwrap();
    let (pid, start) = (spawned["pid"].as_u64().unwrap() as u32, spawned["start_time"].as_u64());
    assert!(bdp::process::is_alive(pid, start), "fz-1's agent was killed");
    let out = sb.bdp(&["run", "--plain", "--agents", "2", "--", agent.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("adopt"), "{text}");
    assert!(sb.issues().values().all(|i| i["status"] == "closed"), "{:?}", sb.issues());
    let fz1_exits: Vec<serde_json::Value> =
        sb.events("agent_exited").into_iter().filter(|e| e["issue"] == "fz-1").collect();
    assert_eq!(fz1_exits.len(), 1, "{fz1_exits:?}");
    assert_eq!(fz1_exits[0]["code"], 0);
    assert_eq!(sb.events("spawn_requested").iter().filter(|e| e["issue"] == "fz-1").count(), 1);
    // The adopted agent's wrapper is no child of the second run: init reaps it, a moment after it exits.
    let until = Instant::now() + Duration::from_secs(10);
    while bdp::process::is_alive(pid, start) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first session could not record its end (its log was full); the second took it over.
    let started = sb.events("session_started");
    assert_eq!(started.len(), 2);
    assert!(started[1]["recovers"].is_string(), "{}", started[1]);
    assert_eq!(sb.events("session_ended").len(), 1);
    assert!(sb.bdp(&["verify"]).status.success());
    for spawned in sb.events("agent_spawned") {
        let (pid, start) = (spawned["pid"].as_u64().unwrap() as u32, spawned["start_time"].as_u64());
        assert!(!bdp::process::is_alive(pid, start), "agent pid {pid} is still alive");
    }
    assert_eq!(sb.worktrees().len(), 1, "{:?}", sb.worktrees());
}

#[test]
fn a_merge_that_git_refuses_gives_that_issue_back_and_the_run_goes_on() {
    let sb = Sandbox::new(&[("gm-1", "refused", 1, &[]), ("gm-2", "fine", 2, &[])]);
    // git refuses to move `main` while the file `refuse` exists (a reference-transaction hook); gm-1's merge
    // meets it, gm-2's does not.
    let refuse = sb.root().join(".scripts/refuse");
    let hook = sb.root().join(".git/hooks/reference-transaction");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n[ \"$1\" = prepared ] || exit 0\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/main ] && [ -e '{}' ] && {{ echo 'main is frozen' >&2; exit 1; }}\ndone\nexit 0\n",
            refuse.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = sb.committing_agent_after(
        "agent.sh",
        &format!(
            "if [ \"$BDP_ISSUE\" = gm-1 ]; then touch '{refuse}'; else rm -f '{refuse}'; fi",
            refuse = refuse.display()
        ),
    );
    let out = sb.bdp(&["run", "--plain", "--agents", "1", "--", agent.to_str().unwrap()]);
    let text = stdout(&out);
    // Exit 1: an issue failed; not 2: the run itself went on.
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("failed   gm-1")).collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(failed[0].contains("the merge failed") && failed[0].contains("main is frozen"), "{text}");
    let issues = sb.issues();
    assert_eq!(issues["gm-1"]["status"], "open");
    assert_eq!(issues["gm-1"]["labels"], serde_json::json!(["bdp:failed"]));
    assert_eq!(issues["gm-2"]["status"], "closed");
    assert_eq!(sb.bdp_branches(), ["bdp/gm-1"]);
    assert!(sb.main_subjects().iter().any(|s| s == "work on gm-2"));
    assert!(!sb.main_subjects().iter().any(|s| s == "work on gm-1"));
    assert!(sb.bdp(&["verify"]).status.success());
}

/// A failed attempt says why in the agent's own words (the last line of its stderr here, cleaned of its
/// colour codes): in the progress line, in `status` while the retry waits, in `replay` and in `summary`.
#[test]
fn a_failed_attempt_says_why_in_the_agents_own_words() {
    let sb = Sandbox::new(&[("wy-1", "why", 2, &[])]);
    let agent = sb.script(
        "fail.sh",
        r#"echo "loading the model" >&2
printf '\033[31mfatal:\033[0m no model configured for %s\n' "$BDP_ISSUE" >&2
exit 3"#,
    );
    let agent = agent.to_str().unwrap();
    let words = "agent exited 3: fatal: no model configured for wy-1";
    let child = sb.spawn_bdp(&["run", "--plain", "--retries", "1", "--retry-backoff", "60s", "--", agent]);
    // While the retry waits, `status` says what the attempt before it said.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let text = stdout(&sb.bdp(&["status"]));
        if text.contains("attempt 2 in") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.contains(&format!("the last one: {words}")), "{status}");
    assert!(sb.bdp(&["stop", "--now"]).status.success());
    let out = child.wait_with_output().unwrap();
    // Given back at once, not when the 60 s backoff ends (the run is not timed here: a retry would fail it).
    assert!(stdout(&out).contains("stopped while it waited to retry"), "{}", stdout(&out));
    assert!(stdout(&out).contains(words), "the progress line\n{}", stdout(&out));
    assert!(!stdout(&out).contains('\u{1b}'), "the agent's escape codes reached the terminal");
    let session = sb.records()[0]["session"].as_str().unwrap().to_string();
    let replay = stdout(&sb.bdp(&["replay", &session]));
    assert!(replay.contains(words), "{replay}");

    // Given up: the summary says why under the issue.
    let out = sb.bdp(&["run", "--plain", "--retries", "0", "--", agent]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let summary = stdout(&sb.bdp(&["summary"]));
    assert!(summary.contains(&format!("{words} (after 1 attempt)")), "{summary}");
}

/// The crash-loop guard: an agent that cannot work at all (no API key, here) fails the first attempt of
/// each of three issues the same way; bdp stops claiming, gives those back without burning their retries,
/// leaves the rest of the backlog untouched, and exits 2 with the agent's line.
#[test]
fn a_broken_agent_setup_stops_the_run_instead_of_burning_the_backlog() {
    let ids = ["cl-1", "cl-2", "cl-3", "cl-4", "cl-5", "cl-6"];
    let issues: Vec<(&str, &str, i64, &[&str])> = ids.iter().map(|id| (*id, *id, 2, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let agent = sb.script("broken.sh", "echo 'error: ANTHROPIC_API_KEY is not set' >&2\nexit 1");
    let out = sb.bdp(&["run", "--plain", "--agents", "3", "--retries", "2", "--", agent.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let said = "agent exited 1: error: ANTHROPIC_API_KEY is not set";
    assert!(
        stdout(&out).contains(&format!("failed the same way, so the agent's setup is likely broken: {said}")),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains(said), "{}", stderr(&out));
    assert_eq!(sb.events("agent_spawned").len(), 3, "no retry, no fourth issue");
    let stopped = sb.events("claims_stopped");
    assert_eq!(stopped.len(), 1);
    assert!(
        stopped[0]["reason"].as_str().unwrap().ends_with(&format!("failed the same way: {said}")),
        "{}",
        stopped[0]
    );
    let session = sb.records()[0]["session"].as_str().unwrap().to_string();
    let replay = stdout(&sb.bdp(&["replay", &session]));
    assert!(replay.contains("no more claims in this run: the first attempts of 3 issues"), "{replay}");
    let issues = sb.issues();
    assert!(
        issues.values().all(|i| i["status"] == "open" && i.get("assignee").is_none_or(|a| a.is_null() || a == "")),
        "{issues:?}"
    );
    assert!(
        !issues.values().any(|i| i.to_string().contains("bdp:failed")),
        "a broken setup is not the issues' failure"
    );
    sb.assert_clean_end();
}

/// `--stall`: an attempt that writes nothing for that long (here its first, waiting on a prompt nobody
/// answers) is stopped and retried as stalled; the retry does the work.
#[test]
fn a_stalled_attempt_is_stopped_and_retried() {
    let sb = Sandbox::new(&[("st-1", "stall", 2, &[])]);
    let agent = sb.committing_agent_after(
        "stalls.sh",
        r#"if [ "$BDP_ATTEMPT" = 1 ]; then echo "Allow this command? [y/N]"; exec sleep 60; fi"#,
    );
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--stall",
        "1s",
        "--retries",
        "1",
        "--retry-backoff",
        "0",
        "--",
        agent.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("stalled: no output for 1.0s; attempt 2 of 2"), "{}", stdout(&out));
    let exits = sb.events("agent_exited");
    assert_eq!(exits.len(), 2);
    assert!(exits[0]["code"] != 0 && exits[0]["timed_out"] == false, "{}", exits[0]);
    assert_eq!(sb.events("retry_scheduled")[0]["reason"], "stalled: no output for 1.0s");
    assert_eq!(sb.issues()["st-1"]["status"], "closed");
    sb.assert_clean_end();
}

/// Budgets, with an agent that reports its cost as Claude Code does (`total_cost_usd` in its JSON result):
/// `--max-issue-cost` gives an issue back once its attempts spent it, without more retries;
/// `--max-cost` stops claiming once the run's agents spent it.
#[test]
fn budgets_stop_an_issue_and_then_the_run() {
    let sb = Sandbox::new(&[("bu-1", "costly", 1, &[])]);
    let failing = sb.script(
        "costly.sh",
        r#"echo '{"type":"result","is_error":true,"result":"not done yet","total_cost_usd":0.6,"session_id":"s"}'
exit 1"#,
    );
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--max-issue-cost",
        "1",
        "--retries",
        "5",
        "--retry-backoff",
        "0",
        "--",
        failing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(sb.events("agent_spawned").len(), 2, "the third attempt would spend past the budget");
    let released = &sb.events("issue_released")[0];
    assert_eq!(released["reason"], "failed");
    let detail = released["detail"].as_str().unwrap();
    assert!(detail.contains("agent exited 1: not done yet; its budget is spent: $1.20 of $1.00"), "{detail}");
    assert!(sb.issues()["bu-1"]["labels"].to_string().contains("bdp:failed"));

    let issues: Vec<(&str, &str, i64, &[&str])> =
        ["bu-2", "bu-3", "bu-4"].iter().map(|id| (*id, *id, 2, &[][..])).collect();
    let sb = Sandbox::new(&issues);
    let paying = sb.committing_agent_after(
        "paying.sh",
        r#"echo '{"type":"result","is_error":false,"result":"done","total_cost_usd":0.6,"session_id":"s"}'"#,
    );
    let out = sb.bdp(&["run", "--plain", "--agents", "1", "--max-cost", "1", "--", paying.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("--max-cost reached ($1.20 of $1.00)"), "{}", stdout(&out));
    assert_eq!(sb.events("claims_stopped")[0]["reason"], "--max-cost reached: $1.20 of $1.00");
    let issues = sb.issues();
    let closed = issues.values().filter(|i| i["status"] == "closed").count();
    assert_eq!((closed, issues.len() - closed), (2, 1), "two done, then no more claims: {issues:?}");
    sb.assert_clean_end();
}

/// Context exhaustion: an attempt whose agent says it ran out of context (Claude's "Prompt is too long")
/// leaves its uncommitted work; bdp commits it as work in progress and starts a continuation whose prompt
/// says what the attempt did (its commits, the files they change, its last words). The continuation goes
/// on from that work, and both land.
#[test]
fn an_attempt_out_of_context_is_continued_from_its_work() {
    let sb = Sandbox::new(&[("cx-1", "long task", 2, &[])]);
    let agent = sb.script(
        "long.sh",
        r#"set -e
if [ "$BDP_ATTEMPT" = 1 ]; then
  echo "first half" > half.txt
  echo '{"type":"result","subtype":"success","is_error":true,"api_error_status":400,"result":"Prompt is too long: 210000 tokens > 200000 maximum","session_id":"s1"}'
  exit 1
fi
grep -q "What happened in attempt 1" "$BDP_PROMPT_FILE"
grep -q "half.txt" "$BDP_PROMPT_FILE"
grep -q "Prompt is too long" "$BDP_PROMPT_FILE"
test -f half.txt
echo "second half" >> half.txt
git add half.txt
git commit -q -m "finish the long task""#,
    );
    let out = sb.bdp(&["run", "--plain", "--retries", "1", "--retry-backoff", "0", "--", agent.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let subjects = sb.main_subjects();
    assert!(subjects.iter().any(|s| s.starts_with("bdp: work in progress")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s == "finish the long task"), "{subjects:?}");
    let half = std::fs::read_to_string(sb.root().join("half.txt")).unwrap();
    assert_eq!(half, "first half\nsecond half\n");
    assert_eq!(sb.issues()["cx-1"]["status"], "closed");
    sb.assert_clean_end();
}

/// Retries that learn: attempt 2's prompt says how attempt 1 ended, with the failing check's command and
/// the end of its output, the end of the agent's own output, and the commits it made (discarded, as the
/// retry starts from the base). With `--retry-from last` the retry goes on from those commits instead.
#[test]
fn a_retry_prompt_tells_what_the_attempt_before_it_did() {
    let check =
        r#"grep -q "attempt 2" work.txt || { echo "test result: FAILED. 1 failed (expected attempt 2)"; exit 1; }"#;
    for (from, kept) in [("base", false), ("last", true)] {
        let sb = Sandbox::new(&[("lr-1", "learns", 2, &[][..])]);
        let prompts = sb.root().join(".scripts/prompts");
        std::fs::create_dir_all(&prompts).unwrap();
        let agent = sb.script(
            "agent.sh",
            &format!(
                r#"cp "$BDP_PROMPT_FILE" "{}/prompt-$BDP_ATTEMPT.md"
echo "agent: trying attempt $BDP_ATTEMPT"; echo "agent warning: flaky fixture" >&2
echo "attempt $BDP_ATTEMPT" >> work.txt; git add work.txt; git commit -q -m "work, attempt $BDP_ATTEMPT""#,
                prompts.display()
            ),
        );
        let out = sb.bdp(&[
            "run",
            "--plain",
            "--retries",
            "1",
            "--retry-backoff",
            "0",
            "--retry-from",
            from,
            "--check",
            check,
            "--",
            agent.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let second = std::fs::read_to_string(prompts.join("prompt-2.md")).unwrap();
        let story = &second[second.find("- This is attempt 2").expect("a retry's prompt says so")..];
        if kept {
            assert!(story.contains("its work is committed on this branch"), "{story}");
            assert!(story.contains("Its commits:") && story.contains("work, attempt 1"), "{story}");
            assert_eq!(sb.events("retry_scheduled")[0]["carry_on"], serde_json::json!({ "keep": true }));
            // Both attempts' commits reached main.
            assert_eq!(std::fs::read_to_string(sb.root().join("work.txt")).unwrap(), "attempt 1\nattempt 2\n");
        } else {
            let filters = vec![(r"[0-9a-f]{7,12} work, attempt 1", "[COMMIT] work, attempt 1")];
            insta::with_settings!({ filters => filters }, {
                insta::assert_snapshot!("retry_prompt_after_a_failed_check", story);
            });
            assert!(sb.events("retry_scheduled")[0].get("carry_on").is_none());
            assert_eq!(std::fs::read_to_string(sb.root().join("work.txt")).unwrap(), "attempt 2\n");
        }
        sb.assert_clean_end();
    }
}

/// The scripted agent of the conflict tests: each issue writes `shared.txt` (c2 a second later, so its
/// branch conflicts with c1's once c1 is merged). An attempt told to resolve a conflict runs `resolve`.
fn conflicting_agent(sb: &Sandbox, resolve: &str) -> std::path::PathBuf {
    sb.script(
        "conflicting.sh",
        &format!(
            r#"set -e
if grep -q "but it conflicts with main" "$BDP_PROMPT_FILE"; then
  {resolve}
  exit 0
fi
[ "$BDP_ISSUE" = c2 ] && sleep 1
echo "from $BDP_ISSUE" > shared.txt
git add shared.txt; git commit -q -m "work on $BDP_ISSUE""#
        ),
    )
}

/// `--on-conflict resolve` (the default): a branch that conflicts with the base gets one more attempt on
/// its own branch, whose prompt names the files and the base commit; it merges the base in, resolves, and
/// the result is merged. The retry's record names the conflict.
#[test]
fn a_conflicting_branch_is_resolved_by_one_more_attempt() {
    let sb = Sandbox::new(&[("c1", "one", 2, &[][..]), ("c2", "two", 2, &[][..])]);
    let agent = conflicting_agent(
        &sb,
        r#"grep -q "in: shared.txt" "$BDP_PROMPT_FILE"
git merge -q main || true
printf 'from c1\nfrom c2\n' > shared.txt
git add shared.txt; git commit -q --no-edit"#,
    );
    let out = sb.bdp(&["run", "--plain", "--agents", "2", "--retries", "0", "--", agent.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("conflict c2  its branch conflicts with the base in shared.txt; attempt 2 merges the base in"),
        "{text}"
    );
    assert!(sb.issues().values().all(|i| i["status"] == "closed"), "{:?}", sb.issues());
    assert_eq!(std::fs::read_to_string(sb.root().join("shared.txt")).unwrap(), "from c1\nfrom c2\n");
    let retry = &sb.events("retry_scheduled")[0];
    assert_eq!(retry["issue"], "c2");
    assert_eq!(retry["carry_on"]["conflict"]["files"], serde_json::json!(["shared.txt"]), "{retry}");
    assert_eq!(retry["carry_on"]["keep"], true);
    assert_eq!(sb.events("merge_conflicted").len(), 1);
    sb.assert_clean_end();
}

/// When the attempt to resolve fails too (here it gives up), the issue goes to a person: labelled
/// bdp:conflict, its branch kept. With `--on-conflict label` there is no such attempt at all.
#[test]
fn a_conflict_the_extra_attempt_cannot_resolve_is_labelled() {
    for (how, attempts) in [("resolve", 3), ("label", 2)] {
        let sb = Sandbox::new(&[("c1", "one", 2, &[][..]), ("c2", "two", 2, &[][..])]);
        let agent = conflicting_agent(&sb, "echo 'cannot make sense of it' >&2; exit 1");
        let out = sb.bdp(&[
            "run",
            "--plain",
            "--agents",
            "2",
            "--retries",
            "2",
            "--on-conflict",
            how,
            "--",
            agent.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
        assert_eq!(sb.events("spawn_requested").len(), attempts, "{how}: no retries beyond the one resolve attempt");
        let issues = sb.issues();
        assert_eq!(issues["c1"]["status"], "closed");
        assert!(issues["c2"]["labels"].to_string().contains("bdp:conflict"), "{how}: {:?}", issues["c2"]);
        let released = sb.events("issue_released").into_iter().find(|r| r["issue"] == "c2").unwrap();
        assert_eq!(released["reason"], "conflict");
        let detail = released["detail"].as_str().unwrap();
        if how == "resolve" {
            let want = "merge conflict in shared.txt; the attempt to resolve it failed: agent exited 1: cannot make sense of it";
            assert_eq!(detail, want);
        } else {
            assert_eq!(detail, "merge conflict in shared.txt");
        }
        assert!(sb.bdp_branches().contains(&"bdp/c2".to_string()), "the branch is kept for a person");
    }
}

/// Workspace hooks (`[hooks]` in `.bdp/config.toml`), each passing: `after_create` once for the new
/// worktree (it writes the `.env` the agent needs), `before_run` and `after_run` around the agent,
/// `before_remove` before the worktree goes; each in the worktree, with the `BDP_*` environment, and
/// each run is a `hook_ran` record.
#[test]
fn workspace_hooks_run_in_order_in_the_worktree() {
    let sb = Sandbox::new(&[("h1", "hooked", 2, &[][..])]);
    let trail = sb.root().join(".scripts/trail.txt");
    std::fs::create_dir_all(trail.parent().unwrap()).unwrap();
    let hook = |name: &str, extra: &str| {
        format!(r#"["sh", "-c", "{extra}echo {name} $BDP_ISSUE $BDP_ATTEMPT $(basename $PWD) >> {}"]"#, trail.display())
    };
    std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
    std::fs::write(
        sb.root().join(".bdp/config.toml"),
        format!(
            "[hooks]\nafter_create = {}\nbefore_run = {}\nafter_run = {}\nbefore_remove = {}\n",
            hook("after_create", "echo SECRET=1 > .env; "),
            hook("before_run", ""),
            hook("after_run", ""),
            hook("before_remove", "")
        ),
    )
    .unwrap();
    let agent =
        sb.committing_agent_after("agent.sh", "grep -q SECRET=1 .env; echo agent >> ../../../.scripts/trail.txt");
    let out = sb.bdp(&["run", "--plain", "--", agent.to_str().unwrap()]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let trail = std::fs::read_to_string(&trail).unwrap();
    assert_eq!(
        trail, "after_create h1 1 h1\nbefore_run h1 1 h1\nagent\nafter_run h1 1 h1\nbefore_remove h1 1 h1\n",
        "each hook once, in order, in the worktree"
    );
    let ran: Vec<(String, i64)> = sb
        .events("hook_ran")
        .iter()
        .map(|e| (e["hook"].as_str().unwrap().to_string(), e["code"].as_i64().unwrap()))
        .collect();
    let want: Vec<(String, i64)> =
        ["after_create", "before_run", "after_run", "before_remove"].iter().map(|h| (h.to_string(), 0)).collect();
    assert_eq!(ran, want);
    assert_eq!(sb.issues()["h1"]["status"], "closed");
    sb.assert_clean_end();
}

/// A failing hook fails its attempt with the end of its output (`after_create` and `before_run` before
/// the agent starts, `after_run` after an agent that succeeded); the retry runs it again. A failing
/// `before_remove` is reported, and the worktree goes anyway.
#[test]
fn a_failing_hook_fails_its_attempt_with_its_output() {
    for hook in ["after_create", "before_run", "after_run", "before_remove"] {
        let sb = Sandbox::new(&[("h2", "hooked", 2, &[][..])]);
        let marker = sb.root().join(format!(".scripts/{hook}.failed"));
        std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
        // Fails the first time it runs (saying why), passes after.
        let script = format!(
            r#"[ -f {m} ] && exit 0; touch {m}; echo "npm ERR! missing script: {hook}" >&2; exit 3"#,
            m = marker.display()
        );
        std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
        std::fs::write(
            sb.root().join(".bdp/config.toml"),
            format!("[hooks]\n{hook} = [\"sh\", \"-c\", {}]\n", serde_json::to_string(&script).unwrap()),
        )
        .unwrap();
        let agent = sb.committing_agent();
        let out = sb.bdp(&["run", "--plain", "--retries", "1", "--retry-backoff", "0", "--", agent.to_str().unwrap()]);
        assert!(out.status.success(), "{hook}: {}\n{}", stdout(&out), stderr(&out));
        assert_eq!(sb.issues()["h2"]["status"], "closed", "{hook}");
        let codes: Vec<i64> = sb.events("hook_ran").iter().map(|e| e["code"].as_i64().unwrap()).collect();
        let why = format!("the {hook} hook `sh -c {script}` exited 3: npm ERR! missing script: {hook}");
        if hook == "before_remove" {
            assert_eq!(codes, [3], "{hook}");
            assert!(sb.events("retry_scheduled").is_empty(), "{hook}: nothing to retry");
            assert!(stdout(&out).contains(&format!("note     h2  {why}")), "{}", stdout(&out));
        } else {
            assert_eq!(codes, [3, 0], "{hook}: failed, then passed on the retry");
            assert_eq!(sb.events("retry_scheduled")[0]["reason"], why, "{hook}");
            let spawned = sb.events("agent_spawned").len();
            assert_eq!(spawned, if hook == "after_run" { 2 } else { 1 }, "{hook}: agents started");
            if hook != "after_run" {
                assert_eq!(sb.events("attempt_abandoned")[0]["reason"], why, "{hook}");
            }
        }
        sb.assert_clean_end();
    }
}

/// A hook is an argv array: an empty one or an unknown hook is refused, naming the file and the key.
#[test]
fn bad_hooks_in_the_config_are_refused_by_name() {
    let sb = Sandbox::new(&[("h3", "x", 2, &[][..])]);
    std::fs::create_dir_all(sb.root().join(".bdp")).unwrap();
    for (text, says) in [
        ("[hooks]\nbefore_run = []\n", "config.toml: hooks.before_run is empty"),
        ("[hooks]\nbefore_start = [\"x\"]\n", "config.toml line 2: unknown field `before_start`"),
        ("[hooks]\nafter_run = \"make\"\n", "config.toml line 2: invalid type: string \"make\", expected a sequence"),
    ] {
        std::fs::write(sb.root().join(".bdp/config.toml"), text).unwrap();
        let out = sb.bdp(&["run", "--", "/bin/true"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(stderr(&out).contains(says), "{text}: {}", stderr(&out));
    }
}

/// The review gate: after the check, before the merge, a reviewer reads the issue and the diff and writes
/// its verdict. Here it requests changes once (naming what is missing), the next attempt's prompt carries
/// the review and goes on from the work, and the second review approves: then the merge. Each verdict is a
/// record, and replay shows it.
#[test]
fn a_review_that_requests_changes_once_then_approves() {
    let sb = Sandbox::new(&[("rv-1", "reviewed", 2, &[][..])]);
    let agent = sb.script(
        "agent.sh",
        r#"set -e
if grep -q "^## The review" "$BDP_PROMPT_FILE"; then
  grep -q "add a test for the empty list" "$BDP_PROMPT_FILE"
  echo test > test.txt; git add test.txt; git commit -q -m "add the test the review asked for"
else
  echo code > code.txt; git add code.txt; git commit -q -m "the change"
fi"#,
    );
    let reviewer = sb.script(
        "review.sh",
        r#"grep -q "code.txt" "$BDP_DIFF_FILE" || exit 9
test -f "$BDP_PROMPT_FILE" || exit 8
if grep -q "test.txt" "$BDP_DIFF_FILE"; then
  printf 'approve\nThe test covers it.\n' > "$BDP_REVIEW_FILE"
else
  printf 'changes requested\n- add a test for the empty list\n' > "$BDP_REVIEW_FILE"
fi"#,
    );
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--retries",
        "0",
        "--check",
        "test -f code.txt",
        "--review",
        reviewer.to_str().unwrap(),
        "--",
        agent.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "review   rv-1  review 1: changes requested; attempt 2 addresses them: - add a test for the empty list"
        ),
        "{text}"
    );
    assert!(text.contains("review   rv-1  review 2: approved: The test covers it."), "{text}");
    let verdicts: Vec<(String, u64)> = sb
        .events("review_verdict")
        .iter()
        .map(|v| (v["verdict"].as_str().unwrap().to_string(), v["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(verdicts, [("changes_requested".to_string(), 1), ("approve".to_string(), 2)]);
    let retry = &sb.events("retry_scheduled")[0];
    assert_eq!(retry["carry_on"]["review"], "- add a test for the empty list");
    assert_eq!(sb.issues()["rv-1"]["status"], "closed");
    let subjects = sb.main_subjects();
    assert!(
        subjects.contains(&"the change".to_string())
            && subjects.contains(&"add the test the review asked for".to_string())
    );
    let replay = stdout(&sb.bdp(&["replay", "--issue", "rv-1"]));
    assert!(replay.contains("review 1 of attempt 1: changes requested: - add a test for the empty list"), "{replay}");
    assert!(replay.contains("review 2 of attempt 2: approved: The test covers it."), "{replay}");
    let summary = stdout(&sb.bdp(&["summary"]));
    assert!(summary.contains("reviews: 2 — 1 approved, 1 requested changes"), "{summary}");
    sb.assert_clean_end();
}

/// A review that keeps requesting changes: after `--review-rounds` rounds the issue goes back labelled
/// bdp:failed with its branch kept; a reviewer that writes no verdict fails the attempt, saying so.
#[test]
fn a_review_that_never_approves_gives_the_issue_back() {
    let sb = Sandbox::new(&[("rv-2", "never good enough", 2, &[][..])]);
    let agent = sb.script("agent.sh", r#"echo x >> code.txt; git add code.txt; git commit -q -m "try $BDP_ATTEMPT""#);
    let reviewer = sb.script("review.sh", r#"printf 'changes requested\nnot yet\n' > "$BDP_REVIEW_FILE""#);
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--retries",
        "0",
        "--review-rounds",
        "1",
        "--review",
        reviewer.to_str().unwrap(),
        "--",
        agent.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(sb.events("review_verdict").len(), 2, "one round of changes, then no more");
    assert_eq!(sb.events("spawn_requested").len(), 2);
    let released = &sb.events("issue_released")[0];
    assert_eq!(released["detail"], "the review still requests changes after 2 reviews: not yet");
    assert!(sb.issues()["rv-2"]["labels"].to_string().contains("bdp:failed"));
    assert!(sb.bdp_branches().contains(&"bdp/rv-2".to_string()), "the work is kept for a person");

    let sb = Sandbox::new(&[("rv-3", "silent reviewer", 2, &[][..])]);
    let agent = sb.committing_agent();
    let reviewer = sb.script("review.sh", "echo 'reviewer: cannot reach the model' >&2; exit 4");
    let out = sb.bdp(&[
        "run",
        "--plain",
        "--retries",
        "0",
        "--review",
        reviewer.to_str().unwrap(),
        "--",
        agent.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let detail = sb.events("issue_released")[0]["detail"].as_str().unwrap().to_string();
    assert!(
        detail.starts_with("the review failed: the reviewer exited 4: reviewer: cannot reach the model"),
        "{detail}"
    );
    assert!(sb.events("review_verdict").is_empty());
}
