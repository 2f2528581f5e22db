//! The invariants, checked after every decision and when a seed ends quiet. A violation names the seed and
//! the step that reproduce it.

use crate::run::Sim;

#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub step: u64,
    pub what: String,
}

impl Violation {
    pub fn new(sim: &Sim, what: String) -> Violation {
        Violation { seed: sim.seed, step: sim.steps, what }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {} step {}: {}", self.seed, self.step, self.what)
    }
}

/// After every decision: at most one live agent per issue; no issue closed twice.
pub fn always(sim: &Sim) -> Result<(), Violation> {
    let mut live = std::collections::BTreeMap::<&str, u32>::new();
    for a in sim.world.agents.iter().filter(|a| a.alive) {
        let n = live.entry(a.issue.as_str()).or_default();
        *n += 1;
        if *n > 1 {
            return Err(Violation::new(sim, format!("two live agents for {}", a.issue)));
        }
    }
    if let Some((id, _)) = sim.world.issues.iter().find(|(_, i)| i.closes > 1) {
        return Err(Violation::new(sim, format!("{id} was closed more than once")));
    }
    // Issues that touch the same files (or one zone) are never held at once.
    let held: Vec<(&String, Vec<bdp::filelock::LockPath>)> = sim
        .model
        .held
        .keys()
        .filter_map(|id| Some((id, bdp::filelock::zones::declared(&sim.world.issues.get(id)?.issue).paths)))
        .collect();
    for (i, (a, pa)) in held.iter().enumerate() {
        for (b, pb) in &held[i + 1..] {
            if let Some(why) = bdp::filelock::zones::collision(pa, pb, &sim.model.rules.zones) {
                return Err(Violation::new(sim, format!("{a} and {b} are held at once, but {why}")));
            }
        }
    }
    Ok(())
}

/// Before bdp closes an issue: it was not closed by bdp before, and its work is merged (or there is none,
/// or `--merge none` leaves it on its branch).
pub fn close_allowed(sim: &Sim, id: &str, reason: &str) -> Result<(), Violation> {
    if sim.world.issues.get(id).is_some_and(|i| i.closes > 0) {
        return Err(Violation::new(sim, format!("{id} is closed a second time ({reason})")));
    }
    let merge_none = sim.model.rules.merge == bdp::event::MergeStrategy::None;
    if let Some(b) = sim.world.branches.get(id)
        && b.ahead > 0
        && b.merged.is_none()
        && !merge_none
    {
        return Err(Violation::new(sim, format!("{id} is closed before its work was merged ({reason})")));
    }
    Ok(())
}

/// When the seed ends (the last run finished with no faults): no claim is left, the last session ended, no
/// agent runs, and an audit of the world finds nothing.
pub fn quiet(sim: &Sim) -> Result<(), Violation> {
    let state = &sim.model.state;
    if let Some((id, _)) = state.claimed().next() {
        return Err(Violation::new(sim, format!("the claim of {id} was never released")));
    }
    if let Some(s) = &state.open_session {
        return Err(Violation::new(sim, format!("session {s} never ended")));
    }
    if let Some(a) = sim.world.agents.iter().find(|a| a.alive) {
        return Err(Violation::new(sim, format!("the agent of {} attempt {} still runs", a.issue, a.attempt)));
    }
    // Phase labels are replaced, never piled up (a label write answered late must not leave the old one).
    if let Some(i) =
        sim.world.issues.values().find(|i| i.issue.labels.iter().filter(|l| l.starts_with("phase:")).count() > 1)
    {
        return Err(Violation::new(sim, format!("{} carries several phase labels: {:?}", i.issue.id, i.issue.labels)));
    }
    let findings = bdp::reconcile::diff(state, &sim.world.observe(state));
    if let Some(f) = findings.first() {
        return Err(Violation::new(
            sim,
            format!(
                "the audit of the quiet world finds {} ({}): {}",
                f.kind.name(),
                f.issue.as_deref().unwrap_or("-"),
                f.detail()
            ),
        ));
    }
    Ok(())
}
