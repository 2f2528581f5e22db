//! The record envelope around an event, its exact bytes on disk, and the blake3 hash chain.
//!
//! A record is one line of JSON, written with its fields in this fixed order:
//!
//! ```text
//! {"seq":7,"v":2,"ts":"2026-11-25T06:01:22.123Z","session":"s-…","event":{…},"chain":"<64 hex>"}\n
//! ```
//!
//! The *body* of a record is every byte of the line from the opening `{` up to, not including, the
//! 76-byte suffix `,"chain":"<64 lowercase hex>"}`. The chain value of record `n` is
//! `blake3(chain[n-1] ‖ body[n])`, where `chain[n-1]` is the previous record's 32 raw hash bytes and
//! `chain[0]` (before the first record) is 32 zero bytes. Because every link covers the previous one,
//! an edited, reordered, dropped or inserted record breaks the chain at that record's seq.
//! Verifying needs no JSON parsing: split off the suffix, hash the body, compare.
//!
//! Pure code: no I/O.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Event, FORMAT_VERSION, OLDEST_READABLE_VERSION, upcast};

/// 32 raw bytes of a blake3 hash.
pub type ChainHash = [u8; 32];

/// The chain value before the first record.
pub const GENESIS: ChainHash = [0; 32];

/// The largest record bdp writes or reads. Events are small; a huge line is damage, not data.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

const CHAIN_OPEN: &[u8] = b",\"chain\":\"";
const CHAIN_CLOSE: &[u8] = b"\"}";
const SEQ_OPEN: &[u8] = b"{\"seq\":";
/// Length of `,"chain":"<64 hex>"}`.
pub const SUFFIX_LEN: usize = CHAIN_OPEN.len() + 64 + CHAIN_CLOSE.len();

/// One decoded log record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    pub seq: u64,
    /// The format version the record was written with (the event is already upcast to the current one).
    pub v: u32,
    /// RFC 3339 UTC timestamp with milliseconds, as the writer's clock said.
    pub ts: String,
    pub session: String,
    pub event: Event,
}

/// Why a line is not a valid record. Positions are added by the caller, which knows the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the line is not valid UTF-8 (first bad byte at column {column})")]
    NotUtf8 { column: usize },
    #[error("the line is {len} bytes, larger than the {max}-byte limit of a record")]
    TooLong { len: usize, max: usize },
    #[error("the line is not a bdp record: {0}")]
    NotARecord(&'static str),
    #[error("the record is not valid JSON: {0}")]
    BadJson(String),
    #[error("format version {found} is not readable by this bdp (it reads {oldest} to {newest})")]
    UnknownVersion { found: u32, oldest: u32, newest: u32 },
    #[error("unknown event type `{kind}` (written by a newer bdp?)")]
    UnknownEventType { kind: String },
    #[error("event `{kind}` has the wrong shape: {message}")]
    BadEvent { kind: String, message: String },
    #[error("the envelope says seq {envelope} but the line starts with seq {prefix}")]
    SeqMismatch { prefix: u64, envelope: u64 },
}

/// Computes the next chain value.
pub fn chain_next(prev: &ChainHash, body: &[u8]) -> ChainHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev);
    hasher.update(body);
    *hasher.finalize().as_bytes()
}

/// Hex form of a chain value, as written in the log.
pub fn chain_hex(hash: &ChainHash) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

/// Value of each byte as a lowercase hex digit, or `INVALID`.
const HEX: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xff;

/// Parses a 64-character lowercase hex chain value.
pub fn parse_chain_hex(hex: &[u8]) -> Option<ChainHash> {
    let hex: &[u8; 64] = hex.try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        // Valid digits are < 16, so INVALID's high bit marks any bad digit.
        bad |= hi | lo;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// Appends the record's line (with its trailing newline) to `out` and returns its chain value.
pub fn encode_record(record: &Record, prev: &ChainHash, out: &mut Vec<u8>) -> ChainHash {
    let start = out.len();
    out.extend_from_slice(SEQ_OPEN);
    out.extend_from_slice(record.seq.to_string().as_bytes());
    out.extend_from_slice(b",\"v\":");
    out.extend_from_slice(record.v.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":");
    serde_json::to_writer(&mut *out, &record.ts).expect("writing JSON to a Vec cannot fail");
    out.extend_from_slice(b",\"session\":");
    serde_json::to_writer(&mut *out, &record.session).expect("writing JSON to a Vec cannot fail");
    out.extend_from_slice(b",\"event\":");
    serde_json::to_writer(&mut *out, &record.event).expect("writing JSON to a Vec cannot fail");
    let chain = chain_next(prev, &out[start..]);
    out.extend_from_slice(CHAIN_OPEN);
    out.extend_from_slice(chain_hex(&chain).as_bytes());
    out.extend_from_slice(CHAIN_CLOSE);
    out.push(b'\n');
    chain
}

/// A line split into its parts without parsing the JSON: enough to verify the chain.
#[derive(Debug, Clone, Copy)]
pub struct RawLine<'a> {
    pub seq: u64,
    pub body: &'a [u8],
    pub chain: ChainHash,
}

/// Splits a line (without its newline) into seq, body and stored chain value.
pub fn split_line(line: &[u8]) -> Result<RawLine<'_>, DecodeError> {
    if line.len() > MAX_RECORD_BYTES {
        return Err(DecodeError::TooLong { len: line.len(), max: MAX_RECORD_BYTES });
    }
    let rest = line.strip_prefix(SEQ_OPEN).ok_or(DecodeError::NotARecord("it does not start with {\"seq\":"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || rest.get(digits) != Some(&b',') {
        return Err(DecodeError::NotARecord("its seq is not a number"));
    }
    let seq: u64 = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(DecodeError::NotARecord("its seq is not a number"))?;
    if line.len() < SEQ_OPEN.len() + digits + SUFFIX_LEN {
        return Err(DecodeError::NotARecord("it is too short to hold a chain value"));
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let hex = suffix
        .strip_prefix(CHAIN_OPEN)
        .and_then(|s| s.strip_suffix(CHAIN_CLOSE))
        .ok_or(DecodeError::NotARecord("it does not end with ,\"chain\":\"<hash>\"}"))?;
    let chain =
        parse_chain_hex(hex).ok_or(DecodeError::NotARecord("its chain value is not 64 lowercase hex digits"))?;
    Ok(RawLine { seq, body, chain })
}

#[derive(Deserialize)]
struct Wire<'a> {
    seq: u64,
    v: u32,
    ts: String,
    session: String,
    #[serde(borrow)]
    event: &'a RawValue,
    #[allow(dead_code)]
    chain: &'a str,
}

/// Fully decodes a line (without its newline): JSON, version, event shape; upcasts older versions.
/// Does not check the chain (see [`split_line`] and [`chain_next`]). Lines in the layout bdp writes take a
/// faster path (`event::fast`) with the same results.
pub fn decode_line(line: &[u8]) -> Result<Record, DecodeError> {
    let raw = split_line(line)?;
    decode_split(line, raw.seq)
}

/// [`decode_line`] for a line that [`split_line`] accepted and found `seq` in (a walk has just split it to
/// check the chain; this saves doing it twice).
pub fn decode_split(line: &[u8], seq: u64) -> Result<Record, DecodeError> {
    let text = utf8(line)?;
    if let Some(record) = super::fast::decode_canonical(text, seq) {
        return Ok(record);
    }
    decode_general(text, seq)
}

/// [`decode_split`] without the fast path: what the general decoder alone says. The fast path must give
/// the same for every line it accepts (its tests, and the `record_decode` fuzz target, check).
#[doc(hidden)]
pub fn decode_split_general(line: &[u8], seq: u64) -> Result<Record, DecodeError> {
    decode_general(utf8(line)?, seq)
}

fn utf8(line: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(line).map_err(|e| DecodeError::NotUtf8 { column: e.valid_up_to() + 1 })
}

fn decode_general(text: &str, seq: u64) -> Result<Record, DecodeError> {
    let wire: Wire<'_> = serde_json::from_str(text).map_err(|e| DecodeError::BadJson(e.to_string()))?;
    if wire.seq != seq {
        return Err(DecodeError::SeqMismatch { prefix: seq, envelope: wire.seq });
    }
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&wire.v) {
        return Err(DecodeError::UnknownVersion {
            found: wire.v,
            oldest: OLDEST_READABLE_VERSION,
            newest: FORMAT_VERSION,
        });
    }
    let event = if wire.v == FORMAT_VERSION {
        decode_event(wire.event.get())?
    } else {
        let value: serde_json::Value =
            serde_json::from_str(wire.event.get()).map_err(|e| DecodeError::BadJson(e.to_string()))?;
        let value = upcast::upcast(wire.v, value)?;
        event_from_value(value)?
    };
    Ok(Record { seq: wire.seq, v: wire.v, ts: wire.ts, session: wire.session, event })
}

fn decode_event(json: &str) -> Result<Event, DecodeError> {
    match serde_json::from_str::<Event>(json) {
        Ok(event) => Ok(event),
        Err(err) => {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| DecodeError::BadJson(e.to_string()))?;
            Err(explain_bad_event(&value, err))
        }
    }
}

fn event_from_value(value: serde_json::Value) -> Result<Event, DecodeError> {
    match Event::deserialize(&value) {
        Ok(event) => Ok(event),
        Err(err) => Err(explain_bad_event(&value, err)),
    }
}

fn explain_bad_event(value: &serde_json::Value, err: serde_json::Error) -> DecodeError {
    match value.get("type").and_then(|t| t.as_str()) {
        None => DecodeError::BadEvent { kind: "?".into(), message: "the event has no string `type` field".into() },
        Some(kind) if !Event::KINDS.contains(&kind) => DecodeError::UnknownEventType { kind: kind.to_string() },
        Some(kind) => DecodeError::BadEvent { kind: kind.to_string(), message: err.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SessionEndReason;

    fn sample(seq: u64) -> Record {
        Record {
            seq,
            v: FORMAT_VERSION,
            ts: "2026-11-25T06:00:00.000Z".into(),
            session: "s-1".into(),
            event: Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] },
        }
    }

    #[test]
    fn encode_then_decode_round_trips_and_the_chain_covers_the_body() {
        let mut out = Vec::new();
        let chain = encode_record(&sample(7), &GENESIS, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let line = &out[..out.len() - 1];
        let raw = split_line(line).unwrap();
        assert_eq!(raw.seq, 7);
        assert_eq!(raw.chain, chain);
        assert_eq!(chain_next(&GENESIS, raw.body), chain);
        assert_eq!(decode_line(line).unwrap(), sample(7));
        // The chain depends on the previous value.
        assert_ne!(chain_next(&[1; 32], raw.body), chain);
    }

    #[test]
    fn a_line_with_a_foreign_shape_is_named_as_such() {
        assert!(matches!(split_line(b"hello"), Err(DecodeError::NotARecord(_))));
        assert!(matches!(split_line(b"{\"seq\":x,"), Err(DecodeError::NotARecord(_))));
        let mut out = Vec::new();
        encode_record(&sample(1), &GENESIS, &mut out);
        let mut line = out[..out.len() - 1].to_vec();
        let n = line.len();
        line[n - 5] = b'Z';
        assert!(matches!(split_line(&line), Err(DecodeError::NotARecord(_))));
    }

    #[test]
    fn unknown_event_types_and_versions_are_reported_by_name() {
        let prefix = br#"{"seq":1,"v":2,"ts":"t","session":"s","event":{"type":"teleported","to":"mars"}"#;
        let mut line = prefix.to_vec();
        let chain = chain_next(&GENESIS, &line);
        line.extend_from_slice(format!(",\"chain\":\"{}\"}}", chain_hex(&chain)).as_bytes());
        assert_eq!(decode_line(&line), Err(DecodeError::UnknownEventType { kind: "teleported".into() }));

        let prefix = br#"{"seq":1,"v":9,"ts":"t","session":"s","event":{"type":"session_ended","reason":"completed"}"#;
        let mut line = prefix.to_vec();
        line.extend_from_slice(format!(",\"chain\":\"{}\"}}", chain_hex(&GENESIS)).as_bytes());
        assert!(matches!(decode_line(&line), Err(DecodeError::UnknownVersion { found: 9, .. })));
    }
}
