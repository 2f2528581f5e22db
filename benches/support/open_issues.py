"""Prints N open task issues as beads JSONL, ids PREFIX0 … PREFIX{N-1}, priorities 0-4 in turn, no
dependencies: the sandbox of the no-op benches. Usage: python3 open_issues.py N PREFIX"""
import json
import sys

n, prefix = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    print(json.dumps({"id": f"{prefix}{i}", "title": f"no-op {i}", "status": "open", "priority": i % 5,
                      "issue_type": "task", "created_at": "2026-01-01T00:00:00Z"}))
