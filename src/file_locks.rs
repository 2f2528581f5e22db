//! The file locks agents take (`bdp lock`, and the `lock_*` tools of `bdp mcp`), kept on disk: one JSON
//! file per held lock under `.bdp/file-locks/`, written whole (temp file, fsync, rename) while holding
//! `.bdp/file-locks/.guard` (flock), which every acquire, release and break takes, so a check and its grant
//! are one step for every process. A waiter writes what it waits for under `.bdp/file-locks/waits/`, which
//! makes the wait-for graph: a cycle through a waiter is a deadlock, and the youngest waiter of it gives up
//! at once. Every acquire, refusal, release and break is also a record of the event log. The rules (paths,
//! conflicts, cycles) are `crate::filelock`'s; this module is the shell around them that both front ends
//! share.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};
use crate::event::Event;
pub use crate::filelock::Waiting;
use crate::filelock::{Entry, LockPath, Step, canonical};
use crate::repo::Repo;

/// The holder: `--holder`, else the attempt bdp run gave this process.
pub fn holder_of(given: &Option<String>) -> CliResult<String> {
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
pub fn owner_pid() -> u32 {
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
    write_file(path, value, true)
}

/// Writes `value` to `path` through a temp file renamed over it (readers see all of it or none), fsynced
/// first when `durable`.
fn write_file<T: Serialize>(path: &Path, value: &T, durable: bool) -> CliResult<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| CliError::io("create", &tmp, &e))?;
    let text = serde_json::to_vec(value).map_err(|e| CliError::internal(e.to_string()))?;
    file.write_all(&text)
        .and_then(|()| if durable { file.sync_data() } else { Ok(()) })
        .map_err(|e| CliError::io("write", &tmp, &e))?;
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

    /// The waiters whose process lives, other than `me`; the wait files of dead ones (killed while they
    /// waited) are removed.
    fn live_waiters(&self, me: &str) -> CliResult<Vec<Waiting>> {
        let mut live = Vec::new();
        for (file, w) in self.waiters()? {
            if !crate::process::is_alive(w.pid, w.start_time) {
                let _ = std::fs::remove_file(&file);
            } else if w.holder != me {
                live.push(w);
            }
        }
        Ok(live)
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

/// Appends `events` to the log (a session of their own, like audit's repairs).
pub fn record(repo: &Repo, events: Vec<Event>) -> CliResult<()> {
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
pub fn user_paths(repo: &Repo, texts: &[String]) -> Result<Vec<LockPath>, crate::filelock::PathError> {
    let worktree = std::env::var("BDP_WORKTREE").ok().map(PathBuf::from);
    let mut roots: Vec<&Path> = vec![repo.root.as_path()];
    if let Some(w) = &worktree {
        roots.insert(0, w.as_path());
    }
    texts.iter().map(|text| LockPath::from_user(text, &roots)).collect()
}

/// What an acquirer asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub holder: String,
    pub paths: Vec<LockPath>,
    pub shared: bool,
    /// How long to wait for locks others hold.
    pub wait: Duration,
    /// The lock is stale after this long.
    pub ttl: Option<Duration>,
    /// The process whose life the lock follows ([`owner_pid`]).
    pub pid: u32,
}

/// How an acquire ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Every path is locked.
    Granted { paths: Vec<String> },
    /// Still held by others after the wait: `who` names each blocking lock (path, holder, pid, since).
    Held { paths: Vec<String>, who: String },
    /// The wait closed a cycle of waiters and this acquirer was its youngest: it gave up at once.
    Deadlock { paths: Vec<String>, cycle: Vec<String>, who: String },
}

impl Acquired {
    /// What the acquirer is told, in one line.
    pub fn message(&self, request: &Request) -> String {
        let holder = &request.holder;
        match self {
            Acquired::Granted { paths } => format!(
                "locked {} ({}, held by {holder})",
                paths.join(", "),
                if request.shared { "shared" } else { "exclusive" }
            ),
            Acquired::Held { who, .. } => {
                format!("still held after {}: {who}", crate::text::duration_of(request.wait))
            }
            Acquired::Deadlock { paths, cycle, who } => format!(
                "deadlock: {} → {}; {holder} waited least, so it gives up {} (held: {who})",
                cycle.join(" → "),
                cycle[0],
                paths.join(", ")
            ),
        }
    }
}

/// Takes the locks of `request`, all or none, waiting for them up to its wait.
pub fn acquire(repo: &Repo, request: &Request) -> CliResult<Acquired> {
    let holder = &request.holder;
    let wanted = canonical(request.paths.clone());
    let names: Vec<String> = wanted.iter().map(LockPath::as_string).collect();
    let pid = request.pid;
    let start_time = crate::process::start_time(pid);
    let table = Table::open(repo)?;
    let started = Instant::now();
    let since_ms = now_ms();
    let my_wait = wait_file(&table.dir, holder);
    let wakeup = Wakeup::watch(&table.dir);
    let mut said_wait: Option<Vec<String>> = None;
    loop {
        let guard = table.hold()?;
        let mut events = guard.break_stale(holder)?;
        let entries: Vec<Entry> = guard.entries()?.into_iter().map(|(_, e)| e).collect();
        let waiters = guard.live_waiters(holder)?;
        let waited_ms = started.elapsed().as_millis() as u64;
        let (held_by, deadlock) =
            match crate::filelock::step(&wanted, request.shared, holder, since_ms, &entries, &waiters) {
                Step::Grant => {
                    let since = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                    let expires_ms = request.ttl.map(|t| now_ms() + t.as_millis() as i64);
                    for path in &names {
                        let entry = Entry {
                            path: path.clone(),
                            shared: request.shared,
                            holder: holder.clone(),
                            pid,
                            start_time,
                            since: since.clone(),
                            expires_ms,
                        };
                        write_whole(&entry_file(&table.dir, holder, path), &entry)?;
                    }
                    let _ = std::fs::remove_file(&my_wait);
                    events.push(Event::FileLockAcquired {
                        holder: holder.clone(),
                        paths: names.clone(),
                        shared: request.shared,
                        pid,
                        start_time,
                        waited_ms,
                        ttl_ms: request.ttl.map(|t| t.as_millis() as u64),
                    });
                    // A grant the log cannot record is taken back: no lock is held that the log does not know.
                    if let Err(e) = record(repo, events) {
                        for path in &names {
                            let _ = std::fs::remove_file(entry_file(&table.dir, holder, path));
                        }
                        return Err(e.with_hint("nothing was locked"));
                    }
                    return Ok(Acquired::Granted { paths: names });
                }
                Step::GiveUp { held_by, cycle } => (held_by, Some(cycle)),
                Step::Wait { held_by } => (held_by, None),
            };
        // A deadlock gives up at once; a wait ends with the refusal once its time is up.
        if deadlock.is_some() || started.elapsed() >= request.wait {
            let who = describe_blockers(&wanted, request.shared, holder, &entries);
            let _ = std::fs::remove_file(&my_wait);
            events.push(Event::FileLockRefused {
                holder: holder.clone(),
                paths: names.clone(),
                held_by,
                waited_ms,
                deadlock: deadlock.clone().unwrap_or_default(),
            });
            drop(guard);
            record(repo, events)?;
            return Ok(match deadlock {
                Some(cycle) => Acquired::Deadlock { paths: names, cycle, who },
                None => Acquired::Held { paths: names, who },
            });
        }
        // Say what this waiter waits for (the wait-for graph other acquirers look at), when that changed. Not
        // fsynced: a wait is over when its process is, and after a crash nobody waits.
        if said_wait.as_ref() != Some(&held_by) {
            // The waiting process itself (not the lock's owner): a wait is over when it is.
            let me = Waiting {
                holder: holder.clone(),
                paths: names.clone(),
                waits_for: held_by.clone(),
                pid: std::process::id(),
                start_time: crate::process::start_time(std::process::id()),
                since_ms,
            };
            write_file(&my_wait, &me, false)?;
            said_wait = Some(held_by);
        }
        drop(guard);
        record(repo, events)?;
        // Until a lock is given back (or broken), or a varied while passes: a TTL running out and a holder
        // dying make no event, and acquirers that woke together do not stay in step.
        let jitter = u64::from(std::process::id() % 17) + (started.elapsed().as_millis() as u64 % 13);
        wakeup.wait(Duration::from_millis(40 + jitter));
    }
}

/// Wakes a waiting acquirer when a lock file leaves the table's directory (inotify), so that it looks
/// again at once instead of at its next poll; without inotify it only sleeps.
struct Wakeup {
    fd: Option<rustix::fd::OwnedFd>,
}

impl Wakeup {
    /// Watches `dir` from now on: a release between a look and the wait still wakes the wait.
    fn watch(dir: &Path) -> Wakeup {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok();
        let fd = fd.filter(|fd| inotify::add_watch(fd, dir, inotify::WatchFlags::DELETE).is_ok());
        Wakeup { fd }
    }

    fn wait(&self, at_most: Duration) {
        let Some(fd) = &self.fd else {
            std::thread::sleep(at_most);
            return;
        };
        let timeout =
            rustix::event::Timespec { tv_sec: at_most.as_secs() as i64, tv_nsec: i64::from(at_most.subsec_nanos()) };
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
        // What woke it is not kept: the next look reads the table itself.
        let mut buf = [std::mem::MaybeUninit::uninit(); 1024];
        let mut events = rustix::fs::inotify::Reader::new(fd, &mut buf);
        while events.next().is_ok() {}
    }
}

/// The locks standing in `holder`'s way, as the acquirer is told: path, holder, pid and since when.
fn describe_blockers(wanted: &[LockPath], shared: bool, holder: &str, entries: &[Entry]) -> String {
    crate::filelock::blockers(wanted, shared, holder, entries)
        .iter()
        .map(|e| format!("{} by {} (pid {}) since {}", e.path, e.holder, e.pid, e.since))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Gives back `holder`'s locks on `paths` (all of them when `None`) and records it; the paths released.
pub fn release(repo: &Repo, holder: &str, paths: Option<&[LockPath]>) -> CliResult<Vec<String>> {
    let table = Table::open(repo)?;
    let released = {
        let guard = table.hold()?;
        guard.release(holder, paths)?
    };
    if !released.is_empty() {
        record(repo, vec![Event::FileLockReleased { holder: holder.to_string(), paths: released.clone() }])?;
    }
    Ok(released)
}

/// What `bdp lock list --json` prints (and `bdp status` shows).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub locks: Vec<Entry>,
    /// Live waiters only.
    pub waiting: Vec<Waiting>,
}

impl Listing {
    /// The locks by path and holder, and the waiters whose process lives, from the files read.
    fn of(entries: Vec<(PathBuf, Entry)>, waiters: Vec<(PathBuf, Waiting)>) -> Listing {
        let mut locks: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
        locks.sort_by(|a, b| (&a.path, &a.holder).cmp(&(&b.path, &b.holder)));
        let waiting =
            waiters.into_iter().map(|(_, w)| w).filter(|w| crate::process::is_alive(w.pid, w.start_time)).collect();
        Listing { locks, waiting }
    }
}

/// The locks held and the live waiters, read under the guard; a file that cannot be read is an error
/// naming it.
pub fn list(repo: &Repo) -> CliResult<Listing> {
    let table = Table::open(repo)?;
    let guard = table.hold()?;
    Ok(Listing::of(guard.entries()?, guard.waiters()?))
}

/// The file locks held and who waits, as the files say now (read without the guard: each file is written
/// whole). An unreadable table reads as empty: `bdp lock list` names the file.
pub fn snapshot(repo: &Repo) -> Listing {
    let dir = repo.file_locks_dir();
    Listing::of(read_json_dir(&dir).unwrap_or_default(), read_json_dir(&dir.join("waits")).unwrap_or_default())
}

/// When a lock expires, as a person reads it.
pub fn ms_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map_or_else(|_| ms.to_string(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}
