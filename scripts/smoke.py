#!/usr/bin/env python3
"""Smoke test: starts the README's run command (scripts/dev) and walks a real user flow over HTTP.

register -> login -> me -> refresh -> logout, plus the public routes, against every function running
under `cargo lambda watch`, the chat WebSocket, an agent calling a real MCP tool server, and the web
client in headless Chromium (node and web/node_modules, which scripts/test installs). Exits non-zero
on the first surprise. Standard library only (the MCP server is the tests' own, on the `mcp` package).
"""
import base64
import json
import os
import socket
import struct
import tomllib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import fake_openai

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = int(os.environ.get("SMOKE_PORT", "9100"))
# The MCP test server's endpoint, set by start_mcp_server.
MCP_URL = ""
BASE = f"http://127.0.0.1:{PORT}/api/v1"
STARTUP_TIMEOUT_S = int(os.environ.get("SMOKE_STARTUP_TIMEOUT", "900"))


def call(method, path, body=None, token=None, form=None, headers=None):
    data, hdrs = None, dict(headers or {})
    if body is not None:
        data, hdrs["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data, hdrs["Content-Type"] = form.encode(), "application/x-www-form-urlencoded"
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=120) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def expect(what, status, got):
    code, headers, raw = got
    if code != status:
        sys.exit(f"smoke: {what}: expected {status}, got {code}: {raw[:500]!r}")
    ctype = headers.get("Content-Type", "")
    body = json.loads(raw) if raw and "json" in ctype else raw
    if code >= 400 and ctype != "application/problem+json":
        sys.exit(f"smoke: {what}: error without problem+json ({ctype})")
    print(f"smoke: ok   {what} -> {code}")
    return body


def wait_until_up(proc):
    deadline = time.time() + STARTUP_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"smoke: scripts/dev exited with {proc.returncode}")
        try:
            code, _, _ = call("GET", "/health")
            if code == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    sys.exit("smoke: the API did not come up in time")


def every_function_answers():
    """Each function of the service answers one of its paths itself (our layers set x-request-id;
    the watch router's own errors do not). The functions and their routes are read from the watch
    router in Cargo.toml, which tests/api/functions.rs keeps equal to codechat::api::FUNCTIONS."""
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        router = tomllib.load(f)["workspace"]["metadata"]["lambda"]["watch"]["router"]
    first_path = {}
    for path, function in router.items():
        if path != "/" and "{*" not in path:  # the catch-alls
            first_path.setdefault(function, path)
    # Every method of a path reaches its function: a GET it does not serve is its own 405 problem.
    for function, path in sorted(first_path.items()):
        method = "GET"
        path = path.replace("{id}", str(uuid.uuid4())).removeprefix("/api/v1")
        code, headers, raw = call(method, path)
        ctype = headers.get("Content-Type", "")
        if not headers.get("x-request-id") or (code >= 400 and ctype != "application/problem+json"):
            sys.exit(f"smoke: function {function} did not answer {method} {path} itself: {code} {raw[:300]!r}")
        print(f"smoke: ok   function {function} answers {method} {path} -> {code}")


def flow(upstream):
    every_function_answers()
    # Unknown paths and wrong methods are problems from our functions, not the local router's own JSON.
    expect("unknown path", 404, call("GET", "/no/such/thing"))
    expect("wrong method", 405, call("DELETE", "/models"))
    expect("wrong method on a streaming function", 405, call("GET", "/chat"))
    health = expect("health", 200, call("GET", "/health"))
    assert health["status"] == "ok" and health["checks"]["store"] == "ok", health
    models = expect("models", 200, call("GET", "/models"))
    assert any(m["id"] == "local/echo" and m["available"] for m in models["items"]), models
    doc = expect("openapi.json", 200, call("GET", "/openapi.json"))
    assert doc["openapi"].startswith("3.1"), doc["openapi"]
    expect("docs", 200, call("GET", "/docs"))

    email = f"smoke-{uuid.uuid4().hex[:12]}@example.com"
    password = "smoke test password"
    reg = expect("register", 201, call("POST", "/auth/register", {"email": email, "password": password}))
    expect("register again", 409, call("POST", "/auth/register", {"email": email, "password": password}))
    expect("register bad body", 422, call("POST", "/auth/register", {"email": "nope", "password": "x"}))
    expect("login wrong password", 401, call("POST", "/auth/login", {"email": email, "password": "wrong password"}))
    login = expect("login", 200, call("POST", "/auth/login", {"email": email, "password": password}))
    # The token minted by the auth function is accepted by the users function: one shared secret.
    me = expect("me", 200, call("GET", "/users/me", token=login["access_token"]))
    assert me["email"] == email and me["id"] == reg["user"]["id"], me
    expect("me without token", 401, call("GET", "/users/me"))
    renamed = expect("patch me", 200, call("PATCH", "/users/me", {"display_name": "Smoke"}, token=login["access_token"]))
    assert renamed["display_name"] == "Smoke", renamed
    chat_flow(login["access_token"])
    websocket_flow(login["access_token"], health["websocket_url"])
    openai_sdk_flow(login["access_token"], upstream)
    attachments_flow(login["access_token"])
    projects_flow(login["access_token"])
    agents_admin_flow(login["access_token"], reg["user"]["id"], email)
    knowledge_flow()
    refreshed = expect("refresh", 200, call("POST", "/auth/refresh", {"refresh_token": login["refresh_token"]}))
    expect("refresh reuse", 401, call("POST", "/auth/refresh", {"refresh_token": login["refresh_token"]}))
    fresh = expect("login again", 200, call("POST", "/auth/login", {"email": email, "password": password}))
    expect("logout", 204, call("POST", "/auth/logout", {"refresh_token": fresh["refresh_token"]}, token=fresh["access_token"]))
    expect("refresh after logout", 401, call("POST", "/auth/refresh", {"refresh_token": fresh["refresh_token"]}))
    assert refreshed["token_type"] == "bearer"


def sse_events(raw):
    events = []
    for block in raw.decode().split("\n\n"):
        name = data = None
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:].strip())
        if name:
            events.append((name, data))
    return events


def chat_flow(token):
    """A streamed turn on local/echo through the chat function's streaming runtime, then the same
    conversation read back through the conversations function."""
    req = urllib.request.Request(
        BASE + "/chat",
        data=json.dumps({"message": "Hello over real HTTP", "stream": True}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}", "Idempotency-Key": "smoke-1"},
    )
    with urllib.request.urlopen(req, timeout=120) as res:
        assert res.status == 200 and res.headers["Content-Type"].startswith("text/event-stream"), res.headers
        events = sse_events(res.read())
    names = [n for n, _ in events]
    assert names[0] == "meta" and names[-1] == "done" and names.count("delta") > 3, names
    text = "".join(d["text"] for n, d in events if n == "delta")
    done = events[-1][1]
    assert done["assistant_message"]["content"] == text and text.endswith("Hello over real HTTP"), done
    print(f"smoke: ok   streamed chat -> {len(names)} events")
    conversation_id = events[0][1]["conversation_id"]
    # The retry with the same Idempotency-Key replays the turn instead of adding one.
    replay = expect("chat retry (idempotent)", 200, call("POST", "/chat", {"message": "Hello over real HTTP"}, token=token,
                                                         headers={"Idempotency-Key": "smoke-1"}))
    assert replay["assistant_message"]["id"] == done["assistant_message"]["id"], replay
    msgs = expect("messages", 200, call("GET", f"/conversations/{conversation_id}/messages", token=token))
    assert [m["role"] for m in msgs["items"]] == ["user", "assistant"], msgs
    listed = expect("conversations", 200, call("GET", "/conversations", token=token))
    assert listed["items"][0]["id"] == conversation_id and listed["items"][0]["message_count"] == 2, listed
    usage = expect("usage", 200, call("GET", f"/conversations/{conversation_id}/usage", token=token))
    assert usage["total"]["output_tokens"] > 0, usage
    expect("chat too long", 422, call("POST", "/chat", {"message": "x" * 32001}, token=token))


class WebSocket:
    """A minimal RFC 6455 client (text frames, masked as a client must), so the smoke test needs
    nothing beyond the standard library."""

    def __init__(self, url):
        rest = url.removeprefix("ws://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ", 2)[1]) if head else 0

    def send(self, obj):
        payload = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("socket closed")
            out += chunk
        return out

    def recv(self):
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            if b0 & 0x0F == 1:
                return json.loads(payload)

    def close(self):
        self.sock.close()


def websocket_flow(token, url):
    """The chat WebSocket the health route publishes: a bad token is refused at the handshake;
    ping, a bad frame, and a turn streamed as frames, stored like any turn."""
    assert url and url.startswith("ws://127.0.0.1:"), url
    refused = WebSocket(url + "?token=nope")
    assert refused.status == 401, refused.status
    refused.close()
    print("smoke: ok   websocket with a bad token -> 401")
    ws = WebSocket(f"{url}?token={token}")
    assert ws.status == 101, ws.status
    ws.send({"action": "ping"})
    assert ws.recv() == {"type": "pong"}
    ws.send({"action": "dance"})
    err = ws.recv()
    assert err["type"] == "error" and err["status"] == 400, err
    ws.send({"action": "chat", "message": "Hello over a WebSocket", "request_id": "smoke-ws-1"})
    frames = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(ws.recv())
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "meta" and kinds[-1] == "done" and "delta" in kinds, kinds
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert frames[-1]["assistant_message"]["content"] == text, frames[-1]
    ws.close()
    conversation_id = frames[0]["conversation_id"]
    msgs = expect("websocket turn stored", 200, call("GET", f"/conversations/{conversation_id}/messages", token=token))
    assert [m["role"] for m in msgs["items"]] == ["user", "assistant"], msgs
    print(f"smoke: ok   websocket chat -> {len(frames)} frames")


def openai_sdk_flow(token, upstream):
    """The official `openai` Python SDK against the OpenAI-compatible endpoint with a personal API
    key: models, a completion, a streamed completion with usage, client tool round trips (offline,
    and through CodeChat to the fake OpenAI-compatible `upstream`), an image, an unknown model, a
    revoked key."""
    import openai
    created = expect("create API key", 201, call("POST", "/api-keys", {"name": "smoke"}, token=token))
    client = openai.OpenAI(base_url=f"{BASE}/openai/v1", api_key=created["key"], max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert "local/echo" in ids, ids
    completion = client.chat.completions.create(
        model="local/echo",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello from the SDK"}],
    )
    assert completion.object == "chat.completion" and "Hello from the SDK" in completion.choices[0].message.content, completion
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(
        model="local/echo", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream from the SDK"}],
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Stream from the SDK" in text and chunks[-1].usage.completion_tokens > 0, chunks[-1]
    # The client's own tool, round trip: the offline model calls it (`/tool name {json}`), the
    # client runs it and sends the output back.
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    ask = {"role": "user", "content": '/tool get_weather {"city": "Paris"}'}
    asked = client.chat.completions.create(model="local/echo", messages=[ask], tools=tools)
    assert asked.choices[0].finish_reason == "tool_calls", asked
    tool_call = asked.choices[0].message.tool_calls[0]
    assert tool_call.function.name == "get_weather" and json.loads(tool_call.function.arguments) == {"city": "Paris"}, tool_call
    answered = client.chat.completions.create(model="local/echo", tools=tools, messages=[
        ask, asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "18C and sunny"},
    ])
    assert "18C and sunny" in answered.choices[0].message.content, answered
    # The same round trip on an OpenAI-compatible model: CodeChat forwards the tools, the upstream's
    # call comes back to the SDK, and the tool message goes upstream as the client sent it.
    asked = client.chat.completions.create(model="openai/gpt-4o-mini", messages=[ask], tools=tools,
                                           tool_choice="required")
    tool_call = asked.choices[0].message.tool_calls[0]
    assert asked.choices[0].finish_reason == "tool_calls" and tool_call.id == "call_fake_1", asked
    sent = upstream.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "required", sent
    answered = client.chat.completions.create(model="openai/gpt-4o-mini", tools=tools, stream=True, messages=[
        ask, asked.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "21C"},
    ])
    text = "".join(c.choices[0].delta.content or "" for c in answered if c.choices)
    assert "The tool said: 21C" in text, text
    sent = upstream.requests[-1]
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": "call_fake_1", "content": "21C"}, sent
    assert sent["messages"][-2]["tool_calls"][0]["id"] == "call_fake_1", sent
    # An image as a data URL (a 1x1 PNG).
    png = base64.b64encode(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")).decode()
    seen = client.chat.completions.create(model="local/echo", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}])
    assert "image/png" in seen.choices[0].message.content, seen
    try:
        client.chat.completions.create(model="nope/none", messages=[{"role": "user", "content": "x"}])
        sys.exit("smoke: an unknown model was accepted")
    except openai.NotFoundError:
        pass
    expect("revoke API key", 204, call("DELETE", f"/api-keys/{created['id']}", token=token))
    try:
        client.models.list()
        sys.exit("smoke: a revoked key was accepted")
    except openai.AuthenticationError:
        pass
    print(f"smoke: ok   openai SDK {openai.__version__}: models, completion, stream ({len(chunks)} chunks), "
          "client tool round trips (offline, fake upstream), image, 404, revoked key")


ADMIN_EMAIL = "smoke-admin@example.com"


def agents_admin_flow(token, user_id, email):
    """An agent answers a turn; the bootstrap admin (BOOTSTRAP_ADMIN_EMAIL, set by main) finds the
    user, blocks their chat with a budget of 0, gives the default back, and reads the usage and
    audit log."""
    agent = expect("create agent", 201, call("POST", "/agents", {
        "name": "Smoke agent", "system_prompt": "Answer briefly.", "model": "local/echo", "max_tokens": 256,
    }, token=token))
    turn = expect("chat with agent", 200, call("POST", "/chat", {"message": "hi agent", "agent_id": agent["id"]}, token=token))
    assert turn["assistant_message"]["agent_id"] == agent["id"], turn
    # A real MCP server (the official Python SDK): registered with a header, its tools listed, and
    # an agent naming it calls a tool; the header's value is never answered back.
    server = expect("register a tool server", 201, call("POST", "/mcp-servers", {
        "name": "tools", "url": MCP_URL, "headers": {"Authorization": "Bearer smoke-secret"},
    }, token=token))
    assert "smoke-secret" not in json.dumps(server), server
    listed = expect("list its tools", 200, call("GET", f"/mcp-servers/{server['id']}/tools", token=token))
    assert "add" in [t["name"] for t in listed["tools"]], listed
    tool_agent = expect("agent with a tool server", 201, call("POST", "/agents", {
        "name": "Smoke tools", "system_prompt": "Use the tools.", "model": "local/echo", "tools": ["mcp:tools"],
    }, token=token))
    turn = expect("agent calls a tool server", 200, call("POST", "/chat", {
        "message": '/tool tools__whoami {}', "agent_id": tool_agent["id"]}, token=token))
    assert "Bearer smoke-secret" in turn["assistant_message"]["content"], turn
    expect("delete the tool server", 204, call("DELETE", f"/mcp-servers/{server['id']}", token=token))
    expect("admin route as a user", 403, call("GET", "/admin/users", token=token))
    password = "smoke admin password"
    code, _, raw = call("POST", "/auth/register", {"email": ADMIN_EMAIL, "password": password})
    # 409: an earlier run on this data directory registered it.
    if code not in (201, 409):
        sys.exit(f"smoke: register the admin: {code} {raw[:300]!r}")
    admin = expect("admin login", 200, call("POST", "/auth/login", {"email": ADMIN_EMAIL, "password": password}))["access_token"]
    found = expect("admin finds the user", 200, call("GET", "/admin/users?q=" + urllib.parse.quote(email), token=admin))
    assert [u["id"] for u in found["items"]] == [user_id], found
    expect("admin blocks chat", 200, call("PATCH", f"/admin/users/{user_id}", {"daily_token_limit": 0}, token=admin))
    code, headers, raw = call("POST", "/chat", {"message": "over budget"}, token=token)
    expect("chat over budget", 429, (code, headers, raw))
    assert int(headers["Retry-After"]) > 0, headers
    expect("admin restores the default budget", 200, call("PATCH", f"/admin/users/{user_id}", {"daily_token_limit": None}, token=admin))
    expect("chat within budget", 200, call("POST", "/chat", {"message": "back"}, token=token))
    report = expect("usage report", 200, call("GET", "/admin/usage?group_by=user", token=admin))
    assert any(g["key"] == user_id and g["calls"] >= 3 for g in report["items"]), report
    audit = expect("audit log", 200, call("GET", "/admin/audit", token=admin))
    assert any(e["action"] == "user.update" and e["target_id"] == user_id for e in audit["items"]), audit


def knowledge_flow():
    """The README's corpus command loads the sample documents; a question with knowledge cites them."""
    email, password = f"reader-{uuid.uuid4().hex[:8]}@example.com", "smoke reader password"
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "load-corpus"), "--base", BASE,
                    "--email", email, "--password", password], check=True)
    token = expect("reader login", 200, call("POST", "/auth/login", {"email": email, "password": password}))["access_token"]
    docs = expect("documents", 200, call("GET", "/knowledge/documents", token=token))
    assert len(docs["items"]) == 3, docs
    hits = expect("search", 200, call("GET", "/knowledge/search?q=" + urllib.parse.quote("tortoise hare race"), token=token))
    assert hits["items"][0]["heading"].endswith("The Tortoise and the Hare"), hits
    turn = expect("chat with knowledge", 200, call("POST", "/chat", {
        "message": "Who won the race between the tortoise and the hare?", "knowledge": True}, token=token))
    citations = turn["assistant_message"]["citations"]
    assert citations and citations[0]["title"] == "Fables of Aesop, retold", citations
    expect("delete document", 204, call("DELETE", f"/knowledge/documents/{docs['items'][0]['id']}", token=token))


PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa75\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


def raw_call(method, url, data, headers):
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def attachments_flow(token):
    """An inline upload (multipart, binary bytes), a presigned-style upload to the URL the API hands
    out, the bytes read back, the file sent with a chat message, and deleted."""
    boundary = "smoke-" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"pixel.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + PNG + f"\r\n--{boundary}--\r\n".encode()
    auth = {"Authorization": f"Bearer {token}"}
    inline = expect("inline upload (binary)", 201, raw_call(
        "POST", BASE + "/attachments", body, {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}))
    assert inline["size"] == len(PNG) and inline["content_type"] == "image/png", inline
    code, _, got = raw_call("GET", BASE + f"/attachments/{inline['id']}/content", None, auth)
    assert code == 200 and got == PNG, (code, got[:50])
    print("smoke: ok   attachment content round trip")

    text = ("A larger text file.\n" * 500).encode()
    started = expect("start upload", 201, call("POST", "/attachments/uploads",
                                               {"filename": "big.txt", "content_type": "text/plain", "size": len(text)}, token=token))
    upload = started["upload"]
    code, _, raw = raw_call(upload["method"], upload["url"], text, upload["headers"])
    assert code in (200, 204), (code, raw[:300])
    print(f"smoke: ok   PUT to the upload URL -> {code}")
    done = expect("complete upload", 200, call("POST", f"/attachments/{started['attachment']['id']}/complete", {}, token=token))
    assert done["status"] == "ready", done

    turn = expect("chat with attachments", 200, call("POST", "/chat", {
        "message": "What is in these?", "attachment_ids": [inline["id"], done["id"]]}, token=token))
    answer = turn["assistant_message"]["content"]
    assert "pixel.png" in answer and "big.txt" in answer, answer
    expect("delete attachment", 204, call("DELETE", f"/attachments/{inline['id']}", token=token))
    expect("deleted attachment", 404, call("GET", f"/attachments/{inline['id']}", token=token))


def projects_flow(token):
    """A project, a file at a nested path (the wildcard route through the watch router), the tree,
    and the project as a zip."""
    project = expect("create project", 201, call("POST", "/projects", {"name": "Smoke project"}, token=token))
    code, _, raw = raw_call("PUT", BASE + f"/projects/{project['id']}/files/src/app/main.rs", b"fn main() {}\n",
                            {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
    assert code == 200, (code, raw[:300])
    tree = expect("project tree", 200, call("GET", f"/projects/{project['id']}/tree", token=token))
    assert tree["children"][0]["children"][0]["children"][0]["path"] == "src/app/main.rs", tree
    code, headers, raw = raw_call("GET", BASE + f"/projects/{project['id']}/archive", None, {"Authorization": f"Bearer {token}"})
    assert code == 200 and raw[:4] == b"PK\x03\x04", (code, raw[:40])
    print("smoke: ok   project archive is a zip")
    turn = expect("coding agent turn (local/echo)", 200, call("POST", "/chat", {
        "message": "/write src/smoke.rs\nfn smoke() {}\n/end", "project_id": project["id"]}, token=token))
    assert turn["assistant_message"]["changes"][0]["path"] == "src/smoke.rs", turn
    code, _, raw = raw_call("GET", BASE + f"/projects/{project['id']}/files/src/smoke.rs", None, {"Authorization": f"Bearer {token}"})
    assert code == 200 and raw == b"fn smoke() {}\n", (code, raw)


def browser_flow():
    """The web client in headless Chromium (web/e2e/browser.mjs, playwright-core driving Debian's
    chromium): sign up, a streamed answer, reload, rename, an attachment, a project's tree,
    delete, a phone-width layout; no console errors, no other origin. Screenshots stay under
    target/web-e2e."""
    import tempfile
    import zipfile
    work = tempfile.mkdtemp(prefix="codechat-e2e-")
    archive = os.path.join(work, "demo.zip")
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("src/main.rs", 'fn main() {\n    println!("hello");\n}\n')
        z.writestr("README.md", "# Demo\n")
    shots = os.path.join(ROOT, "target", "web-e2e")
    result = subprocess.run(["node", os.path.join(ROOT, "web", "e2e", "browser.mjs"), f"http://127.0.0.1:{PORT}", archive, shots, MCP_URL],
                            cwd=ROOT, timeout=600)
    if result.returncode != 0:
        sys.exit(f"smoke: the browser test failed ({result.returncode})")
    print(f"smoke: ok   web client in headless Chromium; screenshot: {os.path.join(shots, 'chat.png')}")


def docs_flow():
    """The docs pages in headless Chromium (web/e2e/docs.mjs): Swagger UI's "Authorize" with email
    and password, then "Try it out" on a secured operation; ReDoc renders; every asset from the API
    itself (no request leaves for another origin)."""
    shots = os.path.join(ROOT, "target", "docs-e2e")
    result = subprocess.run(["node", os.path.join(ROOT, "web", "e2e", "docs.mjs"), f"http://127.0.0.1:{PORT}", shots],
                            cwd=ROOT, timeout=300)
    if result.returncode != 0:
        sys.exit(f"smoke: the docs pages' browser check failed ({result.returncode})")
    print("smoke: ok   docs pages in headless Chromium (Swagger UI's password login and Try it out, ReDoc), offline")


def start_sqld():
    """The libSQL server (the production store's protocol) on a free loopback port, fresh database."""
    import socket
    import tempfile
    binary = os.path.join(ROOT, "..", "shared", "tools", "sqld")
    if not os.path.exists(binary):
        print(f"smoke: SKIPPED the remote-store pass: {binary} is absent")
        return None, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="smoke-sqld-")
    proc = subprocess.Popen([binary, "--db-path", os.path.join(data, "data.sqld"), "--no-welcome",
                             "--http-listen-addr", f"127.0.0.1:{port}"], cwd=data,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("smoke: sqld did not come up")


def start_mcp_server():
    """The tests' MCP server (tests/support/mcp_server.py: the official Python SDK, Streamable HTTP)."""
    global MCP_URL
    port = PORT + 17
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "support", "mcp_server.py"), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        sys.exit("smoke: the MCP test server did not start (pip install 'mcp>=2,<3')")
    MCP_URL = f"http://127.0.0.1:{port}/mcp"
    return proc


def main():
    upstream, upstream_url = fake_openai.start()
    mcp_server = start_mcp_server()
    env = dict(os.environ, PORT=str(PORT), BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL, OPENAI_BASE_URL=upstream_url)
    sqld = None
    if "--sqld" in sys.argv:
        sqld, url = start_sqld()
        if sqld is None:
            return
        env["LIBSQL_URL"] = url
        print(f"smoke: every function on remote libSQL at {url}")
    proc = subprocess.Popen([os.path.join(ROOT, "scripts", "dev")], cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_until_up(proc)
        flow(upstream)
        if sqld is None:
            browser_flow()
            docs_flow()
        print("smoke: 1 passed, 0 failed")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        upstream.shutdown()
        mcp_server.kill()
        if sqld is not None:
            sqld.kill()


if __name__ == "__main__":
    main()
