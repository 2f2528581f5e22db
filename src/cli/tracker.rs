//! Opening the tracker for a command (`--tracker`), and turning tracker errors into `CliError`s with hints.

use std::time::Duration;

use crate::error::{CliError, ErrorKind};
use crate::repo::Repo;
use crate::tracker::{self, Tracker, TrackerError, TrackerKind};

/// How long one `bd`/`br` call may take before it is killed.
pub const TRACKER_TIMEOUT: Duration = Duration::from_secs(30);

pub fn open(repo: &Repo, kind: TrackerKind) -> Result<Box<dyn Tracker>, CliError> {
    tracker::select(kind, &repo.root, TRACKER_TIMEOUT).map_err(to_cli_error)
}

pub fn to_cli_error(err: TrackerError) -> CliError {
    let message = err.to_string();
    let (kind, hint): (ErrorKind, Option<String>) = match &err {
        TrackerError::Parse { path, .. } | TrackerError::DuplicateId { path, .. } => (
            ErrorKind::Data,
            Some(format!(
                "fix that line of {} (see `git diff` / `git log -p` on it); nothing was written",
                path.display()
            )),
        ),
        TrackerError::NoBeadsDir(_) => (
            ErrorKind::User,
            Some("run `bd init` or `br init` in the repo, or create .beads/issues.jsonl; or pass --repo DIR".into()),
        ),
        TrackerError::Io { .. } | TrackerError::Spawn { .. } => (ErrorKind::Io, None),
        TrackerError::NotFound(_) => (ErrorKind::User, Some("check the id with `bd list` / `br list`".into())),
        TrackerError::AlreadyClaimed { .. } | TrackerError::NotClaimable { .. } => (ErrorKind::User, None),
        TrackerError::ClaimNotVerified { .. } => {
            (ErrorKind::Io, Some("the tracker lost the claim (a known bd race); try again".into()))
        }
        TrackerError::Timeout { .. } => (
            ErrorKind::Io,
            Some("the tracker did not answer in time; check that it works on its own (is a Dolt server hung?)".into()),
        ),
        TrackerError::CommandFailed { .. } | TrackerError::BadOutput { .. } => (
            ErrorKind::Io,
            Some("run the command above yourself to see what the tracker says; --tracker jsonl bypasses it".into()),
        ),
        TrackerError::BinaryMissing { binary } => (
            ErrorKind::User,
            Some(format!("install {binary}, or use --tracker auto (or jsonl) to work on .beads/issues.jsonl")),
        ),
        TrackerError::DatabaseWithoutBinary { binary, .. } => (
            ErrorKind::User,
            Some(format!(
                "install {binary}; or pass --tracker jsonl to edit .beads/issues.jsonl directly, knowing that \
                 {binary}'s next export from its database would undo those edits"
            )),
        ),
        TrackerError::Events(_) => (ErrorKind::Internal, None),
    };
    let err = CliError::new(kind, message);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}
