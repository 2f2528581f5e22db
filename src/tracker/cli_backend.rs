//! The `bd` and `br` CLI backends: one process per call, argv only (issue text never reaches a shell),
//! `--json` output, and a timeout on every call. `br list --json` omits dependencies, so the br backend
//! lists by asking br to export (`br sync --flush-only`) and reading its `.beads/issues.jsonl`.
//!
//! Output shapes accepted (beads-format.md): a bare array of issues (`bd list`, `bd ready`, `bd show`,
//! `br ready`, `br show`); `br list`'s object `{"issues": [...], ...}`; bd's envelope
//! `{"schema_version": 1, "data": ...}`; a single issue object. Lists use `-n 0` / `--limit 0` (bd caps
//! `list` at 50 otherwise) and `--all` (closed included); filters are applied by bdp, the same way for every
//! backend.
//!
//! A call runs in its own process group; on timeout the whole group is killed (a hung `bd` may have
//! children holding its pipes). Errors show the command line and what the tool printed on stderr (or on
//! stdout, where br prints its JSON errors).
//!
//! Claims: bd's `--claim` is known to race (bd #3570, #3575, #5998), so every claim is read back with
//! `show` and fails unless the issue is `in_progress` and assigned to the claimer.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ListFilter, Tracker, TrackerError, TrackerEvents, TrackerResult, check_claimable, record};
use crate::event::Event;
use crate::plan::Issue;

/// Which CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Bd,
    Br,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Bd => "bd",
            Flavor::Br => "br",
        }
    }
}

/// What one finished call printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `program args` in `cwd` with stdin closed, capturing both streams; kills its process group after
/// `timeout`.
pub fn run_with_timeout(
    program: &std::path::Path,
    args: &[String],
    cwd: &std::path::Path,
    timeout: Duration,
) -> TrackerResult<Output> {
    let command = display_command(program, args);
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| TrackerError::Spawn { command: command.clone(), source })?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(TrackerError::Timeout { command, timeout });
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(source) => return Err(TrackerError::Spawn { command, source }),
        }
    };
    // The group may still hold the pipes (a background grandchild); do not wait for it forever.
    if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Output { code: status.code(), stdout, stderr })
}

fn display_command(program: &std::path::Path, args: &[String]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(a);
        }
    }
    s
}

/// The issues in any output shape bd or br print.
pub fn issues_from_output(value: &Value) -> Option<Vec<&Value>> {
    match value {
        Value::Array(items) => Some(items.iter().collect()),
        Value::Object(map) => {
            if let Some(data) = map.get("data") {
                issues_from_output(data)
            } else if let Some(issues) = map.get("issues") {
                issues_from_output(issues)
            } else if map.contains_key("id") {
                Some(vec![value])
            } else {
                None
            }
        }
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

/// A `bd` or `br` binary driving the repo at `root`.
#[derive(Debug, Clone)]
pub struct CliTracker {
    flavor: Flavor,
    binary: PathBuf,
    root: PathBuf,
    timeout: Duration,
}

impl CliTracker {
    pub fn new(flavor: Flavor, binary: PathBuf, root: PathBuf, timeout: Duration) -> Self {
        CliTracker { flavor, binary, root, timeout }
    }

    fn command_line(&self, args: &[String]) -> String {
        display_command(&self.binary, args)
    }

    /// Runs one call and parses its JSON; a non-zero exit is an error carrying what the tool printed.
    fn call(&self, args: &[&str]) -> TrackerResult<Value> {
        let (command, out) = self.call_raw(args)?;
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| TrackerError::BadOutput { command, message: e.to_string() })
    }

    /// Runs one call; a non-zero exit is an error carrying what the tool printed.
    fn call_raw(&self, args: &[&str]) -> TrackerResult<(String, Output)> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = run_with_timeout(&self.binary, &args, &self.root, self.timeout)?;
        let command = self.command_line(&args);
        if out.code != Some(0) {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let mut output = if stderr.is_empty() { stdout.clone() } else { stderr };
            if output.len() > 2000 {
                let cut = (0..=2000).rev().find(|&i| output.is_char_boundary(i)).unwrap_or(0);
                output.truncate(cut);
                output.push('…');
            }
            let status = match out.code {
                Some(c) => format!("exit {c}"),
                None => "killed by a signal".into(),
            };
            let not_found = out.code == Some(3)
                || output.contains("ISSUE_NOT_FOUND")
                || output.to_lowercase().contains("not found")
                || output.to_lowercase().contains("no issue found");
            if not_found && args.len() >= 2 && matches!(args[0].as_str(), "show" | "update" | "close" | "label") {
                let id = if args[0] == "label" { args.get(2) } else { args.get(1) };
                return Err(TrackerError::NotFound(id.cloned().unwrap_or_default()));
            }
            return Err(TrackerError::CommandFailed { command, status, output });
        }
        Ok((command, out))
    }

    fn issues(&self, args: &[&str]) -> TrackerResult<Vec<Issue>> {
        let value = self.call(args)?;
        let command = || self.command_line(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let items = issues_from_output(&value).ok_or_else(|| TrackerError::BadOutput {
            command: command(),
            message: "expected a list of issues".into(),
        })?;
        items
            .into_iter()
            .map(|v| {
                Issue::from_json(v).map_err(|e| TrackerError::BadOutput { command: command(), message: e.to_string() })
            })
            .collect()
    }

    fn status_event(&self, id: &str, status: &str, assignee: Option<String>) -> Event {
        Event::TrackerStatusSet {
            issue: id.to_string(),
            status: status.to_string(),
            assignee,
            backend: self.flavor.name().into(),
        }
    }
}

impl Tracker for CliTracker {
    fn name(&self) -> &'static str {
        self.flavor.name()
    }

    fn list(&self, filter: &ListFilter) -> TrackerResult<Vec<Issue>> {
        let all = match self.flavor {
            Flavor::Bd => self.issues(&["list", "--json", "-n", "0", "--all"])?,
            // br's `list --json` leaves out dependencies; its own export has everything. br owns both the
            // database and the file, so asking it to flush and then reading the file is safe.
            Flavor::Br => {
                self.call_raw(&["sync", "--flush-only"])?;
                super::JsonlTracker::new(self.root.join(".beads")).load()?.issues
            }
        };
        Ok(filter.apply(all))
    }

    fn show(&self, id: &str) -> TrackerResult<Issue> {
        self.issues(&["show", id, "--json"])?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| TrackerError::NotFound(id.to_string()))
    }

    fn ready(&self) -> TrackerResult<Vec<Issue>> {
        self.issues(&["ready", "--json", "--limit", "0"])
    }

    fn claim(&self, id: &str, actor: &str, events: &mut dyn TrackerEvents) -> TrackerResult<Issue> {
        let before = self.show(id)?;
        if check_claimable(&before, actor)? {
            return Ok(before);
        }
        let attempt = self.call(&["update", id, "--claim", "--actor", actor, "--json"]);
        // Whatever the CLI said, the tracker's state decides (the claim may race, or fail after writing).
        let after = self.show(id)?;
        let holder = after.assignee.clone().unwrap_or_default();
        if after.status == "in_progress" && holder == actor {
            record(events, self.status_event(id, "in_progress", Some(actor.to_string())))?;
            return Ok(after);
        }
        if !holder.is_empty() && holder != actor {
            return Err(TrackerError::AlreadyClaimed { id: id.to_string(), holder });
        }
        match attempt {
            Err(e) => Err(e),
            Ok(_) => Err(TrackerError::ClaimNotVerified {
                id: id.to_string(),
                detail: format!(
                    "{} reported success but reads back status {:?}, assignee {:?}",
                    self.name(),
                    after.status,
                    after.assignee
                ),
            }),
        }
    }

    fn release(&self, id: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.call(&["update", id, "--status", "open", "--assignee", "", "--json"])?;
        record(events, self.status_event(id, "open", None))
    }

    fn set_status(&self, id: &str, status: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.call(&["update", id, "--status", status, "--json"])?;
        record(events, self.status_event(id, status, None))
    }

    fn add_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        if self.show(id)?.labels.iter().any(|l| l == label) {
            return Ok(());
        }
        self.call(&["label", "add", id, label, "--json"])?;
        record(
            events,
            Event::TrackerLabelsChanged {
                issue: id.to_string(),
                added: vec![label.to_string()],
                removed: vec![],
                backend: self.name().into(),
            },
        )
    }

    fn remove_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        if !self.show(id)?.labels.iter().any(|l| l == label) {
            return Ok(());
        }
        self.call(&["label", "remove", id, label, "--json"])?;
        record(
            events,
            Event::TrackerLabelsChanged {
                issue: id.to_string(),
                added: vec![],
                removed: vec![label.to_string()],
                backend: self.name().into(),
            },
        )
    }

    fn close(&self, id: &str, reason: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.call(&["close", id, "--reason", reason, "--json"])?;
        record(
            events,
            Event::TrackerIssueClosed {
                issue: id.to_string(),
                reason: reason.to_string(),
                backend: self.name().into(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_output_shape_gives_the_issues() {
        let one = json!({"id": "a", "status": "open"});
        assert_eq!(issues_from_output(&json!([one.clone()])).unwrap().len(), 1);
        assert_eq!(issues_from_output(&json!({"schema_version": 1, "data": [one.clone()]})).unwrap().len(), 1);
        assert_eq!(issues_from_output(&json!({"issues": [one.clone()], "total": 1})).unwrap().len(), 1);
        assert_eq!(issues_from_output(&one).unwrap().len(), 1);
        assert_eq!(issues_from_output(&json!({"schema_version": 1, "data": one})).unwrap().len(), 1);
        assert!(issues_from_output(&json!({"error": {}})).is_none());
        assert!(issues_from_output(&json!(3)).is_none());
    }

    #[test]
    fn a_hanging_command_is_killed_at_the_timeout() {
        let start = Instant::now();
        let err = run_with_timeout(
            std::path::Path::new("/bin/sh"),
            &["-c".into(), "sleep 30 & sleep 30".into()],
            std::path::Path::new("/"),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, TrackerError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("sleep 30"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = run_with_timeout(
            std::path::Path::new("/nonexistent/bd"),
            &[],
            std::path::Path::new("/"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, TrackerError::Spawn { .. }), "{err}");
    }
}
