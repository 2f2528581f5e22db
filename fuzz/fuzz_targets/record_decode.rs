//! The log record decoder over arbitrary bytes: splitting a line, chaining it and decoding it never panic;
//! the fast decoder (`event::fast`) gives exactly what the general (serde) decoder gives; and a decoded
//! current-version record re-encodes to a line that decodes to the same record.
#![no_main]

use bdp::event::FORMAT_VERSION;
use bdp::event::record::{
    GENESIS, chain_next, decode_line, decode_split, decode_split_general, encode_record, split_line,
};
use libfuzzer_sys::fuzz_target;

/// A chain suffix for inputs without one (decoding does not check the chain value).
const SUFFIX: &[u8] = b",\"chain\":\"0000000000000000000000000000000000000000000000000000000000000000\"}";

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most inputs lack the 76-byte chain suffix: give them one, so the decoders see them as well.
    if split_line(data).is_err() {
        let mut line = data.to_vec();
        line.extend_from_slice(SUFFIX);
        check(&line);
    }
});

fn check(line: &[u8]) {
    let Ok(raw) = split_line(line) else {
        assert!(decode_line(line).is_err(), "a line split_line refuses decoded");
        return;
    };
    let _ = chain_next(&GENESIS, raw.body);
    let decoded = decode_split(line, raw.seq);
    assert_eq!(decoded, decode_split_general(line, raw.seq), "the fast decoder disagrees with the general one");
    assert_eq!(decoded, decode_line(line));
    let Ok(record) = decoded else { return };
    assert_eq!(record.seq, raw.seq);
    if record.v == FORMAT_VERSION {
        let mut out = Vec::new();
        encode_record(&record, &GENESIS, &mut out);
        let again = decode_line(&out[..out.len() - 1]);
        assert_eq!(again.as_ref(), Ok(&record), "re-encoded: {}", String::from_utf8_lossy(&out));
    }
}
