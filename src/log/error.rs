//! What can go wrong with the log on disk, with the place: segment file, line, byte offset and seq.

use std::fmt;
use std::path::PathBuf;

use crate::event::DecodeError;
use crate::state::TransitionError;

/// A place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub segment: PathBuf,
    /// 1-based line number within the segment.
    pub line: u64,
    /// Byte offset of the line's first byte within the segment.
    pub offset: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.segment.display())
        } else {
            write!(f, "{}:{} (byte {})", self.segment.display(), self.line, self.offset)
        }
    }
}

/// What is wrong with a damaged record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Decode(DecodeError),
    #[error(
        "the chain value does not match (this record was edited, or one before it was changed, dropped or reordered)"
    )]
    ChainMismatch,
    #[error("found seq {found} in its place ({})", if found < expected { "a duplicated or reordered record" } else { "records are missing or reordered" })]
    SeqOutOfOrder { expected: u64, found: u64 },
    #[error("segment {missing} is missing")]
    MissingSegment { missing: String },
    #[error("the segment is empty but later segments exist")]
    EmptySegment,
    #[error("a line in the middle of the log is incomplete (no newline) but later segments exist")]
    IncompleteLine,
    #[error(
        "the last record is whole but the byte after it is not a newline (it was overwritten: an interrupted write never leaves that)"
    )]
    OverwrittenNewline,
}

/// A damaged record, reported by the seq it holds or the seq that was expected at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub seq: u64,
    pub location: Location,
    pub problem: Problem,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {} at {}", self.seq, self.problem, self.location)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the event log is damaged: {0}")]
    Corrupt(Box<Corruption>),
    #[error("the event log holds an impossible transition at {1}: {0}")]
    Transition(TransitionError, Location),
    #[error("there is no event log at {}", path.display())]
    NoLog { path: PathBuf },
    #[error("another bdp orchestrator holds {} ({holder})", path.display())]
    Locked { path: PathBuf, holder: String },
    #[error("the log writer is unusable after an earlier failure: {0}")]
    WriterBroken(String),
    /// The same failure, handed to every caller whose events were in the failed commit.
    #[error(transparent)]
    Shared(std::sync::Arc<LogError>),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the checkpoint index {} failed: {message}", path.display())]
    Index { path: PathBuf, message: String },
}

impl LogError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io { op, path: path.into(), source }
    }
    pub fn corrupt(seq: u64, location: Location, problem: Problem) -> Self {
        LogError::Corrupt(Box::new(Corruption { seq, location, problem }))
    }
}

impl LogError {
    /// The error behind a shared one.
    pub fn root(&self) -> &LogError {
        match self {
            LogError::Shared(inner) => inner.root(),
            other => other,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self.root() {
            LogError::Corrupt(_) | LogError::Transition(..) => {
                Some("run `bdp verify` for the details; bdp will not run on a damaged log".to_string())
            }
            LogError::NoLog { .. } => Some("`bdp run` creates the log; pass --repo DIR to look elsewhere".to_string()),
            LogError::Locked { .. } => Some("stop it with `bdp stop`, or wait for it to finish".to_string()),
            LogError::Io { source, path, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some(format!("check the permissions of {}", path.display()))
            }
            LogError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull || source.raw_os_error() == Some(27) =>
            {
                Some("free some disk space (or raise the file size limit); nothing partial was written".to_string())
            }
            LogError::Index { path, .. } => {
                Some(format!("{} is only a cache: delete it and bdp rebuilds it", path.display()))
            }
            _ => None,
        }
    }

    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self.root() {
            LogError::Corrupt(_) | LogError::Transition(..) => ErrorKind::Data,
            LogError::NoLog { .. } | LogError::Locked { .. } => ErrorKind::User,
            LogError::Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::Io,
        }
    }
}
