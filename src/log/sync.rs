//! The locks behind the writer's group commit: std's, or loom's under `--cfg loom`, so that the loom
//! models (`loom_tests`) check the real batching, leader election and handoff code.
//!
//! Under loom the file I/O still runs for real (it is not a point where loom switches threads); the
//! models inject a failed append through [`fault`].

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex};

/// Loom builds only: makes the next fdatasync of the log under a given directory report an error,
/// after the bytes were written, so that the writer's rollback runs too.
#[cfg(loom)]
pub(crate) mod fault {
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static ARMED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

    /// The next commit to the log in `events_dir` fails (once).
    #[cfg(test)]
    pub(crate) fn fail_next_sync(events_dir: &Path) {
        ARMED.lock().unwrap().get_or_insert_with(HashSet::new).insert(events_dir.to_path_buf());
    }

    /// Called by the writer after its write + fdatasync succeeded.
    pub(crate) fn after_sync(events_dir: &Path) -> std::io::Result<()> {
        match ARMED.lock().unwrap().as_mut().map(|armed| armed.remove(events_dir)) {
            Some(true) => Err(std::io::Error::other("injected fdatasync failure")),
            _ => Ok(()),
        }
    }
}
