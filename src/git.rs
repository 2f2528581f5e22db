//! The git operations bdp needs, as calls to the `git` binary (never re-implemented, never through a
//! shell: every argument is its own argv entry).
//!
//! Worktrees live under `.bdp/worktrees/<escaped id>` on branch `bdp/<escaped id>`. Merges into the base
//! branch are computed with `git merge-tree --write-tree` (touching no checkout), committed with
//! `git commit-tree`, and published with a compare-and-swap `git update-ref`. If the base branch is checked
//! out somewhere (usually the user's own checkout), that checkout is moved with `git read-tree -m -u`,
//! which refuses — changing nothing — when uncommitted changes there touch a file the merge changes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A failed git call: the command line and what git said.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

pub type GitResult<T> = Result<T, GitError>;

/// Runs git in `dir`; returns the output whatever the exit status.
fn raw<I, S>(dir: &Path, args: I) -> GitResult<(Output, String)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    let command = format!("git {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(&args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    Ok((output, command))
}

/// Runs git in `dir` and returns its trimmed stdout, or an error with its stderr.
pub fn run<I, S>(dir: &Path, args: I) -> GitResult<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (output, command) = raw(dir, args)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(GitError::Failed { command, stderr });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim_end().to_string())
}

/// The top of the work tree containing `dir`.
pub fn toplevel(dir: &Path) -> GitResult<PathBuf> {
    run(dir, ["rev-parse", "--show-toplevel"]).map(PathBuf::from)
}

/// The branch checked out in `dir` (None when HEAD is detached).
pub fn current_branch(dir: &Path) -> GitResult<Option<String>> {
    let (output, _) = raw(dir, ["symbolic-ref", "--quiet", "--short", "HEAD"])?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
}

/// The commit a ref points at, if it exists.
pub fn rev_parse(dir: &Path, rev: &str) -> GitResult<Option<String>> {
    let (output, _) = raw(dir, ["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
}

/// Whether `ancestor` is reachable from `descendant`.
pub fn is_ancestor(dir: &Path, ancestor: &str, descendant: &str) -> GitResult<bool> {
    let (output, command) = raw(dir, ["merge-base", "--is-ancestor", ancestor, descendant])?;
    match output.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(GitError::Failed { command, stderr: String::from_utf8_lossy(&output.stderr).trim().to_string() }),
    }
}

/// Number of commits on `branch` that are not on `base`.
pub fn commits_ahead(dir: &Path, base: &str, branch: &str) -> GitResult<u64> {
    let out = run(dir, ["rev-list", "--count", &format!("{base}..{branch}")])?;
    out.trim().parse().map_err(|_| GitError::Failed { command: "git rev-list --count".into(), stderr: out })
}

/// Creates a worktree at `path` on a new branch `branch` starting at `base` (an existing branch of
/// that name is reused if it already points at a descendant of `base`, e.g. after a crash).
pub fn add_worktree(repo: &Path, path: &Path, branch: &str, base: &str) -> GitResult<()> {
    if rev_parse(repo, &format!("refs/heads/{branch}"))?.is_some() {
        run(repo, [OsStr::new("worktree"), OsStr::new("add"), path.as_os_str(), OsStr::new(branch)])?;
    } else {
        run(
            repo,
            [
                OsStr::new("worktree"),
                OsStr::new("add"),
                OsStr::new("-b"),
                OsStr::new(branch),
                path.as_os_str(),
                OsStr::new(base),
            ],
        )?;
    }
    Ok(())
}

/// Removes a worktree (forcefully, even one git left locked "initializing" when a crash interrupted its
/// creation: it is bdp's own; a directory git no longer knows as a worktree is deleted) and prunes stale
/// worktree records.
pub fn remove_worktree(repo: &Path, path: &Path) -> GitResult<()> {
    if path.exists() {
        let force = OsStr::new("--force");
        let removed = run(repo, [OsStr::new("worktree"), OsStr::new("remove"), force, force, path.as_os_str()]);
        // Not a worktree (any more, or not yet registered): what matters is that the directory is gone.
        if let Err(e) = removed
            && path.exists()
        {
            match std::fs::remove_dir_all(path) {
                Ok(()) => {}
                Err(io) if io.kind() == std::io::ErrorKind::NotFound => {}
                Err(io) => {
                    return Err(GitError::Failed {
                        command: format!("remove {}", path.display()),
                        stderr: format!("{e}; then: {io}"),
                    });
                }
            }
        }
    }
    run(repo, ["worktree", "prune"])?;
    Ok(())
}

/// Deletes a local branch (forcefully).
pub fn delete_branch(repo: &Path, branch: &str) -> GitResult<()> {
    if rev_parse(repo, &format!("refs/heads/{branch}"))?.is_some() {
        run(repo, ["branch", "-D", branch])?;
    }
    Ok(())
}

/// Local branches whose names start with `prefix` (e.g. `bdp/`).
pub fn branches_with_prefix(repo: &Path, prefix: &str) -> GitResult<Vec<String>> {
    let out = run(repo, ["for-each-ref", "--format=%(refname:short)", &format!("refs/heads/{prefix}")])?;
    Ok(out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
}

/// Worktrees git knows: (path, checked-out branch without `refs/heads/`).
pub fn worktrees(repo: &Path) -> GitResult<Vec<(PathBuf, Option<String>)>> {
    let out = run(repo, ["worktree", "list", "--porcelain"])?;
    let mut list = Vec::new();
    for block in out.split("\n\n") {
        let mut path = None;
        let mut branch = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(PathBuf::from(p));
            } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                branch = Some(b.to_string());
            }
        }
        if let Some(path) = path {
            list.push((path, branch));
        }
    }
    Ok(list)
}

/// How a merge ended (defined in the core, where what it leads to is decided).
pub use crate::dispatch::MergeOutcome;

/// Identity for the merge commits bdp makes, when the user has none configured.
fn identity_args(repo: &Path) -> Vec<String> {
    let configured = run(repo, ["config", "user.email"]).is_ok_and(|e| !e.is_empty());
    if configured {
        Vec::new()
    } else {
        vec!["-c".into(), "user.name=bdp".into(), "-c".into(), "user.email=bdp@localhost".into()]
    }
}

/// Merges `branch` into `base` (a merge commit with `message`, or a fast-forward for `fast_forward_only`),
/// never touching uncommitted work: see the module comment.
pub fn merge_into_base(
    repo: &Path,
    base: &str,
    branch: &str,
    message: &str,
    fast_forward_only: bool,
) -> GitResult<MergeOutcome> {
    let Some(old) = rev_parse(repo, &format!("refs/heads/{base}"))? else {
        return Ok(MergeOutcome::Refused { reason: format!("the base branch {base} does not exist") });
    };
    let Some(tip) = rev_parse(repo, &format!("refs/heads/{branch}"))? else {
        return Ok(MergeOutcome::Refused { reason: format!("the branch {branch} does not exist") });
    };
    let new = if fast_forward_only {
        if !is_ancestor(repo, &old, &tip)? {
            return Ok(MergeOutcome::Refused { reason: format!("{branch} is not a fast-forward of {base}") });
        }
        tip
    } else {
        let (output, command) = raw(repo, ["merge-tree", "--write-tree", "--name-only", "--no-messages", &old, &tip])?;
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        match output.status.code() {
            Some(0) => {}
            Some(1) => {
                let files = stdout.lines().skip(1).filter(|l| !l.is_empty()).map(str::to_string).collect();
                return Ok(MergeOutcome::Conflicted { base_commit: old, files });
            }
            _ => {
                return Err(GitError::Failed {
                    command,
                    stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                });
            }
        }
        let tree = stdout.lines().next().unwrap_or_default().to_string();
        let mut args = identity_args(repo);
        args.extend([
            "commit-tree".into(),
            tree,
            "-p".into(),
            old.clone(),
            "-p".into(),
            tip,
            "-m".into(),
            message.into(),
        ]);
        run(repo, args)?
    };
    // Publish: compare-and-swap the ref, then bring a checkout of the base branch along.
    run(repo, ["update-ref", "-m", "bdp merge", &format!("refs/heads/{base}"), &new, &old])?;
    let checkout = worktrees(repo)?.into_iter().find(|(_, b)| b.as_deref() == Some(base)).map(|(p, _)| p);
    if let Some(checkout) = checkout {
        let (output, _) = raw(&checkout, ["read-tree", "-m", "-u", &old, &new])?;
        if !output.status.success() {
            // Put the ref back: the checkout keeps the user's changes, the merge is refused.
            run(repo, ["update-ref", "-m", "bdp merge undone", &format!("refs/heads/{base}"), &old, &new])?;
            let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Ok(MergeOutcome::Refused {
                reason: format!("uncommitted changes in {} would be overwritten: {why}", checkout.display()),
            });
        }
    }
    Ok(MergeOutcome::Merged { commit: new })
}

/// Rebases `branch` (checked out in `worktree`) onto `base`; on conflict aborts and says where: the base
/// commit and the conflicting files.
pub fn rebase_in_worktree(worktree: &Path, base: &str) -> GitResult<Result<(), MergeOutcome>> {
    let base_commit = rev_parse(worktree, &format!("refs/heads/{base}"))?.unwrap_or_default();
    let mut args = identity_args(worktree);
    args.extend(["rebase".into(), base.into()]);
    let (output, _) = raw(worktree, args)?;
    if output.status.success() {
        return Ok(Ok(()));
    }
    let conflicts = run(worktree, ["diff", "--name-only", "--diff-filter=U"]).unwrap_or_default();
    let _ = raw(worktree, ["rebase", "--abort"]);
    let files = conflicts.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    Ok(Err(MergeOutcome::Conflicted { base_commit, files }))
}
