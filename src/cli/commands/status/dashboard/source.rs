//! Where the dashboard's inputs come from: the log (its state from the newest checkpoint plus the tail,
//! then only the records appended since, through `log::tail`) and the world (the orchestrator lock, the
//! agents' processes, the end of each running attempt's stdout, the tracker).
//!
//! Looking costs little when nothing changes: the log is a `stat` or two, an output file is re-read only
//! when its size changed, and the tracker is read on a helper thread (a `bd`/`br` call may be slow), at
//! most every few seconds after the log moved and otherwise twice a minute.
//!
//! It only reads: nothing under `.bdp/` is written here.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::model::{RunActivity, TrackerView, World, run_start_seq};
use crate::cli::live;
use crate::error::{CliError, CliResult};
use crate::log::tail::LogTail;
use crate::log::{Decode, LogError, load, walk};
use crate::repo::Repo;
use crate::state::State;
use crate::tracker::{ListFilter, TrackerKind};

/// Bytes read from the end of an output file to find its last line.
const OUTPUT_TAIL: u64 = 4096;
/// The tracker is read again this long after the log moved, or after this long anyway.
const TRACKER_AFTER_CHANGE: Duration = Duration::from_secs(3);
const TRACKER_EVERY: Duration = Duration::from_secs(30);
/// How long the first frame waits for the tracker (a slow one is shown when it answers).
const FIRST_TRACKER_WAIT: Duration = Duration::from_secs(2);

type TrackerRead = Result<Arc<TrackerView>, String>;

pub struct Source {
    repo: Repo,
    tracker_kind: TrackerKind,
    tail: LogTail,
    pub state: State,
    pub activity: RunActivity,
    /// The log could not be followed (damage after the start): shown, and polling stops.
    pub log_error: Option<String>,
    tracker: TrackerRead,
    tracker_read_at: Option<Instant>,
    tracker_pending: Option<mpsc::Receiver<TrackerRead>>,
    log_moved: bool,
    /// Per output file: the size last seen and its last line.
    outputs: BTreeMap<PathBuf, (u64, String)>,
}

impl Source {
    /// Loads the state (newest matching checkpoint + tail), then reads the current run's records for the
    /// totals and recent events, verifying the whole chain on the way, and leaves the tail at the end.
    pub fn open(repo: &Repo, tracker_kind: TrackerKind) -> CliResult<Source> {
        let events_dir = repo.events_dir();
        let mut state = live::state(repo)?;
        let run_from = run_start_seq(&state);
        // Agents adopted from an earlier run: their spawn time is before the run.
        let mut spawn_seqs: Vec<u64> = state
            .claimed()
            .filter_map(|(_, c)| Some(c.attempt.as_ref()?.spawned.as_ref()?.seq))
            .filter(|&seq| seq < run_from)
            .collect();
        spawn_seqs.sort_unstable();
        let mut activity = RunActivity::default();
        let walked = walk(&events_dir, None, &Decode::SeqsThenFrom(spawn_seqs, run_from), |record, pos| {
            if record.seq < run_from {
                activity.spawn_ts.insert(record.seq, record.ts);
                return Ok(());
            }
            if record.seq > state.last_seq {
                load::apply(&mut state, &events_dir, &record, pos)?;
            }
            activity.observe(&record);
            Ok(())
        });
        let tail = match walked {
            Ok(summary) => LogTail::after_walk(&events_dir, &summary),
            Err(LogError::NoLog { .. }) => LogTail::from_start(&events_dir),
            Err(e) => {
                return Err(CliError::from(e).with_hint("`bdp verify` says exactly where the log is damaged"));
            }
        };
        let mut source = Source {
            repo: repo.clone(),
            tracker_kind,
            tail,
            state,
            activity,
            log_error: None,
            tracker: Err("still reading it".to_string()),
            tracker_read_at: None,
            tracker_pending: None,
            log_moved: false,
            outputs: BTreeMap::new(),
        };
        // The first frame shows the tracker if it answers quickly (it does, for .beads/issues.jsonl).
        source.refresh_tracker();
        if let Some(rx) = &source.tracker_pending
            && let Ok(read) = rx.recv_timeout(FIRST_TRACKER_WAIT)
        {
            source.tracker = read;
            source.tracker_pending = None;
        }
        Ok(source)
    }

    /// Folds the records appended since the last poll. Whether any were.
    pub fn poll(&mut self) -> bool {
        if self.log_error.is_some() {
            return false;
        }
        let events_dir = self.repo.events_dir();
        let (state, activity) = (&mut self.state, &mut self.activity);
        let polled = self.tail.poll(|record, pos| {
            if record.seq <= state.last_seq {
                return Ok(());
            }
            load::apply(state, &events_dir, &record, pos)?;
            activity.observe(&record);
            Ok(())
        });
        match polled {
            Ok(0) => false,
            Ok(_) => {
                self.log_moved = true;
                true
            }
            Err(e) => {
                self.log_error = Some(CliError::from(e).message);
                true
            }
        }
    }

    /// Looks at the world now.
    pub fn world(&mut self) -> World {
        let orchestrator = live::OrchestratorSeen::look(&self.repo);
        let mut alive = BTreeMap::new();
        let mut outputs = Vec::new();
        for (id, claim) in self.state.claimed() {
            let Some(attempt) = claim.attempt.as_ref().filter(|a| a.is_open()) else { continue };
            if let Some(s) = &attempt.spawned {
                alive.insert(id.clone(), crate::process::is_running(s.pid, s.start_time));
            }
            outputs.push((id.clone(), self.repo.attempt_dir(id, attempt.number).join("stdout")));
        }
        let mut last_lines = BTreeMap::new();
        for (id, path) in outputs {
            if let Some(line) = self.last_line(path) {
                last_lines.insert(id, line);
            }
        }
        let lock_holders_alive =
            self.state.locks.values().map(|l| (l.holder_pid, crate::process::is_alive(l.holder_pid, None))).collect();
        let file_locks = crate::file_locks::snapshot(&self.repo);
        let file_lock_holders_alive =
            file_locks.locks.iter().map(|l| (l.pid, crate::process::is_alive(l.pid, l.start_time))).collect();
        self.refresh_tracker();
        World {
            now: jiff::Timestamp::now(),
            orchestrator_running: orchestrator.running,
            orchestrator_pid: orchestrator.holder.as_ref().map(|h| h.pid),
            alive,
            last_lines,
            tracker: self.tracker.clone(),
            lock_holders_alive,
            file_locks,
            file_lock_holders_alive,
        }
    }

    /// The last non-empty line of an output file, read again only when its size changed.
    fn last_line(&mut self, path: PathBuf) -> Option<String> {
        let len = std::fs::metadata(&path).ok()?.len();
        if let Some((seen, line)) = self.outputs.get(&path)
            && *seen == len
        {
            return Some(line.clone());
        }
        let mut file = std::fs::File::open(&path).ok()?;
        let from = len.saturating_sub(OUTPUT_TAIL);
        file.seek(SeekFrom::Start(from)).ok()?;
        let mut bytes = Vec::new();
        file.take(OUTPUT_TAIL).read_to_end(&mut bytes).ok()?;
        let line = last_line_of(&bytes, from > 0);
        self.outputs.insert(path, (len, line.clone()));
        Some(line)
    }

    /// Starts a tracker read on a helper thread when one is due, and takes in a finished one.
    fn refresh_tracker(&mut self) {
        if let Some(rx) = &self.tracker_pending {
            match rx.try_recv() {
                Ok(read) => {
                    self.tracker = read;
                    self.tracker_pending = None;
                }
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.tracker = Err("reading the tracker failed".to_string());
                    self.tracker_pending = None;
                }
            }
        }
        let due = match self.tracker_read_at {
            None => true,
            Some(at) => at.elapsed() >= TRACKER_EVERY || (self.log_moved && at.elapsed() >= TRACKER_AFTER_CHANGE),
        };
        if !due {
            return;
        }
        self.log_moved = false;
        self.tracker_read_at = Some(Instant::now());
        let (tx, rx) = mpsc::channel();
        let (repo, kind) = (self.repo.clone(), self.tracker_kind);
        std::thread::spawn(move || {
            let read = crate::cli::tracker::open(&repo, kind)
                .and_then(|t| t.list(&ListFilter::default()).map_err(crate::cli::tracker::to_cli_error))
                .map(|issues| Arc::new(TrackerView::new(issues, jiff::Timestamp::now())))
                .map_err(|e| e.message);
            let _ = tx.send(read);
        });
        self.tracker_pending = Some(rx);
    }
}

/// The last non-empty line of the end of a file (`cut`: the bytes start mid-file, so their first line
/// may be partial and is used only if it is the only one), without terminal escape sequences.
pub fn last_line_of(bytes: &[u8], cut: bool) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.split(['\n', '\r']).collect();
    if cut && lines.len() > 1 {
        lines.remove(0);
    }
    let line = lines.into_iter().rev().map(strip_escapes).find(|l| !l.trim().is_empty()).unwrap_or_default();
    line.trim_end().to_string()
}

/// Removes ANSI escape sequences (colours, cursor moves, titles) an agent's output may hold.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_blank_lines_escapes_and_a_cut_first_line() {
        assert_eq!(last_line_of(b"one\ntwo\n\n", false), "two");
        assert_eq!(last_line_of(b"one\r\nprogress 10%\rprogress 90%", false), "progress 90%");
        assert_eq!(last_line_of(b"\x1b[32mok\x1b[0m tests passed\n", false), "ok tests passed");
        assert_eq!(last_line_of(b"\x1b]0;title\x07done\n", false), "done");
        assert_eq!(last_line_of(b"tail of a long line\nlast\n", true), "last");
        assert_eq!(last_line_of(b"only part of a line", true), "only part of a line");
        assert_eq!(last_line_of(b"", false), "");
    }
}
