//! What the tests build around a copied audit fixture that a static file cannot hold: a git repository
//! (worktrees, `bdp/*` branches, a merged or unmerged branch; fixed identity and dates, so commit ids are
//! the same on every run) and a checkpoint index that disagrees with the log.

use std::path::Path;
use std::process::Command;

use bdp::repo::escape_path_component;

/// Set up at test time around `audit-checkpoint-mismatch` (the clean log): `.bdp/index.sqlite` with two
/// checkpoints that disagree with the log: one at the last record whose state is not the fold (an empty
/// state), one that names seq 3 with a chain value the log does not have there.
pub fn bad_checkpoints(root: &Path) {
    use bdp::event::record::split_line;
    use bdp::log::index::{CheckpointMeta, Index};
    let segment = crate::common::segment(root);
    let bytes = std::fs::read(&segment).unwrap();
    let mut offset = 0u64;
    let mut metas = Vec::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let raw = split_line(&line[..line.len() - 1]).unwrap();
        metas.push(CheckpointMeta { seq: raw.seq, chain: raw.chain, segment: 1, offset, len: line.len() as u64 });
        offset += line.len() as u64;
    }
    let index = Index::open(&root.join(".bdp/index.sqlite")).unwrap();
    let last = metas.last().unwrap();
    let mut wrong = bdp::state::State::new();
    wrong.last_seq = last.seq;
    index.save_checkpoint(last, &mut wrong).unwrap();
    let moved = CheckpointMeta { chain: [7; 32], ..metas[2].clone() };
    let mut at_three = bdp::state::State::new();
    at_three.last_seq = moved.seq;
    index.save_checkpoint(&moved, &mut at_three).unwrap();
}

/// `git` in `root` with a fixed identity and dates (commit ids are the same on every run) and no user
/// or system configuration.
pub fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "2026-11-25T05:00:00Z")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_DATE", "2026-11-25T05:00:00Z")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `git init` on `main` with one commit (a README; `.bdp` and `.beads` stay untracked).
pub fn git_repo(root: &Path) {
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("README"), "audit fixture\n").unwrap();
    git(root, &["add", "README"]);
    git(root, &["commit", "-q", "-m", "init"]);
}

/// A commit of `file` on the current branch.
pub fn commit_file(root: &Path, file: &str, message: &str) {
    std::fs::write(root.join(file), format!("{message}\n")).unwrap();
    git(root, &["add", file]);
    git(root, &["commit", "-q", "-m", message]);
}

/// For `audit-worktree-without-claim`: `git worktree add -b bdp/<id> .bdp/worktrees/<id>` for w1 and w2.
pub fn worktrees_around(root: &Path) {
    git_repo(root);
    for id in ["bd-w1", "bd-w2"] {
        let path = format!(".bdp/worktrees/{}", escape_path_component(id));
        git(root, &["worktree", "add", "-q", "-b", &format!("bdp/{id}"), &path, "main"]);
    }
}

/// For `audit-branch-without-claim`: the branches `bdp/bd-b1` and `bdp/bd-b2` at main.
pub fn branches_around(root: &Path) {
    git_repo(root);
    git(root, &["branch", "bdp/bd-b1"]);
    git(root, &["branch", "bdp/bd-b2"]);
}

/// For `audit-merge-unrecorded`: `bdp/bd-m1` has a commit, merged into main (`--no-ff`).
pub fn merged_around(root: &Path) {
    git_repo(root);
    git(root, &["checkout", "-q", "-b", "bdp/bd-m1"]);
    commit_file(root, "m1.txt", "work on bd-m1");
    git(root, &["checkout", "-q", "main"]);
    git(root, &["merge", "-q", "--no-ff", "-m", "bdp: merge bdp/bd-m1", "bdp/bd-m1"]);
}

/// For `audit-merge-interrupted`: `bdp/bd-m2` has a commit that main does not; `bdp/bd-m3` does not exist.
pub fn unmerged_around(root: &Path) {
    git_repo(root);
    git(root, &["checkout", "-q", "-b", "bdp/bd-m2"]);
    commit_file(root, "m2.txt", "work on bd-m2");
    git(root, &["checkout", "-q", "main"]);
}
