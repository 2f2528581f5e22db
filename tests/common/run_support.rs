//! Helpers for the `bdp run` tests: a real git repository with a beads JSONL tracker, scripted agents,
//! and readers for what a run leaves behind (tracker records, git history, log records).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// A git repository on branch `main` with one commit and `.beads/issues.jsonl` holding `issues`
    /// (each `(id, title, priority, blockers)`).
    pub fn new(issues: &[(&str, &str, i64, &[&str])]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox { dir };
        sb.git(&["init", "-q", "-b", "main"]);
        sb.git(&["config", "user.name", "Test"]);
        sb.git(&["config", "user.email", "test@example.com"]);
        std::fs::create_dir_all(sb.root().join(".beads")).unwrap();
        let mut lines = String::new();
        for (id, title, priority, blockers) in issues {
            let deps: Vec<Value> =
                blockers.iter().map(|b| json!({"issue_id": id, "depends_on_id": b, "type": "blocks"})).collect();
            let mut rec = json!({
                "id": id, "title": title, "status": "open", "priority": priority, "issue_type": "task",
                "created_at": "2026-01-01T00:00:00Z",
                "description": format!("Do {title}.\nQuotes ' \" and $(touch INJECTED) `touch INJECTED2` ; rm -rf /"),
            });
            if !deps.is_empty() {
                rec["dependencies"] = Value::Array(deps);
            }
            lines.push_str(&serde_json::to_string(&rec).unwrap());
            lines.push('\n');
        }
        std::fs::write(sb.root().join(".beads/issues.jsonl"), lines).unwrap();
        std::fs::write(sb.root().join("README"), "sandbox\n").unwrap();
        sb.git(&["add", "-A"]);
        sb.git(&["commit", "-q", "-m", "init"]);
        sb
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git").args(args).current_dir(self.root()).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes an executable script into the sandbox's parent-free scripts dir and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let dir = self.root().join(".scripts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Keep the scripts out of `git status`.
        let exclude = self.root().join(".git/info/exclude");
        let mut text = std::fs::read_to_string(&exclude).unwrap_or_default();
        if !text.contains("/.scripts/") {
            text.push_str("/.scripts/\n");
            std::fs::write(&exclude, text).unwrap();
        }
        path
    }

    /// The standard scripted agent: commits a file named after (a hash of) the issue id.
    pub fn committing_agent(&self) -> PathBuf {
        self.committing_agent_after("agent.sh", "")
    }

    /// The standard scripted agent, running the shell lines `first` (under `set -e`) before it commits.
    pub fn committing_agent_after(&self, name: &str, first: &str) -> PathBuf {
        self.script(
            name,
            &format!(
                r#"set -e
{first}
name=$(printf %s "$BDP_ISSUE" | md5sum | cut -c1-12)
printf '%s\n' "$BDP_ISSUE" > "file-$name.txt"
git add "file-$name.txt"
git commit -q -m "work on $BDP_ISSUE"
"#
            ),
        )
    }

    /// `bdp ARGS` started as a child, its stdout and stderr captured.
    pub fn spawn_bdp(&self, args: &[&str]) -> std::process::Child {
        self.bdp_cmd(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }

    pub fn bdp(&self, args: &[&str]) -> Output {
        self.bdp_cmd(args).output().unwrap()
    }

    /// `bdp --repo SANDBOX ARGS`; a `run` gets `--max-load 1000` so a busy test machine does not hold
    /// spawns back (the guard has its own test).
    pub fn bdp_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = crate::common::bdp(self.root());
        match args.split_first() {
            Some((&"run", rest)) if !rest.contains(&"--dry-run") => {
                cmd.arg("run").args(["--max-load", "1000"]).args(rest);
            }
            _ => {
                cmd.args(args);
            }
        }
        cmd.current_dir(self.root()).env_remove("RUST_LOG");
        cmd
    }

    /// The tracker's records by id.
    pub fn issues(&self) -> std::collections::BTreeMap<String, Value> {
        std::fs::read_to_string(self.root().join(".beads/issues.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["id"].as_str().unwrap().to_string(), v))
            .collect()
    }

    /// Every log record, in order.
    pub fn records(&self) -> Vec<Value> {
        crate::common::records(self.root())
    }

    /// Records of one event type.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["event"]["type"] == kind).map(|r| r["event"].clone()).collect()
    }

    pub fn worktrees(&self) -> Vec<String> {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree ").map(str::to_string))
            .collect()
    }

    pub fn bdp_branches(&self) -> Vec<String> {
        self.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads/bdp/"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Commit subjects on `main`, oldest first.
    pub fn main_subjects(&self) -> Vec<String> {
        let mut s: Vec<String> = self.git(&["log", "--format=%s", "main"]).lines().map(str::to_string).collect();
        s.reverse();
        s
    }

    /// Asserts the log verifies and no agent process of the run is left.
    pub fn assert_clean_end(&self) {
        let verify = self.bdp(&["verify"]);
        assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
        for spawned in self.events("agent_spawned") {
            let pid = spawned["pid"].as_u64().unwrap() as u32;
            let start = spawned["start_time"].as_u64();
            assert!(!bdp::process::is_alive(pid, start), "agent pid {pid} is still alive");
        }
        assert_eq!(self.worktrees().len(), 1, "worktrees left: {:?}", self.worktrees());
        let left: Vec<_> = std::fs::read_dir(self.root().join(".bdp/worktrees"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "worktree dirs left: {left:?}");
        let ended = self.events("session_ended");
        assert_eq!(ended.len(), self.events("session_started").len(), "every session ended");
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
