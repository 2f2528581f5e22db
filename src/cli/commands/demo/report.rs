//! The demo's closing report: what happened, read back from the sandbox's log (never from what the demo
//! expected), each part one line a person reads at a glance. `render` is pure, for its snapshot test.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::child::{KillPoint, and_list};
use crate::cli::render::duration;
use crate::error::CliResult;
use crate::event::{CarryOn, Event, ReleaseReason};
use crate::repo::Repo;
use crate::state::SessionEnd;

/// What the demo itself saw (the rest comes from the log).
#[derive(Debug, Default)]
pub struct Facts {
    pub killed: Option<KillPoint>,
    pub second_run_exit: Option<i32>,
    pub audit_exit: Option<i32>,
    pub timeline: Option<PathBuf>,
    pub sandbox: PathBuf,
    pub kept: bool,
    pub agents: u32,
    pub demo_wall: Duration,
}

/// One session as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLine {
    pub id: String,
    pub crashed: bool,
    pub recovers: Option<String>,
}

#[derive(Debug)]
pub struct DemoReport {
    pub sessions: Vec<SessionLine>,
    /// Killed after this many done, with these attempts working.
    pub killed: Option<(u64, usize)>,
    /// Reconcile findings of the recovering session, by kind.
    pub findings: BTreeMap<String, usize>,
    pub done: Vec<String>,
    pub failed: Vec<String>,
    pub conflicted: Vec<String>,
    pub retried: Vec<String>,
    /// Issues whose branch conflicted and got an attempt to resolve it: with the files.
    pub resolving: Vec<(String, Vec<String>)>,
    pub total_issues: usize,
    pub audit_clean: bool,
    pub agent_ms: u64,
    pub wall_ms: u64,
    pub agents: u32,
    pub timeline: Option<PathBuf>,
    pub sandbox: PathBuf,
    pub kept: bool,
    pub demo_wall: Duration,
}

impl DemoReport {
    /// Reads the sandbox's log and puts it beside what the demo saw.
    pub fn gather(root: &Path, facts: Facts) -> CliResult<DemoReport> {
        let repo = Repo { root: root.to_path_buf() };
        let mut records = Vec::new();
        let (state, _) = crate::log::load::fold_verified(&repo.events_dir(), None, |r, _| records.push(r.clone()))?;
        let recovering = state.sessions.iter().find(|s| s.recovers.is_some()).map(|s| s.id.clone());
        let mut report = DemoReport {
            sessions: state
                .sessions
                .iter()
                .map(|s| SessionLine {
                    id: s.id.clone(),
                    crashed: matches!(s.end, SessionEnd::Crashed { .. }),
                    recovers: s.recovers.clone(),
                })
                .collect(),
            killed: facts.killed.as_ref().map(|k| (k.done, k.running.len())),
            findings: BTreeMap::new(),
            done: Vec::new(),
            failed: Vec::new(),
            conflicted: Vec::new(),
            resolving: Vec::new(),
            retried: Vec::new(),
            total_issues: super::scenario::ISSUES.len(),
            audit_clean: facts.audit_exit == Some(0),
            agent_ms: 0,
            wall_ms: 0,
            agents: facts.agents,
            timeline: facts.timeline,
            sandbox: facts.sandbox,
            kept: facts.kept,
            demo_wall: facts.demo_wall,
        };
        for record in &records {
            match &record.event {
                Event::ReconcileFinding { kind, .. } if Some(&record.session) == recovering.as_ref() => {
                    *report.findings.entry(kind.clone()).or_default() += 1;
                }
                Event::IssueReleased { issue, reason, .. } => {
                    let list = match reason {
                        ReleaseReason::Done => &mut report.done,
                        ReleaseReason::Conflict => &mut report.conflicted,
                        ReleaseReason::Failed | ReleaseReason::Timeout => &mut report.failed,
                        _ => continue,
                    };
                    list.push(issue.clone());
                }
                Event::RetryScheduled { issue, carry_on: Some(CarryOn { conflict: Some(c), .. }), .. } => {
                    report.resolving.push((issue.clone(), c.files.clone()));
                }
                Event::RetryScheduled { issue, .. } if !report.retried.contains(issue) => {
                    report.retried.push(issue.clone());
                }
                _ => {}
            }
        }
        // The figures as `bdp summary` defines them: agent time while a session ran, over the sessions' spans.
        let activity = crate::activity::Activity::from_records(&records);
        report.agent_ms = activity.agent_ms_in_wall();
        report.wall_ms = activity.wall_ms();
        Ok(report)
    }

    /// Everything the demo is meant to show happened: a crash, a recovery of it, a clean audit.
    pub fn as_expected(&self) -> bool {
        self.killed.is_some()
            && self.sessions.len() == 2
            && self.sessions[0].crashed
            && self.sessions[1].recovers.as_deref() == Some(self.sessions[0].id.as_str())
            && self.audit_clean
            && self.done.len() + self.conflicted.len() + self.failed.len() == self.total_issues
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, text: String| {
            let _ = writeln!(out, "{label:<10}{text}");
        };
        line("what happened", String::new());
        for (n, s) in self.sessions.iter().enumerate() {
            let label = if n == 0 { "sessions" } else { "" };
            let what = match (&s.recovers, s.crashed) {
                (_, true) => match self.killed {
                    Some((done, running)) if n == 0 => {
                        format!(
                            "crashed: killed with SIGKILL after {done} issues were done, {running} agent(s) working"
                        )
                    }
                    _ => "crashed".to_string(),
                },
                (Some(of), false) => format!("recovered {of}: {}", self.recovery_text()),
                (None, false) => "ended".to_string(),
            };
            line(label, format!("{}  {what}", s.id));
        }
        let mut issues = format!(
            "{} of {} done, {} conflicted, {} failed",
            self.done.len(),
            self.total_issues,
            self.conflicted.len(),
            self.failed.len()
        );
        if !self.retried.is_empty() {
            let _ = write!(issues, "; retried: {} (a failed first attempt, passed on retry)", and_list(&self.retried));
        }
        line("issues", issues);
        for (id, files) in &self.resolving {
            let how = if self.done.contains(id) {
                "one more attempt merged main in and resolved it, and it landed".to_string()
            } else {
                "one more attempt to resolve it did not land".to_string()
            };
            line("conflict", format!("{id}: its branch conflicted with main in {}; {how}", files.join(", ")));
        }
        for id in &self.conflicted {
            line(
                "conflict",
                format!(
                    "{id}: its branch no longer merges into main; bdp kept bdp/{id} and labelled it bdp:conflict for a person"
                ),
            );
        }
        line(
            "audit",
            if self.audit_clean {
                "clean: log, tracker, processes, locks, worktrees and branches agree".to_string()
            } else {
                "findings left (see above)".to_string()
            },
        );
        let speedup = self.agent_ms as f64 / self.wall_ms.max(1) as f64;
        line(
            "speedup",
            format!(
                "{} of agent work in {} of wall time (bdp's down time left out): {speedup:.1}x one agent, with {} agent{}",
                duration(self.agent_ms),
                duration(self.wall_ms),
                self.agents,
                if self.agents == 1 { "" } else { "s" }
            ),
        );
        match &self.timeline {
            Some(path) => line("timeline", format!("{} (open it in a browser)", path.display())),
            None => line("timeline", "not written (see the error above)".to_string()),
        }
        let sandbox = if self.kept {
            format!(
                "{} kept: try `bdp --repo {} replay`, `summary`, `logs`",
                self.sandbox.display(),
                self.sandbox.display()
            )
        } else {
            "removed (`bdp demo --keep DIR` keeps it)".to_string()
        };
        line("sandbox", sandbox);
        line("took", format!("{} in all", duration(self.demo_wall.as_millis() as u64)));
        out
    }

    /// "2 agents adopted, 1 exit applied from its exit file": the findings in words.
    fn recovery_text(&self) -> String {
        let mut parts = Vec::new();
        for (kind, n) in &self.findings {
            let words = match kind.as_str() {
                "agent_alive" => format!("{n} running agent(s) adopted"),
                "agent_exited_unrecorded" => format!("{n} exit(s) applied from the wrappers' exit files"),
                "agent_crashed" => format!("{n} lost attempt(s) retried"),
                "step_interrupted" => format!("{n} interrupted step(s) carried on"),
                "merge_interrupted" | "merge_unrecorded" => format!("{n} interrupted merge(s) finished"),
                "lock_holder_dead" => format!("{n} issue lock(s) of the dead run taken over"),
                other => format!("{n} {other}"),
            };
            parts.push(words);
        }
        if parts.is_empty() {
            "nothing to repair, carried on".to_string()
        } else {
            format!("{}; then carried on", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> DemoReport {
        DemoReport {
            sessions: vec![
                SessionLine { id: "s-20261201-100000-aaaa".into(), crashed: true, recovers: None },
                SessionLine {
                    id: "s-20261201-100007-bbbb".into(),
                    crashed: false,
                    recovers: Some("s-20261201-100000-aaaa".into()),
                },
            ],
            killed: Some((6, 3)),
            findings: [("agent_alive".to_string(), 2), ("agent_exited_unrecorded".to_string(), 1)].into(),
            done: (1..=12).map(|n| format!("demo-{n}")).collect(),
            failed: vec![],
            conflicted: vec![],
            retried: vec!["demo-10".into()],
            resolving: vec![("demo-7".into(), vec!["api/routes.txt".into()])],
            total_issues: 12,
            audit_clean: true,
            agent_ms: 21_300,
            wall_ms: 9_800,
            agents: 4,
            timeline: Some("/tmp/bdp-demo-x-timeline.html".into()),
            sandbox: "/tmp/bdp-demo-x".into(),
            kept: false,
            demo_wall: Duration::from_millis(16_400),
        }
    }

    #[test]
    fn the_report_reads_at_a_glance() {
        let r = report();
        assert!(r.as_expected());
        insta::assert_snapshot!(r.render());
    }

    #[test]
    fn a_run_that_was_not_killed_or_left_findings_is_not_as_expected() {
        let mut r = report();
        r.audit_clean = false;
        assert!(!r.as_expected());
        assert!(r.render().contains("findings left"));
        let mut r = report();
        r.killed = None;
        assert!(!r.as_expected());
        let mut r = report();
        r.done.pop();
        assert!(!r.as_expected(), "an issue left undone");
    }
}
