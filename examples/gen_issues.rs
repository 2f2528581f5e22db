//! Generates a beads `issues.jsonl` for benchmarks: N issues (default 10 000) with 2·N `blocks` edges
//! (default 20 000), each from an issue to an earlier one (so the graph is acyclic), 20% closed, priorities
//! 0–4, deterministic (a fixed LCG seed).
//!
//! cargo run --release --example gen_issues -- [N] [DEPS] > .beads/issues.jsonl

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let deps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2 * n);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: usize| -> usize {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % bound.max(1)
    };
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut made = 0;
    while made < deps && n > 1 {
        let from = 1 + next(n - 1);
        // Mostly local edges (streams of related work), some long-range ones.
        let to = if next(4) == 0 { next(from) } else { from.saturating_sub(1 + next(20)) };
        if !edges[from].contains(&to) {
            edges[from].push(to);
            made += 1;
        }
    }
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    for (i, deps) in edges.iter().enumerate() {
        let id = format!("bench-{i}");
        let closed = next(5) == 0;
        let status = if closed { "closed" } else { "open" };
        let mut line = serde_json::json!({
            "id": id,
            "title": format!("Generated issue {i}"),
            "description": "Generated for bdp's planning benchmark.",
            "status": status,
            "priority": next(5),
            "issue_type": "task",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        });
        if closed {
            line["closed_at"] = "2026-01-02T00:00:00Z".into();
        }
        if !deps.is_empty() {
            line["dependencies"] = deps
                .iter()
                .map(|&d| {
                    serde_json::json!({"issue_id": id, "depends_on_id": format!("bench-{d}"), "type": "blocks",
                        "created_at": "2026-01-01T00:00:00Z"})
                })
                .collect();
        }
        writeln!(out, "{line}").unwrap();
    }
}
