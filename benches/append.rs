//! Append throughput: acknowledged-durable events per second.
//!
//! `LogWriter` with one fsync per append call (`CommitMode::PerAppend`) against group commit
//! (`CommitMode::Group`), with 1, 8 and 64 concurrent appenders, each handing over 1, 4, 16 or 64 events per
//! `append` call (one decision step's events in one batch). One iteration is one `append` by every appender,
//! so criterion's throughput is in events. Each case writes to a fresh log in a temporary directory
//! (`BDP_BENCH_DIR`, default the system temp dir: it must be a real disk for fsync to mean anything).
//!
//! The peer: a raw `write` + `fdatasync` loop of the same bytes (the generated records' mean size times the
//! records per fsync, 1 to 4096), i.e. the physical ceiling at that many events per fsync.
//!
//! After criterion, a table of every case: events/s over all the timed iterations, and events per fsync
//! (the writer calls its clock once per commit, so a counting clock counts the commits).
//!
//! cargo bench --bench append [-- FILTER]

#[path = "support/gen_log.rs"]
mod gen_log;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bdp::event::record::{GENESIS, encode_record};
use bdp::event::{Event, FORMAT_VERSION, Record};
use bdp::log::{Clock, CommitMode, LogWriter};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

const APPENDERS: &[usize] = &[1, 8, 64];
const BATCHES: &[usize] = &[1, 4, 16, 64];
/// Records per fsync for the raw loop: the writer's batch sizes, and what group commit reaches.
const RAW_BATCHES: &[usize] = &[1, 4, 16, 64, 256, 1024, 4096];

fn bench_dir() -> PathBuf {
    std::env::var_os("BDP_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// A fixed timestamp that counts how often the writer asked for it: once per commit.
fn counting_clock(commits: Arc<AtomicU64>) -> Clock {
    Box::new(move || {
        commits.fetch_add(1, Ordering::Relaxed);
        "2026-11-25T06:00:00.000Z".to_string()
    })
}

/// Appender threads that wait for a round (`iters` appends each), run it, and report back.
struct Pool {
    start: Arc<Barrier>,
    ready: Arc<Barrier>,
    done: Arc<Barrier>,
    iters: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(writer: Arc<LogWriter>, appenders: usize, batch: usize) -> Pool {
        let start = Arc::new(Barrier::new(appenders + 1));
        let ready = Arc::new(Barrier::new(appenders + 1));
        let done = Arc::new(Barrier::new(appenders + 1));
        let iters = Arc::new(AtomicU64::new(0));
        let threads = (0..appenders)
            .map(|t| {
                let (writer, start, ready, done, iters) =
                    (Arc::clone(&writer), start.clone(), ready.clone(), done.clone(), iters.clone());
                // Each appender cycles through its own realistic events.
                let template = gen_log::Sim::new(t as u64 + 1).events(batch * 64);
                std::thread::spawn(move || {
                    let mut next = 0;
                    loop {
                        start.wait();
                        let n = iters.load(Ordering::SeqCst);
                        if n == 0 {
                            return;
                        }
                        // Build the batches before the clock starts: the callers' own work is not measured.
                        let batches: Vec<Vec<Event>> = (0..n)
                            .map(|_| {
                                let b = template[next * batch..(next + 1) * batch].to_vec();
                                next = (next + 1) % 64;
                                b
                            })
                            .collect();
                        ready.wait();
                        for b in batches {
                            writer.append(b).expect("append");
                        }
                        done.wait();
                    }
                })
            })
            .collect();
        Pool { start, ready, done, iters, threads }
    }

    /// Runs `iters` appends on every thread; returns the wall time from the common start to the last ack.
    fn round(&self, iters: u64) -> Duration {
        self.iters.store(iters, Ordering::SeqCst);
        self.start.wait();
        self.ready.wait();
        let t = Instant::now();
        self.done.wait();
        t.elapsed()
    }

    fn stop(self) {
        self.iters.store(0, Ordering::SeqCst);
        self.start.wait();
        for t in self.threads {
            t.join().expect("appender thread");
        }
    }
}

/// What one case did over all its timed iterations (warm-up included).
struct Tally {
    name: String,
    events: u64,
    fsyncs: u64,
    elapsed: Duration,
}

fn writer_case(c: &mut Criterion, tallies: &Mutex<Vec<Tally>>) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for mode in [CommitMode::PerAppend, CommitMode::Group] {
        let mode_name = if mode == CommitMode::Group { "group" } else { "per_append" };
        for &appenders in APPENDERS {
            for &batch in BATCHES {
                let id = BenchmarkId::new(mode_name, format!("appenders={appenders}/batch={batch}"));
                group.throughput(Throughput::Elements((appenders * batch) as u64));
                let dir = tempfile::tempdir_in(bench_dir()).expect("a temporary directory");
                let commits = Arc::new(AtomicU64::new(0));
                let bdp = dir.path().join(".bdp");
                std::fs::create_dir_all(&bdp).expect("create .bdp");
                let (writer, _) = LogWriter::open(
                    &bdp.join("events"),
                    &bdp.join("append.lock"),
                    "s-20261125-bench",
                    counting_clock(Arc::clone(&commits)),
                )
                .expect("open the log");
                let writer = Arc::new(writer.with_mode(mode));
                let pool = Pool::new(Arc::clone(&writer), appenders, batch);
                let mut elapsed = Duration::ZERO;
                let mut ran = false;
                group.bench_function(id.clone(), |b| {
                    ran = true;
                    b.iter_custom(|iters| {
                        let took = pool.round(iters);
                        elapsed += took;
                        took
                    })
                });
                pool.stop();
                if ran {
                    tallies.lock().unwrap().push(Tally {
                        name: format!("{mode_name}/appenders={appenders}/batch={batch}"),
                        events: writer.last().0,
                        fsyncs: commits.load(Ordering::Relaxed),
                        elapsed,
                    });
                }
            }
        }
    }
    group.finish();
}

/// The physical ceiling: one `write` of `batch` records' worth of bytes, then `fdatasync`, in a loop.
fn raw_case(c: &mut Criterion, tallies: &Mutex<Vec<Tally>>) {
    let mut buf = Vec::new();
    let mut chain = GENESIS;
    let sample = gen_log::Sim::new(1).events(4096);
    for (i, event) in sample.into_iter().enumerate() {
        let record = Record {
            seq: i as u64 + 1,
            v: FORMAT_VERSION,
            ts: "2026-11-25T06:00:00.000Z".into(),
            session: "s-20261125-bench".into(),
            event,
        };
        chain = encode_record(&record, &chain, &mut buf);
    }
    let record_bytes = buf.len() / 4096;
    eprintln!("mean record size: {record_bytes} bytes");
    let mut group = c.benchmark_group("raw_write_fdatasync");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for &batch in RAW_BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        let dir = tempfile::tempdir_in(bench_dir()).expect("a temporary directory");
        let mut file = File::options().append(true).create(true).open(dir.path().join("raw.jsonl")).expect("open");
        let bytes = &buf[..record_bytes * batch];
        let (mut events, mut fsyncs, mut elapsed, mut ran) = (0, 0, Duration::ZERO, false);
        group.bench_function(BenchmarkId::from_parameter(format!("batch={batch}")), |b| {
            ran = true;
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    file.write_all(bytes).expect("write");
                    file.sync_data().expect("fdatasync");
                }
                let took = t.elapsed();
                events += iters * batch as u64;
                fsyncs += iters;
                elapsed += took;
                took
            })
        });
        if ran {
            tallies.lock().unwrap().push(Tally { name: format!("raw/batch={batch}"), events, fsyncs, elapsed });
        }
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let tallies = Mutex::new(Vec::new());
    raw_case(&mut c, &tallies);
    writer_case(&mut c, &tallies);
    c.final_summary();
    let tallies = tallies.into_inner().unwrap();
    if !tallies.is_empty() {
        println!("\n{:<40} {:>12} {:>10} {:>12} {:>14}", "case", "events", "fsyncs", "events/fsync", "events/s");
        for t in tallies {
            // The writer's figure includes the warm-up; elapsed covers exactly those appends.
            println!(
                "{:<40} {:>12} {:>10} {:>12.1} {:>14.0}",
                t.name,
                t.events,
                t.fsyncs,
                t.events as f64 / t.fsyncs.max(1) as f64,
                t.events as f64 / t.elapsed.as_secs_f64()
            );
        }
    }
}
