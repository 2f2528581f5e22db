//! Stopping and claiming: how a stop request escalates, and whether another issue may be claimed now.

/// How hard the user asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    None,
    /// No new claims; running agents finish, finished work is merged, the rest released.
    Drain,
    /// Every agent group gets TERM, then KILL after the grace period; claims are released.
    Now,
}

/// The stop level after `asked` arrives at `current`: a stop never softens, and a second drain (a second
/// Ctrl-C, a second `bdp stop`) means now.
pub fn escalate(current: StopLevel, asked: StopLevel) -> StopLevel {
    match (current, asked) {
        (StopLevel::Drain, StopLevel::Drain) => StopLevel::Now,
        (current, asked) => current.max(asked),
    }
}

/// What claiming depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimGate {
    pub stop: StopLevel,
    /// The tracker does not work (an outage).
    pub tracker_down: bool,
    /// Claims made in this run, and those about to be made in this step.
    pub claims_made: usize,
    pub picked: usize,
    /// `--max-issues`.
    pub max_issues: Option<usize>,
}

/// Whether one more issue may be claimed now.
pub fn may_claim(g: ClaimGate) -> bool {
    g.stop == StopLevel::None && !g.tracker_down && g.max_issues.is_none_or(|max| g.claims_made + g.picked < max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use StopLevel::*;

    #[test]
    fn a_stop_escalates_and_never_softens() {
        let table = [
            (None, None, None),
            (None, Drain, Drain),
            (None, Now, Now),
            (Drain, Drain, Now),
            (Drain, None, Drain),
            (Drain, Now, Now),
            (Now, Drain, Now),
            (Now, None, Now),
            (Now, Now, Now),
        ];
        for (current, asked, want) in table {
            assert_eq!(escalate(current, asked), want, "{current:?} + {asked:?}");
        }
    }

    #[test]
    fn claims_wait_for_a_stop_an_outage_and_the_issue_limit() {
        let open = ClaimGate { stop: None, tracker_down: false, claims_made: 0, picked: 0, max_issues: Option::None };
        let table = [
            (open, true),
            (ClaimGate { stop: Drain, ..open }, false),
            (ClaimGate { stop: Now, ..open }, false),
            (ClaimGate { tracker_down: true, ..open }, false),
            (ClaimGate { claims_made: 2, picked: 0, max_issues: Some(3), ..open }, true),
            (ClaimGate { claims_made: 2, picked: 1, max_issues: Some(3), ..open }, false),
            (ClaimGate { claims_made: 3, max_issues: Some(3), ..open }, false),
            (ClaimGate { claims_made: 1000, ..open }, true),
        ];
        for (gate, want) in table {
            assert_eq!(may_claim(gate), want, "{gate:?}");
        }
    }
}
