//! Small numeric helpers of the activity figures: the union of time spans, nearest-rank percentiles and
//! mean of durations, and usage sums that keep "nobody reported" apart from zero.

use serde::Serialize;

use super::{AttemptSpan, Millis};

/// The union of `[start, end]` spans as sorted, disjoint spans.
pub fn union(spans: impl Iterator<Item = (Millis, Millis)>) -> Vec<(Millis, Millis)> {
    let mut spans: Vec<(Millis, Millis)> = spans.map(|(s, e)| (s, e.max(s))).collect();
    spans.sort_unstable();
    let mut out: Vec<(Millis, Millis)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Total length of the union of `[start, end]` spans, in ms.
pub fn union_ms(spans: impl Iterator<Item = (Millis, Millis)>) -> u64 {
    union(spans).iter().map(|(s, e)| (e - s) as u64).sum()
}

/// How much of `span` lies inside the sorted, disjoint `union`.
pub fn overlap_ms(union: &[(Millis, Millis)], span: (Millis, Millis)) -> u64 {
    let first = union.partition_point(|&(_, e)| e <= span.0);
    union[first..]
        .iter()
        .take_while(|&&(s, _)| s < span.1)
        .map(|&(s, e)| (e.min(span.1) - s.max(span.0)).max(0) as u64)
        .sum()
}

/// The nearest-rank percentile (`p` in 0..=100) of sorted values: the smallest value with at least p % of
/// the values at or below it. `None` for no values.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p.min(100)) * sorted.len() as u64).div_ceil(100).max(1);
    Some(sorted[rank as usize - 1])
}

/// Count, mean and p95 of some durations (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Stat {
    pub count: u64,
    /// Rounded down to the ms; `null` without values.
    pub mean_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
}

impl Stat {
    pub fn of(values: impl Iterator<Item = u64>) -> Stat {
        let mut v: Vec<u64> = values.collect();
        v.sort_unstable();
        let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
        Stat {
            count: v.len() as u64,
            mean_ms: (!v.is_empty()).then(|| (sum / v.len() as u128) as u64),
            p95_ms: percentile(&v, 95),
            max_ms: v.last().copied(),
        }
    }
}

/// Usage summed over attempts. `reported == 0` means unknown: the token fields are then 0 only because
/// nothing was added, and must be shown as unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct UsageSum {
    /// Attempts counted (those that ran an agent or tried to).
    pub attempts: u64,
    /// Of those, attempts whose agent reported usage.
    pub reported: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    /// Attempts that reported a cost.
    pub cost_reported: u64,
    /// Sum of the reported costs, micro-dollars; `null` when no attempt reported one.
    pub cost_micro_usd: Option<u64>,
}

impl UsageSum {
    pub fn of<'a>(attempts: impl Iterator<Item = &'a AttemptSpan>) -> UsageSum {
        let mut sum = UsageSum::default();
        for a in attempts {
            sum.attempts += 1;
            let Some(u) = &a.usage else { continue };
            sum.reported += 1;
            sum.input_tokens += u.input_tokens;
            sum.cached_input_tokens += u.cached_input_tokens;
            sum.output_tokens += u.output_tokens;
            if let Some(c) = u.cost_micro_usd {
                sum.cost_reported += 1;
                *sum.cost_micro_usd.get_or_insert(0) += c;
            }
        }
        sum
    }

    /// Nobody reported anything.
    pub fn is_unknown(&self) -> bool {
        self.reported == 0
    }

    /// Input plus output tokens, `None` when unknown. Cached input is kept apart: Codex counts it inside
    /// `input_tokens`, Claude Code beside it, so adding it in would count Codex's twice.
    pub fn tokens(&self) -> Option<u64> {
        (!self.is_unknown()).then_some(self.input_tokens + self.output_tokens)
    }
}
