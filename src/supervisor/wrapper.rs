//! The agent wrapper: the process bdp actually spawns for an agent, a check, a hook or a reviewer.
//!
//! It runs the agent as its child (in the wrapper's own session and process group, made first thing), sends its
//! output to the attempt's files, waits, and writes the exit status atomically to `exit.json` in the
//! attempt's directory (`crate::exit_file`). An orchestrator that adopts an orphaned agent after a crash is
//! not its parent and cannot wait on it: it learns the outcome from that file.
//!
//! The wrapper outlives a TERM sent to the group (it notes the signal and keeps waiting for the agent), so
//! the exit file is written whenever the agent exits — except on KILL, when the orchestrator, if alive,
//! sees the wrapper's own status instead.
//!
//! This file uses std and nix only: it is also the whole of the small `bdp-wrap` program
//! (`src/bin/bdp-wrap.rs` includes it), which bdp spawns when it is installed beside it, so that an agent
//! costs the start of a small program instead of all of bdp (`bdp __wrap` runs the same code otherwise).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The exit file's name in the attempt's directory.
pub const EXIT_FILE: &str = "exit.json";

/// Reads `--dir DIR -- AGENT ARGS…` (what bdp passes).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(PathBuf, Vec<OsString>), String> {
    let mut args = args.into_iter();
    let mut dir = None;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--dir") => dir = Some(PathBuf::from(args.next().ok_or("--dir needs a directory")?)),
            Some("--") => break,
            _ => return Err(format!("unexpected argument {arg:?}: usage: --dir DIR -- AGENT [ARGS…]")),
        }
    }
    let dir = dir.ok_or("--dir DIR is missing")?;
    let argv: Vec<OsString> = args.collect();
    if argv.is_empty() {
        return Err("no agent after --".into());
    }
    Ok((dir, argv))
}

extern "C" fn noted(_: nix::libc::c_int) {}

/// Runs the agent `argv` with its output in `dir`, writes `dir/exit.json`; returns the exit code the
/// wrapper should exit with.
pub fn run(dir: &Path, argv: &[OsString]) -> u8 {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};
    // A session and process group of our own, led by this process, for the agent and all it starts: bdp
    // stops the group, and the agent has no controlling terminal (a prompt on /dev/tty fails at once instead
    // of stopping it). bdp spawns us without a hook (posix_spawn); an error means we lead one already.
    let _ = nix::unistd::setsid();
    // A handler (not SIG_IGN, which the agent would inherit across exec) so TERM/INT/HUP don't kill us.
    let action = SigAction::new(SigHandler::Handler(noted), SaFlags::SA_RESTART, SigSet::empty());
    let mut survived = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler touches nothing; the wrapper is single-threaded.
        let _ = unsafe { sigaction(sig, &action) };
        survived.add(sig);
    }
    // A TERM held back by a mask inherited from whoever spawned us is pending, not fatal: unblock it now (the
    // handler takes it), and the agent starts with a clean mask.
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&survived), None);
    // bdp ignores SIGXFSZ; the agent gets the default back.
    // SAFETY: setting a disposition to SIG_DFL touches no memory.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGXFSZ, SigHandler::SigDfl) };
    let start = Instant::now();
    let open = |name: &str| std::fs::File::create(dir.join(name));
    let (code, signal, error) = match (open("stdout"), open("stderr")) {
        (Ok(out), Ok(err)) => {
            // The agent's locks (`bdp lock`) live as long as this wrapper: it tells them its pid.
            let spawned = Command::new(&argv[0])
                .args(&argv[1..])
                .env("BDP_WRAPPER_PID", std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn();
            match spawned {
                Ok(mut child) => match child.wait() {
                    Ok(status) => (status.code(), status.signal(), None),
                    Err(e) => (Some(127), None, Some(format!("cannot wait for the agent: {e}"))),
                },
                Err(e) => (Some(127), None, Some(format!("cannot run {}: {e}", argv[0].to_string_lossy()))),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            (Some(127), None, Some(format!("cannot create the output files in {}: {e}", dir.display())))
        }
    };
    let record = exit_json(code, signal, start.elapsed().as_millis() as u64, error.as_deref(), std::process::id());
    if let Err(e) = write_atomically(&dir.join(EXIT_FILE), record.as_bytes()) {
        eprintln!("bdp wrapper: cannot write {}: {e}", dir.join(EXIT_FILE).display());
    }
    match (code, signal) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 127,
    }
}

/// The exit record as `crate::exit_file::ExitRecord` reads it: `{"code":…,"signal":…,"duration_ms":…,
/// "error":…,"pid":…}`, absent fields left out.
pub fn exit_json(code: Option<i32>, signal: Option<i32>, duration_ms: u64, error: Option<&str>, pid: u32) -> String {
    let mut out = String::from("{");
    if let Some(code) = code {
        out.push_str(&format!("\"code\":{code},"));
    }
    if let Some(signal) = signal {
        out.push_str(&format!("\"signal\":{signal},"));
    }
    out.push_str(&format!("\"duration_ms\":{duration_ms},"));
    if let Some(error) = error {
        out.push_str("\"error\":\"");
        for c in error.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push_str("\",");
    }
    out.push_str(&format!("\"pid\":{pid}}}"));
    out
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, renamed over it. Readers see the
/// whole record or none. Not fsynced, on purpose: the file outlives any crash of a process (it is in the
/// page cache), and only a machine crash can lose it — recovery then finds no exit file and retries the
/// attempt, which loses nothing. Two fsyncs per agent were a large part of the cost of a short agent.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
