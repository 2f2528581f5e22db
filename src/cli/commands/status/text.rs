//! The human text of `bdp status`: compact label-column lines, variable values (pids, times) at the ends
//! of lines so that columns stay aligned.

use crate::cli::commands::status::{AgentReport, ClaimReport, LockReport, Report};
use crate::cli::render::{duration, one_line};

pub(crate) fn print(r: &Report) {
    let o = &r.orchestrator;
    let holder = match (o.pid, &o.since) {
        (Some(pid), Some(since)) => format!("pid {pid} since {since}"),
        _ => "holder unknown".to_string(),
    };
    let orchestrator = if o.running {
        format!("running, {holder}")
    } else if o.lock_file && o.pid.is_some() {
        let gone = if o.pid_alive == Some(true) { "alive but no longer holding the lock" } else { "gone" };
        format!("not running (last: {holder}, {gone})")
    } else {
        "not running".to_string()
    };
    println!("{:<13} {orchestrator}", "orchestrator");
    match &r.session {
        None => println!("{:<13} none yet", "session"),
        Some(s) => {
            let how = match s.state {
                "running" => "running".to_string(),
                "ended" => format!(
                    "ended {} ({})",
                    s.ended_at.as_deref().unwrap_or("?"),
                    s.end_reason.as_deref().unwrap_or("?")
                ),
                _ if o.running => "crashed (the running orchestrator takes it over)".to_string(),
                _ => "crashed: open in the log, but no orchestrator is running (`bdp run` recovers it)".to_string(),
            };
            println!("{:<13} {}, started {} by pid {}: {how}", "session", one_line(&s.id), s.started_at, s.pid);
            let c = &s.counts;
            println!(
                "{:<13} {} claimed, {} done, {} failed, {} conflicts",
                "totals", c.claims, c.done, c.failed, c.conflicts
            );
        }
    }
    match (&r.tracker.name, &r.tracker.error) {
        (Some(name), _) => println!("{:<13} {name}", "tracker"),
        (None, Some(err)) => {
            println!("{:<13} cannot open: {}", "tracker", one_line(err));
            if let Some(hint) = &r.tracker.hint {
                println!("{:<13} hint: {}", "", one_line(hint));
            }
        }
        (None, None) => println!("{:<13} unknown", "tracker"),
    }
    print_agents(&r.agents);
    print_claimed(&r.claimed);
    print_locks(&r.locks);
    print_file_locks(&r.file_locks);
}

fn print_file_locks(listing: &crate::file_locks::Listing) {
    if listing.locks.is_empty() && listing.waiting.is_empty() {
        return;
    }
    println!("{:<13} {}", "file locks", listing.locks.len());
    let w = width(listing.locks.iter().map(|l| l.path.as_str()));
    for l in &listing.locks {
        let mode = if l.shared { "shared" } else { "exclusive" };
        let gone = if crate::process::is_alive(l.pid, l.start_time) { "" } else { " (gone)" };
        println!(
            "  {:<w$}  {mode}, held by {} (pid {}{gone}) since {}",
            one_line(&l.path),
            one_line(&l.holder),
            l.pid,
            l.since
        );
    }
    for wt in &listing.waiting {
        println!(
            "  waiting: {} for {} (held by {})",
            one_line(&wt.holder),
            one_line(&wt.paths.join(", ")),
            one_line(&wt.waits_for.join(", "))
        );
    }
}

fn width<'a>(items: impl Iterator<Item = &'a str>) -> usize {
    items.map(|s| one_line(s).chars().count()).max().unwrap_or(0)
}

fn print_agents(agents: &[AgentReport]) {
    if agents.is_empty() {
        println!("{:<13} none running", "agents");
        return;
    }
    let dead = agents.iter().filter(|a| !a.alive).count();
    let gone = if dead > 0 { format!(" ({dead} not alive)") } else { String::new() };
    println!("{:<13} {}{gone}", "agents", agents.len());
    let w = width(agents.iter().map(|a| a.issue.as_str()));
    let phw = agents.iter().map(|a| a.phase.len()).max().unwrap_or(0);
    for a in agents {
        let elapsed = a.elapsed_ms.map_or("?".to_string(), duration);
        println!(
            "  {:<w$}  #{:<3} {:<phw$}  {:<5}  pid {}, {elapsed}",
            one_line(&a.issue),
            a.attempt,
            a.phase,
            if a.alive { "alive" } else { "DEAD" },
            a.pid,
        );
        if let Some(p) = &a.progress {
            println!("  {:<w$}  progress: {}", "", crate::text::progress_line(&p.status, p.percent, p.step, p.steps));
        }
    }
}

fn print_claimed(claimed: &[ClaimReport]) {
    if claimed.is_empty() {
        return;
    }
    println!("{:<13} {} not running", "claimed", claimed.len());
    let w = width(claimed.iter().map(|c| c.issue.as_str()));
    let phw = claimed.iter().map(|c| c.phase.len()).max().unwrap_or(0);
    for c in claimed {
        println!("  {:<w$}  {:<phw$}  {}", one_line(&c.issue), c.phase, one_line(&c.detail));
    }
}

fn print_locks(locks: &[LockReport]) {
    if locks.is_empty() {
        println!("{:<13} none", "locks");
        return;
    }
    println!("{:<13} {}", "locks", locks.len());
    let w = width(locks.iter().map(|l| l.name.as_str()));
    for l in locks {
        let mut parts = Vec::new();
        if l.in_log {
            let mut held = format!("held by pid {}", l.holder_pid.unwrap_or(0));
            if l.holder_alive == Some(false) {
                held.push_str(" (gone)");
            }
            if let Some(issue) = &l.issue {
                held.push_str(&format!(" for {}", one_line(issue)));
            }
            held.push_str(&format!(" since seq {}", l.since_seq.unwrap_or(0)));
            parts.push(held);
        } else {
            parts.push("not in the log".to_string());
        }
        if let Some(file) = &l.file {
            let state = if l.file_locked == Some(true) { "locked" } else { "not locked" };
            parts.push(format!("file {} ({state})", one_line(file)));
        }
        println!("  {:<w$}  {}", one_line(&l.name), parts.join("; "));
    }
}
