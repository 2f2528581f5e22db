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
    /// Set when this attempt continues one that ran out of context: what that one did (its commits,
    /// the files it changed, its last words), as markdown.
    pub continues: Option<String>,
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
    if let Some(check) = ctx.check {
        out.push_str(&format!("- Your commits must pass this check before they are merged: {check}\n"));
    }
    out.push_str("- Exit with status 0 when the work is done and committed; exit non-zero if you could not do it.\n");
    match &ctx.continues {
        Some(before) => {
            out.push_str(&format!(
                "- This is attempt {}: it continues the one before it, which ran out of context. Its work is \
                 committed on this branch; go on from there.\n\n## Where the previous attempt stopped\n\n{}\n",
                ctx.attempt,
                before.trim_end()
            ));
        }
        None if ctx.attempt > 1 => out.push_str(&format!(
            "- This is attempt {}: an earlier attempt failed and its changes were discarded.\n",
            ctx.attempt
        )),
        None => {}
    }
    out
}
