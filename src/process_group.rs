//! Process groups: an agent runs in a group of its own (its wrapper leads it), and this is how bdp signals a
//! group, asks whether it still has members, and stops it (TERM, grace, KILL), for the supervisor, recovery
//! and `bdp audit --fix` alike.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// Sends `signal` to the process group `pgid`; a group that is already gone is fine. Never to group 1
/// (init's): `kill(-1)` means every process we may signal, and a pgid read from an old log can be 1.
pub fn signal_group(pgid: u32, signal: Signal) {
    if pgid <= 1 {
        return;
    }
    if let Some(pid) = Pid::from_raw(pgid as i32) {
        let _ = kill_process_group(pid, signal);
    }
}

/// Whether any process of the group is still alive (zombies waiting to be reaped do not count).
pub fn group_alive(pgid: u32) -> bool {
    pgid > 1
        && Pid::from_raw(pgid as i32).is_some_and(|pid| test_kill_process_group(pid).is_ok())
        && !crate::process::group_members(pgid).is_empty()
}

/// The one way bdp stops a process group (as nextest's `terminate_child`): nothing if `gone` already; else
/// TERM, up to `grace` for `gone`, then KILL and up to 5 s more. `gone` says what is being waited for: the
/// group leader, or every member of the group.
pub async fn terminate_group(pgid: u32, grace: Duration, gone: impl Fn() -> bool) {
    terminate(pgid, grace, gone, signal_group).await
}

/// [`terminate_group`] for a wrapper that is our own child, not yet waited for: `pgid` is its pid. Spawned
/// without a hook, it makes its group itself, first thing; a signal that comes before that goes to the
/// wrapper alone (the agent is not started yet). Safe only for our unreaped child, whose pid cannot be
/// anyone else's.
pub async fn terminate_own_group(pid: u32, grace: Duration, gone: impl Fn() -> bool) {
    terminate(pid, grace, gone, signal_own_group).await
}

fn signal_own_group(pid: u32, signal: Signal) {
    let Some(p) = Pid::from_raw(pid as i32).filter(|_| pid > 1) else { return };
    if kill_process_group(p, signal) == Err(rustix::io::Errno::SRCH) {
        let _ = rustix::process::kill_process(p, signal);
    }
}

async fn terminate(pgid: u32, grace: Duration, gone: impl Fn() -> bool, signal: fn(u32, Signal)) {
    if gone() {
        return;
    }
    signal(pgid, Signal::TERM);
    let until = Instant::now() + grace;
    while !gone() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if gone() {
        return;
    }
    signal(pgid, Signal::KILL);
    let until = Instant::now() + Duration::from_secs(5);
    while !gone() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops a process group no task supervises ([`terminate_group`], from code that is not async).
/// Blocks the calling thread: only for recovery, before the dispatcher runs.
pub fn stop_group_blocking(pgid: u32, grace: Duration) {
    let stop = terminate_group(pgid, grace, || !group_alive(pgid));
    match tokio::runtime::Handle::try_current() {
        // On the orchestrator's (multi-thread) runtime: this worker blocks, the others go on.
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(stop)),
        Err(_) => match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime.block_on(stop),
            Err(_) => signal_group(pgid, Signal::KILL),
        },
    }
}
