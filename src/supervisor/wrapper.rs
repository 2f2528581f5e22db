//! The agent wrapper: `bdp __wrap`, a hidden subcommand that is the process bdp actually spawns.
//!
//! It runs the agent as its child (in the wrapper's own process group, which the orchestrator made with
//! setsid), sends its output to the attempt's files, waits, and writes the exit status atomically to
//! `exit.json` in the attempt's directory. An orchestrator that adopts an orphaned agent after a crash is
//! not its parent and cannot wait on it: it learns the outcome from that file.
//!
//! The wrapper outlives a TERM sent to the group (it notes the signal and keeps waiting for the agent), so
//! the exit file is written whenever the agent exits — except on KILL, when the orchestrator, if alive,
//! sees the wrapper's own status instead.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::exit_file::{EXIT_FILE, ExitRecord, write_atomically};

/// Arguments of `bdp __wrap`.
#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    /// The attempt's directory: stdout, stderr and exit.json go there.
    #[arg(long)]
    pub dir: PathBuf,
    /// The agent's argv.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// Runs the agent and writes its exit file; returns the exit code the wrapper should exit with.
pub fn run(args: &WrapArgs) -> u8 {
    // A handler (not SIG_IGN, which the agent would inherit across exec) so TERM/INT/HUP don't kill us.
    let noted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&noted));
    }
    // The orchestrator started us with these signals blocked (see `agent::spawn`), so a TERM that came
    // before the handlers were in place is pending, not fatal. Unblock them: it is delivered to the
    // handler now, and the agent starts with a clean mask.
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&super::agent::wrapper_blocked_signals()),
        None,
    );
    let start = Instant::now();
    let open = |name: &str| std::fs::File::create(args.dir.join(name));
    let record = match (open("stdout"), open("stderr")) {
        (Ok(out), Ok(err)) => {
            // bdp ignores SIGXFSZ (see `cli::main`); the agent gets the default back.
            // SAFETY: setting a disposition to SIG_DFL touches no memory; the wrapper is single-threaded here.
            unsafe {
                let _ =
                    nix::sys::signal::signal(nix::sys::signal::Signal::SIGXFSZ, nix::sys::signal::SigHandler::SigDfl);
            }
            // The agent's locks (`bdp lock`) live as long as this wrapper: it tells them its pid.
            let spawned = Command::new(&args.argv[0])
                .args(&args.argv[1..])
                .env("BDP_WRAPPER_PID", std::process::id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn();
            match spawned {
                Ok(mut child) => match child.wait() {
                    Ok(status) => ExitRecord {
                        code: status.code(),
                        signal: status.signal(),
                        duration_ms: start.elapsed().as_millis() as u64,
                        error: None,
                        pid: Some(std::process::id()),
                    },
                    Err(e) => failure(start, format!("cannot wait for the agent: {e}")),
                },
                Err(e) => failure(start, format!("cannot run {}: {e}", args.argv[0])),
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            failure(start, format!("cannot create the output files in {}: {e}", args.dir.display()))
        }
    };
    let bytes = serde_json::to_vec(&record).expect("the exit record serializes");
    if let Err(e) = write_atomically(&args.dir.join(EXIT_FILE), &bytes) {
        eprintln!("bdp __wrap: cannot write {}: {e}", args.dir.join(EXIT_FILE).display());
    }
    match (record.code, record.signal) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 127,
    }
}

fn failure(start: Instant, error: String) -> ExitRecord {
    ExitRecord {
        code: Some(127),
        signal: None,
        duration_ms: start.elapsed().as_millis() as u64,
        error: Some(error),
        pid: Some(std::process::id()),
    }
}
