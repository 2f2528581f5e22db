//! `decide`: the run loop's one decision function. An [`Input`] (something happened) against the
//! [`Model`] gives the [`Action`]s to carry out, in order, and updates the model's picture of the run. No I/O,
//! no clock (`now` comes in, in milliseconds since the run started): the executor in the supervisor carries
//! the actions out and feeds their results back, and the simulator (`examples/sim.rs`) does the same against
//! a simulated world.
//!
//! One issue's path: claim → worktree → spawn → exited → (branch looked at) → (check) → merge queue → close →
//! release (give-back, worktree removal, the record). A failure: a retry after a backoff (the worktree reset
//! first), or the issue given back. A tracker that fails pauses claims ([`super::outage`]); the writes that
//! needed it wait for it.

use crate::event::{CarryOn, Conflict, Event, Hook, MergeStrategy, Phase, ReleaseReason, Verdict};
use crate::plan::LabelChange;
use crate::reconcile::issue_lock;
use crate::repo::branch_name;
use crate::text::usd;

use super::Ms;
use super::after_exit::{AfterFailure, AgentEnd, Landing, Work, after_failure, landing};
use super::io::{Action, BranchFacts, Input, MergeOutcome, Resume, RunEvent, Timer, WriteError, phase_label};
use super::model::{
    CONFLICT_LABEL, CRASH_LOOP_ISSUES, CloseDue, Ending, FAILED_LABEL, GiveBack, Held, Isolation, Model, OnConflict,
    Release, RetryFrom, Stage, Waiting,
};
use super::outage::{FIRST_DELAY, Outage, Retry};
use super::stop::{ClaimGate, StopLevel, escalate, may_claim};

/// The actions of one decision, in order; observations queued next to each other share one append.
#[derive(Debug, Default)]
struct Out(Vec<Action>);

impl Out {
    /// Queues an observation (it goes out with the next durable append, or before the dispatcher waits).
    fn defer(&mut self, event: Event) {
        match self.0.last_mut() {
            Some(Action::Append { events, durable: false }) => events.push(event),
            _ => self.0.push(Action::Append { events: vec![event], durable: false }),
        }
    }

    /// Makes everything queued durable now (with `events`): an intent before its act.
    fn flush(&mut self, events: Vec<Event>) {
        self.0.push(Action::Append { events, durable: true });
    }

    fn act(&mut self, action: Action) {
        self.0.push(action);
    }

    fn report(&mut self, event: RunEvent) {
        self.0.push(Action::Report(event));
    }
}

fn ms(d: std::time::Duration) -> Ms {
    d.as_millis() as Ms
}

/// The outage's clock: time since the run started.
fn clock(ms: Ms) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

pub use crate::text::short;

/// Why an issue waiting to retry is given back by a stop.
const STOPPED_BEFORE_RETRY: &str = "stopped while it waited to retry";

impl Model {
    /// Decides what `input` leads to at `now`.
    pub fn decide(&mut self, now: Ms, input: Input) -> Vec<Action> {
        let mut out = Out::default();
        self.now = now;
        match input {
            Input::Step { machine_busy } => {
                self.machine_busy = machine_busy;
                self.flush_closes(&mut out);
                self.fill(now, &mut out);
            }
            Input::TrackerFailed { what, error } => self.tracker_failed(now, &what, &error, &mut out),
            Input::Idle => self.flush_phase_labels(&mut out),
            Input::TrackerRead { result, at } => self.on_read(now, result, at, &mut out),
            Input::Claimed { results } => self.on_claimed(now, results, &mut out),
            Input::WorktreeReady { issue, result } => self.on_worktree_ready(&issue, result, &mut out),
            Input::Spawned { issue, attempt, result } => match result {
                Ok(started) => {
                    out.defer(Event::AgentSpawned {
                        issue: issue.clone(),
                        attempt,
                        pid: started.pid,
                        pgid: started.pid,
                        start_time: started.start_time,
                    });
                    self.watch(&issue, attempt, None, &mut out);
                }
                Err(e) => {
                    let reason = format!("cannot start the agent: {e}");
                    out.defer(Event::AttemptAbandoned { issue: issue.clone(), attempt, reason: reason.clone() });
                    self.failed_attempt(now, &issue, &reason, false, &mut out);
                }
            },
            Input::HookRan { issue, attempt, hook, code, duration_ms, failure } => {
                out.defer(Event::HookRan { issue: issue.clone(), attempt, hook, code, duration_ms });
                match (hook, failure) {
                    // Before the agent: the attempt never starts.
                    (Hook::AfterCreate | Hook::BeforeRun, Some(why)) if self.held.contains_key(&issue) => {
                        out.defer(Event::AttemptAbandoned { issue: issue.clone(), attempt, reason: why.clone() });
                        self.failed_attempt(now, &issue, &why, false, &mut out);
                    }
                    // The worktree goes anyway; what the hook said is shown.
                    (Hook::BeforeRemove, Some(why)) => out.report(RunEvent::HookFailed { issue, why }),
                    // `after_run` fails its attempt through the agent's end.
                    _ => {}
                }
            }
            Input::Adopted { issue, attempt, pid } => self.watch(&issue, attempt, Some(pid), &mut out),
            Input::AgentExited { issue, attempt, end, usage } => {
                let reported = usage.as_ref().and_then(|u| u.cost_micro_usd);
                let budget = self.rules.max_cost.is_some() || self.rules.max_issue_cost.is_some();
                if budget && reported.is_none() && self.outcome.cost_unreported.is_none() {
                    self.outcome.cost_unreported = Some(issue.clone());
                    out.report(RunEvent::CostUnreported { issue: issue.clone() });
                }
                let cost = reported.unwrap_or(0);
                out.defer(Event::AgentExited {
                    issue: issue.clone(),
                    attempt,
                    code: end.code,
                    signal: end.signal,
                    duration_ms: end.duration_ms,
                    timed_out: end.timed_out,
                    usage,
                    session: end.session.clone(),
                });
                self.phase(&issue, Phase::Exited, &mut out);
                out.act(Action::ReleaseFileLocks { issue: issue.clone(), attempt });
                self.spend(&issue, cost, &mut out);
                self.after_exit(now, &issue, &end, &mut out);
            }
            Input::BranchLooked { issue, result } => self.on_branch(now, &issue, result, &mut out),
            Input::CheckDone { issue, attempt, passed, code, duration_ms } => {
                let command = self.rules.check.clone().unwrap_or_default();
                out.defer(if passed {
                    Event::CheckPassed { issue: issue.clone(), attempt, command: command.clone(), duration_ms }
                } else {
                    Event::CheckFailed { issue: issue.clone(), attempt, command: command.clone(), code, duration_ms }
                });
                self.phase(&issue, Phase::Checked, &mut out);
                if self.stop == StopLevel::Now {
                    self.give_up(&issue, ReleaseReason::Shutdown, "stopped (bdp stop --now)", false, &mut out);
                } else if passed {
                    self.merge(&issue, &mut out);
                } else {
                    let how = code.map_or("was stopped".to_string(), |c| format!("exited {c}"));
                    self.failed_attempt(now, &issue, &format!("the check `{command}` {how}"), false, &mut out);
                }
            }
            Input::ReviewDone { issue, attempt, result } => self.on_review(now, &issue, attempt, result, &mut out),
            Input::WorktreeReset { issue, result } => {
                let Some(held) = self.held.get_mut(&issue) else { return out.0 };
                let backoff = held.backoff;
                match result {
                    Ok(()) if self.stop != StopLevel::None => {
                        self.give_up(&issue, ReleaseReason::Shutdown, STOPPED_BEFORE_RETRY, false, &mut out);
                    }
                    Ok(()) => {
                        held.stage = Stage::BackingOff;
                        out.act(Action::SetTimer { at: now + backoff, timer: Timer::Retry(issue) });
                    }
                    Err(e) => {
                        let detail = format!("{}; its worktree could not be reset for a retry: {e}", held.why);
                        self.give_up(&issue, ReleaseReason::Failed, &detail, true, &mut out);
                    }
                }
            }
            Input::MergeDone { issue, outcome } => self.on_merged(now, &issue, outcome, &mut out),
            Input::ClosesDone { results } => {
                for (id, result) in results {
                    self.on_close_done(now, &id, result, &mut out);
                }
            }
            Input::GaveBack { issue, result } => self.on_gave_back(now, &issue, result, &mut out),
            Input::Removed { issue, worktree, branch } => {
                let Some(held) = self.held.get(&issue) else { return out.0 };
                let (path, branch_name) = held.worktree.clone().unwrap_or_default();
                match worktree {
                    Ok(()) => {
                        out.defer(Event::WorktreeRemoved { issue: issue.clone(), path });
                        if let Err(error) = branch {
                            out.report(RunEvent::Left {
                                issue: issue.clone(),
                                what: "branch",
                                name: branch_name,
                                error,
                            });
                        }
                    }
                    Err(error) => {
                        out.report(RunEvent::Left { issue: issue.clone(), what: "worktree", name: path, error })
                    }
                }
                self.finish_release(&issue, &mut out);
            }
            Input::LabelsDone { results } => {
                for (id, change, result) in results {
                    // The change was taken as made when it went out. When it failed, the tracker may still
                    // have the labels it meant to remove: the next change removes them too.
                    if result.is_err()
                        && let Some(issue) = self.issue_mut(&id)
                    {
                        for label in change.remove {
                            if !issue.labels.contains(&label) {
                                issue.labels.push(label);
                            }
                        }
                    }
                }
            }
            Input::TimerFired(Timer::Retry(issue)) => {
                if self.held.get(&issue).is_none_or(|h| h.stage != Stage::BackingOff) {
                    return out.0;
                }
                if self.stop != StopLevel::None {
                    self.give_up(&issue, ReleaseReason::Shutdown, STOPPED_BEFORE_RETRY, false, &mut out);
                } else {
                    self.spawn(vec![issue], &mut out);
                }
            }
            Input::TimerFired(Timer::Tracker) => self.tend_outage(now, &mut out),
            Input::StopAsked(level) => self.request_stop(level, &mut out),
            Input::TakeOver { issue } => self.take_over(now, &issue, &mut out),
            Input::Resume { issue, resume } => self.resume(now, &issue, resume, &mut out),
        }
        out.0
    }

    // ----- claiming -----

    /// What claiming depends on now, with `picked` issues about to be claimed.
    fn claim_gate(&self, picked: usize) -> ClaimGate {
        ClaimGate {
            stop: self.stop,
            tracker_down: self.tracker_down(),
            claims_made: self.claims_made,
            picked,
            max_issues: self.rules.max_issues,
        }
    }

    /// Whether `--max-issues` alone allows another claim.
    fn can_start_more(&self) -> bool {
        may_claim(ClaimGate { stop: StopLevel::None, tracker_down: false, ..self.claim_gate(0) })
    }

    fn read_is_stale(&self, now: Ms) -> bool {
        self.read_at.is_none_or(|at| now.saturating_sub(at) > self.rules.refresh_after)
    }

    /// Picks what fits (free slots, ready issues, room on the machine) and claims it, or ends the run when
    /// nothing runs and nothing more can start.
    fn fill(&mut self, now: Ms, out: &mut Out) {
        let machine_busy = self.machine_busy.clone();
        if self.finished {
            return;
        }
        if self.reading {
            // What the tracker holds now comes with the read that is out: fill then.
            self.fill_after_read = true;
            return;
        }
        let mut picked: Vec<String> = Vec::new();
        if may_claim(self.claim_gate(0)) {
            while self.held.len() + self.claiming.len() + picked.len() < self.rules.agents
                && may_claim(self.claim_gate(self.claiming.len() + picked.len()))
            {
                if !(self.held.is_empty() && picked.is_empty())
                    && let Some(why) = &machine_busy
                {
                    if self.busy_note.as_ref() != Some(why) {
                        out.report(RunEvent::MachineBusy { why: why.clone() });
                        self.busy_note = Some(why.clone());
                    }
                    break;
                }
                self.busy_note = None;
                if self.queue.is_empty() && self.read_is_stale(now) && picked.is_empty() {
                    // Others may have changed the tracker: read it, then fill again.
                    self.read_tracker(out);
                    self.fill_after_read = true;
                    return;
                }
                let Some(id) = self.next_candidate(&picked, out) else { break };
                if !picked.contains(&id) {
                    picked.push(id);
                }
            }
        }
        if !picked.is_empty() {
            self.claim(picked, out);
            return;
        }
        if !self.held.is_empty() || !self.claiming.is_empty() {
            return;
        }
        if self.stop != StopLevel::None || !self.can_start_more() {
            self.finished = true;
            return;
        }
        if self.tracker_down() {
            // Nothing runs and nothing can be claimed: wait for the tracker (or the outage limit).
            return;
        }
        if !self.looked_again {
            // Nothing to pick: look at the tracker once more before calling it done.
            self.looked_again = true;
            self.fill_after_read = true;
            self.read_tracker(out);
            return;
        }
        if self.claims_made == 0 {
            self.outcome.nothing_ready = Some(self.why_nothing_ready());
        }
        self.finished = true;
    }

    fn on_read(
        &mut self,
        now: Ms,
        result: Result<Vec<crate::plan::Issue>, String>,
        at: jiff::Timestamp,
        out: &mut Out,
    ) {
        let fill = std::mem::take(&mut self.fill_after_read);
        self.reading = false;
        match result {
            Ok(mut issues) => {
                // The phase labels of the issues this run holds are bdp's alone, and a label write sent after
                // this read went out is taken as made already: the model's are newer than the read's.
                for issue in issues.iter_mut().filter(|i| self.held.contains_key(&i.id)) {
                    if let Some(known) = self.issues.iter().find(|k| k.id == issue.id) {
                        issue.labels.retain(|l| !l.starts_with("phase:"));
                        issue.labels.extend(known.labels.iter().filter(|l| l.starts_with("phase:")).cloned());
                    }
                }
                self.issues = issues;
                self.read_at = Some(now);
                self.read_ts = at;
                self.dirty = true;
                if let Some(outage) = self.outage.take() {
                    let down = now.saturating_sub(ms(outage.since));
                    out.report(RunEvent::TrackerBack { down, waiting: self.waiting.len() });
                    out.defer(Event::TrackerBack { down_ms: down, waiting: self.waiting.len() as u32 });
                    self.make_waiting_writes(out);
                }
                if fill {
                    self.fill(now, out);
                }
            }
            Err(e) => {
                if let Some(o) = &mut self.outage {
                    o.failed_again(clock(now));
                }
                self.tracker_failed(now, "reading the tracker", &e, out);
            }
        }
    }

    /// The next ready issue in plan order that this run may take beside those it runs and `picked`. One
    /// held back by what it touches stays queued for a later fill.
    fn next_candidate(&mut self, picked: &[String], out: &mut Out) -> Option<String> {
        if self.dirty {
            let order = super::order::run_order(&self.issues, &self.rules, self.read_ts);
            self.queue = order.into_iter().map(|i| self.issues[i].id.clone()).collect();
            self.dirty = false;
        }
        let mut at = 0;
        while at < self.queue.len() {
            let id = self.queue[at].clone();
            if !self.pickable(&id) {
                self.queue.remove(at);
                continue;
            }
            if let Some(why) = self.held_back_by(&id, picked) {
                if self.held_back.get(&id) != Some(&why) {
                    out.report(RunEvent::HeldBack { issue: id.clone(), why: why.clone() });
                    self.held_back.insert(id, why);
                }
                at += 1;
                continue;
            }
            self.held_back.remove(&id);
            return self.queue.remove(at);
        }
        None
    }

    /// Why `id` may not start now (`crate::filelock::zones`): a path or zone it shares with an issue this
    /// run holds or is claiming (or `picked`), or an older issue that goes first in a sequential zone.
    fn held_back_by(&self, id: &str, picked: &[String]) -> Option<String> {
        use crate::filelock::zones::{collision, declared, waits_for};
        let find = |id: &str| self.issues.iter().find(|i| i.id == id);
        let issue = find(id)?;
        let mine = declared(issue).paths;
        if mine.is_empty() {
            return None;
        }
        let busy: Vec<&String> = self.held.keys().chain(self.claiming.iter()).chain(picked.iter()).collect();
        let mut runnable = Vec::new();
        for other in busy.iter().filter(|o| o.as_str() != id) {
            let Some(o) = find(other) else { continue };
            let theirs = declared(o).paths;
            if let Some(why) = collision(&mine, &theirs, &self.rules.zones) {
                return Some(format!("{why} with {other}, which runs"));
            }
            runnable.push((o, theirs));
        }
        if crate::filelock::zones::sequential_zones(&mine, &self.rules.zones).is_empty() {
            return None;
        }
        for queued in self.queue.iter().filter(|q| q.as_str() != id && self.pickable(q)) {
            if let Some(o) = find(queued) {
                runnable.push((o, declared(o).paths));
            }
        }
        let view: Vec<(&crate::plan::Issue, &[crate::filelock::LockPath])> =
            runnable.iter().map(|(i, p)| (*i, p.as_slice())).collect();
        waits_for(issue, &mine, &view, &self.rules.zones)
            .map(|(first, zone)| format!("{} goes first in the sequential zone {zone}", first.id))
    }

    fn pickable(&self, id: &str) -> bool {
        !self.skip.contains(id)
            && !self.held.contains_key(id)
            && !self.claiming.contains(id)
            && self.state.issues.get(id).is_none_or(|i| i.claim.is_none())
    }

    /// Claims the issues: those with the same label change in one call.
    fn claim(&mut self, ids: Vec<String>, out: &mut Out) {
        let groups = grouped(ids.into_iter().map(|id| (self.phase_label_change(&id, Phase::Claimed), id)));
        for (labels, ids) in groups {
            self.claiming.extend(ids.iter().cloned());
            out.act(Action::Claim { ids, labels });
        }
    }

    fn on_claimed(&mut self, now: Ms, results: Vec<(String, Result<(), WriteError>)>, out: &mut Out) {
        let mut claimed = Vec::new();
        for (id, result) in results {
            self.claiming.remove(&id);
            match result {
                Ok(()) => {
                    let labels = self.phase_label_change(&id, Phase::Claimed);
                    out.defer(Event::IssueClaimed { issue: id.clone(), actor: self.rules.actor.clone() });
                    let mut title = String::new();
                    let actor = self.rules.actor.clone();
                    if let Some(issue) = self.issue_mut(&id) {
                        issue.status = "in_progress".into();
                        issue.assignee = Some(actor);
                        labels.apply(&mut issue.labels);
                        title.clone_from(&issue.title);
                    }
                    self.hold(now, &id, title);
                    self.take_lock(&id, out);
                    self.claims_made += 1;
                    self.looked_again = false;
                    // The order of the others stands: a claim blocks or unblocks nothing (only a close does).
                    claimed.push(id);
                }
                // The tracker said no to this issue: leave it to whoever has it.
                Err(WriteError::Refused(why) | WriteError::NotFound(why)) => {
                    out.report(RunEvent::Skipped { issue: id.clone(), why });
                    self.skip.insert(id);
                }
                // The tracker does not work: the issue stays a candidate for when it does.
                Err(WriteError::Failed(e)) => {
                    self.tracker_failed(now, &format!("claiming {id}"), &e, out);
                    self.dirty = true;
                }
            }
        }
        if self.stop != StopLevel::None {
            // The stop came while the tracker answered: recorded, then given back.
            out.flush(Vec::new());
            for id in claimed {
                self.give_up(&id, ReleaseReason::Shutdown, "stopped before the agent started", false, out);
            }
            return;
        }
        match self.rules.isolation {
            Isolation::Worktree => {
                for id in claimed {
                    self.make_worktree(&id, out);
                }
            }
            Isolation::None => self.spawn(claimed, out),
        }
    }

    /// Reads the tracker, unless a read is out already (its answer serves).
    fn read_tracker(&mut self, out: &mut Out) {
        if !self.reading {
            self.reading = true;
            out.act(Action::ReadTracker);
        }
    }

    /// Starts holding an issue: the attempts it had so far are the log's.
    fn hold(&mut self, now: Ms, id: &str, title: String) {
        let issue = self.state.issues.get(id);
        let claim = issue.and_then(|i| i.claim.as_ref());
        self.held.insert(
            id.to_string(),
            Held {
                title,
                since: now,
                stage: Stage::Claimed,
                attempt: issue.map_or(0, |i| i.attempts),
                made: claim.map_or(0, |c| c.attempts_made()),
                worktree: claim.and_then(|c| c.worktree.as_ref()).map(|w| (w.path.clone(), w.branch.clone())),
                head: None,
                why: String::new(),
                backoff: 0,
                resume: None,
                out_of_context: false,
                free_attempt: false,
                approved: false,
                close: None,
                release: None,
                give_back: LabelChange::default(),
                locked: false,
                look_for_head: false,
            },
        );
    }

    /// Takes the issue's lock (its file, and the lock in the log); a lock left by a holder that is gone is
    /// broken first.
    fn take_lock(&mut self, id: &str, out: &mut Out) {
        let name = issue_lock(id);
        let pid = self.rules.pid;
        if let Some(h) = self.held.get_mut(id) {
            h.locked = true;
        }
        match self.state.locks.get(&name) {
            Some(held) if held.holder_pid == pid => return,
            Some(held) => out.defer(Event::LockBroken {
                lock: name.clone(),
                reason: format!("its holder, pid {}, is gone; taken over by pid {pid}", held.holder_pid),
            }),
            None => {}
        }
        out.act(Action::WriteLockFile { issue: id.to_string() });
        out.defer(Event::LockAcquired { lock: name, holder_pid: pid, issue: Some(id.to_string()) });
    }

    // ----- one attempt -----

    fn make_worktree(&mut self, id: &str, out: &mut Out) {
        if let Some(h) = self.held.get_mut(id) {
            h.stage = Stage::MakingWorktree;
            h.worktree = None;
            out.act(Action::MakeWorktree { issue: id.to_string() });
        }
    }

    fn on_worktree_ready(&mut self, id: &str, result: Result<(String, String), String>, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        held.stage = Stage::Claimed;
        let (path, branch) = match result {
            Ok(made) => made,
            Err(e) => {
                let detail = format!("cannot create the worktree: {e}");
                return self.give_up(id, ReleaseReason::Failed, &detail, false, out);
            }
        };
        held.worktree = Some((path.clone(), branch.clone()));
        out.defer(Event::WorktreeCreated { issue: id.to_string(), path, branch, base: self.rules.base.clone() });
        self.phase(id, Phase::WorktreeReady, out);
        if self.stop != StopLevel::None {
            // Recorded first, so the release removes it.
            out.flush(Vec::new());
            return self.give_up(id, ReleaseReason::Shutdown, "stopped before the agent started", false, out);
        }
        self.spawn(vec![id.to_string()], out);
    }

    /// Asks for the next attempt of each issue (the executor makes every spawn intent durable in one append).
    fn spawn(&mut self, ids: Vec<String>, out: &mut Out) {
        let mut items = Vec::new();
        for id in ids {
            if let Some(h) = self.held.get_mut(&id) {
                h.attempt += 1;
                if !std::mem::take(&mut h.free_attempt) {
                    h.made += 1;
                }
                h.approved = false;
                h.stage = Stage::Spawning;
                items.push((id, h.attempt));
            }
        }
        if !items.is_empty() {
            out.act(Action::Spawn { items });
        }
    }

    /// An agent runs for the issue: it is shown, and its phase is `running`.
    fn watch(&mut self, id: &str, attempt: u32, adopted: Option<u32>, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        held.stage = Stage::Running;
        held.attempt = attempt;
        let title = held.title.clone();
        out.report(RunEvent::Started { issue: id.to_string(), attempt, title, adopted });
        self.phase(id, Phase::Running, out);
    }

    /// What an attempt's end leads to: a retry or giving up, or the check, the merge queue and the close.
    fn after_exit(&mut self, now: Ms, id: &str, end: &AgentEnd, out: &mut Out) {
        if !self.held.contains_key(id) {
            return;
        }
        if end.stopped {
            return self.give_up(id, ReleaseReason::Shutdown, "stopped (bdp stop --now)", false, out);
        }
        let cut_short = end.timed_out || end.stalled.is_some() || end.signal.is_some();
        let out_of_context = end.context_exhausted && !end.timed_out;
        if let Some(held) = self.held.get_mut(id) {
            held.out_of_context = out_of_context;
            // A full context is not resumed: the next attempt starts a new one, with a summary.
            held.resume = end.session.clone().filter(|_| cut_short && !out_of_context && self.rules.resumes);
        }
        if end.success()
            && let Some(why) = &end.hook_failed
        {
            return self.failed_attempt(now, id, why, false, out);
        }
        if !end.success()
            && let (Some(limit), Some(&spent)) = (self.rules.max_issue_cost, self.issue_spent.get(id))
            && spent >= limit
        {
            let why = end.why_failed(std::time::Duration::from_millis(self.rules.timeout));
            let detail = format!("{why}; its budget is spent: {} of {}", usd(spent), usd(limit));
            return self.give_up(id, ReleaseReason::Failed, &detail, true, out);
        }
        if !end.success() {
            let why = end.why_failed(std::time::Duration::from_millis(self.rules.timeout));
            if !end.timed_out && self.held.get(id).is_some_and(|h| h.attempt == 1) {
                self.crash_loop_guard(id, &why, out);
            }
            return self.failed_attempt(now, id, &why, end.timed_out, out);
        }
        match self.rules.isolation {
            Isolation::None => self.land(now, id, Work::InPlace, out),
            Isolation::Worktree => self.look_at_branch(id, false, out),
        }
    }

    fn look_at_branch(&mut self, id: &str, for_head: bool, out: &mut Out) {
        if let Some(h) = self.held.get_mut(id) {
            h.stage = Stage::LookingAtBranch;
            h.look_for_head = for_head;
            out.act(Action::LookAtBranch { issue: id.to_string() });
        }
    }

    fn on_branch(&mut self, now: Ms, id: &str, result: Result<BranchFacts, String>, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        let for_head = std::mem::take(&mut held.look_for_head);
        match result {
            Ok(facts) => {
                held.head = Some(facts.head);
                if for_head {
                    self.merge(id, out);
                } else {
                    self.land(now, id, Work::Branch { ahead: facts.ahead, dirty: facts.dirty }, out);
                }
            }
            Err(e) if for_head => self.failed_attempt(now, id, &format!("cannot read its branch: {e}"), false, out),
            Err(e) => self.failed_attempt(now, id, &format!("cannot look at its branch: {e}"), false, out),
        }
    }

    fn land(&mut self, now: Ms, id: &str, work: Work, out: &mut Out) {
        match landing(work, self.rules.check.is_some()) {
            Landing::Close(reason) => self.close(id, &reason, false, out),
            Landing::Failed(why) => self.failed_attempt(now, id, &why, false, out),
            Landing::Check => {
                let Some(held) = self.held.get_mut(id) else { return };
                held.stage = Stage::Checking;
                let attempt = held.attempt;
                out.report(RunEvent::phase(id, "checking"));
                let command = self.rules.check.clone().unwrap_or_default();
                out.act(Action::RunCheck { issue: id.to_string(), attempt, command });
            }
            Landing::Merge => self.merge(id, out),
        }
    }

    /// An attempt failed: retry within the budget (not while stopping), else give the issue back.
    fn failed_attempt(&mut self, now: Ms, id: &str, why: &str, timed_out: bool, out: &mut Out) {
        if let Some(conflict) = self.resolving_conflict(id) {
            // Only when the attempt to resolve the conflict fails too is it a person's.
            let release = Release {
                reason: ReleaseReason::Conflict,
                detail: format!(
                    "merge conflict in {}; the attempt to resolve it failed: {why}",
                    conflict.files.join(", ")
                ),
                give_back: GiveBack::Labelled(CONFLICT_LABEL),
                keep_branch: true,
                ending: Ending::Conflict,
                shown_as: Ending::Conflict,
                branch_kept: Some(branch_name(id)),
                show_took: false,
                said: None,
            };
            return self.release(id, release, out);
        }
        let Some(held) = self.held.get(id) else { return };
        let made = held.made.max(1);
        let stopping = self.stop != StopLevel::None;
        let rules = &self.rules;
        let decision = after_failure(why, timed_out, made, rules.retries, stopping, |n| {
            std::time::Duration::from_millis(rules.backoff(n))
        });
        let backoff = match decision {
            AfterFailure::GiveUp { reason, detail, label } => return self.give_up(id, reason, &detail, label, out),
            AfterFailure::Retry { backoff, .. } => ms(backoff),
        };
        let next = held.attempt + 1;
        let keep = held.out_of_context || self.rules.retry_from == RetryFrom::Last;
        let carry_on = CarryOn { resume: held.resume.clone(), keep, ..CarryOn::default() };
        out.defer(Event::RetryScheduled {
            issue: id.to_string(),
            next_attempt: next,
            backoff_ms: backoff,
            reason: why.to_string(),
            carry_on: carry_on.or_none(),
        });
        out.report(RunEvent::Retry {
            issue: id.to_string(),
            why: why.to_string(),
            attempt: made + 1,
            of: self.rules.retries + 1,
            backoff,
        });
        let worktree = self.rules.isolation == Isolation::Worktree;
        let Some(held) = self.held.get_mut(id) else { return };
        held.why = why.to_string();
        held.backoff = backoff;
        if worktree {
            held.stage = Stage::Resetting;
            out.act(Action::ResetWorktree { issue: id.to_string(), keep });
        } else {
            held.stage = Stage::BackingOff;
            out.act(Action::SetTimer { at: now + backoff, timer: Timer::Retry(id.to_string()) });
        }
    }

    // ----- landing the work -----

    /// Into the merge queue: one branch at a time, so merges never race.
    fn merge(&mut self, id: &str, out: &mut Out) {
        if self.needs_review(id) {
            return self.review(id, out);
        }
        let Some(held) = self.held.get(id) else { return };
        let branch = branch_name(id);
        if self.rules.merge == MergeStrategy::None {
            let Some(head) = held.head.clone() else { return self.look_at_branch(id, true, out) };
            let reason = format!("bdp: work is on branch {branch} at {} (--merge none)", short(&head));
            return self.close(id, &reason, true, out);
        }
        if self.merging.is_some() {
            out.report(RunEvent::phase(id, "waiting to merge"));
            // Oldest claim first, so none starves (a branch back from resolving a conflict goes before
            // newer ones).
            let since = held.since;
            let at = self.merge_queue.iter().position(|q| self.held.get(q).is_some_and(|h| h.since > since));
            self.merge_queue.insert(at.unwrap_or(self.merge_queue.len()), id.to_string());
            if let Some(h) = self.held.get_mut(id) {
                h.stage = Stage::MergeQueued;
            }
            return;
        }
        self.start_merge(id, out);
    }

    fn start_merge(&mut self, id: &str, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        held.stage = Stage::Merging;
        let title = held.title.clone();
        out.flush(vec![Event::MergeStarted {
            issue: id.to_string(),
            branch: branch_name(id),
            base: self.rules.base.clone(),
            strategy: self.rules.merge,
        }]);
        out.report(RunEvent::phase(id, "merging"));
        self.merging = Some(id.to_string());
        out.act(Action::Merge { issue: id.to_string(), strategy: self.rules.merge, title });
    }

    /// A merge ended: record it and close, or give the issue back; then the next branch in the queue.
    fn on_merged(&mut self, now: Ms, id: &str, outcome: Result<MergeOutcome, String>, out: &mut Out) {
        if self.merging.as_deref() == Some(id) {
            self.merging = None;
        }
        if self.held.contains_key(id) {
            self.merge_landed(now, id, outcome, out);
        }
        while let Some(next) = self.merge_queue.pop_front() {
            if !self.held.contains_key(&next) {
                continue;
            }
            if self.stop == StopLevel::Now {
                let why = "stopped (bdp stop --now) before its merge";
                self.give_up(&next, ReleaseReason::Shutdown, why, false, out);
                continue;
            }
            return self.start_merge(&next, out);
        }
    }

    /// The tracker's close reason of work merged as `commit`.
    fn merged_reason(&self, commit: &str) -> String {
        format!("bdp: merged {} into {}", short(commit), self.rules.base)
    }

    fn merge_landed(&mut self, now: Ms, id: &str, outcome: Result<MergeOutcome, String>, out: &mut Out) {
        let branch = branch_name(id);
        // git failing for this branch (not a conflict) is this issue's problem alone: it is given back with
        // the reason, its branch kept.
        let (detail, reason, label, ending) = match outcome {
            Ok(MergeOutcome::Merged { commit }) => {
                out.defer(Event::Merged { issue: id.to_string(), commit: commit.clone() });
                self.phase(id, Phase::Merged, out);
                let reason = self.merged_reason(&commit);
                return self.close(id, &reason, false, out);
            }
            Ok(MergeOutcome::Conflicted { base_commit, files }) => {
                let detail = format!("merge conflict in {}", files.join(", "));
                if self.rules.on_conflict == OnConflict::Resolve && self.stop == StopLevel::None && !self.resolving(id)
                {
                    out.defer(Event::MergeConflicted { issue: id.to_string(), detail: detail.clone() });
                    return self.resolve_conflict(now, id, Conflict { base_commit, files }, &detail, out);
                }
                let detail = match self.resolving(id) {
                    true => format!("{detail}, again after an attempt to resolve it"),
                    false => detail,
                };
                (detail, ReleaseReason::Conflict, CONFLICT_LABEL, Ending::Conflict)
            }
            Ok(MergeOutcome::Refused { reason }) => (reason, ReleaseReason::Conflict, CONFLICT_LABEL, Ending::Conflict),
            Err(e) => (format!("the merge failed: {e}"), ReleaseReason::Failed, FAILED_LABEL, Ending::Failed),
        };
        out.defer(Event::MergeConflicted { issue: id.to_string(), detail: detail.clone() });
        let release = Release {
            reason,
            detail,
            give_back: GiveBack::Labelled(label),
            keep_branch: true,
            ending,
            shown_as: ending,
            branch_kept: Some(branch),
            show_took: false,
            said: None,
        };
        self.release(id, release, out);
    }

    // ----- the review gate -----

    /// A reviewer is set and has not approved the current attempt's work.
    fn needs_review(&self, id: &str) -> bool {
        let claim = self.state.issues.get(id).and_then(|i| i.claim.as_ref());
        let logged = claim.and_then(|c| c.attempt.as_ref()).is_some_and(|a| a.verdict == Some(Verdict::Approve));
        self.rules.review && !logged && !self.held.get(id).is_some_and(|h| h.approved)
    }

    /// The reviews of this claim so far (as the log has them).
    fn reviews(&self, id: &str) -> u32 {
        self.state.issues.get(id).and_then(|i| i.claim.as_ref()).map_or(0, |c| c.reviews)
    }

    fn review(&mut self, id: &str, out: &mut Out) {
        let round = self.reviews(id) + 1;
        let Some(held) = self.held.get_mut(id) else { return };
        held.stage = Stage::Reviewing;
        out.report(RunEvent::phase(id, "reviewing"));
        out.act(Action::RunReview { issue: id.to_string(), attempt: held.attempt, round });
    }

    /// A verdict: approved work goes to the merge queue; changes requested start one more attempt with
    /// the review in its prompt (up to `--review-rounds`), then the issue goes back with its branch kept.
    fn on_review(&mut self, now: Ms, id: &str, attempt: u32, result: Result<(Verdict, String), String>, out: &mut Out) {
        if !self.held.contains_key(id) {
            return;
        }
        let (verdict, comments) = match result {
            Ok(verdict) => verdict,
            Err(why) => return self.failed_attempt(now, id, &format!("the review failed: {why}"), false, out),
        };
        let round = self.reviews(id) + 1;
        out.defer(Event::ReviewVerdict { issue: id.to_string(), attempt, round, verdict, comments: comments.clone() });
        let first = comments.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string();
        let again = verdict == Verdict::ChangesRequested && round <= self.rules.review_rounds;
        let next = again.then_some(attempt + 1);
        out.report(RunEvent::Reviewed { issue: id.to_string(), round, verdict, comments: first.clone(), next });
        if self.stop == StopLevel::Now {
            return self.give_up(id, ReleaseReason::Shutdown, "stopped (bdp stop --now)", false, out);
        }
        match verdict {
            Verdict::Approve => {
                if let Some(held) = self.held.get_mut(id) {
                    held.approved = true;
                }
                self.merge(id, out)
            }
            Verdict::ChangesRequested if again && self.stop == StopLevel::None => {
                let Some(held) = self.held.get_mut(id) else { return };
                let reason = format!("the review requested changes: {first}");
                out.defer(Event::RetryScheduled {
                    issue: id.to_string(),
                    next_attempt: attempt + 1,
                    backoff_ms: 0,
                    reason: reason.clone(),
                    carry_on: Some(CarryOn { keep: true, review: Some(comments), ..CarryOn::default() }),
                });
                held.free_attempt = true;
                held.why = reason;
                held.backoff = 0;
                held.stage = Stage::BackingOff;
                out.act(Action::SetTimer { at: now, timer: Timer::Retry(id.to_string()) });
            }
            Verdict::ChangesRequested => {
                // Stopping: no new attempt, but the issue is not the agent's failure (given back as it is,
                // unlabelled). Out of rounds: a person's (labelled). Either way the work stays on its branch.
                let (detail, reason, give_back, ending) = match again {
                    true => (
                        format!("the review requested changes, and the run stops: {first}"),
                        ReleaseReason::Shutdown,
                        GiveBack::Open,
                        Ending::Released,
                    ),
                    false => (
                        format!("the review still requests changes after {round} reviews: {first}"),
                        ReleaseReason::Failed,
                        GiveBack::Labelled(FAILED_LABEL),
                        Ending::Failed,
                    ),
                };
                let release = Release {
                    reason,
                    detail,
                    give_back,
                    keep_branch: true,
                    ending,
                    shown_as: ending,
                    branch_kept: Some(branch_name(id)),
                    show_took: false,
                    said: None,
                };
                self.release(id, release, out);
            }
        }
    }

    /// The conflict the issue's current attempt is to resolve, when it is that attempt.
    fn resolving_conflict(&self, id: &str) -> Option<&Conflict> {
        let claim = self.state.issues.get(id)?.claim.as_ref()?;
        claim.attempt.as_ref()?.carries_on.as_ref()?.conflict.as_ref()
    }

    /// Whether the issue's current attempt is the one that resolves its branch's conflict with the base.
    fn resolving(&self, id: &str) -> bool {
        self.resolving_conflict(id).is_some()
    }

    /// `--on-conflict resolve`: one more attempt on the branch as it is, to merge the base in and resolve
    /// the conflict; then the check and the merge queue as for any attempt.
    fn resolve_conflict(&mut self, now: Ms, id: &str, conflict: Conflict, detail: &str, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        let files = conflict.files.clone();
        out.defer(Event::RetryScheduled {
            issue: id.to_string(),
            next_attempt: held.attempt + 1,
            backoff_ms: 0,
            reason: detail.to_string(),
            carry_on: Some(CarryOn { keep: true, conflict: Some(conflict), ..CarryOn::default() }),
        });
        out.report(RunEvent::Resolving { issue: id.to_string(), files, attempt: held.attempt + 1 });
        held.free_attempt = true;
        held.why = detail.to_string();
        held.backoff = 0;
        held.stage = Stage::BackingOff;
        out.act(Action::SetTimer { at: now, timer: Timer::Retry(id.to_string()) });
    }

    /// Closes the issue when the dispatch step ends (with the other closes of the step that have the same
    /// reason, in one tracker call), then releases it.
    fn close(&mut self, id: &str, reason: &str, keep_branch: bool, out: &mut Out) {
        let due = CloseDue { id: id.to_string(), reason: reason.to_string(), keep_branch };
        if self.issue(id).is_some_and(|i| i.status == "closed") {
            // A close made before a crash and not recorded: never close twice.
            out.defer(Event::RepairApplied {
                kind: "close_unrecorded".into(),
                issue: Some(id.to_string()),
                action: "the tracker has it closed already; not closed again".into(),
            });
            return self.closed(id, due, out);
        }
        let Some(held) = self.held.get_mut(id) else { return };
        held.stage = Stage::Closing;
        out.report(RunEvent::phase(id, "closing"));
        self.closes_due.push(due);
    }

    /// Makes the closes due, those with the same reason in one call.
    fn flush_closes(&mut self, out: &mut Out) {
        let due = std::mem::take(&mut self.closes_due);
        for (reason, members) in grouped(due.into_iter().map(|c| (c.reason.clone(), c))) {
            if self.tracker_down() {
                for c in members {
                    self.wait_for_tracker(Waiting::Close(c), out);
                }
                continue;
            }
            let ids = members.iter().map(|c| c.id.clone()).collect();
            for c in members {
                if let Some(h) = self.held.get_mut(&c.id) {
                    h.close = Some(c);
                }
            }
            out.act(Action::Close { ids, reason });
        }
    }

    fn on_close_done(&mut self, now: Ms, id: &str, result: Result<(), WriteError>, out: &mut Out) {
        let Some(due) = self.held.get_mut(id).and_then(|h| h.close.take()) else { return };
        match result {
            Ok(()) => self.closed(id, due, out),
            Err(WriteError::NotFound(_)) => {
                let detail = format!("{}; the tracker no longer has the issue, so it was not closed", due.reason);
                let release = Release {
                    reason: ReleaseReason::Abandoned,
                    detail,
                    give_back: GiveBack::No,
                    keep_branch: due.keep_branch,
                    ending: Ending::Released,
                    shown_as: Ending::Released,
                    branch_kept: None,
                    show_took: false,
                    said: None,
                };
                self.release(id, release, out);
            }
            Err(WriteError::Failed(e) | WriteError::Refused(e)) => {
                // The work is merged and recorded; the close waits for the tracker.
                self.tracker_failed(now, &format!("closing {id}"), &e, out);
                self.wait_for_tracker(Waiting::Close(due), out);
            }
        }
    }

    /// The tracker has the issue closed: release it.
    fn closed(&mut self, id: &str, due: CloseDue, out: &mut Out) {
        if let Some(issue) = self.issue_mut(id) {
            issue.status = "closed".into();
        }
        self.phase(id, Phase::Closed, out);
        let release = Release {
            reason: ReleaseReason::Done,
            detail: due.reason,
            give_back: GiveBack::No,
            keep_branch: due.keep_branch,
            ending: Ending::Done,
            shown_as: Ending::Done,
            branch_kept: None,
            show_took: true,
            said: None,
        };
        self.release(id, release, out);
    }

    // ----- giving back -----

    /// Gives the issue back to the tracker as open (labelled `bdp:failed` when `label`).
    fn give_up(&mut self, id: &str, reason: ReleaseReason, detail: &str, label: bool, out: &mut Out) {
        let ending = Ending::of(reason);
        let release = Release {
            reason,
            detail: detail.to_string(),
            give_back: if label { GiveBack::Labelled(FAILED_LABEL) } else { GiveBack::Open },
            keep_branch: false,
            ending,
            shown_as: ending,
            branch_kept: None,
            show_took: false,
            said: None,
        };
        self.release(id, release, out);
    }

    /// Releases the issue: gives it back in the tracker when asked (with the phase label due and the label
    /// asked for, in the same write), then removes its worktree (and its branch unless kept), then records the
    /// release. When the tracker cannot take the give-back, the whole release waits for it.
    fn release(&mut self, id: &str, release: Release, out: &mut Out) {
        let labels = match (release.give_back, self.phase_due.get(id)) {
            (GiveBack::No, _) => None,
            (give_back, phase) => {
                let mut labels = phase.map_or_else(LabelChange::default, |&p| self.phase_label_change(id, p));
                if let GiveBack::Labelled(label) = give_back {
                    labels.add.push(label.to_string());
                }
                Some(labels)
            }
        };
        let Some(held) = self.held.get_mut(id) else { return };
        held.release = Some(release);
        match labels {
            Some(labels) => {
                held.stage = Stage::GivingBack;
                held.give_back = labels.clone();
                out.act(Action::GiveBack { issue: id.to_string(), labels });
            }
            None => self.remove_worktree(id, out),
        }
    }

    fn on_gave_back(&mut self, now: Ms, id: &str, result: Result<(), WriteError>, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        let labels = std::mem::take(&mut held.give_back);
        match result {
            Ok(()) => {
                self.phase_due.remove(id);
                if let Some(issue) = self.issue_mut(id) {
                    issue.status = "open".into();
                    issue.assignee = None;
                    labels.apply(&mut issue.labels);
                }
            }
            Err(WriteError::NotFound(_)) => out.report(RunEvent::NotInTracker { issue: id.to_string() }),
            Err(WriteError::Failed(e) | WriteError::Refused(e)) => {
                self.tracker_failed(now, &format!("giving {id} back"), &e, out);
                let release = self.held.get_mut(id).and_then(|h| h.release.take());
                if let Some(release) = release {
                    self.wait_for_tracker(Waiting::Release { id: id.to_string(), release }, out);
                }
                return;
            }
        }
        self.remove_worktree(id, out);
    }

    fn remove_worktree(&mut self, id: &str, out: &mut Out) {
        let Some(held) = self.held.get_mut(id) else { return };
        let keep_branch = held.release.as_ref().is_some_and(|r| r.keep_branch);
        match held.worktree.clone() {
            Some((path, branch)) if !self.rules.keep_worktrees => {
                held.stage = Stage::Removing;
                // What happened so far (the merge, the close) is durable before its evidence, the branch and
                // the worktree, goes: a crash in between must not leave a merge recovery cannot see.
                out.flush(Vec::new());
                out.act(Action::RemoveWorktree { issue: id.to_string(), path, branch, keep_branch });
            }
            _ => self.finish_release(id, out),
        }
    }

    /// Drops the issue's lock and records the release; the issue is done with in this run.
    fn finish_release(&mut self, id: &str, out: &mut Out) {
        let Some(held) = self.held.remove(id) else { return };
        let Some(release) = held.release else { return };
        let name = issue_lock(id);
        out.act(Action::RemoveLockFile { issue: id.to_string() });
        if held.locked || self.state.locks.contains_key(&name) {
            out.defer(Event::LockReleased { lock: name });
        }
        out.defer(Event::IssueReleased {
            issue: id.to_string(),
            reason: release.reason,
            detail: Some(release.detail.clone()),
        });
        if matches!(release.ending, Ending::Failed | Ending::Conflict) {
            self.skip.insert(id.to_string());
        }
        let label = match release.give_back {
            GiveBack::Labelled(label) => Some(label),
            _ => None,
        };
        let took = release.show_took.then(|| self.now.saturating_sub(held.since));
        out.report(RunEvent::Ended {
            issue: id.to_string(),
            ending: release.shown_as,
            detail: release.said.unwrap_or(release.detail),
            label,
            branch_kept: release.branch_kept,
            took,
        });
        // An issue given back may be taken again; a closed one changes what is ready, or its order, only if
        // it has dependencies or others depend on it. The order is worked out again (over every issue) only
        // then: for a long backlog of independent issues, once per read instead of once per issue.
        if self.issue(id).is_none_or(|i| i.status != "closed") || self.has_links(id) {
            self.dirty = true;
        }
    }

    /// Whether `id` depends on an issue or an issue depends on it (any kind of link).
    fn has_links(&self, id: &str) -> bool {
        self.issues
            .iter()
            .any(|i| (i.id == id && !i.dependencies.is_empty()) || i.dependencies.iter().any(|d| d.depends_on_id == id))
    }

    // ----- the tracker -----

    /// A tracker call failed: claims pause (said once per distinct error), and the tracker is read again later.
    fn tracker_failed(&mut self, now: Ms, what: &str, cause: &str, out: &mut Out) {
        match &mut self.outage {
            Some(outage) => {
                if outage.note(what, cause) {
                    out.report(RunEvent::TrackerStillDown { error: outage.error.clone() });
                }
            }
            None => {
                let outage = Outage::new(what, cause, clock(now));
                out.report(RunEvent::TrackerDown { error: outage.error.clone(), retry_in: ms(FIRST_DELAY) });
                out.defer(Event::TrackerDown { error: outage.error.clone() });
                self.outage = Some(outage);
            }
        }
        self.tracker_timer(now, out);
    }

    /// Sets the timer that reads a failing tracker again (or gives up on it), unless one is set already.
    fn tracker_timer(&mut self, now: Ms, out: &mut Out) {
        let Some(outage) = &self.outage else { return };
        let at = ms(outage.retry_at).min(ms(outage.since) + self.rules.tracker_outage).max(now);
        if self.tracker_timer_at.is_some_and(|t| t > now && t <= at) {
            return;
        }
        self.tracker_timer_at = Some(at);
        out.act(Action::SetTimer { at, timer: Timer::Tracker });
    }

    /// Reads the tracker again when it is time; gives up on it after `--tracker-outage`.
    fn tend_outage(&mut self, now: Ms, out: &mut Out) {
        if self.tracker_timer_at.is_some_and(|t| t <= now) {
            self.tracker_timer_at = None;
        }
        let Some(outage) = &self.outage else { return };
        match outage.next(clock(now), clock(self.rules.tracker_outage)) {
            Retry::Wait => self.tracker_timer(now, out),
            Retry::TryNow => self.read_tracker(out),
            Retry::GiveUp => {
                if self.outcome.tracker_outage.is_none() {
                    let why = format!(
                        "the tracker has not worked for {}: {}",
                        crate::text::duration(self.rules.tracker_outage),
                        outage.error
                    );
                    out.report(RunEvent::TrackerGaveUp { why: why.clone() });
                    self.outcome.tracker_outage = Some(why);
                    self.request_stop(StopLevel::Drain, out);
                }
                // What waits for the tracker is left for the next run: the log has the claim and every step so
                // far, and recovery carries on from there.
                for w in std::mem::take(&mut self.waiting) {
                    self.leave_waiting(w.issue(), out);
                }
            }
        }
    }

    fn leave_waiting(&mut self, id: &str, out: &mut Out) {
        self.held.remove(id);
        out.report(RunEvent::LeftWaiting { issue: id.to_string() });
        self.outcome.left_waiting += 1;
    }

    /// Puts a write off until the tracker works again (after the outage limit: for the next run).
    fn wait_for_tracker(&mut self, w: Waiting, out: &mut Out) {
        let id = w.issue().to_string();
        out.report(RunEvent::phase(&id, "waiting for the tracker"));
        if let Some(h) = self.held.get_mut(&id) {
            h.stage = Stage::WaitingForTracker;
        }
        if self.outcome.tracker_outage.is_some() {
            return self.leave_waiting(&id, out);
        }
        self.waiting.push(w);
    }

    /// Makes the closes and give-backs that waited, in order.
    fn make_waiting_writes(&mut self, out: &mut Out) {
        for w in std::mem::take(&mut self.waiting) {
            match w {
                Waiting::Close(c) => {
                    let (id, reason, keep) = (c.id, c.reason, c.keep_branch);
                    self.close(&id, &reason, keep, out);
                }
                Waiting::Release { id, release } => self.release(&id, release, out),
            }
        }
    }

    // ----- phases and labels -----

    /// Records a phase change (an observation, queued), shows it, and makes its label due.
    fn phase(&mut self, id: &str, phase: Phase, out: &mut Out) {
        out.defer(Event::PhaseChanged { issue: id.to_string(), phase });
        out.report(RunEvent::phase(id, phase.as_str()));
        if self.rules.phase_labels {
            self.phase_due.insert(id.to_string(), phase);
        }
    }

    /// The label change that puts `phase:PHASE` on the issue in place of the phase labels it has (as bdp last
    /// read or wrote them: nothing is read). Empty when labels are off or it is on already.
    pub fn phase_label_change(&self, id: &str, phase: Phase) -> LabelChange {
        if !self.rules.phase_labels {
            return LabelChange::default();
        }
        let new = phase_label(phase);
        let old: Vec<String> = self
            .issue(id)
            .map(|i| i.labels.iter().filter(|l| l.starts_with("phase:")).cloned().collect())
            .unwrap_or_default();
        if old == [new.clone()] {
            return LabelChange::default();
        }
        LabelChange { remove: old.into_iter().filter(|l| *l != new).collect(), add: vec![new] }
    }

    /// The phase labels due, one write per issue whatever the number of phases it went through; the same change
    /// for several issues in one call. A branch being looked at, or in the merge queue, gets its label after.
    fn flush_phase_labels(&mut self, out: &mut Out) {
        // A branch being looked at or merged moves on within moments: its label waits for where it lands. So
        // does an issue whose close is out at the tracker; one being given back has its label in the give-back.
        let merging = |id: &String| {
            self.merging.as_ref() == Some(id)
                || self.merge_queue.contains(id)
                || self
                    .held
                    .get(id)
                    .is_some_and(|h| matches!(h.stage, Stage::LookingAtBranch | Stage::Closing | Stage::GivingBack))
        };
        let due: Vec<(String, Phase)> =
            self.phase_due.iter().filter(|(id, _)| !merging(id)).map(|(i, p)| (i.clone(), *p)).collect();
        for (id, _) in &due {
            self.phase_due.remove(id);
        }
        let changes: Vec<(LabelChange, String)> = due
            .into_iter()
            .map(|(id, phase)| (self.phase_label_change(&id, phase), id))
            .filter(|(change, _)| !change.is_empty())
            .collect();
        // Taken as made, so that the next change (before this one's answer) starts from it; a failed write
        // puts the labels it meant to remove back (see `Input::LabelsDone`).
        for (change, id) in &changes {
            if let Some(issue) = self.issue_mut(id) {
                change.apply(&mut issue.labels);
            }
        }
        for (change, ids) in grouped(changes) {
            out.act(Action::ChangeLabels { ids, change });
        }
    }

    // ----- stopping -----

    /// Escalates the stop level; a second drain request means now.
    fn request_stop(&mut self, level: StopLevel, out: &mut Out) {
        let next = escalate(self.stop, level);
        if next == self.stop {
            return;
        }
        self.stop = next;
        out.report(RunEvent::Stopping { level: next, running: self.held.len() });
        if next == StopLevel::Now {
            out.act(Action::StopAll);
        }
        // A retry is a new attempt, which a stop does not start: an issue waiting for one goes back now,
        // not when its backoff ends.
        let waiting: Vec<String> =
            self.held.iter().filter(|(_, h)| h.stage == Stage::BackingOff).map(|(id, _)| id.clone()).collect();
        for id in waiting {
            self.give_up(&id, ReleaseReason::Shutdown, STOPPED_BEFORE_RETRY, false, out);
        }
    }

    /// An agent reported spending `cost` (micro-dollars) on `id`: counted for the issue and the run; once the
    /// run's `--max-cost` is reached, no more issues are claimed.
    fn spend(&mut self, id: &str, cost: u64, out: &mut Out) {
        if cost == 0 {
            return;
        }
        *self.issue_spent.entry(id.to_string()).or_default() += cost;
        self.spent += cost;
        if let Some(limit) = self.rules.max_cost
            && self.spent >= limit
            && self.outcome.budget_spent.is_none()
        {
            self.outcome.budget_spent = Some(format!("{} of {}", usd(self.spent), usd(limit)));
            out.defer(Event::ClaimsStopped {
                reason: format!("--max-cost reached: {} of {}", usd(self.spent), usd(limit)),
            });
            out.report(RunEvent::BudgetSpent { spent: self.spent, limit });
            self.request_stop(StopLevel::Drain, out);
        }
    }

    /// A first attempt failed with `why`: when the first attempts of [`CRASH_LOOP_ISSUES`] different issues
    /// failed the same way, the agent's setup is broken, not the issues. Stop claiming and drain.
    fn crash_loop_guard(&mut self, id: &str, why: &str, out: &mut Out) {
        let issues = self.first_failures.entry(why.to_string()).or_default();
        issues.insert(id.to_string());
        if issues.len() < CRASH_LOOP_ISSUES || self.outcome.crash_loop.is_some() {
            return;
        }
        let issues: Vec<String> = issues.iter().cloned().collect();
        self.outcome.crash_loop = Some(why.to_string());
        out.defer(Event::ClaimsStopped {
            reason: format!(
                "the first attempts of {} issues ({}) failed the same way: {why}",
                issues.len(),
                issues.join(", ")
            ),
        });
        out.report(RunEvent::CrashLoop { why: why.to_string(), issues });
        self.request_stop(StopLevel::Drain, out);
    }

    // ----- recovery -----

    /// Recovery keeps a claim: this run holds it, with its lock.
    fn take_over(&mut self, now: Ms, id: &str, out: &mut Out) {
        let title = self.issue(id).map(|i| i.title.clone()).unwrap_or_default();
        self.hold(now, id, title);
        self.take_lock(id, out);
    }

    fn resume(&mut self, now: Ms, id: &str, resume: Resume, out: &mut Out) {
        if !self.held.contains_key(id) {
            // A claim given up by recovery is released from here; it is not taken over.
            let Resume::Drop { .. } = resume else { return };
            self.hold(now, id, String::new());
        }
        match resume {
            Resume::Worktree if self.rules.isolation == Isolation::Worktree => self.make_worktree(id, out),
            Resume::Worktree | Resume::Spawn => self.spawn(vec![id.to_string()], out),
            Resume::AfterExit { end, .. } => self.after_exit(now, id, &end, out),
            Resume::Failed { why } => self.failed_attempt(now, id, &why, false, out),
            Resume::Merge => self.merge(id, out),
            Resume::Merged { commit } => self.merge_landed(now, id, Ok(MergeOutcome::Merged { commit }), out),
            Resume::Close { commit } => {
                let reason = self.merged_reason(&commit);
                self.close(id, &reason, false, out)
            }
            Resume::Release => {
                let release = Release {
                    reason: ReleaseReason::Done,
                    detail: "bdp: closed before bdp stopped; released by recovery".into(),
                    give_back: GiveBack::No,
                    keep_branch: false,
                    ending: Ending::Done,
                    shown_as: Ending::Done,
                    branch_kept: None,
                    show_took: false,
                    said: Some("closed before bdp stopped; released now".into()),
                };
                self.release(id, release, out);
            }
            Resume::Drop { reason, release: why } => {
                let ending = Ending::of(why);
                // Its branch is kept when a merge of it did not land (recovery recorded that first): it holds
                // work. Otherwise it is a leftover, as an audit would call it.
                let claim = self.state.issues.get(id).and_then(|i| i.claim.as_deref());
                let unmerged = claim.is_some_and(crate::state::Claim::holds_unlanded_work);
                let release = Release {
                    reason: why,
                    detail: reason,
                    give_back: GiveBack::No,
                    keep_branch: unmerged,
                    ending,
                    shown_as: Ending::Released,
                    branch_kept: None,
                    show_took: false,
                    said: None,
                };
                self.release(id, release, out);
            }
        }
    }

    // ----- why nothing ran -----

    /// One sentence on why nothing could start.
    fn why_nothing_ready(&self) -> String {
        super::order::why_nothing_ready(&self.issues, &self.rules, self.read_ts)
    }
}

/// Items grouped by key, groups and members in the order they came: the tracker writes of one dispatch step
/// that can go in one call (the same label change, the same close reason).
pub fn grouped<K: PartialEq, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<(K, Vec<V>)> {
    let mut groups: Vec<(K, Vec<V>)> = Vec::new();
    for (key, item) in items {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    groups
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
