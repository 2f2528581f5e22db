#!/bin/sh
# File locks for agents (issue 14): what a lock costs and how many a path grants per second under
# contention, against the seeds' mkdir-lock loop on the same work, all in one run of the machine. Usage:
#   cargo build --release && benches/file_locks.sh [RUNS=5]
#
# 1. Uncontended acquire + release of one path, per pair:
#    - `bdp lock acquire Cargo.toml --holder h` then `bdp lock release Cargo.toml --holder h` (two processes;
#      each grant and release is also an fsynced record of the log);
#    - the same through `bdp mcp` (one server process for the loop, as an agent's CLI keeps it; JSON-RPC
#      round trips: benches/support/mcp_locks.py);
#    - the seeds' loop: `mkdir locks/Cargo.toml.lock` then `rmdir` (no holder, no log, no staleness).
# 2. 8 processes contending for one path, 25 grants each (200), each holding it while it makes and removes
#    a directory: grants per second, with `bdp lock` (waiters poll every 20–50 ms) and with the seeds' loop
#    (`until mkdir …; do sleep 0.05; done`, the poll of a shell loop that waits up to 60 s).
# Prints medians (min–max) of RUNS runs, interleaved.
set -eu
RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BDP=${BDP:-$ROOT/target/release/bdp}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
git init -q -b main repo && cd repo && git commit -q --allow-empty -m seed && mkdir -p .beads locks && cd ..

now() { python3 -c 'import time; print(time.monotonic())'; }
stats() { sort -g | python3 -c '
import sys
xs = [float(l) for l in sys.stdin]
unit, scale = sys.argv[1], float(sys.argv[2])
print(f"{xs[(len(xs)-1)//2]*scale:.2f} {unit} ({xs[0]*scale:.2f}–{xs[-1]*scale:.2f})")' "$1" "$2"; }

PAIRS=100
cli_pairs() {
    t0=$(now)
    i=0
    while [ $i -lt $PAIRS ]; do
        "$BDP" --repo repo lock acquire Cargo.toml --holder h > /dev/null
        "$BDP" --repo repo lock release Cargo.toml --holder h > /dev/null
        i=$((i + 1))
    done
    t1=$(now)
    python3 -c "print(($t1 - $t0) / $PAIRS)"
}
mkdir_pairs() {
    t0=$(now)
    i=0
    while [ $i -lt $PAIRS ]; do
        mkdir repo/locks/Cargo.toml.lock && rmdir repo/locks/Cargo.toml.lock
        i=$((i + 1))
    done
    t1=$(now)
    python3 -c "print(($t1 - $t0) / $PAIRS)"
}

GRANTS=25
cat > contend_bdp.sh <<SH
#!/bin/sh
i=0
while [ \$i -lt $GRANTS ]; do
    "$BDP" --repo repo lock acquire shared.txt --holder "p\$1" --wait 120s > /dev/null || exit 1
    mkdir repo/inside || { echo "double grant" >&2; exit 1; }
    rmdir repo/inside
    "$BDP" --repo repo lock release shared.txt --holder "p\$1" > /dev/null
    i=\$((i + 1))
done
SH
cat > contend_mkdir.sh <<SH
#!/bin/sh
i=0
while [ \$i -lt $GRANTS ]; do
    waited=0
    until mkdir repo/locks/shared.txt.lock 2>/dev/null; do
        sleep 0.05
        waited=\$((waited + 1))
        [ \$waited -lt 1200 ] || { echo BLOCKED >&2; exit 1; }
    done
    mkdir repo/inside || { echo "double grant" >&2; exit 1; }
    rmdir repo/inside
    rmdir repo/locks/shared.txt.lock
    i=\$((i + 1))
done
SH
chmod +x contend_bdp.sh contend_mkdir.sh
contend() { # SCRIPT -> grants per second
    t0=$(now)
    for p in 1 2 3 4 5 6 7 8; do ./"$1" $p & done
    wait
    t1=$(now)
    python3 -c "print(8 * $GRANTS / ($t1 - $t0))"
}

: > a; : > b; : > c; : > d; : > e
for _ in $(seq "$RUNS"); do
    cli_pairs >> a
    (cd repo && BDP_ISSUE=bench BDP_ATTEMPT=1 python3 "$ROOT/benches/support/mcp_locks.py" "$BDP" . $PAIRS) >> b
    mkdir_pairs >> c
    contend contend_bdp.sh >> d
    contend contend_mkdir.sh >> e
done
echo "uncontended acquire + release of one path, per pair ($PAIRS pairs a run, $RUNS runs, interleaved)"
echo "  bdp lock (two processes)      $(stats ms 1000 < a)"
echo "  bdp mcp (one server)          $(stats ms 1000 < b)"
echo "  mkdir + rmdir (the seeds)     $(stats ms 1000 < c)"
echo "8 processes contending for one path, $GRANTS grants each"
echo "  bdp lock                      $(stats grants/s 1 < d)"
echo "  mkdir loop, 50 ms poll        $(stats grants/s 1 < e)"
events=$(cat repo/.bdp/events/*.jsonl | wc -l)
echo "log records written: $events"
