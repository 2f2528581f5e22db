//! The one check that a line continues the log: it is a record, its seq is the next one, and its chain value
//! follows from the record before it. The walker (verify, replay, recovery) and the writer (reading what
//! other processes appended) both use it, so they cannot disagree about what a damaged log is.

use crate::event::record::{ChainHash, RawLine, chain_next, split_line};

use super::error::Problem;

/// `line` (without its newline) as the record `expected_seq`, chained after `prev`: its parts and its chain
/// value. The problem is reported at `expected_seq`, the seq the line stands in place of.
#[inline]
pub(crate) fn next_link<'a>(
    line: &'a [u8],
    expected_seq: u64,
    prev: &ChainHash,
) -> Result<(RawLine<'a>, ChainHash), Problem> {
    let raw = split_line(line).map_err(Problem::Decode)?;
    if raw.seq != expected_seq {
        return Err(Problem::SeqOutOfOrder { expected: expected_seq, found: raw.seq });
    }
    let chain = chain_next(prev, raw.body);
    if chain != raw.chain {
        return Err(Problem::ChainMismatch);
    }
    Ok((raw, chain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::record::{GENESIS, encode_record};
    use crate::event::{Event, FORMAT_VERSION, Record};

    fn line(seq: u64, prev: &ChainHash) -> (Vec<u8>, ChainHash) {
        let record = Record {
            seq,
            v: FORMAT_VERSION,
            ts: "2026-12-02T00:00:00.000Z".into(),
            session: "s".into(),
            event: Event::LockReleased { lock: "l".into() },
        };
        let mut buf = Vec::new();
        let chain = encode_record(&record, prev, &mut buf);
        assert_eq!(buf.pop(), Some(b'\n'));
        (buf, chain)
    }

    #[test]
    fn a_line_continues_the_log_only_with_the_next_seq_and_the_right_chain() {
        let (first, c1) = line(1, &GENESIS);
        let (second, c2) = line(2, &c1);
        assert_eq!(next_link(&first, 1, &GENESIS).map(|(raw, c)| (raw.seq, c)), Ok((1, c1)));
        assert_eq!(next_link(&second, 2, &c1).map(|(_, c)| c), Ok(c2));
        assert_eq!(next_link(&second, 3, &c1).map(|_| ()), Err(Problem::SeqOutOfOrder { expected: 3, found: 2 }));
        assert_eq!(next_link(&second, 2, &GENESIS).map(|_| ()), Err(Problem::ChainMismatch));
        assert!(matches!(next_link(b"not a record", 1, &GENESIS), Err(Problem::Decode(_))));
    }
}
