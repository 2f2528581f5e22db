//! `bdp events [--after SEQ] [--follow] [--json]`: the log's records as they are appended, for people
//! (one table line each, `render::record_line`) and for other tools (`--json`: one JSON object per line,
//! the record as `event::Record` serializes).
//!
//! Every record printed is verified first (seqs and chain, from seq 1); damage is an error naming the
//! place. `--after SEQ` prints only the records after SEQ (a cursor to resume from); `--follow` then keeps
//! polling the log (`log::tail`) and prints new records as they arrive, until SIGINT or SIGTERM (exit 0).
//! A closed pipe (`bdp events | head`) ends it quietly with exit 0. Output is flushed after each batch of
//! records read together, so a reader sees every record as soon as it is in the log.
//!
//! Read-only: it never writes anything under `.bdp/`.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use crate::cli::Outcome;
use crate::cli::render::{one_line, record_line};
use crate::error::{CliError, CliResult};
use crate::event::Record;
use crate::log::tail::LogTail;
use crate::log::{Decode, LogError, walk};
use crate::repo::Repo;

/// How often `--follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(150);

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print only the records after this seq (a cursor: the last seq you saw).
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,
    /// Keep printing records as they are appended, until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// One JSON object per line (the record: seq, v, ts, session, event).
    #[arg(long)]
    pub json: bool,
}

/// Why printing stopped early.
enum Stop {
    /// The reader went away (a closed pipe): not an error.
    Closed,
    /// SIGINT or SIGTERM during --follow.
    Signalled,
    Failed(CliError),
}

impl From<LogError> for Stop {
    fn from(e: LogError) -> Self {
        Stop::Failed(CliError::from(e))
    }
}

pub fn run(repo: &Repo, args: &EventsArgs) -> CliResult<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    if args.follow {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .map_err(|e| CliError::internal(format!("cannot watch for signal {sig}: {e}")))?;
        }
    }
    let mut printer = Printer { out: io::BufWriter::new(io::stdout().lock()), json: args.json, header: !args.json };
    match print_all(repo, args, &stop, &mut printer) {
        Ok(()) | Err(Stop::Closed) | Err(Stop::Signalled) => Ok(Outcome::Ok),
        Err(Stop::Failed(e)) => Err(e),
    }
}

fn print_all(repo: &Repo, args: &EventsArgs, stop: &AtomicBool, printer: &mut Printer<'_>) -> Result<(), Stop> {
    let events_dir = repo.events_dir();
    let after = args.after.unwrap_or(0);
    let from = after.saturating_add(1);
    // Verify from seq 1, decode only what is printed.
    let mut halted: Option<Stop> = None;
    let walked = walk(&events_dir, None, &Decode::SeqsThenFrom(Vec::new(), from), |record, _| {
        if stop.load(Ordering::Relaxed) {
            halted = Some(Stop::Signalled);
        } else if let Err(e) = printer.record(&record) {
            halted = Some(e);
        }
        match halted {
            Some(_) => Err(LogError::Internal("printing stopped".into())),
            None => Ok(()),
        }
    });
    if let Some(why) = halted {
        return Err(why);
    }
    let mut tail = match walked {
        Ok(summary) => LogTail::after_walk(&events_dir, &summary),
        Err(LogError::NoLog { .. }) if args.follow => LogTail::from_start(&events_dir),
        Err(e) => return Err(e.into()),
    };
    printer.flush()?;
    if !args.follow {
        return Ok(());
    }
    while !stop.load(Ordering::Relaxed) {
        let mut failed: Option<Stop> = None;
        tail.poll(|record, _| {
            if record.seq < from {
                return Ok(());
            }
            match printer.record(&record) {
                Ok(()) => Ok(()),
                Err(e) => {
                    failed = Some(e);
                    Err(LogError::Internal("printing stopped".into()))
                }
            }
        })
        .map_err(|e| failed.take().unwrap_or_else(|| Stop::from(e)))?;
        printer.flush()?;
        std::thread::sleep(FOLLOW_POLL);
    }
    Err(Stop::Signalled)
}

struct Printer<'a> {
    out: io::BufWriter<io::StdoutLock<'a>>,
    json: bool,
    /// The table header is still to be printed (before the first human line).
    header: bool,
}

impl Printer<'_> {
    fn record(&mut self, record: &Record) -> Result<(), Stop> {
        if self.header {
            self.header = false;
            let header =
                format!("{:>7}  {:<12}  {:<22}  {:<22}  {:<12}  DETAIL", "SEQ", "TIME", "SESSION", "EVENT", "ISSUE");
            writeln!(self.out, "{header}").map_err(write_error)?;
        }
        if self.json {
            serde_json::to_writer(&mut self.out, record).map_err(|e| write_error(e.into()))?;
            self.out.write_all(b"\n").map_err(write_error)
        } else {
            // Issue ids are data from a shared repo: control characters are shown escaped.
            writeln!(self.out, "{}", one_line(&record_line(record, true))).map_err(write_error)
        }
    }

    fn flush(&mut self) -> Result<(), Stop> {
        self.out.flush().map_err(write_error)
    }
}

fn write_error(e: io::Error) -> Stop {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Stop::Closed
    } else {
        Stop::Failed(CliError::io("write", std::path::Path::new("stdout"), &e))
    }
}
