//! Builds a repository for the audit benchmark: N issues in `.beads/issues.jsonl` (default 10 000), the
//! first L of them (default 500) `in_progress` for bdp with an issue lock file each under `.bdp/locks/`,
//! and a log whose last session claimed those L and then died (its pid is gone). `bdp audit` finds each
//! lock held by a dead pid and each claim interrupted; the seed users' shell loop asks the tracker about
//! each lock file.
//!
//! cargo run --release --example gen_audit -- DIR [N] [L]

use bdp::event::Event;
use bdp::log::LogWriter;
use bdp::log::lock::Holder;
use bdp::reconcile::issue_lock;
use bdp::repo::escape_path_component;

/// A pid no process has (above the kernel's largest).
const DEAD_PID: u32 = 4_194_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: gen_audit DIR [ISSUES] [LOCKS]"));
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let locks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    std::fs::create_dir_all(dir.join(".beads")).unwrap();
    std::fs::create_dir_all(dir.join(".bdp/locks")).unwrap();
    let mut jsonl = String::new();
    for i in 0..n {
        let (status, assignee) = if i < locks { ("in_progress", ",\"assignee\":\"bdp\"") } else { ("open", "") };
        jsonl.push_str(&format!(
            "{{\"id\":\"bench-{i}\",\"title\":\"issue {i}\",\"status\":\"{status}\",\"priority\":{},\"issue_type\":\"task\",\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:00Z\"{assignee}}}\n",
            i % 5
        ));
    }
    std::fs::write(dir.join(".beads/issues.jsonl"), jsonl).unwrap();
    let bdp = dir.join(".bdp");
    let (log, _) =
        LogWriter::open(&bdp.join("events"), &bdp.join("append.lock"), "s-bench", bdp::log::system_clock()).unwrap();
    let mut events = vec![Event::SessionStarted {
        pid: DEAD_PID,
        start_time: Some(1),
        host: "bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        config: serde_json::Value::Null,
        recovers: None,
    }];
    let holder = Holder { pid: DEAD_PID, start_time: Some(1), since: "2026-11-25T06:00:00Z".into() }.render();
    for i in 0..locks {
        let id = format!("bench-{i}");
        events.push(Event::IssueClaimed { issue: id.clone(), actor: "bdp".into() });
        events.push(Event::LockAcquired { lock: issue_lock(&id), holder_pid: DEAD_PID, issue: Some(id.clone()) });
        let file = bdp.join("locks").join(format!("{}.lock", escape_path_component(&issue_lock(&id))));
        std::fs::write(file, &holder).unwrap();
    }
    log.append(events).unwrap();
}
