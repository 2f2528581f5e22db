//! `bdp lock acquire|release|list`: file locks for agents working side by side. A lock names a
//! repo-relative path or glob (`src/db/**`), exclusive or `--shared`, held by an issue's attempt
//! (`$BDP_ISSUE#$BDP_ATTEMPT` under `bdp run`) or `--holder ID`.
//!
//! On disk: one JSON file per held lock under `.bdp/file-locks/`, written whole (temp file, fsync,
//! rename) while holding `.bdp/file-locks/.guard` (flock), which every acquire, release and break takes,
//! so a check and its grant are one step for every process. A waiter writes what it waits for under
//! `.bdp/file-locks/waits/`, which makes the wait-for graph: a cycle through a waiter is a deadlock, and
//! the youngest waiter of it gives up at once. Every acquire, refusal, release and break is also a record
//! of the event log. The rules (paths, conflicts, cycles) are `crate::filelock`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::cli::Outcome;
use crate::error::{CliError, CliResult};
use crate::event::Event;
use crate::filelock::{Entry, LockPath, blockers, canonical, cycle_through};
use crate::repo::Repo;

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(subcommand)]
    pub command: LockCommand,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Take locks on PATHs (all or none), waiting for them up to --wait. Exit 0 taken, 1 still held
    /// (naming the holder) or a deadlock (naming it), 2 error.
    Acquire(AcquireArgs),
    /// Give locks back: PATHs, or --all of the holder's.
    Release(ReleaseArgs),
    /// The locks held, and who waits for what.
    List(ListArgs),
    /// Exit 1 when a PATH (default: the paths staged for commit) is locked exclusively by another holder,
    /// naming it (the pre-commit hook of `bdp run --lock-hook`).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Repo-relative paths [default: `git diff --cached --name-only`].
    pub paths: Vec<String>,
    #[arg(long, value_name = "ID")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// Repo-relative paths or globs (`src/db/**`); absolute paths inside the repository or the worktree.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// How long to wait for locks others hold.
    #[arg(long, default_value = "60s", value_parser = crate::text::parse_duration, value_name = "DURATION")]
    pub wait: Duration,
    /// The lock is stale (and broken by the next acquirer) after this long.
    #[arg(long, value_parser = crate::text::parse_duration, value_name = "DURATION")]
    pub ttl: Option<Duration>,
    /// A shared lock: goes with other shared locks, not with an exclusive one.
    #[arg(long)]
    pub shared: bool,
    /// Who holds it [default: $BDP_ISSUE#$BDP_ATTEMPT, as bdp run sets them].
    #[arg(long, value_name = "ID")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The paths to give back, as they were taken.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub paths: Vec<String>,
    /// Every lock of the holder.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_name = "ID")]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

/// A waiter, as its file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub holder: String,
    pub paths: Vec<String>,
    /// The holders it waits for, as of its last look.
    pub waits_for: Vec<String>,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    /// When it began to wait (ms since the epoch): the youngest waiter of a cycle gives up.
    pub since_ms: i64,
}

pub fn run(repo: &Repo, args: &LockArgs) -> CliResult<Outcome> {
    match &args.command {
        LockCommand::Acquire(a) => acquire(repo, a),
        LockCommand::Release(r) => release(repo, r),
        LockCommand::List(l) => list(repo, l),
        LockCommand::Check(c) => check(repo, c),
    }
}

/// The holder: `--holder`, else the attempt bdp run gave this process.
fn holder_of(given: &Option<String>) -> CliResult<String> {
    if let Some(h) = given.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        return Ok(h.to_string());
    }
    match (std::env::var("BDP_ISSUE"), std::env::var("BDP_ATTEMPT")) {
        (Ok(issue), Ok(attempt)) if !issue.is_empty() => Ok(format!("{issue}#{attempt}")),
        _ => Err(CliError::user("no holder: outside `bdp run` give --holder ID")
            .with_hint("under bdp run the holder is the attempt ($BDP_ISSUE#$BDP_ATTEMPT)")),
    }
}

/// The process whose life the lock follows: the agent's wrapper under bdp run (`$BDP_WRAPPER_PID`), else
/// the process that ran this command (a person's shell, a script).
fn owner_pid() -> u32 {
    std::env::var("BDP_WRAPPER_PID")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The lock files' directory, held for one step (an acquire's look and grant, a release, a break).
pub struct Table {
    dir: PathBuf,
    guard: std::fs::File,
}

impl Table {
    pub fn open(repo: &Repo) -> CliResult<Table> {
        let dir = repo.file_locks_dir();
        std::fs::create_dir_all(dir.join("waits")).map_err(|e| CliError::io("create", &dir, &e))?;
        let path = dir.join(".guard");
        let guard = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CliError::io("open", &path, &e))?;
        Ok(Table { dir, guard })
    }

    /// Releases every lock of `holder` (its attempt ended); the paths released.
    pub fn release_all(&self, holder: &str) -> CliResult<Vec<String>> {
        self.hold()?.release(holder, None)
    }

    fn hold(&self) -> CliResult<TableGuard<'_>> {
        flock(&self.guard, FlockOperation::LockExclusive)
            .map_err(|e| CliError::io("lock", &self.dir.join(".guard"), &e.into()))?;
        Ok(TableGuard { table: self })
    }
}

/// Held while one step looks at and changes the locks.
pub struct TableGuard<'a> {
    table: &'a Table,
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        let _ = flock(&self.table.guard, FlockOperation::Unlock);
    }
}

fn entry_file(dir: &Path, holder: &str, path: &str) -> PathBuf {
    let hash = blake3::hash(format!("{holder}\0{path}").as_bytes()).to_hex();
    dir.join(format!("{}.json", &hash[..24]))
}

fn wait_file(dir: &Path, holder: &str) -> PathBuf {
    let hash = blake3::hash(holder.as_bytes()).to_hex();
    dir.join("waits").join(format!("{}.json", &hash[..24]))
}

/// Writes `value` to `path` whole: a temp file beside it, fsynced, renamed over it.
fn write_whole<T: Serialize>(path: &Path, value: &T) -> CliResult<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| CliError::io("create", &tmp, &e))?;
    let text = serde_json::to_vec(value).map_err(|e| CliError::internal(e.to_string()))?;
    file.write_all(&text).and_then(|()| file.sync_data()).map_err(|e| CliError::io("write", &tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::io("rename", &tmp, &e))
}

impl TableGuard<'_> {
    /// Every held lock, with its file. A file that cannot be read is an error naming it.
    pub fn entries(&self) -> CliResult<Vec<(PathBuf, Entry)>> {
        read_json_dir(&self.table.dir)
    }

    fn waiters(&self) -> CliResult<Vec<(PathBuf, Waiting)>> {
        read_json_dir(&self.table.dir.join("waits"))
    }

    /// Removes the stale locks (holder dead, TTL passed), saying why for each.
    fn break_stale(&self, by: &str) -> CliResult<Vec<Event>> {
        let now = now_ms();
        let mut events = Vec::new();
        for (file, e) in self.entries()? {
            let reason = if e.expires_ms.is_some_and(|at| at <= now) {
                Some(format!("its TTL passed (it expired at {})", ms_text(e.expires_ms.unwrap_or(0))))
            } else if e.pid != 0 && !crate::process::is_alive(e.pid, e.start_time) {
                Some(format!("its holder is dead (pid {})", e.pid))
            } else {
                None
            };
            if let Some(reason) = reason {
                std::fs::remove_file(&file).map_err(|e| CliError::io("remove", &file, &e))?;
                events.push(Event::FileLockBroken { holder: e.holder, path: e.path, reason, by: by.to_string() });
            }
        }
        Ok(events)
    }

    /// Removes every lock of `holder` on `paths` (all of them when `None`); the paths released.
    pub fn release(&self, holder: &str, paths: Option<&[LockPath]>) -> CliResult<Vec<String>> {
        let mut released = Vec::new();
        for (file, e) in self.entries()? {
            let wanted = paths.is_none_or(|ps| ps.iter().any(|p| p.as_string() == e.path));
            if e.holder == holder && wanted {
                std::fs::remove_file(&file).map_err(|err| CliError::io("remove", &file, &err))?;
                released.push(e.path);
            }
        }
        released.sort();
        Ok(released)
    }
}

fn read_json_dir<T: for<'de> Deserialize<'de>>(dir: &Path) -> CliResult<Vec<(PathBuf, T)>> {
    let mut out = Vec::new();
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(CliError::io("read", dir, &e)),
    };
    for item in read {
        let path = item.map_err(|e| CliError::io("read", dir, &e))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            // Released between the listing and the read (a waiter's file, outside the guard).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CliError::io("read", &path, &e)),
        };
        let value = serde_json::from_slice(&text)
            .map_err(|e| CliError::data(format!("{}: not a lock record: {e}", path.display())))?;
        out.push((path, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn ms_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map_or_else(|_| ms.to_string(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Appends `events` to the log (a session of their own, like audit's repairs).
fn record(repo: &Repo, events: Vec<Event>) -> CliResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let session = format!("lock-{}", std::process::id());
    let (writer, _) = crate::log::LogWriter::open(
        &repo.events_dir(),
        &repo.append_lock_path(),
        &session,
        crate::log::system_clock(),
    )?;
    writer.append(events)?;
    Ok(())
}

/// Paths as the user gave them: repo-relative, or absolute inside the agent's worktree or the repository.
fn user_paths(repo: &Repo, texts: &[String]) -> Result<Vec<LockPath>, crate::filelock::PathError> {
    let worktree = std::env::var("BDP_WORKTREE").ok().map(PathBuf::from);
    let mut roots: Vec<&Path> = vec![repo.root.as_path()];
    if let Some(w) = &worktree {
        roots.insert(0, w.as_path());
    }
    texts.iter().map(|text| LockPath::from_user(text, &roots)).collect()
}

fn acquire(repo: &Repo, args: &AcquireArgs) -> CliResult<Outcome> {
    let holder = holder_of(&args.holder)?;
    let wanted = user_paths(repo, &args.paths).map_err(|e| {
        CliError::user(format!("cannot lock: {e}")).with_hint("paths are relative to the repository's top")
    })?;
    let wanted = canonical(wanted);
    let names: Vec<String> = wanted.iter().map(LockPath::as_string).collect();
    let pid = owner_pid();
    let start_time = crate::process::start_time(pid);
    let table = Table::open(repo)?;
    let started = Instant::now();
    let since_ms = now_ms();
    let my_wait = wait_file(&table.dir, &holder);
    loop {
        let guard = table.hold()?;
        let mut events = guard.break_stale(&holder)?;
        let entries: Vec<Entry> = guard.entries()?.into_iter().map(|(_, e)| e).collect();
        let blocking = blockers(&wanted, args.shared, &holder, &entries);
        let waited_ms = started.elapsed().as_millis() as u64;
        if blocking.is_empty() {
            let since = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let expires_ms = args.ttl.map(|t| now_ms() + t.as_millis() as i64);
            for path in &names {
                let entry = Entry {
                    path: path.clone(),
                    shared: args.shared,
                    holder: holder.clone(),
                    pid,
                    start_time,
                    since: since.clone(),
                    expires_ms,
                };
                write_whole(&entry_file(&table.dir, &holder, path), &entry)?;
            }
            let _ = std::fs::remove_file(&my_wait);
            events.push(Event::FileLockAcquired {
                holder: holder.clone(),
                paths: names.clone(),
                shared: args.shared,
                pid,
                start_time,
                waited_ms,
                ttl_ms: args.ttl.map(|t| t.as_millis() as u64),
            });
            // A grant the log cannot record is taken back: no lock is held that the log does not know.
            if let Err(e) = record(repo, events) {
                for path in &names {
                    let _ = std::fs::remove_file(entry_file(&table.dir, &holder, path));
                }
                return Err(e.with_hint("nothing was locked"));
            }
            drop(guard);
            println!(
                "locked {} ({}, held by {holder})",
                names.join(", "),
                if args.shared { "shared" } else { "exclusive" }
            );
            return Ok(Outcome::Ok);
        }
        let held_by: Vec<String> =
            blocking.iter().map(|e| e.holder.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let who = blocking
            .iter()
            .map(|e| format!("{} by {} (pid {}) since {}", e.path, e.holder, e.pid, e.since))
            .collect::<Vec<_>>()
            .join("; ");
        // Say what this waiter waits for, then look for a cycle through it.
        let me = Waiting {
            holder: holder.clone(),
            paths: names.clone(),
            waits_for: held_by.clone(),
            pid,
            start_time,
            since_ms,
        };
        write_whole(&my_wait, &me)?;
        let waiters: Vec<Waiting> = guard
            .waiters()?
            .into_iter()
            .map(|(_, w)| w)
            .filter(|w| crate::process::is_alive(w.pid, w.start_time) || w.holder == holder)
            .collect();
        let graph: BTreeMap<String, BTreeSet<String>> =
            waiters.iter().map(|w| (w.holder.clone(), w.waits_for.iter().cloned().collect())).collect();
        if let Some(cycle) = cycle_through(&holder, &graph) {
            let youngest = cycle
                .iter()
                .filter_map(|h| waiters.iter().find(|w| &w.holder == h))
                .max_by_key(|w| (w.since_ms, w.holder.clone()))
                .map(|w| w.holder.clone());
            if youngest.as_deref() == Some(holder.as_str()) {
                let _ = std::fs::remove_file(&my_wait);
                events.push(Event::FileLockRefused {
                    holder: holder.clone(),
                    paths: names.clone(),
                    held_by: held_by.clone(),
                    waited_ms,
                    deadlock: cycle.clone(),
                });
                drop(guard);
                record(repo, events)?;
                println!(
                    "deadlock: {} → {}; {holder} waited least, so it gives up {} (held: {who})",
                    cycle.join(" → "),
                    cycle[0],
                    names.join(", ")
                );
                return Ok(Outcome::Found);
            }
        }
        if started.elapsed() >= args.wait {
            let _ = std::fs::remove_file(&my_wait);
            events.push(Event::FileLockRefused {
                holder: holder.clone(),
                paths: names.clone(),
                held_by,
                waited_ms,
                deadlock: vec![],
            });
            drop(guard);
            record(repo, events)?;
            println!("still held after {}: {who}", crate::text::duration_of(args.wait));
            return Ok(Outcome::Found);
        }
        drop(guard);
        record(repo, events)?;
        // A short, varied pause: acquirers that woke together do not stay in step.
        let jitter = u64::from(std::process::id() % 17) + (started.elapsed().as_millis() as u64 % 13);
        std::thread::sleep(Duration::from_millis(20 + jitter));
    }
}

fn release(repo: &Repo, args: &ReleaseArgs) -> CliResult<Outcome> {
    let holder = holder_of(&args.holder)?;
    let paths = if args.all {
        None
    } else {
        Some(user_paths(repo, &args.paths).map_err(|e| CliError::user(format!("cannot release: {e}")))?)
    };
    let table = Table::open(repo)?;
    let released = {
        let guard = table.hold()?;
        guard.release(&holder, paths.as_deref())?
    };
    if released.is_empty() {
        println!("{holder} holds none of these locks");
        return Ok(Outcome::Ok);
    }
    record(repo, vec![Event::FileLockReleased { holder: holder.clone(), paths: released.clone() }])?;
    println!("unlocked {} (held by {holder})", released.join(", "));
    Ok(Outcome::Ok)
}

/// What `bdp lock list --json` prints (and `bdp status` shows).
#[derive(Debug, Default, Serialize)]
pub struct Listing {
    pub locks: Vec<Entry>,
    /// Live waiters only.
    pub waiting: Vec<Waiting>,
}

/// The file locks held and who waits, as the files say now (read without the guard: each file is written
/// whole). An unreadable table reads as empty: `bdp lock list` names the file.
pub fn snapshot(repo: &Repo) -> Listing {
    let dir = repo.file_locks_dir();
    let mut locks: Vec<Entry> = read_json_dir(&dir).unwrap_or_default().into_iter().map(|(_, e)| e).collect();
    locks.sort_by(|a, b| (&a.path, &a.holder).cmp(&(&b.path, &b.holder)));
    let waiting = read_json_dir::<Waiting>(&dir.join("waits"))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, w)| w)
        .filter(|w| crate::process::is_alive(w.pid, w.start_time))
        .collect();
    Listing { locks, waiting }
}

fn list(repo: &Repo, args: &ListArgs) -> CliResult<Outcome> {
    let table = Table::open(repo)?;
    let (locks, waiting) = {
        let guard = table.hold()?;
        let locks: Vec<Entry> = guard.entries()?.into_iter().map(|(_, e)| e).collect();
        let waiting = guard
            .waiters()?
            .into_iter()
            .map(|(_, w)| w)
            .filter(|w| crate::process::is_alive(w.pid, w.start_time))
            .collect::<Vec<_>>();
        (locks, waiting)
    };
    let mut locks = locks;
    locks.sort_by(|a, b| (&a.path, &a.holder).cmp(&(&b.path, &b.holder)));
    if args.json {
        let text =
            serde_json::to_string_pretty(&Listing { locks, waiting }).map_err(|e| CliError::internal(e.to_string()))?;
        println!("{text}");
        return Ok(Outcome::Ok);
    }
    if locks.is_empty() {
        println!("no file locks held");
    } else {
        println!("{:<32}  {:<9}  {:<16}  {:>8}  SINCE", "PATH", "MODE", "HOLDER", "PID");
        for e in &locks {
            let mode = if e.shared { "shared" } else { "exclusive" };
            let expires = e.expires_ms.map(|at| format!(" (until {})", ms_text(at))).unwrap_or_default();
            println!("{:<32}  {:<9}  {:<16}  {:>8}  {}{expires}", e.path, mode, e.holder, e.pid, e.since);
        }
    }
    for w in &waiting {
        println!(
            "waiting: {} for {} (held by {}) since {}",
            w.holder,
            w.paths.join(", "),
            w.waits_for.join(", "),
            ms_text(w.since_ms)
        );
    }
    Ok(Outcome::Ok)
}

fn check(repo: &Repo, args: &CheckArgs) -> CliResult<Outcome> {
    // No holder (a person's commit): every exclusive lock counts.
    let me = holder_of(&args.holder).unwrap_or_default();
    let paths: Vec<String> = if args.paths.is_empty() {
        let cwd = std::env::current_dir().map_err(|e| CliError::io("read", Path::new("."), &e))?;
        let staged = crate::git::run(&cwd, ["diff", "--cached", "--name-only"])
            .map_err(|e| CliError::user(format!("cannot list the staged paths: {e}")))?;
        staged.lines().map(str::to_string).collect()
    } else {
        args.paths.clone()
    };
    let locks = snapshot(repo).locks;
    let mut refused = Vec::new();
    for text in &paths {
        let Ok(path) = LockPath::parse(text) else { continue };
        for lock in locks.iter().filter(|l| !l.shared && l.holder != me) {
            if LockPath::parse(&lock.path).is_ok_and(|theirs| theirs.overlaps(&path)) {
                refused.push(format!("{text} is locked by {} ({}, since {})", lock.holder, lock.path, lock.since));
            }
        }
    }
    if refused.is_empty() {
        return Ok(Outcome::Ok);
    }
    // The refusal last: what an agent's failure is reported by.
    eprintln!("bdp: locked by another holder; wait for the lock (`bdp lock acquire PATH`) or leave the file to it");
    for line in &refused {
        eprintln!("bdp: refused: {line}");
    }
    Ok(Outcome::Found)
}

/// The pre-commit hook of `bdp run --lock-hook`: `bdp lock check` on the staged paths, then the
/// repository's own pre-commit hook, if it has one.
pub fn pre_commit_hook(bdp: &Path) -> String {
    let quoted =
        bdp.display().to_string().replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`");
    format!(
        "#!/bin/sh\n# bdp run --lock-hook: refuse a commit that touches a path another agent holds an exclusive\n\
         # file lock on (bdp lock), then run the repository's own pre-commit hook.\n\
         \"{quoted}\" lock check || exit 1\n\
         common=$(git rev-parse --git-common-dir)\n\
         if [ -x \"$common/hooks/pre-commit\" ]; then exec \"$common/hooks/pre-commit\" \"$@\"; fi\n"
    )
}
