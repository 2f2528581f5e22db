//! Bad input on disk: every kind of damage gets a clear message naming the place, never a panic.
//! `bdp verify` exits 1 for damage (naming the first bad seq) and 2 for errors (no log, unreadable).

use crate::common;

use std::path::Path;

use bdp::event::record::{chain_hex, chain_next, split_line};

/// A small valid log (the normal fixture) in a temp dir.
fn normal() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::build_normal(tmp.path());
    tmp
}

fn lines(root: &Path) -> Vec<Vec<u8>> {
    std::fs::read(common::segment(root))
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(root: &Path, lines: &[Vec<u8>]) {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    std::fs::write(common::segment(root), out).unwrap();
}

/// Re-seals lines from `from` on so that their chain values are right again (damage that is not a
/// broken chain: the record's content itself is bad).
fn reseal(lines: &mut [Vec<u8>], from: usize) {
    let mut chain = if from == 0 { [0; 32] } else { split_line(&lines[from - 1]).unwrap().chain };
    for line in lines.iter_mut().skip(from) {
        let body_len = line.len() - 76;
        let body = line[..body_len].to_vec();
        chain = chain_next(&chain, &body);
        let mut sealed = body;
        sealed.extend_from_slice(format!(",\"chain\":\"{}\"}}", chain_hex(&chain)).as_bytes());
        *line = sealed;
    }
}

fn verify(root: &Path) -> String {
    let out = common::bdp(root).arg("verify").output().unwrap();
    let text = format!(
        "{}{}--- exit {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code().unwrap_or(-1)
    );
    text.replace(&root.display().to_string(), "[REPO]")
}

#[test]
fn no_log_at_all_is_an_error_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn an_empty_log_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join(".bdp/events")).unwrap();
    std::fs::write(common::segment(tmp.path()), b"").unwrap();
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn non_utf8_bytes_in_a_record_name_its_seq() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    let at = l[6].windows(7).position(|w| w == b"sandbox").unwrap_or(40);
    l[6][at] = 0xff;
    reseal(&mut l, 6);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn a_ten_megabyte_line_is_refused_by_size() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    let mut huge = br#"{"seq":55,"v":2,"ts":"t","session":"s","event":{"type":"session_ended","reason":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10 << 20));
    huge.extend_from_slice(br#""},"chain":"0000000000000000000000000000000000000000000000000000000000000000"}"#);
    l.push(huge);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn an_unknown_event_type_is_named() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    let text =
        String::from_utf8(l[9].clone()).unwrap().replacen("\"type\":\"phase_changed\"", "\"type\":\"teleported\"", 1);
    l[9] = text.into_bytes();
    reseal(&mut l, 9);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn a_seq_gap_names_the_missing_seq() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    l.remove(20);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn a_duplicated_record_is_reported() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    let copy = l[11].clone();
    l.insert(12, copy);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn swapped_records_are_reported() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    l.swap(30, 31);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn an_impossible_transition_with_a_valid_chain_is_reported() {
    let tmp = normal();
    let mut l = lines(tmp.path());
    // Drop seq 2 (the claim of bd-a1) and renumber: the chain is valid, the fold is not.
    l.remove(1);
    for (i, line) in l.iter_mut().enumerate().skip(1) {
        let text = String::from_utf8(line.clone()).unwrap();
        let rest = &text[text.find(',').unwrap()..];
        *line = format!("{{\"seq\":{}{rest}", i + 1).into_bytes();
    }
    reseal(&mut l, 1);
    write_lines(tmp.path(), &l);
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn a_missing_segment_is_named() {
    let tmp = normal();
    let events = tmp.path().join(".bdp/events");
    std::fs::rename(events.join("000001.jsonl"), events.join("000002.jsonl")).unwrap();
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn an_unreadable_log_is_an_error_naming_the_path() {
    let tmp = normal();
    let segment = common::segment(tmp.path());
    std::fs::remove_file(&segment).unwrap();
    std::fs::create_dir(&segment).unwrap();
    insta::assert_snapshot!(verify(tmp.path()));
}

#[test]
fn a_bdp_dir_without_permission_is_an_error() {
    if rustix::process::geteuid().is_root() {
        eprintln!("notice: running as root, permissions are not enforced; skipping the chmod case");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = normal();
    let bdp = tmp.path().join(".bdp");
    std::fs::set_permissions(&bdp, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = verify(tmp.path());
    std::fs::set_permissions(&bdp, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(out.contains("exit 2") && out.contains("permission"), "{out}");
}
