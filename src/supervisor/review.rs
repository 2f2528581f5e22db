//! The review gate (`--review CMD`, `--review-agent claude|codex`): runs the reviewer of an attempt's
//! work in its worktree, after the check and before the merge, and reads its verdict. The reviewer gets
//! the issue (the attempt's prompt file) and the diff against the base (a file bdp writes), and writes its
//! verdict to a file: a first line `approve` or `changes requested`, then its comments for the author.
//! Both files are under the worktree's `.bdp/` (kept out of git), where any agent CLI may write.

use std::path::{Path, PathBuf};

use crate::event::Verdict;
use crate::supervisor::template::{PRESET_INSTRUCTION, Preset};

/// The files of one review.
#[derive(Debug, Clone)]
pub struct ReviewFiles {
    pub diff: PathBuf,
    pub verdict: PathBuf,
}

impl ReviewFiles {
    /// Review `round` of `attempt`, in `workdir`.
    pub fn new(workdir: &Path, attempt: u32, round: u32) -> ReviewFiles {
        let dir = workdir.join(".bdp");
        ReviewFiles {
            diff: dir.join(format!("review-{attempt}-{round}.diff")),
            verdict: dir.join(format!("review-{attempt}-{round}.txt")),
        }
    }
}

/// What a preset reviewer is told (the paths are bdp's own, never issue text).
pub fn instruction(prompt_file: &str, base: &str, files: &ReviewFiles) -> String {
    format!(
        "Review a change. The task it was made for is described in {prompt_file}; the change is the diff \
         against {base} in {diff} (and the commits on this branch). Do not change the project's files. Write your \
         verdict to {verdict}: its first line `approve` or `changes requested`, then, for the author, what must \
         change and why.",
        diff = files.diff.display(),
        verdict = files.verdict.display()
    )
}

/// The argv of a preset reviewer: the preset's own, told to review instead of to do the task.
pub fn preset_argv(preset: Preset, instruction: &str) -> Vec<String> {
    with_instruction(&preset.template(), instruction)
}

/// A preset's argv (with whatever flags the user added) told `instruction` instead of its task: the
/// preset puts its instruction last.
pub fn with_instruction(template: &[String], instruction: &str) -> Vec<String> {
    let mut argv = template.to_vec();
    if let Some(last) = argv.last_mut() {
        debug_assert_eq!(last, PRESET_INSTRUCTION);
        *last = instruction.to_string();
    }
    argv
}

/// Reads a verdict file: its first non-blank line says the verdict, the rest are the comments.
pub fn parse(text: &str) -> Result<(Verdict, String), String> {
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let Some(first) = lines.next() else { return Err("the verdict file is empty".into()) };
    let word = first.trim().trim_start_matches(['#', '*', '`', ' ']).to_lowercase();
    let verdict = if word.starts_with("approve") {
        Verdict::Approve
    } else if word.starts_with("changes requested") || word.starts_with("request changes") {
        Verdict::ChangesRequested
    } else {
        return Err(format!(
            "its first line is {:?}, not `approve` or `changes requested`",
            crate::supervisor::progress::one_line(first, 80)
        ));
    };
    // Words after the verdict on its line are comments too.
    let rest_of_first = first.trim().split_once([':', '.', '—', '-']).map_or("", |(_, rest)| rest.trim());
    let mut comments: Vec<&str> = Vec::new();
    if !rest_of_first.is_empty() {
        comments.push(rest_of_first);
    }
    comments.extend(lines);
    Ok((verdict, comments.join("\n").trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_from_the_first_line() {
        assert_eq!(parse("approve\n"), Ok((Verdict::Approve, String::new())));
        assert_eq!(parse("\n  APPROVED: clean\nnice\n"), Ok((Verdict::Approve, "clean\nnice".into())));
        assert_eq!(
            parse("changes requested\n- name the flag\n- add a test\n"),
            Ok((Verdict::ChangesRequested, "- name the flag\n- add a test".into()))
        );
        assert_eq!(parse("**Request changes**\nx"), Ok((Verdict::ChangesRequested, "x".into())));
        assert_eq!(parse(""), Err("the verdict file is empty".into()));
        assert!(parse("looks fine to me").unwrap_err().contains("\"looks fine to me\", not `approve`"));
    }

    #[test]
    fn a_preset_reviewer_is_told_to_review_and_where_to_write() {
        let files = ReviewFiles::new(Path::new("/w"), 2, 1);
        let text = instruction("/r/p.md", "main", &files);
        let argv = preset_argv(Preset::Claude, &text);
        assert_eq!(argv.last().unwrap(), &text);
        assert!(text.contains("/w/.bdp/review-2-1.txt") && text.contains("/w/.bdp/review-2-1.diff"), "{text}");
        assert_eq!(argv[..argv.len() - 1], Preset::Claude.template()[..argv.len() - 1]);
    }
}
