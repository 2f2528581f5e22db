//! Reading what an agent reports it used (tokens, cost) from its stdout, for the shapes the agent CLIs
//! document:
//! - Claude Code, `claude -p --output-format json`: one result object with `total_cost_usd` and `usage`
//!   (`input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`, `output_tokens`); with
//!   `--output-format stream-json` the same object is the last line (`"type":"result"`).
//! - Codex, `codex exec --json`: JSONL events; each `turn.completed` carries `usage`
//!   (`input_tokens`, `cached_input_tokens`, `output_tokens`), summed over turns. Codex reports no cost.
//!
//! Anything else (a custom agent, text output) gives `None`. Pure: the caller reads the file.

use serde_json::Value;

use crate::event::AgentUsage;

/// Parses an agent's whole stdout. Only the last 1 MiB is looked at (results come last).
pub fn parse(stdout: &[u8]) -> Option<AgentUsage> {
    let tail = &stdout[stdout.len().saturating_sub(1 << 20)..];
    let text = String::from_utf8_lossy(tail);
    let mut found: Option<AgentUsage> = None;
    let mut codex = AgentUsage::default();
    let mut codex_turns = 0;
    let values = text.lines().filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok());
    // A pretty-printed single object spans lines: try the whole text too.
    let whole = serde_json::from_str::<Value>(text.trim()).ok();
    for value in whole.into_iter().chain(values) {
        match value.get("type").and_then(Value::as_str) {
            Some("result") => found = Some(claude_result(&value)),
            Some("turn.completed") => {
                if let Some(u) = value.get("usage") {
                    codex.input_tokens += num(u, "input_tokens");
                    codex.cached_input_tokens += num(u, "cached_input_tokens");
                    codex.output_tokens += num(u, "output_tokens");
                    codex_turns += 1;
                }
            }
            _ => {}
        }
    }
    found.or((codex_turns > 0).then_some(codex))
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
        let u = parse(out).unwrap();
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
        let u = parse(out).unwrap();
        assert_eq!(
            u,
            AgentUsage { cost_micro_usd: None, input_tokens: 150, cached_input_tokens: 80, output_tokens: 10 }
        );
    }

    #[test]
    fn other_output_reports_nothing() {
        assert_eq!(parse(b"hello\n"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"{\"type\":\"other\"}"), None);
    }
}
