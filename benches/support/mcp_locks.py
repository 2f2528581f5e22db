#!/usr/bin/env python3
"""Times lock_acquire + lock_release through `bdp mcp`, as an MCP client does: one server process for the
whole loop (as an agent's CLI keeps it), newline-delimited JSON-RPC on its stdin and stdout.

Usage: mcp_locks.py BDP REPO PAIRS  ->  prints the mean seconds per acquire + release pair.
The environment names the holder (BDP_ISSUE, BDP_ATTEMPT), as bdp run gives it to an agent.
"""
import json
import subprocess
import sys
import time

bdp, repo, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = subprocess.Popen([bdp, "mcp"], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
next_id = 0


def call(method, params):
    global next_id
    next_id += 1
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params}) + "\n")
    server.stdin.flush()
    while True:
        message = json.loads(server.stdout.readline())
        if message.get("id") == next_id:
            return message


call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
server.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
server.stdin.flush()
start = time.perf_counter()
for _ in range(pairs):
    got = call("tools/call", {"name": "lock_acquire", "arguments": {"paths": ["Cargo.toml"]}})
    assert not got["result"].get("isError"), got
    got = call("tools/call", {"name": "lock_release", "arguments": {"paths": ["Cargo.toml"]}})
    assert not got["result"].get("isError"), got
elapsed = time.perf_counter() - start
server.stdin.close()
server.wait()
print(elapsed / pairs)
