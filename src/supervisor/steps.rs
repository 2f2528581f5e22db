//! How the executor carries out the actions of one issue's steps: tracker writes (claim, close, give back,
//! labels), the issue lock file, worktrees and branches, agents, checks and merges. Quick ones (a tracker
//! call, a lock file) report their result at once; slow ones (a worktree, an agent, a check, a merge) run in
//! tasks that report over the dispatcher's channel. Nothing here decides: a result goes back to
//! [`crate::dispatch::Model::decide`] as an input.

use std::path::{Path, PathBuf};

use crate::dispatch::{Action, BranchFacts, Input, Started};
use crate::event::{Event, Hook, MergeStrategy};
use crate::git;
use crate::repo::branch_name;
use crate::supervisor::agent::{self, AgentEnd, AgentSpec};

use super::hooks::HookRun;
use super::options::Isolation;
use super::orchestrator::{Orchestrator, RunError, RunResult};
use super::prompt::{PromptContext, render};
use super::template::{Preset, Vars, agent_session_id, claude_session, substitute, worktree_git_dir};

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunError + use<> {
    let path = path.to_path_buf();
    move |source| RunError::Io { what, path, source }
}

/// Reports an attempt's end to the dispatcher (from a task).
struct Watcher {
    tx: tokio::sync::mpsc::UnboundedSender<Input>,
    issue: String,
    attempt: u32,
    dir: PathBuf,
    /// The session bdp named in the argv (see [`Orchestrator::named_session`]).
    named: Option<String>,
    after_run: Option<HookRun>,
    limits: agent::Limits,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Watcher {
    async fn run(self, supervision: impl std::future::Future<Output = AgentEnd>) {
        let Watcher { tx, issue, attempt, dir, named, after_run, limits, stop } = self;
        let mut end = supervision.await;
        let words = super::agent_output::from_files(&dir);
        (end.said, end.context_exhausted) = (words.said, words.context_exhausted);
        end.session = words.session.or(named);
        if let Some(run) = after_run.filter(|_| !end.stopped) {
            let hook = super::hooks::run(run, limits, stop).await;
            end.hook_failed.clone_from(&hook.failure);
            let (code, duration_ms, failure) = (hook.code, hook.duration_ms, hook.failure);
            let issue = issue.clone();
            let _ = tx.send(Input::HookRan { issue, attempt, hook: Hook::AfterRun, code, duration_ms, failure });
        }
        let _ = tx.send(Input::AgentExited { issue, attempt, end, usage: words.usage });
    }
}

/// One attempt, ready to start.
struct SpawnPlan {
    id: String,
    attempt: u32,
    dir: PathBuf,
    spec: AgentSpec,
    /// The attempt's directory and prompt written, or why not.
    prepared: Result<(), String>,
}

impl Orchestrator {
    pub(super) fn execute_step(&mut self, action: Action) -> RunResult<Vec<Input>> {
        match action {
            Action::WriteLockFile { issue } => {
                let dir = self.repo.locks_dir();
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                let path = self.repo.lock_path(&crate::reconcile::issue_lock(&issue));
                std::fs::write(&path, self.holder.render()).map_err(io("write", &path))?;
                Ok(vec![])
            }
            Action::RemoveLockFile { issue } => {
                let _ = std::fs::remove_file(self.repo.lock_path(&crate::reconcile::issue_lock(&issue)));
                Ok(vec![])
            }
            Action::MakeWorktree { issue } => {
                self.start_worktree(&issue);
                Ok(vec![])
            }
            Action::Spawn { items } => self.spawn_attempts(items),
            Action::LookAtBranch { issue } => {
                let (root, base, workdir) = (self.repo.root.clone(), self.base.clone(), self.workdir(&issue));
                self.in_background(move || {
                    let result = branch_facts(&root, &base, &workdir, &issue).map_err(|e| e.to_string());
                    Input::BranchLooked { issue, result }
                });
                Ok(vec![])
            }
            Action::ReleaseFileLocks { issue, attempt } => {
                self.release_file_locks(&issue, attempt);
                Ok(vec![])
            }
            Action::RunReview { issue, attempt, round } => {
                self.start_review(&issue, attempt, round);
                Ok(vec![])
            }
            Action::RunCheck { issue, attempt, command } => {
                self.spawn_check(&issue, attempt, command);
                Ok(vec![])
            }
            Action::ResetWorktree { issue, keep } => {
                let (workdir, base) = (self.workdir(&issue), self.base.clone());
                let attempt = self.model.held.get(&issue).map_or(0, |h| h.attempt);
                let attempt_dir = self.repo.attempt_dir(&issue, attempt);
                self.in_background(move || {
                    let result = if keep {
                        commit_work_in_progress(&workdir)
                    } else {
                        super::previous::save_work(&workdir, &base, &attempt_dir);
                        reset_worktree(&workdir, &base)
                    };
                    Input::WorktreeReset { issue, result: result.map_err(|e| e.to_string()) }
                });
                Ok(vec![])
            }
            Action::Merge { issue, strategy, title } => {
                self.start_merge(&issue, strategy, &title);
                Ok(vec![])
            }
            Action::RemoveWorktree { issue, path, branch, keep_branch } => {
                // Under the git lock, which a long merge may hold: in a task, so the dispatcher goes on. The
                // `before_remove` hook runs first, outside the lock.
                let root = self.repo.root.clone();
                let attempt = self.model.held.get(&issue).map_or(0, |h| h.attempt);
                let hook = self.hook_run(Hook::BeforeRemove, &issue, attempt).filter(|_| Path::new(&path).is_dir());
                let (tx, git_lock, limits, stop) =
                    (self.tx.clone(), self.git_lock.clone(), self.opts.limits(), self.stop_now.subscribe());
                tokio::spawn(async move {
                    if let Some(run) = hook {
                        let end = super::hooks::run(run, limits, stop).await;
                        let (code, duration_ms, failure) = (end.code, end.duration_ms, end.failure);
                        let hook = Hook::BeforeRemove;
                        let _ =
                            tx.send(Input::HookRan { issue: issue.clone(), attempt, hook, code, duration_ms, failure });
                    }
                    let removal = tokio::task::spawn_blocking(move || {
                        let _git = git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        let removed = git::remove_worktree(&root, Path::new(&path));
                        // git failing here leaves a worktree or branch behind, which `bdp audit` reports and
                        // `bdp clean` removes: not a reason to stop the run.
                        match removed {
                            Ok(()) if keep_branch => (Ok(()), Ok(())),
                            Ok(()) => (Ok(()), git::delete_branch(&root, &branch).map_err(|e| e.to_string())),
                            Err(e) => (Err(e.to_string()), Ok(())),
                        }
                    });
                    let (worktree, branch) =
                        removal.await.unwrap_or_else(|e| (Err(format!("the removal task failed: {e}")), Ok(())));
                    let _ = tx.send(Input::Removed { issue, worktree, branch });
                });
                Ok(vec![])
            }
            // Carried out by the dispatcher loop, and the tracker's calls by `tracker_thread`.
            Action::Append { .. }
            | Action::Report(_)
            | Action::ReadTracker
            | Action::Claim { .. }
            | Action::Close { .. }
            | Action::GiveBack { .. }
            | Action::ChangeLabels { .. }
            | Action::StopAll
            | Action::SetTimer { .. } => Ok(vec![]),
        }
    }

    /// Creates the claimed issue's worktree in a blocking task (a checkout of a big repository takes
    /// seconds; the dispatcher goes on meanwhile); [`Input::WorktreeReady`] comes back.
    fn start_worktree(&mut self, id: &str) {
        let (root, path, branch, base) =
            (self.repo.root.clone(), self.repo.worktree_path(id), branch_name(id), self.base.clone());
        let worktrees_dir = self.repo.worktrees_dir();
        if self.opts.hooks.after_create.is_some() {
            // Its first agent runs `after_create` first (again on a retry, until it passes).
            self.fresh_worktrees.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.to_string());
        }
        let (tx, issue, git_lock) = (self.tx.clone(), id.to_string(), self.git_lock.clone());
        let lock_hook = self.opts.lock_hook.then(|| (self.repo.bdp_dir().join("hooks"), self.bdp_exe.clone()));
        tokio::task::spawn_blocking(move || {
            let _git = git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = (|| -> Result<(String, String), String> {
                // Leftovers of an earlier claim (a crash, --keep-worktrees, a conflict the user wants redone).
                git::remove_worktree(&root, &path).map_err(|e| e.to_string())?;
                git::delete_branch(&root, &branch).map_err(|e| e.to_string())?;
                std::fs::create_dir_all(&worktrees_dir).map_err(|e| format!("{}: {e}", worktrees_dir.display()))?;
                git::add_worktree(&root, &path, &branch, &base).map_err(|e| e.to_string())?;
                if let Some((hooks, bdp)) = &lock_hook {
                    install_lock_hook(&root, &path, hooks, bdp)?;
                }
                Ok((path.display().to_string(), branch))
            })();
            let _ = tx.send(Input::WorktreeReady { issue, result });
        });
    }

    /// The `BDP_*` environment an agent and a check share.
    fn bdp_env(&self, id: &str, attempt: u32, workdir: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("BDP_ISSUE".into(), id.to_string()),
            ("BDP_WORKTREE".into(), workdir.to_string()),
            ("BDP_SESSION".into(), self.log.session().to_string()),
            ("BDP_ATTEMPT".into(), attempt.to_string()),
        ];
        // Which tracker the agent's `bdp` commands (`bdp mcp`'s `issue` tool) read: the run's own.
        let tracker = self.tracker.name();
        if ["jsonl", "bd", "br"].contains(&tracker) {
            env.push(("BDP_TRACKER".into(), tracker.to_string()));
        }
        env
    }

    /// Where the issue's agent works.
    fn workdir(&self, id: &str) -> PathBuf {
        match self.opts.isolation {
            Isolation::Worktree => self.repo.worktree_path(id),
            Isolation::None => self.repo.root.clone(),
        }
    }

    /// Writes each prompt, makes every spawn intent durable in one append, then starts the agents.
    fn spawn_attempts(&mut self, items: Vec<(String, u32)>) -> RunResult<Vec<Input>> {
        let plans: Vec<SpawnPlan> = items.into_iter().map(|(id, attempt)| self.plan_spawn(&id, attempt)).collect();
        self.append(Vec::new())?;
        Ok(plans.into_iter().filter_map(|plan| self.launch(plan)).collect())
    }

    /// Writes the prompt and queues the spawn intent. The intent is recorded even when the attempt's
    /// directory or prompt cannot be written (a full disk, a file in the way): the attempt then fails to
    /// start, like an agent that cannot be found, and the issue is retried or given back with the reason.
    fn plan_spawn(&mut self, id: &str, attempt: u32) -> SpawnPlan {
        let dir = self.repo.attempt_dir(id, attempt);
        let workdir = self.workdir(id);
        let prompt_file = dir.join("prompt.md");
        let branch = (self.opts.isolation == Isolation::Worktree).then(|| branch_name(id));
        let text = match self.model.issue(id) {
            Some(issue) => render(
                issue,
                &PromptContext {
                    worktree: &workdir.display().to_string(),
                    branch: branch.as_deref(),
                    base: &self.base,
                    attempt,
                    check: self.opts.check.as_deref(),
                    previous: self.previous(id, &workdir, attempt),
                    rebase: self.opts.merge == MergeStrategy::Rebase,
                    bdp: &self.bdp_exe.display().to_string(),
                },
            ),
            None => format!("# {id}\n"),
        };
        // Not fsynced, not via a temp file: the attempt's directory is new, nobody reads the prompt before
        // the spawn below, and a crash before the spawn leads to a new attempt with a new prompt.
        let prepared =
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display())).and_then(|()| {
                std::fs::write(&prompt_file, text.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", prompt_file.display()))
            });
        let (workdir_s, prompt_s) = (workdir.display().to_string(), prompt_file.display().to_string());
        let agent_session = agent_session_id(self.log.session(), id, attempt);
        let worktree_git_dir = worktree_git_dir(&workdir, &self.git_dir);
        let vars = Vars {
            id,
            prompt_file: &prompt_s,
            worktree: &workdir_s,
            attempt,
            git_dir: &self.git_dir,
            worktree_git_dir: &worktree_git_dir,
            agent_session: &agent_session,
            bdp: &self.bdp_exe.display().to_string(),
        };
        let mut argv = substitute(&self.opts.template, &vars);
        if let Some((preset, session, why)) = self.resumable(id, attempt) {
            let kept = self.previous(id, &workdir, attempt).is_some_and(|p| p.kept);
            let worktree = if kept {
                "Your work so far is committed on this branch (what you left uncommitted as work in progress)."
                    .to_string()
            } else {
                format!(
                    "The worktree was reset to {} for this attempt: what you changed is gone, but you know what you tried.",
                    self.base
                )
            };
            let note = format!(
                "Your previous attempt at this issue was stopped: {why}. Carry on from where it stopped. The task is \
                 still in {prompt_s}. {worktree}"
            );
            argv = preset.resume(&argv, &session, &note);
        }
        if let (Some(Preset::Claude), Some(limit)) = (self.opts.agent, self.model.rules.max_issue_cost) {
            // What is left of the issue's budget, for the CLI to stop itself at (before the prompt).
            let left = limit.saturating_sub(self.model.issue_spent.get(id).copied().unwrap_or(0));
            let at = argv.len().saturating_sub(1);
            argv.splice(at..at, ["--max-budget-usd".to_string(), format!("{:.2}", left as f64 / 1e6)]);
        }
        let marker = format!("{}/{}/{attempt}", self.log.session(), crate::repo::escape_path_component(id));
        self.defer(vec![Event::SpawnRequested {
            issue: id.to_string(),
            attempt,
            argv: argv.clone(),
            cwd: workdir_s.clone(),
            marker: marker.clone(),
            stdout: dir.join("stdout").display().to_string(),
            stderr: dir.join("stderr").display().to_string(),
        }]);
        let spec = AgentSpec {
            bdp_exe: self.bdp_exe.clone(),
            argv,
            cwd: workdir.clone(),
            attempt_dir: dir.clone(),
            env: self
                .bdp_env(id, attempt, &workdir_s)
                .into_iter()
                .chain([("BDP_PROMPT_FILE".into(), prompt_s), ("BDP_MARKER".into(), marker)])
                .collect(),
        };
        SpawnPlan { id: id.to_string(), attempt, dir, spec, prepared }
    }

    /// For a retry: the attempt before it, as its prompt tells it.
    fn previous(&self, id: &str, workdir: &Path, attempt: u32) -> Option<super::prompt::Previous> {
        let claim = self.model.state.issues.get(id)?.claim.as_ref()?;
        let dir = |n: u32| self.repo.attempt_dir(id, n);
        super::previous::previous(claim, attempt, &dir, workdir, &self.base)
    }

    /// The preset whose conversation a retry resumes, its session and why the attempt before it failed:
    /// as the retry's record says (`carry_on`), so a retry scheduled before bdp crashed resumes too.
    fn resumable(&self, id: &str, attempt: u32) -> Option<(Preset, String, String)> {
        let preset = self.opts.agent?;
        let retry = self.model.state.issues.get(id)?.claim.as_ref()?.retry.as_ref()?;
        let session = retry.carry_on.as_ref()?.resume.clone().filter(|_| retry.next_attempt == attempt)?;
        Some((preset, session, retry.reason.clone()))
    }

    /// Starts an agent whose spawn intent is durable, and hands it to a task that reports its end. With
    /// hooks to run before it (`after_create` for a new worktree, `before_run`), all of it happens in that
    /// task and [`Input::Spawned`] comes back from there; otherwise it comes back at once.
    fn launch(&mut self, plan: SpawnPlan) -> Option<Input> {
        let SpawnPlan { id, attempt, dir, spec, prepared } = plan;
        if let Err(e) = prepared {
            return Some(Input::Spawned { issue: id, attempt, result: Err(e) });
        }
        let fresh = self.fresh_worktrees.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(&id);
        let before: Vec<HookRun> = [Hook::AfterCreate, Hook::BeforeRun]
            .into_iter()
            .filter(|h| *h != Hook::AfterCreate || fresh)
            .filter_map(|h| self.hook_run(h, &id, attempt))
            .collect();
        let watcher = self.watcher(&id, attempt, dir.clone());
        let (limits, stop) = (self.opts.limits(), self.stop_now.subscribe());
        if before.is_empty() {
            let running = match agent::spawn(&spec) {
                Ok(running) => running,
                Err(e) => return Some(Input::Spawned { issue: id, attempt, result: Err(e.to_string()) }),
            };
            let started = Started { pid: running.pid, start_time: running.start_time };
            tokio::spawn(watcher.run(agent::supervise(running, limits, dir, stop)));
            return Some(Input::Spawned { issue: id, attempt, result: Ok(started) });
        }
        let (tx, fresh_worktrees) = (self.tx.clone(), self.fresh_worktrees.clone());
        tokio::spawn(async move {
            for run in before {
                let hook = run.hook;
                let end = super::hooks::run(run, limits, stop.clone()).await;
                let failed = end.failure.is_some();
                let (code, duration_ms) = (end.code, end.duration_ms);
                let issue = id.clone();
                let _ = tx.send(Input::HookRan { issue, attempt, hook, code, duration_ms, failure: end.failure });
                if failed {
                    return;
                }
                if hook == Hook::AfterCreate {
                    fresh_worktrees.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
                }
            }
            match agent::spawn(&spec) {
                Err(e) => {
                    let _ = tx.send(Input::Spawned { issue: id, attempt, result: Err(e.to_string()) });
                }
                Ok(running) => {
                    let started = Started { pid: running.pid, start_time: running.start_time };
                    let _ = tx.send(Input::Spawned { issue: id, attempt, result: Ok(started) });
                    watcher.run(agent::supervise(running, limits, dir, stop)).await;
                }
            }
        });
        None
    }

    /// The hook `hook` of the config for an attempt of `id`, if there is one.
    fn hook_run(&self, hook: Hook, id: &str, attempt: u32) -> Option<HookRun> {
        let argv = self.opts.hooks.get(hook)?.clone();
        let workdir = self.workdir(id);
        Some(HookRun {
            hook,
            argv,
            env: self.bdp_env(id, attempt, &workdir.display().to_string()),
            cwd: workdir,
            attempt_dir: self.repo.attempt_dir(id, attempt),
            bdp_exe: self.bdp_exe.clone(),
        })
    }

    /// Hands an agent's supervision to a task that reports [`Input::AgentExited`], with the usage the agent
    /// printed. Spawned and adopted agents alike.
    pub(super) fn watch(
        &mut self,
        id: &str,
        attempt: u32,
        dir: PathBuf,
        supervision: impl std::future::Future<Output = AgentEnd> + Send + 'static,
    ) {
        tokio::spawn(self.watcher(id, attempt, dir).run(supervision));
    }

    /// What reports an attempt's end: with what the agent said, and the `after_run` hook run first.
    fn watcher(&self, id: &str, attempt: u32, dir: PathBuf) -> Watcher {
        Watcher {
            tx: self.tx.clone(),
            issue: id.to_string(),
            attempt,
            dir,
            named: self.named_session(id, attempt),
            after_run: self.hook_run(Hook::AfterRun, id, attempt),
            limits: self.opts.limits(),
            stop: self.stop_now.subscribe(),
        }
    }

    /// The session bdp named in an attempt's argv (`claude --session-id`), for when the agent was killed
    /// before it printed its own.
    pub(super) fn named_session(&self, id: &str, attempt: u32) -> Option<String> {
        let claim = self.model.state.issues.get(id)?.claim.as_ref()?;
        let a = claim.attempt.as_ref().filter(|a| a.number == attempt)?;
        claude_session(&a.argv).map(str::to_string)
    }

    /// Runs git work (a look at a branch, a reset, a removal) in a blocking task, so the dispatcher never waits
    /// for git; its input comes back over the channel. The work holds the git lock: git commands that run at
    /// once in one repository fight over its locks (a `branch -D` beside a `reset` can fail on a ref lock).
    fn in_background(&self, work: impl FnOnce() -> Input + Send + 'static) {
        let (tx, git_lock) = (self.tx.clone(), self.git_lock.clone());
        tokio::task::spawn_blocking(move || {
            let input = {
                let _git = git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                work()
            };
            let _ = tx.send(input);
        });
    }

    /// Gives back what the attempt's agent still holds of `bdp lock`'s file locks (holder `ISSUE#ATTEMPT`),
    /// with the record. A lock table that cannot be read is left to `bdp lock` and `audit` to report.
    fn release_file_locks(&mut self, id: &str, attempt: u32) {
        let dir = self.repo.file_locks_dir();
        if !dir.is_dir() {
            return;
        }
        let holder = format!("{id}#{attempt}");
        let released = crate::file_locks::Table::open(&self.repo).and_then(|table| table.release_all(&holder));
        match released {
            Ok(paths) if !paths.is_empty() => self.defer(vec![Event::FileLockReleased { holder, paths }]),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot release the file locks of {holder}: {e}"),
        }
    }

    /// Runs the reviewer of an attempt's work in its worktree (its own process group, the agent's limits),
    /// in a task: writes the diff, runs it, reads its verdict; [`Input::ReviewDone`] comes back.
    fn start_review(&mut self, id: &str, attempt: u32, round: u32) {
        let workdir = self.workdir(id);
        let attempt_dir = self.repo.attempt_dir(id, attempt);
        let files = super::review::ReviewFiles::new(&workdir, attempt, round);
        let prompt_file = attempt_dir.join("prompt.md").display().to_string();
        let argv = match (&self.opts.review, self.opts.review_agent) {
            (Some(command), _) => vec!["/bin/sh".to_string(), "-c".to_string(), command.clone()],
            (None, Some(preset)) => {
                let session = agent_session_id(self.log.session(), &format!("{id}\0review"), attempt * 1000 + round);
                let vars = Vars {
                    id,
                    prompt_file: &prompt_file,
                    worktree: &workdir.display().to_string(),
                    attempt,
                    git_dir: &self.git_dir,
                    worktree_git_dir: &worktree_git_dir(&workdir, &self.git_dir),
                    agent_session: &session,
                    bdp: &self.bdp_exe.display().to_string(),
                };
                let text = super::review::instruction(&prompt_file, &self.base, &files);
                // The agent's own CLI reviews with the agent's flags (`--agent codex -- -c …`: its provider).
                let template = match self.opts.agent == Some(preset) {
                    true => super::review::with_instruction(&self.opts.template, &text),
                    false => super::review::preset_argv(preset, &text),
                };
                substitute(&template, &vars)
            }
            (None, None) => return,
        };
        let mut env = self.bdp_env(id, attempt, &workdir.display().to_string());
        env.extend([
            ("BDP_PROMPT_FILE".to_string(), prompt_file),
            ("BDP_DIFF_FILE".to_string(), files.diff.display().to_string()),
            ("BDP_REVIEW_FILE".to_string(), files.verdict.display().to_string()),
            ("BDP_BASE".to_string(), self.base.clone()),
        ]);
        let spec = AgentSpec {
            bdp_exe: self.bdp_exe.clone(),
            argv,
            cwd: workdir.clone(),
            attempt_dir: attempt_dir.join(format!("review-{round}")),
            env,
        };
        let (tx, stop, issue, base) = (self.tx.clone(), self.stop_now.subscribe(), id.to_string(), self.base.clone());
        let limits = self.opts.limits();
        tokio::spawn(async move {
            let result = async {
                let diff = git::run(&workdir, ["diff", &format!("{base}...HEAD")]).map_err(|e| e.to_string())?;
                if let Some(dir) = files.diff.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                std::fs::write(&files.diff, diff).map_err(|e| format!("cannot write {}: {e}", files.diff.display()))?;
                let _ = std::fs::remove_file(&files.verdict);
                let running = agent::spawn(&spec).map_err(|e| format!("the reviewer cannot start: {e}"))?;
                let end = agent::supervise(running, limits, spec.attempt_dir.clone(), stop).await;
                let said = super::agent_output::from_files(&spec.attempt_dir).said;
                let how = || {
                    let how = end.why_failed(limits.timeout).replacen("agent ", "", 1);
                    match &said {
                        Some(said) if !how.contains(said.as_str()) => format!("{how}: {said}"),
                        _ => how,
                    }
                };
                match std::fs::read_to_string(&files.verdict) {
                    Ok(text) if end.success() || !text.trim().is_empty() => super::review::parse(&text)
                        .map_err(|e| format!("the reviewer's verdict ({}): {e}", files.verdict.display())),
                    Ok(_) | Err(_) if end.success() => {
                        Err(format!("the reviewer wrote no verdict to {}", files.verdict.display()))
                    }
                    _ => Err(format!("the reviewer {}", how())),
                }
            }
            .await;
            let _ = tx.send(Input::ReviewDone { issue, attempt, result });
        });
    }

    /// Runs the user's `--check` command in the worktree, in its own process group, in a task.
    fn spawn_check(&mut self, id: &str, attempt: u32, check: String) {
        let dir = self.repo.attempt_dir(id, attempt);
        let spec = AgentSpec {
            bdp_exe: self.bdp_exe.clone(),
            argv: vec!["/bin/sh".into(), "-c".into(), check],
            cwd: self.workdir(id),
            attempt_dir: dir.join("check"),
            env: self.bdp_env(id, attempt, &self.workdir(id).display().to_string()),
        };
        let (tx, stop, issue) = (self.tx.clone(), self.stop_now.subscribe(), id.to_string());
        // A check may be quiet for long (a build, a test suite): only its time counts.
        let limits = agent::Limits { stall: None, ..self.opts.limits() };
        tokio::spawn(async move {
            let input = match agent::spawn(&spec) {
                Ok(running) => {
                    let end = agent::supervise(running, limits, spec.attempt_dir.clone(), stop).await;
                    Input::CheckDone {
                        issue,
                        attempt,
                        passed: end.success(),
                        code: end.code,
                        duration_ms: end.duration_ms,
                    }
                }
                Err(_) => Input::CheckDone { issue, attempt, passed: false, code: None, duration_ms: 0 },
            };
            let _ = tx.send(input);
        });
    }

    /// Merges one branch in a blocking task under the git lock, so the dispatcher goes on (a stop is
    /// handled at once) while git works; [`Input::MergeDone`] comes back. Its intent is durable.
    fn start_merge(&mut self, id: &str, strategy: MergeStrategy, title: &str) {
        let branch = branch_name(id);
        let message = format!("Merge {branch}: {}\n\nbdp-issue: {id}\n", super::progress::one_line(title, 72));
        let (root, workdir, base) = (self.repo.root.clone(), self.workdir(id), self.base.clone());
        let (tx, issue, git_lock) = (self.tx.clone(), id.to_string(), self.git_lock.clone());
        tokio::task::spawn_blocking(move || {
            let _git = git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let outcome = match strategy {
                MergeStrategy::Rebase => match git::rebase_in_worktree(&workdir, &base) {
                    Ok(Ok(())) => git::merge_into_base(&root, &base, &branch, "", true),
                    Ok(Err(conflicted)) => Ok(conflicted),
                    Err(e) => Err(e),
                },
                _ => git::merge_into_base(&root, &base, &branch, &message, false),
            };
            let _ = tx.send(Input::MergeDone { issue, outcome: outcome.map_err(|e| e.to_string()) });
        });
    }

    /// Before a retry: the branch back to the base, the worktree clean (ignored files are kept).
    pub(super) fn reset_worktree(&mut self, id: &str) -> RunResult<()> {
        if self.opts.isolation == Isolation::Worktree {
            reset_worktree(&self.workdir(id), &self.base)?;
        }
        Ok(())
    }
}

/// `--lock-hook`: the worktree's hooks are bdp's (`.bdp/hooks/`, a config of this worktree only), whose
/// pre-commit hook checks the file locks and then runs the repository's own.
fn install_lock_hook(root: &Path, worktree: &Path, hooks: &Path, bdp: &Path) -> Result<(), String> {
    std::fs::create_dir_all(hooks).map_err(|e| format!("cannot create {}: {e}", hooks.display()))?;
    let hook = hooks.join("pre-commit");
    std::fs::write(&hook, crate::cli::commands::lock::pre_commit_hook(bdp))
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
        })
        .map_err(|e| format!("cannot write {}: {e}", hook.display()))?;
    git::run(root, ["config", "extensions.worktreeConfig", "true"]).map_err(|e| e.to_string())?;
    let hooks = hooks.display().to_string();
    git::run(worktree, ["config", "--worktree", "core.hooksPath", hooks.as_str()]).map_err(|e| e.to_string())?;
    Ok(())
}

/// Commits the issue's branch has beyond the base, whether its worktree has uncommitted changes, and its head.
fn branch_facts(root: &Path, base: &str, workdir: &Path, id: &str) -> Result<BranchFacts, git::GitError> {
    let branch = branch_name(id);
    let head = git::rev_parse(root, &format!("refs/heads/{branch}"))?.unwrap_or_default();
    let ahead = git::commits_ahead(root, base, &branch)?;
    let dirty = ahead == 0 && !git::run(workdir, ["status", "--porcelain"])?.trim().is_empty();
    Ok(BranchFacts { ahead, dirty, head })
}

/// What the worktree holds, committed as work in progress (nothing when it is clean), for the attempt that
/// continues it.
fn commit_work_in_progress(workdir: &Path) -> Result<(), git::GitError> {
    if git::run(workdir, ["status", "--porcelain"])?.trim().is_empty() {
        return Ok(());
    }
    git::run(workdir, ["add", "-A"])?;
    let message = "bdp: work in progress (the attempt did not finish; the next one goes on from here)";
    git::run(
        workdir,
        ["-c", "user.name=bdp", "-c", "user.email=bdp@localhost", "commit", "-q", "--no-verify", "-m", message],
    )?;
    Ok(())
}

/// The worktree's branch back to the base, the worktree clean (ignored files are kept).
fn reset_worktree(workdir: &Path, base: &str) -> Result<(), git::GitError> {
    git::run(workdir, ["reset", "--hard", "--quiet", base])?;
    git::run(workdir, ["clean", "-fd", "--quiet"])?;
    Ok(())
}
