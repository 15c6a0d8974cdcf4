"""Does the Locust harness measure the endpoint, or itself? Harness vs a tight reference client.

    .venv/bin/python benchmarks/load_vs_reference.py [--users 8] [--duration 10] [--rounds 2] [--processes 1]
        [--reference wrk|asyncio] [--pin]

One run: the embedded stack is started (LocalProvider), then, on the same infer endpoint, with
the same payload, concurrency (closed loop: users = connections, one request in flight each) and
duration, rounds of (a) load.harness (Locust) and (b) wrk (C, with a Lua script for the POST body;
installed with apt-get when missing), or, without wrk, an asyncio raw-socket client. It prints
requests/s and p50/p95/p99 of each, each client's CPU per request, and the ratio
harness/reference (target >= 0.85). --pin puts the server on CPU 0 and the clients on CPU 1: the
ratio when the client does not take its CPU from the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.local.provider import LocalProvider
from mlops_acceptance.load import harness

TARGET_RATIO = 0.85

# wrk: every request the same POST; `done` prints what wrk measured as one JSON line (latency in us).
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("WRK_BODY"), "rb"):read("*a")
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, '
    .. '"p50": %d, "p95": %d, "p99": %d}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def find_wrk() -> str | None:
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=300, check=False)
    return shutil.which("wrk")


def run_wrk(wrk: str, url: str, body: bytes, users: int, duration: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(body)
        (Path(tmp) / "post.lua").write_text(WRK_SCRIPT)
        done = subprocess.run([wrk, "-t", str(min(threads, users)), "-c", str(users), "-d", f"{duration}s",
                               "-s", str(Path(tmp) / "post.lua"), url],
                              capture_output=True, text=True, timeout=duration + 60, check=False,
                              env={**os.environ, "WRK_BODY": str(Path(tmp) / "body.json")})
    found = re.search(r"^RESULT (.*)$", done.stdout, re.MULTILINE)
    if not found:
        raise SystemExit(f"wrk gave no result (exit {done.returncode}): {(done.stdout + done.stderr)[-500:]}")
    r = json.loads(found.group(1))
    return {"client": "wrk", "requests": r["requests"], "rps": r["requests"] / (r["duration_us"] / 1e6),
            "failures": r["non2xx"] + r["errors"], "p50": r["p50"] / 1000, "p95": r["p95"] / 1000,
            "p99": r["p99"] / 1000}


async def _asyncio_client(url: str, body: bytes, users: int, duration: int) -> dict:
    """The fallback reference: `users` keep-alive connections, each POSTing in a loop (no HTTP library)."""
    parts = urlsplit(url)
    request = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + duration

    async def user() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not head.startswith(b"HTTP/1.1 200")
        writer.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(user() for _ in range(users)))
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"client": "asyncio", "requests": len(latencies), "rps": len(latencies) / elapsed, "failures": failures,
            "p50": q[49], "p95": q[94], "p99": q[98], "cpu_s": time.process_time() - cpu}


def run_harness(base: str, path: str, body: bytes, users: int, duration: int, processes: int) -> dict:
    # All users at once: the reference opens all its connections at once too.
    r = harness.run_load(base, path, body, users=users, spawn_rate=1000, duration_s=duration,
                         processes=processes)
    full = [s.rps for s in r.timeline if s.users == users][1:-1]  # whole seconds at full load
    return {"client": f"locust x{processes}", "requests": r.requests, "rps": r.rps, "failures": r.failures,
            "p50": r.p50_ms, "p95": r.p95_ms, "p99": r.p99_ms,
            "steady_rps": statistics.median(full) if full else None}


def children_cpu_s() -> float:
    """CPU seconds of the finished child processes (the client just run; Locust's start-up included)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def show(row: dict) -> None:
    steady = f" (full load {row['steady_rps']:.0f}/s)" if row.get("steady_rps") else ""
    print(f"  {row['client']:<10} {row['rps']:7.1f} req/s{steady}  p50 {row['p50']:5.1f} ms  p95 {row['p95']:5.1f} ms  "
          f"p99 {row['p99']:5.1f} ms  {row['requests']} requests, {row['failures']} failed; client CPU "
          f"{row['cpu_us']:.0f} us/request; load average {os.getloadavg()[0]:.1f}", flush=True)


def pin(provider: LocalProvider) -> None:
    """MLServer's threads on CPU 0; this process, so every client it starts, on CPU 1."""
    server = next(c.service.pid for c in provider.components if c.service and c.service.name == "mlserver")
    for task in Path(f"/proc/{server}/task").iterdir():
        os.sched_setaffinity(int(task.name), {0})
    os.sched_setaffinity(0, {1})


def main(argv: list[str] | None = None) -> int:
    values = load_values()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=values.load_users, help="concurrency of both clients")
    parser.add_argument("--duration", type=int, default=max(1, round(values.load_duration_s)), help="seconds each")
    parser.add_argument("--rounds", type=int, default=3, help="harness/reference pairs, alternating")
    parser.add_argument("--processes", type=int, default=values.load_processes, help="Locust processes")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, clients on CPU 1")
    parser.add_argument("--reference", choices=("wrk", "asyncio"), default="wrk",
                        help="the reference client: wrk (installed with apt-get when missing, else asyncio) or asyncio")
    args = parser.parse_args(argv)

    wrk = find_wrk() if args.reference == "wrk" else None
    provider = LocalProvider(values)
    try:
        started = time.monotonic()
        stack = provider.up()
        inf = stack.inference
        path = f"/v2/models/{inf.model_name}/infer"
        body = json.dumps(inf.infer_payload(stack.served_model.input), separators=(",", ":")).encode()
        if args.pin:
            pin(provider)
        print(f"stack up in {time.monotonic() - started:.0f} s; endpoint {inf.url}{path}; {len(body)} byte body; "
              f"{args.users} users/connections, {args.duration} s each, {os.cpu_count()} CPUs shared by server "
              f"and clients; reference: {'wrk' if wrk else 'asyncio raw sockets (no wrk)'}", flush=True)

        def reference(duration: int) -> dict:
            if wrk:
                return run_wrk(wrk, inf.url + path, body, args.users, duration, args.wrk_threads)
            return asyncio.run(_asyncio_client(inf.url + path, body, args.users, duration))

        # Warm-up, a whole round long: MLServer serves its first ~10 s of load markedly slower (seen as a
        # low first round, whichever client ran it), which would bias the ratio against the first client.
        reference(args.duration)
        pairs = []
        for i in range(args.rounds):
            print(f"round {i + 1}:", flush=True)
            # Alternate which client goes first, so a drift of the machine favours neither.
            order = ("harness", "reference") if i % 2 == 0 else ("reference", "harness")
            got = {}
            for which in order:
                cpu = children_cpu_s()
                got[which] = (run_harness(inf.url, path, body, args.users, args.duration, args.processes)
                              if which == "harness" else reference(args.duration))
                cpu = got[which].get("cpu_s", children_cpu_s() - cpu)  # in-process (asyncio) or a child
                got[which]["cpu_us"] = cpu / max(got[which]["requests"], 1) * 1e6
                show(got[which])
            pairs.append(got)
    finally:
        provider.down()

    # Each round's own ratio, then their median: the machine's drift between rounds cancels out.
    ratios = [p["harness"]["rps"] / p["reference"]["rps"] for p in pairs]
    ratio = statistics.median(ratios)
    h = statistics.median(p["harness"]["rps"] for p in pairs)
    ref = statistics.median(p["reference"]["rps"] for p in pairs)
    print(f"\nharness {h:.1f} req/s, {pairs[0]['reference']['client']} {ref:.1f} req/s (medians); ratio harness/reference "
          f"per round {', '.join(f'{r:.2f}' for r in ratios)}: median {ratio:.2f} (target >= {TARGET_RATIO})")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
