//! The agent's argv: the user's template (`-- CMD {id} {prompt_file}`) or a preset (`--agent claude`),
//! with placeholders substituted, and the check that the program exists before anything is claimed.
//!
//! Issue text never reaches argv through here, and nothing here goes through a shell: placeholders are
//! replaced inside single argv elements, which are passed to `execve` as they are. Values that come from
//! the tracker (the id) are data, whatever characters they hold.

use std::path::{Path, PathBuf};

/// Agent CLIs bdp knows how to drive unattended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Claude Code: `claude -p --output-format json --permission-mode dontAsk --allowedTools=<a coding
    /// agent's tools> PROMPT` (works as root, where `--dangerously-skip-permissions` is refused).
    Claude,
    /// OpenAI Codex: `codex exec --json --sandbox workspace-write --add-dir GIT_DIR --add-dir
    /// WORKTREE_GIT_DIR PROMPT`.
    Codex,
}

/// The tools the claude preset allows: shell, reading and editing files, and the task list; old names
/// (`Glob`, `Grep`, `LS`, `MultiEdit`, `TodoWrite`) and new ones (`Task*`), as the CLI's versions name
/// them (a name a version does not have is ignored). Not the web tools. One `=` argument: a space would
/// let the variadic option swallow the prompt that follows.
/// `mcp__bdp` allows every tool of the `bdp mcp` server the preset starts.
pub const CLAUDE_TOOLS: &str = "--allowedTools=Bash,Edit,MultiEdit,Write,Read,NotebookEdit,Glob,Grep,LS,TodoWrite,TaskCreate,TaskGet,TaskList,TaskUpdate,mcp__bdp";

/// The `bdp mcp` server for claude (`--mcp-config` takes JSON strings; one `=` argument, as above). Claude
/// starts it with its own environment, so it knows the attempt (`$BDP_ISSUE`, `$BDP_ATTEMPT`).
pub const CLAUDE_MCP: &str =
    r#"--mcp-config={"mcpServers":{"bdp":{"type":"stdio","command":{bdp_json},"args":["mcp"]}}}"#;

/// The `bdp mcp` server for codex, as `-c` overrides of its config (TOML values). Codex starts MCP servers
/// with a few variables of its environment only: `env_vars` passes the attempt's on. Its default tool
/// timeout (60 s) is shorter than a lock's longest wait (600 s). `exec` never asks for an approval, so an MCP
/// tool that needs one is refused: its tools are approved here.
pub const CODEX_MCP: [&str; 10] = [
    "-c",
    "mcp_servers.bdp.command={bdp_json}",
    "-c",
    r#"mcp_servers.bdp.args=["mcp"]"#,
    "-c",
    r#"mcp_servers.bdp.env_vars=["BDP_ISSUE","BDP_ATTEMPT","BDP_WORKTREE","BDP_SESSION","BDP_WRAPPER_PID","BDP_TRACKER"]"#,
    "-c",
    "mcp_servers.bdp.tool_timeout_sec=660",
    "-c",
    r#"mcp_servers.bdp.default_tools_approval_mode="approve""#,
];

/// The instruction both presets pass as the prompt: the issue itself is in the prompt file.
pub const PRESET_INSTRUCTION: &str =
    "Your task is described in the file {prompt_file}. Read it, do the work in this directory, and commit it.";

impl Preset {
    /// The argv template of the preset (flags as the CLIs' own `--help` documents them).
    pub fn template(self) -> Vec<String> {
        let words: &[&str] = match self {
            // `-p/--print` runs non-interactively; `--output-format json` prints one result object with
            // `total_cost_usd`, `usage` and `session_id`. Nobody is there to grant a permission, and
            // `--dangerously-skip-permissions` is refused as root ("cannot be used with root/sudo
            // privileges"), which many containers are: the tools a coding agent needs are allowed by name,
            // and `dontAsk` denies the others at once instead of waiting for an answer.
            // bdp names the session (`--session-id`), so a retry can resume it even when the CLI was killed
            // before it printed its own id (a timeout, a stall).
            Preset::Claude => &[
                "claude",
                "-p",
                "--output-format",
                "json",
                "--permission-mode",
                "dontAsk",
                CLAUDE_TOOLS,
                CLAUDE_MCP,
                "--session-id",
                "{agent_session}",
            ],
            // `exec` runs non-interactively; `--json` prints JSONL events (`thread.started` names the
            // thread, `turn.completed` carries `usage`); the sandbox may write the worktree. A commit writes
            // the repository's `.git` (objects, refs) and the worktree's own git dir under it (index,
            // HEAD), which the Linux sandbox mounts read-only unless each is named: two `--add-dir`.
            Preset::Codex => &[
                "codex",
                "exec",
                "--json",
                "--sandbox",
                "workspace-write",
                "--add-dir",
                "{git_dir}",
                "--add-dir",
                "{worktree_git_dir}",
            ],
        };
        let mut argv: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        if self == Preset::Codex {
            argv.extend(CODEX_MCP.iter().map(|w| w.to_string()));
        }
        argv.push(PRESET_INSTRUCTION.to_string());
        argv
    }

    /// The preset's template with the user's own flags (`bdp run --agent codex -- -c model="o3"`) added
    /// before the prompt, where the CLI reads them as its own.
    pub fn template_with(self, extra: &[String]) -> Vec<String> {
        let mut argv = self.template();
        let at = argv.len() - 1;
        argv.splice(at..at, extra.iter().cloned());
        argv
    }

    /// The argv of a retry that resumes the conversation `session` of the attempt before it, with `note`
    /// as the new message: `claude … --resume S NOTE`, `codex exec … resume S NOTE`.
    pub fn resume(self, argv: &[String], session: &str, note: &str) -> Vec<String> {
        match self {
            Preset::Claude => resume_claude(argv, session, note),
            Preset::Codex => {
                let mut out = argv[..argv.len().saturating_sub(1)].to_vec();
                out.extend(["resume".to_string(), session.to_string(), note.to_string()]);
                out
            }
        }
    }
}

/// The values placeholders stand for, for one attempt.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    pub id: &'a str,
    pub prompt_file: &'a str,
    pub worktree: &'a str,
    pub attempt: u32,
    pub git_dir: &'a str,
    /// The worktree's own git dir (`.git/worktrees/NAME`, where its index and HEAD live); the
    /// repository's `.git` when the agent works in the checkout itself.
    pub worktree_git_dir: &'a str,
    /// A UUID for the attempt's agent session ([`agent_session_id`]).
    pub agent_session: &'a str,
    /// This bdp program's path (`{bdp}`; `{bdp_json}` is it as a quoted JSON string, which is also a TOML
    /// one, for the MCP configurations of the presets).
    pub bdp: &'a str,
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "{id}",
    "{prompt_file}",
    "{worktree}",
    "{attempt}",
    "{git_dir}",
    "{worktree_git_dir}",
    "{agent_session}",
    "{bdp}",
    "{bdp_json}",
];

/// The session id bdp gives an attempt's agent (`claude --session-id`): a UUID (version 4 layout) made
/// from the run's session, the issue and the attempt, so it is known before the agent prints anything and
/// a retry can resume the conversation of an attempt that was killed before it could say its own.
pub fn agent_session_id(run_session: &str, issue: &str, attempt: u32) -> String {
    let hash = blake3::hash(format!("bdp agent session\0{run_session}\0{issue}\0{attempt}").as_bytes());
    let mut b: [u8; 16] = hash.as_bytes()[..16].try_into().expect("a blake3 hash has 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The Claude session an attempt's argv started or resumed (`--session-id S` or `--resume S`).
pub fn claude_session(argv: &[String]) -> Option<&str> {
    argv.windows(2).find(|w| w[0] == "--session-id" || w[0] == "--resume").map(|w| w[1].as_str())
}

/// The claude argv of a retry that resumes `session`: `--resume S` instead of `--session-id`, and `note`
/// as the new message (the last argument, where the preset puts its prompt).
pub fn resume_claude(argv: &[String], session: &str, note: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(argv.len() + 2);
    let mut args = argv[..argv.len().saturating_sub(1)].iter();
    while let Some(arg) = args.next() {
        if arg == "--session-id" || arg == "--resume" {
            args.next();
        } else {
            out.push(arg.clone());
        }
    }
    out.extend(["--resume".to_string(), session.to_string(), note.to_string()]);
    out
}

/// Replaces every placeholder in every argument. Each argument stays one argument.
pub fn substitute(template: &[String], vars: &Vars<'_>) -> Vec<String> {
    let attempt = vars.attempt.to_string();
    let bdp_json = serde_json::Value::from(vars.bdp).to_string();
    template
        .iter()
        .map(|arg| {
            // One pass over the argument, so a value that contains `{id}` is not substituted again.
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            'outer: while !rest.is_empty() {
                for (name, value) in [
                    ("{id}", vars.id),
                    ("{prompt_file}", vars.prompt_file),
                    ("{worktree}", vars.worktree),
                    ("{attempt}", attempt.as_str()),
                    ("{git_dir}", vars.git_dir),
                    ("{worktree_git_dir}", vars.worktree_git_dir),
                    ("{agent_session}", vars.agent_session),
                    ("{bdp_json}", bdp_json.as_str()),
                    ("{bdp}", vars.bdp),
                ] {
                    if let Some(after) = rest.strip_prefix(name) {
                        out.push_str(value);
                        rest = after;
                        continue 'outer;
                    }
                }
                let ch = rest.chars().next().expect("rest is not empty");
                out.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
            out
        })
        .collect()
}

/// The git dir of the checkout at `workdir`: what its `.git` file points to (a linked worktree), the
/// `.git` directory itself, or `fallback` when it has neither (not a git checkout, unreadable).
pub fn worktree_git_dir(workdir: &Path, fallback: &str) -> String {
    let dot_git = workdir.join(".git");
    if dot_git.is_dir() {
        return dot_git.display().to_string();
    }
    let Ok(text) = std::fs::read_to_string(&dot_git) else { return fallback.to_string() };
    match text.trim_end().strip_prefix("gitdir: ") {
        // Relative with `worktree.useRelativePaths`: relative to the worktree.
        Some(dir) => workdir.join(dir).display().to_string(),
        None => fallback.to_string(),
    }
}

/// Why an agent program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("the agent command is empty")]
    Empty,
    #[error("agent program {0} does not exist")]
    Missing(PathBuf),
    #[error("agent program {0} is not an executable file")]
    NotExecutable(PathBuf),
    #[error("agent program {0} is not on PATH")]
    NotOnPath(String),
}

/// Resolves the program (argv[0]) to an absolute path: a path with a `/` is taken relative to `cwd`, a
/// bare name is looked up on PATH. The agent runs in a worktree, so a relative path must be fixed now.
pub fn resolve_program(program: &str, cwd: &Path) -> Result<PathBuf, ProgramError> {
    if program.is_empty() {
        return Err(ProgramError::Empty);
    }
    if program.contains('/') {
        let path = cwd.join(program);
        return match std::fs::metadata(&path) {
            Err(_) => Err(ProgramError::Missing(path)),
            Ok(meta) if !is_executable(&meta) => Err(ProgramError::NotExecutable(path)),
            Ok(_) => Ok(path),
        };
    }
    crate::tracker::find_on_path(program).ok_or_else(|| ProgramError::NotOnPath(program.to_string()))
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            id: "bd-1",
            prompt_file: "/r/p.md",
            worktree: "/r/wt",
            attempt: 2,
            git_dir: "/r/.git",
            worktree_git_dir: "/r/.git/worktrees/wt",
            agent_session: "u-1",
            bdp: "/opt/b\"dp",
        }
    }

    #[test]
    fn placeholders_are_replaced_inside_single_arguments() {
        let t: Vec<String> = ["agent", "--issue={id}", "{prompt_file}", "{worktree}/x", "#{attempt}", "{nope}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(substitute(&t, &vars()), ["agent", "--issue=bd-1", "/r/p.md", "/r/wt/x", "#2", "{nope}"]);
    }

    #[test]
    fn hostile_values_stay_one_argument_and_are_not_expanded_again() {
        let v = Vars { id: "x; rm -rf / {worktree} $(id)", ..vars() };
        let out = substitute(&["{id}".to_string()], &v);
        assert_eq!(out, ["x; rm -rf / {worktree} $(id)"]);
    }

    #[test]
    fn presets_pass_the_prompt_file_not_the_issue_text() {
        for preset in [Preset::Claude, Preset::Codex] {
            let argv = substitute(&preset.template(), &vars());
            assert!(argv.last().unwrap().contains("/r/p.md"), "{argv:?}");
        }
        let codex = substitute(&Preset::Codex.template(), &vars());
        assert!(codex.contains(&"/r/.git".to_string()) && codex.contains(&"/r/.git/worktrees/wt".to_string()));
    }

    #[test]
    fn a_presets_extra_flags_go_before_the_prompt() {
        let extra = ["-c".to_string(), "model=\"o3\"".to_string()];
        let argv = Preset::Codex.template_with(&extra);
        assert_eq!(argv[argv.len() - 3..argv.len() - 1], extra);
        assert_eq!(argv.last().unwrap(), PRESET_INSTRUCTION);
        assert_eq!(argv.len(), Preset::Codex.template().len() + 2);
    }

    #[test]
    fn a_resumed_codex_attempt_resumes_its_thread() {
        let first = substitute(&Preset::Codex.template(), &vars());
        let again = Preset::Codex.resume(&first, "t-1", "carry on");
        assert_eq!(&again[again.len() - 3..], ["resume", "t-1", "carry on"]);
        assert_eq!(again[..again.len() - 3], first[..first.len() - 1], "exec's own flags stay before `resume`");
    }

    #[test]
    fn a_worktrees_git_dir_is_read_from_its_dot_git() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(worktree_git_dir(dir.path(), "/fb"), "/fb");
        std::fs::write(dir.path().join(".git"), "gitdir: /r/.git/worktrees/a\n").unwrap();
        assert_eq!(worktree_git_dir(dir.path(), "/fb"), "/r/.git/worktrees/a");
        std::fs::write(dir.path().join(".git"), "gitdir: ../r/.git/worktrees/a\n").unwrap();
        assert_eq!(worktree_git_dir(dir.path(), "/fb"), dir.path().join("../r/.git/worktrees/a").display().to_string());
        std::fs::remove_file(dir.path().join(".git")).unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        assert_eq!(worktree_git_dir(dir.path(), "/fb"), dir.path().join(".git").display().to_string());
    }

    #[test]
    fn programs_are_resolved_or_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        assert!(resolve_program("sh", dir.path()).unwrap().is_absolute());
        assert_eq!(resolve_program("./nope", dir.path()), Err(ProgramError::Missing(dir.path().join("./nope"))));
        std::fs::write(dir.path().join("plain"), "x").unwrap();
        assert!(matches!(resolve_program("./plain", dir.path()), Err(ProgramError::NotExecutable(_))));
        assert!(matches!(resolve_program("no-such-program-bdp", dir.path()), Err(ProgramError::NotOnPath(_))));
    }

    #[test]
    fn a_resumed_claude_attempt_names_the_session_and_says_why() {
        let first = substitute(&Preset::Claude.template(), &vars());
        assert_eq!(claude_session(&first), Some("u-1"));
        let again = resume_claude(&first, "u-1", "carry on");
        assert_eq!(claude_session(&again), Some("u-1"));
        assert_eq!(again.iter().filter(|a| *a == "--session-id").count(), 0, "{again:?}");
        assert_eq!(&again[again.len() - 3..], ["--resume", "u-1", "carry on"]);
        assert_eq!(again[..again.len() - 3], first[..first.len() - 3], "the rest of the argv is kept");
        // Resumed again: one `--resume`.
        let third = resume_claude(&again, "u-1", "and again");
        assert_eq!(third.iter().filter(|a| *a == "--resume").count(), 1, "{third:?}");
    }

    #[test]
    fn agent_session_ids_are_uuids_of_the_attempt() {
        let id = agent_session_id("s-1", "bd-1", 1);
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{id}");
        assert_eq!(id, agent_session_id("s-1", "bd-1", 1));
        assert_ne!(id, agent_session_id("s-1", "bd-1", 2));
        assert_ne!(id, agent_session_id("s-1", "bd-2", 1));
    }
}
