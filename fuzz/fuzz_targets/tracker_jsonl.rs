//! The beads JSONL reader (`tracker::jsonl`) over arbitrary bytes: parsing never panics; a file it accepts
//! is written back byte for byte; and the edits the tracker makes (claim, close) succeed on every issue it
//! accepted, change exactly those fields, and leave a file that parses again to the same edited issues.
#![no_main]

use std::path::Path;

use bdp::tracker::jsonl::JsonlFile;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("issues.jsonl");
    let Ok(mut file) = JsonlFile::parse(path, data) else { return };
    assert_eq!(file.to_bytes(), data, "not written back byte for byte");
    let ids: Vec<String> = file.issues.iter().map(|i| i.id.clone()).collect();
    for (n, id) in ids.iter().enumerate().take(3) {
        let edits: Vec<(&str, Option<Value>)> = if n % 2 == 0 {
            vec![("status", Some(json!("in_progress"))), ("assignee", Some(json!("fuzz"))), ("labels", None)]
        } else {
            vec![("status", Some(json!("closed"))), ("close_reason", Some(json!("done \"x\"\n"))), ("assignee", None)]
        };
        if let Err(e) = file.edit(id, &edits) {
            panic!("editing {id} failed: {e}");
        }
        let issue = file.issue(id).expect("the edited issue is still there");
        let (status, assignee) = if n % 2 == 0 { ("in_progress", Some("fuzz")) } else { ("closed", None) };
        assert_eq!(issue.status, status, "{id}");
        assert_eq!(issue.assignee.as_deref(), assignee, "{id}");
    }
    let bytes = file.to_bytes();
    let again = match JsonlFile::parse(path, &bytes) {
        Ok(again) => again,
        Err(e) => panic!("the edited file does not parse: {e}\n{}", String::from_utf8_lossy(&bytes)),
    };
    assert_eq!(again.issues, file.issues, "the edited file reads back differently");
});
