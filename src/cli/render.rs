//! Human-readable text for events and state, shared by the commands that print them.

use crate::event::{Event, MergeStrategy, Record};
use crate::state::{AttemptOutcome, Claim, IssueState, SessionEnd, SessionInfo};

/// One line describing what an event says (without its seq, time and type).
pub fn describe(event: &Event) -> String {
    match event {
        Event::SessionStarted { pid, host, version, recovers, .. } => {
            let mut s = format!("pid {pid} on {host}, bdp {version}");
            if let Some(r) = recovers {
                s.push_str(&format!(", recovering {r}"));
            }
            s
        }
        Event::SessionEnded { reason, left_running } if left_running.is_empty() => format!("{reason:?}").to_lowercase(),
        Event::SessionEnded { reason, left_running } => {
            format!(
                "{}; left running for the next run to adopt: {}",
                format!("{reason:?}").to_lowercase(),
                left_running.join(", ")
            )
        }
        Event::IssueClaimed { actor, .. } => format!("claimed as {actor}"),
        Event::ClaimLost { holder, detail, .. } => match holder {
            Some(h) => format!("now held by {h}: {detail}"),
            None => detail.clone(),
        },
        Event::IssueReleased { reason, detail, .. } => {
            let reason = format!("{reason:?}").to_lowercase();
            match detail {
                Some(d) => format!("{reason}: {d}"),
                None => reason,
            }
        }
        Event::WorktreeCreated { path, branch, base, .. } => format!("{path} on {branch} from {base}"),
        Event::WorktreeRemoved { path, .. } => path.clone(),
        Event::SpawnRequested { attempt, argv, .. } => format!("attempt {attempt}: {}", shell_words(argv)),
        Event::AgentSpawned { attempt, pid, pgid, .. } => format!("attempt {attempt}: pid {pid}, group {pgid}"),
        Event::AgentExited { attempt, code, signal, duration_ms, timed_out, .. } => {
            let how = match (code, signal) {
                (Some(c), _) => format!("exit {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                (None, None) => "exit unknown".to_string(),
            };
            let timeout = if *timed_out { ", timed out" } else { "" };
            format!("attempt {attempt}: {how} after {}{timeout}", duration(*duration_ms))
        }
        Event::AttemptAbandoned { attempt, reason, .. } => format!("attempt {attempt}: {reason}"),
        Event::PhaseChanged { phase, .. } => phase.as_str().to_string(),
        Event::CheckPassed { attempt, command, duration_ms, .. } => {
            format!("attempt {attempt}: `{command}` passed in {}", duration(*duration_ms))
        }
        Event::CheckFailed { attempt, command, code, .. } => {
            let code = code.map_or("a signal".to_string(), |c| format!("exit {c}"));
            format!("attempt {attempt}: `{command}` failed with {code}")
        }
        Event::MergeStarted { branch, base, strategy, .. } => {
            let how = match strategy {
                MergeStrategy::Merge => "merge",
                MergeStrategy::Rebase => "rebase",
                MergeStrategy::None => "none",
            };
            format!("{branch} into {base} ({how})")
        }
        Event::Merged { commit, .. } => format!("commit {}", short(commit)),
        Event::MergeConflicted { detail, .. } => detail.clone(),
        Event::LockAcquired { lock, holder_pid, .. } => format!("{lock} by pid {holder_pid}"),
        Event::LockReleased { lock } => lock.clone(),
        Event::LockBroken { lock, reason } => format!("{lock}: {reason}"),
        Event::TrackerStatusSet { status, assignee, backend, .. } => match assignee {
            Some(a) => format!("{status}, assignee {a} ({backend})"),
            None => format!("{status} ({backend})"),
        },
        Event::TrackerLabelsChanged { added, removed, backend, .. } => {
            let mut parts: Vec<String> = added.iter().map(|l| format!("+{l}")).collect();
            parts.extend(removed.iter().map(|l| format!("-{l}")));
            format!("{} ({backend})", parts.join(" "))
        }
        Event::TrackerIssueClosed { reason, backend, .. } => format!("{reason} ({backend})"),
        Event::TrackerDown { error } => format!("claims paused, writes wait: {error}"),
        Event::ClaimsStopped { reason } => format!("no more claims in this run: {reason}"),
        Event::ReviewVerdict { attempt, round, verdict, comments, .. } => {
            let what = match verdict {
                crate::event::Verdict::Approve => "approved",
                crate::event::Verdict::ChangesRequested => "changes requested",
            };
            let first = comments.lines().map(str::trim).find(|l| !l.is_empty());
            match first {
                Some(line) => format!("review {round} of attempt {attempt}: {what}: {line}"),
                None => format!("review {round} of attempt {attempt}: {what}"),
            }
        }
        Event::FileLockAcquired { holder, paths, shared, waited_ms, .. } => format!(
            "{holder} locked {}{}{}",
            paths.join(", "),
            if *shared { " (shared)" } else { "" },
            if *waited_ms > 0 { format!(" after waiting {}", duration(*waited_ms)) } else { String::new() }
        ),
        Event::FileLockRefused { holder, paths, held_by, waited_ms, deadlock } if deadlock.is_empty() => format!(
            "{holder} did not get {}: held by {} after {}",
            paths.join(", "),
            held_by.join(", "),
            duration(*waited_ms)
        ),
        Event::FileLockRefused { holder, paths, deadlock, .. } => {
            format!(
                "{holder} gave up {} at once: deadlock {} → {}",
                paths.join(", "),
                deadlock.join(" → "),
                deadlock[0]
            )
        }
        Event::FileLockReleased { holder, paths } => format!("{holder} unlocked {}", paths.join(", ")),
        Event::FileLockBroken { holder, path, reason, by } => format!("{by} broke {holder}'s lock on {path}: {reason}"),
        Event::ProgressReported { attempt, status, percent, step, steps, .. } => {
            format!("attempt {attempt}: {}", crate::text::progress_line(status, *percent, *step, *steps))
        }
        Event::HookRan { hook, code, duration_ms, .. } => match code {
            Some(0) => format!("{} hook passed in {}", hook.key(), duration(*duration_ms)),
            Some(code) => format!("{} hook exited {code} after {}", hook.key(), duration(*duration_ms)),
            None => format!("{} hook stopped after {}", hook.key(), duration(*duration_ms)),
        },
        Event::TrackerBack { down_ms, waiting } => {
            format!("after {}; {waiting} waiting write{} made", duration(*down_ms), plural(u64::from(*waiting)))
        }
        Event::TrackerCalls { backend, issues, other } => {
            let on_issues: u64 = issues.values().map(|&n| u64::from(n)).sum();
            let total = on_issues + u64::from(*other);
            format!(
                "{total} {backend} call{} ({on_issues} on {} issue{}, {other} other)",
                plural(total),
                issues.len(),
                plural(issues.len() as u64)
            )
        }
        Event::ReconcileFinding { kind, detail, .. } => format!("{kind}: {detail}"),
        Event::RepairApplied { kind, action, .. } => format!("{kind}: {action}"),
        Event::RetryScheduled { next_attempt, backoff_ms, reason, carry_on, .. } => {
            let mut how: Vec<String> = Vec::new();
            if let Some(c) = carry_on {
                if let Some(conflict) = &c.conflict {
                    how.push(format!(
                        "resolves its conflict with {} in {}",
                        crate::text::short(&conflict.base_commit),
                        conflict.files.join(", ")
                    ));
                } else if c.keep {
                    how.push("goes on from its work".into());
                }
                if let Some(session) = &c.resume {
                    how.push(format!("resumes session {session}"));
                }
            }
            let how = if how.is_empty() { String::new() } else { format!(" ({})", how.join("; ")) };
            format!("attempt {next_attempt} in {}: {reason}{how}", duration(*backoff_ms))
        }
        Event::LogTruncated { segment, offset, dropped_bytes } => {
            format!("cut {dropped_bytes} torn bytes from {segment} at byte {offset}")
        }
    }
}

/// argv shown the way a shell would need it (for display only; bdp never runs a shell string).
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:{}%+,@".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub use crate::text::{duration, short};

/// `HH:MM:SS.mmm` out of an RFC 3339 timestamp (the date is shown once per session).
pub fn time_of_day(ts: &str) -> &str {
    ts.get(11..23).unwrap_or(ts)
}

/// A table line for one record.
pub fn record_line(record: &Record, with_session: bool) -> String {
    let issue = record.event.issue().unwrap_or("-");
    let session = if with_session { format!("{:<22}  ", record.session) } else { String::new() };
    format!(
        "{:>7}  {}  {session}{:<22}  {:<12}  {}",
        record.seq,
        time_of_day(&record.ts),
        record.event.kind(),
        issue,
        one_line(&describe(&record.event))
    )
}

pub use crate::text::one_line;

/// How a session ended, in one word or two.
pub fn session_end(session: &SessionInfo, running: bool) -> String {
    match &session.end {
        SessionEnd::Ended { ts, reason, .. } => format!("{ts} ({})", format!("{reason:?}").to_lowercase()),
        SessionEnd::Crashed { .. } => "crashed".to_string(),
        SessionEnd::Open if running => "running".to_string(),
        SessionEnd::Open => "crashed".to_string(),
    }
}

/// One line about a claimed issue.
pub fn claim_line(id: &str, issue: &IssueState, claim: &Claim) -> String {
    let phase = issue.phase.map_or("claimed", |p| p.as_str());
    let mut s = format!("{id}  {phase}  since seq {} ({})", claim.seq, claim.session);
    if let Some(a) = &claim.attempt {
        s.push_str(&format!(", attempt {}", a.number));
        match (&a.spawned, &a.outcome) {
            (_, Some(AttemptOutcome::Exited { code, signal, .. })) => match (code, signal) {
                (Some(c), _) => s.push_str(&format!(" exited {c}")),
                (None, Some(sig)) => s.push_str(&format!(" killed by signal {sig}")),
                _ => s.push_str(" exited"),
            },
            (_, Some(AttemptOutcome::Abandoned { reason, .. })) => s.push_str(&format!(" abandoned ({reason})")),
            (Some(sp), None) => s.push_str(&format!(" pid {}", sp.pid)),
            (None, None) => s.push_str(" spawn requested, not confirmed"),
        }
    }
    if let Some(w) = &claim.worktree {
        s.push_str(&format!(", worktree {}", w.path));
    }
    if let Some(m) = &claim.merge {
        match &m.commit {
            Some(c) => s.push_str(&format!(", merged {}", short(c))),
            None => s.push_str(", merge in progress"),
        }
    }
    if let Some(r) = &claim.retry {
        s.push_str(&format!(", retry as attempt {}", r.next_attempt));
    }
    if let Some(l) = &claim.lost {
        s.push_str(&format!(", CLAIM LOST ({l})"));
    }
    one_line(&s)
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CarryOn, Conflict};

    #[test]
    fn a_retry_says_how_it_carries_on() {
        let retry = |carry_on| Event::RetryScheduled {
            issue: "a".into(),
            next_attempt: 2,
            backoff_ms: 5_000,
            reason: "stalled: no output for 10m".into(),
            carry_on,
        };
        assert_eq!(describe(&retry(None)), "attempt 2 in 5.0s: stalled: no output for 10m");
        let resume = CarryOn { resume: Some("u-1".into()), ..CarryOn::default() };
        assert_eq!(
            describe(&retry(Some(resume))),
            "attempt 2 in 5.0s: stalled: no output for 10m (resumes session u-1)"
        );
        let both = CarryOn { resume: Some("u-1".into()), keep: true, ..CarryOn::default() };
        assert_eq!(
            describe(&retry(Some(both))),
            "attempt 2 in 5.0s: stalled: no output for 10m (goes on from its work; resumes session u-1)"
        );
        let conflict = Conflict { base_commit: "0123456789abcdef".into(), files: vec!["a.rs".into(), "b.rs".into()] };
        let resolve = CarryOn { keep: true, conflict: Some(conflict), ..CarryOn::default() };
        assert_eq!(
            describe(&retry(Some(resolve))),
            "attempt 2 in 5.0s: stalled: no output for 10m (resolves its conflict with 0123456789ab in a.rs, b.rs)"
        );
    }
}
