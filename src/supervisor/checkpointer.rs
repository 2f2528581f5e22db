//! Checkpoints while `bdp run` works, off the dispatcher's path: every [`EVERY_RECORDS`] records or
//! [`EVERY`] of time (whichever comes first, once something was written), and at the end of the session.
//!
//! The dispatcher hands over a copy of the state and the place of the record it folds up to; a thread of
//! its own saves it in `.bdp/index.sqlite` and brings the per-issue index up to date. So status, replay
//! and recovery read a checkpoint plus a short tail, and never have to write one themselves. The index is
//! a cache: a failure here is logged and costs speed only.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::log::index::{CheckpointMeta, Index};
use crate::repo::Repo;
use crate::state::State;

/// A checkpoint after this many records since the last one.
pub const EVERY_RECORDS: u64 = crate::log::load::CHECKPOINT_EVERY;
/// Or after this long, if any record was written.
pub const EVERY: Duration = Duration::from_secs(30);

pub struct Checkpointer {
    tx: Option<mpsc::Sender<(CheckpointMeta, State)>>,
    thread: Option<JoinHandle<()>>,
    last_seq: u64,
    last_at: Instant,
}

impl Checkpointer {
    /// Starts the saving thread. `last_seq` is where the log stood when the run loaded it.
    pub fn start(repo: &Repo, last_seq: u64) -> Checkpointer {
        let (tx, rx) = mpsc::channel::<(CheckpointMeta, State)>();
        let repo = repo.clone();
        let thread = std::thread::Builder::new()
            .name("bdp-checkpoint".into())
            .spawn(move || save_loop(&repo, rx))
            .map_err(|e| tracing::warn!("cannot start the checkpoint thread: {e}; recovery will fold more"))
            .ok();
        Checkpointer { tx: thread.as_ref().map(|_| tx), thread, last_seq, last_at: Instant::now() }
    }

    /// Called after each append: hands over a checkpoint when one is due.
    pub fn note(&mut self, state: &State, place: impl FnOnce() -> Option<CheckpointMeta>) {
        let new = state.last_seq.saturating_sub(self.last_seq);
        if new == 0 || (new < EVERY_RECORDS && self.last_at.elapsed() < EVERY) {
            return;
        }
        self.send(state, place());
    }

    /// The session's last checkpoint; waits for the thread to save everything it was given.
    pub fn finish(&mut self, state: &State, place: Option<CheckpointMeta>) {
        if state.last_seq > self.last_seq {
            self.send(state, place);
        }
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn send(&mut self, state: &State, place: Option<CheckpointMeta>) {
        let Some(meta) = place.filter(|m| m.seq == state.last_seq) else { return };
        if let Some(tx) = &self.tx
            && tx.send((meta, state.clone())).is_ok()
        {
            self.last_seq = state.last_seq;
            self.last_at = Instant::now();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn save_loop(repo: &Repo, rx: mpsc::Receiver<(CheckpointMeta, State)>) {
    let mut index: Option<Index> = None;
    while let Ok(mut job) = rx.recv() {
        // Only the newest of what is waiting matters.
        while let Ok(newer) = rx.try_recv() {
            job = newer;
        }
        if index.is_none() {
            match Index::open(&repo.index_path()) {
                Ok(opened) => index = Some(opened),
                Err(e) => {
                    tracing::warn!("{e}; no checkpoint saved");
                    continue;
                }
            }
        }
        let Some(ix) = index.as_mut() else { continue };
        let (meta, mut state) = job;
        let started = Instant::now();
        match ix.save_checkpoint(&meta, &mut state) {
            Ok(()) => tracing::debug!(
                "checkpoint at record {} saved in {:.1} ms ({} issues)",
                meta.seq,
                started.elapsed().as_secs_f64() * 1000.0,
                state.issues.len()
            ),
            Err(e) => tracing::warn!("{e}"),
        }
        if let Err(e) = crate::log::issue_index::refresh(&repo.events_dir(), ix) {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_at(seq: u64) -> State {
        State { last_seq: seq, ..State::default() }
    }

    fn meta(seq: u64) -> CheckpointMeta {
        CheckpointMeta { seq, chain: [7; 32], segment: 1, offset: seq * 100, len: 100 }
    }

    fn saved(repo: &Repo) -> Vec<u64> {
        // While the thread creates the file, a read may find no table yet: that is "nothing saved".
        let index = Index::open_read_only(&repo.index_path()).ok().flatten();
        let metas = index.and_then(|i| i.checkpoints().ok()).unwrap_or_default();
        metas.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn saves_every_n_records_and_at_the_end_never_a_place_that_is_not_the_states() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo { root: dir.path().to_path_buf() };
        std::fs::create_dir_all(repo.bdp_dir()).unwrap();
        let mut cp = Checkpointer::start(&repo, 100);
        cp.note(&state_at(100 + EVERY_RECORDS - 1), || Some(meta(100 + EVERY_RECORDS - 1)));
        let due = 100 + EVERY_RECORDS;
        cp.note(&state_at(due), || Some(meta(due)));
        // The thread saves the newest of what waits: let it save this one before handing over more.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !saved(&repo).contains(&due) {
            assert!(Instant::now() < deadline, "the checkpoint at {due} was never saved");
            std::thread::sleep(Duration::from_millis(10));
        }
        // A place that is not where the state stands is never saved.
        cp.note(&state_at(due + EVERY_RECORDS), || Some(meta(due + 1)));
        cp.finish(&state_at(due + EVERY_RECORDS + 5), Some(meta(due + EVERY_RECORDS + 5)));
        let mut seqs = saved(&repo);
        seqs.sort_unstable();
        assert_eq!(seqs, [due, due + EVERY_RECORDS + 5]);
    }

    #[test]
    fn nothing_new_nothing_saved() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo { root: dir.path().to_path_buf() };
        std::fs::create_dir_all(repo.bdp_dir()).unwrap();
        let mut cp = Checkpointer::start(&repo, 42);
        cp.note(&state_at(42), || Some(meta(42)));
        cp.finish(&state_at(42), Some(meta(42)));
        assert!(saved(&repo).is_empty());
        assert!(!repo.index_path().exists(), "not even an empty index");
    }
}
