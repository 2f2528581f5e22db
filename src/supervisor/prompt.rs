//! The prompt file an agent gets: the issue (title, description, design, acceptance criteria, notes) and
//! how to work under bdp. Pure text building; the orchestrator writes it to the attempt's directory.
//!
//! The issue text is hostile data: it goes into this file and nowhere else (never argv, never a shell).

use crate::plan::Issue;

/// What the prompt needs besides the issue.
#[derive(Debug, Clone)]
pub struct PromptContext<'a> {
    pub worktree: &'a str,
    /// `None` with `--isolation none`.
    pub branch: Option<&'a str>,
    pub base: &'a str,
    pub attempt: u32,
    pub check: Option<&'a str>,
    /// Set for a retry: the attempt before it.
    pub previous: Option<Previous>,
    /// Branches land by rebase (`--merge rebase`): a conflict is resolved by rebasing, not merging.
    pub rebase: bool,
    /// The bdp program, for the agent's file locks (`bdp lock`).
    pub bdp: &'a str,
}

/// The attempt before a retry, as its prompt tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub number: u32,
    /// Its work stays on the branch (the retry goes on from it); else the branch is back at the base.
    pub kept: bool,
    /// Its branch conflicts with the base: this attempt merges the base in and resolves.
    pub conflict: Option<crate::event::Conflict>,
    /// The review of its work requested changes: these comments, for this attempt to address.
    pub review: Option<String>,
    /// What happened to it (how it ended, its output's end, its commits), as markdown.
    pub text: String,
}

pub fn render(issue: &Issue, ctx: &PromptContext<'_>) -> String {
    let mut out = String::new();
    let title = issue.title.replace(['\n', '\r'], " ");
    out.push_str(&format!("# {}: {}\n\n", issue.id, title.trim()));
    let meta = match &issue.issue_type {
        Some(t) => format!("Type: {t}. Priority: P{}.", issue.priority),
        None => format!("Priority: P{}.", issue.priority),
    };
    out.push_str(&meta);
    out.push_str("\n\n");
    for (heading, text) in [
        ("Description", &issue.text.description),
        ("Design", &issue.text.design),
        ("Acceptance criteria", &issue.text.acceptance_criteria),
        ("Notes", &issue.text.notes),
    ] {
        if let Some(text) = text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            out.push_str(&format!("## {heading}\n\n{text}\n\n"));
        }
    }
    out.push_str("## How to work\n\n");
    out.push_str(&format!("- Work in this directory and nowhere else: {}\n", ctx.worktree));
    match ctx.branch {
        Some(branch) => out.push_str(&format!(
            "- Commit your work here, on the branch that is checked out ({branch}). Do not push, do not switch \
             branches, do not touch other checkouts. bdp merges your commits into {} when you exit.\n",
            ctx.base
        )),
        None => out.push_str("- Commit your work here when it is done. Do not push.\n"),
    }
    out.push_str("- Leave the issue's status alone: bdp closes it once your work is merged.\n");
    if ctx.branch.is_some() {
        out.push_str(&format!(
            "- Other agents work beside you. Before you edit a file they may edit too (a manifest, a lockfile, a \
             schema, a migration), lock it: `{bdp} lock acquire PATH` (it waits up to 60 s; exit 1 means another \
             agent holds it: do something else first, then try again), and `{bdp} lock release PATH` when you \
             are done with it. Whatever you still hold is released when you exit.\n",
            bdp = ctx.bdp
        ));
    }
    if let Some(check) = ctx.check {
        out.push_str(&format!("- Your commits must pass this check before they are merged: {check}\n"));
    }
    out.push_str("- Exit with status 0 when the work is done and committed; exit non-zero if you could not do it.\n");
    match &ctx.previous {
        Some(p) => {
            let attempt = ctx.attempt;
            let situation = match (&p.conflict, p.kept) {
                (None, _) if p.review.is_some() => format!(
                    "This is attempt {attempt}. The work on this branch was reviewed, and the review requested \
                     changes (below). Go on from the work committed here: address each comment, commit, and exit 0."
                ),
                (Some(c), _) => {
                    let how = if ctx.rebase {
                        format!(
                            "Rebase this branch onto {base} (`git rebase {base}`), resolve each conflict so that both \
                             sides' changes still work, and finish the rebase (`git add`, `git rebase --continue`).",
                            base = ctx.base
                        )
                    } else {
                        format!(
                            "Merge {base} into this branch (`git merge {base}`), resolve the conflicts so that both \
                             sides' changes still work, and commit the merge. Do not rebase.",
                            base = ctx.base
                        )
                    };
                    format!(
                        "This is attempt {attempt}. The work is done and committed on this branch, but it conflicts \
                         with {} (at {}) in: {}. {how} Do not start over.",
                        ctx.base,
                        crate::text::short(&c.base_commit),
                        c.files.join(", "),
                    )
                }
                (None, true) => format!(
                    "This is attempt {attempt}. The attempt before it did not finish; its work is committed on this \
                     branch (what it left uncommitted as work in progress): go on from there."
                ),
                (None, false) => format!(
                    "This is attempt {attempt}. The attempt before it failed and its changes were discarded: the \
                     branch is back at {}. Learn from what happened to it.",
                    ctx.base
                ),
            };
            out.push_str(&format!("- {situation}\n\n"));
            if let Some(review) = &p.review {
                out.push_str(&format!("## The review\n\n{}\n\n", review.trim_end()));
            }
            out.push_str(&format!("## What happened in attempt {}\n\n{}\n", p.number, p.text.trim_end()));
        }
        None if ctx.attempt > 1 => out.push_str(&format!(
            "- This is attempt {}: an earlier attempt failed and its changes were discarded.\n",
            ctx.attempt
        )),
        None => {}
    }
    out
}
