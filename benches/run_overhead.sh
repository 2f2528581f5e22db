#!/bin/sh
# Orchestration overhead of `bdp run` (issue 4's benchmark), against `xargs -P 8` running the same no-op
# agent the same number of times. Usage:
#   cargo build --release && benches/run_overhead.sh [ISSUES=2000] [RUNS=5]
# Prints the median wall time of each, the ratio, and the per-issue overhead with worktrees on (skipped with
# WORKTREES=0). Also the floor of the wrapper contract: xargs running each `/bin/true` through `bdp-wrap`
# (its own process, its output files and exit file), without bdp, its log or the tracker.
# Every run starts from a fresh copy of the sandbox (a git repo with ISSUES open issues, no dependencies).
set -eu
N=${1:-2000}
RUNS=${2:-5}
BDP=${BDP:-$(cd "$(dirname "$0")/.." && pwd)/target/release/bdp}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/seed/.beads"
python3 "$(dirname "$0")/support/open_issues.py" "$N" nb- > "$WORK/seed/.beads/issues.jsonl"
git -C "$WORK/seed" init -q -b main
git -C "$WORK/seed" -c user.name=b -c user.email=b@b add -A
git -C "$WORK/seed" -c user.name=b -c user.email=b@b commit -qm seed

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { python3 -c 'import time; print(time.monotonic())'; }

time_bdp() {  # $1 = extra flags; prints seconds per run, one per line
    for _ in $(seq "$RUNS"); do
        rm -rf "$WORK/run" && cp -r "$WORK/seed" "$WORK/run"
        t0=$(now)
        "$BDP" --repo "$WORK/run" run --plain --agents 8 --max-load 1000 $1 --retries 0 -- /bin/true > /dev/null
        t1=$(now)
        python3 -c "print($t1 - $t0)"
        closed=$(grep -c '"status":"closed"' "$WORK/run/.beads/issues.jsonl")
        [ "$closed" = "$N" ] || { echo "only $closed of $N closed" >&2; exit 1; }
    done
}

time_xargs() {
    for _ in $(seq "$RUNS"); do
        t0=$(now)
        seq "$N" | xargs -P 8 -n 1 /bin/true
        t1=$(now)
        python3 -c "print($t1 - $t0)"
    done
}

time_wrap() {
    for _ in $(seq "$RUNS"); do
        rm -rf "$WORK/wrap" && mkdir -p "$WORK/wrap" && (cd "$WORK/wrap" && seq "$N" | xargs mkdir)
        t0=$(now)
        seq "$N" | xargs -P 8 -I{} "$(dirname "$BDP")/bdp-wrap" --dir "$WORK/wrap/{}" -- /bin/true
        t1=$(now)
        python3 -c "print($t1 - $t0)"
    done
}

none=$(time_bdp "--isolation none" | median)
xargs_s=$(time_xargs | median)
wrap=$(time_wrap | median)
if [ "${WORKTREES:-1}" = 0 ]; then wt=0; else wt=$(time_bdp "--isolation worktree" | median); fi
python3 - "$N" "$none" "$xargs_s" "$wt" "$wrap" <<'PY'
import sys
n, none, xa, wt, wrap = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
print(f"issues: {n}, agents: 8, median of runs")
print(f"bdp run --isolation none      {none:8.2f} s   {1000*none/n:6.2f} ms/issue")
print(f"xargs -P 8 -n 1 /bin/true     {xa:8.2f} s   {1000*xa/n:6.2f} ms/issue")
print(f"xargs -P 8 bdp-wrap … true     {wrap:8.2f} s   {1000*wrap/n:6.2f} ms/issue   (the wrapper's floor: {wrap/xa:.2f}x xargs)")
print(f"ratio bdp/xargs               {none/xa:8.2f} x   (bdp/the wrapper's floor {none/wrap:.2f}x)")
if wt:
    print(f"bdp run --isolation worktree  {wt:8.2f} s   {1000*wt/n:6.2f} ms/issue "
          f"(worktrees add {1000*(wt-none)/n:.2f} ms/issue)")
PY
