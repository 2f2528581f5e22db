//! `bdp replay [SESSION] --html FILE`: the timeline as one self-contained HTML file — a header with the
//! totals, a Gantt chart of the attempts (`chart.rs`), and each attempt's events for hover and click.
//!
//! Self-contained: CSS, JS and SVG inline; no reference to anything outside the file (the only URL in it is
//! the SVG namespace name, which is never fetched). Issue ids and every text from the log are hostile: they
//! are HTML-escaped in markup, and the per-attempt events are a JSON block (`<script
//! type="application/json">`, with `<`, `>` and `&` written as `\u003c`… so it cannot end the script) that
//! the page's script renders with `textContent` only.
//!
//! Reads the log (verifying its chain) and writes only FILE: a temp file in FILE's directory, renamed over
//! it, so a reader never sees half a file.

mod chart;

use std::io::Write as _;
use std::path::Path;

use serde_json::json;

use crate::activity::{Activity, Outcome as AttemptOutcome, Report};
use crate::cli::Outcome;
use crate::cli::commands::replay::find_session;
use crate::cli::commands::summary::text::usage;
use crate::cli::commands::summary::walk_log;
use crate::cli::render::{describe, duration, one_line, time_of_day};
use crate::error::{CliError, CliResult};
use crate::event::{Event, Record};
use crate::repo::Repo;

const CSS: &str = include_str!("html/page.css");
const JS: &str = include_str!("html/page.js");
/// Longest event detail embedded (the rest is cut, marked with `…`).
const DETAIL_MAX: usize = 300;

pub fn run(repo: &Repo, session: Option<&str>, file: &Path) -> CliResult<Outcome> {
    let mut records: Vec<Record> = Vec::new();
    let state = walk_log(repo, |record| records.push(record.clone()))?;
    let mut activity = Activity::from_records(&records);
    let n = activity.sessions.len();
    let mut title = format!("{n} session{}", if n == 1 { "" } else { "s" });
    if let Some(wanted) = session {
        let id = find_session(&state, wanted)?.id.clone();
        activity = activity.restrict(|s| s.id == id);
        title = format!("session {id}");
    }
    let page = page(&activity, &records, &title);
    write_atomically(file, page.as_bytes())?;
    println!("wrote {} ({} bytes, {} attempts)", file.display(), page.len(), activity.attempts.len());
    Ok(Outcome::Ok)
}

/// `&`, `<`, `>`, `"` and `'` as character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that is safe inside a `<script>` element: nothing in it can close the element or open a comment.
fn script_json(value: &serde_json::Value) -> String {
    let text = serde_json::to_string(value).expect("JSON values serialize");
    // These characters only occur inside JSON strings, where the \u escapes mean the same.
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn cut(text: String) -> String {
    match text.char_indices().nth(DETAIL_MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Per attempt: `[issue, attempt, outcome, "agent 12.3s", [[seq, "HH:MM:SS.mmm", kind index, detail], …]]`.
fn attempts_json(activity: &Activity, records: &[Record]) -> serde_json::Value {
    let kinds: Vec<&str> = Event::KINDS.to_vec();
    let find = |seq: u64| records.binary_search_by_key(&seq, |r| r.seq).ok().map(|i| &records[i]);
    let attempts: Vec<serde_json::Value> = activity
        .attempts
        .iter()
        .map(|t| {
            let events: Vec<serde_json::Value> = t
                .seqs
                .iter()
                .filter_map(|&seq| find(seq))
                .map(|r| {
                    let kind = kinds.iter().position(|k| *k == r.event.kind()).unwrap_or(0);
                    json!([r.seq, time_of_day(&r.ts), kind, cut(one_line(&describe(&r.event)))])
                })
                .collect();
            let agent = t.agent_ms.map_or("agent time unknown".to_string(), |ms| format!("agent {}", duration(ms)));
            json!([t.issue, t.attempt, t.outcome.as_str(), agent, events])
        })
        .collect();
    json!({"kinds": kinds, "attempts": attempts})
}

fn header(activity: &Activity, title: &str) -> String {
    let r = Report::new(activity);
    let t = &r.totals;
    let ratio = |v: Option<f64>| v.map_or("unknown".to_string(), |v| format!("{v:.2}"));
    let items = [
        ("issues", format!("{} ({} done, {} failed, {} conflicted)", t.issues, t.done, t.failed, t.conflicted)),
        ("attempts", format!("{} ({} retries)", t.attempts, t.retries)),
        ("wall time", duration(r.wall_ms)),
        ("agent time", duration(r.agent_ms)),
        ("speedup", ratio(r.speedup)),
        ("efficiency", ratio(r.parallel_efficiency)),
        (
            "plan estimate",
            r.plan_estimate
                .as_ref()
                .map_or("none".to_string(), |p| format!("{} with {} agents", duration(p.makespan_ms), p.agents)),
        ),
        ("crashes", r.crashes.len().to_string()),
        ("tokens, cost", usage(&r.usage)),
    ];
    let mut out = format!("<h1>bdp replay — {}</h1>\n<ul class=\"totals\">", escape(title));
    for (name, value) in items {
        out.push_str(&format!("<li>{name}: <b>{}</b></li>", escape(&value)));
    }
    out.push_str("</ul>\n");
    if let (Some(from), Some(to)) = (&r.from, &r.to) {
        out.push_str(&format!("<p class=\"hint\">{} to {}</p>\n", escape(from), escape(to)));
    }
    out
}

fn legend() -> String {
    let mut out = String::from("<div class=\"legend\">");
    let colour = |class: &str| format!("var(--{class})");
    for o in AttemptOutcome::ALL {
        out.push_str(&format!("<span style=\"--c:{1}\">{0}</span>", o.as_str(), colour(&format!("o-{}", o.as_str()))));
    }
    for (class, name) in chart::PHASE_KINDS {
        out.push_str(&format!("<span style=\"--c:{}\">{name}</span>", colour(class)));
    }
    out.push_str("<span style=\"--c:#d0021b\">crash</span><span style=\"--c:#f2994a\">finding ▼</span>");
    out.push_str("<span style=\"--c:#2d9cdb\">repair ▼</span><span style=\"--c:#1b7a44\">merge</span></div>\n");
    out
}

/// CSS custom properties for the legend swatches, one per outcome and phase class.
fn swatch_vars() -> String {
    let pairs: [(&str, &str); 13] = [
        ("o-done", "#6fcf97"),
        ("o-failed", "#eb5757"),
        ("o-timeout", "#f2994a"),
        ("o-abandoned", "#9b51e0"),
        ("o-conflict", "#f2c94c"),
        ("o-stopped", "#a0a7b4"),
        ("o-running", "#56ccf2"),
        ("o-unknown", "#cfd4dc"),
        ("p-setup", "#5b6475"),
        ("p-agent", "#1f4e99"),
        ("p-check", "#7b3fa0"),
        ("p-queue", "#c77d18"),
        ("p-merge", "#1b7a44"),
    ];
    let vars: Vec<String> = pairs.iter().map(|(k, v)| format!("--{k}:{v}")).collect();
    format!(":root{{{}}}\n", vars.join(";"))
}

pub fn page(activity: &Activity, records: &[Record], title: &str) -> String {
    let svg = chart::svg(activity);
    let data = script_json(&attempts_json(activity, records));
    let mut out = String::with_capacity(svg.len() + data.len() + CSS.len() + JS.len() + 4096);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!("<title>bdp replay — {}</title>\n<style>\n", escape(title)));
    out.push_str(&swatch_vars());
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n");
    out.push_str(&header(activity, title));
    out.push_str(&legend());
    out.push_str("<p class=\"hint\">Hover a bar for its attempt, click it for its events.</p>\n<div class=\"wrap\">");
    out.push_str(&svg);
    out.push_str("</div>\n<div id=\"tip\" hidden></div>\n<div id=\"detail\"><h2 id=\"d-title\" class=\"hint\">No attempt selected</h2>");
    out.push_str("<table><thead><tr><th>seq</th><th>time</th><th>event</th><th>detail</th></tr></thead><tbody id=\"d-events\"></tbody></table></div>\n");
    out.push_str("<script type=\"application/json\" id=\"bdp-attempts\">");
    out.push_str(&data);
    out.push_str("</script>\n<script>\n");
    out.push_str(JS);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CliError::user(format!(
            "--html {}: the directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".bdp-replay-")
        .suffix(".html.tmp")
        .tempfile_in(dir)
        .map_err(|e| CliError::io("create a temp file in", dir, &e))?;
    tmp.write_all(bytes).map_err(|e| CliError::io("write", tmp.path(), &e))?;
    // A report to share, not a secret: the usual mode, not the temp file's 0600.
    std::fs::set_permissions(tmp.path(), <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644))
        .map_err(|e| CliError::io("set the mode of", tmp.path(), &e))?;
    tmp.as_file().sync_all().map_err(|e| CliError::io("sync", tmp.path(), &e))?;
    tmp.persist(path).map_err(|e| CliError::io("write", path, &e.error))?;
    Ok(())
}
