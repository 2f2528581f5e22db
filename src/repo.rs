//! Where things live: the repo root, and the `.bdp/` layout inside it.
//!
//! `.bdp/` holds the event log (`events/`), the checkpoint and query index (`index.sqlite`), agent output
//! (`runs/`), locks (`locks/`) and worktrees (`worktrees/`). It is added to `.git/info/exclude`, never to
//! the user's `.gitignore`.

use std::path::{Path, PathBuf};

/// Why no repository was found.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("--repo {0}: no such directory")]
    NoSuchDirectory(PathBuf),
    #[error("{0} is not inside a repository (no .bdp, .beads or .git above it)")]
    NotInRepository(PathBuf),
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
}

/// Paths of one repo's bdp data.
#[derive(Debug, Clone)]
pub struct Repo {
    pub root: PathBuf,
}

impl Repo {
    /// Uses `--repo DIR` if given, else walks up from the current directory to the nearest directory that
    /// holds `.bdp`, `.beads` or `.git`. Inside one of bdp's own worktrees (`ROOT/.bdp/worktrees/ID`, where
    /// agents work) that is ROOT: an agent's `bdp lock` or `bdp status` is about the run it is part of.
    pub fn discover(explicit: Option<&Path>) -> Result<Repo, RepoError> {
        if let Some(dir) = explicit {
            if !dir.is_dir() {
                return Err(RepoError::NoSuchDirectory(dir.to_path_buf()));
            }
            return Ok(Repo { root: dir.to_path_buf() });
        }
        let cwd = std::env::current_dir().map_err(RepoError::CurrentDir)?;
        for dir in cwd.ancestors() {
            if [".bdp", ".beads", ".git"].iter().any(|marker| dir.join(marker).exists()) {
                let worktrees = dir.parent().filter(|p| p.file_name().is_some_and(|n| n == "worktrees"));
                let bdp = worktrees.and_then(Path::parent).filter(|p| p.file_name().is_some_and(|n| n == ".bdp"));
                let root = bdp.and_then(Path::parent).unwrap_or(dir);
                return Ok(Repo { root: root.to_path_buf() });
            }
        }
        Err(RepoError::NotInRepository(cwd))
    }

    pub fn bdp_dir(&self) -> PathBuf {
        self.root.join(".bdp")
    }
    pub fn events_dir(&self) -> PathBuf {
        self.bdp_dir().join("events")
    }
    pub fn index_path(&self) -> PathBuf {
        self.bdp_dir().join("index.sqlite")
    }
    pub fn orchestrator_lock_path(&self) -> PathBuf {
        self.bdp_dir().join("orchestrator.lock")
    }
    pub fn append_lock_path(&self) -> PathBuf {
        self.bdp_dir().join("append.lock")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.bdp_dir().join("locks")
    }
    /// `.bdp/file-locks/`: the agents' file locks (`bdp lock`), apart from bdp's own locks.
    pub fn file_locks_dir(&self) -> PathBuf {
        self.bdp_dir().join("file-locks")
    }
    /// The file of the lock `name` (escaped like a path component).
    pub fn lock_path(&self, name: &str) -> PathBuf {
        self.locks_dir().join(format!("{}.lock", escape_path_component(name)))
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.bdp_dir().join("runs")
    }
    pub fn worktrees_dir(&self) -> PathBuf {
        self.bdp_dir().join("worktrees")
    }
    pub fn config_path(&self) -> PathBuf {
        self.bdp_dir().join("config.toml")
    }
    /// `.bdp/runs/<escaped id>/`: every attempt of one issue.
    pub fn issue_runs_dir(&self, issue: &str) -> PathBuf {
        self.runs_dir().join(escape_path_component(issue))
    }
    /// `.bdp/runs/<escaped id>/<attempt>/`: prompt.md, stdout, stderr, exit.json of one attempt.
    pub fn attempt_dir(&self, issue: &str, attempt: u32) -> PathBuf {
        self.issue_runs_dir(issue).join(attempt.to_string())
    }
    /// `.bdp/worktrees/<escaped id>`: the issue's git worktree.
    pub fn worktree_path(&self, issue: &str) -> PathBuf {
        self.worktrees_dir().join(escape_path_component(issue))
    }
}

/// The prefix of every branch bdp creates.
pub const BRANCH_PREFIX: &str = "bdp/";

/// `bdp/<escaped id>`: the issue's branch. The escaping keeps it a valid, single-level ref name.
pub fn branch_name(issue: &str) -> String {
    let mut name = escape_path_component(issue);
    // Git refuses `..`, a trailing `.` and a `.lock` suffix in ref names: escape every dot then.
    if name.contains("..") || name.ends_with('.') || name.ends_with(".lock") {
        name = name.replace('.', "%2E");
    }
    format!("{BRANCH_PREFIX}{name}")
}

/// Escapes an issue id (hostile data) into a single safe path component: ASCII letters, digits, `-`,
/// `_` and `.` are kept (but a leading `.` is escaped), everything else becomes `%XX`. Distinct ids give
/// distinct components, and no result is empty, `.`, `..` or contains `/`.
pub fn escape_path_component(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for (i, b) in id.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// The issue id an [`escape_path_component`] result (or a branch name's part after `bdp/`) came from;
/// `None` if it is not such a result (a bad `%XX`, or not UTF-8).
pub fn unescape_path_component(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = component.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_escape_a_path_are_escaped() {
        assert_eq!(escape_path_component("bd-a3f8.1"), "bd-a3f8.1");
        assert_eq!(escape_path_component("../etc"), "%2E.%2Fetc");
        assert_eq!(escape_path_component(".."), "%2E.");
        assert_eq!(escape_path_component(""), "%00");
        assert_eq!(escape_path_component("a/b c"), "a%2Fb%20c");
        assert_eq!(escape_path_component("%2F"), "%252F");
    }

    #[test]
    fn escaped_components_and_branch_names_unescape_to_the_id() {
        for id in ["bd-a3f8.1", "../etc", "..", "a/b c", "%2F", "x.lock", "a..b", "é-1"] {
            assert_eq!(unescape_path_component(&escape_path_component(id)).as_deref(), Some(id));
            let branch = branch_name(id);
            assert_eq!(unescape_path_component(branch.strip_prefix(BRANCH_PREFIX).unwrap()).as_deref(), Some(id));
        }
        assert_eq!(unescape_path_component("%zz"), None);
        assert_eq!(unescape_path_component("%F"), None);
    }

    #[test]
    fn branch_names_are_valid_single_level_refs() {
        assert_eq!(branch_name("bd-a3f8.1"), "bdp/bd-a3f8.1");
        assert_eq!(branch_name("a..b"), "bdp/a%2E%2Eb");
        assert_eq!(branch_name("x.lock"), "bdp/x%2Elock");
        assert_eq!(branch_name("a/b"), "bdp/a%2Fb");
    }
}
