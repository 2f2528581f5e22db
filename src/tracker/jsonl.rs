//! The embedded backend: `.beads/issues.jsonl`, read and written directly.
//!
//! Byte-preserving by construction: every line keeps its original bytes. A write edits only the changed
//! fields of the changed line, by splicing the new value into the line's text (the rest of the line —
//! key order, unknown fields, escapes, spacing — stays as it was), so a git diff shows exactly what changed.
//! New values follow the line's own style (`"k": v, ` as Python/bd write, or compact `"k":v,`).
//! Records whose `_type` is not `issue` are kept and ignored; blank lines are kept.
//!
//! Reading refuses the whole file on the first bad line (the error names `file:line`), on duplicate ids,
//! and on an issue line that holds a field twice: a store whose records are ambiguous must not be written. Writes are atomic: under an exclusive
//! `flock` on the file, re-read, edit, write a temp file in `.beads/`, fsync it, rename it over the file,
//! fsync the directory. A failed write leaves the old file untouched.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    LabelChange, ListFilter, Tracker, TrackerError, TrackerEvents, TrackerResult, check_claimable, now_string, record,
};
use crate::event::Event;
use crate::plan::Issue;

/// One line of the file.
#[derive(Debug, Clone)]
struct Line {
    /// The line's bytes, without its `\n`.
    raw: Vec<u8>,
}

/// The parsed file: lines with their bytes, and the issues in file order.
#[derive(Debug, Clone)]
pub struct JsonlFile {
    path: PathBuf,
    lines: Vec<Line>,
    /// Whether the last line ended with `\n` (kept as found).
    trailing_newline: bool,
    pub issues: Vec<Issue>,
    /// For each issue, its line index.
    issue_line: Vec<usize>,
}

impl JsonlFile {
    /// Parses `bytes` (the content of `path`, used in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> TrackerResult<JsonlFile> {
        let err = |line: usize, message: String| TrackerError::Parse { path: path.to_path_buf(), line, message };
        let trailing_newline = bytes.last() == Some(&b'\n');
        let body = if trailing_newline { &bytes[..bytes.len() - 1] } else { bytes };
        let mut lines = Vec::new();
        let mut issues = Vec::new();
        let mut issue_line = Vec::new();
        let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        if !bytes.is_empty() {
            for (n, raw) in body.split(|&b| b == b'\n').enumerate() {
                let lineno = n + 1;
                if raw.iter().all(u8::is_ascii_whitespace) {
                    lines.push(Line { raw: raw.to_vec() });
                    continue;
                }
                if let Err(e) = std::str::from_utf8(raw) {
                    return Err(err(lineno, format!("not valid UTF-8 (at byte {} of the line)", e.valid_up_to())));
                }
                let value: Value =
                    serde_json::from_slice(raw).map_err(|e| err(lineno, format!("invalid JSON: {e}")))?;
                if !value.is_object() {
                    return Err(err(lineno, "not a JSON object".into()));
                }
                if !Issue::is_issue_record(&value) {
                    lines.push(Line { raw: raw.to_vec() });
                    continue;
                }
                let issue = Issue::from_json(&value).map_err(|e| err(lineno, format!("not a beads issue: {e}")))?;
                if let Some(key) = repeated_key(raw, &value) {
                    let why = "JSON readers keep only one of them, and an edit could change the other";
                    return Err(err(lineno, format!("the field `{key}` appears twice ({why})")));
                }
                if let Some(&first) = first_line.get(&issue.id) {
                    return Err(TrackerError::DuplicateId {
                        path: path.to_path_buf(),
                        line: lineno,
                        first,
                        id: issue.id,
                    });
                }
                first_line.insert(issue.id.clone(), lineno);
                issue_line.push(lines.len());
                lines.push(Line { raw: raw.to_vec() });
                issues.push(issue);
            }
        }
        Ok(JsonlFile { path: path.to_path_buf(), lines, trailing_newline, issues, issue_line })
    }

    /// The file's bytes: identical to what was parsed when nothing was edited.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.raw.len() + 1).sum());
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(&line.raw);
            if i + 1 < self.lines.len() || self.trailing_newline {
                out.push(b'\n');
            }
        }
        out
    }

    pub fn issue(&self, id: &str) -> Option<&Issue> {
        self.issues.iter().find(|i| i.id == id)
    }

    /// Applies `edits` (field → new value, `None` removes the field) to the line of issue `id`, and
    /// refreshes the parsed issue. Fields not named are left byte-for-byte.
    pub fn edit(&mut self, id: &str, edits: &[(&str, Option<Value>)]) -> TrackerResult<()> {
        let k = self.issues.iter().position(|i| i.id == id).ok_or_else(|| TrackerError::NotFound(id.into()))?;
        let line_index = self.issue_line[k];
        let mut raw = self.lines[line_index].raw.clone();
        for (key, value) in edits {
            raw = splice_field(&raw, key, value.as_ref());
        }
        let value: Value = serde_json::from_slice(&raw).map_err(|e| TrackerError::Parse {
            path: self.path.clone(),
            line: line_index + 1,
            message: format!("internal error: edited line is not JSON: {e}"),
        })?;
        let issue = Issue::from_json(&value).map_err(|e| TrackerError::Parse {
            path: self.path.clone(),
            line: line_index + 1,
            message: format!("internal error: edited line is not an issue: {e}"),
        })?;
        self.lines[line_index].raw = raw;
        self.issues[k] = issue;
        Ok(())
    }
}

/// A top-level field of a JSON object line: byte ranges of the key (with quotes) and the value.
#[derive(Debug, Clone)]
struct FieldSpan {
    key: String,
    key_start: usize,
    value_start: usize,
    value_end: usize,
}

fn skip_ws(raw: &[u8], mut i: usize) -> usize {
    while i < raw.len() && raw[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at `raw[i] == '"'`.
fn string_end(raw: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < raw.len() {
        match raw[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    raw.len()
}

/// End (exclusive) of the JSON value starting at `i`. The line is known to be valid JSON.
fn value_end(raw: &[u8], i: usize) -> usize {
    match raw.get(i) {
        Some(b'"') => string_end(raw, i),
        Some(b'{') | Some(b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < raw.len() {
                match raw[j] {
                    b'"' => {
                        j = string_end(raw, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            raw.len()
        }
        _ => {
            let mut j = i;
            while j < raw.len() && !matches!(raw[j], b',' | b'}' | b']') && !raw[j].is_ascii_whitespace() {
                j += 1;
            }
            j
        }
    }
}

/// The top-level fields of a valid JSON object line, and the position of its closing `}`.
fn fields(raw: &[u8]) -> (Vec<FieldSpan>, usize) {
    let mut out = Vec::new();
    let close = each_field(raw, |key_start, key_end, value_start, end| {
        let key: String = serde_json::from_slice(&raw[key_start..key_end]).unwrap_or_default();
        out.push(FieldSpan { key, key_start, value_start, value_end: end });
    });
    (out, close)
}

/// Calls `each(key_start, key_end, value_start, value_end)` for every top-level field of a valid JSON
/// object line; returns the position of its closing `}`.
fn each_field(raw: &[u8], mut each: impl FnMut(usize, usize, usize, usize)) -> usize {
    let mut i = skip_ws(raw, 0) + 1; // past '{'
    loop {
        i = skip_ws(raw, i);
        match raw.get(i) {
            Some(b'"') => {}
            Some(b',') => {
                i += 1;
                continue;
            }
            _ => return i, // '}'
        }
        let key_end = string_end(raw, i);
        let colon = skip_ws(raw, key_end);
        let value_start = skip_ws(raw, colon + 1);
        let end = value_end(raw, value_start);
        each(i, key_end, value_start, end);
        i = end;
    }
}

/// A top-level key that a valid JSON object line (parsed as `value`) holds twice, if any. Readers keep one
/// of the two values (serde_json, Go and Python the last), while an edit splices the first.
fn repeated_key(raw: &[u8], value: &Value) -> Option<String> {
    let mut count = 0;
    each_field(raw, |_, _, _, _| count += 1);
    if count == value.as_object().map_or(0, serde_json::Map::len) {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    fields(raw).0.into_iter().map(|f| f.key).find(|key| !seen.insert(key.clone()))
}

/// Whether the line writes `"key": value, ` (with spaces) rather than `"key":value,`.
fn spaced_style(raw: &[u8], spans: &[FieldSpan]) -> bool {
    spans.first().is_some_and(|f| raw[f.key_start..f.value_start].contains(&b' '))
}

/// One-line JSON with `, ` and `: ` separators (the style Python's json.dumps and bd's export use).
struct SpacedFormatter;

impl serde_json::ser::Formatter for SpacedFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn to_json(value: &Value, spaced: bool) -> Vec<u8> {
    if !spaced {
        return serde_json::to_vec(value).unwrap_or_default();
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, SpacedFormatter);
    serde::Serialize::serialize(value, &mut ser).ok();
    out
}

/// Sets (`Some`) or removes (`None`) the top-level field `key` of a JSON object line, touching nothing else.
fn splice_field(raw: &[u8], key: &str, value: Option<&Value>) -> Vec<u8> {
    let (spans, close) = fields(raw);
    let spaced = spaced_style(raw, &spans);
    let position = spans.iter().position(|f| f.key == key);
    let mut out = Vec::with_capacity(raw.len() + 64);
    match (position, value) {
        (Some(k), Some(v)) => {
            let f = &spans[k];
            out.extend_from_slice(&raw[..f.value_start]);
            out.extend_from_slice(&to_json(v, spaced));
            out.extend_from_slice(&raw[f.value_end..]);
        }
        (Some(k), None) => {
            // Remove the field with the separator before it (or, for the first field, the one after it).
            let (from, to) = if k > 0 {
                (spans[k - 1].value_end, spans[k].value_end)
            } else if spans.len() > 1 {
                (spans[0].key_start, spans[1].key_start)
            } else {
                (spans[0].key_start, spans[0].value_end)
            };
            out.extend_from_slice(&raw[..from]);
            out.extend_from_slice(&raw[to..]);
        }
        (None, Some(v)) => {
            let (sep, colon): (&[u8], &[u8]) = if spaced { (b", ", b": ") } else { (b",", b":") };
            let insert_at = spans.last().map_or(close, |f| f.value_end);
            out.extend_from_slice(&raw[..insert_at]);
            if !spans.is_empty() {
                out.extend_from_slice(sep);
            }
            out.extend_from_slice(&serde_json::to_vec(key).unwrap_or_default());
            out.extend_from_slice(colon);
            out.extend_from_slice(&to_json(v, spaced));
            out.extend_from_slice(&raw[insert_at..]);
        }
        (None, None) => out.extend_from_slice(raw),
    }
    out
}

/// `.beads/issues.jsonl` as a tracker.
///
/// The last file it read or wrote is kept parsed, with the file's identity (device, inode, size,
/// modification time): while the file on disk still has that identity it is not parsed again — the
/// orchestrator's writes then cost one line splice, not a parse of the whole tracker. Any other writer
/// changes the identity (bd and bdp replace the file by rename: a new inode), and the file is re-read.
#[derive(Debug)]
pub struct JsonlTracker {
    beads_dir: PathBuf,
    cache: std::sync::Mutex<Option<(Stamp, JsonlFile)>>,
    batch: std::sync::Mutex<Option<Batch>>,
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
}

impl Stamp {
    // The stat field types differ between targets; the casts are no-ops on some of them.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> Stamp {
        Stamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as i64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }
}

impl JsonlTracker {
    pub fn new(beads_dir: PathBuf) -> Self {
        JsonlTracker { beads_dir, cache: std::sync::Mutex::new(None), batch: std::sync::Mutex::new(None) }
    }

    /// The cached parse if the file still has `stamp` (taken out of the cache).
    fn take_cached(&self, stamp: Stamp) -> Option<JsonlFile> {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.take() {
            Some((s, file)) if s == stamp => Some(file),
            _ => None,
        }
    }

    fn keep(&self, stamp: Stamp, file: JsonlFile) {
        *self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((stamp, file));
    }

    pub fn path(&self) -> PathBuf {
        self.beads_dir.join("issues.jsonl")
    }

    fn check_dir(&self) -> TrackerResult<()> {
        if self.beads_dir.is_dir() { Ok(()) } else { Err(TrackerError::NoBeadsDir(self.beads_dir.clone())) }
    }

    /// Reads and parses the file (a missing file in an existing `.beads/` is an empty tracker).
    pub fn load(&self) -> TrackerResult<JsonlFile> {
        self.check_dir()?;
        if let Some(b) = self.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            return Ok(b.file.clone());
        }
        let path = self.path();
        if let Ok(st) = rustix::fs::stat(&path)
            && let Some(file) = self.take_cached(Stamp::of(&st))
        {
            self.keep(Stamp::of(&st), file.clone());
            return Ok(file);
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(TrackerError::Io { op: "read", path, source }),
        };
        JsonlFile::parse(&path, &bytes)
    }

    /// Takes the flock on the file the path names now (a rename by another writer replaces it, so retry
    /// until the locked file is the one the path names). `None` when there is no file.
    fn lock_current(&self) -> TrackerResult<Option<(File, Stamp)>> {
        let path = self.path();
        let io = |op: &'static str, source: std::io::Error| TrackerError::Io { op, path: path.clone(), source };
        loop {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("open", e)),
            };
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| io("lock", std::io::Error::from(e)))?;
            let locked = rustix::fs::fstat(&file).map_err(|e| io("stat", e.into()))?;
            match rustix::fs::stat(&path) {
                Ok(now) if now.st_ino == locked.st_ino && now.st_dev == locked.st_dev => {
                    return Ok(Some((file, Stamp::of(&locked))));
                }
                _ => continue,
            }
        }
    }

    /// The parse of the locked file: the cached one if it is still current.
    fn read_locked(&self, stamp: Stamp) -> TrackerResult<JsonlFile> {
        let path = self.path();
        match self.take_cached(stamp) {
            Some(file) => Ok(file),
            None => {
                let bytes = std::fs::read(&path).map_err(|source| TrackerError::Io {
                    op: "read",
                    path: path.clone(),
                    source,
                })?;
                JsonlFile::parse(&path, &bytes)
            }
        }
    }

    /// Locks the file, re-reads it, lets `change` edit it, and writes it back atomically if `change`
    /// returns `true`. Returns what `change` returned. Inside a batch the edit goes to the batch's copy.
    fn modify<T>(&self, change: impl FnOnce(&mut JsonlFile) -> TrackerResult<(bool, T)>) -> TrackerResult<T> {
        self.check_dir()?;
        {
            let mut batch = self.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(b) = batch.as_mut() {
                let (changed, out) = change(&mut b.file)?;
                b.dirty |= changed;
                return Ok(out);
            }
        }
        let Some((_lock, stamp)) = self.lock_current()? else {
            // Nothing to edit: every edit names an issue that cannot exist.
            let mut empty = JsonlFile::parse(&self.path(), b"")?;
            return change(&mut empty).map(|(_, t)| t);
        };
        let mut file = self.read_locked(stamp)?;
        // On an error `change` may have edited the parse halfway: it is dropped, the next call re-reads.
        let (changed, out) = change(&mut file)?;
        if changed {
            let written = write_atomically_stamped(&self.path(), &file.to_bytes())?;
            self.keep(written, file);
        } else {
            self.keep(stamp, file);
        }
        Ok(out)
    }
}

/// Writes made between `begin_batch` and `end_batch`: one locked copy, written once.
#[derive(Debug)]
struct Batch {
    _lock: File,
    stamp: Stamp,
    file: JsonlFile,
    dirty: bool,
}

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> TrackerResult<()> {
    write_atomically_stamped(path, bytes).map(|_| ())
}

/// [`write_atomically`], returning the identity of the file written (taken from the temp file before the
/// rename, so a writer that replaces it right after cannot be mistaken for it).
fn write_atomically_stamped(path: &Path, bytes: &[u8]) -> TrackerResult<Stamp> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("issues.jsonl");
    let tmp = dir.join(format!(".{name}.bdp-tmp-{}", std::process::id()));
    let io =
        |op: &'static str, p: &Path, source: std::io::Error| TrackerError::Io { op, path: p.to_path_buf(), source };
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io("create", &tmp, e))?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions()).map_err(|e| io("set permissions of", &tmp, e))?;
        }
        f.write_all(bytes).map_err(|e| io("write", &tmp, e))?;
        f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
        let stamp = Stamp::of(&rustix::fs::fstat(&f).map_err(|e| io("stat", &tmp, e.into()))?);
        std::fs::rename(&tmp, path).map_err(|e| io("rename over", path, e))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("fsync", dir, e))?;
        Ok(stamp)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn string(s: &str) -> Option<Value> {
    Some(Value::String(s.to_string()))
}

impl Tracker for JsonlTracker {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    /// Holds the file's lock and gathers every write until [`Tracker::end_batch`]: one rewrite (and its
    /// fsyncs) for many claims and closes. Compare-and-set still holds: nobody else can write meanwhile.
    fn begin_batch(&self) -> TrackerResult<()> {
        self.check_dir()?;
        let mut batch = self.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if batch.is_some() {
            return Ok(());
        }
        if let Some((lock, stamp)) = self.lock_current()? {
            let file = self.read_locked(stamp)?;
            *batch = Some(Batch { _lock: lock, stamp, file, dirty: false });
        }
        Ok(())
    }

    fn end_batch(&self) -> TrackerResult<()> {
        let taken = self.batch.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(b) = taken {
            if b.dirty {
                let written = write_atomically_stamped(&self.path(), &b.file.to_bytes())?;
                self.keep(written, b.file);
            } else {
                self.keep(b.stamp, b.file);
            }
        }
        Ok(())
    }

    fn list(&self, filter: &ListFilter) -> TrackerResult<Vec<Issue>> {
        Ok(filter.apply(self.load()?.issues))
    }

    fn show(&self, id: &str) -> TrackerResult<Issue> {
        self.load()?.issue(id).cloned().ok_or_else(|| TrackerError::NotFound(id.to_string()))
    }

    fn ready(&self) -> TrackerResult<Vec<Issue>> {
        let file = self.load()?;
        let order = crate::plan::ready_in_order(&file.issues, jiff::Timestamp::now());
        Ok(order.into_iter().map(|i| file.issues[i].clone()).collect())
    }

    fn claim(&self, id: &str, actor: &str, events: &mut dyn TrackerEvents) -> TrackerResult<Issue> {
        let (issue, wrote) = self.modify(|file| {
            let issue = file.issue(id).ok_or_else(|| TrackerError::NotFound(id.to_string()))?;
            if check_claimable(issue, actor)? {
                return Ok((false, (issue.clone(), false)));
            }
            let now = now_string();
            file.edit(
                id,
                &[("status", string("in_progress")), ("assignee", string(actor)), ("updated_at", string(&now))],
            )?;
            let issue = file.issue(id).cloned().ok_or_else(|| TrackerError::NotFound(id.to_string()))?;
            Ok((true, (issue, true)))
        })?;
        if wrote {
            record(
                events,
                Event::TrackerStatusSet {
                    issue: id.to_string(),
                    status: "in_progress".into(),
                    assignee: Some(actor.to_string()),
                    backend: self.name().into(),
                },
            )?;
        }
        Ok(issue)
    }

    fn release(&self, id: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.modify(|file| {
            file.issue(id).ok_or_else(|| TrackerError::NotFound(id.to_string()))?;
            let now = now_string();
            file.edit(id, &[("status", string("open")), ("assignee", None), ("updated_at", string(&now))])?;
            Ok((true, ()))
        })?;
        record(
            events,
            Event::TrackerStatusSet {
                issue: id.to_string(),
                status: "open".into(),
                assignee: None,
                backend: self.name().into(),
            },
        )
    }

    fn set_status(&self, id: &str, status: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        let assignee = self.modify(|file| {
            file.issue(id).ok_or_else(|| TrackerError::NotFound(id.to_string()))?;
            let now = now_string();
            file.edit(id, &[("status", string(status)), ("updated_at", string(&now))])?;
            Ok((true, file.issue(id).and_then(|i| i.assignee.clone())))
        })?;
        record(
            events,
            Event::TrackerStatusSet {
                issue: id.to_string(),
                status: status.to_string(),
                assignee,
                backend: self.name().into(),
            },
        )
    }

    fn add_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.edit_labels(id, &LabelChange { add: vec![label.to_string()], remove: vec![] }, events)
    }

    fn remove_label(&self, id: &str, label: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.edit_labels(id, &LabelChange { add: vec![], remove: vec![label.to_string()] }, events)
    }

    fn change_labels(&self, id: &str, change: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.edit_labels(id, change, events)
    }

    /// The status first, then the labels, as the CLIs record it (inside a batch, one rewrite).
    fn release_with_labels(&self, id: &str, labels: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.release(id, events)?;
        self.edit_labels(id, labels, events)
    }

    fn close(&self, id: &str, reason: &str, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        self.modify(|file| {
            file.issue(id).ok_or_else(|| TrackerError::NotFound(id.to_string()))?;
            let now = now_string();
            file.edit(
                id,
                &[
                    ("status", string("closed")),
                    ("updated_at", string(&now)),
                    ("closed_at", string(&now)),
                    ("close_reason", string(reason)),
                ],
            )?;
            Ok((true, ()))
        })?;
        record(
            events,
            Event::TrackerIssueClosed {
                issue: id.to_string(),
                reason: reason.to_string(),
                backend: self.name().into(),
            },
        )
    }
}

impl JsonlTracker {
    /// Removes, then adds, in one rewrite; records what actually changed (nothing: no write).
    fn edit_labels(&self, id: &str, change: &LabelChange, events: &mut dyn TrackerEvents) -> TrackerResult<()> {
        let done = self.modify(|file| {
            let issue = file.issue(id).ok_or_else(|| TrackerError::NotFound(id.to_string()))?;
            let mut labels = issue.labels.clone();
            let mut done = LabelChange::default();
            for label in &change.remove {
                if labels.contains(label) {
                    labels.retain(|l| l != label);
                    done.remove.push(label.clone());
                }
            }
            for label in &change.add {
                if !labels.contains(label) {
                    labels.push(label.clone());
                    done.add.push(label.clone());
                }
            }
            if done.is_empty() {
                return Ok((false, done));
            }
            let value = if labels.is_empty() {
                None
            } else {
                Some(Value::Array(labels.into_iter().map(Value::String).collect()))
            };
            let now = now_string();
            file.edit(id, &[("labels", value), ("updated_at", string(&now))])?;
            Ok((true, done))
        })?;
        if done.is_empty() {
            return Ok(());
        }
        record(
            events,
            Event::TrackerLabelsChanged {
                issue: id.to_string(),
                added: done.add,
                removed: done.remove,
                backend: self.name().into(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splice_keeps_everything_else() {
        let raw = br#"{"id": "a", "title": "caf\u00e9 \u0026", "status": "open", "x": {"k": [1, 2]}}"#;
        let out = splice_field(raw, "status", Some(&json!("closed")));
        assert_eq!(out, br#"{"id": "a", "title": "caf\u00e9 \u0026", "status": "closed", "x": {"k": [1, 2]}}"#);
        let out = splice_field(raw, "labels", Some(&json!(["a", "b"])));
        assert_eq!(
            out,
            br#"{"id": "a", "title": "caf\u00e9 \u0026", "status": "open", "x": {"k": [1, 2]}, "labels": ["a", "b"]}"#
        );
        let out = splice_field(raw, "x", None);
        assert_eq!(out, br#"{"id": "a", "title": "caf\u00e9 \u0026", "status": "open"}"#);
        let out = splice_field(raw, "id", None);
        assert_eq!(out, br#"{"title": "caf\u00e9 \u0026", "status": "open", "x": {"k": [1, 2]}}"#);
        let compact = br#"{"id":"a","n":-1.5e3,"t":true}"#;
        assert_eq!(splice_field(compact, "n", Some(&json!(2))), br#"{"id":"a","n":2,"t":true}"#);
        assert_eq!(splice_field(compact, "z", Some(&json!(["q"]))), br#"{"id":"a","n":-1.5e3,"t":true,"z":["q"]}"#);
        assert_eq!(splice_field(compact, "n", None), br#"{"id":"a","t":true}"#);
        assert_eq!(splice_field(br#"{"only":1}"#, "only", None), br#"{}"#);
        assert_eq!(splice_field(br#"{}"#, "k", Some(&json!("v"))), br#"{"k":"v"}"#);
    }

    #[test]
    fn every_splice_is_valid_json_with_the_expected_value() {
        let raw = br#"{"a": "x\"}{", "b": [{"c": "]"}], "d": null, "e": 3}"#;
        for key in ["a", "b", "d", "e", "new"] {
            let set = splice_field(raw, key, Some(&json!({"v": 1})));
            let v: Value = serde_json::from_slice(&set).unwrap();
            assert_eq!(v[key], json!({"v": 1}));
            let removed = splice_field(raw, key, None);
            let v: Value = serde_json::from_slice(&removed).unwrap();
            assert!(v.get(key).is_none());
            assert_eq!(v.as_object().unwrap().len(), if key == "new" { 4 } else { 3 });
        }
    }
}
