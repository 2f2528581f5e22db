//! `bdp run`'s options, each defined once: its flag, its key in `.bdp/config.toml`, its default and its
//! help all come from one entry of the list at the bottom of this file. From that list the
//! `run_options!` macro makes three types that cannot drift apart:
//!
//! - [`RunFlags`], the clap arguments (flattened into `bdp run`'s);
//! - [`ConfigFile`], the config file, where every key is the long option's name with `_` for `-`;
//! - [`RunOptions`], the resolved values the orchestrator uses (flags over the file over defaults).
//!
//! A default is written as text and read by the same parser as the flag and the key, so the default
//! shown in `--help` is the default used. A unit test parses every default.

use std::path::Path;
use std::time::Duration;

use crate::dispatch::Isolation;
use crate::dispatch::model::{OnConflict, RetryFrom};
use crate::event::{Hook, MergeStrategy};
use crate::supervisor::template::Preset;
use crate::text::parse_duration;

/// An option whose value (or whose key in the config file) is bad, said for a person: the file, the
/// line and the key, or the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionError {
    pub message: String,
}

fn error(message: impl Into<String>) -> OptionError {
    OptionError { message: message.into() }
}

/// A value an option can hold: read from text (a flag's value, a config value, a default) and written
/// into the session's record (durations as milliseconds).
pub trait OptionValue: Sized + Clone {
    fn parse(text: &str) -> Result<Self, String>;
    fn to_json(&self) -> serde_json::Value;
}

macro_rules! from_str_values {
    ($($t:ty),*) => {$(
        impl OptionValue for $t {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|e| format!("{text:?}: {e}"))
            }
            fn to_json(&self) -> serde_json::Value {
                serde_json::json!(self)
            }
        }
    )*};
}
from_str_values!(usize, u32, f64, bool, String);

impl OptionValue for Duration {
    fn parse(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!(u64::try_from(self.as_millis()).unwrap_or(u64::MAX))
    }
}

macro_rules! enum_values {
    ($($t:ty),*) => {$(
        impl OptionValue for $t {
            fn parse(text: &str) -> Result<Self, String> {
                <$t as clap::ValueEnum>::from_str(text.trim(), false).map_err(|_| {
                    let names: Vec<String> = <$t as clap::ValueEnum>::value_variants()
                        .iter()
                        .filter_map(|v| clap::ValueEnum::to_possible_value(v).map(|p| p.get_name().to_string()))
                        .collect();
                    format!("{text:?} is not one of: {}", names.join(", "))
                })
            }
            fn to_json(&self) -> serde_json::Value {
                let name = clap::ValueEnum::to_possible_value(self).map(|p| p.get_name().to_string());
                serde_json::json!(name)
            }
        }
    )*};
}
enum_values!(Isolation, MergeStrategy, PhaseLabels, Preset, RetryFrom, OnConflict);

/// Which phases a bd or br tracker is told about, as `phase:*` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhaseLabels {
    /// Each phase the issue reaches (one label at a time, changed in one call per dispatch step).
    All,
    /// None: only the claim and the close (or release) touch the tracker.
    None,
}

/// How each kind of option resolves: a flag, else the config file, else the default.
mod kind {
    use super::{OptionError, OptionValue, error};

    /// An option with a default: the resolved value is always there.
    pub mod value {
        use super::*;
        pub type Ty<T> = T;
        pub fn resolve<T: OptionValue>(flag: &Option<T>, file: Option<T>, default: &[&str]) -> Result<T, OptionError> {
            match (flag, file, default) {
                (Some(v), _, _) => Ok(v.clone()),
                (None, Some(v), _) => Ok(v),
                (None, None, [text]) => T::parse(text).map_err(|e| error(format!("bdp's own default {e}"))),
                (None, None, _) => Err(error("an option without a default is not a `value`")),
            }
        }
        pub fn to_json<T: OptionValue>(v: &T) -> serde_json::Value {
            v.to_json()
        }
    }

    /// An option that may be left unset.
    pub mod maybe {
        use super::*;
        pub type Ty<T> = Option<T>;
        pub fn resolve<T: OptionValue>(
            flag: &Option<T>,
            file: Option<T>,
            _: &[&str],
        ) -> Result<Option<T>, OptionError> {
            Ok(flag.clone().or(file))
        }
        pub fn to_json<T: OptionValue>(v: &Option<T>) -> serde_json::Value {
            v.as_ref().map_or(serde_json::Value::Null, T::to_json)
        }
    }

    /// A switch: on when the flag is given or the file says `true`.
    pub mod switch {
        use super::*;
        pub type Ty<T> = T;
        pub fn resolve(flag: &bool, file: Option<bool>, _: &[&str]) -> Result<bool, OptionError> {
            Ok(*flag || file.unwrap_or(false))
        }
        pub fn to_json(v: &bool) -> serde_json::Value {
            serde_json::json!(v)
        }
    }
}

/// The help line of an option: its doc comment's lines joined without the last full stop (as clap
/// writes a doc comment), and the default.
pub fn help(doc: &[&str], default: Option<&str>) -> String {
    let lines: Vec<&str> = doc.iter().map(|line| line.trim()).filter(|line| !line.is_empty()).collect();
    let text = lines.join(" ");
    let text = text.strip_suffix('.').unwrap_or(&text);
    match default {
        Some(default) => format!("{text} [default: {default}]"),
        None => text.to_string(),
    }
}

/// `[hooks]` in `.bdp/config.toml`: argv arrays run in each issue's worktree with the `BDP_*` environment
/// (never through a shell; write `["sh", "-c", "…"]` for one). A failing `after_create`, `before_run` or
/// `after_run` fails its attempt with its output's end; a failing `before_remove` is reported.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// After the issue's worktree is made (before its first agent): install dependencies, copy a `.env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_create: Option<Vec<String>>,
    /// Before each attempt's agent starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_run: Option<Vec<String>>,
    /// After each attempt's agent ends (whatever its outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_run: Option<Vec<String>>,
    /// Before the worktree is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_remove: Option<Vec<String>>,
}

impl Hooks {
    pub fn get(&self, hook: Hook) -> Option<&Vec<String>> {
        match hook {
            Hook::AfterCreate => self.after_create.as_ref(),
            Hook::BeforeRun => self.before_run.as_ref(),
            Hook::AfterRun => self.after_run.as_ref(),
            Hook::BeforeRemove => self.before_remove.as_ref(),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Hooks::default()
    }
}

/// The config file: each option's key (as TOML, with where it was written), and the agent command.
impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile, OptionError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(e) => return Err(error(format!("cannot read {}: {e}", path.display()))),
        };
        let mut file: ConfigFile = toml::from_str(&text).map_err(|e| {
            let place = e.span().map(|span| format!(" line {}", line_of(&text, span.start))).unwrap_or_default();
            error(format!("{}{place}: {}", path.display(), e.message().trim_end()))
        })?;
        if file.command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(error(format!("{}: `command` is empty", path.display())));
        }
        for hook in [Hook::AfterCreate, Hook::BeforeRun, Hook::AfterRun, Hook::BeforeRemove] {
            if file.hooks.get(hook).is_some_and(|argv| argv.is_empty()) {
                return Err(error(format!("{}: hooks.{} is empty", path.display(), hook.key())));
            }
        }
        file.path = path.display().to_string();
        file.text = text;
        Ok(file)
    }

    /// The ownership rules of `[ownership]`; a key that is not a repo-relative path or glob names the file.
    pub fn zones(&self) -> Result<Vec<crate::filelock::zones::Zone>, OptionError> {
        self.ownership
            .iter()
            .map(|(path, mode)| {
                crate::filelock::LockPath::parse(path)
                    .map(|path| crate::filelock::zones::Zone { path, mode: *mode })
                    .map_err(|e| error(format!("{}: [ownership] {e}", self.path)))
            })
            .collect()
    }

    /// The value of `key`, read by the option's own parser; a bad one names the file, line and key.
    fn read<T: OptionValue>(
        &self,
        key: &str,
        raw: &Option<toml::Spanned<toml::Value>>,
    ) -> Result<Option<T>, OptionError> {
        let Some(raw) = raw else { return Ok(None) };
        let text = match raw.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => raw.get_ref().to_string(),
            other => format!("{other}"),
        };
        T::parse(&text).map(Some).map_err(|e| {
            let line = line_of(&self.text, raw.span().start);
            error(format!("{} line {line}: {key} = {}: {e}", self.path, raw.get_ref()))
        })
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

macro_rules! run_options {
    // Each entry: doc lines, kind (`value` with a default, `maybe`, `switch`), name, type, default, clap extras.
    (@munch [$($flags:tt)*] [$($entries:tt)*]
        $(#[doc = $doc:literal])* value $name:ident : $ty:ty = $default:literal [$($arg:tt)*]; $($rest:tt)*) => {
        run_options!(@munch [$($flags)*
            #[arg(long, help = help(&[$($doc),*], Some($default)), $($arg)*)]
            pub $name: Option<$ty>,
        ] [$($entries)* ([$($doc)*] value $name $ty [$default])] $($rest)*);
    };
    (@munch [$($flags:tt)*] [$($entries:tt)*]
        $(#[doc = $doc:literal])* maybe $name:ident : $ty:ty [$($arg:tt)*]; $($rest:tt)*) => {
        run_options!(@munch [$($flags)*
            #[arg(long, help = help(&[$($doc),*], None), $($arg)*)]
            pub $name: Option<$ty>,
        ] [$($entries)* ([$($doc)*] maybe $name $ty [])] $($rest)*);
    };
    (@munch [$($flags:tt)*] [$($entries:tt)*]
        $(#[doc = $doc:literal])* switch $name:ident [$($arg:tt)*]; $($rest:tt)*) => {
        run_options!(@munch [$($flags)*
            #[arg(long, help = help(&[$($doc),*], None), $($arg)*)]
            pub $name: bool,
        ] [$($entries)* ([$($doc)*] switch $name bool [])] $($rest)*);
    };
    (@munch [$($flags:tt)*] [$(([$($doc:literal)*] $kind:ident $name:ident $ty:ty [$($default:literal)?]))*]) => {
        /// `bdp run`'s options as flags (each also a key of `.bdp/config.toml`).
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct RunFlags {
            $($flags)*
        }

        /// `.bdp/config.toml`: defaults for `bdp run`'s options, per repository. Keys are the long option
        /// names with `_` for `-`; durations are strings like `"30m"`. Flags win over the file. An unknown
        /// key or a bad value is an error that names the file, the line and the key.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ConfigFile {
            $($name: Option<toml::Spanned<toml::Value>>,)*
            /// The agent command, as an argv array.
            pub command: Option<Vec<String>>,
            /// `[hooks]`: commands run in each issue's worktree.
            #[serde(default)]
            pub hooks: Hooks,
            /// `[ownership]`: path globs mapped to `exclusive` or `sequential` (`crate::filelock::zones`).
            #[serde(default)]
            pub ownership: std::collections::BTreeMap<String, crate::filelock::zones::ZoneMode>,
            #[serde(skip)]
            path: String,
            #[serde(skip)]
            text: String,
        }

        /// The resolved options of one `bdp run`, as the orchestrator uses them.
        #[derive(Debug, Clone)]
        pub struct RunOptions {
            /// The agent's argv template; argv[0] is already an absolute path.
            pub template: Vec<String>,
            /// The workspace hooks (`[hooks]` in the config file).
            pub hooks: Hooks,
            /// The ownership rules (`[ownership]` in the config file).
            pub zones: Vec<crate::filelock::zones::Zone>,
            $($(#[doc = $doc])* pub $name: kind::$kind::Ty<$ty>,)*
        }

        impl RunOptions {
            /// The value of each option: the flag, else the file, else the default. The agent's argv
            /// (`template`) is left empty for the caller: it comes from `--`, `--agent` or `command`.
            pub fn resolve(flags: &RunFlags, file: &ConfigFile) -> Result<RunOptions, OptionError> {
                Ok(RunOptions {
                    template: Vec::new(),
                    hooks: file.hooks.clone(),
                    zones: file.zones()?,
                    $($name: kind::$kind::resolve(&flags.$name, file.read::<$ty>(stringify!($name), &file.$name)?, &[$($default)?])?,)*
                })
            }
        }

        /// Written into the session's first record: every option, durations in milliseconds.
        impl serde::Serialize for RunOptions {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("template", &self.template)?;
                if !self.hooks.is_empty() {
                    map.serialize_entry("hooks", &self.hooks)?;
                }
                if !self.zones.is_empty() {
                    let zones: std::collections::BTreeMap<String, &str> =
                        self.zones.iter().map(|z| (z.path.as_string(), z.mode.as_str())).collect();
                    map.serialize_entry("ownership", &zones)?;
                }
                $(map.serialize_entry(stringify!($name), &kind::$kind::to_json(&self.$name))?;)*
                map.end()
            }
        }

        /// Every option's key and its default (for tests and the docs).
        pub const KEYS: &[(&str, Option<&str>)] = &[$((stringify!($name), run_options!(@default $($default)?)),)*];
    };
    (@default $default:literal) => { Some($default) };
    (@default) => { None };
}

run_options! { @munch [] []
    /// How many agents run at once.
    value agents: usize = "4" [short = 'j', value_name = "N"];
    /// Use a known agent CLI instead of a command after `--`.
    maybe agent: Preset [value_name = "PRESET"];
    /// A command that must pass in the worktree before a branch is merged (run with `sh -c`).
    maybe check: String [value_name = "CMD"];
    /// A reviewer run in the worktree after the check, before the merge (with `sh -c`): it reads the issue
    /// ($BDP_PROMPT_FILE) and the diff ($BDP_DIFF_FILE) and writes its verdict to $BDP_REVIEW_FILE: a first
    /// line `approve` or `changes requested`, then its comments.
    maybe review: String [value_name = "CMD"];
    /// A known agent CLI as the reviewer (as --review, told what to do in its prompt).
    maybe review_agent: Preset [value_name = "PRESET"];
    /// Reviews that may request changes before the issue is given back: each starts one more attempt
    /// with the review in its prompt.
    value review_rounds: u32 = "2" [value_name = "N"];
    /// The branch to merge into [default: the branch checked out now]
    maybe base: String [value_name = "BRANCH"];
    /// Where agents work: a git worktree per issue, or the repository itself.
    value isolation: Isolation = "worktree" [];
    /// How finished branches reach the base branch: a merge commit, a rebase + fast-forward, or not at
    /// all (the branch is kept).
    value merge: MergeStrategy = "merge" [];
    /// Time an attempt may take before its process group gets TERM.
    value timeout: Duration = "30m" [value_parser = parse_duration, value_name = "DURATION"];
    /// An attempt that writes nothing (stdout or stderr) for this long is stopped and retried as stalled (a
    /// permission prompt, a hung tool); 0 turns it off.
    value stall: Duration = "10m" [value_parser = parse_duration, value_name = "DURATION"];
    /// Time between TERM and KILL.
    value grace: Duration = "10s" [value_parser = parse_duration, value_name = "DURATION"];
    /// Retries of a failed attempt before the issue is given back labelled bdp:failed.
    value retries: u32 = "2" [value_name = "N"];
    /// Wait before the first retry; doubled for each later one.
    value retry_backoff: Duration = "10s" [value_parser = parse_duration, value_name = "DURATION"];
    /// Where a retry starts: afresh from the base (the failed attempt's story is in its prompt), or from
    /// the failed attempt's commits.
    value retry_from: RetryFrom = "base" [value_name = "FROM"];
    /// A branch that conflicts with the base: one more attempt to merge the base in and resolve it, or
    /// given back at once, labelled bdp:conflict.
    value on_conflict: OnConflict = "resolve" [value_name = "HOW"];
    /// How long the tracker may fail (unreadable, timing out) before the run drains and exits 2; until
    /// then claims pause and closes wait, and agents keep running.
    value tracker_outage: Duration = "10m" [value_parser = parse_duration, value_name = "DURATION"];
    /// Stop claiming once the agents of this run reported spending this much, in US dollars (agents that
    /// report a cost: the claude preset).
    maybe max_cost: f64 [value_name = "USD"];
    /// Give an issue back, labelled bdp:failed, once its attempts reported spending this much, in US
    /// dollars; the claude preset also passes what is left to `claude --max-budget-usd`.
    maybe max_issue_cost: f64 [value_name = "USD"];
    /// Take at most N issues in this run.
    maybe max_issues: usize [value_name = "N"];
    /// Only this epic's descendants.
    maybe epic: String [value_name = "ID"];
    /// Only issues with this label.
    maybe label: String [value_name = "LABEL"];
    /// Keep each issue's worktree (and branch) when it is done.
    switch keep_worktrees [];
    /// Install a pre-commit hook in each worktree that refuses a commit touching a path another agent
    /// holds an exclusive file lock on (`bdp lock`); the repository's own pre-commit hook still runs.
    switch lock_hook [];
    /// With bd or br: label each issue with the phase it is in (`phase:running`, …), or leave the tracker
    /// alone between the claim and the close.
    value phase_labels: PhaseLabels = "all" [value_name = "WHICH"];
    /// No new agent while the 1-minute load average per core is above this.
    value max_load: f64 = "3.0" [value_name = "LOAD"];
    /// No new agent while memory in use is above this percentage.
    value max_mem: f64 = "90" [value_name = "PERCENT"];
    /// The assignee bdp claims issues as.
    value actor: String = "bdp" [value_name = "NAME"];
    /// Plain progress lines even on a terminal.
    switch plain [];
}

impl ConfigFile {
    /// The actor the file names, if any (`audit` and `clean` use the run's actor).
    pub fn actor(&self) -> Result<Option<String>, OptionError> {
        self.read("actor", &self.actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        flags: RunFlags,
    }

    fn file(text: &str) -> (tempfile::TempDir, Result<ConfigFile, OptionError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let loaded = ConfigFile::load(&path);
        (dir, loaded)
    }

    fn resolve(args: &[&str], config: &str) -> Result<RunOptions, OptionError> {
        let cli = Cli::try_parse_from(std::iter::once("bdp").chain(args.iter().copied())).unwrap();
        let (_dir, file) = file(config);
        let mut opts = RunOptions::resolve(&cli.flags, &file?)?;
        opts.template = vec!["agent".into()];
        Ok(opts)
    }

    #[test]
    fn every_default_is_read_by_its_own_parser() {
        let opts = resolve(&[], "").unwrap();
        assert_eq!(opts.agents, 4);
        assert_eq!(opts.isolation, Isolation::Worktree);
        assert_eq!(opts.merge, MergeStrategy::Merge);
        assert_eq!(opts.timeout, Duration::from_secs(1800));
        assert_eq!((opts.grace, opts.retry_backoff), (Duration::from_secs(10), Duration::from_secs(10)));
        assert_eq!(opts.tracker_outage, Duration::from_secs(600));
        assert_eq!((opts.retries, opts.max_load, opts.max_mem), (2, 3.0, 90.0));
        assert_eq!((opts.phase_labels, opts.actor.as_str()), (PhaseLabels::All, "bdp"));
        assert!(!opts.keep_worktrees && !opts.plain);
        assert_eq!((opts.agent, opts.check, opts.base, opts.max_issues), (None, None, None, None));
        assert_eq!(opts.stall, Duration::from_secs(600));
        assert_eq!((opts.retry_from, opts.on_conflict), (RetryFrom::Base, OnConflict::Resolve));
        assert_eq!((opts.review_rounds, opts.review.is_none(), opts.review_agent.is_none()), (2, true, true));
        assert_eq!(KEYS.iter().filter(|(_, d)| d.is_some()).count(), 16);
    }

    #[test]
    fn a_flag_wins_over_the_file_which_wins_over_the_default() {
        let config = "agents = 2\ntimeout = \"5m\"\nkeep_worktrees = true\nmerge = \"rebase\"\nmax_load = 1\n";
        let opts = resolve(&["--timeout", "90s", "--check", "make test"], config).unwrap();
        assert_eq!(opts.agents, 2);
        assert_eq!(opts.timeout, Duration::from_secs(90));
        assert!(opts.keep_worktrees);
        assert_eq!(opts.merge, MergeStrategy::Rebase);
        assert_eq!(opts.max_load, 1.0);
        assert_eq!(opts.check.as_deref(), Some("make test"));
        let opts = resolve(&["-j", "7", "--plain", "--isolation", "none"], config).unwrap();
        assert_eq!((opts.agents, opts.plain, opts.isolation), (7, true, Isolation::None));
    }

    #[test]
    fn every_key_of_the_file_is_an_option() {
        for (key, _) in KEYS {
            let value = if key.starts_with("keep") || *key == "plain" { "true" } else { "\"x\"" };
            let (_dir, loaded) = file(&format!("{key} = {value}\n"));
            assert!(loaded.is_ok(), "{key}: {loaded:?}");
        }
    }

    #[test]
    fn a_bad_config_names_the_file_the_line_and_the_key() {
        let (_dir, loaded) = file("agents = 2\ntimeuot = \"5m\"\n");
        let err = loaded.unwrap_err().to_string();
        assert!(err.contains("config.toml line 2") && err.contains("timeuot"), "{err}");
        let err = resolve(&[], "agents = 2\ntimeout = \"soon\"\n").unwrap_err().to_string();
        assert!(err.contains("config.toml line 2: timeout = \"soon\": not a duration"), "{err}");
        let err = resolve(&[], "\n\nisolation = \"vm\"\n").unwrap_err().to_string();
        assert!(err.contains("line 3: isolation = \"vm\": \"vm\" is not one of: worktree, none"), "{err}");
        let err = resolve(&[], "agents = \"many\"\n").unwrap_err().to_string();
        assert!(err.contains("line 1: agents = \"many\""), "{err}");
        let (_dir, loaded) = file("command = []\n");
        assert!(loaded.unwrap_err().to_string().contains("`command` is empty"));
        assert!(ConfigFile::load(Path::new("/nonexistent/config.toml")).unwrap().actor().unwrap().is_none());
    }

    #[test]
    fn the_session_record_keeps_durations_in_milliseconds() {
        let opts = resolve(&["--grace", "2s"], "").unwrap();
        let json = serde_json::to_value(&opts).unwrap();
        assert_eq!(json["grace"], 2000);
        assert_eq!(json["agents"], 4);
        assert_eq!(json["merge"], "merge");
        assert_eq!(json["check"], serde_json::Value::Null);
        assert_eq!(json["template"][0], "agent");
    }

    #[test]
    fn help_joins_the_doc_lines_and_names_the_default() {
        assert_eq!(
            help(&[" Time between", " TERM and KILL."], Some("10s")),
            "Time between TERM and KILL [default: 10s]"
        );
        assert_eq!(help(&[" Only this epic."], None), "Only this epic");
    }
}
