#!/bin/sh
# The cost per issue of a worktree, its merge and its cleanup (issue 15): `bdp run` with worktrees against the
# same run in the repository itself, and against plain git doing the same in a loop, in one run of the machine.
#   cargo build --release && benches/worktree_cost.sh [ISSUES=50] [RUNS=3]
# Every issue's agent commits one file. One agent, so the runs are serial like the loop.
# - bdp run --isolation worktree: worktree, agent, merge (--no-ff) into main, worktree and branch removed;
# - bdp run --isolation none: the agent commits on main (what bdp costs without worktrees);
# - plain git: `git worktree add -b B DIR main`, commit in it, `git merge --no-ff B`, `git worktree remove`,
#   `git branch -d`.
set -eu
N=${1:-50}
RUNS=${2:-3}
BDP=${BDP:-$(cd "$(dirname "$0")/.." && pwd)/target/release/bdp}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/seed/.beads"
python3 "$(dirname "$0")/support/open_issues.py" "$N" wt- > "$WORK/seed/.beads/issues.jsonl"
git -C "$WORK/seed" init -q -b main
git -C "$WORK/seed" config user.name b && git -C "$WORK/seed" config user.email b@b
git -C "$WORK/seed" add -A && git -C "$WORK/seed" commit -qm seed
cat > "$WORK/agent.sh" <<'SH'
#!/bin/sh
echo "$BDP_ISSUE" > "file-$BDP_ISSUE.txt" && git add "file-$BDP_ISSUE.txt" && git commit -qm "work on $BDP_ISSUE"
SH
chmod +x "$WORK/agent.sh"
now() { date +%s%N; }
per_issue() { python3 -c "print(f'{($2 - $1) / 1e6 / $N:.1f}')" ; }
: > "$WORK/a"; : > "$WORK/b"; : > "$WORK/c"
for _ in $(seq "$RUNS"); do
    for iso in worktree none; do
        rm -rf "$WORK/run" && cp -r "$WORK/seed" "$WORK/run"
        t0=$(now)
        "$BDP" --repo "$WORK/run" run --plain --agents 1 --max-load 1000 --retries 0 --isolation $iso -- "$WORK/agent.sh" > /dev/null
        t1=$(now)
        [ "$(git -C "$WORK/run" log --oneline main | grep -c 'work on')" = "$N" ] || { echo "not all work landed" >&2; exit 1; }
        if [ $iso = worktree ]; then per_issue "$t0" "$t1" >> "$WORK/a"; else per_issue "$t0" "$t1" >> "$WORK/b"; fi
    done
    rm -rf "$WORK/run" && cp -r "$WORK/seed" "$WORK/run"
    t0=$(now)
    i=0
    while [ $i -lt "$N" ]; do
        d="$WORK/run/.wt/wt-$i"
        git -C "$WORK/run" worktree add -q -b "b/wt-$i" "$d" main
        (cd "$d" && echo "wt-$i" > "file-wt-$i.txt" && git add "file-wt-$i.txt" && git commit -qm "work on wt-$i")
        git -C "$WORK/run" merge -q --no-ff -m "merge wt-$i" "b/wt-$i"
        git -C "$WORK/run" worktree remove "$d"
        git -C "$WORK/run" branch -q -d "b/wt-$i"
        i=$((i + 1))
    done
    t1=$(now)
    per_issue "$t0" "$t1" >> "$WORK/c"
done
med() { sort -g "$1" | python3 -c 'import sys; xs=[float(l) for l in sys.stdin]; print(f"{xs[(len(xs)-1)//2]:.1f} ms ({xs[0]:.1f}-{xs[-1]:.1f})")'; }
echo "$N issues, one agent, $RUNS runs each, per issue:"
echo "  bdp run --isolation worktree   $(med "$WORK/a")"
echo "  bdp run --isolation none       $(med "$WORK/b")"
echo "  plain git worktree/merge loop  $(med "$WORK/c")"
