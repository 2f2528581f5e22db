//! Facts about live processes, read from /proc: is a pid alive, and is it still the process we think
//! (same start time, field 22 of /proc/PID/stat, in clock ticks since boot).

/// The start time of a live process, or `None` if there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 on; start time is field 22, i.e. the 20th after the name.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is alive and, when `expected_start` is known, started at that time (not a reused pid).
pub fn is_alive(pid: u32, expected_start: Option<u64>) -> bool {
    match (start_time(pid), expected_start) {
        (Some(actual), Some(expected)) => actual == expected,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Like [`is_alive`], but a zombie (exited, not yet reaped by its parent) counts as gone.
pub fn is_running(pid: u32, expected_start: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let Some(close) = stat.rfind(')') else { return false };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let state = fields.first().copied();
    let start = fields.get(19).and_then(|f| f.parse::<u64>().ok());
    if matches!(state, Some("Z" | "X") | None) {
        return false;
    }
    expected_start.is_none_or(|expected| start == Some(expected))
}

/// How long ago a process with this start time (clock ticks since boot) started.
pub fn age(start_time: u64) -> Option<std::time::Duration> {
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let started = start_time as f64 / ticks;
    Some(std::time::Duration::from_secs_f64((uptime - started).max(0.0)))
}

/// Running processes (only our own user's environments are readable) that have the variable `names[0]`
/// set, with the values of each of `names`, their process group and start time. Used to find the
/// agents of this repository by the marker bdp puts in their environment.
pub fn with_env(names: &[&str]) -> Vec<Found> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let prefixes: Vec<Vec<u8>> = names.iter().map(|n| format!("{n}=").into_bytes()).collect();
    let mut found = Vec::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        let mut values = vec![None; names.len()];
        for entry in environ.split(|b| *b == 0) {
            for (i, prefix) in prefixes.iter().enumerate() {
                if let Some(value) = entry.strip_prefix(prefix.as_slice()) {
                    values[i] = Some(String::from_utf8_lossy(value).into_owned());
                }
            }
        }
        if values.first().is_none_or(Option::is_none) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if matches!(fields.first(), Some(&"Z" | &"X") | None) {
            continue;
        }
        let (Some(pgid), Some(start_time)) =
            (fields.get(2).and_then(|f| f.parse().ok()), fields.get(19).and_then(|f| f.parse().ok()))
        else {
            continue;
        };
        found.push(Found { pid, pgid, start_time, values });
    }
    found.sort_by_key(|f| f.pid);
    found
}

/// A process found by [`with_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub pid: u32,
    pub pgid: u32,
    pub start_time: u64,
    /// The values of the names asked for, in order.
    pub values: Vec<Option<String>>,
}

/// Live (not zombie) processes whose process group is `pgid`, from /proc.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some(close) = stat.rfind(')') else { return false };
            let mut fields = stat[close + 1..].split_whitespace();
            let state = fields.next();
            let _ppid = fields.next();
            let pgrp = fields.next().and_then(|f| f.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
        })
        .collect()
}

/// Whether some process holds a flock on `path`. Reads /proc/locks, so it never touches the lock (a probe
/// with a shared lock would make a `bdp run` starting at that instant fail); where /proc/locks cannot be
/// read it probes with a shared, non-blocking lock released at once.
pub fn flock_held(path: &std::path::Path) -> std::io::Result<bool> {
    let meta = std::fs::metadata(path)?;
    if let Some(held) = FlockTable::read() {
        return Ok(held.holds(&meta));
    }
    let file = std::fs::File::open(path)?;
    use rustix::fs::{FlockOperation, flock};
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            Ok(false)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// The files some process holds a flock on, from one read of /proc/locks (to ask about many files).
pub struct FlockTable(std::collections::HashSet<String>);

impl FlockTable {
    /// `None` where /proc/locks cannot be read.
    pub fn read() -> Option<FlockTable> {
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        // `N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0 EOF`; waiters have `->` before FLOCK and hold nothing.
        let held = locks
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.nth(1) == Some("FLOCK")).then(|| fields.nth(3).map(str::to_string)).flatten()
            })
            .collect();
        Some(FlockTable(held))
    }

    /// Whether the file with this metadata is flocked.
    pub fn holds(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        let dev = meta.dev();
        self.0.contains(&format!("{:02x}:{:02x}:{}", rustix::fs::major(dev), rustix::fs::minor(dev), meta.ino()))
    }
}

/// `git` processes (other than ours) working in `dir` or inside it.
pub fn git_processes_in(dir: &std::path::Path) -> Vec<u32> {
    processes_in(dir)
        .into_iter()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "git"))
        .collect()
}

/// Processes (that we may look at) whose working directory is `dir` or inside it.
pub fn processes_in(dir: &std::path::Path) -> Vec<u32> {
    let Ok(dir) = dir.canonicalize() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_us() {
        let me = std::process::id();
        let start = start_time(me).expect("our own /proc entry");
        assert!(is_alive(me, Some(start)));
        assert!(!is_alive(me, Some(start + 1)));
        assert!(!is_alive(u32::MAX - 1, None));
        assert!(is_running(me, Some(start)));
        assert!(!is_running(me, Some(start + 1)));
        assert!(age(start).is_some_and(|a| a < std::time::Duration::from_secs(3600)));
    }

    #[test]
    fn a_child_is_found_by_its_environment_and_is_gone_once_a_zombie() {
        let marker = format!("test-{}-{}", std::process::id(), line!());
        let mut child =
            std::process::Command::new("sleep").arg("30").env("BDP_TEST_MARKER", &marker).spawn().expect("sleep");
        let mut found = Vec::new();
        for _ in 0..100 {
            found =
                with_env(&["BDP_TEST_MARKER"]).into_iter().filter(|f| f.values[0] == Some(marker.clone())).collect();
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found.iter().map(|f| f.pid).collect::<Vec<_>>(), vec![child.id()]);
        child.kill().expect("kill");
        // Not reaped yet: a zombie, which is not running.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!is_running(child.id(), Some(found[0].start_time)));
        child.wait().expect("reap");
    }

    #[test]
    fn a_held_flock_is_seen_without_touching_it() {
        use rustix::fs::{FlockOperation, flock};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "").unwrap();
        assert!(!flock_held(&path).unwrap());
        let file = std::fs::File::open(&path).unwrap();
        flock(&file, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert!(flock_held(&path).unwrap());
        drop(file);
        assert!(!flock_held(&path).unwrap());
    }
}
