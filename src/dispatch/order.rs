//! Which issues a run may take, in what order, and, when it can take none, why: ready by bd's rules, inside
//! `--epic`/`--label`, and not waiting for a person (labelled `bdp:failed` or `bdp:conflict`). The run, its
//! `--dry-run` and the dashboard use these.

use crate::plan::Issue;

use super::model::{CONFLICT_LABEL, FAILED_LABEL, Rules};

/// Whether an issue waits for a person: given back labelled `bdp:failed` or `bdp:conflict`.
pub fn held_for_human(issue: &Issue) -> bool {
    issue.labels.iter().any(|l| l == FAILED_LABEL || l == CONFLICT_LABEL)
}

/// The issues a run may take now, in plan order: indices into `issues`.
pub fn run_order(issues: &[Issue], rules: &Rules, now: jiff::Timestamp) -> Vec<usize> {
    in_order(issues, rules.epic.as_deref(), rules.label.as_deref(), now)
}

/// [`run_order`] for a scope.
pub fn in_order(issues: &[Issue], epic: Option<&str>, label: Option<&str>, now: jiff::Timestamp) -> Vec<usize> {
    let filter =
        crate::tracker::ListFilter { statuses: vec![], label: label.map(String::from), parent: epic.map(String::from) };
    let in_scope = filter.matching(issues);
    crate::plan::ready_in_order(issues, now)
        .into_iter()
        .filter(|&i| in_scope[i] && !held_for_human(&issues[i]))
        .collect()
}

/// One sentence on why nothing could start.
pub fn why_nothing_ready(issues: &[Issue], rules: &Rules, now: jiff::Timestamp) -> String {
    let opts = crate::plan::PlanOptions { agents: 1, epic: rules.epic.clone(), label: rules.label.clone(), now };
    let scope = match (&rules.epic, &rules.label) {
        (Some(e), _) => format!(" under epic {e}"),
        (None, Some(l)) => format!(" with label {l}"),
        (None, None) => String::new(),
    };
    let Ok(plan) = crate::plan::plan(issues, &rules.tracker, &opts) else {
        return format!("nothing is ready{scope}");
    };
    let s = &plan.summary;
    let labelled = issues.iter().filter(|i| i.status == "open" && held_for_human(i)).count();
    if s.issues == 0 {
        return format!("nothing to do: no issues{scope}");
    }
    let mut parts = Vec::new();
    if s.closed > 0 {
        parts.push(format!("{} closed", s.closed));
    }
    if s.blocked > 0 {
        parts.push(format!("{} blocked", s.blocked));
    }
    if s.in_progress > 0 {
        parts.push(format!("{} in progress (claimed)", s.in_progress));
    }
    if labelled > 0 {
        parts.push(format!("{labelled} labelled {FAILED_LABEL} or {CONFLICT_LABEL} (remove the label to retry)"));
    }
    if s.closed == s.issues {
        format!("nothing is ready: all {} issues{scope} are closed", s.issues)
    } else {
        format!("nothing is ready{scope}: {}", parts.join(", "))
    }
}
