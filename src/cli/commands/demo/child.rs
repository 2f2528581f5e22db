//! The demo's hands: runs bdp as a child process with its output shown indented as it comes, watches the
//! sandbox's log while it works, kills it, and waits for orphaned agents. The narration's layout helpers
//! (headings, indented blocks) are here too.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{CliError, CliResult};
use crate::repo::Repo;
use crate::state::State;

/// An agent that was working when the first run was killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub issue: String,
    pub attempt: u32,
    pub pid: u32,
    pub dir: PathBuf,
}

/// What the log said when the demo killed the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillPoint {
    pub done: u64,
    pub running: Vec<Orphan>,
}

/// A running `bdp` child whose stdout and stderr are printed, indented, line by line.
pub struct Child {
    process: std::process::Child,
    readers: Vec<JoinHandle<()>>,
}

impl Child {
    pub fn spawn(exe: &Path, args: &[String], bar: &'static str) -> CliResult<Child> {
        let mut process = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CliError::io("run", exe, &e))?;
        let mut readers = Vec::new();
        if let Some(out) = process.stdout.take() {
            readers.push(std::thread::spawn(move || echo(out, bar)));
        }
        if let Some(err) = process.stderr.take() {
            readers.push(std::thread::spawn(move || echo(err, bar)));
        }
        Ok(Child { process, readers })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Watches the log until `done` issues are done with at least `running` agents working, then kills the
    /// run with SIGKILL and returns what the log said. `None` if the run ended (or was interrupted) first.
    pub fn watch_until_half(
        &mut self,
        root: &Path,
        done: u64,
        running: usize,
        interrupted: &AtomicBool,
        limit: Duration,
    ) -> CliResult<Option<KillPoint>> {
        let until = Instant::now() + limit;
        // The log as it grows: each look reads only what was appended since the last.
        let events_dir = Repo { root: root.to_path_buf() }.events_dir();
        let mut tail = crate::log::tail::LogTail::from_start(&events_dir);
        let mut state = State::new();
        loop {
            let read = tail.poll(|record, pos| crate::log::load::apply(&mut state, &events_dir, &record, pos));
            if read.is_err() {
                // Not readable just now: start over at the next look, as a fresh read would.
                tail = crate::log::tail::LogTail::from_start(&events_dir);
                state = State::new();
            } else {
                let point = kill_point(root, &state);
                // Late in the run fewer agents are left: accept one once most of the work is done.
                let enough = point.running.len() >= running || (point.done > done + 2 && !point.running.is_empty());
                if point.done >= done && enough {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(self.process.id() as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    self.finish();
                    return Ok(Some(point));
                }
            }
            if self.process.try_wait().ok().flatten().is_some() || interrupted.load(Ordering::SeqCst) {
                self.stop_if_interrupted(interrupted);
                self.finish();
                return Ok(None);
            }
            if Instant::now() > until {
                self.stop_now();
                return Err(CliError::internal("the demo's first run took more than two minutes"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the run to end; its exit code.
    pub fn wait(&mut self, limit: Duration, interrupted: &AtomicBool) -> CliResult<Option<i32>> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) =
                self.process.try_wait().map_err(|e| CliError::io("wait for", Path::new("bdp run"), &e))?
            {
                self.finish();
                return Ok(status.code());
            }
            if interrupted.load(Ordering::SeqCst) {
                self.stop_if_interrupted(interrupted);
                self.finish();
                return Ok(None);
            }
            if Instant::now() > until {
                self.stop_now();
                return Err(CliError::internal("the demo's second run took more than two minutes"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ctrl-C reached the run too (same terminal): a second signal makes it stop its agents now.
    fn stop_if_interrupted(&mut self, interrupted: &AtomicBool) {
        if interrupted.load(Ordering::SeqCst) {
            self.stop_now();
        }
    }

    fn stop_now(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.process.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1);
        self.finish();
    }

    /// Reaps the process and lets the output readers drain.
    fn finish(&mut self) {
        let _ = self.process.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

fn echo(stream: impl Read, bar: &str) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        println!("  {bar} {line}");
    }
}

fn kill_point(root: &Path, state: &State) -> KillPoint {
    let repo = Repo { root: root.to_path_buf() };
    let done = state.sessions.iter().map(|s| s.counts.done).sum();
    let running = state
        .claimed()
        .filter_map(|(id, claim)| {
            let attempt = claim.attempt.as_ref()?;
            let spawned = attempt.spawned.as_ref()?;
            attempt.outcome.is_none().then(|| Orphan {
                issue: id.clone(),
                attempt: attempt.number,
                pid: spawned.pid,
                dir: repo.attempt_dir(id, attempt.number),
            })
        })
        .collect();
    KillPoint { done, running }
}

/// With bdp down, waits (at most `limit`) until one orphan has finished (its wrapper wrote exit.json), so
/// that the recovery has both kinds to handle. Returns the finished ones and the ones still running.
pub fn wait_for_an_orphan(orphans: &[Orphan], limit: Duration, interrupted: &AtomicBool) -> (Vec<String>, Vec<String>) {
    let until = Instant::now() + limit;
    loop {
        let (finished, still): (Vec<&Orphan>, Vec<&Orphan>) =
            orphans.iter().partition(|o| o.dir.join(crate::exit_file::EXIT_FILE).exists());
        let enough = !finished.is_empty() || orphans.len() < 2;
        if enough || Instant::now() > until || interrupted.load(Ordering::SeqCst) {
            let name = |o: &&Orphan| format!("{}#{}", o.issue, o.attempt);
            return (finished.iter().map(name).collect(), still.iter().map(name).collect());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// "demo-3#1 finished (its wrapper wrote exit.json); demo-6#1 and demo-11#1 still run".
pub fn orphans_line(finished: &[String], still: &[String]) -> String {
    let mut parts = Vec::new();
    if !finished.is_empty() {
        parts.push(format!("{} finished (the wrapper wrote its exit.json)", and_list(finished)));
    }
    if !still.is_empty() {
        let verb = if still.len() == 1 { "is" } else { "are" };
        parts.push(format!("{} {verb} still working", and_list(still)));
    }
    if parts.is_empty() { "none was working".to_string() } else { parts.join("; ") }
}

pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What a short bdp command printed (stdout, then stderr) and its exit code.
pub struct Captured {
    pub text: String,
    pub code: Option<i32>,
}

pub fn bdp_output(exe: &Path, args: &[&str]) -> CliResult<Captured> {
    let out = Command::new(exe).args(args).stdin(Stdio::null()).output().map_err(|e| CliError::io("run", exe, &e))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Captured { text, code: out.status.code() })
}

pub fn print_indented(text: &str, bar: &str) {
    for line in text.lines() {
        println!("  {bar} {line}");
    }
}

/// `[2/6] what happens`.
pub fn heading(step: u32, text: &str) -> String {
    format!("[{step}/6] {text}")
}
