//! Appending to the log: durable, hash-chained, with group commit.
//!
//! An append returns only after its records are on disk (`fdatasync`). Appends from many threads are
//! batched: one thread (the leader) takes every batch waiting, writes them with one `write` and one
//! `fdatasync`, and hands each caller its records; the others wait on a condition variable. A caller
//! that hands over several events at once gets them consecutive seqs in one commit.
//!
//! Every commit holds the append lock (flock) around refresh + write + fsync, so other bdp processes can
//! append too; records they wrote since our last commit are read, verified and kept for
//! [`LogWriter::take_foreign`].
//!
//! A failed write is rolled back (the file is cut to its previous length), so no partial record is left.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use crate::event::record::{GENESIS, MAX_RECORD_BYTES, decode_line, encode_record, split_line};
use crate::event::{ChainHash, Event, FORMAT_VERSION, Record};

use super::error::{Location, LogError, Problem};
use super::failpoint::When;
use super::lock::AppendLock;
use super::segment::{SEGMENT_MAX_BYTES, list_segments, segment_path};
use super::sync::{Condvar, Mutex};
use super::torn::overwritten_newline;
use super::walk::TornTail;

/// The writer's clock: returns an RFC 3339 UTC timestamp. Tests and fixtures pass a fixed one.
pub type Clock = Box<dyn Fn() -> String + Send + Sync>;

/// The wall clock, as `2026-11-25T06:01:22.123Z`.
pub fn system_clock() -> Clock {
    Box::new(|| {
        let now = jiff::Timestamp::now();
        let ms = jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
        ms.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    })
}

/// Whether concurrent appends share a commit (the default) or each pay for their own fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    Group,
    PerAppend,
}

struct Pending {
    ticket: u64,
    events: Vec<Event>,
}

type Outcome = Result<Vec<Record>, Arc<LogError>>;

#[derive(Default)]
struct Queue {
    next_ticket: u64,
    pending: VecDeque<Pending>,
    results: HashMap<u64, Outcome>,
    leader_active: bool,
}

struct Tail {
    file: File,
    segment: u32,
    len: u64,
    next_seq: u64,
    chain: ChainHash,
    foreign: Vec<Record>,
    broken: Option<Arc<LogError>>,
    buf: Vec<u8>,
    /// Where the last record is: (segment, offset, length with its newline). `None` in an empty log.
    last: Option<(u32, u64, u64)>,
}

/// The appending end of a log. Share it between threads by reference or `Arc`.
pub struct LogWriter {
    events_dir: PathBuf,
    append_lock: AppendLock,
    session: String,
    clock: Clock,
    mode: CommitMode,
    queue: Mutex<Queue>,
    cond: Condvar,
    tail: Mutex<Tail>,
}

impl LogWriter {
    /// Opens (creating if needed) the log under `events_dir` for appending as `session`. A torn tail is cut
    /// off and a `log_truncated` event appended; it is returned too, for the caller to report.
    pub fn open(
        events_dir: &Path,
        append_lock_path: &Path,
        session: &str,
        clock: Clock,
    ) -> Result<(LogWriter, Option<TornTail>), LogError> {
        create_dir_durably(events_dir)?;
        let append_lock = AppendLock::open(append_lock_path)?;
        let (tail, torn) = {
            let _guard = append_lock.hold()?;
            open_tail(events_dir)?
        };
        let writer = LogWriter {
            events_dir: events_dir.to_path_buf(),
            append_lock,
            session: session.to_string(),
            clock,
            mode: CommitMode::Group,
            queue: Mutex::new(Queue::default()),
            cond: Condvar::new(),
            tail: Mutex::new(tail),
        };
        if let Some(torn) = &torn {
            writer.append(vec![Event::LogTruncated {
                segment: torn.segment.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                offset: torn.offset,
                dropped_bytes: torn.bytes,
            }])?;
        }
        Ok((writer, torn))
    }

    pub fn with_mode(mut self, mode: CommitMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// Seq of the last record in the log as this writer knows it, and its chain value.
    pub fn last(&self) -> (u64, ChainHash) {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        (tail.next_seq - 1, tail.chain)
    }

    /// The last record's seq, chain value and place in the log: what a checkpoint taken right after it
    /// records. `None` while the log is empty.
    pub fn last_position(&self) -> Option<super::index::CheckpointMeta> {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let (segment, offset, len) = tail.last?;
        Some(super::index::CheckpointMeta { seq: tail.next_seq - 1, chain: tail.chain, segment, offset, len })
    }

    /// Records other processes appended, in seq order, since the last call.
    pub fn take_foreign(&self) -> Vec<Record> {
        std::mem::take(&mut self.tail.lock().unwrap_or_else(PoisonError::into_inner).foreign)
    }

    /// Appends one event; returns its record once durable.
    pub fn append_one(&self, event: Event) -> Result<Record, LogError> {
        let mut records = self.append(vec![event])?;
        records.pop().ok_or_else(|| LogError::Internal("an append returned no record".into()))
    }

    /// Appends events as consecutive records; returns them once durable.
    pub fn append(&self, events: Vec<Event>) -> Result<Vec<Record>, LogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push_back(Pending { ticket, events });
        loop {
            if let Some(outcome) = queue.results.remove(&ticket) {
                return outcome.map_err(LogError::Shared);
            }
            if queue.leader_active {
                queue = self.cond.wait(queue).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            queue.leader_active = true;
            let batches: Vec<Pending> = match self.mode {
                CommitMode::Group => queue.pending.drain(..).collect(),
                CommitMode::PerAppend => queue.pending.pop_front().into_iter().collect(),
            };
            drop(queue);
            let outcomes = self.commit(batches);
            queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.results.extend(outcomes);
            queue.leader_active = false;
            self.cond.notify_all();
        }
    }

    /// Writes the batches in one write + one fdatasync, under the append lock.
    fn commit(&self, batches: Vec<Pending>) -> Vec<(u64, Outcome)> {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let tickets: Vec<u64> = batches.iter().map(|b| b.ticket).collect();
        match self.commit_locked(&mut tail, batches) {
            Ok(out) => out.into_iter().map(|(t, r)| (t, Ok(r))).collect(),
            Err(err) => {
                let err = Arc::new(err);
                tickets.into_iter().map(|t| (t, Err(err.clone()))).collect()
            }
        }
    }

    fn commit_locked(&self, tail: &mut Tail, batches: Vec<Pending>) -> Result<Vec<(u64, Vec<Record>)>, LogError> {
        if let Some(err) = &tail.broken {
            return Err(LogError::WriterBroken(err.to_string()));
        }
        let _guard = self.append_lock.hold()?;
        self.refresh(tail)?;
        let ts = (self.clock)();
        let mut chain = tail.chain;
        let mut seq = tail.next_seq;
        let mut buf = std::mem::take(&mut tail.buf);
        buf.clear();
        let mut out = Vec::with_capacity(batches.len());
        let failpoint = super::failpoint::armed();
        let first_seq = seq;
        let mut last_start = 0;
        for batch in batches {
            let mut records = Vec::with_capacity(batch.events.len());
            for event in batch.events {
                if let Some((When::Before, at)) = failpoint
                    && at == seq
                {
                    // The crash harness: what came before this record in the commit is durable, then die.
                    let _ = self.write_durably(tail, &buf);
                    super::failpoint::crash(When::Before, at);
                }
                let record = Record { seq, v: FORMAT_VERSION, ts: ts.clone(), session: self.session.clone(), event };
                last_start = buf.len();
                chain = encode_record(&record, &chain, &mut buf);
                seq += 1;
                records.push(record);
            }
            out.push((batch.ticket, records));
        }
        let written = self.write_durably(tail, &buf);
        tail.buf = buf;
        written?;
        if let Some((When::After, at)) = failpoint
            && (first_seq..seq).contains(&at)
        {
            super::failpoint::crash(When::After, at);
        }
        if seq > first_seq {
            // The whole buffer went to the end of the current segment (a roll happens before the write).
            let last_len = (tail.buf.len() - last_start) as u64;
            tail.last = Some((tail.segment, tail.len - last_len, last_len));
        }
        tail.chain = chain;
        tail.next_seq = seq;
        Ok(out)
    }

    /// Writes `buf` at the end of the current segment (rolling to a new one if it would grow too big)
    /// and fdatasyncs. On failure the segment is cut back to its previous length.
    fn write_durably(&self, tail: &mut Tail, buf: &[u8]) -> Result<(), LogError> {
        if tail.len > 0 && tail.len + buf.len() as u64 > SEGMENT_MAX_BYTES {
            self.roll(tail)?;
        }
        let path = segment_path(&self.events_dir, tail.segment);
        let result = tail.file.write_all(buf).and_then(|()| tail.file.sync_data());
        #[cfg(loom)]
        let result = result.and_then(|()| super::sync::fault::after_sync(&self.events_dir));
        if let Err(e) = result {
            let cut = tail.file.set_len(tail.len).and_then(|()| tail.file.sync_data());
            if let Err(cut_err) = cut {
                tail.broken = Some(Arc::new(LogError::io("roll back a failed append to", &path, cut_err)));
            }
            return Err(LogError::io("append to", &path, e));
        }
        tail.len += buf.len() as u64;
        Ok(())
    }

    /// Starts the next segment.
    fn roll(&self, tail: &mut Tail) -> Result<(), LogError> {
        let next = tail.segment + 1;
        let path = segment_path(&self.events_dir, next);
        let file = OpenOptions::new()
            .append(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LogError::io("create", &path, e))?;
        sync_dir(&self.events_dir)?;
        tail.file = file;
        tail.segment = next;
        tail.len = 0;
        Ok(())
    }

    /// Reads records other processes appended since our last commit (we hold the append lock).
    fn refresh(&self, tail: &mut Tail) -> Result<(), LogError> {
        loop {
            let path = segment_path(&self.events_dir, tail.segment);
            let len = tail.file.metadata().map_err(|e| LogError::io("stat", &path, e))?.len();
            if len < tail.len {
                let err = LogError::WriterBroken(format!("{} shrank under a live writer", path.display()));
                tail.broken = Some(Arc::new(LogError::WriterBroken(err.to_string())));
                return Err(err);
            }
            if len > tail.len {
                let mut data = vec![0; (len - tail.len) as usize];
                tail.file.read_exact_at(&mut data, tail.len).map_err(|e| LogError::io("read", &path, e))?;
                let mut pos = 0;
                let mut line_no = 0;
                while let Some(nl) = memchr::memchr(b'\n', &data[pos..]) {
                    line_no += 1;
                    let line = &data[pos..pos + nl];
                    let location = || Location { segment: path.clone(), line: line_no, offset: tail.len + pos as u64 };
                    let (raw, chain) = super::chain::next_link(line, tail.next_seq, &tail.chain)
                        .map_err(|problem| LogError::corrupt(tail.next_seq, location(), problem))?;
                    let record =
                        decode_line(line).map_err(|e| LogError::corrupt(raw.seq, location(), Problem::Decode(e)))?;
                    tail.foreign.push(record);
                    tail.last = Some((tail.segment, tail.len + pos as u64, nl as u64 + 1));
                    tail.chain = chain;
                    tail.next_seq += 1;
                    pos += nl + 1;
                }
                if pos < data.len() {
                    // A writer died mid-record while holding the lock: cut its torn bytes.
                    let keep = tail.len + pos as u64;
                    tail.file
                        .set_len(keep)
                        .and_then(|()| tail.file.sync_data())
                        .map_err(|e| LogError::io("cut a torn record from", &path, e))?;
                    tracing::warn!("cut {} torn bytes from {}", data.len() - pos, path.display());
                }
                tail.len += pos as u64;
            }
            let next = segment_path(&self.events_dir, tail.segment + 1);
            match OpenOptions::new().append(true).read(true).open(&next) {
                Ok(file) => {
                    tail.file = file;
                    tail.segment += 1;
                    tail.len = 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(LogError::io("open", &next, e)),
            }
        }
    }
}

/// Finds the end of the log (last valid record), cutting a torn tail. Called under the append lock.
fn open_tail(events_dir: &Path) -> Result<(Tail, Option<TornTail>), LogError> {
    let mut segments = list_segments(events_dir)?;
    if segments.is_empty() {
        let path = segment_path(events_dir, 1);
        OpenOptions::new().append(true).create(true).open(&path).map_err(|e| LogError::io("create", &path, e))?;
        sync_dir(events_dir)?;
        segments = list_segments(events_dir)?;
    }
    let last = segments.last().expect("at least one segment exists").clone();
    let file =
        OpenOptions::new().append(true).read(true).open(&last.path).map_err(|e| LogError::io("open", &last.path, e))?;
    let len = file.metadata().map_err(|e| LogError::io("stat", &last.path, e))?.len();
    let valid_len = match find_last_newline(&file, len, &last.path)? {
        Some(nl) => nl + 1,
        None => 0,
    };
    // The last complete record: in this segment, or an earlier one if this one is empty.
    let mut found = None;
    for segment in segments.iter().rev() {
        let seg_file = if segment.number == last.number {
            file.try_clone().map_err(|e| LogError::io("open", &segment.path, e))?
        } else {
            File::open(&segment.path).map_err(|e| LogError::io("open", &segment.path, e))?
        };
        let seg_len = if segment.number == last.number {
            valid_len
        } else {
            seg_file.metadata().map_err(|e| LogError::io("stat", &segment.path, e))?.len()
        };
        if seg_len == 0 {
            continue;
        }
        let (next_seq, chain, offset) = read_last_record(&seg_file, seg_len, &segment.path)?;
        found = Some((next_seq, chain, (segment.number, offset, seg_len - offset)));
        break;
    }
    let (next_seq, chain, last_place) = match found {
        Some((next_seq, chain, place)) => (next_seq, chain, Some(place)),
        None => (1, GENESIS, None),
    };
    let torn = if valid_len < len {
        let mut tail = vec![0; (len - valid_len).min(MAX_RECORD_BYTES as u64 + 2) as usize];
        file.read_exact_at(&mut tail, valid_len).map_err(|e| LogError::io("read", &last.path, e))?;
        if overwritten_newline(&tail, next_seq, &chain) {
            let location = Location { segment: last.path.clone(), line: 0, offset: valid_len };
            return Err(LogError::corrupt(next_seq, location, Problem::OverwrittenNewline));
        }
        file.set_len(valid_len)
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io("cut the torn tail of", &last.path, e))?;
        tracing::warn!("cut a torn tail of {} bytes from {}", len - valid_len, last.path.display());
        Some(TornTail { segment: last.path.clone(), offset: valid_len, bytes: len - valid_len })
    } else {
        None
    };
    let tail = Tail {
        file,
        segment: last.number,
        len: valid_len,
        next_seq,
        chain,
        foreign: Vec::new(),
        broken: None,
        buf: Vec::new(),
        last: last_place,
    };
    Ok((tail, torn))
}

/// Offset of the last `\n` in the first `len` bytes of `file`, reading backwards in chunks.
fn find_last_newline(file: &File, len: u64, path: &Path) -> Result<Option<u64>, LogError> {
    const CHUNK: u64 = 1 << 20;
    let mut end = len;
    let mut buf = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buf.resize((end - start) as usize, 0);
        file.read_exact_at(&mut buf, start).map_err(|e| LogError::io("read", path, e))?;
        if let Some(i) = memchr::memrchr(b'\n', &buf) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// Reads and checks the last record of a segment whose first `len` bytes end with a newline; returns the
/// next seq and the chain value to continue from, and the record's offset.
fn read_last_record(file: &File, len: u64, path: &Path) -> Result<(u64, ChainHash, u64), LogError> {
    let before = find_last_newline(file, len - 1, path)?.map_or(0, |nl| nl + 1);
    let mut line = vec![0; (len - 1 - before) as usize];
    file.read_exact_at(&mut line, before).map_err(|e| LogError::io("read", path, e))?;
    let location = Location { segment: path.to_path_buf(), line: 0, offset: before };
    let raw = split_line(&line).map_err(|e| LogError::corrupt(0, location.clone(), Problem::Decode(e)))?;
    decode_line(&line).map_err(|e| LogError::corrupt(raw.seq, location, Problem::Decode(e)))?;
    Ok((raw.seq + 1, raw.chain, before))
}

/// Creates a directory (and parents) and makes the new entries durable.
pub fn create_dir_durably(dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| LogError::io("create the directory", dir, e))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| LogError::io("sync the directory", dir, e))
}
