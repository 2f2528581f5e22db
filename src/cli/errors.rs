//! The one place where the library's errors become what the CLI prints and the exit code: each keeps its
//! kind (the user's input, damaged data, the system or a tool saying no, a bug in bdp), its message (the
//! file and line, or the command and what it printed) and a hint. "Internal error (a bug in bdp)" is kept
//! for real bugs, such as the fold refusing a record bdp has just appended.

use crate::error::{CliError, ErrorKind};
use crate::git::GitError;
use crate::log::LogError;
use crate::repo::RepoError;
use crate::supervisor::orchestrator::RunError;
use crate::tracker::TrackerError;

impl From<LogError> for CliError {
    fn from(err: LogError) -> Self {
        CliError { kind: err.kind(), message: err.to_string(), hint: err.hint() }
    }
}

impl From<RepoError> for CliError {
    fn from(err: RepoError) -> Self {
        match &err {
            RepoError::NoSuchDirectory(_) => CliError::user(err.to_string()),
            RepoError::NotInRepository(_) => {
                CliError::user(err.to_string()).with_hint("run bdp from inside your project, or pass --repo DIR")
            }
            RepoError::CurrentDir(_) => CliError::new(ErrorKind::Io, err.to_string()),
        }
    }
}

impl From<TrackerError> for CliError {
    fn from(err: TrackerError) -> Self {
        super::tracker::to_cli_error(err)
    }
}

impl From<GitError> for CliError {
    fn from(err: GitError) -> Self {
        let hint = match &err {
            GitError::Spawn(_) => "install git, or put it on PATH",
            GitError::Failed { .. } => "run that git command yourself in the repository to see what git says",
        };
        CliError::new(ErrorKind::Io, err.to_string()).with_hint(hint)
    }
}

impl From<RunError> for CliError {
    fn from(err: RunError) -> Self {
        let carry_on = "the log has every step so far; `bdp run` again carries on (agents left running are adopted)";
        match err {
            RunError::Log(e) => CliError::from(e),
            RunError::Tracker(e) => CliError::from(e),
            RunError::Git(e) => CliError::from(e),
            RunError::Io { what, path, source } => CliError::io(what, &path, &source),
            RunError::Internal(message) => CliError::internal(message).with_hint(carry_on),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn each_kind_keeps_its_kind_message_and_hint() {
        let cases: Vec<(RunError, ErrorKind, &str, &str)> = vec![
            (
                RunError::Tracker(TrackerError::Parse {
                    path: PathBuf::from(".beads/issues.jsonl"),
                    line: 3,
                    message: "expected value".into(),
                }),
                ErrorKind::Data,
                ".beads/issues.jsonl:3: expected value",
                "fix that line",
            ),
            (
                RunError::Tracker(TrackerError::Timeout {
                    command: "br list".into(),
                    timeout: std::time::Duration::from_secs(30),
                }),
                ErrorKind::Io,
                "`br list` did not finish within 30s",
                "did not answer in time",
            ),
            (
                RunError::Git(GitError::Failed { command: "git merge bdp/x".into(), stderr: "fatal: bad".into() }),
                ErrorKind::Io,
                "`git merge bdp/x` failed: fatal: bad",
                "run that git command yourself",
            ),
            (
                RunError::Io {
                    what: "write",
                    path: PathBuf::from("/r/.bdp/runs/x/1/prompt.md"),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                },
                ErrorKind::Io,
                "cannot write /r/.bdp/runs/x/1/prompt.md",
                "check the permissions",
            ),
            (RunError::Internal("the log refused its own record".into()), ErrorKind::Internal, "", "carries on"),
        ];
        for (err, kind, message, hint) in cases {
            let cli = CliError::from(err);
            assert_eq!(cli.kind, kind, "{cli}");
            assert!(cli.message.contains(message), "{cli}");
            assert!(cli.hint.as_deref().unwrap_or_default().contains(hint), "{cli}");
            assert_eq!(cli.exit_code(), crate::error::EXIT_ERROR);
            let shown = cli.to_string();
            assert_eq!(shown.starts_with("internal error (a bug in bdp)"), kind == ErrorKind::Internal, "{shown}");
        }
    }
}
