//! File locks (flock) that keep writers of one repo's log apart.
//!
//! - The orchestrator lock (`.bdp/orchestrator.lock`): held exclusively for a whole `bdp run`, so there
//!   is one orchestrator per repo. The file says who holds it (pid and since when) for the error a
//!   second orchestrator prints. flock is released by the kernel when the holder dies, so a stale file is
//!   never a stale lock. Taking it and writing the holder, or finding it taken and reading the holder,
//!   happen under a brief flock on the lock file's directory, so a refused orchestrator reads the whole
//!   text of the process that holds the lock: never the empty file between the holder's flock and its
//!   write, nor an earlier holder's text.
//! - The append lock (`.bdp/append.lock`): held only around one write + fsync, by every process that
//!   appends (the orchestrator, and short-lived helpers such as an agent calling `bdp lock`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use super::error::LogError;

/// The exclusive orchestrator lock; released on drop (or by the kernel when the process dies).
#[derive(Debug)]
pub struct OrchestratorLock {
    _file: File,
    pub path: PathBuf,
}

impl OrchestratorLock {
    /// Takes the lock without waiting. `holder` is written into the file (e.g. `pid 123 since …`).
    pub fn acquire(path: &Path, holder: &str) -> Result<OrchestratorLock, LogError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io("open", path, e))?;
        // A holder that is gone can still hold the lock for a moment: a child it was forking when it died has
        // a copy of the lock's file until it execs. That is waited for (briefly), a live holder is not.
        let gone_since = std::time::Instant::now();
        let _turn = loop {
            let turn = lock_directory_of(path)?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break turn,
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let mut text = String::new();
                    file.rewind().map_err(|e| LogError::io("read", path, e))?;
                    let _ = file.read_to_string(&mut text);
                    let gone = Holder::parse(&text).is_some_and(|h| !crate::process::is_running(h.pid, h.start_time));
                    if !gone || gone_since.elapsed() > std::time::Duration::from_secs(2) {
                        let holder = text.trim();
                        let holder = if holder.is_empty() { "holder unknown".to_string() } else { holder.to_string() };
                        return Err(LogError::Locked { path: path.to_path_buf(), holder });
                    }
                }
                Err(e) => return Err(LogError::io("lock", path, e.into())),
            }
            drop(turn);
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        file.set_len(0).map_err(|e| LogError::io("write", path, e))?;
        file.rewind().map_err(|e| LogError::io("write", path, e))?;
        file.write_all(format!("{holder}\n").as_bytes()).map_err(|e| LogError::io("write", path, e))?;
        Ok(OrchestratorLock { _file: file, path: path.to_path_buf() })
    }
}

/// Takes an exclusive flock on the directory holding `path`, released when the returned file is closed.
fn lock_directory_of(path: &Path) -> Result<File, LogError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = File::open(dir).map_err(|e| LogError::io("open", dir, e))?;
    flock(&file, FlockOperation::LockExclusive).map_err(|e| LogError::io("lock", dir, e.into()))?;
    Ok(file)
}

/// Who holds the orchestrator lock, as written into its file: `pid 123 start 456 since 2026-11-25T06:00:00Z`.
/// `start` is the holder's process start time (clock ticks since boot), so a reused pid is not mistaken
/// for the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub start_time: Option<u64>,
    pub since: String,
}

impl Holder {
    pub fn render(&self) -> String {
        match self.start_time {
            Some(start) => format!("pid {} start {} since {}", self.pid, start, self.since),
            None => format!("pid {} since {}", self.pid, self.since),
        }
    }

    /// Parses what [`Holder::render`] wrote; `None` for anything else.
    pub fn parse(text: &str) -> Option<Holder> {
        let mut words = text.split_whitespace();
        let (mut pid, mut start_time, mut since) = (None, None, None);
        while let Some(word) = words.next() {
            match word {
                "pid" => pid = words.next()?.parse().ok(),
                "start" => start_time = words.next()?.parse().ok(),
                "since" => since = words.next().map(str::to_string),
                _ => return None,
            }
        }
        Some(Holder { pid: pid?, start_time, since: since.unwrap_or_default() })
    }

    /// Reads the holder written in the lock file at `path`, if any.
    pub fn read(path: &Path) -> Option<Holder> {
        Holder::parse(&std::fs::read_to_string(path).ok()?)
    }
}

/// The append lock's file, kept open; [`AppendLock::hold`] takes the lock for one write.
#[derive(Debug)]
pub struct AppendLock {
    file: File,
    path: PathBuf,
}

/// Holds the append lock until dropped.
pub struct AppendGuard<'a> {
    lock: &'a AppendLock,
}

impl AppendLock {
    pub fn open(path: &Path) -> Result<AppendLock, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| LogError::io("open", path, e))?;
        Ok(AppendLock { file, path: path.to_path_buf() })
    }

    /// Waits for and takes the lock.
    pub fn hold(&self) -> Result<AppendGuard<'_>, LogError> {
        flock(&self.file, FlockOperation::LockExclusive).map_err(|e| LogError::io("lock", &self.path, e.into()))?;
        Ok(AppendGuard { lock: self })
    }
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        let _ = flock(&self.lock.file, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_orchestrator_is_refused_and_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.lock");
        let first = OrchestratorLock::acquire(&path, "pid 1 since 2026-11-25T06:00:00Z").unwrap();
        match OrchestratorLock::acquire(&path, "pid 2") {
            Err(LogError::Locked { holder, .. }) => assert_eq!(holder, "pid 1 since 2026-11-25T06:00:00Z"),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        // Free once dropped. Other tests of this process fork children, and a child holds a copy of the
        // lock's descriptor from its fork to its exec (close-on-exec): a moment, waited out here.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match OrchestratorLock::acquire(&path, "pid 2") {
                Ok(_) => break,
                Err(LogError::Locked { .. }) if std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("the lock was not free after its holder dropped it: {e}"),
            }
        }
    }

    #[test]
    fn a_lock_its_gone_holder_left_to_a_dying_child_is_waited_for_briefly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.lock");
        // The file names a holder that is gone (a finished child), yet another description of the file holds the
        // flock, as a child forked by the holder does until it execs.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let first = OrchestratorLock::acquire(&path, &format!("pid {gone} start 1 since x")).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(first);
        });
        let second = OrchestratorLock::acquire(&path, "pid 2");
        release.join().unwrap();
        assert!(second.is_ok(), "{second:?}");
    }

    #[test]
    fn holders_round_trip() {
        let h = Holder { pid: 7, start_time: Some(99), since: "2026-11-25T06:00:00Z".into() };
        assert_eq!(Holder::parse(&h.render()), Some(h));
        let h = Holder { pid: 7, start_time: None, since: "x".into() };
        assert_eq!(Holder::parse(&h.render()), Some(h));
        assert_eq!(Holder::parse("garbage here"), None);
    }
}
