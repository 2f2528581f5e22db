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

/// A duration written by a person: `30m`, `10s`, `1h30m`, `250ms`, `2 minutes` (jiff's friendly
/// format), whole days (`7d`, which jiff reads only as calendar units), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    if let Some(days) = text.trim().strip_suffix('d').and_then(|d| d.trim().parse::<u64>().ok()) {
        return Ok(std::time::Duration::from_secs(days.saturating_mul(86_400)));
    }
    let d: jiff::SignedDuration =
        text.trim().parse().map_err(|_| format!("not a duration (try 30m, 10s, 1h30m, 500ms): {text:?}"))?;
    std::time::Duration::try_from(d).map_err(|_| format!("a duration cannot be negative: {text:?}"))
}

/// Micro-dollars for people: `$1.25`, `$0.008` (cents, or to the tenth of a cent below a dollar).
pub fn usd(micro: u64) -> String {
    let text = format!("{:.4}", micro as f64 / 1e6);
    let trimmed = text.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals < 2 { format!("${:.2}", micro as f64 / 1e6) } else { format!("${trimmed}") }
}

/// The first 12 characters of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Control characters (newlines from hostile issue text, escape sequences) are shown escaped.
pub fn one_line(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// An agent's progress report as one line: its status (control characters escaped, cut to 120
/// characters), then the percent and the step it gave, if any: `writing tests (60%, step 3/5)`.
pub fn progress_line(status: &str, percent: Option<u8>, step: Option<u32>, steps: Option<u32>) -> String {
    let mut text = one_line(status);
    if text.chars().count() > 120 {
        text = text.chars().take(119).collect::<String>() + "…";
    }
    let mut extra = Vec::new();
    if let Some(p) = percent {
        extra.push(format!("{p}%"));
    }
    match (step, steps) {
        (Some(s), Some(n)) => extra.push(format!("step {s}/{n}")),
        (Some(s), None) => extra.push(format!("step {s}")),
        _ => {}
    }
    if extra.is_empty() { text } else { format!("{text} ({})", extra.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_written_by_people() {
        use std::time::Duration;
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            (usd(1_200_000), usd(1_000_000), usd(8_000), usd(16_000)),
            ("$1.20".into(), "$1.00".into(), "$0.008".into(), "$0.016".into())
        );
        assert!(parse_duration("-5s").is_err());
    }

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
