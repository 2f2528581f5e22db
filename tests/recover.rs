//! Recovery end to end (real git, real processes, the JSONL tracker): `bdp run` after a crash must not
//! adopt a reused pid, must adopt an agent that outlived a killed orchestrator, and must not signal a
//! process group that is no longer the agent's; `bdp audit` leaves a live run's work alone and finds (and
//! with `--fix` stops) a stray agent.

use crate::common::run_support;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bdp::event::{Event, Phase};
use bdp::repo::escape_path_component;
use run_support::{Sandbox, stderr, stdout};
use serde_json::Value;

/// The orchestrator of the crashed session: gone.
const DEAD_ORCHESTRATOR: u32 = 4_194_000;
const CRASHED: &str = "s-20261125-060000-r1";

fn one_issue(id: &str) -> Sandbox {
    Sandbox::new(&[(id, id, 2, &[][..])])
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sets an issue's status and assignee in `.beads/issues.jsonl`.
fn set_tracker(sb: &Sandbox, id: &str, status: &str, assignee: Option<&str>) {
    let mut issues = sb.issues();
    let issue = issues.get_mut(id).unwrap();
    issue["status"] = status.into();
    issue["assignee"] = assignee.map_or(Value::Null, Value::from);
    let text: String = issues.values().map(|v| serde_json::to_string(v).unwrap() + "\n").collect();
    std::fs::write(sb.root().join(".beads/issues.jsonl"), text).unwrap();
}

/// What a `bdp run` that crashed with `id`'s agent running leaves: the log up to `agent_spawned` (with
/// `pid`, `pgid`, `start_time`), the issue lock (log and file) of the dead orchestrator, the worktree and
/// branch, and the tracker claim.
fn crashed_with_agent(sb: &Sandbox, id: &str, pid: u32, pgid: u32, start_time: Option<u64>) {
    let root = sb.root();
    let worktree = root.join(".bdp/worktrees").join(escape_path_component(id));
    let runs = root.join(".bdp/runs").join(escape_path_component(id)).join("1");
    std::fs::create_dir_all(&runs).unwrap();
    let lock = format!("issue:{id}");
    let w = crashed_log_writer(root);
    let events = vec![
        crate::common::session_started(DEAD_ORCHESTRATOR, Some(1), serde_json::json!({}), None),
        Event::TrackerStatusSet {
            issue: id.into(),
            status: "in_progress".into(),
            assignee: Some("bdp".into()),
            backend: "jsonl".into(),
        },
        Event::IssueClaimed { issue: id.into(), actor: "bdp".into() },
        Event::LockAcquired { lock: lock.clone(), holder_pid: DEAD_ORCHESTRATOR, issue: Some(id.into()) },
        Event::WorktreeCreated {
            issue: id.into(),
            path: worktree.display().to_string(),
            branch: format!("bdp/{id}"),
            base: "main".into(),
        },
        Event::PhaseChanged { issue: id.into(), phase: Phase::WorktreeReady },
        Event::SpawnRequested {
            issue: id.into(),
            attempt: 1,
            argv: vec!["agent.sh".into(), id.into()],
            cwd: worktree.display().to_string(),
            marker: format!("{CRASHED}/{}/1", escape_path_component(id)),
            stdout: runs.join("stdout").display().to_string(),
            stderr: runs.join("stderr").display().to_string(),
        },
        Event::AgentSpawned { issue: id.into(), attempt: 1, pid, pgid, start_time },
        Event::PhaseChanged { issue: id.into(), phase: Phase::Running },
    ];
    w.append(events).unwrap();
    let locks = root.join(".bdp/locks");
    std::fs::create_dir_all(&locks).unwrap();
    std::fs::write(
        locks.join(format!("{}.lock", escape_path_component(&lock))),
        format!("pid {DEAD_ORCHESTRATOR} start 1 since 2026-11-25T06:00:00Z\n"),
    )
    .unwrap();
    sb.git(&["worktree", "add", "-q", "-b", &format!("bdp/{id}"), worktree.to_str().unwrap(), "main"]);
    set_tracker(sb, id, "in_progress", Some("bdp"));
}

fn crashed_log_writer(root: &Path) -> bdp::log::LogWriter {
    let bdp_dir = root.join(".bdp");
    std::fs::create_dir_all(&bdp_dir).unwrap();
    let (w, _) = bdp::log::LogWriter::open(
        &bdp_dir.join("events"),
        &bdp_dir.join("append.lock"),
        CRASHED,
        bdp::log::system_clock(),
    )
    .unwrap();
    w
}

fn run_args<'a>(agent: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--plain", "--agents", "1", "--retry-backoff", "50ms", "--grace", "2s"];
    args.extend_from_slice(extra);
    args.extend(["--", agent.to_str().unwrap(), "{id}"]);
    args
}

fn for_issue<'a>(events: &'a [Value], id: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["issue"] == id).collect()
}

/// A `sleep 60` in its own process group, with `env` set; killed and reaped on drop.
struct Sleeper {
    child: Child,
    pid: u32,
    start_time: u64,
}

impl Sleeper {
    fn start(env: &[(&str, &str)]) -> Sleeper {
        let mut cmd = Command::new("sleep");
        cmd.arg("60").process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        // Wait for the exec (until then /proc shows this test's command line and environment).
        wait_for("sleep to start", || {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
        });
        let start_time = bdp::process::start_time(pid).unwrap();
        Sleeper { child, pid, start_time }
    }

    fn running(&self) -> bool {
        bdp::process::is_running(self.pid, Some(self.start_time))
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_reused_pid_is_not_adopted_the_attempt_is_recorded_as_crashed_and_retried() {
    let sb = one_issue("a1");
    let agent = sb.committing_agent();
    // pid 1 runs, but it did not start at that time: not our agent.
    crashed_with_agent(&sb, "a1", 1, 1, Some(999_999_999));
    let out = sb.bdp(&run_args(&agent, &[]));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));

    let findings = sb.events("reconcile_finding");
    let crashed: Vec<_> = findings.iter().filter(|f| f["kind"] == "agent_crashed").collect();
    assert_eq!(crashed.len(), 1, "{findings:?}");
    assert_eq!(crashed[0]["issue"], "a1");
    assert!(crashed[0]["detail"].as_str().unwrap().contains("pid 1 is another process now"), "{crashed:?}");
    assert!(!findings.iter().any(|f| f["kind"] == "agent_alive"), "{findings:?}");
    let repairs = sb.events("repair_applied");
    assert!(!repairs.iter().any(|r| r["action"].as_str().unwrap().starts_with("adopt")), "{repairs:?}");
    assert!(repairs.iter().any(|r| r["kind"] == "agent_crashed" && r["issue"] == "a1"), "{repairs:?}");
    // Attempt 1 ended with no status (crashed); attempt 2 was spawned (not pid 1) and did the work.
    let exits = sb.events("agent_exited");
    let exits = for_issue(&exits, "a1");
    assert_eq!(exits[0]["attempt"], 1);
    assert!(exits[0].get("code").is_none() && exits[0].get("signal").is_none(), "{exits:?}");
    let requested = sb.events("spawn_requested");
    let attempts: Vec<_> = for_issue(&requested, "a1").iter().map(|e| e["attempt"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [1, 2]);
    let spawned = sb.events("agent_spawned");
    let second = for_issue(&spawned, "a1").into_iter().find(|e| e["attempt"] == 2).unwrap().clone();
    assert_ne!(second["pid"], 1);
    assert_eq!(sb.events("retry_scheduled").len(), 1);
    assert_eq!(sb.issues()["a1"]["status"], "closed");
    assert_eq!(sb.main_subjects().iter().filter(|s| *s == "work on a1").count(), 1);
    // The lock of the dead orchestrator was taken over, and given back at the end.
    assert!(sb.events("lock_broken").iter().any(|e| e["lock"] == "issue:a1"));
    let audit = sb.bdp(&["audit"]);
    assert_eq!(audit.status.code(), Some(0), "{}", stdout(&audit));
}

#[test]
fn a_spawn_recorded_without_a_start_time_is_never_adopted() {
    let sb = one_issue("a2");
    let agent = sb.committing_agent();
    // pid 1 runs; with no start time in the log it cannot be told from a reused pid.
    crashed_with_agent(&sb, "a2", 1, 1, None);
    // Were pid 1 adopted, the run would wait for it: the timeout bounds that wait.
    let out = sb.bdp(&run_args(&agent, &["--timeout", "20s"]));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let findings = sb.events("reconcile_finding");
    let kinds: Vec<_> = findings.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"agent_crashed") && !kinds.contains(&"agent_alive"), "{findings:?}");
    let requested = sb.events("spawn_requested");
    assert_eq!(for_issue(&requested, "a2").len(), 2, "attempt 2 did the work");
    assert_eq!(sb.issues()["a2"]["status"], "closed");
}

#[test]
fn an_agent_that_outlived_a_killed_orchestrator_is_adopted_and_merged_once() {
    let sb = one_issue("b1");
    let agent = sb.script(
        "slow.sh",
        r#"sleep 4; printf '%s\n' "$BDP_ISSUE" > b1.txt; git add b1.txt; git commit -q -m "work on $BDP_ISSUE""#,
    );
    let mut first = sb.bdp_cmd(&run_args(&agent, &[])).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("agent_spawned", || sb.root().join(".bdp/events").exists() && !sb.events("agent_spawned").is_empty());
    // SIGKILL the orchestrator only: the agent runs in its own process group.
    first.kill().unwrap();
    assert_eq!(first.wait().unwrap().signal(), Some(9));
    let spawned = sb.events("agent_spawned")[0].clone();
    let (pid, start) = (spawned["pid"].as_u64().unwrap() as u32, spawned["start_time"].as_u64());
    assert!(bdp::process::is_running(pid, start), "the agent died with the orchestrator");
    let crashed_session = sb.records().last().unwrap()["session"].clone();

    let out = sb.bdp(&run_args(&agent, &[]));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let findings = sb.events("reconcile_finding");
    assert!(findings.iter().any(|f| f["kind"] == "agent_alive" && f["issue"] == "b1"), "{findings:?}");
    let repairs = sb.events("repair_applied");
    assert!(
        repairs
            .iter()
            .any(|r| r["kind"] == "agent_alive"
                && r["action"] == format!("adopt attempt 1 (pid {pid}) and supervise it")),
        "{repairs:?}"
    );
    assert_eq!(sb.events("session_started").last().unwrap()["recovers"], crashed_session);
    // Adopted, not started again: one spawn for b1, its exit (from exit.json) recorded once, with code 0.
    assert_eq!(sb.events("spawn_requested").len(), 1);
    assert_eq!(sb.events("agent_spawned").len(), 1);
    let exits = sb.events("agent_exited");
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!((exits[0]["attempt"].as_u64(), exits[0]["code"].as_i64()), (Some(1), Some(0)));
    assert_eq!(sb.main_subjects().iter().filter(|s| *s == "work on b1").count(), 1, "{:?}", sb.main_subjects());
    assert_eq!(sb.events("merged").len(), 1);
    assert_eq!(sb.issues()["b1"]["status"], "closed");
    assert!(!bdp::process::is_running(pid, start));
    let audit = sb.bdp(&["audit"]);
    assert_eq!(audit.status.code(), Some(0), "{}", stdout(&audit));
}

#[test]
fn audit_during_a_live_run_leaves_its_work_alone() {
    let sb = Sandbox::new(&[("c1", "c1", 1, &[][..]), ("c2", "c2", 2, &[][..])]);
    let agent = sb.script(
        "slow.sh",
        r#"sleep 3; printf '%s\n' "$BDP_ISSUE" > "$BDP_ISSUE.txt"; git add -A; git commit -q -m "work on $BDP_ISSUE""#,
    );
    let mut run = sb.bdp_cmd(&run_args(&agent, &[])).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("agent_spawned", || sb.root().join(".bdp/events").exists() && !sb.events("agent_spawned").is_empty());
    let before = sb.events("repair_applied").len();
    // The live run has a claim, its lock (log and file), a worktree, a branch, an agent with a marker, and
    // an issue in_progress: none of it is a finding.
    let out = sb.bdp(&["audit", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["findings"], serde_json::json!([]));
    assert_eq!(report["live_orchestrator"], run.id());
    assert_eq!(
        (report["summary"]["lock_files"].as_u64(), report["summary"]["in_progress"].as_u64()),
        (Some(1), Some(1))
    );
    validate_audit(&report);
    let human = sb.bdp(&["audit"]);
    assert_eq!(human.status.code(), Some(0));
    let text = stdout(&human);
    // --fix has nothing to do, appends nothing, and stops nothing.
    let fix = sb.bdp(&["audit", "--fix"]);
    assert_eq!(fix.status.code(), Some(0), "{}", stdout(&fix));
    assert_eq!(sb.events("repair_applied").len(), before);
    let spawned = sb.events("agent_spawned")[0].clone();
    let agent_pid = spawned["pid"].as_u64().unwrap() as u32;
    let finished_meanwhile = !sb.events("agent_exited").is_empty();
    assert!(finished_meanwhile || bdp::process::is_running(agent_pid, spawned["start_time"].as_u64()));
    let pid_filter = format!(r"\(pid {}\)", run.id());
    insta::with_settings!({filters => vec![
        (pid_filter.as_str(), "(pid [PID])"),
        (r"\d+ record\(s\)", "[N] record(s)"),
    ]}, {
        insta::assert_snapshot!("audit_during_a_live_run", text);
    });

    let status = run.wait().unwrap();
    assert!(status.success());
    assert_eq!(sb.issues().values().filter(|i| i["status"] == "closed").count(), 2);
    let after = sb.bdp(&["audit"]);
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
    assert!(stdout(&after).contains("no run is live"), "{}", stdout(&after));
}

fn validate_audit(report: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/audit.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(report).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "audit --json does not match its schema: {errors:?}");
}

#[test]
fn a_stray_agent_after_a_run_is_found_and_audit_fix_stops_it() {
    let sb = one_issue("d1");
    let agent = sb.committing_agent();
    let out = sb.bdp(&run_args(&agent, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sb.bdp(&["audit"]).status.code(), Some(0));
    // Something the agent started lives on, with the marker of attempt 1, which is over.
    let marker = sb.events("spawn_requested")[0]["marker"].as_str().unwrap().to_string();
    let worktree = sb.root().join(".bdp/worktrees/d1").display().to_string();
    let mut stray = Sleeper::start(&[("BDP_MARKER", &marker), ("BDP_WORKTREE", &worktree)]);

    let out = sb.bdp(&["audit", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    validate_audit(&report);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["kind"], "agent_without_claim");
    assert_eq!(findings[0]["repair"], serde_json::json!({"action": "stop_agent", "pgid": stray.pid}));
    assert!(stray.running());

    let fix = sb.bdp(&["audit", "--fix"]);
    assert_eq!(fix.status.code(), Some(0), "{}", stdout(&fix));
    assert_eq!(stray.child.wait().unwrap().signal(), Some(15), "stopped with TERM");
    let repairs = sb.events("repair_applied");
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0]["kind"], "agent_without_claim");
    assert_eq!(repairs[0]["action"], format!("stop process group {} (TERM, then KILL)", stray.pid));
    assert_eq!(sb.bdp(&["audit"]).status.code(), Some(0));
}

#[test]
fn giving_up_a_claim_does_not_signal_a_process_group_that_is_no_longer_the_agents() {
    let sb = one_issue("e1");
    let agent = sb.committing_agent();
    // The crashed run's agent was pid P; P is now another process (its own group leader, no marker).
    let innocent = Sleeper::start(&[]);
    crashed_with_agent(&sb, "e1", innocent.pid, innocent.pid, Some(innocent.start_time + 1));
    // Meanwhile someone else took the issue: recovery gives the claim up (stopping the agent, if it runs).
    set_tracker(&sb, "e1", "in_progress", Some("alice"));
    let out = sb.bdp(&run_args(&agent, &[]));
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let findings = sb.events("reconcile_finding");
    assert!(findings.iter().any(|f| f["kind"] == "claim_taken" && f["issue"] == "e1"), "{findings:?}");
    let released = sb.events("issue_released");
    assert_eq!(released.len(), 1);
    assert_eq!(released[0]["reason"], "abandoned");
    assert!(innocent.running(), "recovery signalled the group of a process that is not the agent");
    assert_eq!(sb.issues()["e1"]["assignee"], "alice");
    assert!(sb.events("spawn_requested").len() == 1, "e1 is alice's: nothing is started for it");
}

/// A retry decided before bdp was killed carries on as it was decided: the first attempt (a stand-in
/// `claude` on PATH that hangs) is stopped as stalled, the retry that resumes its session is recorded, and
/// bdp is SIGKILLed during the backoff. The next `bdp run` recovers and starts the retry with `--resume`
/// and that session, as the record says, not afresh.
#[test]
fn a_retry_recorded_before_a_crash_still_resumes_the_agents_session() {
    let sb = one_issue("r1");
    // Resumed: do the work and print a result; otherwise hang (a stall).
    let claude = sb.script(
        "claude",
        r#"case " $* " in
  *" --resume "*) printf '%s\n' "$BDP_ISSUE" > r1.txt; git add r1.txt; git commit -q -m "work on $BDP_ISSUE"
                  echo '{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":0.01}';;
  *) exec sleep 300;;
esac"#,
    );
    let path = format!("{}:{}", claude.parent().unwrap().display(), std::env::var("PATH").unwrap());
    let args = |backoff: &'static str| {
        vec![
            "run",
            "--plain",
            "--agent",
            "claude",
            "--stall",
            "1s",
            "--grace",
            "1s",
            "--retries",
            "1",
            "--retry-backoff",
            backoff,
        ]
    };
    let mut first =
        sb.bdp_cmd(&args("10m")).env("PATH", &path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("retry_scheduled", || sb.root().join(".bdp/events").exists() && !sb.events("retry_scheduled").is_empty());
    first.kill().unwrap();
    first.wait().unwrap();
    let session = sb.events("agent_exited")[0]["session"].as_str().expect("the session bdp named").to_string();
    assert_eq!(sb.events("retry_scheduled")[0]["carry_on"], serde_json::json!({ "resume": session }));

    let out = sb.bdp_cmd(&args("0")).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let spawns = sb.events("spawn_requested");
    let second: Vec<&str> = spawns[1]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(second.windows(2).any(|w| w == ["--resume", session.as_str()]), "{second:?}");
    assert!(second.last().unwrap().contains("was stopped: stalled"), "{second:?}");
    assert_eq!(sb.issues()["r1"]["status"], "closed");
    assert_eq!(sb.main_subjects().iter().filter(|s| *s == "work on r1").count(), 1);
}
