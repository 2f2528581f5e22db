//! Replay and recovery.
//!
//! - `replay/*`: a 1M-record realistic log (see `support/gen_log.rs`): `load::fold_verified` (chain verify,
//!   decode and fold, what `bdp verify` pays), a verify-only walk (`Decode::None`), and peers over the same
//!   bytes: blake3 over the segment files (one thread, what the chain check hashes at least) and
//!   `serde_json::Value` parsing of every line (one thread, what any JSON consumer pays).
//! - `recover/*`: `load::recover` with a checkpoint in `.bdp/index.sqlite` 1 000 records before the end,
//!   for logs of 100k, 1M and 10M records (`BDP_BENCH_SIZES=100000,1000000` to choose), against the full fold
//!   (`fold_verified`, what recovery costs without a checkpoint). The 10M full fold takes seconds per run,
//!   so it is timed with a plain loop (3 runs) rather than by criterion.
//!
//! - `checkpoint_parts/*`: a checkpoint's issues at rest (83 000, as after a 1M-record run of no-op agents)
//!   split into parts (what the checkpointer's thread pays at each checkpoint) and parsed back (what a
//!   recovery pays).
//!
//! Logs are generated in a temporary directory (`BDP_BENCH_DIR`, default the system temp dir; 10M records
//! take about 3.5 GB) and deleted at the end.
//!
//! cargo bench --bench replay [-- FILTER]

#[path = "support/gen_log.rs"]
mod gen_log;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bdp::log::segment::list_segments;
use bdp::log::{Decode, load, walk};
use bdp::repo::Repo;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

/// Records after the checkpoint in the recovery cases.
const TAIL: u64 = 1_000;
const REPLAY_RECORDS: u64 = 1_000_000;

fn bench_dir() -> PathBuf {
    std::env::var_os("BDP_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

fn sizes() -> Vec<u64> {
    match std::env::var("BDP_BENCH_SIZES") {
        Ok(s) => s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![100_000, 1_000_000, 10_000_000],
    }
}

/// Filters given on the command line (criterion's own filter), to skip generating logs nobody asked for.
fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()) || f.starts_with(name))
}

/// A repo whose log holds `n` records, with a checkpoint (saved by `recover` itself) at `n - TAIL`.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: Repo,
    bytes: u64,
    checkpoint_bytes: u64,
}

fn fixture(n: u64) -> Fixture {
    let dir = tempfile::tempdir_in(bench_dir()).expect("a temporary directory");
    let repo = Repo { root: dir.path().to_path_buf() };
    let t = Instant::now();
    let mut builder = gen_log::LogBuilder::create(&repo.events_dir(), 1).expect("create the log");
    builder.fill_to(n - TAIL).expect("write the log");
    let generated = t.elapsed();
    // The first recovery folds everything and saves a checkpoint at the end.
    let t = Instant::now();
    let first = load::recover(&repo).expect("recover");
    let first_recover = t.elapsed();
    assert_eq!(first.from_checkpoint, None);
    builder.fill_to(n).expect("write the tail");
    let checkpoint_bytes = std::fs::metadata(repo.index_path()).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "log of {n} records: {} MB in {} segments, generated in {:.1} s; first recovery (full fold + checkpoint) \
         {:.2} s; index.sqlite {} kB",
        builder.bytes() >> 20,
        builder.segments(),
        generated.as_secs_f64(),
        first_recover.as_secs_f64(),
        checkpoint_bytes >> 10
    );
    Fixture { bytes: builder.bytes(), _dir: dir, repo, checkpoint_bytes }
}

fn segments(events_dir: &Path) -> Vec<PathBuf> {
    list_segments(events_dir).expect("segments").into_iter().map(|s| s.path).collect()
}

fn replay(c: &mut Criterion, f: &Fixture) {
    let events = f.repo.events_dir();
    let n = REPLAY_RECORDS;
    let mut group = c.benchmark_group("replay");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(n));
    group.bench_function("fold_verified_1M", |b| {
        b.iter(|| {
            let (state, summary) = load::fold_verified(&events, None, |_, _| {}).expect("fold");
            assert_eq!(summary.last_seq, n);
            black_box(state)
        })
    });
    group.bench_function("verify_only_1M", |b| {
        b.iter(|| {
            let summary = walk(&events, None, &Decode::None, |_, _| Ok(())).expect("walk");
            assert_eq!(summary.last_seq, n);
        })
    });
    let files = segments(&events);
    group.bench_function("peer_blake3_1M", |b| {
        b.iter(|| {
            let mut hasher = blake3::Hasher::new();
            for file in &files {
                hasher.update(&std::fs::read(file).expect("read"));
            }
            black_box(hasher.finalize())
        })
    });
    group.bench_function("peer_serde_json_value_1M", |b| {
        b.iter(|| {
            let mut lines = 0u64;
            for file in &files {
                let data = std::fs::read(file).expect("read");
                for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let value: serde_json::Value = serde_json::from_slice(line).expect("json");
                    black_box(&value);
                    lines += 1;
                }
            }
            assert_eq!(lines, n);
        })
    });
    group.finish();
    eprintln!("replay log: {} bytes, {:.0} bytes/record", f.bytes, f.bytes as f64 / n as f64);
}

fn recover_case(c: &mut Criterion, n: u64, f: &Fixture) {
    let mut group = c.benchmark_group("recover");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    group.bench_function(BenchmarkId::new("checkpoint", n), |b| {
        b.iter(|| {
            let loaded = load::recover(&f.repo).expect("recover");
            assert_eq!(loaded.from_checkpoint, Some(n - TAIL));
            assert_eq!(loaded.summary.last_seq, n);
            black_box(loaded.state)
        })
    });
    let events = f.repo.events_dir();
    if n <= 1_000_000 {
        group.bench_function(BenchmarkId::new("full_fold", n), |b| {
            b.iter(|| black_box(load::fold_verified(&events, None, |_, _| {}).expect("fold")))
        });
    }
    group.finish();
    if n > 1_000_000 && wanted(&format!("recover/full_fold/{n}")) {
        let mut runs: Vec<f64> = (0..3)
            .map(|_| {
                let t = Instant::now();
                black_box(load::fold_verified(&events, None, |_, _| {}).expect("fold"));
                t.elapsed().as_secs_f64()
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        println!(
            "recover/full_fold/{n}: median {:.2} s (min {:.2}, max {:.2}) over 3 runs, {:.0} records/s",
            runs[1],
            runs[0],
            runs[2],
            n as f64 / runs[1]
        );
    }
    eprintln!("index.sqlite after the checkpoint: {} kB", f.checkpoint_bytes >> 10);
}

/// Issues at rest as a long run of no-op agents leaves them: closed, released done (nothing merged: they ran
/// with `--isolation none`).
fn issues_at_rest(n: u32) -> std::collections::BTreeMap<String, bdp::state::IssueState> {
    use bdp::event::{Phase, ReleaseReason};
    use bdp::state::{IssueState, Release};
    (0..n)
        .map(|i| {
            let issue = IssueState {
                attempts: 1,
                claims: 1,
                phase: Some(Phase::Closed),
                last_release: Some(Release {
                    seq: u64::from(i) * 12 + 11,
                    reason: ReleaseReason::Done,
                    unmerged_work: false,
                }),
                closed_seq: Some(u64::from(i) * 12 + 11),
                merged_commit: None,
                ..IssueState::default()
            };
            (format!("bd-{i}"), issue)
        })
        .collect()
}

fn checkpoint_parts(c: &mut Criterion) {
    use bdp::log::checkpoint_parts::{parse, split};
    const ISSUES: u32 = 83_000;
    let issues = issues_at_rest(ISSUES);
    let parts = split(&issues).expect("parts");
    let mut group = c.benchmark_group("checkpoint_parts");
    group.sample_size(30).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(u64::from(ISSUES)));
    group.bench_function(BenchmarkId::new("split", ISSUES), |b| b.iter(|| split(black_box(&issues)).expect("parts")));
    group.bench_function(BenchmarkId::new("parse", ISSUES), |b| b.iter(|| parse(black_box(&parts)).expect("issues")));
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    if wanted("checkpoint_parts/") {
        checkpoint_parts(&mut c);
    }
    let sizes = sizes();
    let mut replayed = false;
    for &n in &sizes {
        let do_replay = n == REPLAY_RECORDS && wanted("replay/");
        let do_recover = wanted(&format!("recover/checkpoint/{n}")) || wanted(&format!("recover/full_fold/{n}"));
        if !do_replay && !do_recover {
            continue;
        }
        let f = fixture(n);
        if do_replay {
            replay(&mut c, &f);
            replayed = true;
        }
        if do_recover {
            recover_case(&mut c, n, &f);
        }
    }
    if !replayed && wanted("replay/") {
        let f = fixture(REPLAY_RECORDS);
        replay(&mut c, &f);
    }
    c.final_summary();
}
