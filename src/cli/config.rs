//! `.bdp/config.toml`: defaults for `bdp run`'s options, per repository. Keys are the long option
//! names with `_` for `-`; durations are strings like `"30m"`, `"10s"`, `"1h30m"`. Flags win over the
//! file. An unknown key or a bad value is an error that names the file, the line and the key.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{CliError, CliResult};
use crate::supervisor::options::{Isolation, PhaseLabels};
use crate::supervisor::template::Preset;

use super::run::MergeArg;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub agents: Option<usize>,
    pub agent: Option<Preset>,
    pub command: Option<Vec<String>>,
    pub check: Option<String>,
    pub base: Option<String>,
    pub isolation: Option<Isolation>,
    pub merge: Option<MergeArg>,
    timeout: Option<String>,
    grace: Option<String>,
    pub retries: Option<u32>,
    retry_backoff: Option<String>,
    tracker_outage: Option<String>,
    pub max_issues: Option<usize>,
    pub epic: Option<String>,
    pub label: Option<String>,
    pub keep_worktrees: Option<bool>,
    pub phase_labels: Option<PhaseLabels>,
    pub max_load: Option<f64>,
    pub max_mem: Option<f64>,
    pub actor: Option<String>,
    #[serde(skip)]
    path: String,
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> CliResult<ConfigFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(e) => return Err(CliError::io("read", path, &e)),
        };
        let mut file: ConfigFile = toml::from_str(&text).map_err(|e| {
            let place = e
                .span()
                .map(|span| format!(" line {}", text[..span.start.min(text.len())].matches('\n').count() + 1))
                .unwrap_or_default();
            CliError::user(format!("{}{place}: {}", path.display(), e.message()))
                .with_hint("keys are `bdp run`'s long options with `_` for `-` (bdp run --help)")
        })?;
        if file.command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(CliError::user(format!("{}: `command` is empty", path.display())));
        }
        file.path = path.display().to_string();
        Ok(file)
    }

    fn duration(&self, key: &str, value: &Option<String>) -> CliResult<Option<Duration>> {
        value
            .as_deref()
            .map(|v| parse_duration(v).map_err(|e| CliError::user(format!("{}: {key} = {v:?}: {e}", self.path))))
            .transpose()
    }
    pub fn timeout(&self) -> CliResult<Option<Duration>> {
        self.duration("timeout", &self.timeout)
    }
    pub fn grace(&self) -> CliResult<Option<Duration>> {
        self.duration("grace", &self.grace)
    }
    pub fn retry_backoff(&self) -> CliResult<Option<Duration>> {
        self.duration("retry_backoff", &self.retry_backoff)
    }
    pub fn tracker_outage(&self) -> CliResult<Option<Duration>> {
        self.duration("tracker_outage", &self.tracker_outage)
    }
}

/// `30m`, `10s`, `1h30m`, `250ms`, `2 minutes` (jiff's friendly format), or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration =
        text.trim().parse().map_err(|_| format!("not a duration (try 30m, 10s, 1h30m, 500ms): {text:?}"))?;
    Duration::try_from(d).map_err(|_| format!("a duration cannot be negative: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn a_bad_config_names_the_file_the_line_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "agents = 2\ntimeuot = \"5m\"\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("config.toml line 2") && err.contains("timeuot"), "{err}");
        std::fs::write(&path, "agents = 2\ntimeout = \"soon\"\n").unwrap();
        let err = ConfigFile::load(&path).unwrap().timeout().unwrap_err().to_string();
        assert!(err.contains("timeout = \"soon\""), "{err}");
        assert!(ConfigFile::load(&dir.path().join("missing.toml")).unwrap().agents.is_none());
    }
}
