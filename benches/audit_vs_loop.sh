#!/usr/bin/env bash
# `bdp audit` against the seed users' shell loop (one tracker `show` per lock file), same repository, same
# tracker (br), same run: 10 000 issues, 500 of them in_progress with a lock file held by a dead pid, and a
# log whose session claimed those 500 and died.
#
#   cargo build --release && benches/audit_vs_loop.sh [ISSUES] [LOCKS] [RUNS]
#
# Needs br (beads_rust) and jq on PATH. Prints each run's wall time and the medians.
set -euo pipefail
N=${1:-10000}
L=${2:-500}
RUNS=${3:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BDP="${CARGO_TARGET_DIR:-$ROOT/target}/release/bdp"
DIR=$(mktemp -d /tmp/bdp-audit-bench.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

(cd "$ROOT" && cargo run --release -q --example gen_audit -- "$DIR" "$N" "$L")
cd "$DIR"
git init -q
cp .beads/issues.jsonl /tmp/bdp-audit-bench-issues.jsonl
rm -rf .beads
br init --prefix bench >/dev/null
cp /tmp/bdp-audit-bench-issues.jsonl .beads/issues.jsonl
br sync --import-only >/dev/null
rm -f /tmp/bdp-audit-bench-issues.jsonl

# What users run today: for each lock file, ask the tracker about its issue and the holder's pid.
seed_loop() {
  for f in .bdp/locks/*.lock; do
    name=$(basename "$f" .lock)
    id=${name#issue%3A}
    pid=$(awk '{print $2}' "$f")
    status=$(br show "$id" --json | jq -r 'if type == "array" then .[0].status else .status end')
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$id: lock held by dead pid $pid; tracker: $status"
    fi
  done
}

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

echo "machine: $(nproc) cores; $N issues, $L lock files; tracker br $(br --version 2>/dev/null | head -1)"
"$BDP" --tracker br audit >/tmp/bdp-audit-bench.out || true
echo "bdp audit finds: $(tail -2 /tmp/bdp-audit-bench.out | head -1)"
echo "shell loop finds: $(seed_loop | wc -l) stale locks"
audit_times=()
loop_times=()
for _ in $(seq "$RUNS"); do
  t0=$(ms); "$BDP" --tracker br audit >/dev/null || true; t1=$(ms)
  audit_times+=($((t1 - t0)))
  t0=$(ms); seed_loop >/dev/null; t1=$(ms)
  loop_times+=($((t1 - t0)))
done
a=$(printf '%s\n' "${audit_times[@]}" | median)
l=$(printf '%s\n' "${loop_times[@]}" | median)
echo "bdp audit (ms):  ${audit_times[*]}  median $a"
echo "shell loop (ms): ${loop_times[*]}  median $l"
awk -v a="$a" -v l="$l" 'BEGIN { printf "bdp audit is %.1fx faster\n", l / a }'
