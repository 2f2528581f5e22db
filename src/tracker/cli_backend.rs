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
//! As few calls as the work needs (each one starts a process that opens the tracker's database, and the
//! agents' own calls compete with ours for it):
//! - a label change is one `update ID --add-label A --remove-label B`, never preceded by a read: the
//!   caller knows which labels it put on;
//! - a claim is one `update ID --claim --actor A [--add-label …]`, and a release one `update ID --status
//!   open --assignee "" [--add-label …]`, labels folded in;
//! - a claim is read back where compare-and-set needs it: bd's `--claim` is known to race (bd #3570, #3575,
//!   #5998), so bd's is read back with `show`; br's claim is a transaction of its SQLite database and the
//!   issue it prints is that transaction's result, which is read instead. Either fails unless the issue is
//!   `in_progress` and assigned to the claimer. Only a refused claim is followed by a `show`, to say why.
//!
//! Every call is counted by the issue it concerned ([`Tracker::take_calls`]), so a run can record how many
//! it made.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{
    CallCounts, LabelChange, ListFilter, Tracker, TrackerError, TrackerEvents, TrackerResult, check_claimable, record,
};
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

/// `args` with the label change's flags and `--json` after them.
fn with_labels<'a>(mut args: Vec<&'a str>, labels: &'a LabelChange) -> Vec<&'a str> {
    for label in &labels.add {
        args.extend(["--add-label", label.as_str()]);
    }
    for label in &labels.remove {
        args.extend(["--remove-label", label.as_str()]);
    }
    args.push("--json");
    args
}

/// Whether a failed close says the issue was closed already (br: `NOTHING_TO_DO … already closed`).
fn already_closed(err: &TrackerError) -> bool {
    let text = match err {
        TrackerError::CommandFailed { output, .. } => output.as_str(),
        _ => return false,
    };
    text.contains("already closed")
}

/// A `bd` or `br` binary driving the repo at `root`.
#[derive(Debug, Clone)]
pub struct CliTracker {
    flavor: Flavor,
    binary: PathBuf,
    root: PathBuf,
    timeout: Duration,
    calls: Arc<Mutex<CallCounts>>,
}

impl CliTracker {
    pub fn new(flavor: Flavor, binary: PathBuf, root: PathBuf, timeout: Duration) -> Self {
        CliTracker { flavor, binary, root, timeout, calls: Arc::default() }
    }

    fn command_line(&self, args: &[String]) -> String {
        display_command(&self.binary, args)
    }

    /// Runs one call about `issue` (or none) and parses its JSON; a non-zero exit is an error carrying what
    /// the tool printed.
    fn call(&self, issue: Option<&str>, args: &[&str]) -> TrackerResult<Value> {
        let (command, out) = self.call_raw(issue, args)?;
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&out.stdout).map_err(|e| TrackerError::BadOutput { command, message: e.to_string() })
    }

    /// Runs one call about `issue` (or none); a non-zero exit is an error carrying what the tool printed.
    fn call_raw(&self, issue: Option<&str>, args: &[&str]) -> TrackerResult<(String, Output)> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).count(issue);
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
            // br's exit 3 also says "nothing to do: already closed" (its hint then mentions "not found").
            let not_found = !output.contains("already closed")
                && (out.code == Some(3)
                    || output.contains("ISSUE_NOT_FOUND")
                    || output.to_lowercase().contains("not found")
                    || output.to_lowercase().contains("no issue found"));
            if let (true, Some(id)) = (not_found, issue) {
                return Err(TrackerError::NotFound(id.to_string()));
            }
            return Err(TrackerError::CommandFailed { command, status, output });
        }
        Ok((command, out))
    }

    fn issues(&self, issue: Option<&str>, args: &[&str]) -> TrackerResult<Vec<Issue>> {
        let value = self.call(issue, args)?;
        self.parse_issues(args, &value)
    }

    fn parse_issues(&self, args: &[&str], value: &Value) -> TrackerResult<Vec<Issue>> {
        let command = || self.command_line(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let items = issues_from_output(value).ok_or_else(|| TrackerError::BadOutput {
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

    fn labels_event(&self, id: &str, change: &LabelChange) -> Event {
        Event::TrackerLabelsChanged {
            issue: id.to_string(),
            added: change.add.clone(),
            removed: change.remove.clone(),
            backend: self.flavor.name().into(),
        }
    }

    fn closed_event(&self, id: &str, reason: &str) -> Event {
        Event::TrackerIssueClosed { issue: id.to_string(), reason: reason.to_string(), backend: self.name().into() }
    }

    /// Records a claim the tracker holds, and the labels it carried.
    fn record_claim(
        &self,
        id: &str,
        actor: &str,
        labels: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> TrackerResult<()> {
        record(events, self.status_event(id, "in_progress", Some(actor.to_string())))?;
        if !labels.is_empty() {
            record(events, self.labels_event(id, labels))?;
        }
        Ok(())
    }

    /// `update ID` with `fields` and the label change, as one call.
    fn update(&self, id: &str, fields: &[&str], labels: &LabelChange) -> TrackerResult<Value> {
        let mut args: Vec<&str> = vec!["update", id];
        args.extend_from_slice(fields);
        let args = with_labels(args, labels);
        self.call(Some(id), &args)
    }

    /// Why a claim the tracker refused did not hold: read the issue once and say. `Ok` when `actor`
    /// already holds it (a tracker that refuses a second claim by its holder).
    fn refused_claim(&self, id: &str, actor: &str, refusal: TrackerError) -> TrackerResult<Issue> {
        if let TrackerError::NotFound(_) | TrackerError::Timeout { .. } | TrackerError::Spawn { .. } = refusal {
            return Err(refusal);
        }
        let now = self.show(id)?;
        match check_claimable(&now, actor)? {
            true => Ok(now),
            false => Err(refusal),
        }
    }
}

impl Tracker for CliTracker {
    fn name(&self) -> &'static str {
        self.flavor.name()
    }

    fn list(&self, filter: &ListFilter) -> TrackerResult<Vec<Issue>> {
        let all = match self.flavor {
            Flavor::Bd => self.issues(None, &["list", "--json", "-n", "0", "--all"])?,
            // br's `list --json` leaves out dependencies; its own export has everything. br owns both the
            // database and the file, so asking it to flush and then reading the file is safe.
            Flavor::Br => {
                self.call_raw(None, &["sync", "--flush-only"])?;
                super::JsonlTracker::new(self.root.join(".beads")).load()?.issues
            }
        };
        Ok(filter.apply(all))
    }

    fn show(&self, id: &str) -> TrackerResult<Issue> {
        self.issues(Some(id), &["show", id, "--json"])?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(|| TrackerError::NotFound(id.to_string()))
    }

    fn ready(&self) -> TrackerResult<Vec<Issue>> {
        self.issues(None, &["ready", "--json", "--limit", "0"])
    }

    fn claim(&self, id: &str, actor: &str, events: &mut dyn TrackerEvents) -> TrackerResult<Issue> {
        self.claim_with_labels(id, actor, &LabelChange::default(), events)
    }

    fn claim_with_labels(
        &self,
        id: &str,
        actor: &str,
        labels: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> TrackerResult<Issue> {
        let printed = match self.update(id, &["--claim", "--actor", actor], labels) {
            Ok(printed) => printed,
            Err(refusal) => return self.refused_claim(id, actor, refusal),
        };
        // What the tracker holds now decides, whatever the CLI said (the claim may race, or fail after writing).
        let after = match self.flavor {
            Flavor::Bd => self.show(id)?,
            Flavor::Br => {
                match self.parse_issues(&["update", id, "--claim"], &printed)?.into_iter().find(|i| i.id == id) {
                    Some(issue) => issue,
                    None => self.show(id)?,
                }
            }
        };
        let holder = after.assignee.clone().unwrap_or_default();
        if after.status == "in_progress" && holder == actor {
            self.record_claim(id, actor, labels, events)?;
            return Ok(after);
        }
        if !holder.is_empty() && holder != actor {
            return Err(TrackerError::AlreadyClaimed { id: id.to_string(), holder });
        }
        Err(TrackerError::ClaimNotVerified {
            id: id.to_string(),
            detail: format!(
                "{} reported success but reads back status {:?}, assignee {:?}",
                self.name(),
                after.status,
                after.assignee
            ),
        })
    }

    fn release(&self, id: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.release_with_labels(id, &LabelChange::default(), events)
    }

    fn release_with_labels(&self, id: &str, labels: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.update(id, &["--status", "open", "--assignee", ""], labels)?;
        record(events, self.status_event(id, "open", None))?;
        if !labels.is_empty() {
            record(events, self.labels_event(id, labels))?;
        }
        Ok(())
    }

    fn set_status(&self, id: &str, status: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.update(id, &["--status", status], &LabelChange::default())?;
        record(events, self.status_event(id, status, None))
    }

    fn add_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.change_labels(id, &LabelChange { add: vec![label.to_string()], remove: vec![] }, events)
    }

    fn remove_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.change_labels(id, &LabelChange { add: vec![], remove: vec![label.to_string()] }, events)
    }

    fn change_labels(&self, id: &str, change: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        if change.is_empty() {
            return Ok(());
        }
        self.update(id, &[], change)?;
        record(events, self.labels_event(id, change))
    }

    fn close(&self, id: &str, reason: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        match self.call(Some(id), &["close", id, "--reason", reason, "--json"]) {
            Ok(_) => {}
            // Closed already (a close made before a crash, or by a person): what was asked holds. br says so
            // with exit 3, which otherwise means "not found".
            Err(e) if already_closed(&e) => {}
            Err(e) => return Err(e),
        }
        record(events, self.closed_event(id, reason))
    }

    fn claim_many(
        &self,
        ids: &[String],
        actor: &str,
        labels: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> Vec<TrackerResult<Issue>> {
        if ids.len() < 2 {
            return ids.iter().map(|id| self.claim_with_labels(id, actor, labels, events)).collect();
        }
        let one_by_one = |events: &mut dyn TrackerEvents| {
            ids.iter().map(|id| self.claim_with_labels(id, actor, labels, events)).collect::<Vec<_>>()
        };
        let mut args: Vec<&str> = vec!["update"];
        args.extend(ids.iter().map(String::as_str));
        args.extend(["--claim", "--actor", actor]);
        let args = with_labels(args, labels);
        let Ok(printed) = self.call(None, &args) else { return one_by_one(events) };
        // br prints what its transaction wrote; bd's claim races, so it is read back (one call for all).
        let after = match self.flavor {
            Flavor::Br => self.parse_issues(&args, &printed),
            Flavor::Bd => {
                let mut show: Vec<&str> = vec!["show"];
                show.extend(ids.iter().map(String::as_str));
                show.push("--json");
                self.issues(None, &show)
            }
        };
        let Ok(after) = after else { return one_by_one(events) };
        let mut results = Vec::with_capacity(ids.len());
        for id in ids {
            let got = after.iter().find(|i| &i.id == id);
            let held = got.is_some_and(|i| i.status == "in_progress" && i.assignee.as_deref() == Some(actor));
            let result = match got {
                Some(issue) if held => self.record_claim(id, actor, labels, events).map(|()| issue.clone()),
                // Not what was asked: this one alone, the slow way (it says why).
                _ => self.claim_with_labels(id, actor, labels, events),
            };
            results.push(result);
        }
        results
    }

    fn close_many(&self, ids: &[String], reason: &str, events: &mut dyn TrackerEvents) -> Vec<TrackerResult<()>> {
        if ids.len() < 2 {
            return ids.iter().map(|id| self.close(id, reason, events)).collect();
        }
        let mut args: Vec<&str> = vec!["close"];
        args.extend(ids.iter().map(String::as_str));
        args.extend(["--reason", reason, "--json"]);
        match self.call(None, &args) {
            Ok(_) => ids.iter().map(|id| record(events, self.closed_event(id, reason))).collect(),
            Err(_) => ids.iter().map(|id| self.close(id, reason, events)).collect(),
        }
    }

    fn change_labels_many(
        &self,
        ids: &[String],
        change: &LabelChange,
        events: &mut dyn TrackerEvents,
    ) -> Vec<TrackerResult<()>> {
        if ids.len() < 2 || change.is_empty() {
            return ids.iter().map(|id| self.change_labels(id, change, events)).collect();
        }
        let mut args: Vec<&str> = vec!["update"];
        args.extend(ids.iter().map(String::as_str));
        let args = with_labels(args, change);
        match self.call(None, &args) {
            Ok(_) => ids.iter().map(|id| record(events, self.labels_event(id, change))).collect(),
            Err(_) => ids.iter().map(|id| self.change_labels(id, change, events)).collect(),
        }
    }

    fn take_calls(&self) -> Option<CallCounts> {
        Some(std::mem::take(&mut *self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)))
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
