//! The real agent CLIs, offline: `claude` pointed at a stand-in for the Messages API on loopback, `codex`
//! at the same stand-in's Responses API (`standin_api.py`, beside this file). A test that needs a CLI
//! skips, saying so, when it is not installed (`.ci/run` installs them from npm).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The stand-in API, running; killed when dropped.
pub struct StandIn {
    child: Child,
    pub port: u16,
    /// Every request it answered, one JSON line each.
    pub log: PathBuf,
    /// A HOME for the CLI (its sessions and settings), apart from the user's.
    pub home: tempfile::TempDir,
}

impl StandIn {
    /// Starts the stand-in, or `None` (and a notice) when `claude` or `python3` is not installed.
    pub fn start(test: &str) -> Option<StandIn> {
        StandIn::start_for(test, "claude")
    }

    /// Starts the stand-in for the agent CLI `cli`, or `None` (and a notice) when it or `python3` is not
    /// installed.
    pub fn start_for(test: &str, cli: &str) -> Option<StandIn> {
        for program in [cli, "python3"] {
            if which(program).is_none() {
                eprintln!("{test}: skipped, `{program}` is not installed (.ci/run installs it)");
                return None;
            }
        }
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/standin_api.py");
        let mut child = Command::new("python3")
            .arg(script)
            .env("STANDIN_LOG", &log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let port = first.trim().strip_prefix("port ").and_then(|p| p.parse().ok()).expect("the stand-in's port");
        Some(StandIn { child, port, log, home })
    }

    /// Points `cmd` (a `bdp run --agent claude`) at the stand-in, in `mode` (see standin_api.py).
    pub fn env(&self, cmd: &mut Command, mode: &str) {
        cmd.env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{}/{mode}", self.port))
            .env("ANTHROPIC_API_KEY", "sk-test-standin")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("HOME", self.home.path());
    }

    /// Points `cmd` (a `bdp run --agent codex`) at the stand-in: codex's home (its sessions) apart from
    /// the user's, and the key its provider reads. The provider itself is in [`StandIn::codex_flags`].
    pub fn codex_env(&self, cmd: &mut Command) {
        cmd.env("CODEX_HOME", self.home.path()).env("STANDIN_API_KEY", "sk-test-standin");
    }

    /// Flags for `bdp run --agent codex -- FLAGS`: a model provider on the stand-in in `mode`, as a user
    /// points codex at a gateway with `-c` (no retries, so a refused request fails at once).
    pub fn codex_flags(&self, mode: &str) -> Vec<String> {
        let provider = format!(
            "model_providers.standin={{name=\"standin\", base_url=\"http://127.0.0.1:{}/{mode}/v1\", \
             env_key=\"STANDIN_API_KEY\", wire_api=\"responses\", request_max_retries=0, stream_max_retries=0}}",
            self.port
        );
        ["-c", "model_provider=\"standin\"", "-c", &provider, "-c", "model=\"standin-model\""]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// A Bash command for the stand-in's model (`commit:` mode), url-quoted: it commits a file named after
/// the issue (from the agent's `BDP_ISSUE`), so agents of different issues never conflict.
pub fn commit_mode() -> String {
    let command =
        r#"echo "done by the model" > "done-$BDP_ISSUE.txt" && git add -A && git commit -q -m "agent: $BDP_ISSUE""#;
    command_mode(command)
}

/// The stand-in's `commit:` mode with the model's Bash call running `command` (url-quoted here).
pub fn command_mode(command: &str) -> String {
    let quoted: String = command
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("commit:{quoted}")
}
