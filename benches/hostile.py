#!/usr/bin/env python3
"""Peak memory and time of hostile requests (docs/reliability.md; not run by CI).

    benches/hostile.py            # builds the release moe2seg; needs cargo and python3

Each case is an API Gateway event file run through the release `moe2seg invoke` (the Lambda's
own handler, in-process) against a Segment stand-in on 127.0.0.1 that answers 200 at once.
Prints, per case: the HTTP status and code, the answer's size, wall time and peak RSS (from
wait4, the whole process). The contract: every case within 128 MB and well under 5 s.
Figures vary with the machine: compare within one run.
"""

import base64
import gzip
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/moe2seg")
LIMIT = 6 * 1024 * 1024
NOW = int(time.time())


class Segment(http.server.BaseHTTPRequestHandler):
    """Answers every batch with 200 at once, counting messages."""

    received = 0
    down = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if Segment.down:
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        Segment.received += body.count(b'"messageId"')
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_HEAD(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def event(i, **extra):
    e = {"event_name": "Email Sent", "event_code": "MOE_EMAIL_SENT",
         "event_uuid": f"evt-{i:07d}", "event_time": NOW - 60, "uid": f"user-{i}"}
    e.update(extra)
    return e


def body(events, request_id="req-bench", app_name="Bench"):
    return json.dumps({"app_name": app_name, "moe_request_id": request_id,
                       "events": events}, separators=(",", ":")).encode()


def fx_colliding_keys(n):
    """Keys with one FxHash value (as tests/hostile.rs builds them)."""
    seed, mask = 0x517CC1B727220A95, (1 << 64) - 1
    keys, state = [], 0x9E3779B97F4A7C15
    while len(keys) < n:
        state ^= (state << 13) & mask
        state ^= state >> 7
        state ^= (state << 17) & mask
        w1 = (state & 0x3F3F3F3F3F3F3F3F) | 0x4040404040404040
        m = (w1 * seed) & mask
        w2 = (((m << 5) | (m >> 59)) & mask) ^ 0x4141414141414141
        b = w1.to_bytes(8, "little") + w2.to_bytes(8, "little")
        if all(0x21 <= c < 0x7F and c not in b'"\\' for c in b):
            keys.append(b.decode())
    return keys


def plain_keys(n):
    return [f"attribute-{i:06d}" for i in range(n)]


def fill(make, limit=LIMIT - 4096):
    """As many events as fit in `limit` bytes of body (and 10,000 at most)."""
    one = len(json.dumps(make(9_999), separators=(",", ":"))) + 1
    return [make(i) for i in range(min(10_000, limit // one))]

def largest():
    """The accepted body with the most bytes of messages."""
    return body(fill(lambda i: event(i, event_attributes={
        "os": "A" * 150, "app_version": "9" * 150, "x": "y" * 200})))


def cases():
    yield "within limits: 100 ordinary events", body([event(i) for i in range(100)]), False
    yield ("within limits: 6 MB, 10,000 events whose values are copied twice (largest mapped)",
           largest(), False)
    yield ("within limits: 10,000 events, 30 KB moe_request_id and app_name (gzip)",
           body([event(i) for i in range(10_000)], "r" * 30_000, "a" * 30_000), True)
    yield ("within limits: 10,000 events without event_uuid (content ids, gzip)",
           body([{k: v for k, v in event(i, event_attributes={"n": i}).items()
                  if k != "event_uuid"} for i in range(10_000)]), True)
    yield ("within limits: 10,000 `{}` events (all rejected; bounded answer)",
           body([{}] * 10_000), False)
    yield ("within limits: one event of 10,000 attributes (truncated in one pass)",
           body([event(0, event_attributes={k: "v" * 20 for k in plain_keys(10_000)})]), False)
    yield ("within limits: one event of 3,000 small traits (truncated)",
           body([event(0, user_attributes={f"t{i}": i for i in range(3_000)})]), False)
    yield ("within limits: one event of 500,000 attributes (6 MB; event rejected)",
           body([event(0, event_attributes={f"a{i}": 1 for i in range(500_000)})]), False)
    yield ("within limits: 1.8 MB of invalid UTF-8 in attribute values (300 events)",
           invalid_utf8(300, 6_000), False)
    for name, keys in (("FxHash-colliding", fx_colliding_keys(8_192)),
                       ("ordinary", plain_keys(8_192))):
        yield (f"within limits: 20 events x 8,192 {name} keys",
               body([event(i, event_attributes={k: i for k in keys}) for i in range(20)]), False)
    yield ("over a limit: 2.8 KB gzip, 20,000 events, 30 KB moe_request_id",
           body([{"event_name": "X", "uid": "u"}] * 20_000, "r" * 30_000), True)
    yield ("over a limit: 6 MB of {\"events\":[1,1,1,...]}",
           b'{"events":[' + b",".join([b"1"] * (LIMIT // 2 - 8)) + b"]}", False)
    yield ("over a limit: gzip bomb (52 KB expanding past 6 MB)",
           b"{" + b" " * (LIMIT + 1) + body([event(i) for i in range(5_000)])[1:], True)
    yield ("over a limit: 6 MB of invalid UTF-8 (18 MB once read; maps past 16 MiB)",
           invalid_utf8(1_000, 6_200), False)
    yield ("over a limit: 6 MB mapping to more than 16 MiB",
           body(fill(lambda i: event(i, event_attributes={
               "os": "A" * 250, "app_version": "9" * 250})), "r" * 300, "a" * 300), False)


def invalid_utf8(events, each):
    """Events whose attribute holds `each` bytes that are not UTF-8 (each becomes U+FFFD,
    3 bytes, when the body is read)."""
    parts = [b'{"event_name":"X","uid":"u","event_uuid":"e%d","event_attributes":{"x":"'
             % i + b"\xff" * each + b'"}}' for i in range(events)]
    return b'{"events":[' + b",".join(parts) + b"]}"


def api_event(payload, gz):
    headers = {"authorization": "Bearer bench-token", "content-type": "application/json"}
    if gz:
        payload = gzip.compress(payload, 9)
        headers["content-encoding"] = "gzip"
    return {
        "version": "2.0", "routeKey": "POST /moengage", "rawPath": "/moengage",
        "rawQueryString": "", "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com",
            "domainPrefix": "bench", "requestId": "bench", "routeKey": "POST /moengage",
            "stage": "$default", "time": "29/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/moengage", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.1", "userAgent": "bench"}},
        "body": base64.b64encode(payload).decode(), "isBase64Encoded": True,
    }, len(payload)


def start_moto():
    """moto's SQS on 127.0.0.1 (from the venv scripts/test makes), and a queue; or None."""
    moto = os.path.join(ROOT, ".venv/bin/moto_server")
    if not os.path.exists(moto):
        return None, None
    import socket
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            data = b"Action=CreateQueue&QueueName=bench-parked&Version=2012-11-05"
            # moto picks the service from the credential scope.
            req = urllib.request.Request(url + "/", data=data, headers={
                "authorization": "AWS4-HMAC-SHA256 Credential=bench/20261129/us-east-1/sqs/"
                                 "aws4_request, SignedHeaders=host, Signature=0",
                "content-type": "application/x-www-form-urlencoded"})
            with urllib.request.urlopen(req, timeout=1) as r:
                text = r.read().decode()
            queue = text.split("<QueueUrl>")[1].split("</QueueUrl>")[0]
            return proc, (url, queue)
        except Exception:
            time.sleep(0.1)
    proc.kill()
    return None, None


def run(event_path, env, tmp, timeout=25):
    # Through /usr/bin/time: Linux keeps a process's peak RSS across exec, so a child forked
    # from this (large) Python process would report Python's peak.
    rss_file = os.path.join(tmp, "rss")
    started = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, BIN, "invoke",
                          "--timeout", str(timeout), event_path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=env, check=False).stdout
    wall = time.monotonic() - started
    with open(rss_file) as f:
        rss_kb = int(f.read().split()[-1])
    return json.loads(out), wall, rss_kb / 1024


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "moe2seg"],
                   cwd=ROOT, check=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Segment)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, SEGMENT_WRITE_KEY="bench-key", SEGMENT_REGION="us",
               WEBHOOK_TOKEN="bench-token",
               SEGMENT_ENDPOINT_US=f"http://127.0.0.1:{server.server_address[1]}",
               RUST_LOG="warn")
    for k in ("SECRET_ID", "DEAD_LETTER_QUEUE_URL", "AWS_LAMBDA_FUNCTION_NAME"):
        env.pop(k, None)
    print(f"{'case':<78} {'status':>6} {'code':<20} {'sent':>8} {'answer':>7} "
          f"{'wall s':>6} {'RSS MB':>6}")
    worst = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, payload, gz in cases():
            ev, sent = api_event(payload, gz)
            path = os.path.join(tmp, "event.json")
            with open(path, "w") as f:
                json.dump(ev, f)
            Segment.received = 0
            answer, wall, rss = run(path, env, tmp)
            status = answer.get("statusCode")
            resp = json.loads(answer.get("body") or "{}")
            code = resp.get("error") or f"fwd {resp.get('forwarded')} rej {resp.get('rejected_count')}"
            print(f"{name:<78} {status:>6} {code:<20} {sent:>8} {len(answer.get('body', '')):>7} "
                  f"{wall:>6.2f} {rss:>6.1f}")
            kind = name.split(":")[0]
            if rss > worst.get(kind, ("", 0))[1]:
                worst[kind] = (name, rss)
        # Segment down, a dead-letter queue (moto's SQS, much slower than SQS): parking
        # within the slice of the 25 s budget delivery leaves it, or 503 before the deadline.
        moto, sqs = start_moto()
        parking = [
            ("within limits: 500 events, Segment down, parked in SQS (moto)",
             body([event(i) for i in range(500)])),
            ("within limits: the largest body, Segment down, parking in SQS (moto)", largest()),
        ]
        for name, payload in parking if moto else []:
            ev, sent = api_event(payload, False)
            path = os.path.join(tmp, "event.json")
            with open(path, "w") as f:
                json.dump(ev, f)
            park_env = dict(env, DEAD_LETTER_QUEUE_URL=sqs[1], AWS_ENDPOINT_URL_SQS=sqs[0],
                            AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                            AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
            Segment.down = True
            answer, wall, rss = run(path, park_env, tmp, timeout=25)
            Segment.down = False
            resp = json.loads(answer.get("body") or "{}")
            code = resp.get("error") or f"parked {resp.get('parked')}"
            print(f"{name:<78} {answer.get('statusCode'):>6} {code:<20} {sent:>8} "
                  f"{len(answer.get('body', '')):>7} {wall:>6.2f} {rss:>6.1f}")
            if rss > worst["within limits"][1]:
                worst["within limits"] = (name, rss)
        if moto:
            moto.kill()
    for kind, (name, rss) in sorted(worst.items()):
        print(f"worst {kind}: {rss:.1f} MB peak RSS ({name})")
    server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
