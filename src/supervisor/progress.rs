//! What `bdp run` shows while it works. On a terminal: a live line per running agent (issue, phase,
//! elapsed, title) with indicatif, and a line per finished issue above them. Otherwise (or with
//! `--plain`): the same finished lines and a line per start, plain, one per event, for logs and CI.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::dispatch::stop::StopLevel;
use crate::dispatch::{Ending, RunEvent};

pub struct Progress {
    live: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

impl Progress {
    pub fn new(plain: bool) -> Progress {
        let tty = !plain && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let live = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { live, bars: HashMap::new() }
    }

    /// A line that stays: above the live bars on a terminal, on stdout otherwise.
    pub fn line(&self, text: &str) {
        match &self.live {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    /// An agent started on `id` (or, with `adopted`, an agent a crashed run started is supervised again).
    pub fn started(&mut self, id: &str, attempt: u32, title: &str, adopted: Option<u32>) {
        let title = one_line(title, 60);
        match &self.live {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<14} {elapsed:>5} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(id.to_string());
                bar.set_message(format!("running #{attempt}  {title}"));
                bar.enable_steady_tick(Duration::from_millis(200));
                if let Some(old) = self.bars.insert(id.to_string(), bar) {
                    old.finish_and_clear();
                }
            }
            None => match adopted {
                Some(pid) => {
                    self.line(&format!("adopt    {id}  attempt {attempt} (pid {pid}, still running)  {title}"))
                }
                None => self.line(&format!("start    {id}  attempt {attempt}  {title}")),
            },
        }
    }

    /// The issue moved to another phase (only shown live).
    pub fn phase(&self, id: &str, phase: &str) {
        if let Some(bar) = self.bars.get(id) {
            let msg = bar.message();
            let title = msg.split_once("  ").map(|(_, t)| t.to_string()).unwrap_or_default();
            bar.set_message(format!("{phase}  {title}"));
        }
    }

    /// The issue is no longer worked on.
    pub fn finished(&mut self, id: &str) {
        if let Some(bar) = self.bars.remove(id) {
            bar.finish_and_clear();
        }
    }

    /// Shows a run event: the one place the run loop's reports become words.
    pub fn report(&mut self, event: &RunEvent) {
        let dur = crate::text::duration;
        match event {
            RunEvent::Started { issue, attempt, title, adopted } => self.started(issue, *attempt, title, *adopted),
            RunEvent::Phase { issue, phase } => self.phase(issue, phase),
            RunEvent::BudgetSpent { spent, limit } => self.line(&format!(
                "stopping: agents of this run reported spending {}, the --max-cost is {}; no new issues",
                crate::text::usd(*spent),
                crate::text::usd(*limit)
            )),
            RunEvent::CostUnreported { issue } => self.line(&format!(
                "budget   {issue}: its agent did not report what it cost (codex reports tokens only); \
                 --max-cost and --max-issue-cost count only the costs agents report"
            )),
            RunEvent::CrashLoop { why, issues } => self.line(&format!(
                "stopping: the first attempts of {} issues ({}) failed the same way, so the agent's setup is likely broken: {why}",
                issues.len(),
                issues.join(", ")
            )),
            RunEvent::Ended { issue, ending, detail, label, branch_kept, took } => {
                self.finished(issue);
                let word = match ending {
                    Ending::Done => "done",
                    Ending::Failed => "failed",
                    Ending::Conflict => "conflict",
                    Ending::Released => "released",
                };
                let mut text = match ending {
                    Ending::Done => format!("{word:<8} {issue}  {}", detail.strip_prefix("bdp: ").unwrap_or(detail)),
                    _ => format!("{word:<8} {issue}  {detail}"),
                };
                match (branch_kept, label) {
                    (Some(branch), Some(label)) => text.push_str(&format!("; branch {branch} kept, labelled {label}")),
                    (Some(branch), None) => text.push_str(&format!("; branch {branch} kept")),
                    (None, Some(label)) => text.push_str(&format!("; labelled {label}")),
                    (None, None) => {}
                }
                if let Some(took) = took {
                    text.push_str(&format!("  ({})", dur(*took)));
                }
                self.line(&text);
            }
            RunEvent::Retry { issue, why, attempt, of, backoff } => {
                self.line(&format!("retry    {issue}  {why}; attempt {attempt} of {of} in {}", dur(*backoff)))
            }
            RunEvent::Resolving { issue, files, attempt } => self.line(&format!(
                "conflict {issue}  its branch conflicts with the base in {}; attempt {attempt} merges the base in and resolves it",
                files.join(", ")
            )),
            RunEvent::Skipped { issue, why } => self.line(&format!("skip     {issue}  {why}")),
            RunEvent::NotInTracker { issue } => {
                self.line(&format!("note     {issue}  the tracker no longer has it; released in the log only"))
            }
            RunEvent::Reviewed { issue, round, verdict, comments, next } => {
                let what = match (verdict, next) {
                    (crate::event::Verdict::Approve, _) => "approved".to_string(),
                    (_, Some(n)) => format!("changes requested; attempt {n} addresses them"),
                    (_, None) => "changes requested, and no review round is left".to_string(),
                };
                let comments = if comments.is_empty() { String::new() } else { format!(": {comments}") };
                self.line(&format!("review   {issue}  review {round}: {what}{comments}"))
            }
            RunEvent::HookFailed { issue, why } => self.line(&format!("note     {issue}  {why}")),
            RunEvent::Left { issue, what, name, error } => {
                self.line(&format!("note     {issue}  {what} {name} left: {error}"))
            }
            RunEvent::MachineBusy { why } => self.line(&format!("waiting: {why}")),
            RunEvent::HeldBack { issue, why } => self.line(&format!("waits    {issue}  {why}")),
            RunEvent::TrackerDown { error, retry_in } => self.line(&format!(
                "tracker  {error}; new claims paused, running agents go on; trying again in {}",
                dur(*retry_in)
            )),
            RunEvent::TrackerStillDown { error } => self.line(&format!("tracker  still failing: {error}")),
            RunEvent::TrackerBack { down, waiting } => self.line(&format!(
                "tracker  works again after {}; {waiting} waiting write(s), claims resume",
                dur(*down)
            )),
            RunEvent::TrackerGaveUp { why } => self.line(&format!("stopping: {why}")),
            RunEvent::LeftWaiting { issue } => {
                self.finished(issue);
                self.line(&format!("left     {issue}  its tracker write waits for the next `bdp run`"));
            }
            RunEvent::Stopping { level: StopLevel::Drain, running } => self.line(&format!(
                "stopping: no new issues; waiting for {running} running agent(s) (Ctrl-C again or `bdp stop --now` to stop them)"
            )),
            RunEvent::Stopping { level: StopLevel::Now, .. } => self.line("stopping now: terminating running agents"),
            RunEvent::Stopping { level: StopLevel::None, .. } => {}
        }
    }

    pub fn clear(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
    }
}

/// `text` on one line (control characters escaped), cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect();
    if escaped.chars().count() > max {
        let cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}
