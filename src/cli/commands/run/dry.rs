//! `bdp run --dry-run`: what would run, in what order, with which argv and where — computed exactly as
//! the run would, and nothing is written (no `.bdp`, no log, no tracker change).

use crate::error::CliResult;
use crate::plan::Issue;
use crate::repo::{Repo, branch_name};
use crate::supervisor::options::{Isolation, RunOptions, run_order};
use crate::supervisor::template::{Vars, substitute};
use crate::tracker::ListFilter;

use crate::cli::Outcome;
use crate::cli::render::shell_words;

pub fn print(
    repo: &Repo,
    opts: &RunOptions,
    issues: &[Issue],
    base: &str,
    git_dir: &str,
    tracker: &str,
) -> CliResult<Outcome> {
    let filter = ListFilter { statuses: vec![], label: opts.label.clone(), parent: opts.epic.clone() };
    let in_scope = filter.matching(issues);
    let attempts = past_attempts(repo);
    let order: Vec<&Issue> = run_order(issues, opts, jiff::Timestamp::now())
        .into_iter()
        .map(|i| &issues[i])
        .take(opts.max_issues.unwrap_or(usize::MAX))
        .collect();
    println!(
        "bdp run --dry-run: {} ready issue(s), {} agent(s), tracker {tracker}, {}; nothing is changed",
        order.len(),
        opts.agents,
        match opts.isolation {
            Isolation::Worktree => format!("merging into {base}"),
            Isolation::None => "in the repository itself".to_string(),
        }
    );
    let bdp = std::env::current_exe().map_or_else(|_| "bdp".to_string(), |p| p.display().to_string());
    for (n, issue) in order.iter().enumerate() {
        let attempt = attempts.get(&issue.id).copied().unwrap_or(0) + 1;
        let workdir = match opts.isolation {
            Isolation::Worktree => repo.worktree_path(&issue.id),
            Isolation::None => repo.root.clone(),
        };
        let prompt = repo.attempt_dir(&issue.id, attempt).join("prompt.md");
        let (w, p) = (workdir.display().to_string(), prompt.display().to_string());
        let session = crate::supervisor::template::agent_session_id("(dry run)", &issue.id, attempt);
        // Where git puts a new worktree's own git dir (it is made when the worktree is).
        let worktree_git_dir = match (opts.isolation, workdir.file_name()) {
            (Isolation::Worktree, Some(name)) => format!("{git_dir}/worktrees/{}", name.to_string_lossy()),
            _ => git_dir.to_string(),
        };
        let vars = Vars {
            id: &issue.id,
            prompt_file: &p,
            worktree: &w,
            attempt,
            git_dir,
            worktree_git_dir: &worktree_git_dir,
            agent_session: &session,
            bdp: &bdp,
        };
        let argv = substitute(&opts.template, &vars);
        let when = if n < opts.agents { "starts at once" } else { "queued" };
        let title = crate::supervisor::progress::one_line(&issue.title, 60);
        println!("{:>4}  {}  P{}  {title}  ({when})", n + 1, issue.id, issue.priority);
        println!("      argv: {}", shell_words(&argv));
        match opts.isolation {
            Isolation::Worktree => println!("      in:   {w} (branch {} from {base})", branch_name(&issue.id)),
            Isolation::None => println!("      in:   {w}"),
        }
    }
    let blocked = issues
        .iter()
        .zip(&in_scope)
        .filter(|(i, kept)| **kept && i.status == "open" && !order.iter().any(|o| o.id == i.id))
        .count();
    if blocked > 0 {
        println!(
            "then: {blocked} more open issue(s) not ready now (blocked, deferred or labelled) may start as blockers close"
        );
    }
    // What the run would hold back: issues of the list that touch the same files (`crate::filelock::zones`).
    let declared: Vec<(&Issue, Vec<crate::filelock::LockPath>)> =
        order.iter().map(|i| (*i, crate::filelock::zones::declared(i).paths)).filter(|(_, p)| !p.is_empty()).collect();
    let view: Vec<(&Issue, &[crate::filelock::LockPath])> = declared.iter().map(|(i, p)| (*i, p.as_slice())).collect();
    for c in crate::filelock::zones::collisions(&view, &opts.zones) {
        println!("not at once: {} and {}: {}", c.a, c.b, c.why);
    }
    if let Some(check) = &opts.check {
        println!("check before each merge: sh -c {}", shell_words(std::slice::from_ref(check)));
    }
    Ok(Outcome::Ok)
}

/// Attempts the log already has per issue (the next attempt's number and directory follow them).
fn past_attempts(repo: &Repo) -> std::collections::HashMap<String, u32> {
    if !repo.events_dir().is_dir() {
        return Default::default();
    }
    match crate::log::load::fold_verified(&repo.events_dir(), None, |_, _| {}) {
        Ok((state, _)) => state.issues.into_iter().map(|(id, i)| (id, i.attempts)).collect(),
        Err(_) => Default::default(),
    }
}
