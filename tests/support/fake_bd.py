#!/usr/bin/env python3
# THIS IS A FAKE `bd`, for bdp's tests only. It is not beads. It prints bd-shaped JSON (bare arrays; `show`
# returns an array; errors on stderr with exit 1) from a state file, `fake_bd_state.json`, in the directory it
# is run in. It implements just the calls bdp's bd backend makes:
#   list --json -n 0 --all | show ID --json | ready --json --limit 0
#   update ID --claim --actor A --json | update ID --status S [--assignee X] --json
#   label add|remove ID LABEL --json | close ID --reason R --json
# Knobs (environment): FAKE_BD_HANG=1 sleeps forever (timeout tests); FAKE_BD_ENVELOPE=1 wraps output in
# {"schema_version":1,"data":...}; FAKE_BD_LOSE_CLAIM=1 reports a claim as done without writing it (bd's race).
import json, os, sys, time

if os.environ.get("FAKE_BD_HANG"):
    time.sleep(3600)

STATE = "fake_bd_state.json"
issues = json.load(open(STATE))
args = sys.argv[1:]
actor = "fake"
if "--actor" in args:
    i = args.index("--actor"); actor = args[i + 1]; del args[i:i + 2]
args = [a for a in args if a != "--json"]

def out(v):
    if os.environ.get("FAKE_BD_ENVELOPE"):
        v = {"schema_version": 1, "data": v}
    print(json.dumps(v))

def save():
    json.dump(issues, open(STATE, "w"))

def find(id):
    for i in issues:
        if i["id"] == id:
            return i
    sys.stderr.write('Error: no issue found matching "%s"\n' % id); sys.exit(1)

def opt(name):
    return args[args.index(name) + 1] if name in args else None

cmd = args[0]
if cmd == "list":
    out(issues)
elif cmd == "show":
    out([find(args[1])])
elif cmd == "ready":
    status = {i["id"]: i["status"] for i in issues}
    def blocked(i):
        return any(d["type"] == "blocks" and status.get(d["depends_on_id"], "closed") not in ("closed", "pinned")
                   for d in i.get("dependencies", []))
    out([i for i in issues if i["status"] == "open" and not blocked(i)])
elif cmd == "update":
    i = find(args[1])
    if "--claim" in args:
        holder = i.get("assignee")
        if holder and holder != actor:
            sys.stderr.write("Error: issue %s already claimed by %s\n" % (i["id"], holder)); sys.exit(1)
        if not os.environ.get("FAKE_BD_LOSE_CLAIM"):
            i["status"] = "in_progress"; i["assignee"] = actor
    if opt("--status") is not None:
        i["status"] = opt("--status")
    if "--assignee" in args:
        a = opt("--assignee")
        if a: i["assignee"] = a
        else: i.pop("assignee", None)
    save(); out([i])
elif cmd == "label":
    i = find(args[2]); label = args[3]
    labels = i.setdefault("labels", [])
    if args[1] == "add" and label not in labels: labels.append(label)
    if args[1] == "remove" and label in labels: labels.remove(label)
    save(); out([{"status": args[1] + "ed", "issue_id": i["id"], "label": label}])
elif cmd == "close":
    i = find(args[1]); i["status"] = "closed"; i["close_reason"] = opt("--reason"); save(); out([i])
else:
    sys.stderr.write("fake bd: unknown command %s\n" % cmd); sys.exit(2)
