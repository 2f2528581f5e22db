#!/bin/sh
# Tracker calls and wall time of `bdp run` on br (issue 16), against the seeds' shell orchestrator on the same
# br repository and against the same bdp run on the JSONL tracker, all in one run of the machine. Usage:
#   cargo build --release && benches/tracker_calls.sh [RUNS=5]
# Needs br (beads_rust 0.7.6) on PATH.
#
# 1. 12 issues in 3 chains of 4, agents that sleep 0.4 s, 3 agents, no worktrees: critical path 1.6 s.
#    - `bdp --tracker br run --isolation none --agents 3` (phase labels on, the default), and with
#      `--phase-labels none`;
#    - the seeds' orchestrator: 3 worker loops that each take the first `br ready` issue whose mkdir lock they
#      get, `br update --claim`, run the agent, `br close`, and remove the lock;
#    - `bdp --tracker jsonl run` on the same issues.
# 2. 200 independent issues, 8 no-op agents (/bin/true): bdp on br against bdp on JSONL, and br calls per issue.
# Prints medians (min–max) of RUNS runs, and the tracker calls per issue from `bdp summary --json`.
set -eu
RUNS=${1:-5}
BDP=${BDP:-$(cd "$(dirname "$0")/.." && pwd)/target/release/bdp}
BR=$(command -v br) || { echo "br is not on PATH" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# seed DIR PREFIX CHAINS LENGTH: a git repo with a br database holding CHAINS chains of LENGTH issues.
seed() {
    mkdir -p "$1" && cd "$1"
    git init -q -b main && git config user.name b && git config user.email b@b
    "$BR" init --prefix "$2" > /dev/null
    c=0
    while [ "$c" -lt "$3" ]; do
        prev=""
        n=0
        while [ "$n" -lt "$4" ]; do
            id=$("$BR" create "chain $c step $n" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
            [ -n "$prev" ] && "$BR" dep add "$id" "$prev" > /dev/null
            prev=$id
            n=$((n + 1))
        done
        c=$((c + 1))
    done
    "$BR" sync --flush-only > /dev/null
    printf '/agent.sh\n/locks/\n' >> .git/info/exclude
    git add -A && git commit -qm seed
    cd - > /dev/null
}

cat > "$WORK/agent.sh" <<'SH'
#!/bin/sh
sleep 0.4
SH
chmod +x "$WORK/agent.sh"

# The seeds' shell orchestrator (worker loops, mkdir locks, br claim and close).
cat > "$WORK/seeds.sh" <<'SH'
#!/bin/sh
# seeds.sh REPO WORKERS AGENT
cd "$1"
mkdir -p locks
worker() {
    while :; do
        ids=$(br ready --json --limit 0 | python3 -c 'import json,sys; print(" ".join(i["id"] for i in json.load(sys.stdin)))')
        got=""
        for id in $ids; do
            if mkdir "locks/$id" 2>/dev/null; then
                if br update "$id" --claim --actor "w$2" --json > /dev/null 2>&1; then got=$id; break; fi
                rmdir "locks/$id"
            fi
        done
        if [ -z "$got" ]; then
            left=$(br list --json --limit 0 | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["issues"] if i["status"] != "closed"))')
            [ "$left" = 0 ] && return
            sleep 0.05
            continue
        fi
        "$3" "$got"
        br close "$got" --reason done --json > /dev/null
        rmdir "locks/$got"
    done
}
i=0
while [ "$i" -lt "$2" ]; do worker x "$i" "$3" & i=$((i + 1)); done
wait
SH
chmod +x "$WORK/seeds.sh"

seed "$WORK/chains" ch 3 4
seed "$WORK/wide" wd 200 1

now() { python3 -c 'import time; print(time.monotonic())'; }
stats() { sort -n | python3 -c '
import sys
xs = [float(l) for l in sys.stdin]
print(f"{xs[(len(xs)-1)//2]:.2f} s ({xs[0]:.2f}–{xs[-1]:.2f})")'; }

# one KIND SEED CMD...: copies SEED to a fresh dir, runs CMD in it, prints the seconds; keeps the copy in $WORK/last.
one() {
    name=$1
    rm -rf "$WORK/last" && cp -r "$2" "$WORK/last"
    shift 2
    t0=$(now)
    (cd "$WORK/last" && "$@" > /dev/null 2>&1)
    t1=$(now)
    python3 -c "print($t1 - $t0)"
    if [ "$name" = jsonl ]; then
        open=$(grep -vc '"status":"closed"' "$WORK/last/.beads/issues.jsonl" || true)
    else
        open=$(cd "$WORK/last" && "$BR" list --json --limit 0 | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["issues"] if i["status"] != "closed"))')
    fi
    [ "$open" = 0 ] || { echo "$open issues left open" >&2; exit 1; }
}
calls() { (cd "$WORK/last" && "$BDP" summary --json | python3 -c '
import json,sys
t = json.load(sys.stdin)["tracker_calls"]
print("%.2f per issue (%d calls: %d about one issue, %d lists or writes to several)" % (t["per_issue"], t["calls"], t["on_issues"], t["other"]))'); }

bdp_br="$BDP --tracker br run --plain --isolation none --max-load 1000 --retries 0"
bdp_jsonl="$BDP --tracker jsonl run --plain --isolation none --max-load 1000 --retries 0"

echo "12 issues, 3 chains of 4, agents of 0.4 s, 3 agents, no worktrees; critical path 1.60 s; $RUNS runs each, interleaved"
: > "$WORK/a"; : > "$WORK/b"; : > "$WORK/c"; : > "$WORK/d"
for _ in $(seq "$RUNS"); do
    one br "$WORK/chains" $bdp_br --agents 3 -- "$WORK/agent.sh" >> "$WORK/a"; ca=$(calls)
    one br "$WORK/chains" $bdp_br --agents 3 --phase-labels none -- "$WORK/agent.sh" >> "$WORK/b"; cb=$(calls)
    one br "$WORK/chains" "$WORK/seeds.sh" "$WORK/last" 3 "$WORK/agent.sh" >> "$WORK/c"
    one jsonl "$WORK/chains" $bdp_jsonl --agents 3 -- "$WORK/agent.sh" >> "$WORK/d"
done
echo "bdp --tracker br run                      $(stats < "$WORK/a")   tracker calls $ca"
echo "bdp --tracker br run --phase-labels none  $(stats < "$WORK/b")   tracker calls $cb"
echo "seeds' shell orchestrator on br           $(stats < "$WORK/c")"
echo "bdp --tracker jsonl run                   $(stats < "$WORK/d")"

echo
echo "200 independent issues, 8 no-op agents (/bin/true), no worktrees; $RUNS runs each, interleaved"
: > "$WORK/e"; : > "$WORK/f"
for _ in $(seq "$RUNS"); do
    one br "$WORK/wide" $bdp_br --agents 8 -- /bin/true >> "$WORK/e"; ce=$(calls)
    one jsonl "$WORK/wide" $bdp_jsonl --agents 8 -- /bin/true >> "$WORK/f"
done
echo "bdp --tracker br run     $(stats < "$WORK/e")   tracker calls $ce"
echo "bdp --tracker jsonl run  $(stats < "$WORK/f")"
