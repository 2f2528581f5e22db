//! `bdp plan`: the tracks of ready work, their order, and the estimated makespan with N agents.
//! Reads the tracker (`--tracker`), plans with the pure `plan` module, prints text or `--json`
//! (`schema/plan.schema.json`, tagged `"schema": "bdp.plan/1"`).

use std::fmt::Write as _;

use clap::Args;

use crate::cli::Outcome;
use crate::error::{CliError, CliResult};
use crate::plan::{Plan, PlanOptions, Problem};
use crate::repo::Repo;
use crate::tracker::{ListFilter, TrackerKind};

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// How many agents work in parallel, for the makespan estimate.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub agents: u32,
    /// Print JSON (schema/plan.schema.json) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only this epic and its descendants (blockers outside it still count).
    #[arg(long, value_name = "ID")]
    pub epic: Option<String>,
    /// Only issues with this label.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Plan as of this time (RFC 3339) instead of now: for reproducible output.
    #[arg(long, value_name = "TIME", hide = true)]
    pub now: Option<String>,
}

pub fn run(repo: &Repo, tracker: TrackerKind, args: &PlanArgs) -> CliResult<Outcome> {
    let now = match &args.now {
        Some(text) => crate::plan::ready::parse_timestamp(text)
            .ok_or_else(|| CliError::user(format!("--now {text}: not an RFC 3339 time")))?,
        None => jiff::Timestamp::now(),
    };
    let tracker = crate::cli::tracker::open(repo, tracker)?;
    let issues = tracker.list(&ListFilter::default()).map_err(crate::cli::tracker::to_cli_error)?;
    let zones = crate::run_options::ConfigFile::load(&repo.config_path())
        .and_then(|file| file.zones())
        .map_err(|e| CliError::user(e.to_string()))?;
    let opts =
        PlanOptions { agents: args.agents as usize, epic: args.epic.clone(), label: args.label.clone(), now, zones };
    let plan = crate::plan::plan(&issues, tracker.name(), &opts)
        .map_err(|e| CliError::user(e.to_string()).with_hint("list epics with `bd list --type epic`"))?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&plan).map_err(|e| CliError::internal(e.to_string()))?;
        s.push('\n');
        s
    } else {
        render(&plan)
    };
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`bdp plan | head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    Ok(Outcome::Ok)
}

/// Items shown per track in the text output (`--json` has them all).
const ITEMS_PER_TRACK: usize = 10;

/// The human-readable plan.
pub fn render(plan: &Plan) -> String {
    let mut s = String::new();
    let sum = &plan.summary;
    let _ = writeln!(s, "tracker: {}", plan.tracker);
    if plan.scope.epic.is_some() || plan.scope.label.is_some() {
        let mut parts = Vec::new();
        if let Some(e) = &plan.scope.epic {
            parts.push(format!("epic {e}"));
        }
        if let Some(l) = &plan.scope.label {
            parts.push(format!("label {l}"));
        }
        let _ = writeln!(s, "scope: {}", parts.join(", "));
    }
    let _ = writeln!(
        s,
        "{} issues: {} open, {} in progress, {} closed; {} ready, {} blocked, {} track{}",
        sum.issues,
        sum.open,
        sum.in_progress,
        sum.closed,
        sum.ready,
        sum.blocked,
        sum.tracks,
        if sum.tracks == 1 { "" } else { "s" }
    );
    for track in &plan.tracks {
        let _ = writeln!(
            s,
            "\n{}: {} issue{}, {} ready, {} blocked, critical path {}",
            track.track_id,
            track.size,
            if track.size == 1 { "" } else { "s" },
            track.ready.len(),
            track.blocked,
            track.critical_path
        );
        for item in track.ready.iter().take(ITEMS_PER_TRACK) {
            let mut line = format!("  {}  P{}  {}", item.id, item.priority, item.title);
            let mut notes = vec![format!("path {}", item.critical_path)];
            if !item.unblocks.is_empty() {
                notes.push(format!("unblocks {}", item.unblocks.join(" ")));
            }
            let _ = write!(line, "  ({})", notes.join(", "));
            let _ = writeln!(s, "{line}");
        }
        if track.ready.len() > ITEMS_PER_TRACK {
            let _ = writeln!(s, "  … and {} more ready", track.ready.len() - ITEMS_PER_TRACK);
        }
    }
    let m = &plan.makespan;
    let unit = if m.unit == "minutes" { " min" } else { "" };
    let _ = writeln!(
        s,
        "\nmakespan: {}{unit} with {} agent{} vs {}{unit} with 1 (speedup {:.2}x); {} work item{}, critical path {}{unit}",
        m.with_agents,
        m.agents,
        if m.agents == 1 { "" } else { "s" },
        m.single_agent,
        m.speedup,
        m.work_items,
        if m.work_items == 1 { "" } else { "s" },
        m.critical_path
    );
    if m.unschedulable > 0 {
        let _ =
            writeln!(s, "  {} item(s) can never start (cycles, or waiting on non-workable issues)", m.unschedulable);
    }
    if !plan.collisions.is_empty() {
        let _ = writeln!(s, "\nnot at once (they touch the same files):");
        for c in &plan.collisions {
            let _ = writeln!(s, "  {} and {}: {}", c.a, c.b, c.why);
        }
    }
    for seq in &plan.sequences {
        let _ = writeln!(s, "\nsequential zone {}: {}", seq.zone, seq.ids.join(" → "));
    }
    if !plan.problems.is_empty() {
        let _ = writeln!(s, "\nproblems:");
        for p in &plan.problems {
            let _ = writeln!(s, "  {}", describe(p));
        }
    }
    s
}

fn describe(p: &Problem) -> String {
    match p {
        Problem::UnknownStatus { id, status } => format!("{id}: unknown status {status:?} (not ready)"),
        Problem::MissingDependency { id, depends_on, dep_type } => {
            format!("{id}: {dep_type} dependency on {depends_on}, which is not in the tracker")
        }
        Problem::DuplicateId { id } => format!("{id}: duplicate id"),
        Problem::BadTimestamp { id, field, value } => format!("{id}: {field} {value:?} is not a time"),
        Problem::Cycle { ids } => format!("cycle: {}", ids.join(" → ")),
        Problem::BadPath { detail } => format!("declared path {detail} (left out of the collisions)"),
    }
}
