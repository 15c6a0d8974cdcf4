"""Locust load for the Open Inference Protocol (V2) `infer` call. Run it through `load.harness`.

Locust runs it in its own process (gevent monkey-patches that process, never pytest's).
The harness hands over, in the environment:
    LOAD_INFER_PATH     the infer path, e.g. /v2/models/NAME/infer (the host is Locust's --host)
    LOAD_PAYLOAD_FILE   the request body: the served model's own input example as a V2 request
    LOAD_SHAPE          constant | step | ramp (see load/shapes.py)
    LOAD_SUMMARY_FILE   where the final totals go, as JSON, when Locust quits
Users, spawn rate and duration are Locust's own --users, --spawn-rate and --run-time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import locust.runners
import locust.stats
from locust import FastHttpUser, LoadTestShape, constant, events, task

# Locust loads this file by path, with the harness's interpreter: the installed package imports.
from mlops_acceptance.load.shapes import target_users

# The timeline's p95 is over the last 2 s (Locust's default, 10 s, smooths spikes away).
locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = 2
# Workers (--processes) report to the master every second, not every 3 s: a per-second timeline.
locust.runners.WORKER_REPORT_INTERVAL = 1.0

INFER_PATH = os.environ.get("LOAD_INFER_PATH", "/v2/models/model/infer")
# Read once: every request sends the same bytes, no JSON encoding per request.
BODY = Path(os.environ["LOAD_PAYLOAD_FILE"]).read_bytes() if os.environ.get("LOAD_PAYLOAD_FILE") else b"{}"
HEADERS = {"Content-Type": "application/json"}
SHAPE = os.environ.get("LOAD_SHAPE", "constant")
SUMMARY_FILE = os.environ.get("LOAD_SUMMARY_FILE")


class InferUser(FastHttpUser):
    # Closed loop: each user sends its next request as soon as the previous one is answered,
    # so --users is the concurrency the endpoint sees.
    wait_time = constant(0)
    network_timeout = 30.0
    connection_timeout = 30.0

    @task
    def infer(self) -> None:
        with self.client.post(INFER_PATH, data=BODY, headers=HEADERS, name="infer", catch_response=True) as r:
            # An HTTP 200 without outputs is not an answer either.
            if r.status_code == 200 and b'"outputs"' not in (r.content or b""):
                r.failure("HTTP 200 without outputs")


@events.quitting.add_listener
def write_summary(environment, **_) -> None:
    """The final totals. Locust's --csv files are rewritten once a second, not at the end: up to
    a second stale. The master (or the only process) writes them; workers have no totals."""
    if not SUMMARY_FILE or isinstance(environment.runner, locust.runners.WorkerRunner):
        return
    total = environment.stats.total

    def percentile(p: float) -> float | None:
        return total.get_response_time_percentile(p) if total.num_requests else None

    errors = sorted(environment.stats.errors.values(), key=lambda e: -e.occurrences)
    Path(SUMMARY_FILE).write_text(json.dumps({
        "requests": total.num_requests, "failures": total.num_failures, "rps": total.total_rps,
        "p50_ms": percentile(0.5), "p95_ms": percentile(0.95), "p99_ms": percentile(0.99),
        "errors": [f"{e.to_name().split(': ', 1)[-1]} x {e.occurrences}" for e in errors],
    }))


if SHAPE != "constant":
    # Only defined when asked for: Locust uses any LoadTestShape it finds in the locustfile.

    class ConfiguredShape(LoadTestShape):
        # Reads --users, --spawn-rate and --run-time instead of ignoring them.
        use_common_options = True

        def tick(self):
            opts = self.runner.environment.parsed_options
            users = target_users(SHAPE, self.get_run_time(), opts.num_users, opts.run_time)
            return None if users is None else (users, opts.spawn_rate)
