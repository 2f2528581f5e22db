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
    }
}
