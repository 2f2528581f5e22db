//! `bdp status --watch`: a full-screen view of what bdp is doing, redrawn at most once a second from the
//! log and the world, until `q`, Esc or Ctrl-C (or SIGTERM, or the terminal hanging up).
//!
//! - `model.rs`: the pure model of the screen (state + the run's records + a look at the world);
//! - `view.rs`: draws a model with ratatui;
//! - `source.rs`: reads the inputs (log tail, processes, output files, tracker), read-only;
//! - this file: the terminal (raw mode and the alternate screen, restored on every way out, a panic
//!   included) and the loop: each tick polls the log, looks at the world, rebuilds the model and draws.
//!
//! It works from another terminal while a run is live, and on a finished or crashed session. It never
//! writes under `.bdp/` itself (loading the state goes through `log::load`).

pub mod model;
mod source;
pub mod view;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};

use self::model::Model;
use self::source::Source;
use crate::cli::Outcome;
use crate::error::{CliError, CliResult};
use crate::repo::Repo;
use crate::tracker::TrackerKind;

/// Time between two redraws when no key is pressed.
const TICK: Duration = Duration::from_secs(1);

pub fn run(repo: &Repo, tracker: TrackerKind) -> CliResult<Outcome> {
    if !std::io::stdout().is_terminal() {
        return Err(CliError::user("`bdp status --watch` draws a full-screen view, and stdout is not a terminal")
            .with_hint("run it in a terminal; for scripts use `bdp status --json` or `bdp events --follow --json`"));
    }
    let mut source = Source::open(repo, tracker)?;
    let stop = Arc::new(AtomicBool::new(false));
    // SIGHUP keeps its default (the terminal is gone: nothing to restore, and nobody to draw for).
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| CliError::internal(format!("cannot watch for signal {sig}: {e}")))?;
    }
    let screen = Screen::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(term_error)?;
    terminal.clear().map_err(term_error)?;
    let repo_name = repo.root.display().to_string();
    let result = (|| loop {
        source.poll();
        let world = source.world();
        let model = Model::build(&repo_name, &source.state, &source.activity, &world, source.log_error.clone());
        terminal.draw(|frame| view::draw(frame, &model)).map_err(term_error)?;
        panic_for_tests();
        match wait_for_key(Instant::now() + TICK, &stop)? {
            Key::Quit => return Ok(Outcome::Ok),
            Key::Other | Key::None => {}
        }
    })();
    drop(screen);
    result
}

enum Key {
    Quit,
    Other,
    None,
}

/// Waits until `deadline` for a key: `Quit` for q, Esc or Ctrl-C (or a stop signal), `Other` for any
/// other key or a resize (redraw now), `None` when the time is up.
fn wait_for_key(deadline: Instant, stop: &AtomicBool) -> CliResult<Key> {
    loop {
        if stop.load(Ordering::Relaxed) || terminal_hung_up() {
            return Ok(Key::Quit);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Key::None);
        }
        // Short waits so a signal is noticed soon; each is one poll(2) on the terminal, nearly free.
        if !event::poll(left.min(Duration::from_millis(250))).map_err(term_error)? {
            continue;
        }
        match event::read().map_err(term_error)? {
            TermEvent::Key(k) if k.kind == KeyEventKind::Press => {
                let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                return Ok(if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                    Key::Quit
                } else {
                    Key::Other
                });
            }
            TermEvent::Resize(..) => return Ok(Key::Other),
            _ => {}
        }
    }
}

/// Whether the terminal went away (its pty closed): input would read end-of-file for ever, on which the
/// terminal library spins instead of reporting it.
fn terminal_hung_up() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    match poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
        Err(_) => false,
    }
}

fn term_error(e: std::io::Error) -> CliError {
    CliError::io("draw on", std::path::Path::new("the terminal"), &e)
}

/// Raw mode and the alternate screen while it lives; restored on drop and, through a panic hook, before
/// a panic's message is printed (so the message is readable and the shell usable).
struct Screen;

impl Screen {
    fn enter() -> CliResult<Screen> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode().map_err(term_error)?;
        ENTERED.store(true, Ordering::SeqCst);
        let screen = Screen;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide).map_err(term_error)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal is in raw mode on the alternate screen (leaving twice would move the cursor
/// back over what was printed in between, a panic's message).
static ENTERED: AtomicBool = AtomicBool::new(false);

fn restore() {
    if ENTERED.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(std::io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

/// `BDP_DASHBOARD_PANIC=1` makes the dashboard panic after its first frame, to test that the terminal is
/// restored. Only debug builds (the ones tests run) look at it.
fn panic_for_tests() {
    #[cfg(debug_assertions)]
    if std::env::var_os("BDP_DASHBOARD_PANIC").is_some() {
        panic!("BDP_DASHBOARD_PANIC is set: panicking after the first frame");
    }
}

#[cfg(test)]
mod tests;
