//! `.bdp/index.sqlite`: checkpoints of the folded state, and a per-issue index of event seqs.
//!
//! A checkpoint is a row of `checkpoint_heads` (where it was taken, the format and count of its rows, and
//! the state without its issues: the head) and its issues in parts in `checkpoint_rows`
//! ([`checkpoint_parts`]). The `checkpoints` table of earlier versions held the whole state in one JSON
//! text; the writer drops it (and the tables of the first parted format), and a version that reads only
//! that table finds none of these, so it never takes a head for a whole state.
//!
//! It is a cache. Every row says which record (seq and chain value) it was derived from, and is used only
//! after the log is seen to hold that very record; otherwise it is ignored (and rebuilt). Deleting the
//! file changes no answer, only speed.
//!
//! Only `bdp run` (and `audit --fix`) write it, through [`Index::open`]. Read commands use
//! [`Index::open_read_only`], which never creates, converts or changes a byte of it. The file uses a
//! rollback journal, not WAL, so that a read-only reader needs no `-shm` file: a WAL-mode file (written by
//! an older bdp) is converted by the next writer, and skipped by readers until then.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::event::ChainHash;
use crate::state::State;

use super::checkpoint_parts;
use super::error::LogError;

/// Keep this many checkpoints; older ones are deleted.
const KEEP_CHECKPOINTS: i64 = 3;

/// Where a checkpoint's record is and what it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMeta {
    pub seq: u64,
    pub chain: ChainHash,
    pub segment: u32,
    pub offset: u64,
    pub len: u64,
}

pub struct Index {
    conn: Connection,
    path: PathBuf,
}

impl Index {
    /// Opens (creating) the index.
    pub fn open(path: &Path) -> Result<Index, LogError> {
        let err = |e: rusqlite::Error| LogError::Index { path: path.to_path_buf(), message: e.to_string() };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = NORMAL;
             DROP TABLE IF EXISTS checkpoints;
             DROP TABLE IF EXISTS state_checkpoints;
             DROP TABLE IF EXISTS state_checkpoint_issues;
             CREATE TABLE IF NOT EXISTS checkpoint_heads (
                 seq INTEGER PRIMARY KEY,
                 chain BLOB NOT NULL,
                 segment INTEGER NOT NULL,
                 offset INTEGER NOT NULL,
                 len INTEGER NOT NULL,
                 format INTEGER NOT NULL,
                 issues INTEGER NOT NULL,
                 parts INTEGER NOT NULL,
                 head TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS checkpoint_rows (
                 seq INTEGER NOT NULL,
                 part INTEGER NOT NULL,
                 rows BLOB NOT NULL,
                 PRIMARY KEY (seq, part)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS issue_events (
                 issue TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 PRIMARY KEY (issue, seq)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS indexed (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 seq INTEGER NOT NULL,
                 chain BLOB NOT NULL,
                 segment INTEGER NOT NULL,
                 offset INTEGER NOT NULL,
                 len INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        // A checkpoint spans thousands of overflow pages: mapped, they are read without a pread each.
        conn.pragma_update(None, "mmap_size", 256i64 << 20).map_err(err)?;
        Ok(Index { conn, path: path.to_path_buf() })
    }

    /// Opens the index to read it, or `None` when there is none (or it is in WAL mode, which a read-only
    /// reader cannot open without creating files). Never writes anything.
    pub fn open_read_only(path: &Path) -> Result<Option<Index>, LogError> {
        use rusqlite::OpenFlags;
        let err = |e: rusqlite::Error| LogError::Index { path: path.to_path_buf(), message: e.to_string() };
        let mut header = [0u8; 20];
        match std::fs::File::open(path) {
            Ok(file) => {
                use std::os::unix::fs::FileExt;
                if file.read_exact_at(&mut header, 0).is_err() {
                    return Ok(None);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LogError::Index { path: path.to_path_buf(), message: e.to_string() }),
        }
        // Bytes 18 and 19 of an SQLite header: 2 means WAL.
        if header[18] == 2 || header[19] == 2 {
            tracing::info!("{} is in WAL mode (an older bdp wrote it); reading the log without it", path.display());
            return Ok(None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        // As in `open`.
        conn.pragma_update(None, "mmap_size", 256i64 << 20).map_err(err)?;
        Ok(Some(Index { conn, path: path.to_path_buf() }))
    }

    fn err(&self, e: impl std::fmt::Display) -> LogError {
        LogError::Index { path: self.path.clone(), message: e.to_string() }
    }

    /// Checkpoints, newest first.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointMeta>, LogError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, chain, segment, offset, len FROM checkpoint_heads ORDER BY seq DESC")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, chain, segment, offset, len) = row.map_err(|e| self.err(e))?;
            let Ok(chain) = <ChainHash>::try_from(chain.as_slice()) else { continue };
            out.push(CheckpointMeta { seq: seq as u64, chain, segment, offset: offset as u64, len: len as u64 });
        }
        Ok(out)
    }

    /// The state stored with the checkpoint at `seq`: its head, and its issues from the parts, decoded in
    /// parallel. A checkpoint of another row format, or whose parts or issues are not all there, is refused.
    pub fn checkpoint_state(&self, seq: u64) -> Result<Option<State>, LogError> {
        let head = self
            .conn
            .query_row(
                "SELECT format, issues, parts, head FROM checkpoint_heads WHERE seq = ?1",
                params![seq as i64],
                |row| {
                    let counts = (row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?);
                    // Parsed straight from SQLite's copy of the bytes.
                    Ok((counts, serde_json::from_slice::<State>(row.get_ref(3)?.as_bytes()?)))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let ((format, issues, parts), mut state) = match head {
            None => return Ok(None),
            Some((counts, state)) => (counts, state.map_err(|e| self.err(format!("checkpoint {seq}: {e}")))?),
        };
        if format != checkpoint_parts::FORMAT {
            return Err(self.err(format!(
                "checkpoint {seq}: rows of format {format}, this bdp reads {}",
                checkpoint_parts::FORMAT
            )));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT rows FROM checkpoint_rows WHERE seq = ?1 ORDER BY part")
            .map_err(|e| self.err(e))?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map(params![seq as i64], |row| Ok(row.get_ref(0)?.as_blob()?.to_vec()))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        if rows.len() as i64 != parts {
            return Err(self.err(format!("checkpoint {seq}: {} of its {parts} parts are there", rows.len())));
        }
        let mut all = checkpoint_parts::parse(&rows).map_err(|e| self.err(format!("checkpoint {seq}: {e}")))?;
        if all.len() as i64 != issues {
            return Err(self.err(format!("checkpoint {seq}: {} of its {issues} issues are there", all.len())));
        }
        all.append(&mut state.issues);
        state.issues = all;
        Ok(Some(state))
    }

    /// Stores a checkpoint and drops all but the newest few. The issues go in parts of their own (to be
    /// decoded in parallel); the rest of the state is the head. `state` is as it was when this returns.
    pub fn save_checkpoint(&self, meta: &CheckpointMeta, state: &mut State) -> Result<(), LogError> {
        let issues = std::mem::take(&mut state.issues);
        let head = serde_json::to_string(&*state);
        let parts = checkpoint_parts::split(&issues);
        let count = issues.len() as i64;
        state.issues = issues;
        let head = head.map_err(|e| self.err(e))?;
        let parts = parts.map_err(|e| self.err(e))?;
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO checkpoint_heads (seq, chain, segment, offset, len, format, issues, parts, head)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                meta.seq as i64,
                &meta.chain[..],
                meta.segment,
                meta.offset as i64,
                meta.len as i64,
                checkpoint_parts::FORMAT,
                count,
                parts.len() as i64,
                head
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM checkpoint_rows WHERE seq = ?1", params![meta.seq as i64]).map_err(|e| self.err(e))?;
        for (n, part) in parts.iter().enumerate() {
            tx.execute(
                "INSERT INTO checkpoint_rows (seq, part, rows) VALUES (?1, ?2, ?3)",
                params![meta.seq as i64, n as i64, part],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute(
            "DELETE FROM checkpoint_heads WHERE seq NOT IN (SELECT seq FROM checkpoint_heads ORDER BY seq DESC LIMIT ?1)",
            params![KEEP_CHECKPOINTS],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM checkpoint_rows WHERE seq NOT IN (SELECT seq FROM checkpoint_heads)", [])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes the checkpoint at `seq` (a cache entry: nothing is lost).
    pub fn drop_checkpoint(&self, seq: u64) -> Result<(), LogError> {
        self.conn
            .execute("DELETE FROM checkpoint_heads WHERE seq = ?1", params![seq as i64])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute("DELETE FROM checkpoint_rows WHERE seq = ?1", params![seq as i64])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The record the issue index was built up to, if any.
    pub fn indexed_upto(&self) -> Result<Option<CheckpointMeta>, LogError> {
        self.conn
            .query_row("SELECT seq, chain, segment, offset, len FROM indexed WHERE id = 1", [], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .optional()
            .map_err(|e| self.err(e))
            .map(|row| {
                row.and_then(|(seq, chain, segment, offset, len)| {
                    let chain = <ChainHash>::try_from(chain.as_slice()).ok()?;
                    Some(CheckpointMeta { seq: seq as u64, chain, segment, offset: offset as u64, len: len as u64 })
                })
            })
    }

    /// Adds (issue, seq) rows and moves the high-water mark, in one transaction.
    pub fn add_issue_events(&mut self, rows: &[(String, u64)], upto: &CheckpointMeta) -> Result<(), LogError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| LogError::Index { path: path.clone(), message: e.to_string() };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt =
                tx.prepare("INSERT OR IGNORE INTO issue_events (issue, seq) VALUES (?1, ?2)").map_err(err)?;
            for (issue, seq) in rows {
                stmt.execute(params![issue, *seq as i64]).map_err(err)?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO indexed (id, seq, chain, segment, offset, len) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
            params![upto.seq as i64, &upto.chain[..], upto.segment, upto.offset as i64, upto.len as i64],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Forgets the issue index (the log no longer matches it).
    pub fn clear_issue_events(&self) -> Result<(), LogError> {
        self.conn.execute_batch("DELETE FROM issue_events; DELETE FROM indexed;").map_err(|e| self.err(e))
    }

    /// Seqs of the events about `issue`, ascending.
    pub fn issue_seqs(&self, issue: &str) -> Result<Vec<u64>, LogError> {
        let mut stmt =
            self.conn.prepare("SELECT seq FROM issue_events WHERE issue = ?1 ORDER BY seq").map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![issue], |row| row.get::<_, i64>(0)).map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|s| s as u64).map_err(|e| self.err(e))).collect()
    }
}
