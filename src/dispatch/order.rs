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
    let opts = crate::plan::PlanOptions {
        agents: 1,
        epic: rules.epic.clone(),
        label: rules.label.clone(),
        now,
        zones: rules.zones.clone(),
    };
    let scope = match (&rules.epic, &rules.label) {
        (Some(e), _) => format!(" under epic {e}"),
        (None, Some(l)) => format!(" with label {l}"),
        (None, None) => String::new(),
    };
    let plan = match crate::plan::plan(issues, &rules.tracker, &opts) {
        Ok(plan) => plan,
        Err(e) => return format!("nothing is ready{scope}: {e}"),
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
    } else if parts.is_empty() {
        format!("nothing is ready{scope}")
    } else {
        format!("nothing is ready{scope}: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(id: &str, status: &str, labels: &[&str], blocked_by: Option<&str>) -> Issue {
        Issue {
            status: status.into(),
            assignee: (status == "in_progress").then(|| "alice".to_string()),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            dependencies: blocked_by.map(|on| crate::plan::issue::Dependency::on(on, "blocks")).into_iter().collect(),
            ..Issue::open(id)
        }
    }

    fn rules(epic: Option<&str>, label: Option<&str>) -> Rules {
        Rules { epic: epic.map(str::to_string), label: label.map(str::to_string), ..Rules::sample() }
    }

    #[test]
    fn issues_labelled_for_a_person_wait_for_the_label_to_go() {
        assert!(held_for_human(&issue("a", "open", &["x", FAILED_LABEL], None)));
        assert!(held_for_human(&issue("a", "open", &[CONFLICT_LABEL], None)));
        assert!(!held_for_human(&issue("a", "open", &["bdp:other", "phase:claimed"], None)));
        let issues = vec![issue("a", "open", &[FAILED_LABEL], None), issue("b", "open", &[], None)];
        assert_eq!(in_order(&issues, None, None, jiff::Timestamp::UNIX_EPOCH), vec![1]);
    }

    #[test]
    fn why_nothing_is_ready_in_one_sentence() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let why = |issues: &[Issue], epic, label| why_nothing_ready(issues, &rules(epic, label), now);
        assert_eq!(why(&[], None, None), "nothing to do: no issues");
        assert_eq!(why(&[], Some("e1"), None), "nothing is ready under epic e1: no issue e1 in the tracker");
        let epic = [issue("e1", "open", &[], None)];
        assert_eq!(why(&epic, Some("e1"), None), "nothing is ready under epic e1");
        assert_eq!(why(&[], None, Some("ui")), "nothing to do: no issues with label ui");
        let closed = [issue("a", "closed", &[], None), issue("b", "closed", &[], None)];
        assert_eq!(why(&closed, None, None), "nothing is ready: all 2 issues are closed");
        let mixed = [
            issue("a", "closed", &[], None),
            issue("b", "in_progress", &[], None),
            issue("c", "open", &[], Some("b")),
            issue("d", "open", &[CONFLICT_LABEL], None),
        ];
        assert_eq!(
            why(&mixed, None, None),
            "nothing is ready: 1 closed, 1 blocked, 1 in progress (claimed), 1 labelled bdp:failed or bdp:conflict \
             (remove the label to retry)"
        );
        let one_blocked = [issue("b", "in_progress", &[], None), issue("c", "open", &[], Some("b"))];
        assert_eq!(why(&one_blocked, None, None), "nothing is ready: 1 blocked, 1 in progress (claimed)");
    }
}
