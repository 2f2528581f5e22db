//! Workspace hooks (`[hooks]` in `.bdp/config.toml`): runs one in an issue's worktree, under the same
//! wrapper, limits and stop as a check (its own process group; TERM, grace, KILL), its output in the
//! attempt's directory (`hooks/<name>/`), and says how it ended in words for a prompt or a release.
//! Which hook runs when is the executor's (`steps.rs`): `after_create` and `before_run` before an agent,
//! `after_run` after it, `before_remove` before a worktree goes.

use std::path::PathBuf;

use tokio::sync::watch;

use crate::event::Hook;
use crate::supervisor::agent::{self, AgentSpec, Limits};

/// One hook to run.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub hook: Hook,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The attempt's directory: the hook's output goes to `hooks/<name>/` in it.
    pub attempt_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub bdp_exe: PathBuf,
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEnd {
    pub code: Option<i32>,
    pub duration_ms: u64,
    /// Set when it failed: why, with the end of its output (`the before_run hook `npm ci` exited 1: …`).
    pub failure: Option<String>,
}

/// Runs `run` to its end (a hook may be quiet for long: only its time counts, as for a check).
pub async fn run(run: HookRun, limits: Limits, stop: watch::Receiver<bool>) -> HookEnd {
    let dir = run.attempt_dir.join("hooks").join(run.hook.key());
    let spec = AgentSpec {
        bdp_exe: run.bdp_exe.clone(),
        argv: run.argv.clone(),
        cwd: run.cwd.clone(),
        attempt_dir: dir.clone(),
        env: run.env.clone(),
    };
    let what = format!("the {} hook `{}`", run.hook.key(), run.argv.join(" "));
    let running = match agent::spawn(&spec) {
        Ok(running) => running,
        Err(e) => return HookEnd { code: None, duration_ms: 0, failure: Some(format!("{what} cannot start: {e}")) },
    };
    let end = agent::supervise(running, Limits { stall: None, ..limits }, dir.clone(), stop).await;
    let failure = (!end.success()).then(|| {
        let how = end.why_failed(limits.timeout).replacen("agent ", "", 1);
        match super::previous::tail_of(&dir, 3) {
            Some(tail) => format!("{what} {how}: {tail}"),
            None => format!("{what} {how}"),
        }
    });
    HookEnd { code: end.code, duration_ms: end.duration_ms, failure }
}
