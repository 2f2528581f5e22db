//! Drawing the dashboard's [`Model`] with ratatui: a header (repo, session, counts, speedup, usage), the
//! claimed issues and their agents, the queue of ready issues beside the locks, and the recent events.
//!
//! It only draws what the model holds (already made one line and escaped); it reads nothing itself.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::model::{FileLockView, Model, SessionView};
use crate::cli::render::{duration, time_of_day};

pub fn draw(frame: &mut Frame, model: &Model) {
    let agent_rows = model.agents.len().max(1) as u16;
    let side_rows = model.queue.len().max(model.locks.len() + model.file_locks.len()).max(1) as u16
        + u16::from(model.queue_error.is_some());
    let [header, agents, side, recent, footer] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(agent_rows + 3),
        Constraint::Length(side_rows + 2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, model);
    draw_agents(frame, agents, model);
    let [queue, locks] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(side);
    draw_queue(frame, queue, model);
    draw_locks(frame, locks, model);
    draw_recent(frame, recent, model);
    let mut help =
        vec![Span::styled(" q", bold()), Span::raw(" quit   "), Span::raw(format!("log at seq {}", model.last_seq))];
    if let Some(e) = &model.log_error {
        help.push(Span::styled(format!("   log not followed any more: {e}"), Style::new().fg(Color::Red)));
    }
    frame.render_widget(Paragraph::new(Line::from(help)), footer);
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

fn block(title: &str) -> Block<'_> {
    Block::new().borders(Borders::ALL).title(Span::styled(format!(" {title} "), bold()))
}

fn opt_duration(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), duration)
}

fn session_line(s: &SessionView) -> Line<'static> {
    let color = match s.state {
        "running" => Color::Green,
        "crashed" => Color::Red,
        _ => Color::Blue,
    };
    let mut spans = vec![
        Span::raw("session "),
        Span::styled(s.id.clone(), bold()),
        Span::raw("  "),
        Span::styled(s.state, Style::new().fg(color).add_modifier(Modifier::BOLD)),
    ];
    if let Some(reason) = &s.end_reason {
        spans.push(Span::raw(format!(" ({reason})")));
    }
    if let Some(pid) = s.orchestrator_pid {
        spans.push(Span::raw(format!("  orchestrator pid {pid}")));
    }
    spans.push(Span::raw(format!(
        "  started {} {}  elapsed {}",
        s.started_ts.get(..10).unwrap_or(""),
        time_of_day(&s.started_ts),
        opt_duration(s.elapsed_ms)
    )));
    Line::from(spans)
}

fn draw_header(frame: &mut Frame, area: Rect, m: &Model) {
    let c = &m.counts;
    let session = match &m.session {
        Some(s) => session_line(s),
        None => Line::raw("no session yet"),
    };
    let queued = c.queued.map_or_else(|| "?".to_string(), |q| q.to_string());
    let counts = Line::from(vec![
        Span::styled(format!("done {}", c.done), Style::new().fg(Color::Green)),
        Span::raw("   "),
        Span::styled(format!("failed {}", c.failed), Style::new().fg(Color::Red)),
        Span::raw("   "),
        Span::styled(format!("conflicted {}", c.conflicted), Style::new().fg(Color::Yellow)),
        Span::raw(format!("   running {}   queued {queued}", c.running)),
    ]);
    let speedup = m.speedup.map_or_else(|| "-".to_string(), |s| format!("{s:.2}x"));
    let usage = match &m.usage {
        None => "tokens unknown   cost unknown".to_string(),
        Some(u) => {
            let cost = u.cost_micro_usd.map_or_else(|| "unknown".to_string(), |c| format!("${:.2}", c as f64 / 1e6));
            format!(
                "tokens {} in ({} cached), {} out   cost {cost}",
                u.input_tokens, u.cached_input_tokens, u.output_tokens
            )
        }
    };
    let totals = Line::raw(format!("realized speedup {speedup}   {usage}"));
    let lines = vec![session, counts, totals];
    frame.render_widget(Paragraph::new(lines).block(block(&format!("bdp · {}", m.repo))), area);
}

fn draw_agents(frame: &mut Frame, area: Rect, m: &Model) {
    let header = Row::new(["ISSUE", "TITLE", "PHASE", "TRY", "ELAPSED", "PROGRESS · LAST OUTPUT"]).style(bold());
    let rows: Vec<Row> = m
        .agents
        .iter()
        .map(|a| {
            let elapsed = match a.alive {
                Some(false) => format!("{} gone", opt_duration(a.elapsed_ms)),
                _ => opt_duration(a.elapsed_ms),
            };
            Row::new(vec![
                Cell::from(a.issue.clone()),
                Cell::from(a.title.clone().unwrap_or_default()),
                Cell::from(a.phase.clone()),
                Cell::from(a.attempt.map_or_else(|| "-".to_string(), |n| n.to_string())),
                Cell::from(elapsed),
                // The agent's own word on its progress first, then the end of its output.
                Cell::from(match (&a.progress, &a.last_line) {
                    (Some(p), Some(l)) => format!("{p} · {l}"),
                    (Some(p), None) => p.clone(),
                    (None, l) => l.clone().unwrap_or_default(),
                }),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(14),
        Constraint::Percentage(30),
        Constraint::Length(14),
        Constraint::Length(3),
        Constraint::Length(12),
        Constraint::Fill(1),
    ];
    let title = format!("claimed issues ({})", m.agents.len());
    let table = Table::new(rows, widths).header(header).block(block(&title));
    frame.render_widget(table, area);
}

fn draw_queue(frame: &mut Frame, area: Rect, m: &Model) {
    let mut lines: Vec<Line> =
        m.queue.iter().map(|q| Line::raw(format!("{:<14} P{}  {}", q.id, q.priority, q.title))).collect();
    if let Some(e) = &m.queue_error {
        lines.push(Line::styled(format!("tracker unavailable: {e}"), Style::new().fg(Color::Red)));
    } else if lines.is_empty() {
        lines.push(Line::raw("nothing ready"));
    }
    let title = match m.counts.queued {
        Some(n) if n > m.queue.len() => format!("queue: next {} of {n} ready", m.queue.len()),
        Some(n) => format!("queue: {n} ready"),
        None => "queue".to_string(),
    };
    frame.render_widget(Paragraph::new(lines).block(block(&title)), area);
}

fn draw_locks(frame: &mut Frame, area: Rect, m: &Model) {
    let mut lines: Vec<Line> = m
        .locks
        .iter()
        .map(|l| {
            let alive = match l.holder_alive {
                Some(true) => "",
                Some(false) => " (gone)",
                None => "",
            };
            let issue = l.issue.as_deref().map_or(String::new(), |i| format!(" for {i}"));
            Line::raw(format!("{}  pid {}{alive}{issue}", l.name, l.holder_pid))
        })
        .collect();
    for f in &m.file_locks {
        lines.push(Line::raw(match f {
            FileLockView::Held { path, shared, holder, alive } => format!(
                "{path}  {}, {holder}{}",
                if *shared { "shared" } else { "exclusive" },
                if *alive { "" } else { " (gone)" }
            ),
            FileLockView::Waiting { holder, paths, held_by } => format!("{holder} waits for {paths} ({held_by})"),
        }));
    }
    if lines.is_empty() {
        lines.push(Line::raw("none held"));
    }
    frame.render_widget(Paragraph::new(lines).block(block("locks")), area);
}

fn draw_recent(frame: &mut Frame, area: Rect, m: &Model) {
    let lines: Vec<Line> = m.recent.iter().map(|l| Line::raw(l.clone())).collect();
    frame.render_widget(Paragraph::new(lines).block(block("recent events (newest first)")), area);
}
