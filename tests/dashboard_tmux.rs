//! `bdp status --watch` for real, in a tmux pane 120×40: the screen shows the session, counts, the running
//! agent with its title and last output line, the queue and the locks; a record appended while it runs
//! shows up; `q` ends it and leaves the terminal as it found it (cooked mode, the normal screen), and so
//! does a panic. Skipped, with a notice, where tmux is not installed (`.ci/run` installs it).
//!
//! Each test runs its own tmux server (`tmux -L <unique socket>`), killed at the end whatever happens.

use crate::common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bdp::event::{Event, Phase};
use bdp::log::lock::{Holder, OrchestratorLock};
use bdp::log::{LogWriter, system_clock};
use bdp::repo::Repo;

fn have_tmux() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        println!("skipped: tmux not found (apt-get install tmux)");
    }
    found
}

/// A tmux server of our own with one detached session; killed on drop.
struct Tmux {
    socket: String,
    name: String,
}

impl Tmux {
    /// Runs `command` (a shell command line of fixed test paths, no outside text) in a new 120×40 pane.
    fn start(tag: &str, command: &str) -> Tmux {
        let socket = format!("bdp-test-{}-{tag}", std::process::id());
        let tmux = Tmux { socket, name: "dash".to_string() };
        let ok = tmux
            .cmd()
            .args(["new-session", "-d", "-x", "120", "-y", "40", "-s", &tmux.name, command])
            .status()
            .unwrap();
        assert!(ok.success(), "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    fn capture(&self) -> String {
        let out = self.cmd().args(["capture-pane", "-p", "-t", &self.name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `ready` holds for it, within `limit`; panics with the last screen otherwise.
    fn wait_for(&self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send_keys(&self, keys: &str) {
        assert!(self.cmd().args(["send-keys", "-t", &self.name, keys]).status().unwrap().success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// A `sleep` standing in for a running agent; killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shell line that runs the dashboard on `root`, then prints its exit code and the terminal's modes
/// (raw mode shows as `-icanon -echo`), and stays so the pane can be read.
fn watch_command(root: &Path, env: &str) -> String {
    format!(
        "{env} '{}' --repo '{}' status --watch; echo \"dashboard exit=$?\"; stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; echo checked; sleep 60",
        env!("CARGO_BIN_EXE_bdp"),
        root.display()
    )
}

/// An earlier finished session, then an open one (its orchestrator lock held by this test) with one issue
/// done and one agent running, its output file, and a tracker with titles and a queue.
fn live_repo(agent: &Agent) -> (tempfile::TempDir, OrchestratorLock, LogWriter) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    common::build_normal(root);
    let holder = Holder {
        pid: std::process::id(),
        start_time: bdp::process::start_time(std::process::id()),
        since: "now".into(),
    };
    let lock = OrchestratorLock::acquire(&root.join(".bdp/orchestrator.lock"), &holder.render()).unwrap();
    let bdp = root.join(".bdp");
    let (w, _) = LogWriter::open(&bdp.join("events"), &bdp.join("append.lock"), "s-live-0001", system_clock()).unwrap();
    w.append(vec![common::session_started(
        std::process::id(),
        bdp::process::start_time(std::process::id()),
        serde_json::json!({}),
        None,
    )])
    .unwrap();
    w.append(common::issue_done("bd-done7", 1, 5301, "5555555555555555555555555555555555555555")).unwrap();
    let pid = agent.0.id();
    let i = "bd-run9".to_string();
    w.append(vec![
        Event::IssueClaimed { issue: i.clone(), actor: "bdp".into() },
        Event::PhaseChanged { issue: i.clone(), phase: Phase::WorktreeReady },
        Event::SpawnRequested {
            issue: i.clone(),
            attempt: 1,
            argv: vec!["agent.sh".into()],
            cwd: ".".into(),
            marker: "m".into(),
            stdout: ".bdp/runs/bd-run9/1/stdout".into(),
            stderr: ".bdp/runs/bd-run9/1/stderr".into(),
        },
        Event::AgentSpawned { issue: i.clone(), attempt: 1, pid, pgid: pid, start_time: bdp::process::start_time(pid) },
        Event::PhaseChanged { issue: i, phase: Phase::Running },
    ])
    .unwrap();
    let dir = Repo { root: root.to_path_buf() }.attempt_dir("bd-run9", 1);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stdout"), "starting\n\x1b[32mcompiling the widget\x1b[0m\n").unwrap();
    std::fs::create_dir_all(root.join(".beads")).unwrap();
    let issues = [
        r#"{"id":"bd-run9","title":"Teach the widget to spin","status":"in_progress","priority":1}"#,
        r#"{"id":"bd-next1","title":"Polish the knobs","status":"open","priority":0}"#,
        r#"{"id":"bd-next2","title":"Oil the hinges","status":"open","priority":2}"#,
    ];
    std::fs::write(root.join(".beads/issues.jsonl"), issues.join("\n") + "\n").unwrap();
    (tmp, lock, w)
}

fn sleeper() -> Agent {
    Agent(Command::new("sleep").arg("60").spawn().unwrap())
}

#[test]
fn the_dashboard_shows_a_live_run_follows_the_log_and_quits_on_q() {
    if !have_tmux() {
        return;
    }
    let agent = sleeper();
    let (tmp, _lock, w) = live_repo(&agent);
    let tmux = Tmux::start("live", &watch_command(tmp.path(), ""));
    let screen =
        tmux.wait_for("the first frame", Duration::from_secs(10), |s| s.contains("bd-run9") && s.contains("queue"));
    for expected in [
        "session s-live-0001  running",
        "done 1   failed 0   conflicted 0   running 1   queued 2",
        "Teach the widget to spin",
        "compiling the widget",
        "bd-next1",
        "Polish the knobs",
        "issue_released",
    ] {
        assert!(screen.contains(expected), "missing {expected:?} in:\n{screen}");
    }
    assert!(!screen.contains("\\u{1b}"), "escape sequences of the output are stripped:\n{screen}");

    w.append(vec![Event::LockAcquired { lock: "deploy-gate".into(), holder_pid: std::process::id(), issue: None }])
        .unwrap();
    tmux.wait_for("the appended record", Duration::from_secs(5), |s| {
        s.contains("deploy-gate  pid") && s.contains("lock_acquired")
    });

    tmux.send_keys("q");
    let after = tmux.wait_for("the dashboard to end", Duration::from_secs(5), |s| s.contains("\nchecked"));
    assert!(after.contains("dashboard exit=0"), "{after}");
    assert!(after.contains("icanon echo"), "the terminal is back in cooked mode:\n{after}");
    assert!(!after.contains("claimed issues"), "the alternate screen was left:\n{after}");
}

#[test]
fn a_finished_session_is_shown_and_a_panic_restores_the_terminal() {
    if !have_tmux() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    let tmux = Tmux::start("done", &watch_command(tmp.path(), ""));
    let screen = tmux.wait_for("the first frame", Duration::from_secs(10), |s| s.contains("session s-20261125"));
    assert!(screen.contains("ended (completed)"), "{screen}");
    assert!(screen.contains("done 2   failed 1"), "{screen}");
    assert!(screen.contains("tracker unavailable"), "no .beads here: {screen}");
    tmux.send_keys("C-c");
    let after = tmux.wait_for("the dashboard to end", Duration::from_secs(5), |s| s.contains("\nchecked"));
    assert!(after.contains("dashboard exit=0"), "{after}");

    let tmux = Tmux::start("panic", &watch_command(tmp.path(), "BDP_DASHBOARD_PANIC=1 RUST_BACKTRACE=0"));
    let after = tmux.wait_for("the panic", Duration::from_secs(10), |s| s.contains("\nchecked"));
    assert!(after.contains("dashboard exit=101"), "{after}");
    let message = after.find("panicking after the first frame").expect("the panic's message is on the screen");
    assert!(message < after.find("dashboard exit=").unwrap(), "the message is not overwritten:\n{after}");
    assert!(after.contains("icanon echo"), "the terminal is back in cooked mode:\n{after}");
    assert!(!after.contains("recent events"), "the alternate screen was left:\n{after}");
}

#[test]
fn watch_refuses_without_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    let out = common::bdp(tmp.path()).args(["status", "--watch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    insta::assert_snapshot!("watch_without_a_terminal", stderr);
}

#[test]
fn the_dashboard_ends_when_its_terminal_goes_away() {
    if !have_tmux() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    let command = format!("exec '{}' --repo '{}' status --watch", env!("CARGO_BIN_EXE_bdp"), tmp.path().display());
    let tmux = Tmux::start("hangup", &command);
    tmux.wait_for("the first frame", Duration::from_secs(10), |s| s.contains("recent events"));
    let out = tmux.cmd().args(["display-message", "-p", "-t", &tmux.name, "#{pane_pid}"]).output().unwrap();
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(bdp::process::is_running(pid, None));
    drop(tmux); // kills the server: the pane's terminal is gone
    let deadline = Instant::now() + Duration::from_secs(10);
    while bdp::process::is_running(pid, None) {
        assert!(Instant::now() < deadline, "bdp status --watch (pid {pid}) outlived its terminal");
        std::thread::sleep(Duration::from_millis(100));
    }
}
