//! What an agent said, read from its output files: the tokens and cost it reports, its own session id
//! (to resume its conversation), and, when it failed, its words for why (its JSON error, else the last
//! line of its stderr). For the shapes the agent CLIs document:
//! - Claude Code, `claude -p --output-format json`: one result object with `total_cost_usd` and `usage`
//!   (`input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`, `output_tokens`); with
//!   `--output-format stream-json` the same object is the last line (`"type":"result"`).
//! - Codex, `codex exec --json`: JSONL events; each `turn.completed` carries `usage`
//!   (`input_tokens`, `cached_input_tokens`, `output_tokens`), summed over turns. Codex reports no cost.
//!
//!   The thread id is in `thread.started`; failures are `error` events and `turn.failed`.
//!
//! Anything else (a custom agent, text output) gives `None`. Pure: the caller reads the files.

use serde_json::Value;

use crate::event::AgentUsage;

/// What an agent's stdout says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub usage: Option<AgentUsage>,
    /// The agent CLI's own session (Claude's `session_id`, Codex's `thread_id`).
    pub session: Option<String>,
    /// Its error, when it reported one (Claude's `is_error` result, Codex's `error` or `turn.failed`).
    pub error: Option<String>,
    /// It ran out of context: the API's "prompt is too long" (HTTP 400), a `model_context_window_exceeded`
    /// stop reason, or an error about the context window.
    pub context_exhausted: bool,
}

/// Parses an agent's whole stdout. Only the last 1 MiB is looked at (results come last).
pub fn read(stdout: &[u8]) -> Report {
    let tail = &stdout[stdout.len().saturating_sub(1 << 20)..];
    let text = String::from_utf8_lossy(tail);
    let mut report = Report::default();
    let mut codex = AgentUsage::default();
    let mut codex_turns = 0;
    let values = text.lines().filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok());
    // A pretty-printed single object spans lines: try the whole text too.
    let whole = serde_json::from_str::<Value>(text.trim()).ok();
    for value in whole.into_iter().chain(values) {
        let str_of = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
        match value.get("type").and_then(Value::as_str) {
            Some("result") => {
                report.usage = Some(claude_result(&value));
                report.context_exhausted |= str_of("stop_reason").as_deref() == Some("model_context_window_exceeded");
                report.session = str_of("session_id").or(report.session.take());
                let failed = value.get("is_error").and_then(Value::as_bool) == Some(true)
                    || str_of("subtype").is_some_and(|s| s.starts_with("error"));
                if failed {
                    report.error = str_of("result").or_else(|| str_of("subtype"));
                }
            }
            Some("thread.started") => report.session = str_of("thread_id").or(report.session.take()),
            Some("turn.completed") => {
                if let Some(u) = value.get("usage") {
                    codex.input_tokens += num(u, "input_tokens");
                    codex.cached_input_tokens += num(u, "cached_input_tokens");
                    codex.output_tokens += num(u, "output_tokens");
                    codex_turns += 1;
                }
            }
            Some("error") => report.error = str_of("message").or(report.error.take()),
            Some("turn.failed") => {
                let message = value.get("error").and_then(|e| e.get("message")).and_then(Value::as_str);
                report.error = message.map(str::to_string).or(report.error.take());
            }
            _ => {}
        }
    }
    if report.usage.is_none() && codex_turns > 0 {
        report.usage = Some(codex);
    }
    report.error = report.error.as_deref().and_then(one_line);
    let said = report.error.as_deref().unwrap_or_default().to_lowercase();
    report.context_exhausted |= ["prompt is too long", "context window", "context length", "context_window"]
        .iter()
        .any(|words| said.contains(words));
    report
}

/// The usage an agent's stdout reports, if any.
pub fn usage(stdout: &[u8]) -> Option<AgentUsage> {
    read(stdout).usage
}

/// Why an agent failed, in its own words: the error its stdout reports, else the last line of its stderr.
pub fn said(stdout: &[u8], stderr: &[u8]) -> Option<String> {
    said_after(&read(stdout), stderr)
}

/// [`said`], for a stdout already read.
fn said_after(report: &Report, stderr: &[u8]) -> Option<String> {
    report.error.clone().or_else(|| {
        let tail = &stderr[stderr.len().saturating_sub(64 << 10)..];
        String::from_utf8_lossy(tail).lines().rev().find_map(one_line)
    })
}

/// What the agent in attempt directory `dir` said on its `stdout` and `stderr` files: the usage it
/// reported, why it failed in its own words (see [`said`]), its session id, and whether it ran out of
/// context.
pub fn from_files(dir: &std::path::Path) -> Words {
    let stdout = std::fs::read(dir.join("stdout")).unwrap_or_default();
    let stderr = std::fs::read(dir.join("stderr")).unwrap_or_default();
    let report = read(&stdout);
    let said = said_after(&report, &stderr);
    Words { usage: report.usage, said, session: report.session, context_exhausted: report.context_exhausted }
}

/// What [`from_files`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    pub usage: Option<AgentUsage>,
    pub said: Option<String>,
    pub session: Option<String>,
    pub context_exhausted: bool,
}

/// Agent output as one short line for a progress line or a log record: control characters (a terminal's
/// escape sequences among them) dropped, blanks squeezed, at most 200 characters; `None` when empty.
fn one_line(text: &str) -> Option<String> {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut clean = String::with_capacity(first.len());
    let mut chars = first.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence (colours, cursor moves): `ESC [ … final-byte`, or ESC and one character.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if !c.is_control() {
            clean.push(c);
        }
    }
    let squeezed = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if squeezed.is_empty() {
        return None;
    }
    Some(match squeezed.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &squeezed[..cut]),
        None => squeezed,
    })
}

fn claude_result(value: &Value) -> AgentUsage {
    let usage = value.get("usage").cloned().unwrap_or(Value::Null);
    let cost = value.get("total_cost_usd").or_else(|| value.get("cost_usd")).and_then(Value::as_f64);
    AgentUsage {
        cost_micro_usd: cost.filter(|c| c.is_finite() && *c >= 0.0).map(|c| (c * 1e6).round() as u64),
        input_tokens: num(&usage, "input_tokens") + num(&usage, "cache_creation_input_tokens"),
        cached_input_tokens: num(&usage, "cache_read_input_tokens"),
        output_tokens: num(&usage, "output_tokens"),
    }
}

fn num(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_json_result() {
        let out = br#"{"type":"result","subtype":"success","is_error":false,"duration_ms":2000,"num_turns":3,
            "result":"done","session_id":"x","total_cost_usd":0.0421,
            "usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":100,"output_tokens":7}}"#;
        let u = usage(out).unwrap();
        assert_eq!(
            u,
            AgentUsage { cost_micro_usd: Some(42_100), input_tokens: 15, cached_input_tokens: 100, output_tokens: 7 }
        );
    }

    #[test]
    fn codex_jsonl_turns_are_summed() {
        let out = b"{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n\
            {\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":100,\"cached_input_tokens\":80,\"output_tokens\":9}}\n\
            not json\n\
            {\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":50,\"cached_input_tokens\":0,\"output_tokens\":1}}\n";
        let u = usage(out).unwrap();
        assert_eq!(
            u,
            AgentUsage { cost_micro_usd: None, input_tokens: 150, cached_input_tokens: 80, output_tokens: 10 }
        );
    }

    #[test]
    fn other_output_reports_nothing() {
        assert_eq!(usage(b"hello\n"), None);
        assert_eq!(usage(b""), None);
        assert_eq!(usage(b"{\"type\":\"other\"}"), None);
    }

    /// As the real claude CLI printed it when its API could not be reached (2.1.197).
    #[test]
    fn a_claude_error_result_says_why_and_names_its_session() {
        let out = br#"{"type":"result","subtype":"success","is_error":true,"api_error_status":null,"duration_ms":179440,"num_turns":1,"result":"API Error: Unable to connect to API (ConnectionRefused)","stop_reason":"stop_sequence","session_id":"55352adb-ba16-44c7-a63d-5126e0dfdce9","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}"#;
        let r = read(out);
        assert_eq!(r.error.as_deref(), Some("API Error: Unable to connect to API (ConnectionRefused)"));
        assert_eq!(r.session.as_deref(), Some("55352adb-ba16-44c7-a63d-5126e0dfdce9"));
        assert_eq!(said(out, b"some stderr\n"), r.error);
        let ok = br#"{"type":"result","subtype":"success","is_error":false,"result":"Done.","session_id":"s1"}"#;
        assert_eq!((read(ok).error, read(ok).session.as_deref()), (None, Some("s1")));
        let max_turns = br#"{"type":"result","subtype":"error_max_turns","is_error":false,"session_id":"s2"}"#;
        assert_eq!(read(max_turns).error.as_deref(), Some("error_max_turns"));
    }

    /// As the real claude CLI (2.1.197) printed it when the API answered "prompt is too long" (HTTP 400).
    #[test]
    fn running_out_of_context_is_recognized() {
        let out = br#"{"type":"result","subtype":"success","is_error":true,"api_error_status":400,"result":"Prompt is too long \u00b7 the request is ~250000 tokens (limit 200000)","session_id":"f1"}"#;
        assert!(read(out).context_exhausted);
        let stop =
            br#"{"type":"result","is_error":false,"stop_reason":"model_context_window_exceeded","session_id":"f2"}"#;
        assert!(read(stop).context_exhausted);
        let codex = b"{\"type\":\"error\",\"message\":\"Your input exceeds the context window of this model\"}\n";
        assert!(read(codex).context_exhausted);
        let other = br#"{"type":"result","is_error":true,"result":"API Error: 529 overloaded","session_id":"f3"}"#;
        assert!(!read(other).context_exhausted);
    }

    #[test]
    fn codex_names_its_thread_and_its_failure() {
        let out = b"{\"type\":\"thread.started\",\"thread_id\":\"th-9\"}\n\
            {\"type\":\"turn.failed\",\"error\":{\"message\":\"stream disconnected before completion\"}}\n";
        let r = read(out);
        assert_eq!(r.session.as_deref(), Some("th-9"));
        assert_eq!(r.error.as_deref(), Some("stream disconnected before completion"));
    }

    /// Without a JSON error, the last line the agent wrote to stderr, cleaned for one line.
    #[test]
    fn otherwise_the_last_line_of_stderr_cleaned_for_a_terminal() {
        let stderr = b"warming up\n\x1b[31mfatal:\x1b[0m   cannot   open config.toml\n\n  \n";
        assert_eq!(said(b"plain text\n", stderr).as_deref(), Some("fatal: cannot open config.toml"));
        assert_eq!(said(b"", b""), None);
        let long = "x".repeat(500);
        assert_eq!(said(b"", long.as_bytes()).unwrap().chars().count(), 201);
    }
}
