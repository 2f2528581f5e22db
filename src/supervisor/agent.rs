//! Spawning one agent (through the `bdp __wrap` wrapper, in a new session and process group) and
//! supervising it to the end: exit, timeout or stall (TERM to the group, a grace period, then KILL), or
//! an immediate stop. Nothing of the agent's process group is left running when supervision ends.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::exit_file::read_exit_file;
use crate::process_group::{group_alive, terminate_group, terminate_own_group};

/// How to start one attempt.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The bdp executable (the wrapper is `bdp __wrap`).
    pub bdp_exe: PathBuf,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// stdout, stderr and exit.json go here.
    pub attempt_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

/// A spawned agent.
#[derive(Debug)]
pub struct RunningAgent {
    pub child: tokio::process::Child,
    pub pid: u32,
    /// Clock ticks since boot (from /proc), to tell the process from a later one with the same pid.
    pub start_time: Option<u64>,
    pub started: Instant,
}

/// What an attempt may take: its time, its silence (no new output on stdout or stderr; `None`: no limit),
/// and the grace between TERM and KILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub stall: Option<Duration>,
    pub grace: Duration,
}

/// Tells a stalled agent: how long its output files (`stdout`, `stderr` in the attempt directory) have
/// not grown.
struct Silence {
    dir: PathBuf,
    limit: Option<Duration>,
    size: u64,
    since: Instant,
}

impl Silence {
    fn new(dir: &std::path::Path, limit: Option<Duration>) -> Silence {
        let mut silence = Silence { dir: dir.to_path_buf(), limit, size: 0, since: Instant::now() };
        silence.size = silence.written();
        silence
    }

    fn written(&self) -> u64 {
        ["stdout", "stderr"].iter().filter_map(|f| std::fs::metadata(self.dir.join(f)).ok()).map(|m| m.len()).sum()
    }

    /// How often to look: a tenth of the limit, between 50 ms and 1 s.
    fn every(&self) -> Duration {
        self.limit
            .map_or(Duration::from_secs(3600), |l| (l / 10).clamp(Duration::from_millis(50), Duration::from_secs(1)))
    }

    /// Whether the agent has written nothing for the limit (looked at now).
    fn stalled(&mut self) -> bool {
        let Some(limit) = self.limit else { return false };
        let size = self.written();
        if size != self.size {
            (self.size, self.since) = (size, Instant::now());
            return false;
        }
        self.since.elapsed() >= limit
    }
}

/// How an attempt ended (defined in the core, where what it leads to is decided).
pub use crate::dispatch::after_exit::AgentEnd;

/// The wrapper to spawn: `bdp-wrap` beside the bdp program when it is there (a small program, quick to
/// start), else `bdp __wrap` (the same code).
fn wrapper_command(bdp_exe: &std::path::Path) -> tokio::process::Command {
    let small = bdp_exe.with_file_name("bdp-wrap");
    if std::fs::metadata(&small).is_ok_and(|m| m.is_file()) {
        return tokio::process::Command::new(small);
    }
    let mut cmd = tokio::process::Command::new(bdp_exe);
    cmd.arg("__wrap");
    cmd
}

pub fn spawn(spec: &AgentSpec) -> std::io::Result<RunningAgent> {
    std::fs::create_dir_all(&spec.attempt_dir)?;
    let mut cmd = wrapper_command(&spec.bdp_exe);
    cmd.arg("--dir")
        .arg(&spec.attempt_dir)
        .arg("--")
        .args(&spec.argv)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false);
    // No `pre_exec` hook: std then starts the wrapper with posix_spawn (a vfork), not a fork of all of
    // bdp, which cost more than the wrapper itself. The wrapper makes its own session and process group
    // first thing (`wrapper::run`); a stop that comes before that reaches it as our child
    // (`terminate_own_group`).
    let child = cmd.spawn()?;
    let pid = child.id().ok_or_else(|| std::io::Error::other("the agent exited before its pid was read"))?;
    Ok(RunningAgent { child, pid, start_time: crate::process::start_time(pid), started: Instant::now() })
}

/// Waits for the agent until it exits, its timeout passes, it writes nothing for its stall limit, or
/// `stop_now` turns true. Timeouts, stalls and stops send TERM to the group, wait the grace, then KILL.
pub async fn supervise(
    mut agent: RunningAgent,
    limits: Limits,
    attempt_dir: PathBuf,
    mut stop_now: watch::Receiver<bool>,
) -> AgentEnd {
    let Limits { timeout, stall, grace } = limits;
    let deadline = tokio::time::Instant::from_std(agent.started + timeout);
    let pgid = agent.pid;
    let mut silence = Silence::new(&attempt_dir, stall);
    let (mut timed_out, mut stopped, mut stalled) = (false, false, false);
    let status = loop {
        if *stop_now.borrow() && !stopped {
            stopped = true;
            break None;
        }
        tokio::select! {
            status = agent.child.wait() => break status.ok(),
            _ = tokio::time::sleep_until(deadline) => { timed_out = true; break None; }
            _ = tokio::time::sleep(silence.every()) => {
                if silence.stalled() {
                    stalled = true;
                    break None;
                }
            }
            changed = stop_now.changed() => {
                if changed.is_err() {
                    // The sender is gone: keep waiting for the agent alone.
                    break agent.child.wait().await.ok();
                }
            }
        }
    };
    let status = match status {
        Some(status) => Some(status),
        None => {
            let child = std::sync::Mutex::new(&mut agent.child);
            let exited = || child.lock().map_or(true, |mut c| c.try_wait().map_or(true, |s| s.is_some()));
            terminate_own_group(pgid, grace, exited).await;
            agent.child.wait().await.ok()
        }
    };
    // Leave nothing behind: the agent's own children may linger in its group.
    terminate_group(pgid, grace, || !group_alive(pgid)).await;
    let duration_ms = agent.started.elapsed().as_millis() as u64;
    use std::os::unix::process::ExitStatusExt;
    let (mut code, mut signal, mut error) = (status.and_then(|s| s.code()), status.and_then(|s| s.signal()), None);
    if let Ok(Some(record)) = read_exit_file(&attempt_dir) {
        // The wrapper saw the agent itself: its status is the agent's, not the wrapper's.
        code = record.code;
        signal = record.signal;
        error = record.error;
    }
    let stalled = stalled.then_some(stall).flatten().map(|s| s.as_millis() as u64);
    AgentEnd { code, signal, duration_ms, timed_out, stopped, error, stalled, ..AgentEnd::default() }
}

/// An agent a crashed orchestrator started: not our child, so it is watched by pid and start time (every
/// 100 ms) instead of waited on, and its status comes from the wrapper's exit file. `elapsed` is how long
/// it has run already: the timeout counts from its real start.
#[derive(Debug, Clone)]
pub struct Adopted {
    pub pid: u32,
    pub pgid: u32,
    pub start_time: Option<u64>,
    pub elapsed: Duration,
}

/// Supervises an adopted agent like [`supervise`] does a child: to its end, its timeout, its stall limit
/// (counted from the adoption), or a stop.
pub async fn supervise_adopted(
    agent: Adopted,
    limits: Limits,
    attempt_dir: PathBuf,
    mut stop_now: watch::Receiver<bool>,
) -> AgentEnd {
    let Limits { timeout, stall, grace } = limits;
    let started = Instant::now().checked_sub(agent.elapsed).unwrap_or_else(Instant::now);
    let deadline = started + timeout;
    let alive = || crate::process::is_running(agent.pid, agent.start_time);
    let mut silence = Silence::new(&attempt_dir, stall);
    let (mut timed_out, mut stopped, mut stalled) = (false, false, false);
    while alive() {
        if *stop_now.borrow() {
            stopped = true;
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        if silence.stalled() {
            stalled = true;
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop_now.changed() => {}
        }
    }
    if timed_out || stopped || stalled {
        terminate_group(agent.pgid, grace, || !alive()).await;
    }
    let stalled = stalled.then_some(stall).flatten().map(|s| s.as_millis() as u64);
    terminate_group(agent.pgid, grace, || !group_alive(agent.pgid)).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match read_exit_file(&attempt_dir) {
        Ok(Some(record)) => {
            let (code, signal, error) = (record.code, record.signal, record.error);
            AgentEnd { code, signal, duration_ms, timed_out, stopped, error, stalled, ..AgentEnd::default() }
        }
        Ok(None) => AgentEnd {
            code: None,
            signal: None,
            duration_ms,
            timed_out,
            stopped,
            error: (!timed_out && !stopped && stalled.is_none())
                .then(|| "the agent ended without an exit file (its wrapper was killed)".to_string()),
            stalled,
            ..AgentEnd::default()
        },
        Err(e) => AgentEnd { duration_ms, timed_out, stopped, error: Some(e), stalled, ..AgentEnd::default() },
    }
}
