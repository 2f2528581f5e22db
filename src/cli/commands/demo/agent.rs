//! `bdp __demo-agent ID ATTEMPT PROMPT_FILE`: the scripted agent of `bdp demo` (hidden).
//!
//! It plays a coding agent in its working directory (the issue's worktree): reads the prompt, "works" for
//! the issue's scripted time while printing what it does, appends its line to its file, and commits it
//! with git (argv, never a shell). The flaky issue fails its first attempt. It only ever touches the
//! directory it runs in.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::scenario::{self, FLAKY};

#[derive(Debug, clap::Args)]
pub struct DemoAgentArgs {
    /// The issue id (`{id}`).
    pub id: String,
    /// The attempt number (`{attempt}`).
    pub attempt: u32,
    /// The prompt file bdp wrote (`{prompt_file}`).
    pub prompt_file: std::path::PathBuf,
    /// The run has agents enough for the conflicting pair to work at once (2 or more): each of the pair
    /// waits for the other at its planted point, so the conflict happens however slow the machine is.
    #[arg(long)]
    pub together: bool,
}

/// Runs the scripted agent; returns its exit code.
pub fn run(args: &DemoAgentArgs) -> u8 {
    match work(args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("{message}");
            1
        }
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn work(args: &DemoAgentArgs) -> Result<(), String> {
    let issue =
        scenario::find(&args.id).ok_or_else(|| format!("error: {} is not one of the demo's issues", args.id))?;
    let prompt = std::fs::read_to_string(&args.prompt_file)
        .map_err(|e| format!("error: cannot read the prompt {}: {e}", args.prompt_file.display()))?;
    say(&format!("read the prompt ({} lines): {}", prompt.lines().count(), issue.title));
    if prompt.contains("but it conflicts with main") {
        return resolve(issue);
    }
    let steps = ["reading the code around it", "writing the change", "running the tests"];
    let step_ms = issue.work_ms / steps.len() as u64;
    for (n, step) in steps.iter().enumerate() {
        say(&format!("step {}/{}: {step}", n + 1, steps.len()));
        std::thread::sleep(Duration::from_millis(step_ms));
        if issue.id == FLAKY && args.attempt == 1 && n == 1 {
            return Err("error: test flags::jobs_takes_a_number failed: `--jobs four` was accepted \
                        (the demo fails this first attempt on purpose; bdp retries it)"
                .to_string());
        }
    }
    if args.together {
        wait_for_the_other_of_the_pair(issue);
    }
    let path = Path::new(issue.file);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("error: cannot create {}: {e}", dir.display()))?;
    }
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    text.push_str(issue.line);
    text.push('\n');
    std::fs::write(path, text).map_err(|e| format!("error: cannot write {}: {e}", path.display()))?;
    git(&["add", "--", issue.file])?;
    let message = format!("{}: {}", issue.id, issue.title);
    git(&[
        "-c",
        "user.name=bdp demo agent",
        "-c",
        "user.email=agent@demo.invalid",
        "-c",
        "commit.gpgsign=false",
        "commit",
        "-q",
        "--no-verify",
        "-m",
        &message,
    ])?;
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    say(&format!("committed {} ({})", head.trim(), issue.file));
    Ok(())
}

/// The longest either of the conflicting pair waits for the other: a demo must never hang.
const PAIR_WAIT: Duration = Duration::from_secs(30);

/// The planted conflict by events, not by timing alone: the first of the pair commits only once the
/// second has its branch (made off main before the first is merged), and the second commits only once
/// the first is on main. On a fast machine the script's times already do this and neither waits.
fn wait_for_the_other_of_the_pair(issue: &scenario::DemoIssue) {
    let (first, second) = scenario::CONFLICT_PAIR;
    let (ready, waiting): (Box<dyn Fn() -> bool>, &str) = if issue.id == first {
        let branch = format!("refs/heads/{}", crate::repo::branch_name(second));
        (
            Box::new(move || git(&["rev-parse", "--verify", "--quiet", &branch]).is_ok()),
            "waiting for the issue that conflicts with this one to start (the demo plants that conflict)",
        )
    } else if issue.id == second {
        let line = scenario::find(first).map_or("", |i| i.line);
        let on_main = format!("main:{}", issue.file);
        (
            Box::new(move || git(&["show", &on_main]).is_ok_and(|text| text.lines().any(|l| l == line))),
            "waiting for the issue this one conflicts with to land on main (the demo plants that conflict)",
        )
    } else {
        return;
    };
    if ready() {
        return;
    }
    say(waiting);
    let started = std::time::Instant::now();
    while started.elapsed() < PAIR_WAIT && !ready() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The attempt bdp starts when the branch conflicts with main: merge main in and resolve the file both
/// appended to (main's lines, then this issue's), as an agent would.
fn resolve(issue: &scenario::DemoIssue) -> Result<(), String> {
    say("the branch conflicts with main: merging main in");
    // Expected to stop on the conflict.
    let _ = git(&[IDENTITY[0], IDENTITY[1], IDENTITY[2], IDENTITY[3], "merge", "--no-edit", "main"]);
    let mut text = git(&["show", &format!("main:{}", issue.file)])?;
    if !text.lines().any(|l| l == issue.line) {
        text.push_str(issue.line);
        text.push('\n');
    }
    std::fs::write(issue.file, text).map_err(|e| format!("error: cannot write {}: {e}", issue.file))?;
    git(&["add", "--", issue.file])?;
    git(&[IDENTITY[0], IDENTITY[1], IDENTITY[2], IDENTITY[3], "commit", "-q", "--no-verify", "--no-edit"])?;
    say(&format!("resolved the conflict in {}: main's lines, then this issue's", issue.file));
    Ok(())
}

/// The demo agent's commits are its own (`-c` before the git command).
const IDENTITY: [&str; 4] = ["-c", "user.name=bdp demo agent", "-c", "user.email=agent@demo.invalid"];

fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git").args(args).output().map_err(|e| format!("error: cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!("error: git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
