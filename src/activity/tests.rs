//! Tables of built events in, activity out.

use super::*;
use crate::event::{Event, MergeStrategy, Record, SessionEndReason};

/// Builds records with explicit times (seconds after 2026-11-25T06:00:00Z).
#[derive(Default)]
struct Log {
    records: Vec<Record>,
}

const T0: i64 = 1_795_586_400_000;

fn ts(secs: f64) -> String {
    let t = jiff::Timestamp::from_millisecond(T0 + (secs * 1000.0) as i64).unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Log {
    fn at(&mut self, secs: f64, session: &str, event: Event) -> &mut Self {
        let seq = self.records.len() as u64 + 1;
        self.records.push(Record { seq, v: 2, ts: ts(secs), session: session.into(), event });
        self
    }
    fn start(&mut self, secs: f64, session: &str, agents: u64, recovers: Option<&str>) -> &mut Self {
        let config = serde_json::json!({"options": {"agents": agents}});
        self.at(
            secs,
            session,
            Event::SessionStarted {
                pid: 1,
                start_time: Some(1),
                host: "h".into(),
                version: "0".into(),
                config,
                recovers: recovers.map(String::from),
            },
        )
    }
    fn end(&mut self, secs: f64, session: &str) -> &mut Self {
        self.at(secs, session, Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] })
    }
    fn claim(&mut self, secs: f64, s: &str, issue: &str) -> &mut Self {
        self.at(secs, s, Event::IssueClaimed { issue: issue.into(), actor: "bdp".into() })
    }
    fn spawn(&mut self, secs: f64, s: &str, issue: &str, attempt: u32) -> &mut Self {
        self.at(
            secs,
            s,
            Event::SpawnRequested {
                issue: issue.into(),
                attempt,
                argv: vec!["a".into()],
                cwd: ".".into(),
                marker: "m".into(),
                stdout: "o".into(),
                stderr: "e".into(),
            },
        )
        .at(secs, s, Event::AgentSpawned { issue: issue.into(), attempt, pid: 9, pgid: 9, start_time: Some(1) })
        .at(secs, s, Event::PhaseChanged { issue: issue.into(), phase: Phase::Running })
    }
    fn exit(&mut self, secs: f64, s: &str, issue: &str, attempt: u32, code: i32, ms: u64) -> &mut Self {
        self.exit_with(secs, s, issue, attempt, code, ms, None)
    }
    #[allow(clippy::too_many_arguments)]
    fn exit_with(
        &mut self,
        secs: f64,
        s: &str,
        issue: &str,
        attempt: u32,
        code: i32,
        ms: u64,
        usage: Option<AgentUsage>,
    ) -> &mut Self {
        self.at(
            secs,
            s,
            Event::AgentExited {
                issue: issue.into(),
                attempt,
                code: Some(code),
                signal: None,
                duration_ms: ms,
                timed_out: false,
                usage,
                session: None,
            },
        )
        .at(secs, s, Event::PhaseChanged { issue: issue.into(), phase: Phase::Exited })
    }
    fn check(&mut self, secs: f64, s: &str, issue: &str, attempt: u32, ms: u64) -> &mut Self {
        self.at(secs, s, Event::CheckPassed { issue: issue.into(), attempt, command: "t".into(), duration_ms: ms })
    }
    fn merge(&mut self, started: f64, merged: f64, s: &str, issue: &str) -> &mut Self {
        self.at(
            started,
            s,
            Event::MergeStarted {
                issue: issue.into(),
                branch: "b".into(),
                base: "main".into(),
                strategy: MergeStrategy::Merge,
            },
        )
        .at(merged, s, Event::Merged { issue: issue.into(), commit: "c".into() })
    }
    fn release(&mut self, secs: f64, s: &str, issue: &str, reason: ReleaseReason) -> &mut Self {
        self.at(secs, s, Event::IssueReleased { issue: issue.into(), reason, detail: None })
    }
    /// Claim at `from`, agent `from+1`..`to-2`, check, merge at `to-1`, release at `to`.
    fn done(&mut self, from: f64, to: f64, s: &str, issue: &str) -> &mut Self {
        let agent_ms = ((to - 2.0 - (from + 1.0)) * 1000.0) as u64;
        self.claim(from, s, issue)
            .spawn(from + 1.0, s, issue, 1)
            .exit(to - 2.0, s, issue, 1, 0, agent_ms)
            .check(to - 1.5, s, issue, 1, 500)
            .merge(to - 1.0, to - 0.5, s, issue)
            .release(to, s, issue, ReleaseReason::Done)
    }
    fn activity(&self) -> Activity {
        Activity::from_records(&self.records)
    }
}

fn attempt<'a>(a: &'a Activity, issue: &str, n: u32) -> &'a AttemptSpan {
    a.attempts.iter().find(|t| t.issue == issue && t.attempt == n).unwrap_or_else(|| panic!("no {issue}#{n}"))
}

#[test]
fn a_normal_session_gives_bars_slots_and_speedup() {
    let mut log = Log::default();
    log.start(0.0, "s1", 2, None).done(0.0, 10.0, "s1", "a").done(1.0, 11.0, "s1", "b").done(10.0, 20.0, "s1", "c");
    log.end(20.0, "s1");
    let a = log.activity();
    assert_eq!(a.sessions.len(), 1);
    assert_eq!(a.sessions[0].end, SessionEndKind::Ended(SessionEndReason::Completed));
    assert_eq!(a.sessions[0].agents, Some(2));
    assert_eq!(a.attempts.len(), 3);
    assert!(a.attempts.iter().all(|t| t.outcome == Outcome::Done));
    // a and b overlap; c starts when a ends (10 s), so it reuses a's row.
    assert_eq!(a.slots, 2);
    assert_eq!((attempt(&a, "a", 1).slot, attempt(&a, "b", 1).slot, attempt(&a, "c", 1).slot), (0, 1, 0));
    // The first attempt's bar starts at the claim and holds the claim's records.
    let b = attempt(&a, "b", 1);
    assert_eq!((b.start_ms, b.end_ms), (T0 + 1000, T0 + 11_000));
    assert_eq!(b.seqs.first(), Some(&log.records.iter().find(|r| r.event.issue() == Some("b")).unwrap().seq));
    assert_eq!(b.phases.iter().map(|p| p.phase).collect::<Vec<_>>(), [Phase::Claimed, Phase::Running, Phase::Exited]);
    assert_eq!(b.merge_wait_ms(), Some(1000));
    // Agent time 3 × 7 s over 20 s of wall time; 2 agents.
    assert_eq!(a.agent_ms(), 21_000);
    assert_eq!(a.wall_ms(), 20_000);
    assert_eq!(a.speedup(), Some(1.05));
    assert_eq!(a.parallel_efficiency(), Some(0.525));
    assert_eq!(a.issues_ended(ReleaseReason::Done), 3);
    assert_eq!(a.merges.len(), 3);
    assert_eq!(a.retries(), 0);
}

#[test]
fn an_attempt_across_a_crash_is_one_bar_and_recovery_is_counted() {
    let mut log = Log::default();
    log.start(0.0, "s1", 3, None).claim(1.0, "s1", "k").spawn(2.0, "s1", "k", 1);
    log.claim(2.0, "s1", "z").spawn(3.0, "s1", "z", 1); // left running too: recovery finds it gone
    log.at(5.0, "s1", Event::LockReleased { lock: "x".into() }); // last record of s1
    log.start(60.0, "s2", 3, Some("s1"));
    log.at(
        60.5,
        "s2",
        Event::ReconcileFinding { kind: "agent_alive".into(), issue: Some("k".into()), detail: "pid 9".into() },
    );
    log.at(
        60.5,
        "s2",
        Event::RepairApplied { kind: "agent_alive".into(), issue: Some("k".into()), action: "adopt".into() },
    );
    log.at(
        60.6,
        "s2",
        Event::ReconcileFinding { kind: "agent_crashed".into(), issue: Some("z".into()), detail: "gone".into() },
    );
    log.at(60.6, "s2", Event::AttemptAbandoned { issue: "z".into(), attempt: 1, reason: "gone".into() });
    log.release(60.7, "s2", "z", ReleaseReason::Abandoned);
    log.exit(70.0, "s2", "k", 1, 0, 68_000).release(71.0, "s2", "k", ReleaseReason::Done).end(72.0, "s2");
    let a = log.activity();
    assert_eq!(a.sessions[0].end, SessionEndKind::Crashed);
    let k = attempt(&a, "k", 1);
    assert_eq!(a.attempts.iter().filter(|t| t.issue == "k").count(), 1, "one bar across the crash");
    assert_eq!(k.sessions, ["s1", "s2"]);
    assert_eq!((k.start_ms, k.end_ms), (T0 + 1000, T0 + 71_000));
    assert_eq!((k.outcome, k.agent_ms, k.exited_in.as_deref()), (Outcome::Done, Some(68_000), Some("s2")));
    // The abandoned agent counts until the crashed session's last record, not until recovery noticed.
    let z = attempt(&a, "z", 1);
    assert_eq!((z.outcome, z.agent_ms), (Outcome::Abandoned, Some(2_000)));
    // Wall time leaves out the gap between the crash and the recovery, and so does the speedup's agent time:
    // k ran 2 s..70 s, of which 3 s under s1 and 10 s under s2; z 3 s..5 s.
    assert_eq!(a.wall_ms(), 5_000 + 12_000);
    assert_eq!((a.agent_ms(), a.agent_ms_in_wall()), (70_000, 15_000));
    assert_eq!(a.speedup(), Some(15.0 / 17.0));
    let report = Report::new(&a);
    assert_eq!(report.crashes.len(), 1);
    let crash = &report.crashes[0];
    assert_eq!(crash.recovered_by.as_deref(), Some("s2"));
    assert_eq!(crash.findings.get("agent_alive"), Some(&1));
    assert_eq!(crash.findings.get("agent_crashed"), Some(&1));
    assert_eq!(crash.repairs.get("agent_alive"), Some(&1));
    assert_eq!((crash.attempts_adopted, crash.attempts_abandoned), (1, 1));
    assert_eq!(a.recoveries.len(), 3);
    // The finding about k is one of k's events.
    assert!(k.seqs.contains(&a.recoveries[0].seq));
}

#[test]
fn a_failed_attempt_then_a_retry() {
    let mut log = Log::default();
    log.start(0.0, "s1", 1, None).claim(0.0, "s1", "r").spawn(1.0, "s1", "r", 1).exit(5.0, "s1", "r", 1, 3, 4_000);
    log.at(
        5.0,
        "s1",
        Event::RetryScheduled {
            issue: "r".into(),
            next_attempt: 2,
            backoff_ms: 2_000,
            reason: "x".into(),
            carry_on: None,
        },
    );
    log.spawn(7.0, "s1", "r", 2).exit(9.0, "s1", "r", 2, 0, 2_000).release(10.0, "s1", "r", ReleaseReason::Done);
    log.end(10.0, "s1");
    let a = log.activity();
    let (one, two) = (attempt(&a, "r", 1), attempt(&a, "r", 2));
    assert_eq!((one.outcome, one.exit_code), (Outcome::Failed, Some(3)));
    assert_eq!(two.outcome, Outcome::Done);
    // The retry's bar starts at its spawn request; the backoff is in neither bar.
    assert_eq!((one.end_ms, two.start_ms), (T0 + 5_000, T0 + 7_000));
    assert_eq!(a.retries(), 1);
    assert_eq!(a.issues["r"].attempts, 2);
    assert_eq!(a.slots, 1);
    let report = Report::new(&a);
    assert_eq!(report.per_issue.mean_ms, Some(10_000));
    assert_eq!(report.phases.agent.count, 2);
    assert_eq!(report.totals.outcomes.get("failed"), Some(&1));
}

#[test]
fn a_conflict_a_timeout_and_a_shutdown() {
    let mut log = Log::default();
    log.start(0.0, "s1", 3, None);
    log.claim(0.0, "s1", "c").spawn(0.0, "s1", "c", 1).exit(2.0, "s1", "c", 1, 0, 2_000);
    log.at(
        3.0,
        "s1",
        Event::MergeStarted { issue: "c".into(), branch: "b".into(), base: "m".into(), strategy: MergeStrategy::Merge },
    );
    log.at(3.5, "s1", Event::MergeConflicted { issue: "c".into(), detail: "CONFLICT".into() });
    log.release(4.0, "s1", "c", ReleaseReason::Conflict);
    log.claim(0.0, "s1", "t").spawn(0.0, "s1", "t", 1).release(4.0, "s1", "t", ReleaseReason::Timeout);
    log.claim(0.0, "s1", "q").spawn(0.0, "s1", "q", 1).release(4.0, "s1", "q", ReleaseReason::Shutdown);
    log.end(4.0, "s1");
    let a = log.activity();
    assert_eq!(attempt(&a, "c", 1).outcome, Outcome::Conflict);
    assert_eq!(attempt(&a, "c", 1).merge_wait_ms(), Some(1_000));
    assert_eq!(attempt(&a, "t", 1).outcome, Outcome::Timeout);
    assert_eq!(attempt(&a, "q", 1).outcome, Outcome::Stopped);
    let totals = Report::new(&a).totals;
    assert_eq!((totals.done, totals.failed, totals.conflicted, totals.released_other), (0, 1, 1, 1));
}

#[test]
fn no_outcome_is_running_in_the_open_session_and_unknown_after_a_crash() {
    let mut log = Log::default();
    log.start(0.0, "s1", 2, None).claim(0.0, "s1", "u").spawn(1.0, "s1", "u", 1);
    log.at(4.0, "s1", Event::LockReleased { lock: "x".into() });
    log.start(10.0, "s2", 2, None).claim(11.0, "s2", "w").spawn(12.0, "s2", "w", 1);
    log.at(20.0, "s2", Event::LockReleased { lock: "x".into() });
    let a = log.activity();
    let (u, w) = (attempt(&a, "u", 1), attempt(&a, "w", 1));
    assert_eq!((u.outcome, u.end_ms, u.agent_ms), (Outcome::Unknown, T0 + 4_000, Some(3_000)));
    assert_eq!((w.outcome, w.end_ms, w.agent_ms), (Outcome::Running, T0 + 20_000, Some(8_000)));
    assert_eq!(a.sessions[1].end, SessionEndKind::Open);
    assert_eq!(Report::new(&a).totals.held, 2);
}

#[test]
fn usage_is_unknown_unless_reported_and_never_guessed() {
    let usage =
        |cost| AgentUsage { cost_micro_usd: cost, input_tokens: 100, cached_input_tokens: 50, output_tokens: 10 };
    let mut log = Log::default();
    log.start(0.0, "s1", 3, None);
    log.claim(0.0, "s1", "p").spawn(0.0, "s1", "p", 1).exit_with(1.0, "s1", "p", 1, 0, 1_000, Some(usage(Some(2_500))));
    log.release(1.0, "s1", "p", ReleaseReason::Done);
    log.claim(0.0, "s1", "q").spawn(0.0, "s1", "q", 1).exit_with(1.0, "s1", "q", 1, 0, 1_000, Some(usage(None)));
    log.release(1.0, "s1", "q", ReleaseReason::Done);
    log.claim(0.0, "s1", "n").spawn(0.0, "s1", "n", 1).exit(1.0, "s1", "n", 1, 0, 1_000);
    log.release(1.0, "s1", "n", ReleaseReason::Done).end(1.0, "s1");
    let a = log.activity();
    let all = a.usage();
    assert_eq!((all.attempts, all.reported, all.cost_reported), (3, 2, 1));
    assert_eq!((all.tokens(), all.cached_input_tokens, all.cost_micro_usd), (Some(220), 100, Some(2_500)));
    let report = Report::new(&a);
    let n = report.issues.iter().find(|i| i.id == "n").unwrap();
    assert!(n.usage.is_unknown());
    assert_eq!((n.usage.tokens(), n.usage.cost_micro_usd), (None, None));
    let q = report.issues.iter().find(|i| i.id == "q").unwrap();
    assert_eq!((q.usage.tokens(), q.usage.cost_micro_usd), (Some(110), None));
    assert_eq!(report.sessions[0].usage.reported, 2);
}

#[test]
fn bars_in_one_slot_never_overlap_and_slots_are_the_most_in_flight() {
    let mut log = Log::default();
    log.start(0.0, "s1", 4, None);
    // Deterministic pseudo-random starts and lengths.
    let mut x: u64 = 7;
    for i in 0..200 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let from = (x >> 40) as f64 % 500.0;
        let len = 3.0 + ((x >> 20) % 40) as f64;
        log.done(from, from + len, "s1", &format!("i{i}"));
    }
    let a = log.activity();
    let mut most = 0;
    for t in &a.attempts {
        let at = t.start_ms;
        most = most.max(a.attempts.iter().filter(|o| o.start_ms <= at && at < o.end_ms).count());
    }
    assert_eq!(a.slots, most);
    for (i, t) in a.attempts.iter().enumerate() {
        for o in &a.attempts[i + 1..] {
            if t.slot == o.slot {
                assert!(t.end_ms <= o.start_ms || o.end_ms <= t.start_ms, "{} and {} overlap", t.issue, o.issue);
            }
        }
    }
}

#[test]
fn restrict_keeps_the_whole_span_of_an_attempt_of_the_session() {
    let mut log = Log::default();
    log.start(0.0, "s1", 2, None).done(0.0, 5.0, "s1", "only1").claim(1.0, "s1", "k").spawn(2.0, "s1", "k", 1);
    log.start(10.0, "s2", 2, Some("s1")).exit(12.0, "s2", "k", 1, 0, 10_000);
    log.release(13.0, "s2", "k", ReleaseReason::Done).end(13.0, "s2");
    let a = log.activity();
    let s2 = a.restrict(|s| s.id == "s2");
    assert_eq!(s2.sessions.len(), 1);
    assert_eq!(s2.attempts.len(), 1);
    assert_eq!(s2.attempts[0].start_ms, T0 + 1_000, "spawned in s1, kept whole");
    assert_eq!(s2.issues.keys().collect::<Vec<_>>(), ["k"]);
    assert_eq!(s2.wall_ms(), 3_000);
    assert_eq!(a.restrict(|_| false).attempts.len(), 0);
}

#[test]
fn an_unreadable_timestamp_counts_as_the_previous_one() {
    let mut log = Log::default();
    log.start(0.0, "s1", 1, None).claim(1.0, "s1", "a");
    log.records[1].ts = "yesterday".into();
    log.end(3.0, "s1");
    let a = log.activity();
    assert_eq!(a.bad_timestamps, 1);
    assert_eq!(a.issues["a"].first_claim_ms, T0);
    assert_eq!(a.wall_ms(), 3_000);
}

#[test]
fn percentiles_and_spans() {
    assert_eq!(percentile(&[], 95), None);
    assert_eq!(percentile(&[5], 95), Some(5));
    let v: Vec<u64> = (1..=20).collect();
    assert_eq!((percentile(&v, 95), percentile(&v, 50), percentile(&v, 100)), (Some(19), Some(10), Some(20)));
    assert_eq!(figures::union_ms([(0, 10), (5, 15), (20, 25)].into_iter()), 20);
    let u = figures::union([(20, 25), (0, 10), (5, 15)].into_iter());
    assert_eq!(u, [(0, 15), (20, 25)]);
    assert_eq!(figures::overlap_ms(&u, (12, 22)), 5);
    assert_eq!(figures::overlap_ms(&u, (15, 20)), 0);
    assert_eq!(figures::overlap_ms(&u, (-5, 100)), 20);
    let s = Stat::of([1, 2, 3, 10].into_iter());
    assert_eq!((s.count, s.mean_ms, s.p95_ms, s.max_ms), (4, Some(4), Some(10), Some(10)));
}

#[test]
fn the_plan_estimate_schedules_the_actual_agent_time() {
    let mut log = Log::default();
    // Three issues of 7 s agent time each on 2 agents: list scheduling says 14 s.
    log.start(0.0, "s1", 2, None).done(0.0, 10.0, "s1", "a").done(0.0, 10.0, "s1", "b").done(10.0, 20.0, "s1", "c");
    log.end(20.0, "s1");
    let est = Report::new(&log.activity()).plan_estimate.unwrap();
    assert_eq!((est.agents, est.issues, est.makespan_ms, est.single_agent_ms), (2, 3, 14_000, 21_000));
    assert_eq!(est.speedup, Some(1.5));
}

#[test]
fn tracker_calls_are_summed_per_issue_and_per_claimed_issue_and_kept_by_session() {
    let calls = |issues: &[(&str, u32)], other: u32| Event::TrackerCalls {
        backend: "br".into(),
        issues: issues.iter().map(|(i, n)| (i.to_string(), *n)).collect(),
        other,
    };
    let mut log = Log::default();
    log.start(0.0, "s1", 2, None)
        .at(0.0, "s1", calls(&[], 1))
        .done(1.0, 10.0, "s1", "a")
        .done(2.0, 12.0, "s1", "b")
        .at(13.0, "s1", calls(&[("a", 4), ("b", 3)], 0))
        .end(14.0, "s1")
        .start(20.0, "s2", 2, None)
        .done(21.0, 30.0, "s2", "c")
        .at(31.0, "s2", calls(&[("c", 4)], 2))
        .end(32.0, "s2");
    let a = log.activity();
    let report = Report::new(&a);
    let t = report.tracker_calls.as_ref().unwrap();
    assert_eq!((t.calls, t.on_issues, t.other, t.backend.as_str()), (14, 11, 3, "br"));
    assert_eq!(t.per_issue, Some(14.0 / 3.0));
    let per: Vec<(&str, u64)> = report.issues.iter().map(|i| (i.id.as_str(), i.tracker_calls)).collect();
    assert_eq!(per, [("a", 4), ("b", 3), ("c", 4)]);
    let second = Report::new(&a.restrict(|s| s.id == "s2"));
    let t = second.tracker_calls.unwrap();
    assert_eq!((t.calls, t.per_issue), (6, Some(6.0)));
    // Without any record (the JSONL tracker): no figure, and the summary says why.
    let mut log = Log::default();
    log.start(0.0, "s1", 1, None).done(1.0, 10.0, "s1", "a").end(11.0, "s1");
    assert_eq!(Report::new(&log.activity()).tracker_calls, None);
}
