"""A small real HTTP proxy in front of a real inference endpoint that misbehaves on purpose.

The product is never told about it: the suite runs `--target external --inference-url` against
the proxy, and the tests assert which criteria fail. Modes (only /infer requests are touched):
  fail-share   answer 503 when more than MAX_IN_FLIGHT infer requests are in flight (an endpoint
               that fails a share of its requests under load; single requests pass)
  slow         forward after DELAY_S (far beyond the configured p95)
  wrong-shape  the first output's shape claims one row more than was sent ([N, 1] -> [N+1, 1]), data
               unchanged (a transpose would be no change for the one-row input example)
  wrong-dtype  the first output's datatype FP32, data as floats
  first-row-only  the first row's answer passed on, every other row's answer off by one (an endpoint
               right on one row and wrong on the rest: caught only when more than one row is compared)
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

MAX_IN_FLIGHT = 2
DELAY_S = 1.0


class Proxy:
    def __init__(self, upstream: str, mode: str):
        self.upstream, self.mode = upstream.rstrip("/"), mode
        self.in_flight = 0
        self.lock = threading.Lock()
        self.counts = {"forwarded": 0, "failed": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                proxy.forward(self, "GET")

            def do_POST(self):
                proxy.forward(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "Proxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        infer = handler.path.endswith("/infer")
        with self.lock:
            self.in_flight += infer
            crowded = self.in_flight > MAX_IN_FLIGHT
        try:
            if infer and self.mode == "fail-share" and crowded:
                self.counts["failed"] += 1
                return self.reply(handler, 503, b'{"error": "overloaded"}')
            if infer and self.mode == "slow":
                time.sleep(DELAY_S)
            headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type",)}
            upstream = requests.request(method, self.upstream + handler.path, data=body, headers=headers, timeout=60)
            payload = upstream.content
            if infer and upstream.ok and self.mode in ("wrong-shape", "wrong-dtype", "first-row-only"):
                payload = self.rewrite(upstream.json())
            self.counts["forwarded"] += 1
            self.reply(handler, upstream.status_code, payload, upstream.headers.get("Content-Type"))
        finally:
            with self.lock:
                self.in_flight -= infer

    def rewrite(self, answer: dict) -> bytes:
        first = answer["outputs"][0]
        if self.mode == "wrong-shape":
            first["shape"] = [first["shape"][0] + 1, *first["shape"][1:]]
        elif self.mode == "first-row-only":
            per_row = len(first["data"]) // max(first["shape"][0], 1)
            first["data"] = first["data"][:per_row] + [x + 1 for x in first["data"][per_row:]]
        else:
            first["datatype"], first["data"] = "FP32", [float(x) for x in first["data"]]
        return json.dumps(answer).encode()

    @staticmethod
    def reply(handler, status: int, payload: bytes, content_type: str | None = "application/json") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type or "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
