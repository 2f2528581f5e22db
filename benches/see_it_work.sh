#!/usr/bin/env bash
# Issue 9's figures: `bdp demo` wall time, and `bdp status` latency over a 1M-event log with the checkpoint
# that `bdp run` leaves (and without it), beside a process-start floor (`bdp --version`) in the same run.
#
#   cargo build --release --examples && benches/see_it_work.sh [RECORDS] [RUNS]
#
# Prints median, min and max wall time of RUNS runs (after one warm-up) of each command.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
runs=${2:-5}
target=${CARGO_TARGET_DIR:-target}
bdp="$target/release/bdp"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

time_runs() { # LABEL RUNS CMD...
  python3 - "$@" <<'PY'
import statistics, subprocess, sys, time
label, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = []
for i in range(runs + 1):
    t = time.perf_counter()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    d = (time.perf_counter() - t) * 1000
    if code not in (0, 1):
        sys.exit(f"{label}: exit {code}: {' '.join(cmd)}")
    if i > 0:
        times.append(d)
print(f"{label:<44} median {statistics.median(times):9.1f} ms   min {min(times):9.1f}   max {max(times):9.1f}   ({runs} runs)")
PY
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
time_runs "bdp --version (process start, the floor)" "$runs" "$bdp" --version
time_runs "bdp demo (12 issues, 4 agents, SIGKILL, recovery)" 3 "$bdp" demo

# A 1M-record log, then a `bdp run` on it that finds nothing to do: it recovers (a full fold, saving a
# checkpoint) and ends its session, leaving the end-of-session checkpoint behind.
big="$work/big"
mkdir -p "$big/.beads"
git -C "$big" init -q -b main
: > "$big/.beads/issues.jsonl"
"$target/release/examples/gen_log" "$big" "$records" 2>&1
"$bdp" --repo "$big" run --isolation none -- /bin/true >/dev/null
echo "index: $(du -h "$big/.bdp/index.sqlite" | cut -f1), log: $(du -sh "$big/.bdp/events" | cut -f1)"
time_runs "bdp status, $records records, checkpoint" "$runs" "$bdp" --repo "$big" status
time_runs "bdp status --json, $records records, checkpoint" "$runs" "$bdp" --repo "$big" status --json

# `status --watch` idle: in a 120x40 tmux pane, CPU time (utime + stime of /proc/PID/stat) over 30 s after
# its first frame, with nothing appended to the log.
sock="bdp-bench-$$"
tmux -L "$sock" -f /dev/null new-session -d -x 120 -y 40 -s idle "exec '$bdp' --repo '$big' status --watch"
t_start=$(date +%s%N)
until tmux -L "$sock" capture-pane -p -t idle 2>/dev/null | grep -q "recent events"; do sleep 0.1; done
t_ready=$(date +%s%N)
pid=$(tmux -L "$sock" display-message -p -t idle '#{pane_pid}')
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(ticks); sleep 30; c1=$(ticks)
tmux -L "$sock" kill-server
python3 -c "import os; t=$c1-$c0; hz=os.sysconf('SC_CLK_TCK'); print(f'status --watch, $records records: first frame after {($t_ready-$t_start)/1e9:.2f} s; idle CPU over 30 s: {t} ticks of 1/{hz} s = {t*100/hz/30:.2f} % of one core')"

mv "$big/.bdp/index.sqlite" "$work/index.sqlite"
time_runs "bdp status, $records records, no index" 3 "$bdp" --repo "$big" status
mv "$work/index.sqlite" "$big/.bdp/index.sqlite"
