#!/bin/sh
# What the wrapper around each agent costs (issue 15): N starts of each, in turn, in one run of the machine.
#   cargo build --release && benches/wrapper_start.sh [N=300] [ROUNDS=3]
# - /bin/true alone (what xargs pays per item);
# - bdp-wrap --dir D -- /bin/true (the small wrapper program bdp spawns when it is installed beside bdp);
# - bdp __wrap --dir D -- /bin/true (the same code inside the whole bdp program: the fallback).
# Prints ms per start, each round on a line.
set -eu
N=${1:-300}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BDP=${BDP:-$ROOT/target/release/bdp}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
per() { # CMD… -> ms per run
    t0=$(date +%s%N)
    i=0
    while [ $i -lt "$N" ]; do "$@" > /dev/null 2>&1; i=$((i + 1)); done
    t1=$(date +%s%N)
    python3 -c "print(f'{($t1 - $t0) / $N / 1e6:.2f}')"
}
for _ in $(seq "$ROUNDS"); do
    echo "/bin/true $(per /bin/true) ms   bdp-wrap $(per "$(dirname "$BDP")/bdp-wrap" --dir "$DIR" -- /bin/true) ms   bdp __wrap $(per "$BDP" __wrap --dir "$DIR" -- /bin/true) ms"
done
