//! What `bdp run` shows while it works. On a terminal: a live line per running agent (issue, phase,
//! elapsed, title) with indicatif, and a line per finished issue above them. Otherwise (or with
//! `--plain`): the same finished lines and a line per start, plain, one per event, for logs and CI.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    live: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

impl Progress {
    pub fn new(plain: bool) -> Progress {
        let tty = !plain && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let live = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { live, bars: HashMap::new() }
    }

    /// A line that stays: above the live bars on a terminal, on stdout otherwise.
    pub fn line(&self, text: &str) {
        match &self.live {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
        }
    }

    /// An agent started on `id` (or, with `adopted`, an agent a crashed run started is supervised again).
    pub fn started(&mut self, id: &str, attempt: u32, title: &str, adopted: Option<u32>) {
        let title = one_line(title, 60);
        match &self.live {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<14} {elapsed:>5} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(id.to_string());
                bar.set_message(format!("running #{attempt}  {title}"));
                bar.enable_steady_tick(Duration::from_millis(200));
                if let Some(old) = self.bars.insert(id.to_string(), bar) {
                    old.finish_and_clear();
                }
            }
            None => match adopted {
                Some(pid) => {
                    self.line(&format!("adopt    {id}  attempt {attempt} (pid {pid}, still running)  {title}"))
                }
                None => self.line(&format!("start    {id}  attempt {attempt}  {title}")),
            },
        }
    }

    /// The issue moved to another phase (only shown live).
    pub fn phase(&self, id: &str, phase: &str) {
        if let Some(bar) = self.bars.get(id) {
            let msg = bar.message();
            let title = msg.split_once("  ").map(|(_, t)| t.to_string()).unwrap_or_default();
            bar.set_message(format!("{phase}  {title}"));
        }
    }

    /// The issue is no longer worked on.
    pub fn finished(&mut self, id: &str) {
        if let Some(bar) = self.bars.remove(id) {
            bar.finish_and_clear();
        }
    }

    pub fn clear(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
    }
}

/// `text` on one line (control characters escaped), cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect();
    if escaped.chars().count() > max {
        let cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}
