//! Spawning and supervising real agent processes through the wrapper: exit codes, signals, timeouts
//! with TERM → grace → KILL, and nothing left running afterwards.

use std::path::Path;
use std::time::Duration;

use bdp::exit_file::read_exit_file;
use bdp::process_group::group_alive;
use bdp::supervisor::agent::{self, AgentSpec, Limits};

fn script(dir: &Path, body: &str) -> String {
    let path = dir.join("agent.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path.display().to_string()
}

fn run(body: &str, timeout_ms: u64) -> (bdp::supervisor::agent::AgentEnd, tempfile::TempDir, u32) {
    run_with_grace(body, timeout_ms, 300)
}

/// A busy machine may need more than 300 ms for the wrapper to write its exit file after TERM.
fn run_with_grace(
    body: &str,
    timeout_ms: u64,
    grace_ms: u64,
) -> (bdp::supervisor::agent::AgentEnd, tempfile::TempDir, u32) {
    let ms = Duration::from_millis;
    run_with(body, Limits { timeout: ms(timeout_ms), stall: None, grace: ms(grace_ms) })
}

fn run_with(body: &str, limits: Limits) -> (bdp::supervisor::agent::AgentEnd, tempfile::TempDir, u32) {
    let tmp = tempfile::tempdir().unwrap();
    let argv = vec![script(tmp.path(), body)];
    let spec = AgentSpec {
        bdp_exe: env!("CARGO_BIN_EXE_bdp").into(),
        argv,
        cwd: tmp.path().to_path_buf(),
        attempt_dir: tmp.path().join("attempt"),
        env: vec![("BDP_ISSUE".into(), "bd-1".into())],
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (end, pid) = rt.block_on(async {
        let running = agent::spawn(&spec).unwrap();
        let pid = running.pid;
        let (_tx, rx) = tokio::sync::watch::channel(false);
        (agent::supervise(running, limits, spec.attempt_dir.clone(), rx).await, pid)
    });
    (end, tmp, pid)
}

#[test]
fn exit_codes_output_and_environment_reach_the_attempt_directory() {
    let (end, tmp, _) = run("echo \"issue=$BDP_ISSUE\"; echo oops >&2; exit 3", 10_000);
    assert_eq!((end.code, end.signal, end.timed_out), (Some(3), None, false));
    let dir = tmp.path().join("attempt");
    assert_eq!(std::fs::read_to_string(dir.join("stdout")).unwrap(), "issue=bd-1\n");
    assert_eq!(std::fs::read_to_string(dir.join("stderr")).unwrap(), "oops\n");
    assert_eq!(read_exit_file(&dir).unwrap().unwrap().code, Some(3));
}

#[test]
fn a_crash_by_signal_is_reported_as_the_signal() {
    let (end, _tmp, _) = run("kill -SEGV $$", 10_000);
    assert_eq!((end.code, end.signal), (None, Some(11)));
    assert!(!end.success());
}

#[test]
fn a_hanging_agent_is_terminated_at_the_timeout() {
    let (end, tmp, pid) = run_with_grace("sleep 30", 300, 5_000);
    assert!(end.timed_out);
    assert!(end.duration_ms < 5_000, "{end:?}");
    assert!(!group_alive(pid), "nothing of the agent's group is left");
    // TERM reached the agent; the wrapper outlived it and wrote the exit file.
    assert_eq!(read_exit_file(&tmp.path().join("attempt")).unwrap().unwrap().signal, Some(15));
}

#[test]
fn an_agent_that_ignores_term_is_killed_after_the_grace_period() {
    let (end, _tmp, pid) = run("trap '' TERM; sleep 30 & wait; sleep 30", 200);
    assert!(end.timed_out);
    assert!(end.duration_ms < 5_000, "{end:?}");
    assert!(!group_alive(pid));
}

#[test]
fn a_missing_agent_program_is_an_error_from_the_wrapper() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = AgentSpec {
        bdp_exe: env!("CARGO_BIN_EXE_bdp").into(),
        argv: vec![tmp.path().join("no-such-agent").display().to_string()],
        cwd: tmp.path().to_path_buf(),
        attempt_dir: tmp.path().join("attempt"),
        env: vec![],
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let end = rt.block_on(async {
        let running = agent::spawn(&spec).unwrap();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let limits = Limits { timeout: Duration::from_secs(10), stall: None, grace: Duration::from_millis(100) };
        agent::supervise(running, limits, spec.attempt_dir.clone(), rx).await
    });
    assert_eq!(end.code, Some(127));
    assert!(end.error.unwrap().contains("no-such-agent"));
}

/// An agent that writes nothing for its stall limit (a permission prompt, a hung tool) is stopped, and
/// the attempt says it stalled.
#[test]
fn a_silent_agent_is_stopped_as_stalled() {
    let ms = Duration::from_millis;
    let (end, _tmp, pid) =
        run_with("echo started\nexec sleep 30", Limits { timeout: ms(30_000), stall: Some(ms(400)), grace: ms(2_000) });
    assert_eq!(end.stalled, Some(400), "{end:?}");
    assert!(!end.timed_out && !end.success());
    assert_eq!(end.why_failed(ms(30_000)), "stalled: no output for 400ms");
    assert!(!bdp::process::is_alive(pid, None), "the stalled agent's wrapper is gone");
}

/// Output keeps an agent alive however long it runs, within its timeout.
#[test]
fn an_agent_that_keeps_writing_is_not_stalled() {
    let ms = Duration::from_millis;
    let body = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo $i; sleep 0.1; done";
    let (end, _tmp, _) = run_with(body, Limits { timeout: ms(30_000), stall: Some(ms(1_000)), grace: ms(300) });
    assert_eq!((end.code, end.stalled), (Some(0), None), "{end:?}");
}

/// The small `bdp-wrap` program and `bdp __wrap` (used when it is not installed beside bdp) run the same
/// code: the same output files, the same exit file, the same exit status; and a TERM to the wrapper alone
/// does not stop it from writing the agent's status.
#[test]
fn bdp_wrap_and_bdp_dunder_wrap_leave_the_same_attempt_behind() {
    let bdp = Path::new(env!("CARGO_BIN_EXE_bdp"));
    let small = bdp.with_file_name("bdp-wrap");
    assert!(small.is_file(), "cargo builds bdp-wrap beside bdp: {}", small.display());
    let mut seen = Vec::new();
    for wrapper in [vec![small.into_os_string()], vec![bdp.as_os_str().to_owned(), "__wrap".into()]] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; kill -TERM $PPID; sleep 0.2; echo \"$BDP_WRAPPER_PID\"; exit 3",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{wrapper:?}: {}", String::from_utf8_lossy(&out.stderr));
        let record = read_exit_file(dir.path()).unwrap().expect("the exit file");
        let stdout = std::fs::read_to_string(dir.path().join("stdout")).unwrap();
        let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
        assert_eq!(
            stdout,
            format!("out\n{}\n", record.pid.unwrap()),
            "{wrapper:?}: the agent is told its wrapper's pid"
        );
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        seen.push((record.code, record.signal, record.error, stderr, {
            let mut n = names;
            n.sort();
            n
        }));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].0, Some(3));
    assert_eq!(seen[0].4, ["exit.json", "stderr", "stdout"], "no temp file left");
}

/// The wrapper leads a session and process group of its own (it makes them itself: bdp spawns it without a
/// hook), and the agent is in them, with no controlling terminal.
#[test]
fn the_agent_runs_in_the_wrappers_own_session_and_group_without_a_terminal() {
    // /proc/PID/stat after the command name: state ppid pgrp session tty_nr …
    let (end, tmp, wrapper) = run("sed 's/^.*) //' /proc/$$/stat | cut -d' ' -f2-5", 10_000);
    assert_eq!(end.code, Some(0));
    let fields = std::fs::read_to_string(tmp.path().join("attempt/stdout")).unwrap();
    let w = wrapper.to_string();
    assert_eq!(fields.split_whitespace().collect::<Vec<_>>(), [w.as_str(), w.as_str(), w.as_str(), "0"], "{fields}");
}
