//! `bdp mcp` spoken to as an MCP client speaks to it: newline-delimited JSON-RPC over the server's stdin and
//! stdout (`initialize`, `notifications/initialized`, `tools/list`, `tools/call`), with the environment
//! `bdp run` gives an agent. Each tool, the errors an agent can cause, and two clients contending for one
//! path.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::run_support::Sandbox;

/// One `bdp mcp` process and the client's end of its pipes.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Client {
    /// Starts `bdp mcp` in `sb` as the agent of `issue`'s attempt `attempt` (None: no attempt at all), and
    /// initializes the session.
    fn start(sb: &Sandbox, attempt: Option<(&str, u32)>) -> Client {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bdp"));
        cmd.arg("mcp")
            .current_dir(sb.root())
            .env_remove("BDP_ISSUE")
            .env_remove("BDP_ATTEMPT")
            .env_remove("BDP_WORKTREE")
            .env_remove("BDP_TRACKER")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((issue, n)) = attempt {
            cmd.env("BDP_ISSUE", issue).env("BDP_ATTEMPT", n.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut client = Client { child, stdin, stdout, next_id: 1 };
        let init = client.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "bdp", "{init}");
        assert!(init["result"]["capabilities"]["tools"].is_object(), "{init}");
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        client
    }

    fn send(&mut self, message: &Value) {
        writeln!(self.stdin, "{message}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Sends a request and reads lines until its response.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "bdp mcp closed stdout before answering {method}");
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON-RPC: {line:?}: {e}"));
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// Calls a tool: (is it an error result, its text).
    fn call(&mut self, tool: &str, arguments: Value) -> (bool, String) {
        let response = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        let result = &response["result"];
        assert!(result.is_object(), "{tool}: not a result: {response}");
        let text = result["content"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect::<String>();
        (result["isError"] == true, text)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_tools_are_listed_with_their_schemas() {
    let sb = Sandbox::new(&[("mc-1", "one", 2, &[])]);
    let mut client = Client::start(&sb, Some(("mc-1", 1)));
    let list = client.request("tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["issue", "lock_acquire", "lock_list", "lock_release", "report_progress"]);
    let acquire = tools.iter().find(|t| t["name"] == "lock_acquire").unwrap();
    assert_eq!(acquire["inputSchema"]["required"], json!(["paths"]), "{acquire}");
    for field in ["paths", "wait_seconds", "ttl_seconds", "shared"] {
        assert!(acquire["inputSchema"]["properties"][field].is_object(), "{field}: {acquire}");
    }
    let progress = tools.iter().find(|t| t["name"] == "report_progress").unwrap();
    assert_eq!(progress["inputSchema"]["required"], json!(["status"]), "{progress}");
    // What an agent reads of each tool.
    let described: Vec<(String, String)> = tools
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["description"].as_str().unwrap().to_string()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    insta::assert_json_snapshot!("mcp_tools", described);
}

#[test]
fn each_tool_does_what_the_cli_does_and_is_recorded() {
    let sb = Sandbox::new(&[("mc-1", "one", 2, &[])]);
    let mut client = Client::start(&sb, Some(("mc-1", 3)));
    let (err, text) = client.call("lock_acquire", json!({"paths": ["./src/../Cargo.toml", "schema/**"]}));
    assert!(!err, "{text}");
    assert_eq!(text, "locked Cargo.toml, schema/** (exclusive, held by mc-1#3)");
    // The same table `bdp lock` keeps.
    let listed = sb.bdp(&["lock", "list", "--json"]);
    let listing: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let held: Vec<&str> = listing["locks"].as_array().unwrap().iter().map(|l| l["path"].as_str().unwrap()).collect();
    assert_eq!(held, ["Cargo.toml", "schema/**"]);
    let (err, text) = client.call("lock_list", json!({}));
    assert!(!err);
    let listing: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listing["locks"][0]["holder"], "mc-1#3");
    let (err, text) = client.call("report_progress", json!({"status": "schema done", "step": 2, "steps": 4}));
    assert!(!err, "{text}");
    assert_eq!(text, "noted: schema done (step 2/4)");
    let (err, text) = client.call("issue", json!({}));
    assert!(!err, "{text}");
    let issue: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(issue["id"], "mc-1");
    assert_eq!(issue["title"], "one");
    assert!(issue["description"].as_str().unwrap().starts_with("Do one."), "{issue}");
    let (err, text) = client.call("lock_release", json!({"paths": ["Cargo.toml"]}));
    assert!(!err);
    assert_eq!(text, "unlocked Cargo.toml (held by mc-1#3)");
    let (err, text) = client.call("lock_release", json!({}));
    assert!(!err);
    assert_eq!(text, "unlocked schema/** (held by mc-1#3)");
    let (_, text) = client.call("lock_release", json!({"all": true}));
    assert_eq!(text, "mc-1#3 holds none of these locks");
    // Every step is in the log.
    let kinds: Vec<String> = sb.records().iter().map(|r| r["event"]["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        kinds,
        ["file_lock_acquired", "progress_reported", "file_lock_released", "file_lock_released"],
        "{kinds:?}"
    );
    let progress = &sb.events("progress_reported")[0];
    assert_eq!(progress["issue"], "mc-1");
    assert_eq!(progress["attempt"], 3);
    assert_eq!(progress["step"], 2);
    assert_eq!(progress["steps"], 4);
}

#[test]
fn what_an_agent_gets_wrong_is_an_error_result_saying_what() {
    let sb = Sandbox::new(&[("mc-1", "one", 2, &[])]);
    let mut client = Client::start(&sb, Some(("mc-1", 1)));
    let cases = [
        ("lock_acquire", json!({"paths": ["../outside"]}), "cannot lock: "),
        ("lock_acquire", json!({"paths": ["/etc/passwd"]}), "cannot lock: "),
        ("lock_acquire", json!({"paths": ["a\u{0}b"]}), "cannot lock: "),
        ("lock_acquire", json!({"paths": []}), "cannot lock: no paths given"),
        ("lock_acquire", json!({"paths": ["a"], "wait_seconds": -1}), "wait_seconds must be a number of seconds"),
        ("report_progress", json!({"status": "  "}), "status is empty"),
        ("report_progress", json!({"status": "x", "percent": 150}), "percent must be 0 to 100 (got 150)"),
        ("report_progress", json!({"status": "x", "step": 5, "steps": 4}), "step must be 1 to steps"),
    ];
    for (tool, args, says) in cases {
        let (err, text) = client.call(tool, args.clone());
        assert!(err, "{tool} {args}: {text}");
        assert!(text.contains(says), "{tool} {args}: {text}");
    }
    // Arguments of the wrong shape are refused by the protocol, not by a panic.
    let response = client.request("tools/call", json!({"name": "lock_acquire", "arguments": {"paths": "Cargo.toml"}}));
    assert!(response["error"].is_object() || response["result"]["isError"] == true, "{response}");
    // The server is still there.
    let (err, _) = client.call("lock_list", json!({}));
    assert!(!err);
    assert!(!sb.root().join(".bdp/events").exists(), "nothing refused was recorded");
    // Without an attempt (not started by bdp run), what needs one says so.
    let mut stranger = Client::start(&sb, None);
    for tool in ["lock_acquire", "report_progress", "issue"] {
        let args = json!({"paths": ["a"], "status": "x"});
        let (err, text) = stranger.call(tool, args);
        assert!(err, "{tool}: {text}");
        assert!(text.contains("BDP_ISSUE") || text.contains("--holder"), "{tool}: {text}");
    }
}

/// Two agents want one path: the second is told who holds it when its wait runs out, and gets it as soon
/// as the first gives it back while it waits.
#[test]
fn two_clients_contend_for_one_path() {
    let sb = Sandbox::new(&[("mc-1", "one", 2, &[]), ("mc-2", "two", 2, &[])]);
    let mut first = Client::start(&sb, Some(("mc-1", 1)));
    let mut second = Client::start(&sb, Some(("mc-2", 1)));
    let (err, _) = first.call("lock_acquire", json!({"paths": ["Cargo.toml"]}));
    assert!(!err);
    let (err, text) = second.call("lock_acquire", json!({"paths": ["Cargo.toml"], "wait_seconds": 0.3}));
    assert!(err, "{text}");
    assert!(text.starts_with("still held after 300ms: Cargo.toml by mc-1#1 (pid "), "{text}");
    // The second waits; the first gives the path back meanwhile.
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let got = second.call("lock_acquire", json!({"paths": ["Cargo.toml"], "wait_seconds": 30}));
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(400));
    let (err, _) = first.call("lock_release", json!({"all": true}));
    assert!(!err);
    let ((err, text), waited) = waiter.join().unwrap();
    assert!(!err, "{text}");
    assert_eq!(text, "locked Cargo.toml (exclusive, held by mc-2#1)");
    assert!(waited < Duration::from_secs(30), "granted on release, not at the end of the wait: {waited:?}");
    let refused = sb.events("file_lock_refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["held_by"], json!(["mc-1#1"]));
    let acquired = sb.events("file_lock_acquired");
    assert_eq!(acquired.len(), 2);
    assert!(acquired[1]["waited_ms"].as_u64().unwrap() > 0, "{}", acquired[1]);
}
