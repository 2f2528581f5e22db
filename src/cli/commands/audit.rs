//! `bdp audit [--json] [--fix]`: compares the log with the world and prints every mismatch — the log's
//! chain and checkpoints, issue locks against tracker status and assignee and the log's claims, locks
//! held by dead or reused pids, `in_progress` issues with no live agent, agents alive with no claim,
//! worktrees and branches with no claim — one line each, with the repair `--fix` (or `bdp run`) makes.
//!
//! Read-only by default, and safe while a run is live (it never takes the orchestrator lock; what the live
//! run is doing is left to it). `--fix` applies the safe repairs, each appended to the log as an event
//! (under the append lock only), then looks again. Exit 0 when nothing is found (or left), 1 otherwise.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::cli::Outcome;
use crate::cli::live;
use crate::error::{CliError, CliResult};
use crate::event::Event;
use crate::log::index::Index;
use crate::log::{LogError, LogWriter, load, system_clock};
use crate::observe::Observer;
use crate::reconcile::{Finding, FindingKind, Repair, World, diff};
use crate::repo::Repo;
use crate::state::State;
use crate::tracker::{ListFilter, TrackerKind};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Print the report as JSON (shape: schema/audit.schema.json).
    #[arg(long)]
    pub json: bool,
    /// Apply the safe repairs (stray processes, worktrees, branches, lock files, broken locks, tracker
    /// claims with no claim in the log, bad checkpoints), each recorded in the log. Claims of a crashed run
    /// are left to `bdp run`, which recovers them.
    #[arg(long)]
    pub fix: bool,
    /// The assignee bdp claims issues as [default: bdp, or `actor` in .bdp/config.toml].
    #[arg(long, value_name = "NAME")]
    pub actor: Option<String>,
}

/// `bdp audit --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AuditReport {
    /// Always `bdp.audit/1`.
    #[schemars(extend("const" = "bdp.audit/1"))]
    pub schema: String,
    /// The pid of the orchestrator running now, if any: findings about its work are left to it.
    pub live_orchestrator: Option<u32>,
    pub tracker: String,
    /// Records in the log (0 when there is none, or when it is damaged: see the `log_damaged` finding).
    pub records: u64,
    /// What was found (with --fix: what is left after the repairs).
    pub findings: Vec<Finding>,
    /// With --fix: the repairs applied.
    pub fixed: Vec<Fixed>,
    pub summary: Summary,
}

/// A repair `--fix` applied (or tried).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Fixed {
    pub kind: String,
    pub issue: Option<String>,
    pub action: String,
    /// Set when the repair failed.
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub findings: usize,
    /// Findings `bdp audit --fix` repairs.
    pub fixable: usize,
    /// Findings `bdp run` repairs when it recovers (adopting agents, applying exits, merging, retrying).
    pub recovered_by_run: usize,
    /// Findings that need a person.
    pub manual: usize,
    /// The seed users' check: lock files under .bdp/locks/ …
    pub lock_files: usize,
    /// … against issues `in_progress` in the tracker.
    pub in_progress: usize,
}

pub fn run(repo: &Repo, tracker_kind: TrackerKind, args: &AuditArgs) -> CliResult<Outcome> {
    let actor = match &args.actor {
        Some(a) => a.clone(),
        None => crate::run_options::ConfigFile::load(&repo.config_path())
            .and_then(|file| file.actor())
            .map_err(crate::cli::commands::run::option_error)?
            .unwrap_or_else(|| "bdp".into()),
    };
    let tracker = crate::cli::tracker::open(repo, tracker_kind)?;
    let orchestrator = live::OrchestratorSeen::look(repo);
    let live_pid = orchestrator.running.then(|| orchestrator.holder.as_ref().map_or(0, |h| h.pid));
    let (mut state, mut world, records) = look(repo, tracker.as_ref(), &actor, live_pid)?;
    let mut findings = diff(&state, &world);
    let mut fixed = Vec::new();
    if args.fix && findings.iter().any(|f| f.repair.is_safe()) {
        let session = format!("audit-{}-{}", jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S"), std::process::id());
        let (writer, _) = LogWriter::open(&repo.events_dir(), &repo.append_lock_path(), &session, system_clock())?;
        let grace = Duration::from_secs(10);
        for f in findings.iter().filter(|f| f.repair.is_safe()) {
            let (events, error) = match crate::repair::apply_safe(repo, &state, Some(tracker.as_ref()), f, grace) {
                Ok(events) => (events.unwrap_or_default(), None),
                Err(e) => (Vec::new(), Some(e)),
            };
            let events: Vec<Event> = if error.is_none() {
                events
            } else {
                vec![Event::ReconcileFinding {
                    kind: f.kind.name().to_string(),
                    issue: f.issue.clone(),
                    detail: format!("{}; the repair failed: {}", f.detail(), error.as_deref().unwrap_or_default()),
                }]
            };
            writer.append(events)?;
            fixed.push(Fixed {
                kind: f.kind.name().to_string(),
                issue: f.issue.clone(),
                action: f.repair.describe(),
                error,
            });
        }
        drop(writer);
        (state, world, _) = look(repo, tracker.as_ref(), &actor, live_pid)?;
        findings = diff(&state, &world);
    }
    let in_progress = world.tracker.values().filter(|t| t.status == "in_progress").count();
    let summary = Summary {
        findings: findings.len(),
        fixable: findings.iter().filter(|f| f.repair.is_safe()).count(),
        recovered_by_run: findings.iter().filter(|f| !f.repair.is_safe() && !is_manual(f)).count(),
        manual: findings.iter().filter(|f| is_manual(f)).count(),
        lock_files: world.lock_files.len(),
        in_progress,
    };
    let report = AuditReport {
        schema: "bdp.audit/1".into(),
        live_orchestrator: live_pid,
        tracker: tracker.name().to_string(),
        records,
        findings,
        fixed,
        summary,
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&report).map_err(|e| CliError::internal(e.to_string()))?;
        text = relative(repo, &text);
        println!("{text}");
    } else {
        print!("{}", relative(repo, &render(&report, &state)));
    }
    Ok(if report.findings.is_empty() { Outcome::Ok } else { Outcome::Found })
}

fn is_manual(f: &Finding) -> bool {
    matches!(f.repair, Repair::Manual { .. })
}

/// The log (verified in full: chain and transitions), its checkpoints, and the world.
fn look(
    repo: &Repo,
    tracker: &dyn crate::tracker::Tracker,
    actor: &str,
    live_orchestrator: Option<u32>,
) -> CliResult<(State, World, u64)> {
    let issues = tracker.list(&ListFilter::default()).map_err(crate::cli::tracker::to_cli_error)?;
    let events_dir = repo.events_dir();
    let index_path = repo.index_path();
    // Never create the index just to look at it.
    let index = Index::open_read_only(&index_path).ok().flatten();
    let checkpoints = index.as_ref().and_then(|i| i.checkpoints().ok()).unwrap_or_default();
    let mut bad_checkpoints = Vec::new();
    for meta in &checkpoints {
        if !load::checkpoint_matches(&events_dir, meta) {
            bad_checkpoints.push((meta.seq, "its record is not at that place in the log (seq or chain differ)".into()));
        }
    }
    let wanted: Vec<u64> =
        checkpoints.iter().map(|m| m.seq).filter(|s| !bad_checkpoints.iter().any(|b| b.0 == *s)).collect();
    let (state, records, log_damage) = if events_dir.is_dir() {
        let mut mismatched = Vec::new();
        let result = load::fold_verified(&events_dir, None, |record, state| {
            if wanted.contains(&record.seq) {
                let stored = index.as_ref().and_then(|i| i.checkpoint_state(record.seq).ok().flatten());
                if stored.as_ref() != Some(state) {
                    mismatched.push(record.seq);
                }
            }
        });
        for seq in mismatched {
            bad_checkpoints.push((seq, "its state differs from the fold of the log up to it".into()));
        }
        match result {
            Ok((state, summary)) => (state, summary.records, None),
            Err(LogError::NoLog { .. }) => (State::new(), 0, None),
            Err(e) => (State::new(), 0, Some(e.to_string())),
        }
    } else {
        (State::new(), 0, None)
    };
    let observer = Observer { repo, actor, live_orchestrator };
    let mut world = observer.observe(&state, &issues);
    world.log_damage = log_damage;
    bad_checkpoints.sort();
    world.bad_checkpoints = bad_checkpoints;
    Ok((state, world, records))
}

fn render(report: &AuditReport, state: &State) -> String {
    let mut out = String::new();
    let orchestrator = match report.live_orchestrator {
        Some(pid) => format!("a run is live (pid {pid}): what it is doing now is left to it"),
        None => "no run is live".into(),
    };
    // A damaged log is not folded: its records and claims are unknown, not zero.
    let log = if report.findings.iter().any(|f| f.kind == FindingKind::LogDamaged) {
        "the log is damaged".to_string()
    } else {
        format!("{} record(s) in the log, {} claim(s)", report.records, state.claimed().count())
    };
    out.push_str(&format!("bdp audit: {log}; tracker {}; {orchestrator}\n", report.tracker));
    for f in &report.fixed {
        match &f.error {
            None => out.push_str(&format!(
                "fixed   {:<26} {:<14} {}\n",
                f.kind,
                f.issue.as_deref().unwrap_or("-"),
                f.action
            )),
            Some(e) => out.push_str(&format!(
                "FAILED  {:<26} {:<14} {}: {e}\n",
                f.kind,
                f.issue.as_deref().unwrap_or("-"),
                f.action
            )),
        }
    }
    for f in &report.findings {
        let who = f.issue.as_deref().or(f.subject.as_deref()).unwrap_or("-");
        let by = if f.repair.is_safe() {
            "--fix"
        } else if is_manual(f) {
            "a person"
        } else {
            "bdp run"
        };
        out.push_str(&format!(
            "{:<26} {:<14} log: {}; world: {}; repair ({by}): {}\n",
            f.kind.name(),
            crate::supervisor::progress::one_line(who, 40),
            f.log,
            f.world,
            f.repair.describe()
        ));
    }
    let s = &report.summary;
    if s.findings == 0 {
        out.push_str("no findings: the log and the world agree\n");
    } else {
        out.push_str(&format!(
            "{} finding(s): {} fixed by `bdp audit --fix`, {} recovered by `bdp run`, {} for a person\n",
            s.findings, s.fixable, s.recovered_by_run, s.manual
        ));
    }
    let verdict = if s.lock_files == s.in_progress { "equal, as they should be" } else { "they differ" };
    out.push_str(&format!(
        "lock files: {}; in_progress issues in the tracker: {} ({verdict})\n",
        s.lock_files, s.in_progress
    ));
    out
}

/// Paths inside the repository, shown relative to it.
fn relative(repo: &Repo, text: &str) -> String {
    let root = repo.root.display().to_string();
    text.replace(&format!("{root}/"), "")
}
