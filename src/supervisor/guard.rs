//! The resource guard: no new agent is spawned while the machine is busy — the 1-minute load average per
//! core above `--max-load`, or memory in use above `--max-mem` percent. Read from /proc; a value that
//! cannot be read never blocks.

/// Why a spawn waits, or `None` when the machine has room.
pub fn busy(max_load_per_core: f64, max_mem_percent: f64) -> Option<String> {
    if let Some(load) = load_per_core()
        && load > max_load_per_core
    {
        return Some(format!("load {load:.2} per core is above --max-load {max_load_per_core}"));
    }
    if let Some(mem) = memory_used_percent()
        && mem > max_mem_percent
    {
        return Some(format!("memory use {mem:.0}% is above --max-mem {max_mem_percent}%"));
    }
    None
}

fn load_per_core() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let one: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Some(one / cores as f64)
}

fn memory_used_percent() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    (total > 0.0).then(|| 100.0 * (total - available) / total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_are_applied_to_what_proc_says() {
        assert_eq!(super::busy(f64::INFINITY, 100.0), None);
        assert!(super::busy(-1.0, 100.0).unwrap().contains("--max-load"));
        assert!(super::busy(f64::INFINITY, -1.0).unwrap().contains("--max-mem"));
    }
}
