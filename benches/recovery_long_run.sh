#!/bin/sh
# Recovery deep into a long run (issue 15): `bdp run` itself writes a log of at least RECORDS records, in
# sessions of BATCH no-op issues each (a fresh issues.jsonl per session, so the tracker file stays small),
# then a session is SIGKILLed mid-run KILLS times, and each restart reports how long loading the state took
# (`state loaded in … ms`, logged by recovery at RUST_LOG=info, before it saves a checkpoint of its own when
# the tail was long). Usage:
#   cargo build --release && benches/recovery_long_run.sh [RECORDS=1000000] [BATCH=10000] [KILLS=5]
# Prints the log's size, the checkpoint each restart started from, and the load times with their median.
# WORK=DIR keeps the repository in DIR (and reuses the log already there): the log takes long to make.
set -eu
RECORDS=${1:-1000000}
BATCH=${2:-10000}
KILLS=${3:-5}
BDP=${BDP:-$(cd "$(dirname "$0")/.." && pwd)/target/release/bdp}
SUPPORT=$(cd "$(dirname "$0")/support" && pwd)
if [ -z "${WORK:-}" ]; then
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
cd "$WORK"
if [ ! -d .git ]; then
    git init -q -b main && git config user.name b && git config user.email b@b
    mkdir -p .beads && : > .beads/issues.jsonl && git add -A && git commit -qm seed
    printf '/.beads/\n' >> .git/info/exclude
fi

issues() {  # a fresh tracker of $1 open issues, ids unique across batches (the log's length is in them)
    batch=$(records 2>/dev/null || echo 0)
    python3 "$SUPPORT/open_issues.py" "$1" "lr-${batch}x" > .beads/issues.jsonl
}
records() { cat .bdp/events/*.jsonl | wc -l; }
run() { "$BDP" run --plain --agents 8 --max-load 1000 --isolation none --retries 0 -- /bin/true; }

while [ "$(records 2>/dev/null || echo 0)" -lt "$RECORDS" ]; do
    issues "$BATCH"
    run > /dev/null
done
echo "log: $(records) records, $(du -sh .bdp/events | cut -f1), index $(du -sh .bdp/index.sqlite | cut -f1)"

times=""
k=0
while [ "$k" -lt "$KILLS" ]; do
    k=$((k + 1))
    issues 2000
    # Not through `run`: `$!` must be bdp's pid, not a subshell's.
    "$BDP" run --plain --agents 8 --max-load 1000 --isolation none --retries 0 -- /bin/true > /dev/null 2>&1 &
    pid=$!
    sleep 1.5
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    at=$(records)
    line=$(RUST_LOG=info "$BDP" run --plain --agents 8 --max-load 1000 --isolation none --retries 0 -- /bin/true 2>&1 \
        | grep -o 'state loaded in [0-9.]* ms.*' | head -1)
    echo "restart $k after SIGKILL at $at records: $line"
    times="$times $(echo "$line" | sed 's/state loaded in \([0-9.]*\) ms.*/\1/')"
done
echo "$times" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {printf "state loading after SIGKILL: median %s ms (%s–%s), %d restarts\n", a[int((NR+1)/2)], a[1], a[NR], NR}'
