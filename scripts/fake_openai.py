"""A fake OpenAI-compatible upstream for the smoke test: `POST /v1/chat/completions` in the Chat
Completions wire format (whole answers, and SSE chunks ending with a usage chunk and `[DONE]`).

Deterministic: when the newest message is a tool's output it answers with that output; when tools
are offered it calls the first one with `{"city": "Paris"}`; otherwise it echoes the newest user
text. Every request body is kept in `requests`, so the smoke can check what CodeChat forwarded.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _reply(body):
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return {"role": "assistant", "content": f"The tool said: {last.get('content')}"}, "stop"
    if body.get("tools"):
        name = body["tools"][0]["function"]["name"]
        call = {"id": "call_fake_1", "type": "function",
                "function": {"name": name, "arguments": json.dumps({"city": "Paris"})}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return {"role": "assistant", "content": f"Fake upstream: {content}"}, "stop"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.server.requests.append(body)
        message, finish = _reply(body)
        usage = {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28}
        base = {"id": "chatcmpl-fake", "created": 1, "model": body.get("model")}
        if not body.get("stream"):
            out = json.dumps(dict(base, object="chat.completion", usage=usage, choices=[
                {"index": 0, "message": message, "finish_reason": finish}])).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        chunk = dict(base, object="chat.completion.chunk")
        events = [dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        for word in (message.get("content") or "").split(" "):
            events.append(dict(chunk, choices=[{"index": 0, "delta": {"content": word + " "}}]))
        events.append(dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]))
        events.append(dict(chunk, choices=[], usage=usage))
        for e in events:
            self.wfile.write(f"data: {json.dumps(e)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


def start():
    """Serves on a free local port in a daemon thread; returns (server, base URL ending in /v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"
