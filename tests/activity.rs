//! `bdp summary` and `bdp replay --html` on a built log (fixed clock): a session with issues done in
//! parallel (one with a hostile id), a failed-then-retried issue, a merge conflict, some agents reporting
//! usage and others not; it crashes with two agents running; the recovering session adopts one, finds the
//! other gone (abandoned, then retried and done). insta snapshots of `summary`, human and `--json`; the HTML
//! parsed (scraper), checked for self-containment and escaping, and screenshotted with headless Chromium
//! when it is installed.

use crate::common;

use std::path::{Path, PathBuf};

use bdp::event::{AgentUsage, Event, ReleaseReason, SessionEndReason};
use bdp::log::LogWriter;
use scraper::{Html, Selector};

const HOSTILE: &str = "x\"><script>alert(1)</script>";
const S1: &str = "s-20261125-060000-e1";
const S2: &str = "s-20261125-061500-e2";

fn started(recovers: Option<&str>) -> Event {
    common::session_started(
        4_194_999,
        Some(1),
        serde_json::json!({"options": {"agents": 3}, "tracker": "jsonl"}),
        recovers,
    )
}

/// `issue_done` without the merge lock (issues here run interleaved), with `usage` on its exit.
fn done(issue: &str, attempt: u32, pid: u32, usage: Option<AgentUsage>) -> Vec<Event> {
    let commit = format!("{pid:0>40}");
    common::issue_done(issue, attempt, pid, &commit)
        .into_iter()
        .filter(|e| !matches!(e, Event::LockAcquired { .. } | Event::LockReleased { .. }))
        .map(|e| match e {
            Event::AgentExited { issue, attempt, code, signal, duration_ms, timed_out, .. } => Event::AgentExited {
                issue,
                attempt,
                code,
                signal,
                duration_ms,
                timed_out,
                usage: usage.clone(),
                session: None,
            },
            e => e,
        })
        .collect()
}

fn conflicted(issue: &str, pid: u32) -> Vec<Event> {
    let mut events = done(issue, 1, pid, None);
    let at = events.iter().position(|e| matches!(e, Event::Merged { .. })).unwrap();
    events.truncate(at);
    let i = issue.to_string();
    events.extend([
        Event::MergeConflicted { issue: i.clone(), detail: "CONFLICT (content): src/lib.rs".into() },
        Event::IssueReleased { issue: i, reason: ReleaseReason::Conflict, detail: None },
    ]);
    events
}

/// Round-robin over the issues' event lists, so their attempts overlap in time.
fn interleave(lists: Vec<Vec<Event>>) -> Vec<Event> {
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in &mut iters {
            out.extend(it.next());
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Every exit says the agent ran `ms` (the builders' own figures do not match the fixed clock).
fn ran(events: Vec<Event>, ms: u64) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e {
            Event::AgentExited { issue, attempt, code, signal, timed_out, usage, .. } => {
                Event::AgentExited { issue, attempt, code, signal, duration_ms: ms, timed_out, usage, session: None }
            }
            e => e,
        })
        .collect()
}

fn append(w: &LogWriter, events: Vec<Event>) {
    for e in events {
        w.append(vec![e]).unwrap();
    }
}

fn usage(cost: Option<u64>, input: u64, output: u64) -> Option<AgentUsage> {
    Some(AgentUsage { cost_micro_usd: cost, input_tokens: input, cached_input_tokens: 1_000, output_tokens: output })
}

fn build(root: &Path) {
    {
        let w = common::writer(root, S1);
        append(&w, vec![started(None)]);
        append(
            &w,
            interleave(vec![
                ran(done("bd-n1", 1, 5001, usage(Some(42_100), 1_500, 300)), 1_500),
                ran(common::issue_failed("bd-f2", 5100), 500),
                ran(conflicted("bd-c3", 5201), 1_500),
            ]),
        );
        append(&w, ran(done(HOSTILE, 1, 5301, None), 500));
        let mut k4 = done("bd-k4", 1, 5401, None);
        k4.truncate(7); // running when the session dies
        let mut z5 = done("bd-z5", 1, 5501, None);
        z5.truncate(7);
        append(&w, interleave(vec![k4, z5]));
        append(
            &w,
            vec![Event::ProgressReported {
                issue: "bd-k4".into(),
                attempt: 1,
                status: "half <b>way</b>".into(),
                percent: Some(50),
                step: None,
                steps: None,
            }],
        );
    }
    let w = common::writer_at(root, S2, 15 * 60 * 1000);
    append(&w, vec![started(Some(S1))]);
    let (k4, z5) = (Some("bd-k4".to_string()), Some("bd-z5".to_string()));
    append(
        &w,
        vec![
            Event::ReconcileFinding { kind: "agent_alive".into(), issue: k4.clone(), detail: "pid 5401 runs".into() },
            Event::RepairApplied { kind: "agent_alive".into(), issue: k4, action: "adopted pid 5401".into() },
            Event::ReconcileFinding { kind: "agent_crashed".into(), issue: z5.clone(), detail: "pid 5501 gone".into() },
            Event::AttemptAbandoned { issue: "bd-z5".into(), attempt: 1, reason: "no exit file".into() },
            Event::RepairApplied { kind: "agent_crashed".into(), issue: z5, action: "recorded the crash".into() },
            Event::ReconcileFinding {
                kind: "worktree_without_claim".into(),
                issue: Some(HOSTILE.into()),
                detail: "</title><script>alert(2)</script>".into(),
            },
            Event::IssueReleased {
                issue: "bd-z5".into(),
                reason: ReleaseReason::Abandoned,
                detail: Some("session crashed".into()),
            },
        ],
    );
    // k4's agent ran on through the crash: 14m45s.
    let mut k4_rest = ran(done("bd-k4", 1, 5401, usage(None, 800, 90)), 14 * 60 * 1000 + 45_000);
    k4_rest.drain(..7);
    append(&w, interleave(vec![k4_rest, ran(done("bd-z5", 2, 5502, None), 750)]));
    append(&w, vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]);
}

fn bdp(root: &Path, args: &[&str]) -> (String, String, i32) {
    let out = common::bdp(root).args(args).output().unwrap();
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap(), out.status.code().unwrap_or(-1))
}

#[test]
fn summary_human_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let before = common::bdp_tree(tmp.path());
    let (human, stderr, code) = bdp(tmp.path(), &["summary"]);
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("summary_human", human);
    let (json, _, code) = bdp(tmp.path(), &["summary", "--json"]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    insta::assert_json_snapshot!("summary_json", value);
    let (one, _, code) = bdp(tmp.path(), &["summary", "--session", "s-20261125-0615"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("summary_session_prefix", one);
    assert_eq!(common::bdp_tree(tmp.path()), before, "summary must not write under .bdp");

    // Usage: reported by two agents of eight, a cost by one; the others are unknown, not zero.
    assert_eq!(value["usage"]["reported"], 2);
    assert_eq!(value["usage"]["cost_micro_usd"], 42_100);
    let issue = |id: &str| value["issues"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(issue("bd-c3")["usage"]["reported"], 0);
    assert_eq!(issue("bd-c3")["ending"], "conflict");
    assert!(human.contains("bd-c3") && human.lines().any(|l| l.contains("bd-c3") && l.contains("unknown")));
    assert_eq!(value["crashes"][0]["attempts_adopted"], 1);
    assert_eq!(value["crashes"][0]["attempts_abandoned"], 1);
}

#[test]
fn summary_bad_arguments_and_empty_logs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let (_, err, code) = bdp(tmp.path(), &["summary", "--session", "s-2026"]);
    assert_eq!(code, 2);
    assert!(err.contains("ambiguous"), "{err}");
    let (_, err, code) = bdp(tmp.path(), &["summary", "--session", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("no session nope"), "{err}");
    let (_, err, code) = bdp(tmp.path(), &["summary", "--since", "lately"]);
    assert_eq!(code, 2);
    assert!(err.contains("lately"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (_, err, code) = bdp(empty.path(), &["summary"]);
    assert_eq!(code, 2);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn summary_since_keeps_only_recent_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let bdp_dir = tmp.path().join(".bdp");
    std::fs::create_dir_all(&bdp_dir).unwrap();
    let open = |session: &str, clock: bdp::log::Clock| {
        LogWriter::open(&bdp_dir.join("events"), &bdp_dir.join("append.lock"), session, clock).unwrap().0
    };
    {
        let old = open("s-old", Box::new(|| "2020-01-01T00:00:00.000Z".to_string()));
        append(&old, vec![started(None)]);
        append(&old, done("bd-old", 1, 10, None));
        append(&old, vec![Event::SessionEnded { reason: SessionEndReason::Completed, left_running: vec![] }]);
    }
    let new = open("s-new", bdp::log::system_clock());
    append(&new, vec![started(None)]);
    append(&new, done("bd-new", 1, 11, None));
    let (json, err, code) = bdp(tmp.path(), &["summary", "--since", "24h", "--json"]);
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<&str> = value["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s-new"]);
    assert_eq!(value["issues"][0]["id"], "bd-new");
    let (all, _, _) = bdp(tmp.path(), &["summary", "--since", "36500d", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["sessions"].as_array().unwrap().len(), 2);
}

fn html_of(root: &Path, args: &[&str]) -> (String, PathBuf) {
    let file = root.join("out").join("timeline.html");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    all.extend(["--html", file.to_str().unwrap()]);
    let (stdout, stderr, code) = bdp(root, &all);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("wrote {}", file.display())), "{stdout}");
    (std::fs::read_to_string(&file).unwrap(), file)
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

#[test]
fn replay_html_has_a_bar_per_attempt_with_its_outcome_and_the_markers() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let before = common::bdp_tree(tmp.path());
    let (html, file) = html_of(tmp.path(), &[]);
    assert_eq!(common::bdp_tree(tmp.path()), before, "replay --html must not write under .bdp");
    // Written through a temp file and a rename: nothing else is left beside it.
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["timeline.html"]);
    let doc = Html::parse_document(&html);
    assert!(doc.errors.is_empty(), "HTML parse errors: {:?}", doc.errors);
    let bars = select(&doc, "svg#chart rect.b");
    let mut outcomes: Vec<String> =
        bars.iter().map(|b| b.value().classes().find_map(|c| c.strip_prefix("o-")).unwrap().to_string()).collect();
    outcomes.sort();
    // n1, c3, hostile, k4 (adopted), z5#1 (abandoned), z5#2, f2#1 (failed), f2#2 (timed out).
    assert_eq!(outcomes, ["abandoned", "conflict", "done", "done", "done", "done", "failed", "timeout"]);
    let indices: Vec<usize> = bars.iter().map(|b| b.value().attr("data-i").unwrap().parse().unwrap()).collect();
    assert_eq!(indices, (0..8).collect::<Vec<_>>());
    // Several slots: the interleaved issues overlap.
    assert!(select(&doc, "rect.lane").len() >= 3);
    let crash = select(&doc, "text.t-crash");
    assert_eq!(crash.len(), 1);
    assert_eq!(crash[0].text().collect::<String>(), format!("crash: session {S1}"));
    assert_eq!(select(&doc, "line.m-crash").len(), 1);
    assert_eq!(select(&doc, "path.m-finding").len(), 3);
    assert_eq!(select(&doc, "path.m-repair").len(), 2);
    assert_eq!(select(&doc, "path.m-merge").len(), 1);
    // The agent's progress report, a dot on its bar, escaped.
    let progress = select(&doc, "circle.pg title");
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].text().collect::<String>(), "bd-k4 attempt 1: half <b>way</b> (50%)");
    // The events of each attempt, for hover and click, in the JSON block: k4's crosses the crash.
    let data = select(&doc, "script#bdp-attempts");
    let data: serde_json::Value = serde_json::from_str(&data[0].text().collect::<String>()).unwrap();
    let k4 = data["attempts"].as_array().unwrap().iter().find(|a| a[0] == "bd-k4").unwrap();
    let kinds = data["kinds"].as_array().unwrap();
    let events: Vec<&str> =
        k4[4].as_array().unwrap().iter().map(|e| kinds[e[2].as_u64().unwrap() as usize].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"issue_claimed"));
    assert!(events.contains(&"reconcile_finding") && events.contains(&"agent_exited"), "{events:?}");
    assert_eq!(events.last(), Some(&"issue_released"));
    // Header totals.
    let header: String = select(&doc, "ul.totals")[0].text().collect();
    assert!(header.contains("6 (4 done, 1 failed, 1 conflicted)"), "{header}");
    assert!(header.contains("tokens, cost: 2690 tokens"), "{header}");
    // One session only: its attempts, the adopted one whole.
    let (one, _) = html_of(tmp.path(), &[S2]);
    let doc = Html::parse_document(&one);
    assert_eq!(select(&doc, "svg#chart rect.b").len(), 3, "k4, z5#1 (abandoned here), z5#2");
}

#[test]
fn replay_html_is_self_contained_and_escapes_hostile_ids() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let (html, _) = html_of(tmp.path(), &[]);
    let doc = Html::parse_document(&html);
    for el in select(&doc, "*") {
        for attr in ["src", "href", "xlink:href", "action", "poster", "data"] {
            assert!(el.value().attr(attr).is_none(), "<{} {attr}=…> refers to something outside", el.value().name());
        }
    }
    let lower = html.to_lowercase();
    assert!(!lower.contains("@import") && !lower.contains("url("), "CSS reference outside the file");
    let urls = lower.matches("http://").count() + lower.matches("https://").count();
    assert_eq!(urls, lower.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(), "only the SVG namespace name");
    // Two scripts, both ours: the data block and the page's code; the hostile id never opens a third.
    assert_eq!(select(&doc, "script").len(), 2);
    assert!(!html.contains("<script>alert"), "hostile text is written raw");
    assert!(!html.contains("</title><script"), "hostile text closed an element");
    // In markup (the finding's title) as character references, in the data block as JSON escapes.
    assert!(html.contains("x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains(r#"x\"\u003e\u003cscript\u003ealert(1)\u003c/script\u003e"#));
    let titles: Vec<String> = select(&doc, "path.m-finding title").iter().map(|t| t.text().collect()).collect();
    assert!(titles.iter().any(|t| t.contains(HOSTILE) && t.contains("</title><script>alert(2)")), "{titles:?}");
    let data = select(&doc, "script#bdp-attempts")[0].text().collect::<String>();
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert!(data["attempts"].as_array().unwrap().iter().any(|a| a[0] == HOSTILE), "the id survives, escaped");
}

#[test]
fn replay_html_refuses_a_missing_directory_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let file = tmp.path().join("no/such/dir/t.html");
    let (_, err, code) = bdp(tmp.path(), &["replay", "--html", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/dir") && err.contains("does not exist"), "{err}");
    assert!(!tmp.path().join("no").exists());
    let (_, err, code) = bdp(tmp.path(), &["replay", "--html", "x.html", "--json"]);
    assert_eq!(code, 2, "{err}");
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

#[test]
fn replay_html_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium not found (apt-get install chromium)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let (_, file) = html_of(tmp.path(), &[]);
    let profile = tempfile::tempdir().unwrap();
    let png = tmp.path().join("shot.png");
    let out = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1400,900")
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap();
    assert!(png.is_file(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    // The chart area: below the header, left part of the page.
    let (w, h) = (info.width as usize, info.height as usize);
    let mut colours = std::collections::BTreeSet::new();
    let mut non_white = 0;
    for y in h / 5..h * 3 / 5 {
        for x in 0..w.min(1200) {
            let i = (y * w + x) * channels;
            let px = (buf[i], buf[i + 1], buf[i + 2]);
            if px != (255, 255, 255) {
                non_white += 1;
            }
            colours.insert(px);
        }
    }
    // The outcome colours of the bars are there: done green and failed red, at least.
    let near = |c: (u8, u8, u8)| {
        colours.iter().any(|p| p.0.abs_diff(c.0) < 8 && p.1.abs_diff(c.1) < 8 && p.2.abs_diff(c.2) < 8)
    };
    assert!(colours.len() > 10 && non_white > 5_000, "blank chart: {} colours, {non_white} pixels", colours.len());
    assert!(near((0x6f, 0xcf, 0x97)) && near((0xeb, 0x57, 0x57)), "no bar colours in the screenshot");
}
