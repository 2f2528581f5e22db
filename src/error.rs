//! The error every command returns: what went wrong, where, and a hint; its kind maps to the exit code.
//!
//! Exit codes (all commands): [`EXIT_OK`] 0, [`EXIT_FOUND`] 1 "found something" (verify and audit found
//! damage, a run had issues fail or conflict), [`EXIT_ERROR`] 2 an error of any kind. Every library error
//! becomes a `CliError` in one place, `cli/errors.rs`, keeping its kind, its hint and its message.

/// Success.
pub const EXIT_OK: u8 = 0;
/// The command worked and found something: damage (verify, audit), failed or conflicted issues (run).
pub const EXIT_FOUND: u8 = 1;
/// An error: bad input, damaged data, the system or a tool saying no, or a bug in bdp.
pub const EXIT_ERROR: u8 = 2;

use std::fmt;
use std::path::Path;

/// What kind of failure, which decides the exit code and how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user asked for something that cannot be done as asked (bad argument, missing repo…).
    User,
    /// Data on disk is damaged or not what bdp expects.
    Data,
    /// The operating system said no (permissions, disk full…).
    Io,
    /// A bug in bdp.
    Internal,
}

/// A command's failure, printed as `error: MESSAGE` and `hint: HINT`.
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError { kind, message: message.into(), hint: None }
    }
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, message)
    }
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// An I/O error on `path`, with the operation that failed.
    pub fn io(what: &str, path: &Path, err: &std::io::Error) -> Self {
        let hint = match err.kind() {
            std::io::ErrorKind::PermissionDenied => Some(format!("check the permissions of {}", path.display())),
            std::io::ErrorKind::StorageFull => Some("free some disk space and run the command again".to_string()),
            _ => None,
        };
        CliError { kind: ErrorKind::Io, message: format!("cannot {what} {}: {err}", path.display()), hint }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// The process exit code for this error: always [`EXIT_ERROR`] ([`EXIT_FOUND`] is "found something").
    pub fn exit_code(&self) -> u8 {
        EXIT_ERROR
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ErrorKind::Internal {
            write!(f, "internal error (a bug in bdp): ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

pub type CliResult<T> = Result<T, CliError>;
