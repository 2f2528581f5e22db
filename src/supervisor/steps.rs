//! The steps one issue goes through under `bdp run`, as methods of the dispatcher:
//! claim → worktree → prompt + spawn → exited → (check) → merge queue → close → cleanup → release,
//! and the failure path: retry with backoff, or give the issue back labelled `bdp:failed`.
//!
//! Every step appends its intent before acting (spawn requested, merge started) and its outcome after.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::event::{AgentUsage, Event, MergeStrategy, Phase, ReleaseReason};
use crate::git::{self, MergeOutcome};
use crate::repo::branch_name;
use crate::supervisor::agent::{self, AgentEnd, AgentSpec};
use crate::tracker::TrackerError;

use super::options::{CONFLICT_LABEL, FAILED_LABEL, Isolation};
use super::orchestrator::{Ending, Live, Msg, Orchestrator, RunError, RunResult, StopLevel, grouped};
use super::outage::Waiting;
use super::prompt::{PromptContext, render};
use super::template::{Vars, substitute};
use crate::dispatch::after_exit::{AfterFailure, Landing, Work, after_failure, landing};
use crate::tracker::LabelChange;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RunError + use<> {
    let path = path.to_path_buf();
    move |source| RunError::Io { what, path, source }
}

impl Orchestrator {
    /// Claims the issues in the tracker (inside the caller's batch): those with the same label change in one
    /// call. Returns those claimed. A claim the tracker refuses (someone else took it) skips its issue; a
    /// tracker that fails pauses claims and leaves the issue a candidate.
    pub(super) fn claim_issues(&mut self, ids: &[String]) -> RunResult<Vec<String>> {
        let groups = grouped(ids.iter().map(|id| (self.phase_label_change(id, Phase::Claimed), id.clone())));
        let mut claimed = Vec::new();
        for (labels, members) in groups {
            if self.tracker_down() {
                break;
            }
            let mut events = Vec::new();
            let results = self.tracker.claim_many(&members, &self.opts.actor, &labels, &mut events);
            self.defer(events);
            for (id, result) in members.iter().zip(results) {
                match result {
                    Ok(_) => {
                        self.claimed(id, &labels)?;
                        claimed.push(id.clone());
                    }
                    // The tracker said no to this issue: leave it to whoever has it.
                    Err(
                        e @ (TrackerError::AlreadyClaimed { .. }
                        | TrackerError::NotClaimable { .. }
                        | TrackerError::NotFound(_)
                        | TrackerError::ClaimNotVerified { .. }),
                    ) => {
                        self.progress.line(&format!("skip     {id}  {e}"));
                        self.skip.insert(id.clone());
                    }
                    // The tracker does not work: the issue stays a candidate for when it does.
                    Err(e) => {
                        self.tracker_failed(&format!("claiming {id}"), &e);
                        self.dirty = true;
                    }
                }
            }
        }
        Ok(claimed)
    }

    /// Records a claim the tracker accepted, takes its lock, and starts showing it.
    fn claimed(&mut self, id: &str, labels: &LabelChange) -> RunResult<()> {
        self.defer(vec![Event::IssueClaimed { issue: id.to_string(), actor: self.opts.actor.clone() }]);
        self.take_issue_lock(id)?;
        self.claims_made += 1;
        let mut title = String::new();
        if let Some(issue) = self.issues.iter_mut().find(|i| i.id == id) {
            issue.status = "in_progress".into();
            issue.assignee = Some(self.opts.actor.clone());
            labels.apply(&mut issue.labels);
            title.clone_from(&issue.title);
        }
        self.live.insert(id.to_string(), Live { title, since: Instant::now(), busy: false });
        self.dirty = true;
        Ok(())
    }

    /// Creates the claimed issue's worktree in a blocking task (a checkout of a big repository takes
    /// seconds; the dispatcher goes on meanwhile); [`Msg::WorktreeReady`] comes back.
    pub(super) fn start_worktree(&mut self, id: &str) {
        self.set_busy(id, true);
        let (root, path, branch, base) =
            (self.repo.root.clone(), self.repo.worktree_path(id), branch_name(id), self.base.clone());
        let worktrees_dir = self.repo.worktrees_dir();
        let (tx, issue, git_lock) = (self.tx.clone(), id.to_string(), self.git_lock.clone());
        tokio::task::spawn_blocking(move || {
            let _git = git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = (|| -> Result<(), String> {
                // Leftovers of an earlier claim (a crash, --keep-worktrees, a conflict the user wants redone).
                git::remove_worktree(&root, &path).map_err(|e| e.to_string())?;
                git::delete_branch(&root, &branch).map_err(|e| e.to_string())?;
                std::fs::create_dir_all(&worktrees_dir).map_err(|e| format!("{}: {e}", worktrees_dir.display()))?;
                git::add_worktree(&root, &path, &branch, &base).map_err(|e| e.to_string())
            })();
            let _ = tx.send(Msg::WorktreeReady { issue, result });
        });
    }

    pub(super) fn on_worktree_ready(&mut self, id: &str, result: Result<(), String>) -> RunResult<()> {
        self.set_busy(id, false);
        if let Err(e) = result {
            return self.give_up(id, ReleaseReason::Failed, &format!("cannot create the worktree: {e}"), false);
        }
        self.defer(vec![Event::WorktreeCreated {
            issue: id.to_string(),
            path: self.repo.worktree_path(id).display().to_string(),
            branch: branch_name(id),
            base: self.base.clone(),
        }]);
        self.phase(id, Phase::WorktreeReady);
        if self.stop != StopLevel::None {
            // Recorded first, so the release below removes it.
            self.append(Vec::new())?;
            return self.give_up(id, ReleaseReason::Shutdown, "stopped before the agent started", false);
        }
        self.spawn_attempts(vec![id.to_string()])
    }

    /// The `BDP_*` environment an agent and a check share.
    fn bdp_env(&self, id: &str, attempt: u32, workdir: &str) -> Vec<(String, String)> {
        vec![
            ("BDP_ISSUE".into(), id.to_string()),
            ("BDP_WORKTREE".into(), workdir.to_string()),
            ("BDP_SESSION".into(), self.log.session().to_string()),
            ("BDP_ATTEMPT".into(), attempt.to_string()),
        ]
    }

    /// Where the issue's agent works.
    fn workdir(&self, id: &str) -> PathBuf {
        match self.opts.isolation {
            Isolation::Worktree => self.repo.worktree_path(id),
            Isolation::None => self.repo.root.clone(),
        }
    }

    /// Writes the prompt, appends the spawn intent, spawns, appends what was spawned, and hands the agent
    /// to an executor task.
    /// Spawns the next attempt of each issue: every spawn intent is made durable in one append, then
    /// the agents are started.
    pub(super) fn spawn_attempts(&mut self, ids: Vec<String>) -> RunResult<()> {
        let mut plans = Vec::with_capacity(ids.len());
        for id in ids {
            plans.push(self.plan_spawn(&id)?);
        }
        self.append(Vec::new())?;
        for plan in plans {
            self.launch(plan)?;
        }
        Ok(())
    }

    /// Writes the prompt and queues the spawn intent.
    fn plan_spawn(&mut self, id: &str) -> RunResult<SpawnPlan> {
        let attempt = self.state.issues.get(id).map_or(0, |i| i.attempts) + 1;
        let dir = self.repo.attempt_dir(id, attempt);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let workdir = self.workdir(id);
        let prompt_file = dir.join("prompt.md");
        let issue = self.issues.iter().find(|i| i.id == id).cloned();
        let branch = (self.opts.isolation == Isolation::Worktree).then(|| branch_name(id));
        let text = match &issue {
            Some(issue) => render(
                issue,
                &PromptContext {
                    worktree: &workdir.display().to_string(),
                    branch: branch.as_deref(),
                    base: &self.base,
                    attempt,
                    check: self.opts.check.as_deref(),
                },
            ),
            None => format!("# {id}\n"),
        };
        // Not fsynced, not via a temp file: the attempt's directory is new, nobody reads the prompt before
        // the spawn below, and a crash before the spawn leads to a new attempt with a new prompt.
        std::fs::write(&prompt_file, text.as_bytes()).map_err(io("write", &prompt_file))?;
        let (workdir_s, prompt_s) = (workdir.display().to_string(), prompt_file.display().to_string());
        let argv = substitute(
            &self.opts.template,
            &Vars { id, prompt_file: &prompt_s, worktree: &workdir_s, attempt, git_dir: &self.git_dir },
        );
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
        Ok(SpawnPlan { id: id.to_string(), attempt, dir, spec })
    }

    /// Starts an agent whose spawn intent is durable, and hands it to an executor task.
    fn launch(&mut self, plan: SpawnPlan) -> RunResult<()> {
        let SpawnPlan { id, attempt, dir, spec } = plan;
        let id = id.as_str();
        let running = match agent::spawn(&spec) {
            Ok(running) => running,
            Err(e) => {
                let reason = format!("cannot start the agent: {e}");
                self.defer(vec![Event::AttemptAbandoned { issue: id.to_string(), attempt, reason: reason.clone() }]);
                return self.failed_attempt(id, &reason, false);
            }
        };
        self.defer(vec![Event::AgentSpawned {
            issue: id.to_string(),
            attempt,
            pid: running.pid,
            pgid: running.pid,
            start_time: running.start_time,
        }]);
        let (stop, timeout, grace) = (self.stop_now.subscribe(), self.opts.timeout, self.opts.grace);
        let supervision = agent::supervise(running, timeout, grace, dir.clone(), stop);
        self.watch(id, attempt, dir, None, supervision);
        Ok(())
    }

    /// Shows the attempt as running and hands its supervision to a task that reports [`Msg::Exited`], with
    /// the usage the agent printed. Spawned and adopted agents alike (`adopted`: the pid of an agent a
    /// crashed orchestrator started).
    pub(super) fn watch(
        &mut self,
        id: &str,
        attempt: u32,
        dir: PathBuf,
        adopted: Option<u32>,
        supervision: impl std::future::Future<Output = AgentEnd> + Send + 'static,
    ) {
        let title = self.live.get(id).map(|l| l.title.clone()).unwrap_or_default();
        self.progress.started(id, attempt, &title, adopted);
        self.phase(id, Phase::Running);
        self.set_busy(id, true);
        let (tx, issue) = (self.tx.clone(), id.to_string());
        tokio::spawn(async move {
            let end = supervision.await;
            let usage = std::fs::read(dir.join("stdout")).ok().and_then(|out| super::usage::parse(&out));
            let _ = tx.send(Msg::Exited { issue, attempt, end, usage });
        });
    }

    pub(super) fn on_exited(
        &mut self,
        id: &str,
        attempt: u32,
        end: AgentEnd,
        usage: Option<AgentUsage>,
    ) -> RunResult<()> {
        self.set_busy(id, false);
        self.summary.agent_time += Duration::from_millis(end.duration_ms);
        if let Some(u) = &usage {
            self.summary.usage_reports += 1;
            self.summary.cost_micro_usd += u.cost_micro_usd.unwrap_or(0);
        }
        self.defer(vec![Event::AgentExited {
            issue: id.to_string(),
            attempt,
            code: end.code,
            signal: end.signal,
            duration_ms: end.duration_ms,
            timed_out: end.timed_out,
            usage,
        }]);
        self.phase(id, Phase::Exited);
        self.after_exit(id, attempt, &end)
    }

    /// What an attempt's exit leads to: a retry or giving up, or the check, the merge queue and the close.
    pub(super) fn after_exit(&mut self, id: &str, attempt: u32, end: &AgentEnd) -> RunResult<()> {
        if end.stopped {
            return self.give_up(id, ReleaseReason::Shutdown, "stopped (bdp stop --now)", false);
        }
        if !end.success() {
            return self.failed_attempt(id, &end.why_failed(self.opts.timeout), end.timed_out);
        }
        let work = match self.opts.isolation {
            Isolation::None => Work::InPlace,
            Isolation::Worktree => match self.branch_facts(id) {
                Ok(work) => work,
                Err(e) => return self.failed_attempt(id, &format!("cannot look at its branch: {e}"), false),
            },
        };
        match landing(work, self.opts.check.is_some()) {
            Landing::Close(reason) => self.close(id, &reason),
            Landing::Failed(why) => self.failed_attempt(id, &why, false),
            Landing::Check => {
                self.spawn_check(id, attempt, self.opts.check.clone().unwrap_or_default());
                Ok(())
            }
            Landing::Merge => self.merge(id),
        }
    }

    /// Commits the issue's branch has beyond the base, and whether its worktree has uncommitted changes.
    fn branch_facts(&self, id: &str) -> Result<Work, git::GitError> {
        let ahead = git::commits_ahead(&self.repo.root, &self.base, &branch_name(id))?;
        let dirty = ahead == 0 && !git::run(&self.workdir(id), ["status", "--porcelain"])?.trim().is_empty();
        Ok(Work::Branch { ahead, dirty })
    }

    /// Runs the user's `--check` command in the worktree, in its own process group, in a task.
    fn spawn_check(&mut self, id: &str, attempt: u32, check: String) {
        self.set_busy(id, true);
        self.progress.phase(id, "checking");
        let dir = self.repo.attempt_dir(id, attempt);
        let spec = AgentSpec {
            bdp_exe: self.bdp_exe.clone(),
            argv: vec!["/bin/sh".into(), "-c".into(), check],
            cwd: self.workdir(id),
            attempt_dir: dir.join("check"),
            env: self.bdp_env(id, attempt, &self.workdir(id).display().to_string()),
        };
        let (tx, stop, issue) = (self.tx.clone(), self.stop_now.subscribe(), id.to_string());
        let (timeout, grace) = (self.opts.timeout, self.opts.grace);
        tokio::spawn(async move {
            let msg = match agent::spawn(&spec) {
                Ok(running) => {
                    let end = agent::supervise(running, timeout, grace, spec.attempt_dir.clone(), stop).await;
                    Msg::Checked { issue, attempt, passed: end.success(), code: end.code, duration_ms: end.duration_ms }
                }
                Err(_) => Msg::Checked { issue, attempt, passed: false, code: None, duration_ms: 0 },
            };
            let _ = tx.send(msg);
        });
    }

    pub(super) fn on_checked(
        &mut self,
        id: &str,
        attempt: u32,
        passed: bool,
        code: Option<i32>,
        duration_ms: u64,
    ) -> RunResult<()> {
        self.set_busy(id, false);
        let command = self.opts.check.clone().unwrap_or_default();
        let event = if passed {
            Event::CheckPassed { issue: id.to_string(), attempt, command: command.clone(), duration_ms }
        } else {
            Event::CheckFailed { issue: id.to_string(), attempt, command: command.clone(), code, duration_ms }
        };
        self.defer(vec![event]);
        self.phase(id, Phase::Checked);
        if self.stop == StopLevel::Now {
            return self.give_up(id, ReleaseReason::Shutdown, "stopped (bdp stop --now)", false);
        }
        if passed {
            self.merge(id)
        } else {
            let how = code.map_or("was stopped".to_string(), |c| format!("exited {c}"));
            self.failed_attempt(id, &format!("the check `{command}` {how}"), false)
        }
    }

    /// The merge queue: the dispatcher merges one branch at a time, so merges never race.
    pub(super) fn merge(&mut self, id: &str) -> RunResult<()> {
        let branch = branch_name(id);
        if self.opts.merge == MergeStrategy::None {
            let head = match git::rev_parse(&self.repo.root, &format!("refs/heads/{branch}")) {
                Ok(head) => head.unwrap_or_default(),
                Err(e) => return self.failed_attempt(id, &format!("cannot read its branch: {e}"), false),
            };
            let reason = format!("bdp: work is on branch {branch} at {} (--merge none)", short(&head));
            return self.close_keeping_branch(id, &reason, true);
        }
        if self.merging.is_some() {
            self.progress.phase(id, "waiting to merge");
            self.merge_queue.push_back(id.to_string());
            return Ok(());
        }
        self.start_merge(id)
    }

    /// The merge queue: one branch at a time, in a blocking task under the git lock, so the dispatcher goes
    /// on (a stop is handled at once) while git works; [`Msg::MergeDone`] comes back.
    fn start_merge(&mut self, id: &str) -> RunResult<()> {
        let branch = branch_name(id);
        self.append(vec![Event::MergeStarted {
            issue: id.to_string(),
            branch: branch.clone(),
            base: self.base.clone(),
            strategy: self.opts.merge,
        }])?;
        self.progress.phase(id, "merging");
        self.merging = Some(id.to_string());
        self.set_busy(id, true);
        let title = self.live.get(id).map(|l| l.title.clone()).unwrap_or_default();
        let message = format!("Merge {branch}: {}\n\nbdp-issue: {id}\n", super::progress::one_line(&title, 72));
        let (root, workdir, base, strategy) =
            (self.repo.root.clone(), self.workdir(id), self.base.clone(), self.opts.merge);
        let (tx, issue, git_lock) = (self.tx.clone(), id.to_string(), self.git_lock.clone());
        tokio::task::spawn_blocking(move || {
            let _git = git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let outcome = match strategy {
                MergeStrategy::Rebase => match git::rebase_in_worktree(&workdir, &base) {
                    Ok(Ok(())) => git::merge_into_base(&root, &base, &branch, "", true),
                    Ok(Err(reason)) => Ok(MergeOutcome::Refused { reason }),
                    Err(e) => Err(e),
                },
                _ => git::merge_into_base(&root, &base, &branch, &message, false),
            };
            let _ = tx.send(Msg::MergeDone { issue, outcome: outcome.map_err(|e| e.to_string()) });
        });
        Ok(())
    }

    /// A merge ended: record it and close, or give the issue back; then the next branch in the queue.
    pub(super) fn on_merge_done(&mut self, id: &str, outcome: Result<MergeOutcome, String>) -> RunResult<()> {
        self.merging = None;
        self.set_busy(id, false);
        let branch = branch_name(id);
        self.merge_landed(id, &branch, outcome)?;
        while let Some(next) = self.merge_queue.pop_front() {
            if !self.live.contains_key(&next) {
                continue;
            }
            if self.stop == StopLevel::Now {
                self.give_up(&next, ReleaseReason::Shutdown, "stopped (bdp stop --now) before its merge", false)?;
                continue;
            }
            return self.start_merge(&next);
        }
        Ok(())
    }

    fn merge_landed(&mut self, id: &str, branch: &str, outcome: Result<MergeOutcome, String>) -> RunResult<()> {
        // git failing for this branch (not a conflict) is this issue's problem alone: it is given back with
        // the reason, its branch kept.
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                let detail = format!("the merge failed: {e}");
                self.defer(vec![Event::MergeConflicted { issue: id.to_string(), detail: detail.clone() }]);
                let text = format!("failed   {id}  {detail}; branch {branch} kept, labelled {FAILED_LABEL}");
                return self.release_and_end(Release {
                    id: id.to_string(),
                    reason: ReleaseReason::Failed,
                    detail,
                    give_back: GiveBack::Labelled(FAILED_LABEL),
                    keep_branch: true,
                    ending: Ending::Failed,
                    text,
                });
            }
        };
        match outcome {
            MergeOutcome::Merged { commit } => {
                self.defer(vec![Event::Merged { issue: id.to_string(), commit: commit.clone() }]);
                self.phase(id, Phase::Merged);
                let reason = format!("bdp: merged {} into {}", short(&commit), self.base);
                self.close(id, &reason)
            }
            MergeOutcome::Refused { reason } => {
                self.defer(vec![Event::MergeConflicted { issue: id.to_string(), detail: reason.clone() }]);
                let text = format!("conflict {id}  {reason}; branch {branch} kept, labelled {CONFLICT_LABEL}");
                self.release_and_end(Release {
                    id: id.to_string(),
                    reason: ReleaseReason::Conflict,
                    detail: reason,
                    give_back: GiveBack::Labelled(CONFLICT_LABEL),
                    keep_branch: true,
                    ending: Ending::Conflict,
                    text,
                })
            }
        }
    }

    pub(super) fn close(&mut self, id: &str, reason: &str) -> RunResult<()> {
        self.close_keeping_branch(id, reason, false)
    }

    /// Closes the issue in the tracker, then releases it. The close is made when the dispatch step ends
    /// ([`Orchestrator::flush_closes`]), with the other closes of the step that have the same reason, in one
    /// tracker call.
    pub(super) fn close_keeping_branch(&mut self, id: &str, reason: &str, keep_branch: bool) -> RunResult<()> {
        let already = self.issues.iter().any(|i| i.id == id && i.status == "closed");
        if already {
            // A close made before a crash and not recorded: never close twice.
            self.defer(vec![Event::RepairApplied {
                kind: "close_unrecorded".into(),
                issue: Some(id.to_string()),
                action: "the tracker has it closed already; not closed again".into(),
            }]);
            return self.closed(id, reason, keep_branch);
        }
        self.progress.phase(id, "closing");
        self.closes_due.push(CloseDue { id: id.to_string(), reason: reason.to_string(), keep_branch });
        Ok(())
    }

    /// Makes the closes due, those with the same reason in one call, and releases what was closed.
    pub(super) fn flush_closes(&mut self) -> RunResult<()> {
        let due = std::mem::take(&mut self.closes_due);
        let groups = grouped(due.into_iter().map(|c| (c.reason.clone(), c)));
        for (reason, members) in groups {
            if self.tracker_down() {
                for c in members {
                    self.wait_for_tracker(Waiting::Close { id: c.id, reason: c.reason, keep_branch: c.keep_branch });
                }
                continue;
            }
            let ids: Vec<String> = members.iter().map(|c| c.id.clone()).collect();
            let mut events = Vec::new();
            let results = self.tracker.close_many(&ids, &reason, &mut events);
            self.defer(events);
            for (c, result) in members.into_iter().zip(results) {
                let CloseDue { id, reason, keep_branch } = c;
                match result {
                    Ok(()) => self.closed(&id, &reason, keep_branch)?,
                    Err(TrackerError::NotFound(_)) => {
                        let detail = format!("{reason}; the tracker no longer has the issue, so it was not closed");
                        let text = format!("released {id}  {detail}");
                        self.release_and_end(Release {
                            id,
                            reason: ReleaseReason::Abandoned,
                            detail,
                            give_back: GiveBack::No,
                            keep_branch,
                            ending: Ending::Released,
                            text,
                        })?;
                    }
                    Err(e) => {
                        // The work is merged and recorded; the close waits for the tracker.
                        self.tracker_failed(&format!("closing {id}"), &e);
                        self.wait_for_tracker(Waiting::Close { id, reason, keep_branch });
                    }
                }
            }
        }
        Ok(())
    }

    /// The tracker has the issue closed: release it.
    fn closed(&mut self, id: &str, reason: &str, keep_branch: bool) -> RunResult<()> {
        if let Some(issue) = self.issues.iter_mut().find(|i| i.id == id) {
            issue.status = "closed".into();
        }
        self.phase(id, Phase::Closed);
        let took = self.live.get(id).map(|l| l.since.elapsed()).unwrap_or_default();
        let what = reason.strip_prefix("bdp: ").unwrap_or(reason);
        self.release_and_end(Release {
            id: id.to_string(),
            reason: ReleaseReason::Done,
            detail: reason.to_string(),
            give_back: GiveBack::No,
            keep_branch,
            ending: Ending::Done,
            text: format!("done     {id}  {what}  ({})", super::progress_duration(took)),
        })
    }

    /// An attempt failed: retry within the budget (not while stopping), else give the issue back.
    pub(super) fn failed_attempt(&mut self, id: &str, why: &str, timed_out: bool) -> RunResult<()> {
        let made = self.state.issues.get(id).and_then(|i| i.claim.as_ref()).map_or(1, |c| c.attempts_made());
        let stopping = self.stop != StopLevel::None;
        let decision = after_failure(why, timed_out, made, self.opts.retries, stopping, |n| self.opts.backoff(n));
        if let AfterFailure::GiveUp { reason, detail, label } = decision {
            return self.give_up(id, reason, &detail, label);
        }
        {
            let next = self.state.issues.get(id).map_or(0, |i| i.attempts) + 1;
            let backoff = self.opts.backoff(made);
            self.defer(vec![Event::RetryScheduled {
                issue: id.to_string(),
                next_attempt: next,
                backoff_ms: backoff.as_millis() as u64,
                reason: why.to_string(),
            }]);
            self.progress.line(&format!(
                "retry    {id}  {why}; attempt {} of {} in {}",
                made + 1,
                self.opts.retries + 1,
                super::progress_duration(backoff)
            ));
            if let Err(e) = self.reset_worktree(id) {
                let detail = format!("{why}; its worktree could not be reset for a retry: {e}");
                return self.give_up(id, ReleaseReason::Failed, &detail, true);
            }
            let (tx, issue) = (self.tx.clone(), id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(backoff).await;
                let _ = tx.send(Msg::RetryDue { issue });
            });
            Ok(())
        }
    }

    /// Takes the issue's lock: the file `.bdp/locks/<issue:ID>.lock` naming this orchestrator, and the
    /// lock in the log. A lock left by a holder that is gone is broken first.
    pub(super) fn take_issue_lock(&mut self, id: &str) -> RunResult<()> {
        let name = crate::reconcile::issue_lock(id);
        let mut events = Vec::new();
        match self.state.locks.get(&name) {
            Some(held) if held.holder_pid == self.holder.pid => return Ok(()),
            Some(held) => events.push(Event::LockBroken {
                lock: name.clone(),
                reason: format!("its holder, pid {}, is gone; taken over by pid {}", held.holder_pid, self.holder.pid),
            }),
            None => {}
        }
        let dir = self.repo.locks_dir();
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = self.repo.lock_path(&name);
        std::fs::write(&path, self.holder.render()).map_err(io("write", &path))?;
        events.push(Event::LockAcquired { lock: name, holder_pid: self.holder.pid, issue: Some(id.to_string()) });
        self.defer(events);
        Ok(())
    }

    /// Gives the issue's lock back (file and log), whoever held it.
    pub(super) fn drop_issue_lock(&mut self, id: &str) {
        let name = crate::reconcile::issue_lock(id);
        let _ = std::fs::remove_file(self.repo.lock_path(&name));
        let held = self.state.locks.contains_key(&name)
            || self.pending.iter().any(|e| matches!(e, Event::LockAcquired { lock, .. } if *lock == name));
        if held {
            self.defer(vec![Event::LockReleased { lock: name }]);
        }
    }

    pub(super) fn on_retry_due(&mut self, id: &str) -> RunResult<()> {
        if !self.live.contains_key(id) {
            return Ok(());
        }
        if self.stop != StopLevel::None {
            return self.give_up(id, ReleaseReason::Shutdown, "a retry was due, but bdp is stopping", false);
        }
        self.spawn_attempts(vec![id.to_string()])
    }

    /// Gives the issue back to the tracker as open (labelled `bdp:failed` when `label`).
    pub(super) fn give_up(&mut self, id: &str, reason: ReleaseReason, detail: &str, label: bool) -> RunResult<()> {
        let give_back = if label { GiveBack::Labelled(FAILED_LABEL) } else { GiveBack::Open };
        let (word, ending) = match reason {
            ReleaseReason::Shutdown | ReleaseReason::Abandoned => ("released", Ending::Released),
            _ => ("failed  ", Ending::Failed),
        };
        let suffix = if label { format!("; labelled {FAILED_LABEL}") } else { String::new() };
        self.release_and_end(Release {
            id: id.to_string(),
            reason,
            detail: detail.to_string(),
            give_back,
            keep_branch: false,
            ending,
            text: format!("{word} {id}  {detail}{suffix}"),
        })
    }

    /// Releases the issue and stops showing it; when the tracker cannot take the give-back now, the whole
    /// release waits for it (nothing of it is done before).
    pub(super) fn release_and_end(&mut self, r: Release) -> RunResult<()> {
        if self.release(&r.id, r.reason, &r.detail, r.give_back, r.keep_branch)? {
            self.ended(&r.id, r.ending, &r.text);
        } else {
            self.wait_for_tracker(Waiting::Release(r));
        }
        Ok(())
    }

    /// Gives the claim back in the tracker when asked (with the phase label due and the label asked for, in
    /// the same write), then removes the worktree (and the branch unless kept) and records the release.
    /// `false`: the tracker failed, nothing was done, and the caller waits for it.
    pub(super) fn release(
        &mut self,
        id: &str,
        reason: ReleaseReason,
        detail: &str,
        give_back: GiveBack,
        keep_branch: bool,
    ) -> RunResult<bool> {
        let mut events = Vec::new();
        if give_back != GiveBack::No {
            let mut labels = match self.phase_due.get(id) {
                Some(&phase) => self.phase_label_change(id, phase),
                None => LabelChange::default(),
            };
            if let GiveBack::Labelled(label) = give_back {
                labels.add.push(label.to_string());
            }
            match self.tracker.release_with_labels(id, &labels, &mut events) {
                Ok(()) => {
                    self.phase_due.remove(id);
                    if let Some(issue) = self.issues.iter_mut().find(|i| i.id == id) {
                        issue.status = "open".into();
                        issue.assignee = None;
                        labels.apply(&mut issue.labels);
                    }
                }
                Err(TrackerError::NotFound(_)) => {
                    self.progress
                        .line(&format!("note     {id}  the tracker no longer has it; released in the log only"));
                }
                Err(e) => {
                    self.defer(events);
                    self.tracker_failed(&format!("giving {id} back"), &e);
                    return Ok(false);
                }
            }
        }
        let worktree = self.state.issues.get(id).and_then(|i| i.claim.as_ref()).and_then(|c| c.worktree.clone());
        if let Some(wt) = worktree
            && !self.opts.keep_worktrees
        {
            // What happened so far (the merge, the close) is durable before its evidence, the branch and the
            // worktree, goes: a crash in between must not leave a merge recovery cannot see.
            self.append(Vec::new())?;
            let removed = {
                let _git = self.git_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                git::remove_worktree(&self.repo.root, Path::new(&wt.path))
            };
            // git failing here leaves a worktree or branch behind, which `bdp audit` reports and `bdp clean`
            // removes: not a reason to stop the run.
            match removed {
                Ok(()) => {
                    self.defer(vec![Event::WorktreeRemoved { issue: id.to_string(), path: wt.path.clone() }]);
                    if !keep_branch && let Err(e) = git::delete_branch(&self.repo.root, &wt.branch) {
                        self.progress.line(&format!("note     {id}  branch {} left: {e}", wt.branch));
                    }
                }
                Err(e) => self.progress.line(&format!("note     {id}  worktree {} left: {e}", wt.path)),
            }
        }
        self.drop_issue_lock(id);
        events.push(Event::IssueReleased { issue: id.to_string(), reason, detail: Some(detail.to_string()) });
        self.defer(events);
        Ok(true)
    }

    /// Before a retry: the branch back to the base, the worktree clean (ignored files are kept).
    pub(super) fn reset_worktree(&mut self, id: &str) -> RunResult<()> {
        if self.opts.isolation == Isolation::Worktree {
            let dir = self.workdir(id);
            git::run(&dir, ["reset", "--hard", "--quiet", &self.base])?;
            git::run(&dir, ["clean", "-fd", "--quiet"])?;
        }
        Ok(())
    }
}

/// A close asked for in this dispatch step, made when the step ends.
#[derive(Debug, Clone)]
pub(super) struct CloseDue {
    pub id: String,
    pub reason: String,
    pub keep_branch: bool,
}

/// What a release does to the issue in the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GiveBack {
    /// Nothing: it is closed, or someone else holds it.
    No,
    /// Back to open, unassigned.
    Open,
    /// Back to open, unassigned, with this label (for a person to look at).
    Labelled(&'static str),
}

/// A release and how the issue ended, kept whole so it can wait for the tracker.
#[derive(Debug, Clone)]
pub(super) struct Release {
    pub id: String,
    pub reason: ReleaseReason,
    pub detail: String,
    pub give_back: GiveBack,
    pub keep_branch: bool,
    pub ending: Ending,
    pub text: String,
}

/// One attempt, ready to start.
struct SpawnPlan {
    id: String,
    attempt: u32,
    dir: PathBuf,
    spec: AgentSpec,
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
