//! The Gantt chart as inline SVG: a row per agent slot, a `<rect class="b o-OUTCOME" data-i=N>` per attempt,
//! phases as strips inside the bars (one `<path>` per phase kind for all bars, so the file stays small), a
//! time axis with ticks, and markers for merges, session starts and ends, crashes (red dashed, labelled
//! "crash: session X") and recovery findings and repairs (with a `<title>`). Every piece of text is escaped.

use std::fmt::Write;

use crate::activity::{Activity, AttemptSpan, Millis, SessionEndKind};
use crate::event::Phase;

use super::escape;

const LEFT: f64 = 64.0;
const TOP: f64 = 58.0;
const ROW: f64 = 18.0;
const BAR: f64 = 14.0;
const STRIP: f64 = 5.0;
const RIGHT: f64 = 240.0;

/// The phase kinds drawn inside bars, with the CSS class of each.
pub const PHASE_KINDS: [(&str, &str); 5] = [
    ("p-setup", "claim, worktree"),
    ("p-agent", "agent running"),
    ("p-check", "exited, check"),
    ("p-queue", "merge queue"),
    ("p-merge", "merged, closing"),
];

fn phase_kind(phase: Phase) -> usize {
    match phase {
        Phase::Claimed | Phase::WorktreeReady => 0,
        Phase::Running => 1,
        Phase::Exited => 2,
        Phase::Checked => 3,
        Phase::Merged | Phase::Closed => 4,
    }
}

struct Scale {
    t0: Millis,
    px_per_ms: f64,
}

impl Scale {
    fn x(&self, ms: Millis) -> f64 {
        LEFT + (ms - self.t0) as f64 * self.px_per_ms
    }
}

/// A tick step (ms) giving about `width / 110` ticks.
fn tick_step(span_ms: i64, width: f64) -> i64 {
    const STEPS: [i64; 19] = [
        1_000,
        2_000,
        5_000,
        10_000,
        15_000,
        30_000,
        60_000,
        120_000,
        300_000,
        600_000,
        900_000,
        1_800_000,
        3_600_000,
        7_200_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        172_800_000,
    ];
    let wanted = (width / 110.0).max(2.0);
    STEPS.into_iter().find(|s| (span_ms as f64 / *s as f64) <= wanted).unwrap_or(604_800_000)
}

fn clock(ms: Millis, with_date: bool) -> String {
    let Ok(t) = jiff::Timestamp::from_millisecond(ms) else { return String::new() };
    t.strftime(if with_date { "%m-%d %H:%M" } else { "%H:%M:%S" }).to_string()
}

pub fn svg(a: &Activity) -> String {
    let t0 = a.first_ms.min(a.attempts.iter().map(|t| t.start_ms).min().unwrap_or(a.first_ms));
    let t1 = a.last_ms.max(a.attempts.iter().map(|t| t.end_ms).max().unwrap_or(a.last_ms)).max(t0 + 1);
    let mut per_slot = vec![0usize; a.slots.max(1)];
    for t in &a.attempts {
        per_slot[t.slot] += 1;
    }
    let chart_w = (per_slot.iter().max().copied().unwrap_or(0) as f64 * 8.0).clamp(1100.0, 30_000.0);
    let scale = Scale { t0, px_per_ms: chart_w / (t1 - t0) as f64 };
    let rows = a.slots.max(1);
    let height = TOP + rows as f64 * ROW + 24.0;
    let width = LEFT + chart_w + RIGHT;
    let bottom = TOP + rows as f64 * ROW;
    let mut s = String::with_capacity(200 + a.attempts.len() * 200);
    let _ = write!(
        s,
        r#"<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="attempts over time">"#
    );
    for row in 0..rows {
        let y = TOP + row as f64 * ROW;
        let _ = write!(
            s,
            r#"<rect class="lane" x="{LEFT}" y="{y:.0}" width="{chart_w:.0}" height="{BAR}"/><text x="4" y="{:.0}">slot {}</text>"#,
            y + 11.0,
            row + 1
        );
    }
    axis(&mut s, &scale, t0, t1, chart_w, bottom);
    for (i, t) in a.attempts.iter().enumerate() {
        let (x, w) = (scale.x(t.start_ms), ((t.end_ms - t.start_ms) as f64 * scale.px_per_ms).max(1.0));
        let y = TOP + t.slot as f64 * ROW;
        let _ = write!(
            s,
            r#"<rect class="b o-{}" data-i="{i}" x="{x:.1}" y="{y:.0}" width="{w:.1}" height="{BAR}"/>"#,
            t.outcome.as_str()
        );
    }
    phases(&mut s, &scale, &a.attempts);
    progress(&mut s, &scale, &a.attempts);
    markers(&mut s, a, &scale, bottom);
    s.push_str("</svg>");
    s
}

fn axis(s: &mut String, scale: &Scale, t0: Millis, t1: Millis, chart_w: f64, bottom: f64) {
    let step = tick_step(t1 - t0, chart_w);
    let with_date = t1 - t0 > 86_400_000;
    let mut tick = (t0 / step + 1) * step;
    let _ = write!(s, r#"<path class="tick" d=""#);
    let mut labels = String::new();
    while tick < t1 {
        let x = scale.x(tick);
        let _ = write!(s, "M{x:.1} {:.0}V{bottom:.0}", TOP - 4.0);
        let _ = write!(
            labels,
            r#"<text x="{x:.1}" y="{:.0}" text-anchor="middle">{}</text>"#,
            TOP - 8.0,
            clock(tick, with_date)
        );
        tick += step;
    }
    s.push_str(r#""/>"#);
    s.push_str(&labels);
    let _ = write!(s, r#"<text x="{LEFT}" y="{:.0}">{} UTC</text>"#, bottom + 16.0, escape(&clock(t0, true)));
}

fn phases(s: &mut String, scale: &Scale, attempts: &[AttemptSpan]) {
    let mut paths: Vec<String> = vec![String::new(); PHASE_KINDS.len()];
    for t in attempts {
        let y = TOP + t.slot as f64 * ROW + BAR - STRIP;
        let mut marks: Vec<(Millis, usize)> = vec![(t.start_ms, 0)];
        marks.extend(t.phases.iter().map(|p| (p.at_ms.clamp(t.start_ms, t.end_ms), phase_kind(p.phase))));
        // A log without phase changes around the agent (older writers, hand-made logs): its spawn and exit.
        if !t.phases.iter().any(|p| p.phase == Phase::Running)
            && let Some(spawned) = t.spawned_ms
        {
            marks.push((spawned.clamp(t.start_ms, t.end_ms), 1));
            if let Some(ended) = t.ended_ms {
                marks.push((ended.clamp(t.start_ms, t.end_ms), 2));
            }
            marks.sort_by_key(|m| m.0);
        }
        for (j, &(from, kind)) in marks.iter().enumerate() {
            let to = marks.get(j + 1).map_or(t.end_ms, |m| m.0);
            let w = (to - from) as f64 * scale.px_per_ms;
            if w >= 0.3 {
                let _ = write!(paths[kind], "M{:.1} {y:.0}h{w:.1}v{STRIP}h-{w:.1}z", scale.x(from));
            }
        }
    }
    for ((class, _), d) in PHASE_KINDS.iter().zip(paths) {
        if !d.is_empty() {
            let _ = write!(s, r#"<path class="{class}" pointer-events="none" d="{d}"/>"#);
        }
    }
}

/// The agents' progress reports: a dot on the bar where each came, the report as its `<title>`.
fn progress(s: &mut String, scale: &Scale, attempts: &[AttemptSpan]) {
    for t in attempts {
        let y = TOP + t.slot as f64 * ROW + 3.0;
        for p in &t.progress {
            let _ = write!(
                s,
                r#"<circle class="pg" cx="{:.1}" cy="{y:.0}" r="2.5"><title>{} attempt {}: {}</title></circle>"#,
                scale.x(p.at_ms.clamp(t.start_ms, t.end_ms)),
                escape(&t.issue),
                t.attempt,
                escape(&p.text)
            );
        }
    }
}

fn markers(s: &mut String, a: &Activity, scale: &Scale, bottom: f64) {
    let top = TOP - 4.0;
    if !a.merges.is_empty() {
        s.push_str(r#"<path class="m-merge" pointer-events="none" d=""#);
        for m in &a.merges {
            let _ = write!(s, "M{:.1} {top:.0}V{bottom:.0}", scale.x(m.at_ms));
        }
        s.push_str(r#""/>"#);
    }
    for (i, session) in a.sessions.iter().enumerate() {
        let x = scale.x(session.start_ms);
        // Labels alternate between two lines so that close sessions stay readable.
        let ly = if i % 2 == 0 { 12.0 } else { 24.0 };
        let _ = write!(
            s,
            r#"<line class="m-start" x1="{x:.1}" y1="{:.0}" x2="{x:.1}" y2="{bottom:.0}"/><text x="{:.1}" y="{ly}">session {}</text>"#,
            ly + 2.0,
            x + 2.0,
            escape(&session.id)
        );
        let end = scale.x(session.last_ms);
        match session.end {
            SessionEndKind::Crashed => {
                let _ = write!(
                    s,
                    r#"<line class="m-crash" x1="{end:.1}" y1="{:.0}" x2="{end:.1}" y2="{bottom:.0}"/><text class="t-crash" x="{:.1}" y="{:.0}" text-anchor="end">crash: session {}</text>"#,
                    ly + 10.0,
                    // Left of the line: the recovering session's label starts right of it.
                    end - 3.0,
                    ly + 12.0,
                    escape(&session.id)
                );
            }
            SessionEndKind::Ended(reason) => {
                let _ = write!(
                    s,
                    r#"<line class="m-end" x1="{end:.1}" y1="{top:.0}" x2="{end:.1}" y2="{bottom:.0}"><title>session {} ended ({})</title></line>"#,
                    escape(&session.id),
                    reason.as_str()
                );
            }
            SessionEndKind::Open => {}
        }
    }
    for r in &a.recoveries {
        let x = scale.x(r.at_ms);
        let (class, what, y) =
            if r.repair { ("m-repair", "repair", top - 14.0) } else { ("m-finding", "finding", top - 8.0) };
        let issue = r.issue.as_deref().map_or(String::new(), |i| format!(" [{i}]"));
        let _ = write!(
            s,
            r#"<path class="{class}" d="M{x:.1} {y:.0}l-4 -6h8z"><title>{what} {}{}: {} (session {})</title></path>"#,
            escape(&r.kind),
            escape(&issue),
            escape(&r.text),
            escape(&r.session)
        );
    }
}
