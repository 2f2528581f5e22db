//! One output file `bdp logs` prints: where it stopped reading, the line prefix, and the bytes of an
//! unfinished last line. Reads only what was appended since the last look; finds the start of the last N
//! lines by reading backwards, so `--tail` on a huge file reads only its end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn file_name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    prefix: Vec<u8>,
    /// Print whole lines only (output of several sources is mixed); else pass bytes through.
    lines: bool,
    offset: u64,
    /// A last line without its newline yet (in line mode).
    partial: Vec<u8>,
}

impl Source {
    /// A source printing `prefix` before each line; `lines` (forced when there is a prefix) prints whole
    /// lines only, for output mixed with other sources.
    pub fn new(path: PathBuf, prefix: String, lines: bool) -> Source {
        let lines = lines || !prefix.is_empty();
        Source { path, prefix: prefix.into_bytes(), lines, offset: 0, partial: Vec::new() }
    }

    /// Positions the source at the start of its last `tail` lines (all of it when `None`). A file that
    /// does not exist yet is read from its start once it appears.
    pub fn start(&mut self, tail: Option<u64>) -> std::io::Result<()> {
        self.offset = match (tail, File::open(&self.path)) {
            (Some(n), Ok(file)) => tail_offset(&file, n)?,
            (_, Err(e)) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => 0,
        };
        Ok(())
    }

    /// Prints what was appended since the last call. In line mode, complete lines get the prefix and an
    /// unfinished last line waits for the rest, unless `last` (nothing more will come), when it is printed
    /// with a newline added. Otherwise bytes are passed through as they are.
    pub fn print_new(&mut self, out: &mut impl Write, last: bool) -> std::io::Result<()> {
        let mut data = Vec::new();
        match File::open(&self.path) {
            Ok(mut file) => {
                if file.metadata()?.len() < self.offset {
                    self.offset = 0; // truncated and rewritten: start over
                }
                file.seek(SeekFrom::Start(self.offset))?;
                file.read_to_end(&mut data)?;
                self.offset += data.len() as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if !self.lines {
            return out.write_all(&data);
        }
        self.partial.extend_from_slice(&data);
        let complete = match memchr::memrchr(b'\n', &self.partial) {
            Some(nl) => nl + 1,
            None => 0,
        };
        for line in self.partial[..complete].split_inclusive(|b| *b == b'\n') {
            out.write_all(&self.prefix)?;
            out.write_all(line)?;
        }
        self.partial.drain(..complete);
        if last && !self.partial.is_empty() {
            out.write_all(&self.prefix)?;
            out.write_all(&self.partial)?;
            out.write_all(b"\n")?;
            self.partial.clear();
        }
        Ok(())
    }
}

/// The byte offset where the last `n` lines of `file` start (a last line without a newline counts).
pub fn tail_offset(file: &File, n: u64) -> std::io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    if n == 0 || len == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] == b'\n' {
        end -= 1; // the final newline ends the last line; it does not start one
    }
    let mut found = 0;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        for i in memchr::memrchr_iter(b'\n', chunk) {
            found += 1;
            if found == n {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(text: &str, n: u64) -> String {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let at = tail_offset(f.as_file(), n).unwrap();
        text[at as usize..].to_string()
    }

    #[test]
    fn tail_finds_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\nc\n", 5), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 0), "");
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("\n\n", 1), "\n");
        let big: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&big, 3), "line 99997\nline 99998\nline 99999\n");
    }

    #[test]
    fn prefixed_lines_wait_for_their_newline_until_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        std::fs::write(&path, "one\ntw").unwrap();
        let mut source = Source::new(path.clone(), "x | ".into(), false);
        source.start(None).unwrap();
        let mut out = Vec::new();
        source.print_new(&mut out, false).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "x | one\n");
        std::fs::write(&path, "one\ntwo\nthr").unwrap();
        source.print_new(&mut out, true).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), "x | one\nx | two\nx | thr\n");
    }
}
