//! What a retry's prompt says about the attempt before it: how it ended, the end of its output (and of a
//! failed check's), the commits it made, and whether its work is kept or its branch conflicts with the
//! base. Read from the attempt's directory (`stdout`, `stderr`, `check/`, `work.txt`, written before a
//! reset) and, when the work is kept, from the branch itself. The words go into the prompt file only.

use std::path::Path;

use crate::git;
use crate::state::Claim;

use super::prompt::Previous;

/// Lines of each output shown, and the most characters of one line.
const TAIL_LINES: usize = 20;
const LINE_CHARS: usize = 300;

/// The commits and changed files of `workdir`'s branch since `base`, as the prompt shows them; `None`
/// when it has none (or git cannot say).
pub fn work_since(workdir: &Path, base: &str) -> Option<String> {
    let log = git::run(workdir, ["log", "--oneline", "--max-count=20", &format!("{base}..HEAD")]).ok()?;
    if log.trim().is_empty() {
        return None;
    }
    let stat = git::run(workdir, ["diff", "--stat", &format!("{base}...HEAD")]).unwrap_or_default();
    let stat: Vec<&str> = stat.lines().collect();
    let stat = stat[stat.len().saturating_sub(30)..].join("\n");
    Some(format!(
        "Its commits:\n\n```\n{}\n```\n\nThe files they change:\n\n```\n{}\n```\n",
        log.trim_end(),
        stat.trim_end()
    ))
}

/// Before a worktree is reset for a retry: what the attempt committed, kept in its directory for the
/// next attempt's prompt (the reset takes the commits away).
pub fn save_work(workdir: &Path, base: &str, attempt_dir: &Path) {
    if let Some(work) = work_since(workdir, base) {
        let _ = std::fs::create_dir_all(attempt_dir);
        let _ = std::fs::write(attempt_dir.join("work.txt"), work);
    }
}

/// What attempt `attempt`'s prompt says about the one before it, when it is a retry under `claim`.
pub fn previous(
    claim: &Claim,
    attempt: u32,
    attempt_dir: &dyn Fn(u32) -> std::path::PathBuf,
    workdir: &Path,
    base: &str,
) -> Option<Previous> {
    let retry = claim.retry.as_ref().filter(|r| r.next_attempt == attempt)?;
    let before = claim.attempt.as_ref()?;
    let carry = retry.carry_on.clone().unwrap_or_default();
    let dir = attempt_dir(before.number);
    let mut text = format!("How it ended: {}\n", retry.reason.trim());
    if before.check_passed == Some(false) {
        // The reason names the check's command and status.
        text.push_str(&outputs(&dir.join("check"), "The end of the check's"));
    }
    text.push_str(&outputs(&dir, "The end of the agent's"));
    let kept = carry.keep || carry.conflict.is_some() || carry.review.is_some();
    let work = if kept { work_since(workdir, base) } else { std::fs::read_to_string(dir.join("work.txt")).ok() };
    match work {
        Some(work) if kept => text.push_str(&format!("\n{work}")),
        Some(work) => text.push_str(&format!("\nWhat it had committed (discarded since):\n\n{work}")),
        None => text.push_str("\nIt made no commits.\n"),
    }
    Some(Previous { number: before.number, kept: carry.keep, conflict: carry.conflict, review: carry.review, text })
}

/// The last lines of `dir/stdout` and `dir/stderr`, each in a fenced block, headed `{what} output`.
fn outputs(dir: &Path, what: &str) -> String {
    let mut out = String::new();
    for name in ["stdout", "stderr"] {
        if let Some(tail) = tail(&dir.join(name)) {
            out.push_str(&format!("\n{what} {name}:\n\n```\n{tail}\n```\n"));
        }
    }
    out
}

/// The end of what a process that wrote `dir/stdout` and `dir/stderr` said, on one line: the last
/// `lines` lines of its stderr, else of its stdout, joined with ` | `.
pub fn tail_of(dir: &Path, lines: usize) -> Option<String> {
    let tail = tail(&dir.join("stderr")).or_else(|| tail(&dir.join("stdout")))?;
    let all: Vec<&str> = tail.lines().collect();
    Some(all[all.len().saturating_sub(lines)..].join(" | "))
}

/// The last [`TAIL_LINES`] non-blank lines of a file (read from its last 64 KiB), control characters
/// dropped, each line cut at [`LINE_CHARS`]; `None` when it is empty or missing.
fn tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(64 << 10))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_control() || *c == '\t').collect::<String>())
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.char_indices().nth(LINE_CHARS) {
            Some((cut, _)) => format!("{}…", &l[..cut]),
            None => l,
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    // Fences in the output would end the block early.
    Some(lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n").replace("```", "'''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_the_last_lines_clean_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        assert_eq!(tail(&path), None);
        let mut text: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        text.push_str(&format!("\x1b[31mred\x1b[0m ```fence``` {}\n\n", "x".repeat(400)));
        std::fs::write(&path, text).unwrap();
        let t = tail(&path).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 12");
        assert!(lines[19].starts_with("[31mred[0m '''fence''' xxx") && lines[19].ends_with('…'), "{}", lines[19]);
        assert_eq!(lines[19].chars().count(), LINE_CHARS + 1);
    }
}
