//! `bdp stop [--now] [--wait]`: asks the running orchestrator of this repository to stop. It finds it by
//! the orchestrator lock (held means running; the file says pid and start time, so a reused pid is never
//! signalled). Drain is SIGTERM (what Ctrl-C does); `--now` is SIGUSR1 (what a second Ctrl-C does).

use std::time::{Duration, Instant};

use clap::Args;

use crate::error::{CliError, CliResult};
use crate::log::lock::Holder;
use crate::repo::Repo;

use crate::cli::Outcome;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Terminate the running agents now (TERM, then KILL after the grace period) instead of letting
    /// them finish.
    #[arg(long)]
    pub now: bool,
    /// Wait until the run has ended.
    #[arg(long)]
    pub wait: bool,
}

pub fn run(repo: &Repo, args: &StopArgs) -> CliResult<Outcome> {
    let path = repo.orchestrator_lock_path();
    if !lock_is_held(&path)? {
        println!("no `bdp run` is running in {}", repo.root.display());
        return Ok(Outcome::Found);
    }
    let holder = Holder::read(&path).ok_or_else(|| {
        CliError::data(format!("{}: held, but it does not say who holds it", path.display()))
            .with_hint("a bdp from another version may be running; stop it with Ctrl-C")
    })?;
    if !crate::process::is_alive(holder.pid, holder.start_time) {
        return Err(CliError::data(format!(
            "{}: held, but its holder (pid {}) is not the process that wrote it",
            path.display(),
            holder.pid
        )));
    }
    let signal = if args.now { rustix::process::Signal::USR1 } else { rustix::process::Signal::TERM };
    let pid = rustix::process::Pid::from_raw(holder.pid as i32)
        .ok_or_else(|| CliError::data(format!("{}: bad pid {}", path.display(), holder.pid)))?;
    rustix::process::kill_process(pid, signal)
        .map_err(|e| CliError::internal(format!("cannot signal pid {}: {e}", holder.pid)))?;
    let how = if args.now { "stop now (agents are terminated)" } else { "drain (running agents finish)" };
    println!("asked bdp run (pid {}, since {}) to {how}", holder.pid, holder.since);
    if args.wait {
        let started = Instant::now();
        while lock_is_held(&path)? {
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("it ended after {}", crate::text::duration_of(started.elapsed()));
    }
    Ok(Outcome::Ok)
}

/// Whether some process holds the orchestrator lock (a free flock means nobody runs, whatever the file says).
fn lock_is_held(path: &std::path::Path) -> CliResult<bool> {
    match crate::cli::live::flock_held(path) {
        Ok(held) => Ok(held),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::io("lock", path, &e)),
    }
}
