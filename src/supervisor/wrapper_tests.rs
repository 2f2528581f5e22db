//! Tests of the wrapper (`wrapper.rs`), kept apart: that file is also the whole of the `bdp-wrap` program,
//! which has no `crate::exit_file` to check against.

use super::wrapper::*;
use std::ffi::OsString;
use std::path::PathBuf;

#[test]
fn the_exit_record_is_what_the_reader_reads() {
    let cases = [
        (Some(0), None, None),
        (None, Some(15), None),
        (Some(127), None, Some("cannot run \"x\\y\": not found\n\u{1}é")),
    ];
    for (code, signal, error) in cases {
        let text = exit_json(code, signal, 42, error, 7);
        let record: crate::exit_file::ExitRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(
            record,
            crate::exit_file::ExitRecord {
                code,
                signal,
                duration_ms: 42,
                error: error.map(str::to_string),
                pid: Some(7)
            },
            "{text}"
        );
    }
}

#[test]
fn arguments_are_read_or_refused_saying_why() {
    let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
    let (dir, argv) = parse(args(&["--dir", "/d", "--", "agent", "--flag", "--dir"])).unwrap();
    assert_eq!((dir, argv), (PathBuf::from("/d"), args(&["agent", "--flag", "--dir"])));
    assert_eq!(parse(args(&["--dir", "/d", "--"])).unwrap_err(), "no agent after --");
    assert_eq!(parse(args(&["--", "a"])).unwrap_err(), "--dir DIR is missing");
    assert!(parse(args(&["--bogus"])).unwrap_err().starts_with("unexpected argument"));
}
