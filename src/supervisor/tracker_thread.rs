//! The run's tracker calls (claims, closes, give-backs, phase labels, reads), made off the dispatcher's
//! thread. A bd or br call takes 50–100 ms, a slow or hung one up to the tracker timeout: on a thread of its
//! own, it never delays a stop, an agent's end or a merge. The tracker actions of one dispatch step go out as
//! one job, made in order in one tracker batch (with the JSONL tracker: one rewrite of the file), and the
//! results come back as inputs for `decide`, with the events the tracker calls observed.
//!
//! Jobs that queue up while a call is out go together: the thread takes every waiting job, folds the
//! actions of one kind (claims with the same labels, closes with the same reason, the same label change)
//! into one call where no action between them touches the same issue ([`coalesce`]), and answers them with
//! one `Done`. A br call costs tens of ms; without this, a busy run made one per step.
//!
//! During recovery and at the end of a run the executor makes the same calls in place ([`run_job`]), one
//! action at a time, while no job is out.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::dispatch::{Action, Input, WriteError};
use crate::event::Event;
use crate::tracker::{Tracker, TrackerError};

/// What a job did: the inputs for `decide`, in the order of its actions, and the events its calls observed
/// (to be appended before those inputs are decided on).
#[derive(Debug, Default)]
pub struct Done {
    pub inputs: Vec<Input>,
    pub events: Vec<Event>,
    /// How many jobs this answers (jobs that queued up together are made together).
    pub jobs: usize,
}

/// The tracker's thread: jobs go in, [`Done`]s come back over the dispatcher's second channel.
pub struct TrackerThread {
    jobs: Option<std::sync::mpsc::Sender<Vec<Action>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Jobs sent whose `Done` has not been taken yet.
    in_flight: usize,
}

impl TrackerThread {
    pub fn start(tracker: Arc<dyn Tracker>, actor: String, done: mpsc::UnboundedSender<Done>) -> TrackerThread {
        let (jobs, rx) = std::sync::mpsc::channel::<Vec<Action>>();
        let thread = std::thread::Builder::new()
            .name("bdp-tracker".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    jobs.extend(rx.try_iter());
                    let count = jobs.len();
                    let mut answer = run_job(tracker.as_ref(), &actor, coalesce(jobs));
                    answer.jobs = count;
                    if done.send(answer).is_err() {
                        return;
                    }
                }
            })
            .ok();
        TrackerThread { jobs: thread.as_ref().map(|_| jobs), thread, in_flight: 0 }
    }

    /// Sends the tracker actions of one step; `Err` gives them back when the thread is not there (it could
    /// not be started): the caller makes them in place.
    pub fn send(&mut self, actions: Vec<Action>) -> Result<(), Vec<Action>> {
        match &self.jobs {
            Some(jobs) => match jobs.send(actions) {
                Ok(()) => {
                    self.in_flight += 1;
                    Ok(())
                }
                Err(e) => Err(e.0),
            },
            None => Err(actions),
        }
    }

    /// A `Done` was taken off the channel: the jobs it answers are in.
    pub fn took_done(&mut self, done: &Done) {
        self.in_flight = self.in_flight.saturating_sub(done.jobs.max(1));
    }

    /// No job is out: every `Done` sent was taken.
    pub fn idle(&self) -> bool {
        self.in_flight == 0
    }

    /// Lets the thread end once its jobs are done.
    pub fn finish(&mut self) {
        self.jobs = None;
        if self.in_flight == 0
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

/// A tracker error as the run loop sees it: the tracker said no to this issue, has no such issue, or does
/// not work.
pub fn write_error(e: TrackerError) -> WriteError {
    match e {
        TrackerError::AlreadyClaimed { .. }
        | TrackerError::NotClaimable { .. }
        | TrackerError::ClaimNotVerified { .. } => WriteError::Refused(e.to_string()),
        TrackerError::NotFound(_) => WriteError::NotFound(e.to_string()),
        e => WriteError::Failed(e.to_string()),
    }
}

/// The actions of `jobs`, in order, with each claim, close or label change folded into an earlier one of the
/// same kind and arguments when neither it nor an action between the two touches the same issue (nor reads
/// the tracker):
/// what each issue sees happens in the same order, in fewer calls.
pub fn coalesce(jobs: Vec<Vec<Action>>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for action in jobs.into_iter().flatten() {
        let into = out.iter().rposition(|earlier| same_call(earlier, &action)).filter(|&at| {
            out[at..].iter().all(|between| !matches!(between, Action::ReadTracker) && !overlaps(between, &action))
        });
        match (into, action) {
            (Some(at), Action::Claim { ids, .. } | Action::Close { ids, .. } | Action::ChangeLabels { ids, .. }) => {
                if let Action::Claim { ids: to, .. }
                | Action::Close { ids: to, .. }
                | Action::ChangeLabels { ids: to, .. } = &mut out[at]
                {
                    to.extend(ids);
                }
            }
            (_, action) => out.push(action),
        }
    }
    out
}

/// Two actions one call can make together.
fn same_call(a: &Action, b: &Action) -> bool {
    match (a, b) {
        (Action::Claim { labels: x, .. }, Action::Claim { labels: y, .. }) => x == y,
        (Action::Close { reason: x, .. }, Action::Close { reason: y, .. }) => x == y,
        (Action::ChangeLabels { change: x, .. }, Action::ChangeLabels { change: y, .. }) => x == y,
        _ => false,
    }
}

/// The issues a tracker action writes.
fn issues_of(action: &Action) -> &[String] {
    match action {
        Action::Claim { ids, .. } | Action::Close { ids, .. } | Action::ChangeLabels { ids, .. } => ids,
        Action::GiveBack { issue, .. } => std::slice::from_ref(issue),
        _ => &[],
    }
}

fn overlaps(a: &Action, b: &Action) -> bool {
    let theirs = issues_of(b);
    issues_of(a).iter().any(|id| theirs.contains(id))
}

/// Makes the tracker calls of `actions` in order, in one batch. When the batch cannot be made durable, none
/// of its writes happened: each is reported failed, and what the calls observed is dropped.
pub fn run_job(tracker: &dyn Tracker, actor: &str, actions: Vec<Action>) -> Done {
    let batched = tracker.begin_batch().is_ok();
    let mut done = Done { jobs: 1, ..Done::default() };
    // After a claim finds the tracker not working, the later claims of the job are not tried: the issues stay
    // candidates for when it works.
    let mut down: Option<String> = None;
    for action in actions {
        let input = match action {
            Action::ReadTracker => {
                let result = tracker.list(&crate::tracker::ListFilter::default()).map_err(|e| e.to_string());
                Input::TrackerRead { result, at: jiff::Timestamp::now() }
            }
            Action::Claim { ids, .. } if down.is_some() => {
                let e = down.clone().unwrap_or_default();
                Input::Claimed { results: ids.into_iter().map(|id| (id, Err(WriteError::Failed(e.clone())))).collect() }
            }
            Action::Claim { ids, labels } => {
                let results = tracker.claim_many(&ids, actor, &labels, &mut done.events);
                let results: Vec<_> =
                    ids.into_iter().zip(results).map(|(id, r)| (id, r.map(|_| ()).map_err(write_error))).collect();
                down = results.iter().find_map(|(_, r)| match r {
                    Err(WriteError::Failed(e)) => Some(e.clone()),
                    _ => None,
                });
                Input::Claimed { results }
            }
            Action::Close { ids, reason } => {
                let results = tracker.close_many(&ids, &reason, &mut done.events);
                Input::ClosesDone {
                    results: ids.into_iter().zip(results).map(|(id, r)| (id, r.map_err(write_error))).collect(),
                }
            }
            Action::GiveBack { issue, labels } => {
                let result = tracker.release_with_labels(&issue, &labels, &mut done.events);
                Input::GaveBack { issue, result: result.map_err(write_error) }
            }
            Action::ChangeLabels { ids, change } => {
                // Labels are a courtesy to people watching the tracker: a failed write is logged, the run goes on.
                let results = tracker.change_labels_many(&ids, &change, &mut done.events);
                let results = ids
                    .into_iter()
                    .zip(results)
                    .map(|(id, r)| {
                        if let Err(e) = &r {
                            tracing::warn!("the phase label of {id}: {e}");
                        }
                        (id, change.clone(), r.map_err(|e| e.to_string()))
                    })
                    .collect();
                Input::LabelsDone { results }
            }
            // The executor sends only tracker calls (`Action::is_tracker_call`).
            _ => continue,
        };
        done.inputs.push(input);
    }
    if batched && let Err(e) = tracker.end_batch() {
        done.events.clear();
        let failed = e.to_string();
        for input in &mut done.inputs {
            unmade(input, &failed);
        }
    }
    done
}

/// Turns the writes an input reports made into failures (their batch was not written).
fn unmade(input: &mut Input, error: &str) {
    let failed = || WriteError::Failed(error.to_string());
    match input {
        Input::Claimed { results } => {
            results.iter_mut().filter(|(_, r)| r.is_ok()).for_each(|(_, r)| *r = Err(failed()))
        }
        Input::ClosesDone { results } => {
            results.iter_mut().filter(|(_, r)| r.is_ok()).for_each(|(_, r)| *r = Err(failed()))
        }
        Input::GaveBack { result, .. } if result.is_ok() => *result = Err(failed()),
        Input::LabelsDone { results } => {
            results.iter_mut().filter(|(_, _, r)| r.is_ok()).for_each(|(_, _, r)| *r = Err(error.to_string()))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LabelChange;
    use proptest::prelude::*;

    fn ids(of: &[&str]) -> Vec<String> {
        of.iter().map(|s| s.to_string()).collect()
    }
    fn claim(of: &[&str]) -> Action {
        Action::Claim { ids: ids(of), labels: LabelChange::default() }
    }
    fn close(of: &[&str]) -> Action {
        Action::Close { ids: ids(of), reason: "done".into() }
    }
    fn running(of: &[&str]) -> Action {
        Action::ChangeLabels { ids: ids(of), change: LabelChange { add: vec!["running".into()], remove: vec![] } }
    }
    fn give_back(id: &str) -> Action {
        Action::GiveBack { issue: id.into(), labels: LabelChange::default() }
    }

    #[test]
    fn the_steps_of_a_busy_run_go_out_as_one_call_per_kind() {
        let jobs = vec![
            vec![claim(&["a"])],
            vec![running(&["a"]), claim(&["b"])],
            vec![close(&["a"]), running(&["b"])],
            vec![close(&["b"])],
        ];
        assert_eq!(coalesce(jobs), vec![claim(&["a", "b"]), running(&["a", "b"]), close(&["a", "b"])]);
    }

    #[test]
    fn an_action_does_not_pass_one_that_touches_its_issue_or_reads_the_tracker() {
        // x is given back, then claimed again: the claim stays after the give-back.
        let jobs = vec![vec![claim(&["a"]), give_back("x")], vec![claim(&["x"]), claim(&["b"])]];
        assert_eq!(coalesce(jobs), vec![claim(&["a"]), give_back("x"), claim(&["x", "b"])]);
        let jobs = vec![vec![claim(&["a"]), Action::ReadTracker], vec![claim(&["b"])]];
        assert_eq!(coalesce(jobs), vec![claim(&["a"]), Action::ReadTracker, claim(&["b"])]);
        // Different labels or reasons are different calls.
        let other = Action::Close { ids: ids(&["b"]), reason: "no change".into() };
        assert_eq!(coalesce(vec![vec![close(&["a"])], vec![other.clone()]]), vec![close(&["a"]), other]);
    }

    /// What one issue sees: the kinds of the actions that touch it, and the reads, in order.
    fn seen_by(actions: &[Action], id: &str) -> Vec<String> {
        actions
            .iter()
            .filter(|a| matches!(a, Action::ReadTracker) || issues_of(a).iter().any(|i| i == id))
            .map(|a| format!("{a:?}").split([' ', '{']).next().unwrap_or_default().to_string())
            .collect()
    }

    fn action() -> impl Strategy<Value = Action> {
        let id = prop::sample::select(vec!["a", "b", "c", "d"]);
        prop_oneof![
            id.clone().prop_map(|i| claim(&[i])),
            id.clone().prop_map(|i| close(&[i])),
            id.clone().prop_map(|i| running(&[i])),
            id.prop_map(give_back),
            Just(Action::ReadTracker),
        ]
    }

    proptest! {
        #[test]
        fn each_issue_sees_its_actions_in_the_same_order(jobs in prop::collection::vec(prop::collection::vec(action(), 0..5), 0..8)) {
            let before: Vec<Action> = jobs.iter().flatten().cloned().collect();
            let after = coalesce(jobs);
            prop_assert!(after.len() <= before.len());
            for id in ["a", "b", "c", "d"] {
                prop_assert_eq!(seen_by(&after, id), seen_by(&before, id));
            }
        }
    }
}
