//! Riding out a tracker that fails: a read or write that fails (a bad JSONL line while someone edits the file,
//! bd or br timing out or exiting non-zero, a claim refused for an unexpected reason) is not the end of the
//! run. It pauses new claims; running agents keep running; finished work is still checked and merged, and its
//! close (or its release) waits for the tracker. The tracker is read again with backoff (1 s, doubling, at most
//! 30 s); the user sees one line when it fails (and again only if the error changes) and one when it is mended.
//! After `--tracker-outage` without a working tracker the run drains and ends with exit 2 and that reason.
//!
//! The decisions (when to try again, when to give up) are the pure [`crate::dispatch::outage`]; this file
//! carries them out.

use std::time::Instant;

use crate::dispatch::outage::{Outage, Retry};
use crate::tracker::TrackerError;

use super::orchestrator::{Orchestrator, RunResult, StopLevel};
use super::steps::Release;

/// A tracker write that waits for the tracker to work again, in the order it was asked for.
#[derive(Debug, Clone)]
pub(super) enum Waiting {
    /// The work is merged (or there was none); the close waits.
    Close { id: String, reason: String, keep_branch: bool },
    /// The issue goes back to the tracker (failed, conflicted, stopped); the give-back waits.
    Release(Release),
}

impl Waiting {
    pub(super) fn issue(&self) -> &str {
        match self {
            Waiting::Close { id, .. } => id,
            Waiting::Release(r) => &r.id,
        }
    }
}

impl Orchestrator {
    /// Whether claims are paused because the tracker does not work.
    pub(super) fn tracker_down(&self) -> bool {
        self.outage.is_some()
    }

    /// A tracker call failed: claims pause (said once per distinct error), and a read is tried again later.
    pub(super) fn tracker_failed(&mut self, what: &str, err: &TrackerError) {
        let error = format!("{what}: {err}");
        let now = Instant::now();
        match &mut self.outage {
            Some(outage) => {
                if outage.note(&error) {
                    self.progress.line(&format!("tracker  still failing: {error}"));
                }
            }
            None => {
                self.progress.line(&format!(
                    "tracker  {error}; new claims paused, running agents go on; trying again in {}",
                    super::progress_duration(crate::dispatch::outage::FIRST_DELAY)
                ));
                self.defer(vec![crate::event::Event::TrackerDown { error: error.clone() }]);
                self.outage = Some(Outage::new(error, now));
            }
        }
    }

    /// Called as the dispatcher loops: reads the tracker again when it is time. Mended: says so, and makes
    /// the writes that waited. Down for longer than `--tracker-outage`: drains the run.
    pub(super) fn tend_outage(&mut self) -> RunResult<()> {
        let Some(outage) = &self.outage else { return Ok(()) };
        let now = Instant::now();
        match outage.next(now, self.opts.tracker_outage) {
            Retry::Wait => Ok(()),
            Retry::GiveUp => {
                if self.stop == StopLevel::None {
                    let why = format!(
                        "the tracker has not worked for {}: {}",
                        super::progress_duration(self.opts.tracker_outage),
                        outage.error
                    );
                    self.progress.line(&format!("stopping: {why}"));
                    self.summary.tracker_outage = Some(why);
                    self.request_stop(StopLevel::Drain);
                }
                // What waits for the tracker is left for the next run: the log has the claim and every step
                // so far, and recovery carries on from there.
                for w in std::mem::take(&mut self.waiting) {
                    let id = w.issue().to_string();
                    self.live.remove(&id);
                    self.progress.finished(&id);
                    self.progress.line(&format!("left     {id}  its tracker write waits for the next `bdp run`"));
                    self.summary.left_waiting += 1;
                }
                Ok(())
            }
            Retry::TryNow => match self.tracker.list(&crate::tracker::ListFilter::default()) {
                Ok(issues) => {
                    let down = outage.since.elapsed();
                    self.issues = issues;
                    self.dirty = true;
                    self.last_refresh = now;
                    self.outage = None;
                    self.progress.line(&format!(
                        "tracker  works again after {}; {} waiting write(s), claims resume",
                        super::progress_duration(down),
                        self.waiting.len()
                    ));
                    self.defer(vec![crate::event::Event::TrackerBack {
                        down_ms: down.as_millis() as u64,
                        waiting: self.waiting.len() as u32,
                    }]);
                    self.make_waiting_writes()
                }
                Err(e) => {
                    if let Some(o) = &mut self.outage {
                        o.failed_again(now);
                    }
                    self.tracker_failed("reading the tracker", &e);
                    Ok(())
                }
            },
        }
    }

    /// Makes the closes and give-backs that waited, in order; the first that fails again puts itself and the
    /// rest back.
    fn make_waiting_writes(&mut self) -> RunResult<()> {
        let waiting = std::mem::take(&mut self.waiting);
        let mut rest = waiting.into_iter();
        for w in rest.by_ref() {
            match w {
                Waiting::Close { id, reason, keep_branch } => self.close_keeping_branch(&id, &reason, keep_branch)?,
                Waiting::Release(r) => self.release_and_end(r)?,
            }
            if self.tracker_down() {
                break;
            }
        }
        self.waiting.extend(rest);
        Ok(())
    }

    /// Puts a write off until the tracker works again.
    pub(super) fn wait_for_tracker(&mut self, w: Waiting) {
        self.progress.phase(w.issue(), "waiting for the tracker");
        self.waiting.push(w);
    }
}
