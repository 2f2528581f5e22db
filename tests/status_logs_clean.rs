//! `bdp status`, `bdp logs` and `bdp clean` on real git repos in temp dirs, with logs written by the
//! log writer and real processes (`sleep`) standing in for agents, so "alive" is real. Every human output
//! and the `--json` output are snapshot-tested (pids, times and temp paths filtered out); what `clean`
//! removes and keeps is asserted on the file system, in git and in the log.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bdp::event::{Event, MergeStrategy, Phase, ReleaseReason, SessionEndReason};
use bdp::log::lock::{Holder, OrchestratorLock};
use bdp::log::{LogWriter, load, system_clock};
use bdp::repo::{Repo, branch_name};
use rustix::fs::{FlockOperation, flock};

// ---- processes -------------------------------------------------------------------------------------

/// A live process standing in for an agent; killed on drop.
struct Agent(Child);

impl Agent {
    fn start() -> Agent {
        Agent::start_in(Path::new("/"))
    }
    fn start_in(dir: &Path) -> Agent {
        Agent(Command::new("sleep").arg("60").current_dir(dir).spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn start_time(&self) -> Option<u64> {
        bdp::process::start_time(self.pid())
    }
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A pid that was alive and is not any more (reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn my_start_time() -> Option<u64> {
    bdp::process::start_time(std::process::id())
}

/// Takes the orchestrator lock the way `bdp run` does, naming this test process as the holder.
fn hold_orchestrator_lock(root: &Path) -> OrchestratorLock {
    let holder = Holder { pid: std::process::id(), start_time: my_start_time(), since: now() };
    std::fs::create_dir_all(root.join(".bdp")).unwrap();
    OrchestratorLock::acquire(&root.join(".bdp/orchestrator.lock"), &holder.render()).unwrap()
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Holds an exclusive flock on a new file until dropped.
fn flocked_file(path: &Path) -> std::fs::File {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    flock(&file, FlockOperation::NonBlockingLockExclusive).unwrap();
    file
}

// ---- repos and logs --------------------------------------------------------------------------------

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    std::fs::write(d.join(".git/info/exclude"), ".bdp/\n").unwrap();
    tmp
}

fn writer(root: &Path, session: &str) -> LogWriter {
    let bdp = root.join(".bdp");
    std::fs::create_dir_all(&bdp).unwrap();
    LogWriter::open(&bdp.join("events"), &bdp.join("append.lock"), session, system_clock()).unwrap().0
}

fn started(pid: u32, start_time: Option<u64>) -> Event {
    common::session_started(pid, start_time, serde_json::json!({}), None)
}

/// Claim, worktree (made for real when `root` is a git repo), spawn request and, if `pid` is given, the
/// agent's spawn and the running phase.
fn running(root: &Path, issue: &str, attempt: u32, pid: Option<(u32, Option<u64>)>, real_worktree: bool) -> Vec<Event> {
    let repo = Repo { root: root.to_path_buf() };
    let path = repo.worktree_path(issue);
    if real_worktree {
        bdp::git::add_worktree(root, &path, &branch_name(issue), "main").unwrap();
    }
    let rel = path.strip_prefix(root).unwrap().display().to_string();
    let i = issue.to_string();
    let mut events = vec![
        Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
        Event::WorktreeCreated { issue: i.clone(), path: rel.clone(), branch: branch_name(issue), base: "main".into() },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::WorktreeReady },
    ];
    events.extend(attempt_events(issue, attempt, pid));
    events
}

fn attempt_events(issue: &str, attempt: u32, pid: Option<(u32, Option<u64>)>) -> Vec<Event> {
    let i = issue.to_string();
    let mut events = vec![Event::SpawnRequested {
        issue: i.clone(),
        attempt,
        argv: vec!["agent.sh".into()],
        cwd: ".".into(),
        marker: format!("m-{attempt}"),
        stdout: "stdout".into(),
        stderr: "stderr".into(),
    }];
    if let Some((pid, start_time)) = pid {
        events.push(Event::AgentSpawned { issue: i.clone(), attempt, pid, pgid: pid, start_time });
        events.push(Event::PhaseChanged { issue: i, phase: Phase::Running });
    }
    events
}

fn exited(issue: &str, attempt: u32, code: i32) -> Event {
    Event::AgentExited {
        issue: issue.into(),
        attempt,
        code: Some(code),
        signal: None,
        duration_ms: 1_000,
        timed_out: false,
        usage: None,
        session: None,
    }
}

fn released(issue: &str, reason: ReleaseReason) -> Event {
    Event::IssueReleased { issue: issue.into(), reason, detail: None }
}

/// Writes an attempt's output files (and exit.json when `code` is given).
fn attempt_output(root: &Path, issue: &str, attempt: u32, stdout: &str, stderr: &str, code: Option<i32>) {
    let dir = Repo { root: root.to_path_buf() }.attempt_dir(issue, attempt);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prompt.md"), "do it\n").unwrap();
    std::fs::write(dir.join("stdout"), stdout).unwrap();
    std::fs::write(dir.join("stderr"), stderr).unwrap();
    if let Some(code) = code {
        std::fs::write(dir.join("exit.json"), format!(r#"{{"code":{code},"duration_ms":5}}"#)).unwrap();
    }
}

// ---- running bdp -----------------------------------------------------------------------------------

fn bdp_cmd(root: &Path, args: &[&str]) -> Command {
    let mut cmd = common::bdp(root);
    cmd.args(args);
    cmd
}

fn run(root: &Path, args: &[&str]) -> String {
    common::transcript(root, args)
}

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"pid \d+, (\d+ms|\d+\.\d+s|\d+m\d\ds|\?)", "pid [PID], [ELAPSED]");
    settings.add_filter(r"pid \d+", "pid [PID]");
    settings.add_filter(r" in (\d+ms|\d+\.\d+s|\d+m\d\ds)", " in [WAIT]");
    settings.add_filter(r#""(pid|pgid|holder_pid|start_time|elapsed_ms)": \d+"#, r#""$1": "[N]""#);
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[TS]");
    settings.add_filter(r"clean-\d{8}-\d{6}-\d+", "clean-[ID]");
    settings.add_filter(r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn status_json(root: &Path) -> serde_json::Value {
    let out = bdp_cmd(root, &["status", "--json"]).output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validate_status(value: &serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/status.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "status --json does not match its schema:\n{}", errors.join("\n"));
}

// ---- status ----------------------------------------------------------------------------------------

#[test]
fn status_without_bdp_data_says_nothing_has_run() {
    let tmp = git_repo();
    let root = tmp.path();
    let text = [run(root, &["status"]), run(root, &["status", "--json"])].join("\n");
    snapshot("status_no_data", &text);
    validate_status(&status_json(root));
    assert!(!root.join(".bdp").exists(), "status created .bdp");
}

/// A live session: the orchestrator lock is held (by this test), one agent alive, one dead, and issues
/// waiting for a retry, a merge, a spawn; a merge lock and lock files.
#[test]
fn status_of_a_running_session() {
    let tmp = git_repo();
    let root = tmp.path();
    let _lock = hold_orchestrator_lock(root);
    let agent = Agent::start();
    let w = writer(root, "s-live");
    w.append(vec![started(std::process::id(), my_start_time())]).unwrap();
    w.append(common::issue_done("bd-done", 1, dead_pid(), "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567")).unwrap();
    w.append(running(root, "bd-live", 1, Some((agent.pid(), agent.start_time())), false)).unwrap();
    w.append(vec![Event::ProgressReported {
        issue: "bd-live".into(),
        attempt: 1,
        status: "migrations written;\x1b[2J tests next".into(),
        percent: None,
        step: Some(2),
        steps: Some(3),
    }])
    .unwrap();
    w.append(running(root, "bd-dead", 1, Some((dead_pid(), Some(1))), false)).unwrap();
    let mut retry = running(root, "bd-retry", 1, Some((dead_pid(), Some(1))), false);
    retry.push(exited("bd-retry", 1, 3));
    retry.push(Event::RetryScheduled {
        issue: "bd-retry".into(),
        next_attempt: 2,
        backoff_ms: 3_600_000,
        reason: "exit 3".into(),
        carry_on: None,
    });
    w.append(retry).unwrap();
    let mut merge = running(root, "bd-merge", 1, Some((dead_pid(), Some(1))), false);
    merge.extend([
        exited("bd-merge", 1, 0),
        Event::CheckPassed { issue: "bd-merge".into(), attempt: 1, command: "true".into(), duration_ms: 5 },
        Event::PhaseChanged { issue: "bd-merge".into(), phase: Phase::Checked },
        Event::LockAcquired { lock: "merge".into(), holder_pid: std::process::id(), issue: Some("bd-merge".into()) },
        Event::MergeStarted {
            issue: "bd-merge".into(),
            branch: "bdp/bd-merge".into(),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
    ]);
    w.append(merge).unwrap();
    w.append(running(root, "bd-spawning", 1, None, false)).unwrap();
    let _held = flocked_file(&root.join(".bdp/locks/merge.lock"));
    std::fs::write(root.join(".bdp/locks/stale.lock"), "").unwrap();

    let empty_path = tempfile::tempdir().unwrap();
    let mut no_bd = common::bdp(root);
    no_bd.env("PATH", empty_path.path());
    let text =
        [run(root, &["status"]), common::transcript_of(root, &["--tracker", "bd", "status"], &mut no_bd)].join("\n");
    snapshot("status_running_session", &text);
    let json = status_json(root);
    validate_status(&json);
    snapshot("status_running_session_json", &run(root, &["status", "--json"]));

    // The facts, not just their rendering.
    assert_eq!(json["orchestrator"]["running"], true);
    assert_eq!(json["orchestrator"]["pid"], std::process::id());
    assert_eq!(json["session"]["state"], "running");
    let agents = json["agents"].as_array().unwrap();
    let alive: Vec<(&str, bool)> =
        agents.iter().map(|a| (a["issue"].as_str().unwrap(), a["alive"].as_bool().unwrap())).collect();
    assert_eq!(alive, [("bd-dead", false), ("bd-live", true)]);
    assert_eq!(agents[1]["pid"], agent.pid());
    let claimed: Vec<(&str, &str)> = json["claimed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["issue"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(claimed, [("bd-merge", "merging"), ("bd-retry", "waiting_retry"), ("bd-spawning", "spawning")]);
    let locks = json["locks"].as_array().unwrap();
    assert_eq!(locks[0]["name"], "merge");
    assert_eq!(locks[0]["file_locked"], true);
    assert_eq!(locks[1]["name"], "stale.lock");
    assert_eq!(locks[1]["file_locked"], false);
    assert_eq!(json["session"]["counts"]["done"], 1);
}

#[test]
fn status_of_a_crashed_session_and_of_a_finished_one() {
    let tmp = git_repo();
    let root = tmp.path();
    {
        // An orchestrator that died: its lock file names it, nobody holds the flock.
        let holder = Holder { pid: dead_pid(), start_time: Some(1), since: now() };
        std::fs::create_dir_all(root.join(".bdp")).unwrap();
        std::fs::write(root.join(".bdp/orchestrator.lock"), holder.render() + "\n").unwrap();
        let w = writer(root, "s-crashed");
        w.append(vec![started(holder.pid, Some(1))]).unwrap();
        w.append(running(root, "bd-orphan", 1, Some((dead_pid(), Some(1))), false)).unwrap();
    }
    let crashed = run(root, &["status"]);
    let json = status_json(root);
    validate_status(&json);
    assert_eq!(json["orchestrator"]["running"], false);
    assert_eq!(json["orchestrator"]["pid_alive"], false);
    assert_eq!(json["session"]["state"], "crashed");

    let finished = tempfile::tempdir().unwrap();
    common::build_normal(finished.path());
    let done = run(finished.path(), &["status"]);
    let json = status_json(finished.path());
    validate_status(&json);
    assert_eq!(json["session"]["state"], "ended");
    assert_eq!(
        (json["session"]["counts"]["done"].as_u64(), json["session"]["counts"]["failed"].as_u64()),
        (Some(2), Some(1))
    );
    snapshot("status_crashed_and_finished", &[crashed, done].join("\n"));
}

// ---- logs ------------------------------------------------------------------------------------------

const HOSTILE: &str = "bd/../evil\nid";

/// A finished session: bd-a failed once then passed (two attempts), bd-b and an issue with a hostile id.
fn logs_repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let w = writer(root, "s-logs");
    w.append(vec![started(dead_pid(), Some(1))]).unwrap();
    let mut a = running(root, "bd-a", 1, Some((dead_pid(), Some(1))), false);
    a.extend([
        exited("bd-a", 1, 1),
        Event::RetryScheduled {
            issue: "bd-a".into(),
            next_attempt: 2,
            backoff_ms: 10,
            reason: "exit 1".into(),
            carry_on: None,
        },
    ]);
    a.extend(attempt_events("bd-a", 2, Some((dead_pid(), Some(1)))));
    a.extend([exited("bd-a", 2, 0), released("bd-a", ReleaseReason::Done)]);
    w.append(a).unwrap();
    let mut b = running(root, "bd-b", 1, Some((dead_pid(), Some(1))), false);
    b.extend([exited("bd-b", 1, 0), released("bd-b", ReleaseReason::Done)]);
    w.append(b).unwrap();
    let mut h = running(root, HOSTILE, 1, Some((dead_pid(), Some(1))), false);
    h.extend([exited(HOSTILE, 1, 0), released(HOSTILE, ReleaseReason::Done)]);
    w.append(h).unwrap();
    w.append(vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]).unwrap();
    attempt_output(root, "bd-a", 1, "a1 line 1\na1 line 2\n", "a1 oops\n", Some(1));
    attempt_output(root, "bd-a", 2, "a2 line 1\na2 line 2\na2 line 3\nno newline at the end", "a2 warn\n", Some(0));
    attempt_output(root, "bd-b", 1, "b line 1\n", "", Some(0));
    attempt_output(root, HOSTILE, 1, "hostile output\n", "", Some(0));
    tmp
}

#[test]
fn logs_print_one_attempt_or_the_whole_session() {
    let tmp = logs_repo();
    let root = tmp.path();
    let cases: &[&[&str]] = &[
        &["logs", "--issue", "bd-a"],
        &["logs", "--issue", "bd-a", "--attempt", "1", "--stderr"],
        &["logs", "--issue", "bd-a", "--tail", "2"],
        &["logs", "--issue", "bd-a", "--both"],
        &["logs", "--issue", HOSTILE],
        &["logs"],
        &["logs", "--tail", "1"],
        &["logs", "--both"],
        &["logs", "--issue", "nope"],
        &["logs", "--issue", "bd-a", "--attempt", "7"],
    ];
    let text: Vec<String> = cases.iter().map(|args| run(root, args)).collect();
    snapshot("logs", &text.join("\n"));
    // The hostile id's output came from its escaped directory, inside .bdp/runs.
    assert!(root.join(".bdp/runs/bd%2F..%2Fevil%0Aid/1/stdout").exists());
    assert!(text[4].contains("hostile output"));
}

#[test]
fn logs_without_bdp_data_or_runs_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let text = run(tmp.path(), &["logs"]);
    let w = writer(tmp.path(), "s-empty");
    w.append(vec![started(dead_pid(), Some(1))]).unwrap();
    drop(w);
    let text = [text, run(tmp.path(), &["logs"]), run(tmp.path(), &["logs", "--issue", "bd-x"])].join("\n");
    snapshot("logs_errors", &text);
}

#[test]
fn logs_of_a_recovering_session_include_the_agents_it_adopted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    {
        let w = writer(root, "s-first");
        w.append(vec![started(dead_pid(), Some(1))]).unwrap();
        w.append(running(root, "bd-adopted", 1, Some((dead_pid(), Some(1))), false)).unwrap();
        let mut done = running(root, "bd-earlier", 1, Some((dead_pid(), Some(1))), false);
        done.extend([exited("bd-earlier", 1, 0), released("bd-earlier", ReleaseReason::Done)]);
        w.append(done).unwrap();
    }
    let w = writer(root, "s-second");
    w.append(vec![started(dead_pid(), Some(1))]).unwrap();
    w.append(running(root, "bd-new", 1, Some((dead_pid(), Some(1))), false)).unwrap();
    attempt_output(root, "bd-adopted", 1, "adopted output\n", "", None);
    attempt_output(root, "bd-earlier", 1, "not this session\n", "", Some(0));
    attempt_output(root, "bd-new", 1, "new output\n", "", None);
    let text = run(root, &["logs"]);
    assert!(!text.contains("not this session"), "{text}");
    snapshot("logs_recovering_session", &text);
}

/// Runs `bdp logs ARGS` in the background; returns it and a thread collecting its stdout.
fn spawn_logs(root: &Path, args: &[&str]) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = bdp_cmd(root, args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    (child, reader)
}

fn wait_for(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

#[test]
fn logs_follow_prints_appended_output_and_ends_with_the_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut one = Agent::start();
    let mut two = Agent::start();
    let w = writer(root, "s-follow");
    w.append(vec![started(dead_pid(), Some(1))]).unwrap();
    w.append(running(root, "bd-one", 1, Some((one.pid(), one.start_time())), false)).unwrap();
    w.append(running(root, "bd-two", 1, Some((two.pid(), two.start_time())), false)).unwrap();
    attempt_output(root, "bd-one", 1, "one: before\n", "", None);
    attempt_output(root, "bd-two", 1, "two: before\n", "", None);
    let dir = |issue: &str| Repo { root: root.to_path_buf() }.attempt_dir(issue, 1);

    // One attempt: ends when exit.json appears, after printing everything written before it.
    let (mut single, single_out) = spawn_logs(root, &["logs", "--issue", "bd-one", "--follow"]);
    // All attempts: ends when both are over (one by its exit file, the other by its agent dying).
    let (mut all, all_out) = spawn_logs(root, &["logs", "--follow"]);
    std::thread::sleep(Duration::from_millis(600));
    append(&dir("bd-one").join("stdout"), "one: during\npartial");
    append(&dir("bd-two").join("stdout"), "two: during\n");
    std::thread::sleep(Duration::from_millis(600));
    assert!(single.try_wait().unwrap().is_none(), "--follow ended before the attempt did");
    append(&dir("bd-one").join("stdout"), " line\none: last\n");
    std::fs::write(dir("bd-one").join("exit.json"), r#"{"code":0,"duration_ms":5}"#).unwrap();
    one.kill();
    assert!(wait_for(&mut single, Duration::from_secs(10)), "--follow did not end after exit.json");
    assert_eq!(single_out.join().unwrap(), "one: before\none: during\npartial line\none: last\n");

    std::thread::sleep(Duration::from_millis(500));
    assert!(all.try_wait().unwrap().is_none(), "--follow ended while bd-two still runs");
    append(&dir("bd-two").join("stdout"), "two: last words");
    two.kill(); // no exit.json: the agent is gone, so following it ends
    assert!(wait_for(&mut all, Duration::from_secs(10)), "--follow did not end after the agent died");
    let text = all_out.join().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        "bd-one#1 | one: before",
        "bd-one#1 | one: during",
        "bd-one#1 | partial line",
        "bd-one#1 | one: last",
        "bd-two#1 | two: before",
        "bd-two#1 | two: during",
        "bd-two#1 | two: last words",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(lines.len(), 7, "{text}");
}

// ---- clean -----------------------------------------------------------------------------------------

struct CleanScene {
    tmp: tempfile::TempDir,
    _agents: Vec<Agent>,
    _held: std::fs::File,
    _outside: tempfile::TempDir,
}

/// A crashed session that left: a live agent's worktree (bd-live), a finished issue's worktree (bd-done),
/// a conflicted issue's worktree and branch (bd-conflict), a dead agent's claim (bd-crashed), a worktree
/// a process works in (bd-busy), a plain directory git does not know (hostile id), an orphan branch, a
/// bdp/ branch checked out outside .bdp, run dirs, and lock files (held, stale, and one the log says a
/// live process holds).
fn clean_scene() -> CleanScene {
    let tmp = git_repo();
    let root = tmp.path();
    let repo = Repo { root: root.to_path_buf() };
    let live = Agent::start();
    let lock_holder = Agent::start();
    let w = writer(root, "s-crashed");
    w.append(vec![started(dead_pid(), Some(1))]).unwrap();
    w.append(running(root, "bd-live", 1, Some((live.pid(), live.start_time())), true)).unwrap();
    let mut done = running(root, "bd-done", 1, Some((dead_pid(), Some(1))), true);
    done.extend([exited("bd-done", 1, 0), released("bd-done", ReleaseReason::Done)]);
    w.append(done).unwrap();
    let mut conflict = running(root, "bd-conflict", 1, Some((dead_pid(), Some(1))), true);
    conflict.extend([
        exited("bd-conflict", 1, 0),
        Event::MergeStarted {
            issue: "bd-conflict".into(),
            branch: branch_name("bd-conflict"),
            base: "main".into(),
            strategy: MergeStrategy::Merge,
        },
        Event::MergeConflicted { issue: "bd-conflict".into(), detail: "merge conflict in a.txt".into() },
        released("bd-conflict", ReleaseReason::Conflict),
    ]);
    w.append(conflict).unwrap();
    w.append(running(root, "bd-crashed", 1, Some((dead_pid(), Some(1))), true)).unwrap();
    let mut busy = running(root, "bd-busy", 1, Some((dead_pid(), Some(1))), true);
    busy.extend([exited("bd-busy", 1, 0), released("bd-busy", ReleaseReason::Done)]);
    w.append(busy).unwrap();
    w.append(vec![Event::LockAcquired { lock: "merge".into(), holder_pid: lock_holder.pid(), issue: None }]).unwrap();
    drop(w);
    let in_busy = Agent::start_in(&repo.worktree_path("bd-busy"));
    std::fs::create_dir_all(repo.worktree_path(HOSTILE).join("sub")).unwrap();
    git(root, &["branch", "bdp/orphan"]);
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().join("checkout");
    git(root, &["worktree", "add", "-q", "-b", "bdp/elsewhere", elsewhere.to_str().unwrap(), "main"]);
    for issue in ["bd-live", "bd-done", "bd-conflict", "bd-crashed"] {
        attempt_output(root, issue, 1, "out\n", "", None);
    }
    let held = flocked_file(&repo.locks_dir().join("held.lock"));
    std::fs::write(repo.locks_dir().join("stale.lock"), "").unwrap();
    std::fs::write(repo.locks_dir().join("merge.lock"), "").unwrap();
    CleanScene { tmp, _agents: vec![live, lock_holder, in_busy], _held: held, _outside: outside }
}

/// What is on disk and in git, one line per thing, sorted.
fn inventory(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["worktrees", "runs", "locks"] {
        for path in bdp_entries(&root.join(".bdp").join(sub)) {
            out.push(format!("{sub}/{}", path.file_name().unwrap().to_string_lossy()));
        }
    }
    for branch in git(root, &["for-each-ref", "--format=%(refname:short)", "refs/heads/bdp/"]).lines() {
        out.push(format!("branch {branch}"));
    }
    for line in git(root, &["worktree", "list", "--porcelain"]).lines() {
        if let Some(path) = line.strip_prefix("worktree ") {
            let path = PathBuf::from(path);
            if let Ok(rest) = path.strip_prefix(root.canonicalize().unwrap())
                && !rest.as_os_str().is_empty()
            {
                out.push(format!("git-worktree {}", rest.display()));
            }
        }
    }
    out.sort();
    out
}

fn bdp_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|r| r.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

fn worktree_removals(root: &Path) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    load::fold_verified(&root.join(".bdp/events"), None, |record, _| {
        if let Event::WorktreeRemoved { issue, path } = &record.event {
            out.push((record.session.clone(), issue.clone(), path.clone()));
        }
    })
    .unwrap();
    out
}

#[test]
fn clean_removes_leftovers_and_keeps_what_is_alive_or_conflicted() {
    let scene = clean_scene();
    let root = scene.tmp.path();
    let before = inventory(root);
    let sessions_before = load::fold_verified(&root.join(".bdp/events"), None, |_, _| {}).unwrap().0.sessions;

    let dry = run(root, &["clean", "--dry-run"]);
    assert_eq!(inventory(root), before, "--dry-run changed something");
    assert!(worktree_removals(root).is_empty(), "--dry-run wrote to the log");

    let first = run(root, &["clean"]);
    let after: Vec<String> = inventory(root);
    // Kept: live and busy work, the conflicted issue (for the user), and the crashed session's claim (for
    // the next run's recovery).
    let expected_left = [
        "branch bdp/bd-busy",
        "branch bdp/bd-conflict",
        "branch bdp/bd-crashed",
        "branch bdp/bd-live",
        "branch bdp/elsewhere",
        "git-worktree .bdp/worktrees/bd-busy",
        "git-worktree .bdp/worktrees/bd-conflict",
        "git-worktree .bdp/worktrees/bd-crashed",
        "git-worktree .bdp/worktrees/bd-live",
        "locks/held.lock",
        "locks/merge.lock",
        "runs/bd-conflict",
        "runs/bd-crashed",
        "runs/bd-live",
        "worktrees/bd-busy",
        "worktrees/bd-conflict",
        "worktrees/bd-crashed",
        "worktrees/bd-live",
    ];
    assert_eq!(after, expected_left);
    // The live agent's worktree is intact, files and all.
    assert!(root.join(".bdp/worktrees/bd-live/a.txt").exists());

    // Each removed worktree is in the log, under clean's own session, which started no session.
    let removals = worktree_removals(root);
    let issues: Vec<&str> = removals.iter().map(|(_, i, _)| i.as_str()).collect();
    assert_eq!(issues, [HOSTILE, "bd-done"]);
    assert!(removals.iter().all(|(s, _, _)| s.starts_with("clean-")));

    let again = run(root, &["clean"]);
    let all = run(root, &["clean", "--all"]);
    let left = inventory(root);
    assert!(!left.iter().any(|l| l.contains("bd-conflict")), "--all keeps the conflicted issue: {left:?}");
    assert!(!left.iter().any(|l| l.contains("bd-crashed")), "--all keeps the crashed claim: {left:?}");
    let removals = worktree_removals(root);
    let crashed = removals.iter().find(|(_, i, _)| i == "bd-crashed").expect("--all removed bd-crashed's worktree");
    assert_eq!(crashed.2, ".bdp/worktrees/bd-crashed", "the path the log had for the claim's worktree");
    let (state, _) = load::fold_verified(&root.join(".bdp/events"), None, |_, _| {}).unwrap();
    assert_eq!(state.sessions, sessions_before, "clean must not start or end a session");
    assert!(state.issues["bd-crashed"].claim.as_ref().unwrap().worktree.is_none());
    assert!(left.iter().any(|l| l == "worktrees/bd-live") && left.iter().any(|l| l == "worktrees/bd-busy"));
    snapshot("clean", &[dry, first, again, all].join("\n"));
}

#[test]
fn clean_keeps_every_claim_while_an_orchestrator_runs() {
    let tmp = git_repo();
    let root = tmp.path();
    let w = writer(root, "s-running");
    w.append(vec![started(std::process::id(), my_start_time())]).unwrap();
    w.append(running(root, "bd-waiting", 1, Some((dead_pid(), Some(1))), true)).unwrap();
    let mut done = running(root, "bd-done", 1, Some((dead_pid(), Some(1))), true);
    done.extend([exited("bd-done", 1, 0), released("bd-done", ReleaseReason::Done)]);
    w.append(done).unwrap();
    drop(w);
    let lock = hold_orchestrator_lock(root);
    let text = run(root, &["clean"]);
    let left = inventory(root);
    assert!(left.contains(&"worktrees/bd-waiting".to_string()) && left.contains(&"branch bdp/bd-waiting".to_string()));
    assert!(!left.iter().any(|l| l.contains("bd-done")), "{left:?}");
    drop(lock);
    // Without the orchestrator the dead agent's claim is not live any more.
    let text = [text, run(root, &["clean", "--dry-run"])].join("\n");
    snapshot("clean_with_orchestrator", &text);
}

#[test]
fn clean_without_bdp_data_creates_nothing() {
    let tmp = git_repo();
    let text = run(tmp.path(), &["clean"]);
    assert!(!tmp.path().join(".bdp").exists());
    snapshot("clean_no_data", &text);
}
