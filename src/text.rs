//! How bdp writes common values for people, once for every layer (the core's run events, the progress
//! lines, status, replay, audit): a duration and a commit id.

/// A duration for people: `850ms`, `4.2s`, `3m05s`, `1h02m`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// [`duration`] of a `std::time::Duration`.
pub fn duration_of(d: std::time::Duration) -> String {
    duration(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The first 12 characters of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_commits_for_people() {
        let cases = [
            (0, "0ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (4_250, "4.2s"),
            (59_999, "60.0s"),
            (60_000, "1m00s"),
            (185_000, "3m05s"),
            (3_599_999, "59m59s"),
            (3_600_000, "1h00m"),
            (3_720_000, "1h02m"),
        ];
        for (ms, want) in cases {
            assert_eq!(duration(ms), want, "{ms} ms");
        }
        assert_eq!(duration_of(std::time::Duration::from_secs(2)), "2.0s");
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
