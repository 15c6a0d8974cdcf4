"""Runs `load/locustfile.py` headless in a subprocess and reads what Locust measured.

    result = run_load("http://127.0.0.1:8080", "/v2/models/iris/infer", payload,
                      users=8, spawn_rate=8, duration_s=10, shape="constant", processes=1)
    ok, reasons = within_limits(result, max_error_rate=0.01, max_p95_ms=500)

Locust runs in its own process, never in the caller's: it monkey-patches the process it runs in
with gevent (pytest's must stay untouched), and the caller must not be what limits the load.
With processes > 1 it is Locust's own distributed mode (`--processes N`: one master, N workers),
its master bound to 127.0.0.1. Headless: no web UI, nothing listens but that master.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlops_acceptance.fixtures.ports import free_port
from mlops_acceptance.load.shapes import SHAPES

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# Requests in flight when the run time is up are waited for (the slowest ones, else dropped,
# would bias p95 down); up to the locustfile's network timeout.
STOP_TIMEOUT_S = 30
# Locust's start-up (imports, forking workers), that wait and shutdown, on top of the run time.
GRACE_S = STOP_TIMEOUT_S + 60.0
INSTALL_HINT = "install the `load` extra: uv pip install -e '.[load]' (or pip install locust)"


class LoadError(RuntimeError):
    """The load run itself failed (not the endpoint): the message is one line."""


@dataclass
class Sample:
    """One second of the run, from Locust's --csv-full-history."""

    t_s: float  # since the first sample
    users: int
    rps: float  # requests completed in this interval / its length
    failures_per_s: float
    p95_ms: float | None  # over the last 2 s (see locustfile); None before the first answer


@dataclass
class LoadResult:
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    users: int
    spawn_rate: float
    duration_s: int
    shape: str
    processes: int
    timeline: list[Sample] = field(default_factory=list)
    failure_kinds: list[str] = field(default_factory=list)  # "HTTP 500 x 12", most frequent first

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def load_window(self) -> tuple[float, float]:
        """(start, stop) of the load on the timeline: the first sample with users, plus the run time.

        Locust writes no sample after it stops, so the stop may lie past the last sample."""
        start = next((s.t_s for s in self.timeline if s.users > 0), 0.0)
        return start, start + self.duration_s

    def summary(self) -> str:
        def ms(v):
            return "n/a" if v is None else f"{v:.0f} ms"

        text = (f"{self.requests} requests in {self.duration_s} s ({self.shape}, {self.users} users, "
                f"{self.processes} Locust process{'es' if self.processes > 1 else ''}): {self.rps:.1f} req/s, "
                f"p50 {ms(self.p50_ms)}, p95 {ms(self.p95_ms)}, p99 {ms(self.p99_ms)}, "
                f"error rate {self.error_rate:.2%} ({self.failures} failed)")
        if self.failure_kinds:
            text += "; failures: " + ", ".join(self.failure_kinds[:3])
        return text


def within_limits(result: LoadResult, max_error_rate: float, max_p95_ms: float) -> tuple[bool, list[str]]:
    """The pass/fail decision of a load run: (passed, why not)."""
    if result.requests == 0:
        return False, ["no request completed during the run"]
    reasons = []
    if result.error_rate > max_error_rate:
        reasons.append(f"error rate {result.error_rate:.2%} > limit {max_error_rate:.2%} "
                       f"({result.failures} of {result.requests} requests failed)")
    if result.p95_ms is None or result.p95_ms > max_p95_ms:
        reasons.append(f"p95 latency {result.p95_ms} ms > limit {max_p95_ms:g} ms")
    return not reasons, reasons


def run_load(base_url: str, infer_path: str, payload: dict | bytes, *, users: int, spawn_rate: float,
             duration_s: float, shape: str = "constant", processes: int = 1, python: str | None = None,
             workdir: Path | None = None) -> LoadResult:
    """Run the load for `duration_s` (whole seconds, at least 1) and return what Locust measured.

    Raises LoadError when Locust cannot run or does not stop by itself within the run time + GRACE_S.
    `workdir` keeps Locust's CSV files and log (a temporary folder otherwise).
    """
    if shape not in SHAPES:
        raise LoadError(f"unknown load shape {shape!r} (choose from {', '.join(SHAPES)})")
    if users < 1 or spawn_rate <= 0 or processes < 1:
        raise LoadError(f"users ({users}), processes ({processes}) must be >= 1 and spawn rate ({spawn_rate}) > 0")
    python = python or sys.executable
    _require_locust(python)
    run_time = max(1, round(duration_s))  # Locust's --run-time takes whole seconds
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        folder = Path(workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("summary.json", "locust_stats_history.csv"):  # a reused workdir: no earlier run's figures
            (folder / stale).unlink(missing_ok=True)
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        (folder / "payload.json").write_bytes(body)
        cmd = [python, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base_url,
               "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", f"{run_time}s",
               "--stop-timeout", str(STOP_TIMEOUT_S),
               "--csv", str(folder / "locust"), "--csv-full-history", "--only-summary",
               # Failed requests are results to report, not a reason for Locust to fail.
               "--exit-code-on-error", "0"]
        if processes > 1:
            port = free_port()
            cmd += ["--processes", str(processes), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", str(port), "--master-port", str(port)]
        # Nothing from the caller's LOCUST_* variables (Locust reads them as options).
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
        env.update(LOAD_INFER_PATH=infer_path, LOAD_PAYLOAD_FILE=str(folder / "payload.json"), LOAD_SHAPE=shape,
                   LOAD_SUMMARY_FILE=str(folder / "summary.json"))
        log = folder / "locust.log"
        _run(cmd, folder, env, log, timeout=run_time + GRACE_S)
        return _read_results(folder, log, users=users, spawn_rate=spawn_rate, duration_s=run_time,
                             shape=shape, processes=processes)


def _require_locust(python: str) -> None:
    # find_spec, not import: importing locust would monkey-patch (and take a second).
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('locust') is None)"
    try:
        found = subprocess.run([python, "-c", probe], capture_output=True, timeout=60, check=False).returncode == 0
    except FileNotFoundError:
        raise LoadError(f"cannot run the load: no Python at {python}") from None
    if not found:
        raise LoadError(f"cannot run the load: locust is not installed for {python}; {INSTALL_HINT}")


def _run(cmd: list[str], cwd: Path, env: dict, log: Path, timeout: float) -> None:
    # Its own session: on timeout or interruption, Locust and its forked workers go as one group.
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        raise LoadError(f"locust did not stop within {timeout:.0f} s (run time + {GRACE_S:.0f} s); "
                        f"stopped it: {_last_line(log)}") from None
    except BaseException:
        _stop_group(proc)
        raise
    if rc != 0:
        raise LoadError(f"locust exited with code {rc}: {_last_line(log)}")


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    # A traceback's last line says what went wrong; otherwise the last thing Locust said.
    return lines[-1][:300] if lines else f"no output (log: {log})"


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None  # Locust writes N/A where nothing was measured


def _read_results(folder: Path, log: Path, **run) -> LoadResult:
    # The totals: what the locustfile wrote when Locust quit (exact, unlike the --csv files).
    try:
        total = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        raise LoadError(f"locust wrote no summary ({folder / 'summary.json'}): {_last_line(log)}") from None
    # The timeline: the Aggregated rows of --csv-full-history, one a second.
    history = [r for r in _rows(folder / "locust_stats_history.csv") if r["Name"] == "Aggregated"]
    return LoadResult(
        requests=total["requests"], failures=total["failures"], rps=total["rps"],
        p50_ms=total["p50_ms"], p95_ms=total["p95_ms"], p99_ms=total["p99_ms"],
        timeline=_timeline(history), failure_kinds=[e[:160] for e in total["errors"]], **run,
    )


def _timeline(history: list[dict[str, str]]) -> list[Sample]:
    """Per-interval rates from the cumulative counts (Locust's own Requests/s is a 10 s average)."""
    by_second: dict[int, dict[str, str]] = {}
    for row in history:
        by_second[int(row["Timestamp"])] = row  # the last row of a second wins
    samples: list[Sample] = []
    previous = None
    for ts in sorted(by_second):
        row = by_second[ts]
        count, failed = int(row["Total Request Count"]), int(row["Total Failure Count"])
        if previous is None:
            first_ts, dt, d_count, d_failed = ts, 1, count, failed
        else:
            dt, d_count, d_failed = ts - previous[0], count - previous[1], failed - previous[2]
        samples.append(Sample(t_s=float(ts - first_ts), users=int(row["User Count"]), rps=d_count / dt,
                              failures_per_s=d_failed / dt, p95_ms=_number(row["95%"])))
        previous = (ts, count, failed)
    return samples
