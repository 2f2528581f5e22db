//! The real agent CLIs end to end, offline: `bdp run --agent claude` drives the real `claude` CLI
//! (npm `@anthropic-ai/claude-code`) and `bdp run --agent codex` the real `codex` CLI (npm
//! `@openai/codex`) against a stand-in for their APIs (tests/common/standin_api.py), as root when the
//! tests run as root, as they do in many containers and on CI here.

use crate::common::run_support::{Sandbox, stderr, stdout};
use crate::common::standin::{StandIn, command_mode, commit_mode};

/// The preset works where `--dangerously-skip-permissions` is refused (root): the model's Bash tool call
/// writes and commits a file in each issue's worktree, bdp merges both branches, closes both issues, and
/// records what the CLI reported (cost and tokens) on `agent_exited`.
#[test]
fn the_claude_preset_does_the_work_as_root_through_the_real_cli() {
    let Some(api) = StandIn::start("the_claude_preset_does_the_work_as_root_through_the_real_cli") else { return };
    let sb = Sandbox::new(&[("cl-1", "first", 2, &[]), ("cl-2", "second", 2, &[])]);
    let mut cmd = sb.bdp_cmd(&[
        "run",
        "--plain",
        "--agents",
        "2",
        "--agent",
        "claude",
        "--retries",
        "0",
        "--max-issue-cost",
        "5",
    ]);
    api.env(&mut cmd, &commit_mode());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let issues = sb.issues();
    assert!(issues.values().all(|i| i["status"] == "closed"), "{issues:?}");
    let subjects = sb.main_subjects();
    assert!(
        subjects.contains(&"agent: cl-1".to_string()) && subjects.contains(&"agent: cl-2".to_string()),
        "{subjects:?}"
    );
    for id in ["cl-1", "cl-2"] {
        assert!(sb.root().join(format!("done-{id}.txt")).exists(), "{id}'s file reached main");
    }
    // The CLI's own JSON result: $0.016 per run of two turns at the stand-in's token counts.
    let exits = sb.events("agent_exited");
    assert_eq!(exits.len(), 2);
    for exit in &exits {
        assert_eq!(exit["code"], 0);
        assert_eq!(exit["usage"]["cost_micro_usd"], 16_000, "{exit}");
        assert_eq!(exit["usage"]["output_tokens"], 160, "{exit}");
        // The CLI's own session id, for a later attempt to resume.
        assert_eq!(exit["session"].as_str().map(str::len), Some(36), "{exit}");
    }
    assert!(stdout(&out).contains("cost $0.03"), "{}", stdout(&out));
    // The CLI was given what is left of each issue's budget, and accepted it.
    for spawn in sb.events("spawn_requested") {
        let argv: Vec<&str> = spawn["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(argv.windows(2).any(|w| w == ["--max-budget-usd", "5.00"]), "{argv:?}");
    }
    // Each CLI ran its tool and came back with the result: two requests per issue.
    let requests = api.requests();
    assert_eq!(requests.iter().filter(|r| r["tool_result"] == true).count(), 2, "{requests:?}");
    sb.assert_clean_end();
}

/// The CLI's error result is the failure's reason, in its words: here the API refuses the request as too
/// long (HTTP 400), and the CLI prints `is_error: true` with its explanation and exits 1.
#[test]
fn a_claude_error_result_is_why_the_attempt_failed() {
    let Some(api) = StandIn::start("a_claude_error_result_is_why_the_attempt_failed") else { return };
    let sb = Sandbox::new(&[("cl-9", "too long", 2, &[])]);
    let mut cmd = sb.bdp_cmd(&["run", "--plain", "--agent", "claude", "--retries", "0"]);
    api.env(&mut cmd, "toolong");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("agent exited 1: Prompt is too long"), "{text}");
    let exit = &sb.events("agent_exited")[0];
    assert_eq!(exit["code"], 1);
    assert_eq!(exit["session"].as_str().map(str::len), Some(36), "{exit}");
    let released = &sb.events("issue_released")[0];
    assert!(released["detail"].as_str().unwrap().contains("Prompt is too long"), "{released}");
    sb.assert_clean_end();
}

/// A retry after a stall resumes the conversation: the first attempt's CLI waits forever on the API (the
/// stand-in never answers a session's first request) and is stopped as stalled; the retry runs
/// `claude --resume` with the session bdp gave the first attempt, and the stand-in sees the same session
/// go on and do the work.
#[test]
fn a_stalled_claude_attempt_is_resumed() {
    let Some(api) = StandIn::start("a_stalled_claude_attempt_is_resumed") else { return };
    let sb = Sandbox::new(&[("cl-5", "stalls once", 2, &[])]);
    let mut cmd =
        sb.bdp_cmd(&["run", "--plain", "--agent", "claude", "--stall", "3s", "--retries", "1", "--retry-backoff", "0"]);
    api.env(&mut cmd, "hangfirst");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("stalled: no output for 3.0s"), "{}", stdout(&out));
    let spawns = sb.events("spawn_requested");
    assert_eq!(spawns.len(), 2);
    let argv = |i: usize| -> Vec<String> {
        spawns[i]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
    };
    let session = bdp::supervisor::template::claude_session(&argv(0)).unwrap().to_string();
    let (first, second) = (argv(0), argv(1));
    assert!(first.windows(2).any(|w| w[0] == "--session-id" && w[1] == session), "{first:?}");
    assert!(second.windows(2).any(|w| w[0] == "--resume" && w[1] == session), "{second:?}");
    assert!(second.last().unwrap().contains("was stopped: stalled"), "{second:?}");
    // The stand-in saw one session throughout: the hung request, then the resumed conversation's two.
    let sessions: Vec<_> = api.requests().iter().map(|r| r["session"].clone()).collect();
    assert!(sessions.len() >= 3 && sessions.iter().all(|s| s == &serde_json::json!(session)), "{sessions:?}");
    assert_eq!(sb.issues()["cl-5"]["status"], "closed");
    sb.assert_clean_end();
}

/// A budget stop with the real CLI: bdp passes the issue's budget to `claude --max-budget-usd`, the CLI
/// stops itself once it is spent (`error_max_budget_usd`), and bdp gives the issue back instead of paying
/// for another attempt.
#[test]
fn a_claude_attempt_stops_at_the_issue_budget_and_is_not_retried() {
    let Some(api) = StandIn::start("a_claude_attempt_stops_at_the_issue_budget_and_is_not_retried") else { return };
    let sb = Sandbox::new(&[("cl-7", "dear", 2, &[])]);
    let mut cmd = sb.bdp_cmd(&[
        "run",
        "--plain",
        "--agent",
        "claude",
        "--max-issue-cost",
        "0.005",
        "--retries",
        "3",
        "--retry-backoff",
        "0",
    ]);
    api.env(&mut cmd, &commit_mode());
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(sb.events("agent_spawned").len(), 1, "no second attempt once the budget is spent");
    let exit = &sb.events("agent_exited")[0];
    let cost = exit["usage"]["cost_micro_usd"].as_u64().unwrap();
    assert!(cost >= 5_000, "the CLI stops once past its budget: {exit}");
    let detail = sb.events("issue_released")[0]["detail"].as_str().unwrap().to_string();
    let spent = format!("${}", format!("{:.4}", cost as f64 / 1e6).trim_end_matches('0'));
    assert!(detail.contains(&format!("error_max_budget_usd; its budget is spent: {spent} of $0.005")), "{detail}");
    sb.assert_clean_end();
}

/// `bdp run --agent codex -- FLAGS`: the flags after `--` are the user's own settings for the CLI (here a
/// model provider on the stand-in, as one points codex at a gateway). The real `codex exec` runs the
/// model's shell call, which commits in the worktree: the preset names both git dirs a worktree's commit
/// writes, which codex's sandbox would otherwise mount read-only. The thread id and the tokens codex
/// reports are recorded; with a budget, that codex reports no cost is said.
#[test]
fn the_codex_preset_does_the_work_through_the_real_cli() {
    let Some(api) = StandIn::start_for("the_codex_preset_does_the_work_through_the_real_cli", "codex") else {
        return;
    };
    let sb = Sandbox::new(&[("cx-1", "first", 2, &[]), ("cx-2", "second", 2, &[])]);
    let mut args =
        vec!["run", "--plain", "--agents", "2", "--agent", "codex", "--retries", "0", "--max-cost", "5", "--"];
    let flags = api.codex_flags(&commit_mode());
    args.extend(flags.iter().map(String::as_str));
    let mut cmd = sb.bdp_cmd(&args);
    api.codex_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(sb.issues().values().all(|i| i["status"] == "closed"), "{:?}", sb.issues());
    for id in ["cx-1", "cx-2"] {
        assert!(sb.main_subjects().contains(&format!("agent: {id}")), "{:?}", sb.main_subjects());
        assert!(sb.root().join(format!("done-{id}.txt")).exists(), "{id}'s file reached main");
    }
    for exit in sb.events("agent_exited") {
        assert_eq!(exit["code"], 0, "{exit}");
        // Two turns' usage summed (the tool call and the answer); codex reports no cost.
        assert_eq!(exit["usage"]["input_tokens"], 2400, "{exit}");
        assert_eq!(exit["usage"]["cached_input_tokens"], 400, "{exit}");
        assert_eq!(exit["usage"]["output_tokens"], 160, "{exit}");
        assert!(exit["usage"].get("cost_micro_usd").is_none(), "{exit}");
        assert_eq!(exit["session"].as_str().map(str::len), Some(36), "its thread id: {exit}");
    }
    // A budget cannot count what codex does not report: said once.
    assert_eq!(
        stdout(&out).matches("did not report what it cost (codex reports tokens only)").count(),
        1,
        "{}",
        stdout(&out)
    );
    // The user's flags went before the prompt, where codex reads them.
    let spawn = &sb.events("spawn_requested")[0];
    let argv: Vec<&str> = spawn["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(argv[1], "exec");
    assert!(argv.windows(2).any(|w| w == ["-c", "model_provider=\"standin\""]), "{argv:?}");
    assert!(argv.last().unwrap().contains("prompt.md"), "{argv:?}");
    assert_eq!(api.requests().iter().filter(|r| r["tool_result"] == true).count(), 2);
    sb.assert_clean_end();
}

/// Codex's own words for a failure (its `turn.failed` event) are the reason, not its warnings: the stand-in
/// refuses the key, and the progress line and the release say so.
#[test]
fn a_codex_error_is_why_the_attempt_failed() {
    let Some(api) = StandIn::start_for("a_codex_error_is_why_the_attempt_failed", "codex") else { return };
    let sb = Sandbox::new(&[("cx-9", "refused", 2, &[])]);
    let mut args = vec!["run", "--plain", "--agent", "codex", "--retries", "0", "--"];
    let flags = api.codex_flags("badkey");
    args.extend(flags.iter().map(String::as_str));
    let mut cmd = sb.bdp_cmd(&args);
    api.codex_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("agent exited 1: unexpected status 401 Unauthorized: Incorrect API key provided"), "{text}");
    let released = &sb.events("issue_released")[0];
    assert!(released["detail"].as_str().unwrap().contains("Incorrect API key provided"), "{released}");
    sb.assert_clean_end();
}

/// A retry after a stall resumes the codex thread: `codex exec … resume THREAD NOTE`, with exec's own
/// flags (sandbox, writable git dirs, the user's provider) kept before `resume`. The stand-in sees the same
/// session go on and do the work.
#[test]
fn a_stalled_codex_attempt_is_resumed() {
    let Some(api) = StandIn::start_for("a_stalled_codex_attempt_is_resumed", "codex") else { return };
    let sb = Sandbox::new(&[("cx-5", "stalls once", 2, &[])]);
    let mut args =
        vec!["run", "--plain", "--agent", "codex", "--stall", "3s", "--retries", "1", "--retry-backoff", "0", "--"];
    let flags = api.codex_flags("hangfirst");
    args.extend(flags.iter().map(String::as_str));
    let mut cmd = sb.bdp_cmd(&args);
    api.codex_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let exits = sb.events("agent_exited");
    let thread = exits[0]["session"].as_str().expect("the stalled attempt's thread id").to_string();
    let retry = &sb.events("retry_scheduled")[0];
    assert_eq!(retry["carry_on"], serde_json::json!({ "resume": thread }), "{retry}");
    let spawns = sb.events("spawn_requested");
    let second: Vec<&str> = spawns[1]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let n = second.len();
    assert_eq!(second[n - 3..n - 1], ["resume", thread.as_str()], "{second:?}");
    assert!(second[n - 1].contains("was stopped: stalled"), "{second:?}");
    assert!(second.contains(&"--sandbox") && second.contains(&"model_provider=\"standin\""), "{second:?}");
    let sessions: Vec<_> = api.requests().iter().map(|r| r["session"].clone()).collect();
    assert!(sessions.len() >= 3 && sessions.iter().all(|s| s == &serde_json::json!(thread)), "{sessions:?}");
    let resumed = api.requests().iter().rev().find_map(|r| r["last_user"].as_str().map(str::to_string));
    assert!(resumed.is_some_and(|t| t.contains("was stopped: stalled")), "the note is the new message");
    assert_eq!(sb.issues()["cx-5"]["status"], "closed");
    sb.assert_clean_end();
}

/// Context exhaustion, recognized from what the real CLI prints ("ran out of room in the model's context
/// window"): the retry continues the work instead of resuming the full conversation, and its record says
/// so (the continuation's prompt is tested with scripted agents in tests/run.rs).
#[test]
fn a_codex_attempt_out_of_context_goes_on_in_a_new_conversation() {
    let Some(api) = StandIn::start_for("a_codex_attempt_out_of_context_goes_on_in_a_new_conversation", "codex") else {
        return;
    };
    let sb = Sandbox::new(&[("cx-3", "too big", 2, &[])]);
    let mut args = vec!["run", "--plain", "--agent", "codex", "--retries", "1", "--retry-backoff", "0", "--"];
    let flags = api.codex_flags("toolong");
    args.extend(flags.iter().map(String::as_str));
    let mut cmd = sb.bdp_cmd(&args);
    api.codex_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("context window"), "{}", stdout(&out));
    let retry = &sb.events("retry_scheduled")[0];
    assert_eq!(retry["carry_on"], serde_json::json!({ "keep": true }), "{retry}");
    let spawns = sb.events("spawn_requested");
    let second: Vec<&str> = spawns[1]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(!second.contains(&"resume"), "a full context is not resumed: {second:?}");
    sb.assert_clean_end();
}

/// One review round through the real claude CLI on both sides (`--agent claude --review-agent claude`):
/// the model, as reviewer, writes its verdict file with its Bash tool (changes requested on the first
/// review, approval on the second); as author, it commits. The second attempt addresses the review, the
/// approved work is merged, and each verdict is recorded.
#[test]
fn a_review_round_runs_the_real_claude_cli() {
    let Some(api) = StandIn::start("a_review_round_runs_the_real_claude_cli") else { return };
    let sb = Sandbox::new(&[("cr-1", "reviewed by a model", 2, &[])]);
    let model = r#"if [ -n "$BDP_REVIEW_FILE" ]; then
  case "$BDP_REVIEW_FILE" in
    *review-1-1.txt) printf 'changes requested\n- also write the second file\n' > "$BDP_REVIEW_FILE" ;;
    *) printf 'approve\nBoth files are there.\n' > "$BDP_REVIEW_FILE" ;;
  esac
else
  echo "attempt $BDP_ATTEMPT" > "done-$BDP_ATTEMPT.txt" && git add -A && git commit -q -m "agent: attempt $BDP_ATTEMPT"
fi"#;
    let mut cmd = sb.bdp_cmd(&["run", "--plain", "--agent", "claude", "--review-agent", "claude", "--retries", "0"]);
    api.env(&mut cmd, &command_mode(model));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let verdicts: Vec<String> =
        sb.events("review_verdict").iter().map(|v| v["verdict"].as_str().unwrap().to_string()).collect();
    assert_eq!(verdicts, ["changes_requested", "approve"]);
    assert_eq!(sb.events("review_verdict")[0]["comments"], "- also write the second file");
    assert_eq!(sb.issues()["cr-1"]["status"], "closed");
    let subjects = sb.main_subjects();
    assert!(
        subjects.contains(&"agent: attempt 1".into()) && subjects.contains(&"agent: attempt 2".into()),
        "{subjects:?}"
    );
    // Four CLI runs (author, reviewer, author, reviewer), each a tool call and an answer.
    assert_eq!(api.requests().iter().filter(|r| r["tool_result"] == true).count(), 4);
    sb.assert_clean_end();
}

/// The codex reviewer: `--agent codex --review-agent codex -- FLAGS` gives the reviewer the agent's flags
/// too (here the provider on the stand-in); it approves with its shell tool, and the work is merged.
#[test]
fn a_codex_review_runs_the_real_cli_with_the_agents_flags() {
    let Some(api) = StandIn::start_for("a_codex_review_runs_the_real_cli_with_the_agents_flags", "codex") else {
        return;
    };
    let sb = Sandbox::new(&[("cv-1", "reviewed by codex", 2, &[])]);
    let model = r#"if [ -n "$BDP_REVIEW_FILE" ]; then
  printf 'approve\nfine\n' > "$BDP_REVIEW_FILE"
else
  echo done > done.txt && git add -A && git commit -q -m "agent: cv-1"
fi"#;
    let mut args = vec!["run", "--plain", "--agent", "codex", "--review-agent", "codex", "--retries", "0", "--"];
    let flags = api.codex_flags(&command_mode(model));
    args.extend(flags.iter().map(String::as_str));
    let mut cmd = sb.bdp_cmd(&args);
    api.codex_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let verdicts = sb.events("review_verdict");
    assert_eq!(verdicts.len(), 1);
    assert_eq!((verdicts[0]["verdict"].as_str(), verdicts[0]["comments"].as_str()), (Some("approve"), Some("fine")));
    assert_eq!(sb.issues()["cv-1"]["status"], "closed");
    assert!(sb.main_subjects().contains(&"agent: cv-1".to_string()));
    sb.assert_clean_end();
}

/// The claude preset starts `bdp mcp` for its agent (`--mcp-config`), and the real CLI calls its tools:
/// the model takes a file lock on agent.txt, reports its progress, then commits. The lock is recorded for
/// the attempt (`ISSUE#1`, the holder the CLI's environment gave the server) and given back when the
/// attempt ends; the progress report is recorded for the attempt and shown by `bdp replay`.
#[test]
fn the_claude_preset_gives_its_agent_bdps_mcp_tools() {
    let Some(api) = StandIn::start("the_claude_preset_gives_its_agent_bdps_mcp_tools") else { return };
    let sb = Sandbox::new(&[("mc-1", "locks first", 2, &[])]);
    let mut cmd = sb.bdp_cmd(&["run", "--plain", "--agent", "claude", "--retries", "0"]);
    api.env(&mut cmd, "mcp");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_mcp_tools_were_used(&sb, &api, "mc-1");
}

/// The same through the real codex CLI (`-c mcp_servers.bdp.*`, its environment passed on by `env_vars`).
#[test]
fn the_codex_preset_gives_its_agent_bdps_mcp_tools() {
    let Some(api) = StandIn::start_for("the_codex_preset_gives_its_agent_bdps_mcp_tools", "codex") else { return };
    let sb = Sandbox::new(&[("mx-1", "locks first", 2, &[])]);
    let mut args = vec!["run", "--plain", "--agent", "codex", "--retries", "0", "--"];
    let flags = api.codex_flags("mcp");
    args.extend(flags.iter().map(String::as_str));
    let mut cmd = sb.bdp_cmd(&args);
    api.codex_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_mcp_tools_were_used(&sb, &api, "mx-1");
}

fn assert_mcp_tools_were_used(sb: &Sandbox, api: &StandIn, id: &str) {
    let requests = api.requests();
    let results: Vec<String> = requests
        .iter()
        .flat_map(|r| r["tool_results"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    let holder = format!("{id}#1");
    assert!(
        results.iter().any(|t| t.contains(&format!("locked agent.txt (exclusive, held by {holder})"))),
        "the lock tool's answer reached the model: {results:?}\n{requests:?}"
    );
    assert!(results.iter().any(|t| t.contains("noted: writing agent.txt (50%, step 2/3)")), "{results:?}");
    let acquired = sb.events("file_lock_acquired");
    assert_eq!(acquired.len(), 1, "{acquired:?}");
    assert_eq!(acquired[0]["holder"], holder.as_str());
    assert_eq!(acquired[0]["paths"], serde_json::json!(["agent.txt"]));
    let released = sb.events("file_lock_released");
    assert_eq!(released.len(), 1, "the attempt's end gave the lock back: {released:?}");
    assert_eq!(released[0]["holder"], holder.as_str());
    let progress = sb.events("progress_reported");
    assert_eq!(progress.len(), 1, "{progress:?}");
    assert_eq!(progress[0]["issue"], id);
    assert_eq!(progress[0]["attempt"], 1);
    assert_eq!(progress[0]["percent"], 50);
    assert_eq!(sb.issues()[id]["status"], "closed");
    let replay = sb.bdp(&["replay", "--issue", id]);
    assert!(stdout(&replay).contains("attempt 1: writing agent.txt (50%, step 2/3)"), "{}", stdout(&replay));
    sb.assert_clean_end();
}
