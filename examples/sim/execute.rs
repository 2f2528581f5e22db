//! The simulator's executor: each action carried out in the simulated world, as `supervisor::steps` carries
//! it out in the real one, its result handed back as the next input (or later, for what takes time).

use bdp::dispatch::{Action, AgentEnd, BranchFacts, Input, MergeOutcome, Started, WriteError};
use bdp::event::{Event, Verdict};

use crate::run::{Due, Halt, Sim};
use crate::world::{ACTOR, Agent, Branch, World, worktree_path};

impl Sim {
    pub(crate) fn read_tracker(&mut self) -> Result<Vec<bdp::plan::Issue>, String> {
        if self.world.tracker_works(self.now) {
            Ok(self.world.list())
        } else {
            Err("/sim/.beads/issues.jsonl:3: bad line".into())
        }
    }

    /// Carries an action out. Under `tracker_async`, as the real executor does in a run's main loop, a
    /// tracker call is made at once but its answer comes back later (a crash in between loses the answer).
    pub(crate) fn execute(&mut self, action: Action) -> Result<Vec<Input>, Halt> {
        if self.tracker_async && !self.tracker_in_place && action.is_tracker_call() {
            // Answered in order, as by the one tracker thread.
            for input in self.execute_now(action)? {
                let at = (self.now + self.rng.between(1, 400)).max(self.tracker_answer_at);
                self.tracker_answer_at = at;
                self.at(at, Due::Input { incarnation: self.incarnation, input });
            }
            return Ok(vec![]);
        }
        self.execute_now(action)
    }

    fn execute_now(&mut self, action: Action) -> Result<Vec<Input>, Halt> {
        let works = self.world.tracker_works(self.now);
        let down = || WriteError::Failed("/sim/.beads/issues.jsonl:3: bad line".into());
        let inputs = match action {
            Action::Append { events, durable } => {
                self.append(events, durable)?;
                vec![]
            }
            Action::Report(_) => vec![],
            Action::ReadTracker => {
                let result = self.read_tracker();
                vec![Input::TrackerRead { result, at: jiff::Timestamp::UNIX_EPOCH }]
            }
            Action::Claim { ids, labels } => {
                if self.model.tracker_down() {
                    // An earlier claim found the tracker failing: not tried, as in `supervisor::tracker_thread`.
                    return Ok(vec![Input::Claimed { results: ids.into_iter().map(|id| (id, Err(down()))).collect() }]);
                }
                let mut results = Vec::new();
                for id in ids {
                    let result = match self.world.issue_mut(&id) {
                        _ if !works => Err(down()),
                        None => Err(WriteError::NotFound(format!("no issue {id}"))),
                        Some(i) if i.status != "open" || i.assignee.as_deref().is_some_and(|a| a != ACTOR) => {
                            Err(WriteError::Refused(format!("{id} is {} ({:?})", i.status, i.assignee)))
                        }
                        Some(i) => {
                            i.status = "in_progress".into();
                            i.assignee = Some(ACTOR.into());
                            labels.apply(&mut i.labels);
                            self.pending.push(status_event(&id, "in_progress", Some(ACTOR)));
                            Ok(())
                        }
                    };
                    results.push((id, result));
                }
                vec![Input::Claimed { results }]
            }
            Action::Close { ids, reason } => {
                let mut results = Vec::new();
                for id in ids {
                    if works {
                        crate::check::close_allowed(self, &id, &reason)?;
                    }
                    let result = match self.world.issues.get_mut(&id) {
                        _ if !works => Err(down()),
                        None => Err(WriteError::NotFound(id.clone())),
                        Some(i) => {
                            i.issue.status = "closed".into();
                            i.closes += 1;
                            self.pending.push(Event::TrackerIssueClosed {
                                issue: id.clone(),
                                reason: reason.clone(),
                                backend: "sim".into(),
                            });
                            Ok(())
                        }
                    };
                    results.push((id, result));
                }
                vec![Input::ClosesDone { results }]
            }
            Action::GiveBack { issue, labels } => {
                let result = match self.world.issue_mut(&issue) {
                    _ if !works => Err(down()),
                    None => Err(WriteError::NotFound(issue.clone())),
                    Some(i) => {
                        i.status = "open".into();
                        i.assignee = None;
                        labels.apply(&mut i.labels);
                        self.pending.push(status_event(&issue, "open", None));
                        Ok(())
                    }
                };
                vec![Input::GaveBack { issue, result }]
            }
            Action::ChangeLabels { ids, change } => {
                let results = ids
                    .into_iter()
                    .map(|id| {
                        let result = if works {
                            self.world.apply_labels(&id, &change);
                            Ok(())
                        } else {
                            Err("down".to_string())
                        };
                        (id, change.clone(), result)
                    })
                    .collect();
                vec![Input::LabelsDone { results }]
            }
            Action::WriteLockFile { issue } => {
                self.world.lock_files.insert(issue, self.pid);
                vec![]
            }
            Action::RemoveLockFile { issue } => {
                self.world.lock_files.remove(&issue);
                vec![]
            }
            Action::MakeWorktree { issue } => {
                // Leftovers of an earlier claim go first, as in `supervisor::steps`.
                self.world.worktrees.remove(&issue);
                self.world.branches.remove(&issue);
                if self.rng.chance(0.03) {
                    self.later(10, 300, Input::WorktreeReady { issue, result: Err("git worktree add failed".into()) });
                } else {
                    self.inflight.push((issue.clone(), false));
                    let path = worktree_path(&issue);
                    let branch = bdp::repo::branch_name(&issue);
                    self.later(10, 500, Input::WorktreeReady { issue, result: Ok((path, branch)) });
                }
                vec![]
            }
            Action::Spawn { items } => {
                let mut started = Vec::new();
                for (issue, attempt) in items {
                    let marker = format!("{}/{}/{attempt}", self.session, bdp::repo::escape_path_component(&issue));
                    self.pending.push(Event::SpawnRequested {
                        issue: issue.clone(),
                        attempt,
                        argv: vec!["agent".into()],
                        cwd: worktree_path(&issue),
                        marker: marker.clone(),
                        stdout: "stdout".into(),
                        stderr: "stderr".into(),
                    });
                    started.push((issue, attempt, marker));
                }
                self.append(vec![], true)?;
                let mut inputs = Vec::new();
                for (issue, attempt, marker) in started {
                    if self.rng.chance(0.02) {
                        inputs.push(Input::Spawned { issue, attempt, result: Err("no such file".into()) });
                        continue;
                    }
                    let pid = self.world.pid();
                    let agent = self.new_agent(&issue, attempt, pid, marker);
                    let index = self.world.agents.len();
                    if let Some(at) = agent.ends_at {
                        self.at(at, Due::AgentEnds { index });
                    }
                    self.world.agents.push(agent);
                    inputs.push(Input::Spawned {
                        issue,
                        attempt,
                        result: Ok(Started { pid, start_time: Some(pid as u64) }),
                    });
                }
                inputs
            }
            Action::LookAtBranch { issue } => {
                let b = self.world.branches.get(&issue).cloned().unwrap_or_default();
                let result = if self.world.branches.contains_key(&issue) {
                    Ok(BranchFacts { ahead: b.ahead, dirty: b.dirty, head: b.head })
                } else {
                    Err("no such branch".to_string())
                };
                vec![Input::BranchLooked { issue, result }]
            }
            Action::RunCheck { issue, attempt, .. } => {
                let passed = self.rng.chance(0.8);
                let input =
                    Input::CheckDone { issue, attempt, passed, code: Some(if passed { 0 } else { 1 }), duration_ms: 5 };
                self.later(50, 3_000, input);
                vec![]
            }
            // No agent of the simulation takes file locks.
            Action::ReleaseFileLocks { .. } => vec![],
            Action::RunReview { issue, attempt, .. } => {
                let roll = self.rng.below(100);
                let result = if roll < 70 {
                    Ok((Verdict::Approve, String::new()))
                } else if roll < 95 {
                    Ok((Verdict::ChangesRequested, "- name the flag".to_string()))
                } else {
                    Err("the reviewer exited 1".to_string())
                };
                self.later(50, 3_000, Input::ReviewDone { issue, attempt, result });
                vec![]
            }
            // `keep` (--retry-from last, a conflict to resolve): the branch stays as it is.
            Action::ResetWorktree { issue, keep } => {
                if !keep {
                    self.reset(&issue);
                }
                vec![Input::WorktreeReset { issue, result: Ok(()) }]
            }
            Action::Merge { issue, .. } => {
                let roll = self.rng.below(100);
                let outcome = if roll < 10 {
                    let base_commit = format!("{:040x}", self.world.commits);
                    Ok(MergeOutcome::Conflicted { base_commit, files: vec!["src/lib.rs".into()] })
                } else if roll < 11 {
                    Ok(MergeOutcome::Refused { reason: "uncommitted changes in the checkout".into() })
                } else if roll < 13 {
                    Err("git merge: cannot lock ref".into())
                } else {
                    self.inflight.push((issue.clone(), true));
                    self.world.commits += 1;
                    Ok(MergeOutcome::Merged { commit: format!("{:040x}", self.world.commits) })
                };
                self.later(20, 2_000, Input::MergeDone { issue, outcome });
                vec![]
            }
            Action::RemoveWorktree { issue, branch: _, keep_branch, .. } => {
                self.world.worktrees.remove(&issue);
                if !keep_branch {
                    self.world.branches.remove(&issue);
                }
                vec![Input::Removed { issue, worktree: Ok(()), branch: Ok(()) }]
            }
            Action::StopAll => {
                let inc = self.incarnation;
                let grace = self.rng.between(10, 2_000);
                for index in 0..self.world.agents.len() {
                    let a = &mut self.world.agents[index];
                    if a.alive && a.watched_by == Some(inc) {
                        a.stopped = true;
                        a.code = None;
                        a.signal = Some(15);
                        a.ends_at = Some(self.now + grace);
                        let at = self.now + grace;
                        self.at(at, Due::AgentEnds { index });
                    }
                }
                vec![]
            }
            Action::SetTimer { at, timer } => {
                self.at(
                    at.max(self.now),
                    Due::Input { incarnation: self.incarnation, input: Input::TimerFired(timer) },
                );
                vec![]
            }
        };
        Ok(inputs)
    }

    pub(crate) fn new_agent(&mut self, issue: &str, attempt: u32, pid: u32, marker: String) -> Agent {
        let roll = self.rng.below(100);
        let took = self.rng.between(50, 20_000);
        let (code, signal, ends) = match roll {
            0..70 => (Some(0), None, Some(took)),
            70..88 => (Some(1), None, Some(took)),
            88..93 => (None, Some(9), Some(took)),
            // It hangs: the timeout stops it.
            _ => (None, Some(9), None),
        };
        let timed_out = ends.is_none();
        let ends_at = Some(self.now + ends.unwrap_or(self.rules.timeout));
        let (commits, dirty) = match self.rng.below(20) {
            0 => (0, false),
            1 => (0, true),
            n => (1 + n % 3, false),
        };
        Agent {
            issue: issue.into(),
            attempt,
            pid,
            marker,
            alive: true,
            ends_at,
            code,
            signal,
            started_at: self.now,
            exit: None,
            watched_by: Some(self.incarnation),
            commits,
            dirty,
            stopped: false,
            timed_out,
        }
    }

    pub(crate) fn make_worktree_in_world(&mut self, issue: &str) {
        self.world.worktrees.insert(issue.into(), (worktree_path(issue), bdp::repo::branch_name(issue)));
        self.world.branches.insert(issue.into(), Branch { head: "base".into(), ..Branch::default() });
    }

    pub(crate) fn merge_in_world(&mut self, issue: &str) {
        self.world.commits += 1;
        let commit = format!("{:040x}", self.world.commits);
        if let Some(b) = self.world.branches.get_mut(issue) {
            b.merged = Some(commit);
        }
    }

    /// An agent ended: its work is on its branch, its exit file written; the orchestrator that watches it
    /// hears of it.
    pub(crate) fn agent_ended(&mut self, index: usize) -> Result<(), Halt> {
        let now = self.now;
        let a = &mut self.world.agents[index];
        if a.alive {
            World::end_agent(a, now);
        }
        let a = self.world.agents[index].clone();
        if a.code == Some(0)
            && let Some(b) = self.world.branches.get_mut(&a.issue)
        {
            b.ahead += a.commits;
            b.dirty = a.dirty;
            if a.commits > 0 {
                b.head = format!("{}-{}", a.issue, a.attempt);
            }
        }
        if a.watched_by == Some(self.incarnation) {
            self.world.agents[index].watched_by = None;
            let exit = a.exit.clone().unwrap_or(bdp::reconcile::ExitView {
                code: None,
                signal: None,
                duration_ms: 0,
                error: None,
                pid: None,
            });
            let end = AgentEnd {
                code: exit.code,
                signal: exit.signal,
                duration_ms: exit.duration_ms,
                timed_out: a.timed_out && !a.stopped,
                stopped: a.stopped,
                ..AgentEnd::default()
            };
            self.feed(Input::AgentExited { issue: a.issue, attempt: a.attempt, end, usage: None })?;
        }
        Ok(())
    }
}

pub(crate) fn status_event(issue: &str, status: &str, assignee: Option<&str>) -> Event {
    Event::TrackerStatusSet {
        issue: issue.into(),
        status: status.into(),
        assignee: assignee.map(String::from),
        backend: "sim".into(),
    }
}
