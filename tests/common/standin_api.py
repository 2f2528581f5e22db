#!/usr/bin/env python3
"""A stand-in for Anthropic's Messages API and OpenAI's Responses API on loopback, so the real `claude`
and `codex` CLIs run offline in tests.

Start: `standin_api.py` prints `port N` on its first line, then serves until killed. Point claude at it
with ANTHROPIC_BASE_URL=http://127.0.0.1:N/<mode> (any ANTHROPIC_API_KEY), codex with a model provider
whose base_url is http://127.0.0.1:N/<mode>/v1 and wire_api "responses". The mode (the first path part)
says what the "model" does:

  commit    first turn: a Bash tool call that writes agent.txt and commits it; after the tool's result:
            a final answer. (`commit:CMD` with CMD url-quoted runs CMD instead.)
  answer    a final answer at once, no tool call.
  overload  every request fails with HTTP 529 `overloaded_error`.
  badkey    every request fails with HTTP 401 `authentication_error`.
  hangfirst a session's first request is never answered (the CLI waits, silent: a stall); later
            requests of the same session (the CLI's x-claude-code-session-id: a resume) as `commit`.
  mcp       as `commit`, but first calls bdp's MCP tools, one per turn: `lock_acquire` on agent.txt, then
            `report_progress` (whatever name the CLI gives them: the tool whose name ends so).
  toolong   every request fails with HTTP 400 `invalid_request_error`, "prompt is too long" (the context
            is exhausted; Responses: `context_length_exceeded`).

For codex the tool call is `exec_command` (its shell tool) and the session is its `session-id` header.

Every request is appended as one JSON line to the file named by STANDIN_LOG, if set (tests read which
session asked what). Requests that are not for /v1/messages get a 404 the CLI tolerates.
"""

import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_COMMAND = "echo 'written by the model' > agent.txt && git add agent.txt && git commit -q -m 'agent: agent.txt'"
SEEN = set()
SEEN_LOCK = threading.Lock()
USAGE = {"input_tokens": 1200, "output_tokens": 80, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def sse(events):
    out = []
    for kind, data in events:
        out.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def message(content, stop_reason, model):
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": USAGE,
    }


def stream(content, stop_reason, model):
    start = message([], None, model)
    start["usage"] = {**USAGE, "output_tokens": 1}
    events = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(content):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "tool_use", "id": block["id"],
                                                                     "name": block["name"], "input": {}}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "input_json_delta",
                                                             "partial_json": json.dumps(block["input"])}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": USAGE["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return sse(events)


MCP_STEPS = [("lock_acquire", {"paths": ["agent.txt"], "wait_seconds": 5}),
             ("report_progress", {"status": "writing agent.txt", "percent": 50, "step": 2, "steps": 3})]


def tool_results(body):
    """The texts of the tool results so far, Messages or Responses shaped, in order."""
    out = []
    for m in body.get("messages", []):
        for c in m.get("content") if isinstance(m.get("content"), list) else []:
            if isinstance(c, dict) and c.get("type") == "tool_result":
                inner = c.get("content")
                if isinstance(inner, list):
                    inner = " ".join(x.get("text", "") for x in inner if isinstance(x, dict))
                out.append(str(inner))
    for i in body.get("input", []):
        if isinstance(i, dict) and i.get("type") == "function_call_output":
            output = i.get("output")
            out.append(output if isinstance(output, str) else json.dumps(output))
    return out


def tool_names(body):
    """Every tool name the request offers (Responses namespaces hold tools of their own)."""
    names = []
    for t in body.get("tools", []):
        if not isinstance(t, dict):
            continue
        if t.get("name"):
            names.append(t["name"])
        for inner in t.get("tools", []) or []:
            if isinstance(inner, dict) and inner.get("name"):
                names.append(t.get("name", "") + "." + inner["name"] if t.get("name") else inner["name"])
    return names


def mcp_call(body):
    """In `mcp` mode, the MCP tool call this turn makes (name, input), if one is left."""
    names = tool_names(body)
    done = len(tool_results(body))
    if done < len(MCP_STEPS):
        suffix, args = MCP_STEPS[done]
        for name in names:
            if name.endswith(suffix):
                return name, args
    return None


def has_tool_result(body):
    for m in body.get("messages", []):
        content = m.get("content")
        if isinstance(content, list) and any(isinstance(c, dict) and c.get("type") == "tool_result" for c in content):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.send(404, b'{"type":"error","error":{"type":"not_found_error","message":"not here"}}')

    def do_HEAD(self):
        self.send(200, b"")

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        path = urllib.parse.urlparse(self.path).path
        parts = [p for p in path.split("/") if p]
        mode = parts[0] if parts and parts[0] != "v1" else "commit"
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        log = os.environ.get("STANDIN_LOG")
        responses = path.endswith("/v1/responses")
        session = self.headers.get("session-id" if responses else "x-claude-code-session-id")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"mode": mode, "path": path, "stream": body.get("stream", False),
                                    "tool_result": has_tool_result(body) or has_call_output(body),
                                    "tools": [t.get("name") for t in body.get("tools", []) if isinstance(t, dict)],
                                    "messages": len(body.get("messages", body.get("input", []))),
                                    "metadata": body.get("metadata"),
                                    "last_user": last_user_text(body),
                                    "tool_names": tool_names(body),
                                    "tool_results": tool_results(body),
                                    "session": session}) + "\n")
        if os.environ.get("STANDIN_RAW"):
            with open(os.environ["STANDIN_RAW"], "a") as f:
                f.write(json.dumps(body) + "\n")
        if responses:
            self.answer_responses_api(mode, body, session)
            return
        if not path.endswith("/v1/messages"):
            # count_tokens and the like: a plausible answer.
            self.send(200, json.dumps({"input_tokens": 100}).encode())
            return
        if mode == "overload":
            self.send(529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
            return
        if mode == "badkey":
            self.send(401, b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}')
            return
        if mode == "hangfirst":
            first = self.headers.get("x-claude-code-session-id") or json.dumps(body.get("messages", [None])[0])
            with SEEN_LOCK:
                seen = first in SEEN
                SEEN.add(first)
            if not seen and body.get("stream"):
                time.sleep(120)
                return
            mode = "commit"
        if mode == "toolong":
            self.send(400, b'{"type":"error","error":{"type":"invalid_request_error",'
                           b'"message":"prompt is too long: 250000 tokens > 200000 maximum"}}')
            return
        model = body.get("model", "claude-standin")
        tools = [t.get("name") for t in body.get("tools", []) if isinstance(t, dict)]
        command = DEFAULT_COMMAND
        if mode.startswith("commit:"):
            command = urllib.parse.unquote(mode[len("commit:"):])
        call = mcp_call(body) if mode == "mcp" else None
        if call:
            content = [{"type": "text", "text": "First the lock, then a word on progress."},
                       {"type": "tool_use", "id": f"toolu_standin_mcp_{len(tool_results(body))}", "name": call[0],
                        "input": call[1]}]
            stop = "tool_use"
        elif mode == "mcp" and "Bash" in tools and len(tool_results(body)) == len(MCP_STEPS):
            content = [{"type": "tool_use", "id": "toolu_standin_1", "name": "Bash",
                        "input": {"command": command, "description": "Write agent.txt and commit it"}}]
            stop = "tool_use"
        elif mode.startswith("commit") and "Bash" in tools and not has_tool_result(body):
            content = [{"type": "text", "text": "I will write the file and commit it."},
                       {"type": "tool_use", "id": "toolu_standin_1", "name": "Bash",
                        "input": {"command": command, "description": "Write agent.txt and commit it"}}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": "Done: agent.txt is written and committed."}]
            stop = "end_turn"
        if body.get("stream"):
            self.send(200, stream(content, stop, model), "text/event-stream")
        else:
            self.send(200, json.dumps(message(content, stop, model)).encode())


def has_call_output(body):
    return any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in body.get("input", []))


def last_user_text(body):
    """The text of the last user message (a resume's new message), Messages or Responses shaped."""
    for m in reversed(body.get("messages", body.get("input", []))):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        texts = [c.get("text", "") for c in content or [] if isinstance(c, dict) and c.get("type") in ("text", "input_text")]
        if texts:
            return texts[-1]
    return None


RESPONSES_USAGE = {"input_tokens": 1200, "input_tokens_details": {"cached_tokens": 200}, "output_tokens": 80,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1280}


def responses_sse(events):
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _responses(self, mode, body, session):
    """The Responses API (codex): the same modes, as `response.*` stream events."""
    if mode == "overload":
        self.send(503, b'{"error":{"message":"Service overloaded","type":"server_error","code":"overloaded"}}')
        return
    if mode == "badkey":
        self.send(401, b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error",'
                       b'"code":"invalid_api_key"}}')
        return
    if mode == "toolong":
        self.send(400, b'{"error":{"message":"Your input exceeds the context window of this model.",'
                       b'"type":"invalid_request_error","param":"input","code":"context_length_exceeded"}}')
        return
    if mode == "hangfirst":
        with SEEN_LOCK:
            seen = session in SEEN
            SEEN.add(session)
        if not seen:
            time.sleep(120)
            return
        mode = "commit"
    command = DEFAULT_COMMAND
    if mode.startswith("commit:"):
        command = urllib.parse.unquote(mode[len("commit:"):])
    tools = [t.get("name") for t in body.get("tools", []) if isinstance(t, dict)]
    events = [{"type": "response.created", "response": {"id": "resp_standin"}}]
    call = mcp_call(body) if mode == "mcp" else None
    if call:
        n = len(tool_results(body))
        item = {"type": "function_call", "id": f"fc_standin_mcp_{n}", "call_id": f"call_standin_mcp_{n}",
                "name": call[0], "arguments": json.dumps(call[1])}
        if "." in call[0]:
            # A tool of a namespace (codex puts an MCP server's tools in one): named apart.
            item["namespace"], item["name"] = call[0].split(".", 1)
    elif mode == "mcp" and "exec_command" in tools and len(tool_results(body)) == len(MCP_STEPS):
        item = {"type": "function_call", "id": "fc_standin_1", "call_id": "call_standin_1", "name": "exec_command",
                "arguments": json.dumps({"cmd": command})}
    elif mode.startswith("commit") and "exec_command" in tools and not has_call_output(body):
        item = {"type": "function_call", "id": "fc_standin_1", "call_id": "call_standin_1", "name": "exec_command",
                "arguments": json.dumps({"cmd": command})}
    else:
        item = {"type": "message", "role": "assistant", "id": "msg_standin",
                "content": [{"type": "output_text", "text": "Done: agent.txt is written and committed."}]}
    events.append({"type": "response.output_item.done", "item": item})
    events.append({"type": "response.completed", "response": {"id": "resp_standin", "usage": RESPONSES_USAGE}})
    self.send(200, responses_sse(events), "text/event-stream")


Handler.answer_responses_api = _responses


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
