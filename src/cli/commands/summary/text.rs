//! The human form of `bdp summary`: a short report out of an `activity::Report`. Usage nobody reported is
//! printed `unknown`, never 0.

use std::fmt::Write;

use crate::activity::{Outcome, Report, Stat, UsageSum};

use crate::cli::commands::verify::plural;
use crate::cli::render::{duration, one_line};

/// Issues listed one per line at most; beyond, the costliest are listed.
const ISSUE_LINES: usize = 20;

fn ms(v: Option<u64>) -> String {
    v.map_or("-".to_string(), duration)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("unknown".to_string(), |v| format!("{v:.2}"))
}

pub fn cost(micro_usd: u64) -> String {
    format!("${:.4}", micro_usd as f64 / 1e6)
}

/// `1234 tokens (1000 in, 234 out, 50 cached in), $0.0123`, or `unknown`; with how many attempts reported.
pub fn usage(u: &UsageSum) -> String {
    let Some(tokens) = u.tokens() else {
        return format!("unknown (no agent of {} attempt{} reported usage)", u.attempts, plural(u.attempts));
    };
    let cost = u.cost_micro_usd.map_or("cost unknown".to_string(), cost);
    let mut s = format!(
        "{tokens} tokens ({} in, {} out, {} cached in), {cost}",
        u.input_tokens, u.output_tokens, u.cached_input_tokens
    );
    if u.reported < u.attempts || (u.cost_reported > 0 && u.cost_reported < u.reported) {
        let _ = write!(s, " — {} of {} attempts reported usage", u.reported, u.attempts);
        if u.cost_micro_usd.is_some() {
            let _ = write!(s, ", {} a cost", u.cost_reported);
        }
    }
    s
}

fn stat_line(out: &mut String, name: &str, s: &Stat) {
    let _ = writeln!(out, "  {name:<18}{:>6}  {:>9}  {:>9}  {:>9}", s.count, ms(s.mean_ms), ms(s.p95_ms), ms(s.max_ms));
}

pub fn render(r: &Report, since: Option<&str>) -> String {
    let mut out = String::new();
    let window = since.map_or(String::new(), |d| format!(" active in the last {d}"));
    if r.sessions.is_empty() {
        let _ = writeln!(out, "no sessions{window}");
        return out;
    }
    let n = r.sessions.len() as u64;
    let _ = writeln!(
        out,
        "{n} session{}{window}, {} to {}",
        plural(n),
        r.from.as_deref().unwrap_or("-"),
        r.to.as_deref().unwrap_or("-")
    );
    let width = r.sessions.iter().map(|s| s.id.len()).max().unwrap_or(7).max(7);
    let _ = writeln!(
        out,
        "  {:<width$}  {:<24}  {:<20}  {:>6}  {:>9}  ATTEMPTS (BY OUTCOME)",
        "SESSION", "STARTED", "END", "AGENTS", "WALL"
    );
    for s in &r.sessions {
        let end = match &s.end_reason {
            Some(reason) => format!("ended ({reason})"),
            None if s.end == "open" => "open (running?)".to_string(),
            None => s.end.clone(),
        };
        let outcomes: Vec<String> = s.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let _ = writeln!(
            out,
            "  {:<width$}  {:<24}  {:<20}  {:>6}  {:>9}  {}",
            one_line(&s.id),
            s.started_at,
            end,
            s.agents.map_or("?".to_string(), |a| a.to_string()),
            duration(s.wall_ms),
            if outcomes.is_empty() { "-".to_string() } else { outcomes.join(", ") }
        );
    }
    let t = &r.totals;
    let _ = writeln!(
        out,
        "issues: {} — {} done, {} failed, {} conflicted, {} given back otherwise, {} still held",
        t.issues, t.done, t.failed, t.conflicted, t.released_other, t.held
    );
    let outcomes: Vec<String> =
        Outcome::ALL.iter().filter_map(|o| t.outcomes.get(o.as_str()).map(|n| format!("{n} {}", o.as_str()))).collect();
    let _ = writeln!(
        out,
        "attempts: {} ({} retr{}){}{}",
        t.attempts,
        t.retries,
        if t.retries == 1 { "y" } else { "ies" },
        if outcomes.is_empty() { "" } else { ": " },
        outcomes.join(", ")
    );
    let reviews = t.reviews_approved + t.reviews_changes_requested;
    if reviews > 0 {
        let _ = writeln!(
            out,
            "reviews: {reviews} — {} approved, {} requested changes",
            t.reviews_approved, t.reviews_changes_requested
        );
    }
    let _ = writeln!(out, "  {:<18}{:>6}  {:>9}  {:>9}  {:>9}", "TIME", "COUNT", "MEAN", "P95", "MAX");
    stat_line(&mut out, "per issue", &r.per_issue);
    stat_line(&mut out, "agent", &r.phases.agent);
    stat_line(&mut out, "check", &r.phases.check);
    stat_line(&mut out, "merge queue wait", &r.phases.merge_queue_wait);
    let agents = r.max_agents.map_or("agents unknown".to_string(), |a| format!("{a} agent{}", plural(a)));
    let _ = writeln!(
        out,
        "agent time {} ({} while a session ran) over {} of wall time: speedup {}, parallel efficiency {} ({agents})",
        duration(r.agent_ms),
        duration(r.agent_ms_in_wall),
        duration(r.wall_ms),
        ratio(r.speedup),
        ratio(r.parallel_efficiency)
    );
    match &r.plan_estimate {
        Some(p) => {
            let _ = writeln!(
                out,
                "plan estimate: {} with {} agent{} (speedup {}), {} issue{}: {}",
                duration(p.makespan_ms),
                p.agents,
                plural(p.agents),
                ratio(p.speedup),
                p.issues,
                plural(p.issues),
                p.basis
            );
        }
        None => {
            let _ = writeln!(out, "plan estimate: none (no agent time, or the agent count was not recorded)");
        }
    }
    let _ = writeln!(out, "crashes: {}", r.crashes.len());
    for c in &r.crashes {
        let counts = |m: &std::collections::BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter().map(|(k, v)| format!("{} ×{v}", one_line(k))).collect::<Vec<_>>().join(", ")
            }
        };
        let by = c.recovered_by.as_deref().map_or("no session recovered it yet".to_string(), |s| {
            format!(
                "{} recovered: findings {}; repairs {}; {} attempt{} adopted, {} abandoned",
                one_line(s),
                counts(&c.findings),
                counts(&c.repairs),
                c.attempts_adopted,
                plural(c.attempts_adopted),
                c.attempts_abandoned
            )
        });
        let _ = writeln!(out, "  {} crashed after {}; {by}", one_line(&c.session), c.last_at);
    }
    let _ = writeln!(out, "usage: {}", usage(&r.usage));
    for s in &r.sessions {
        let _ = writeln!(out, "  session {}: {}", one_line(&s.id), usage(&s.usage));
    }
    if let Some(l) = &r.file_locks {
        let _ = writeln!(
            out,
            "file locks: {} granted, {} refused ({} deadlock{}); {} waited, mean {}, p95 {}",
            l.granted,
            l.refused,
            l.deadlocks,
            if l.deadlocks == 1 { "" } else { "s" },
            l.waits,
            l.wait.mean_ms.map_or("-".to_string(), crate::text::duration),
            l.wait.p95_ms.map_or("-".to_string(), crate::text::duration),
        );
    }
    match &r.tracker_calls {
        Some(t) => {
            let per_issue = t.per_issue.map_or("no issue claimed".to_string(), |p| format!("{p:.1} per issue claimed"));
            let _ = writeln!(
                out,
                "tracker calls: {} to {}, {per_issue} ({} about one issue, {} lists, exports and writes to several)",
                t.calls, t.backend, t.on_issues, t.other
            );
        }
        None => {
            let _ = writeln!(out, "tracker calls: none recorded (the JSONL tracker is read and written directly)");
        }
    }
    issue_lines(&mut out, r);
    if r.bad_timestamps > 0 {
        let _ = writeln!(out, "warning: {} record(s) with an unreadable timestamp", r.bad_timestamps);
    }
    out
}

fn issue_lines(out: &mut String, r: &Report) {
    let mut issues: Vec<_> = r.issues.iter().collect();
    let more = issues.len().saturating_sub(ISSUE_LINES);
    if more > 0 {
        issues.sort_by_key(|i| (std::cmp::Reverse(i.usage.cost_micro_usd), std::cmp::Reverse(i.usage.tokens())));
        issues.truncate(ISSUE_LINES);
        let _ = writeln!(out, "per issue (the {ISSUE_LINES} costliest of {}; --json lists all):", r.issues.len());
    } else {
        let _ = writeln!(out, "per issue:");
    }
    let width = issues.iter().map(|i| one_line(&i.id).len()).max().unwrap_or(0);
    for i in issues {
        let calls = match r.tracker_calls {
            Some(_) => format!("  tracker calls {:>3}", i.tracker_calls),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:<9}  {:<10}  time {:>8}  agent {:>8}{calls}  {}",
            one_line(&i.id),
            i.ending,
            format!("{} attempt{}", i.attempts, plural(i.attempts)),
            ms(i.time_ms),
            duration(i.agent_ms),
            usage(&i.usage)
        );
        if let Some(why) = &i.why {
            let _ = writeln!(out, "  {:<width$}  {}", "", one_line(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::activity::{Activity, Report};
    use crate::event::{Event, Record, ReleaseReason, SessionEndReason};

    fn records(events: Vec<Event>) -> Vec<Record> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Record {
                seq: i as u64 + 1,
                v: 2,
                ts: format!("2026-11-25T06:00:{:02}.000Z", i),
                session: "s-1".into(),
                event,
            })
            .collect()
    }

    #[test]
    fn tracker_calls_are_shown_in_total_and_per_issue() {
        let started = Event::SessionStarted {
            pid: 1,
            start_time: None,
            host: "h".into(),
            version: "0".into(),
            config: serde_json::json!({"options": {"agents": 2}}),
            recovers: None,
        };
        let mut events =
            vec![started, Event::TrackerCalls { backend: "br".into(), issues: Default::default(), other: 1 }];
        for id in ["br-1", "br-2"] {
            events.push(Event::IssueClaimed { issue: id.into(), actor: "bdp".into() });
            events.push(Event::IssueReleased { issue: id.into(), reason: ReleaseReason::Done, detail: None });
        }
        events.push(Event::TrackerCalls {
            backend: "br".into(),
            issues: [("br-1".to_string(), 4), ("br-2".to_string(), 3)].into_iter().collect(),
            other: 1,
        });
        events.push(Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] });
        let text = super::render(&Report::new(&Activity::from_records(&records(events))), None);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("tracker calls")).collect();
        insta::assert_snapshot!(lines.join("\n"));
    }
}
