#!/bin/sh
# 12 issues in 3 chains of 4, agents of 0.4 s, 3 agents, no worktrees, JSONL tracker (issue 15): the wall time
# against the critical path (1.6 s), and the latency from a blocker's close in the tracker
# (`tracker_issue_closed`) to its dependent's agent starting (`agent_spawned`), read from the run's own log.
#   cargo build --release && benches/chain_latency.sh [RUNS=5]
set -eu
RUNS=${1:-5}
BDP=${BDP:-$(cd "$(dirname "$0")/.." && pwd)/target/release/bdp}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/seed/.beads"
python3 - > "$WORK/seed/.beads/issues.jsonl" <<'PY'
import json
for c in range(3):
    for n in range(4):
        rec = {"id": f"ch-{c}-{n}", "title": f"chain {c} step {n}", "status": "open", "priority": 2,
               "issue_type": "task", "created_at": "2026-01-01T00:00:00Z"}
        if n > 0:
            rec["dependencies"] = [{"issue_id": f"ch-{c}-{n}", "depends_on_id": f"ch-{c}-{n-1}", "type": "blocks"}]
        print(json.dumps(rec))
PY
git -C "$WORK/seed" init -q -b main
git -C "$WORK/seed" -c user.name=b -c user.email=b@b add -A
git -C "$WORK/seed" -c user.name=b -c user.email=b@b commit -qm seed
printf '#!/bin/sh\nsleep 0.4\n' > "$WORK/agent.sh" && chmod +x "$WORK/agent.sh"
: > "$WORK/walls"; : > "$WORK/latencies"
for _ in $(seq "$RUNS"); do
    rm -rf "$WORK/run" && cp -r "$WORK/seed" "$WORK/run"
    t0=$(date +%s%N)
    "$BDP" --repo "$WORK/run" run --plain --agents 3 --max-load 1000 --isolation none --retries 0 -- "$WORK/agent.sh" > /dev/null
    t1=$(date +%s%N)
    python3 -c "print(($t1 - $t0) / 1e9)" >> "$WORK/walls"
    "$BDP" --repo "$WORK/run" events --json | python3 -c '
import json, sys
from datetime import datetime
closed, spawned = {}, {}
for line in sys.stdin:
    r = json.loads(line)
    e, t = r["event"], datetime.fromisoformat(r["ts"].replace("Z", "+00:00")).timestamp()
    if e["type"] == "tracker_issue_closed":
        closed[e["issue"]] = t
    elif e["type"] == "agent_spawned":
        spawned.setdefault(e["issue"], t)
for c in range(3):
    for n in range(1, 4):
        print((spawned[f"ch-{c}-{n}"] - closed[f"ch-{c}-{n-1}"]) * 1000)
' >> "$WORK/latencies"
done
python3 - "$WORK/walls" "$WORK/latencies" <<'PY'
import sys
walls = sorted(float(l) for l in open(sys.argv[1]))
lat = sorted(float(l) for l in open(sys.argv[2]))
pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]
print(f"wall: median {pick(walls, 0.5):.2f} s ({walls[0]:.2f}-{walls[-1]:.2f}), {pick(walls, 0.5) / 1.6:.2f}x the critical path (1.6 s), {len(walls)} runs")
print(f"close -> spawn: median {pick(lat, 0.5):.1f} ms, p99 {pick(lat, 0.99):.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} dependents)")
PY
