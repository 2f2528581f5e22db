//! The demo's sandbox: a new git repository on branch `main` whose first commit holds the twelve issues in
//! `.beads/issues.jsonl` (the embedded tracker: no bd or br needed) and the file the conflicting pair share.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::scenario::{ISSUES, SHARED_FILE};
use crate::error::{CliError, CliResult};

/// Where the sandbox lives, and whether it is removed at the end.
pub struct Sandbox {
    pub root: PathBuf,
    /// Set for a temporary sandbox: dropping it removes the directory.
    _temp: Option<tempfile::TempDir>,
}

impl Sandbox {
    /// A new sandbox in `keep` (which must not exist, or be an empty directory), or in a temp dir.
    pub fn create(keep: Option<&Path>) -> CliResult<Sandbox> {
        let (root, temp) = match keep {
            Some(dir) => {
                if dir.exists() {
                    let empty = std::fs::read_dir(dir).map_err(|e| CliError::io("read", dir, &e))?.next().is_none();
                    if !empty {
                        return Err(CliError::user(format!("--keep {}: the directory is not empty", dir.display()))
                            .with_hint("give a new or empty directory; the demo never writes into your files"));
                    }
                }
                std::fs::create_dir_all(dir).map_err(|e| CliError::io("create", dir, &e))?;
                (std::path::absolute(dir).map_err(|e| CliError::io("resolve", dir, &e))?, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("bdp-demo-")
                    .tempdir()
                    .map_err(|e| CliError::io("create", &std::env::temp_dir(), &e))?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let sandbox = Sandbox { root, _temp: temp };
        sandbox.fill()?;
        Ok(sandbox)
    }

    fn fill(&self) -> CliResult<()> {
        self.git(&["init", "-q", "-b", "main"])?;
        for (key, value) in [
            ("user.name", "bdp demo"),
            ("user.email", "demo@demo.invalid"),
            ("commit.gpgsign", "false"),
            ("core.hooksPath", "/dev/null"),
        ] {
            self.git(&["config", key, value])?;
        }
        self.write(".beads/issues.jsonl", &issues_jsonl())?;
        self.write(
            "README.md",
            "# demo\n\nA sandbox made by `bdp demo`: twelve issues in `.beads/issues.jsonl`, worked by scripted agents.\n",
        )?;
        self.write(SHARED_FILE, "# routes, one per line\n")?;
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "-m", "demo: twelve issues in three tracks"])?;
        Ok(())
    }

    fn write(&self, rel: &str, text: &str) -> CliResult<()> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CliError::io("create", dir, &e))?;
        }
        std::fs::write(&path, text).map_err(|e| CliError::io("write", &path, &e))
    }

    fn git(&self, args: &[&str]) -> CliResult<()> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .output()
            .map_err(|e| CliError::io("run", Path::new("git"), &e).with_hint("the demo needs git on PATH"))?;
        if !out.status.success() {
            return Err(CliError::new(
                crate::error::ErrorKind::Io,
                format!(
                    "git {} in {}: {}",
                    args.join(" "),
                    self.root.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(())
    }
}

/// The issues as beads JSONL lines (the shape bd exports: see shared/beads-format.md).
pub fn issues_jsonl() -> String {
    let mut out = String::new();
    for issue in ISSUES {
        let deps: Vec<Value> = issue
            .blockers
            .iter()
            .map(|b| json!({"issue_id": issue.id, "depends_on_id": b, "type": "blocks", "created_at": "2026-12-01T09:00:00Z"}))
            .collect();
        let mut record = json!({
            "id": issue.id,
            "title": issue.title,
            "description": format!("{}.\n\nTrack: {}. Append the line `{}` to {}.", issue.title, issue.track, issue.line, issue.file),
            "status": "open",
            "priority": issue.priority,
            "issue_type": "task",
            "labels": [format!("track:{}", issue.track)],
            "created_at": "2026-12-01T09:00:00Z",
            "updated_at": "2026-12-01T09:00:00Z",
        });
        if !deps.is_empty() {
            record["dependencies"] = Value::Array(deps);
        }
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}
