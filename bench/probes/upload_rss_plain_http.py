"""Peak-RSS growth of the release attachments function for 5 MiB inline uploads served over plain HTTP
(the binaries outside Lambda serve HTTP on $PORT): the same handler as under the Runtime API, without
the Lambda event around the body. Run from the repository root after `cargo build --release -p auth -p
attachments`: python3 bench/probes/upload_rss_plain_http.py"""
import json, os, subprocess, sys, time, urllib.request, tempfile, uuid
data = tempfile.mkdtemp()
env = dict(os.environ, CODECHAT_PROFILE="local", CODECHAT_DATA_DIR=data,
           JWT_SECRET="probe-secret-probe-secret-probe-secret-0123456789", RUST_LOG="warn",
           MAX_INLINE_UPLOAD_BYTES=str(6*1024*1024))
env.pop("AWS_LAMBDA_RUNTIME_API", None)
auth = subprocess.Popen(["target/release/auth"], env=dict(env, PORT="3901"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
att = subprocess.Popen(["target/release/attachments"], env=dict(env, PORT="3902"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)
def call(url, data, headers):
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()
_, body = call("http://127.0.0.1:3901/api/v1/auth/register",
               json.dumps({"email": "probe@x.dev", "password": "probe password 1"}).encode(),
               {"Content-Type": "application/json"})
token = json.loads(body)["access_token"]
def hwm(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmHWM:"): return int(l.split()[1])
def upload(size):
    b = "probe-" + uuid.uuid4().hex
    payload = b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\nContent-Type: image/png\r\n\r\n").encode() + payload + f"\r\n--{b}--\r\n".encode()
    st, _ = call("http://127.0.0.1:3902/api/v1/attachments", body,
                 {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={b}"})
    assert st == 201
upload(1024)
before = hwm(att.pid)
for _ in range(5): upload(5*1024*1024)
after = hwm(att.pid)
print(f"plain HTTP (no Lambda event): peak RSS {before/1024:.1f} -> {after/1024:.1f} MiB, growth {(after-before)/1024:.1f} MiB for 5 MiB uploads")
auth.kill(); att.kill()
