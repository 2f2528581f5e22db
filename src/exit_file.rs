//! The exit file, `exit.json` in an attempt's directory: the contract between the wrapper (`bdp __wrap`),
//! which writes it when the agent ends, and whoever learns the outcome later without being the agent's parent
//! (the supervisor of an adopted agent, recovery, `bdp audit`, `bdp logs`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What `exit.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// Set when the agent could not be started at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The wrapper's pid (the attempt's process group): lets recovery record a spawn the log missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl ExitRecord {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

pub use crate::supervisor::wrapper::{EXIT_FILE, write_atomically};

/// Reads an attempt's exit file; `None` if there is none (yet), an error if it is unreadable.
pub fn read_exit_file(attempt_dir: &Path) -> Result<Option<ExitRecord>, String> {
    let path = attempt_dir.join(EXIT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
