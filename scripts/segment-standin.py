#!/usr/bin/env python3
"""A Segment HTTP Tracking API stand-in on 127.0.0.1, for scripts/emulator-check.

Usage: segment-standin.py WRITE_KEY RECORD_FILE PORT_FILE

Answers `POST /v1/batch` with 200 when the request carries `Authorization: Basic
base64(WRITE_KEY:)`, else 401; `HEAD /v1/batch` (the function's warm-up during Init) with 200;
anything else with 404. For every accepted batch it appends one line to RECORD_FILE:
`{"count": <messages>, "messageIds": [...]}`. It listens on a free port, which it writes to
PORT_FILE once it is ready. Standard library only.
"""

import base64
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    write_key, record_file, port_file = sys.argv[1:4]
    expected = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 (http.server naming)
            self.answer(200 if self.path == "/v1/batch" else 404)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/v1/batch":
                self.answer(404, b'{"error":"not found"}')
                return
            if self.headers.get("authorization") != expected:
                self.answer(401, b'{"error":"unauthorized"}')
                return
            try:
                batch = json.loads(raw)["batch"]
                ids = [m["messageId"] for m in batch]
            except (ValueError, KeyError, TypeError):
                self.answer(400, b'{"error":"not a batch"}')
                return
            with open(record_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"count": len(ids), "messageIds": ids}) + "\n")
            self.answer(200, b'{"success":true}')

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write("segment-standin: " + (format % args) + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Written whole (rename), so a reader never sees a partial port.
    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
