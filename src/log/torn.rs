//! Telling an interrupted write from damage at the end of the log.
//!
//! A write appends whole lines, so a crash leaves a prefix of them: after the last newline there is at
//! most the beginning of a record (and, on some filesystems, zeros where blocks were never written). A
//! *whole* record there, one that continues the chain, followed by anything but zeros, cannot come from a
//! crash: the newline after it was overwritten. That is damage, reported by the record's seq; cutting it
//! as a torn tail would silently drop an acknowledged record.

use crate::event::ChainHash;
use crate::event::record::{MAX_RECORD_BYTES, SUFFIX_LEN, chain_next, split_line};

/// Where the chain suffix of a record starts: `,"chain":"`.
const CHAIN_OPEN: &[u8] = b",\"chain\":\"";

/// Whether `tail` (the bytes after the last newline of the log) starts with a whole record that is seq
/// `seq` and continues the chain from `prev`, followed by at least one byte that is not zero.
pub(crate) fn overwritten_newline(tail: &[u8], seq: u64, prev: &ChainHash) -> bool {
    let Some(last_nonzero) = tail.iter().rposition(|&b| b != 0) else { return false };
    let window = &tail[..tail.len().min(MAX_RECORD_BYTES + 1)];
    memchr::memmem::find_iter(window, CHAIN_OPEN).any(|at| {
        let end = at + SUFFIX_LEN;
        end <= last_nonzero
            && matches!(split_line(&tail[..end]), Ok(raw) if raw.seq == seq && chain_next(prev, raw.body) == raw.chain)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::record::{GENESIS, encode_record};
    use crate::event::{Event, FORMAT_VERSION, Record};

    fn line(seq: u64, prev: &ChainHash) -> Vec<u8> {
        let record = Record {
            seq,
            v: FORMAT_VERSION,
            ts: "t".into(),
            session: "s".into(),
            event: Event::LockReleased { lock: "l".into() },
        };
        let mut out = Vec::new();
        encode_record(&record, prev, &mut out);
        out.pop();
        out
    }

    #[test]
    fn a_whole_record_followed_by_a_stray_byte_is_an_overwritten_newline() {
        let record = line(1, &GENESIS);
        for stray in [b'\x0b', b'x', b'{'] {
            let mut tail = record.clone();
            tail.push(stray);
            assert!(overwritten_newline(&tail, 1, &GENESIS), "{stray}");
            tail.extend_from_slice(b"more");
            assert!(overwritten_newline(&tail, 1, &GENESIS), "{stray} and more");
        }
    }

    #[test]
    fn what_a_crash_can_leave_is_not() {
        let record = line(1, &GENESIS);
        // Any prefix of the record, the whole record without its newline, or zeros after it.
        for cut in 0..=record.len() {
            assert!(!overwritten_newline(&record[..cut], 1, &GENESIS), "cut at {cut}");
        }
        let mut zeros = record.clone();
        zeros.extend_from_slice(&[0; 9]);
        assert!(!overwritten_newline(&zeros, 1, &GENESIS));
        // A record that is not the next one, or does not continue the chain.
        let mut other = line(2, &GENESIS);
        other.push(b'x');
        assert!(!overwritten_newline(&other, 1, &GENESIS));
        let mut unchained = record;
        unchained.push(b'x');
        assert!(!overwritten_newline(&unchained, 1, &[7; 32]));
    }
}
