//! Reading the log: walk every record in order, verify the hash chain and the seqs, detect a torn tail,
//! and decode the records the caller wants.
//!
//! Checking the chain needs no JSON parsing (see `event::record`), so a walk can verify the whole log
//! cheaply and decode only what a query needs.
//!
//! A walk runs on two threads. A helper thread reads the segments, splits the lines, checks the seqs and the
//! chain, and queues the lines to decode in chunks; the caller's thread hands the decoded records to
//! `on_record` in seq order (so `on_record` need not be `Send`). Decoding, most of the work, is shared: the
//! caller's thread decodes the oldest chunk itself if nobody has started it, and the helper, once it is
//! [`AHEAD`] chunks ahead, decodes the newest ones. Nothing is handed over before it is verified; on damage,
//! every record before it is handed over first, then the error is returned.
//!
//! A walk from a checkpoint reads the checkpoint's segment from the checkpoint on, so recovery costs the
//! tail, not the history. Line numbers in that segment are unknown without reading it from the start:
//! positions there have `line: 0`, and an error there gets its line counted when it happens.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::event::record::{GENESIS, decode_split};
use crate::event::{ChainHash, DecodeError, Record};

use super::error::{Location, LogError, Problem};
use super::segment::{Segment, list_segments, segment_name, segment_path};

/// Where a walk starts: the beginning, or right after a known record (a checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartAfter {
    pub seq: u64,
    pub chain: ChainHash,
    pub segment: u32,
    /// Byte offset just past the record's newline.
    pub end_offset: u64,
}

/// Which records a walk decodes and hands to the caller. Every record's chain is checked regardless.
#[derive(Debug, Clone)]
pub enum Decode {
    All,
    None,
    Range(RangeInclusive<u64>),
    /// These seqs (sorted ascending), and every seq from the second value on.
    SeqsThenFrom(Vec<u64>, u64),
}

impl Decode {
    fn wants(&self, seq: u64) -> bool {
        match self {
            Decode::All => true,
            Decode::None => false,
            Decode::Range(r) => r.contains(&seq),
            Decode::SeqsThenFrom(s, from) => seq >= *from || s.binary_search(&seq).is_ok(),
        }
    }
}

/// Bytes after the last complete record of the last segment: a write the crash interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Where the valid prefix ends (the file is cut here on the next append).
    pub offset: u64,
    pub bytes: u64,
}

/// Where a record lives on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub segment: u32,
    /// 1-based line number within the segment; 0 (unknown) in the segment a walk from a checkpoint
    /// started in, which it does not read from the start.
    pub line: u64,
    pub offset: u64,
    pub len: u64,
}

/// What a walk saw.
#[derive(Debug, Clone)]
pub struct WalkSummary {
    /// Seq and chain value of the last valid record (0 and the genesis value for an empty log).
    pub last_seq: u64,
    pub last_chain: ChainHash,
    /// Position of the last valid record, if any record was walked.
    pub last_position: Option<Position>,
    /// Records checked in this walk.
    pub records: u64,
    pub segments: Vec<Segment>,
    pub torn_tail: Option<TornTail>,
}

/// Lines per chunk of decoding work.
const CHUNK: usize = 256;
/// Chunks the helper queues before it starts decoding them itself.
const AHEAD: usize = 8;

/// Walks the log under `events_dir`. `on_record` gets each wanted record in seq order with its position;
/// an error it returns stops the walk. Damage is reported as [`LogError::Corrupt`] by seq.
pub fn walk(
    events_dir: &Path,
    start: Option<&StartAfter>,
    decode: &Decode,
    mut on_record: impl FnMut(Record, Position) -> Result<(), LogError>,
) -> Result<WalkSummary, LogError> {
    let segments = list_segments(events_dir)?;
    let pipe = Pipe::default();
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| {
            let finish = FinishOnDrop(&pipe);
            let result = verify(events_dir, &segments, start, decode, &pipe);
            finish.finish(result);
        });
        let delivered = {
            let _stop = StopOnDrop(&pipe);
            deliver(&pipe, &mut on_record)
        };
        match helper.join() {
            Ok(()) => delivered,
            Err(_) => Err(LogError::Internal("the thread verifying the log panicked".into())),
        }
    })
}

/// The helper's side: reads, splits and verifies every record, queueing the wanted ones for decoding.
fn verify(
    events_dir: &Path,
    segments: &[Segment],
    start: Option<&StartAfter>,
    decode: &Decode,
    pipe: &Pipe,
) -> Result<WalkSummary, LogError> {
    let (mut expected_seq, mut chain, first_segment, first_offset) = match start {
        Some(s) => (s.seq + 1, s.chain, s.segment, s.end_offset),
        None => (1, GENESIS, 1, 0),
    };
    let mut summary = WalkSummary {
        last_seq: expected_seq - 1,
        last_chain: chain,
        last_position: None,
        records: 0,
        segments: segments.to_vec(),
        torn_tail: None,
    };
    let count = segments.len();
    for (index, segment) in segments.iter().enumerate() {
        let expected_number = index as u32 + 1;
        if segment.number != expected_number {
            return Err(LogError::corrupt(
                expected_seq,
                Location { segment: segment_path(events_dir, expected_number), line: 0, offset: 0 },
                Problem::MissingSegment { missing: segment_name(expected_number) },
            ));
        }
        if segment.number < first_segment {
            continue;
        }
        let is_last = index + 1 == count;
        let base = if segment.number == first_segment { first_offset } else { 0 };
        let mut reader = SegmentReader::open(segment, base, expected_seq, is_last)?;
        while let Some(part) = reader.next_part()? {
            let part = Arc::new(part);
            let data = &part.data;
            let mut wanted: Vec<Line> = Vec::with_capacity(CHUNK);
            let mut at = 0;
            let mut line_no = 0;
            while at < data.len() {
                if pipe.stopped() {
                    return Err(LogError::Internal("the walk was stopped".into()));
                }
                line_no += 1;
                let Some(nl) = memchr::memchr(b'\n', &data[at..]) else {
                    // No newline: an interrupted write. Legal only at the very end of the log.
                    if is_last && super::torn::overwritten_newline(&data[at..], expected_seq, &chain) {
                        pipe.publish(&part, &mut wanted);
                        let location = part.location(line_no, at);
                        return Err(LogError::corrupt(expected_seq, location, Problem::OverwrittenNewline));
                    }
                    if is_last {
                        summary.torn_tail = Some(TornTail {
                            segment: segment.path.clone(),
                            offset: part.base + at as u64,
                            bytes: (data.len() - at) as u64,
                        });
                        break;
                    }
                    pipe.publish(&part, &mut wanted);
                    return Err(LogError::corrupt(expected_seq, part.location(line_no, at), Problem::IncompleteLine));
                };
                let line = &data[at..at + nl];
                let (raw, next) = match super::chain::next_link(line, expected_seq, &chain) {
                    Ok(link) => link,
                    Err(problem) => {
                        pipe.publish(&part, &mut wanted);
                        return Err(LogError::corrupt(expected_seq, part.location(line_no, at), problem));
                    }
                };
                chain = next;
                summary.last_seq = raw.seq;
                summary.last_chain = chain;
                summary.last_position = Some(part.position(line_no, at, nl));
                summary.records += 1;
                if decode.wants(raw.seq) {
                    wanted.push(Line { at, len: nl, line_no, seq: raw.seq });
                    if wanted.len() >= CHUNK {
                        pipe.publish(&part, &mut wanted);
                    }
                }
                expected_seq += 1;
                at += nl + 1;
            }
            pipe.publish(&part, &mut wanted);
            reader.lines_before = part.lines_before.map(|before| before + line_no);
        }
    }
    Ok(summary)
}

/// Bytes read per block. A block is cut after its last newline (the rest starts the next one), so a
/// block holds whole lines, except at the end of a segment.
const BLOCK: usize = 1 << 20;

/// Reads a segment from byte `base` on (a checkpoint's end, or 0) in blocks of whole lines. Blocks rather
/// than the whole file: buffers of a steady size are reused by the allocator instead of being mapped and
/// faulted in afresh.
struct SegmentReader {
    file: File,
    path: PathBuf,
    segment: u32,
    /// File offset of the first byte not yet handed out.
    offset: u64,
    /// Bytes read after the last newline of the previous block.
    carry: Vec<u8>,
    eof: bool,
    /// Lines before `offset`, if known (from the start of the segment, or set by the caller as it counts).
    lines_before: Option<u64>,
}

impl SegmentReader {
    fn open(segment: &Segment, base: u64, expected_seq: u64, is_last: bool) -> Result<SegmentReader, LogError> {
        let io = |e| LogError::io("read", &segment.path, e);
        let mut file = File::open(&segment.path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if base > len {
            return Err(LogError::corrupt(
                expected_seq,
                Location { segment: segment.path.clone(), line: 0, offset: base },
                Problem::IncompleteLine,
            ));
        }
        if len == 0 && !is_last {
            return Err(LogError::corrupt(
                expected_seq,
                Location { segment: segment.path.clone(), line: 1, offset: 0 },
                Problem::EmptySegment,
            ));
        }
        if base > 0 {
            file.seek(SeekFrom::Start(base)).map_err(io)?;
        }
        Ok(SegmentReader {
            file,
            path: segment.path.clone(),
            segment: segment.number,
            offset: base,
            carry: Vec::new(),
            eof: false,
            lines_before: (base == 0).then_some(0),
        })
    }

    /// The next block, `None` at the end of the segment.
    fn next_part(&mut self) -> Result<Option<Part>, LogError> {
        let mut data = std::mem::take(&mut self.carry);
        loop {
            if !self.eof {
                let start = data.len();
                data.reserve(BLOCK);
                let read = (&mut self.file)
                    .take(BLOCK as u64)
                    .read_to_end(&mut data)
                    .map_err(|e| LogError::io("read", &self.path, e))?;
                self.eof = read == 0;
                if read > 0 && memchr::memchr(b'\n', &data[start..]).is_none() {
                    continue; // a long line: read on to its end
                }
            }
            if data.is_empty() {
                return Ok(None);
            }
            if !self.eof
                && let Some(nl) = memchr::memrchr(b'\n', &data)
            {
                self.carry = data[nl + 1..].to_vec();
                data.truncate(nl + 1);
            }
            let base = self.offset;
            self.offset += data.len() as u64;
            let part =
                Part { segment: self.segment, path: self.path.clone(), base, data, lines_before: self.lines_before };
            return Ok(Some(part));
        }
    }
}

/// The caller's side: hands the decoded records over in order, decoding the oldest chunk itself when the
/// helper has not started it. Returns the helper's verdict once every queued chunk is handed over.
fn deliver(
    pipe: &Pipe,
    on_record: &mut impl FnMut(Record, Position) -> Result<(), LogError>,
) -> Result<WalkSummary, LogError> {
    loop {
        let chunk = {
            let mut queue = pipe.lock();
            loop {
                match queue.chunks.front().map(|c| &c.work) {
                    Some(Work::Taken) => {} // the helper is decoding it
                    Some(_) => break,
                    None if queue.end.is_some() => return queue.end.take().expect("checked above"),
                    None => {}
                }
                queue = pipe.wait(queue);
            }
            let chunk = queue.chunks.pop_front().expect("checked above");
            queue.popped += 1;
            pipe.cond.notify_all();
            chunk
        };
        let decoded = match chunk.work {
            Work::Done(decoded) => decoded,
            _ => decode_lines(&chunk.part, &chunk.lines),
        };
        let part = &chunk.part;
        for (line, result) in chunk.lines.iter().zip(decoded) {
            let record = result
                .map_err(|e| LogError::corrupt(line.seq, part.location(line.line_no, line.at), Problem::Decode(e)))?;
            on_record(record, part.position(line.line_no, line.at, line.len))
                .map_err(|e| part.fill_in_line(e, line.line_no, line.at))?;
        }
    }
}

fn decode_lines(part: &Part, lines: &[Line]) -> Vec<Result<Record, DecodeError>> {
    lines.iter().map(|l| decode_split(&part.data[l.at..l.at + l.len], l.seq)).collect()
}

/// The bytes of one segment read by a walk, from `base` on.
struct Part {
    segment: u32,
    path: PathBuf,
    base: u64,
    data: Vec<u8>,
    /// Lines before `base`, if known (always when `base` is 0).
    lines_before: Option<u64>,
}

impl Part {
    /// Line `line_no` (counted from `base`) starting at `at` (in `data`) as a position for the caller.
    fn position(&self, line_no: u64, at: usize, len: usize) -> Position {
        Position {
            segment: self.segment,
            line: self.lines_before.map_or(0, |before| before + line_no),
            offset: self.base + at as u64,
            len: len as u64 + 1,
        }
    }

    /// The same line as a location for an error, with its line number counted if need be.
    fn location(&self, line_no: u64, at: usize) -> Location {
        let before = self.lines_before.unwrap_or_else(|| count_lines(&self.path, self.base));
        Location { segment: self.path.clone(), line: before + line_no, offset: self.base + at as u64 }
    }

    /// Gives an error the caller built from a position with an unknown line its line number.
    fn fill_in_line(&self, err: LogError, line_no: u64, at: usize) -> LogError {
        if self.lines_before.is_some() {
            return err;
        }
        let offset = self.base + at as u64;
        let unknown = |l: &Location| l.line == 0 && l.offset == offset && l.segment == self.path;
        match err {
            LogError::Transition(e, l) if unknown(&l) => LogError::Transition(e, self.location(line_no, at)),
            LogError::Corrupt(mut c) if unknown(&c.location) => {
                c.location = self.location(line_no, at);
                LogError::Corrupt(c)
            }
            other => other,
        }
    }
}

/// Newlines in the first `len` bytes of a file (0 if it cannot be read: only error messages need it).
fn count_lines(path: &Path, len: u64) -> u64 {
    let mut prefix = Vec::new();
    match File::open(path).and_then(|f| f.take(len).read_to_end(&mut prefix)) {
        Ok(_) => memchr::memchr_iter(b'\n', &prefix).count() as u64,
        Err(_) => 0,
    }
}

/// A wanted line: where it is in its part, its line number counted from the part's start, and its seq.
#[derive(Debug, Clone, Copy)]
struct Line {
    at: usize,
    len: usize,
    line_no: u64,
    seq: u64,
}

/// Lines to decode, all from one part.
struct Chunk {
    part: Arc<Part>,
    lines: Arc<[Line]>,
    work: Work,
}

enum Work {
    Pending,
    /// The helper is decoding it.
    Taken,
    Done(Vec<Result<Record, DecodeError>>),
}

/// What the two threads of a walk share.
#[derive(Default)]
struct Pipe {
    queue: Mutex<Queue>,
    cond: Condvar,
    /// The caller's side has returned (an error, or a panic in `on_record`): the helper stops.
    stop: AtomicBool,
}

#[derive(Default)]
struct Queue {
    /// Verified chunks not yet handed over, oldest first.
    chunks: VecDeque<Chunk>,
    /// Chunks handed over so far (the chunk numbered `n` is at `chunks[n - popped]`).
    popped: u64,
    /// The helper's verdict, once it has verified all it will.
    end: Option<Result<WalkSummary, LogError>>,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&'a self, guard: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.cond.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Queues the wanted lines as a chunk; then, while the queue is long, decodes the newest chunks.
    fn publish(&self, part: &Arc<Part>, wanted: &mut Vec<Line>) {
        if wanted.is_empty() {
            return;
        }
        let lines: Arc<[Line]> = wanted.as_slice().into();
        wanted.clear();
        let mut queue = self.lock();
        queue.chunks.push_back(Chunk { part: Arc::clone(part), lines, work: Work::Pending });
        self.cond.notify_all();
        while queue.chunks.len() >= AHEAD && !self.stopped() {
            queue = match self.decode_newest(queue) {
                Ok(queue) => queue,
                Err(queue) => self.wait(queue),
            };
        }
    }

    /// Decodes the newest chunk nobody has started. `Err` (with the lock) if there is none.
    fn decode_newest<'a>(
        &'a self,
        mut queue: MutexGuard<'a, Queue>,
    ) -> Result<MutexGuard<'a, Queue>, MutexGuard<'a, Queue>> {
        let Some(index) = queue.chunks.iter().rposition(|c| matches!(c.work, Work::Pending)) else {
            return Err(queue);
        };
        let number = queue.popped + index as u64;
        let chunk = &mut queue.chunks[index];
        chunk.work = Work::Taken;
        let (part, lines) = (Arc::clone(&chunk.part), Arc::clone(&chunk.lines));
        drop(queue);
        let decoded = decode_lines(&part, &lines);
        let mut queue = self.lock();
        // The caller's side hands over a taken chunk only once it is done, so it is still queued.
        let index = (number - queue.popped) as usize;
        queue.chunks[index].work = Work::Done(decoded);
        self.cond.notify_all();
        Ok(queue)
    }
}

/// The helper's end: posts its verdict (an internal error if it panicked), then helps decode what is left.
struct FinishOnDrop<'a>(&'a Pipe);

impl FinishOnDrop<'_> {
    fn finish(self, result: Result<WalkSummary, LogError>) {
        let pipe = self.0;
        let mut queue = pipe.lock();
        queue.end = Some(result);
        pipe.cond.notify_all();
        while !pipe.stopped() {
            queue = match pipe.decode_newest(queue) {
                Ok(queue) => queue,
                Err(_) => break,
            };
        }
    }
}

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        if queue.end.is_none() {
            queue.end = Some(Err(LogError::Internal("the thread verifying the log panicked".into())));
        }
        self.0.cond.notify_all();
    }
}

/// The caller's end: however it returns, the helper stops.
struct StopOnDrop<'a>(&'a Pipe);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
        let _queue = self.0.lock();
        self.0.cond.notify_all();
    }
}
