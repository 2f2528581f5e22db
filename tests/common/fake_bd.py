#!/usr/bin/env python3
# THIS IS A FAKE `bd`, for bdp's tests only. It is not beads. It prints bd-shaped JSON (bare arrays; `show`
# returns an array; errors on stderr with exit 1) from a state file, `fake_bd_state.json`, in the directory it
# is run in. It implements just the calls bdp's bd backend makes, with bd's own flag names (cmd/bd/*.go):
#   list --json -n 0 --all | show ID... --json | ready --json --limit 0
#   update ID... [--claim] [--status S] [--assignee X] [--add-label L]... [--remove-label L]... --json
#   label add|remove ID LABEL --json | close ID... --reason R --json
# A flag bd does not have for that command is refused as cobra refuses it ("unknown flag", exit 1), so a
# backend that invents flags fails here. Every call is appended, as its argv in a JSON array, to
# `fake_bd_calls.jsonl` in the same directory (tests count the calls bdp makes).
# Knobs (environment): FAKE_BD_HANG=1 sleeps forever (timeout tests); FAKE_BD_ENVELOPE=1 wraps output in
# {"schema_version":1,"data":...}; FAKE_BD_LOSE_CLAIM=1 reports a claim as done without writing it (bd's race);
# FAKE_BD_SLOW_CLOSE=SECONDS makes `close` take that long (after it is logged) before it closes.
import json, os, sys, time

if os.environ.get("FAKE_BD_HANG"):
    time.sleep(3600)

with open("fake_bd_calls.jsonl", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")

STATE = "fake_bd_state.json"
issues = json.load(open(STATE))
argv = sys.argv[1:]

# Flags each command accepts: name -> takes a value. Global flags (bd's root command) go with every command.
GLOBAL = {"--json": False, "--actor": True, "--quiet": False, "--db": True}
FLAGS = {
    "list": {"-n": True, "--limit": True, "--all": False, "--status": True},
    "show": {},
    "ready": {"--limit": True, "-n": True},
    "update": {"--claim": False, "--status": True, "--assignee": True, "--add-label": True,
               "--remove-label": True, "--set-labels": True, "--title": True, "--priority": True},
    "label": {},
    "close": {"--reason": True, "--force": False},
}

if not argv or argv[0] not in FLAGS:
    sys.stderr.write("Error: unknown command %r for \"bd\"\n" % (argv[0] if argv else "")); sys.exit(1)
cmd = argv[0]
known = dict(GLOBAL, **FLAGS[cmd])
args, opts = [], {}
i = 1
while i < len(argv):
    a = argv[i]
    if a.startswith("-"):
        name, eq, inline = a.partition("=")
        if name not in known:
            sys.stderr.write("Error: unknown flag: %s\n" % name); sys.exit(1)
        if known[name]:
            if eq:
                value = inline
            else:
                if i + 1 >= len(argv):
                    sys.stderr.write("Error: flag needs an argument: %s\n" % name); sys.exit(1)
                i += 1; value = argv[i]
            opts.setdefault(name, []).append(value)
        else:
            opts[name] = [True]
    else:
        args.append(a)
    i += 1
actor = (opts.get("--actor") or ["fake"])[-1]

def opt(name):
    return opts[name][-1] if name in opts else None

def many(name):
    # cobra's StringSlice: repeatable, and each value may hold several, comma-separated
    return [v for value in opts.get(name, []) for v in value.split(",") if v]

def out(v):
    if os.environ.get("FAKE_BD_ENVELOPE"):
        v = {"schema_version": 1, "data": v}
    print(json.dumps(v))

def save():
    json.dump(issues, open(STATE, "w"))

def find(id, fatal=True):
    for i in issues:
        if i["id"] == id:
            return i
    sys.stderr.write('Error: no issue found matching "%s"\n' % id)
    if fatal: sys.exit(1)
    return None

if cmd == "list":
    out(issues)
elif cmd == "show":
    out([find(id) for id in args])
elif cmd == "ready":
    status = {i["id"]: i["status"] for i in issues}
    def blocked(i):
        return any(d["type"] == "blocks" and status.get(d["depends_on_id"], "closed") not in ("closed", "pinned")
                   for d in i.get("dependencies", []))
    out([i for i in issues if i["status"] == "open" and not blocked(i)])
elif cmd == "update":
    # bd applies an update per id, not atomically across ids: the others are updated, each failure is
    # reported on stderr, and the exit is non-zero.
    done, failed = [], False
    for id in args:
        i = find(id, fatal=False)
        if i is None:
            failed = True; continue
        if "--claim" in opts:
            holder = i.get("assignee")
            if holder and holder != actor:
                sys.stderr.write("Error: issue %s already claimed by %s\n" % (i["id"], holder)); failed = True; continue
            if i["status"] not in ("open", "in_progress"):
                sys.stderr.write("Error: cannot claim %s: status is %s\n" % (i["id"], i["status"])); failed = True; continue
            if not os.environ.get("FAKE_BD_LOSE_CLAIM"):
                i["status"] = "in_progress"; i["assignee"] = actor
        if opt("--status") is not None:
            i["status"] = opt("--status")
        if "--assignee" in opts:
            a = opt("--assignee")
            if a: i["assignee"] = a
            else: i.pop("assignee", None)
        labels = i.setdefault("labels", [])
        for l in many("--add-label"):
            if l not in labels: labels.append(l)
        for l in many("--remove-label"):
            if l in labels: labels.remove(l)
        if not labels: i.pop("labels")
        done.append(i)
    save(); out(done)
    if failed: sys.exit(1)
elif cmd == "label":
    i = find(args[1]); label = args[2]
    labels = i.setdefault("labels", [])
    if args[0] == "add" and label not in labels: labels.append(label)
    if args[0] == "remove" and label in labels: labels.remove(label)
    save(); out([{"status": args[0] + "ed", "issue_id": i["id"], "label": label}])
elif cmd == "close":
    time.sleep(float(os.environ.get("FAKE_BD_SLOW_CLOSE", "0")))
    issues = json.load(open(STATE))
    closed = []
    for id in args:
        i = find(id); i["status"] = "closed"; i["close_reason"] = opt("--reason"); closed.append(i)
    save(); out(closed)
