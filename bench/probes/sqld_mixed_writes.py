#!/usr/bin/env python3
"""sqld alone under concurrent autocommit writes and reads, with none of CodeChat's code.

Usage: start sqld without auth (`../shared/tools/sqld --db-path /tmp/probe --http-listen-addr
127.0.0.1:18099 --no-welcome`), then `python3 bench/probes/sqld_mixed_writes.py 18099 16 15`
(port, connections, seconds; add `keep` to keep each connection's stream). Each connection
alternates an INSERT of a 2 KB row and an indexed read of its newest 400 rows, each statement its
own Hrana request: on a stream of its own (`baton: null`, then `close`), as CodeChat's store sent
autocommit statements until it kept streams, or with `keep` on one stream per connection, as it
does now. Prints every statement slower than 1 s (write or
read, how long, when) and a summary. Standard library only.
"""
import http.client
import json
import sys
import threading
import time

PORT, CONNECTIONS, SECONDS = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
KEEP = len(sys.argv) > 4 and sys.argv[4] == "keep"


def pipeline(conn, stmt, stream=None):
    """One statement; with `stream` (a one-item list holding a baton or None) the stream is kept
    open and its next baton stored there, otherwise the stream is closed with the statement."""
    baton = stream[0] if stream else None
    requests = [{"type": "execute", "stmt": stmt}] + ([] if stream else [{"type": "close"}])
    body = {"baton": baton, "requests": requests}
    conn.request("POST", "/v2/pipeline", json.dumps(body), {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    if stream:
        stream[0] = answer["baton"]
    return answer["results"][0]


setup = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
pipeline(setup, {"sql": "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT, v TEXT)"})
pipeline(setup, {"sql": "CREATE INDEX IF NOT EXISTS t_k ON t (k, id)"})

times, errors, lock = [], [0], threading.Lock()


def worker(i):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    key = {"type": "text", "value": str(i)}
    stream = [None] if KEEP else None
    end, n = time.time() + SECONDS, 0
    while time.time() < end:
        n += 1
        write = n % 2 == 1
        stmt = ({"sql": "INSERT INTO t (k, v) VALUES (?, ?)", "args": [key, {"type": "text", "value": "x" * 2000}]}
                if write else
                {"sql": "SELECT count(*) FROM (SELECT v FROM t WHERE k = ? ORDER BY id DESC LIMIT 400)", "args": [key]})
        began = time.time()
        result = pipeline(conn, stmt, stream)
        took = time.time() - began
        kind = "write" if write else "read"
        if result["type"] != "ok":
            print(f"error {kind} after {took:.2f} s: {json.dumps(result)[:300]}", flush=True)
        elif took > 1:
            print(f"slow  {kind} {took:.2f} s at {time.strftime('%T')}", flush=True)
        with lock:
            times.append(took)
            errors[0] += result["type"] != "ok"


threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
started = time.time()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.time() - started
times.sort()
print(f"{CONNECTIONS} connections ({'streams kept' if KEEP else 'a stream per statement'}): {len(times)} statements, {len(times) / elapsed:.0f}/s, "
      f"p50 {times[len(times) // 2] * 1000:.1f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.1f} ms, "
      f"max {times[-1] * 1000:.0f} ms, errors {errors[0]}")
