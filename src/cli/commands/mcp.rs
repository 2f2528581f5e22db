//! `bdp mcp`: an MCP server over stdio (the `rmcp` SDK) that `bdp run` starts for each agent through its
//! CLI's own MCP configuration (`claude --mcp-config`, `codex -c mcp_servers.bdp.*`). Its tools:
//!
//! - `lock_acquire`, `lock_release`, `lock_list`: the file locks of `bdp lock`, with the same semantics
//!   (`crate::file_locks` does the work for both);
//! - `report_progress`: a status line, and a percent or a step count, recorded as `progress_reported`;
//! - `issue`: the agent's own issue, as the tracker has it.
//!
//! The holder is the attempt bdp gave the agent (`$BDP_ISSUE`, `$BDP_ATTEMPT`); stdout carries the protocol
//! only (logging goes to stderr).

use std::time::Duration;

use clap::Args;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

use crate::cli::Outcome;
use crate::error::{CliError, CliResult};
use crate::event::Event;
use crate::file_locks::{Acquired, Request};
use crate::repo::Repo;
use crate::tracker::TrackerKind;

#[derive(Debug, Args)]
pub struct McpArgs {}

/// The longest `wait_seconds` a `lock_acquire` call may ask for: a tool call that blocks longer than this
/// looks like a hung tool to the agent's CLI.
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AcquireParams {
    /// Repo-relative paths or globs (`src/db/**`) to lock, all or none.
    pub paths: Vec<String>,
    /// How long to wait for locks others hold, in seconds (default 60, at most 600).
    #[serde(default)]
    pub wait_seconds: Option<f64>,
    /// After this many seconds the lock is stale and the next acquirer breaks it.
    #[serde(default)]
    pub ttl_seconds: Option<f64>,
    /// A shared lock goes with other shared locks (readers), not with an exclusive one.
    #[serde(default)]
    pub shared: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReleaseParams {
    /// The paths to give back, as they were taken. Leave out (or set `all`) to give back every lock held.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub all: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NoParams {}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProgressParams {
    /// One line: what you are doing now ("tests pass; writing the docs").
    pub status: String,
    /// How far along the whole task is, 0 to 100.
    #[serde(default)]
    pub percent: Option<u8>,
    /// The step you are on, counted from 1 ...
    #[serde(default)]
    pub step: Option<u32>,
    /// ... of this many.
    #[serde(default)]
    pub steps: Option<u32>,
}

/// The server: the repository, and the attempt it speaks for.
#[derive(Clone)]
pub struct Server {
    repo: Repo,
    tracker: TrackerKind,
    tool_router: ToolRouter<Server>,
}

fn text(line: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(line)])
}

fn refused(line: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(line)])
}

/// Runs `work` (file locks, the log, the tracker: blocking I/O) off the async runtime; its error, or a task
/// that did not finish, is the error result the agent sees.
async fn off_thread<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> crate::error::CliResult<T> + Send + 'static,
) -> Result<T, CallToolResult> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(refused(e.to_string())),
        Err(e) => Err(refused(format!("the {what} did not finish: {e}"))),
    }
}

fn seconds(value: Option<f64>, what: &str) -> Result<Option<Duration>, String> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s.min(1e9)))),
        Some(s) => Err(format!("{what} must be a number of seconds, 0 or more (got {s})")),
    }
}

/// The issue and attempt bdp gave this agent.
fn attempt() -> Result<(String, u32), String> {
    let issue = std::env::var("BDP_ISSUE").ok().filter(|i| !i.is_empty());
    let attempt = std::env::var("BDP_ATTEMPT").ok().and_then(|a| a.parse().ok());
    match (issue, attempt) {
        (Some(issue), Some(attempt)) => Ok((issue, attempt)),
        _ => Err("no issue: this server speaks for an agent that `bdp run` started ($BDP_ISSUE and \
                  $BDP_ATTEMPT are not set)"
            .into()),
    }
}

#[tool_router]
impl Server {
    pub fn new(repo: Repo, tracker: TrackerKind) -> Server {
        Server { repo, tracker, tool_router: Self::tool_router() }
    }

    #[tool(description = "Lock repo-relative paths or globs before editing files another agent may edit \
        (Cargo.toml, a schema, a lockfile, a migration). All or none; waits up to wait_seconds for locks others \
        hold. An error result says who holds them, or names a deadlock (give up your own locks, then retry).")]
    async fn lock_acquire(&self, Parameters(p): Parameters<AcquireParams>) -> CallToolResult {
        let holder = match crate::file_locks::holder_of(&None) {
            Ok(h) => h,
            Err(e) => return refused(e.to_string()),
        };
        let paths = match crate::file_locks::user_paths(&self.repo, &p.paths) {
            Ok(paths) if !paths.is_empty() => paths,
            Ok(_) => return refused("cannot lock: no paths given"),
            Err(e) => return refused(format!("cannot lock: {e}")),
        };
        let (wait, ttl) = match (seconds(p.wait_seconds, "wait_seconds"), seconds(p.ttl_seconds, "ttl_seconds")) {
            (Ok(w), Ok(t)) => (w.unwrap_or(Duration::from_secs(60)).min(MAX_WAIT), t),
            (Err(e), _) | (_, Err(e)) => return refused(e),
        };
        let request = Request {
            holder,
            paths,
            shared: p.shared.unwrap_or(false),
            wait,
            ttl,
            pid: crate::file_locks::owner_pid(),
        };
        let (repo, asked) = (self.repo.clone(), request.clone());
        match off_thread("lock call", move || crate::file_locks::acquire(&repo, &asked)).await {
            Ok(acquired @ Acquired::Granted { .. }) => text(acquired.message(&request)),
            Ok(acquired) => refused(acquired.message(&request)),
            Err(refusal) => refusal,
        }
    }

    #[tool(description = "Give back file locks: the paths given, or every lock you hold (all, or no paths). \
        bdp gives back every lock of an attempt when it ends, too.")]
    async fn lock_release(&self, Parameters(p): Parameters<ReleaseParams>) -> CallToolResult {
        let holder = match crate::file_locks::holder_of(&None) {
            Ok(h) => h,
            Err(e) => return refused(e.to_string()),
        };
        let paths = match (&p.paths, p.all.unwrap_or(false)) {
            (Some(given), false) if !given.is_empty() => match crate::file_locks::user_paths(&self.repo, given) {
                Ok(paths) => Some(paths),
                Err(e) => return refused(format!("cannot release: {e}")),
            },
            _ => None,
        };
        let (repo, giver) = (self.repo.clone(), holder.clone());
        match off_thread("release", move || crate::file_locks::release(&repo, &giver, paths.as_deref())).await {
            Ok(released) if released.is_empty() => text(format!("{holder} holds none of these locks")),
            Ok(released) => text(format!("unlocked {} (held by {holder})", released.join(", "))),
            Err(refusal) => refusal,
        }
    }

    #[tool(description = "The file locks held now (path, shared or exclusive, holder, since when) and who \
        waits for what, as JSON.")]
    async fn lock_list(&self, Parameters(_): Parameters<NoParams>) -> CallToolResult {
        let repo = self.repo.clone();
        match off_thread("listing", move || crate::file_locks::list(&repo)).await {
            Ok(listing) => match serde_json::to_string_pretty(&listing) {
                Ok(json) => text(json),
                Err(e) => refused(e.to_string()),
            },
            Err(refusal) => refusal,
        }
    }

    #[tool(description = "Say how far you are with your issue: one status line, and a percent or a step \
        count if you know it. People watching `bdp status` see it.")]
    async fn report_progress(&self, Parameters(p): Parameters<ProgressParams>) -> CallToolResult {
        let (issue, attempt) = match attempt() {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        let status = p.status.trim();
        if status.is_empty() {
            return refused("status is empty: say in one line what you are doing");
        }
        if p.percent.is_some_and(|pc| pc > 100) {
            return refused(format!("percent must be 0 to 100 (got {})", p.percent.unwrap_or(0)));
        }
        if let (Some(step), Some(steps)) = (p.step, p.steps)
            && (step == 0 || step > steps)
        {
            return refused(format!("step must be 1 to steps (got step {step} of {steps})"));
        }
        // Kept short: a status line, not a report.
        let status: String = status.chars().take(500).collect();
        let event = Event::ProgressReported {
            issue,
            attempt,
            status: status.clone(),
            percent: p.percent,
            step: p.step,
            steps: p.steps,
        };
        let repo = self.repo.clone();
        match off_thread("report", move || crate::file_locks::record(&repo, vec![event])).await {
            Ok(()) => text(format!("noted: {}", crate::text::progress_line(&status, p.percent, p.step, p.steps))),
            Err(refusal) => refusal,
        }
    }

    #[tool(description = "Your issue, as the tracker has it now: id, title, status, priority, labels, \
        dependencies, description, design, acceptance criteria and notes, as JSON.")]
    async fn issue(&self, Parameters(_): Parameters<NoParams>) -> CallToolResult {
        let (id, _) = match attempt() {
            Ok(a) => a,
            Err(e) => return refused(e),
        };
        let (repo, kind) = (self.repo.clone(), self.tracker);
        let shown = off_thread("tracker call", move || {
            let tracker = crate::cli::tracker::open(&repo, kind)?;
            tracker.show(&id).map_err(crate::cli::tracker::to_cli_error)
        })
        .await;
        match shown {
            Ok(issue) => text(issue_json(&issue)),
            Err(refusal) => refusal,
        }
    }
}

/// The issue as JSON, with its texts (which the planner's own JSON leaves out).
fn issue_json(issue: &crate::plan::Issue) -> String {
    let mut value = serde_json::to_value(issue).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        let t = &issue.text;
        for (key, text) in [
            ("description", &t.description),
            ("design", &t.design),
            ("acceptance_criteria", &t.acceptance_criteria),
            ("notes", &t.notes),
        ] {
            if let Some(text) = text {
                object.insert(key.into(), text.clone().into());
            }
        }
    }
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bdp", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "bdp runs several agents at once, each on its own issue in its own worktree. Before you edit a file \
             another agent may also edit (a manifest, a lockfile, a schema, a migration), take it with \
             lock_acquire, and give it back with lock_release when you are done with it. Say how far you are \
             with report_progress now and then. `issue` shows your issue as the tracker has it.",
            )
    }
}

pub fn run(repo: &Repo, tracker: TrackerKind, _args: &McpArgs) -> CliResult<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))?;
    let server = Server::new(repo.clone(), tracker);
    runtime.block_on(async move {
        let running = server.serve(rmcp::transport::stdio()).await.map_err(|e| {
            CliError::new(crate::error::ErrorKind::Io, format!("the MCP session on stdio did not start: {e}"))
        })?;
        running.waiting().await.map_err(|e| CliError::internal(format!("the MCP server stopped: {e}")))?;
        Ok(Outcome::Ok)
    })
}
