//! The merge into the base branch never touches uncommitted work in the user's checkout.

use std::path::Path;
use std::process::Command;

use bdp::git::{self, MergeOutcome};

fn sh(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    sh(d, &["init", "-q", "-b", "main"]);
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    std::fs::write(d.join("b.txt"), "b\n").unwrap();
    sh(d, &["add", "."]);
    sh(d, &["commit", "-qm", "base"]);
    tmp
}

/// A worktree on `branch` with one commit changing `file`.
fn branch_with_change(repo: &Path, branch: &str, file: &str, text: &str) {
    let wt = repo.join(".bdp/worktrees").join(branch.replace('/', "_"));
    git::add_worktree(repo, &wt, branch, "main").unwrap();
    std::fs::write(wt.join(file), text).unwrap();
    sh(&wt, &["add", "."]);
    sh(&wt, &["commit", "-qm", "change"]);
}

#[test]
fn a_clean_merge_moves_main_and_the_checkout_and_keeps_unrelated_local_changes() {
    let tmp = repo();
    let d = tmp.path();
    branch_with_change(d, "bdp/x", "a.txt", "a changed\n");
    std::fs::write(d.join("b.txt"), "my local edit\n").unwrap();
    let old = git::rev_parse(d, "main").unwrap().unwrap();
    let out = git::merge_into_base(d, "main", "bdp/x", "bdp: merge x", false).unwrap();
    let MergeOutcome::Merged { commit } = out else { panic!("{out:?}") };
    assert_eq!(git::rev_parse(d, "main").unwrap().unwrap(), commit);
    assert!(git::is_ancestor(d, &old, &commit).unwrap());
    assert_eq!(std::fs::read_to_string(d.join("a.txt")).unwrap(), "a changed\n");
    assert_eq!(std::fs::read_to_string(d.join("b.txt")).unwrap(), "my local edit\n");
    let status = git::run(d, ["status", "--porcelain", "--untracked-files=no"]).unwrap();
    assert_eq!(status.trim(), "M b.txt", "only the user's own edit shows as a change");
}

#[test]
fn local_changes_to_a_file_the_merge_touches_refuse_the_merge_and_change_nothing() {
    let tmp = repo();
    let d = tmp.path();
    branch_with_change(d, "bdp/x", "a.txt", "a changed\n");
    std::fs::write(d.join("a.txt"), "my local edit\n").unwrap();
    let old = git::rev_parse(d, "main").unwrap().unwrap();
    let out = git::merge_into_base(d, "main", "bdp/x", "m", false).unwrap();
    assert!(matches!(&out, MergeOutcome::Refused { reason } if reason.contains("uncommitted changes")), "{out:?}");
    assert_eq!(git::rev_parse(d, "main").unwrap().unwrap(), old);
    assert_eq!(std::fs::read_to_string(d.join("a.txt")).unwrap(), "my local edit\n");
}

#[test]
fn a_conflict_is_refused_naming_the_file_and_nothing_changes() {
    let tmp = repo();
    let d = tmp.path();
    branch_with_change(d, "bdp/x", "a.txt", "from x\n");
    branch_with_change(d, "bdp/y", "a.txt", "from y\n");
    assert!(matches!(git::merge_into_base(d, "main", "bdp/x", "m", false).unwrap(), MergeOutcome::Merged { .. }));
    let after_x = git::rev_parse(d, "main").unwrap().unwrap();
    let out = git::merge_into_base(d, "main", "bdp/y", "m", false).unwrap();
    assert_eq!(out, MergeOutcome::Conflicted { base_commit: after_x.clone(), files: vec!["a.txt".into()] });
    assert_eq!(out.refusal().as_deref(), Some("merge conflict in a.txt"));
    assert_eq!(git::rev_parse(d, "main").unwrap().unwrap(), after_x);
    assert_eq!(std::fs::read_to_string(d.join("a.txt")).unwrap(), "from x\n");
}

#[test]
fn rebase_then_fast_forward() {
    let tmp = repo();
    let d = tmp.path();
    branch_with_change(d, "bdp/x", "a.txt", "x\n");
    branch_with_change(d, "bdp/y", "b.txt", "y\n");
    git::merge_into_base(d, "main", "bdp/x", "m", false).unwrap();
    let wt = d.join(".bdp/worktrees/bdp_y");
    assert_eq!(git::rebase_in_worktree(&wt, "main").unwrap(), Ok(()));
    let out = git::merge_into_base(d, "main", "bdp/y", "m", true).unwrap();
    let MergeOutcome::Merged { commit } = out else { panic!() };
    assert_eq!(commit, git::rev_parse(d, "bdp/y").unwrap().unwrap());
    assert_eq!(std::fs::read_to_string(d.join("b.txt")).unwrap(), "y\n");
}
