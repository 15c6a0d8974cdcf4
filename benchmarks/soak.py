"""Soak: the main job N times, quiet and then with every core busy; green/total and time to verdict.

    python benchmarks/soak.py [--runs 10] [--no-hog | --only-hog] [pytest args...]

Each run is `pytest suites/` in a subprocess with a report folder and a TMPDIR of its own. A run is
green when it exits 0 and every service criterion in its signoff.json passed. The hog is one
`python -c 'while 1: pass'` per core, started before the runs and stopped (by PID) after them.
Prints a line per run and, for each condition, green/total with the median and max time to verdict.
A verdict that depends on the machine's load shows up here as a red run with the hog.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_hog() -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(os.cpu_count() or 1)]


def stop_hog(hogs: list[subprocess.Popen]) -> None:
    for hog in hogs:
        hog.send_signal(signal.SIGTERM)
    for hog in hogs:
        try:
            hog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            hog.kill()
            hog.wait()


def one_run(extra: list[str], timeout: float) -> dict:
    reports = Path(tempfile.mkdtemp(prefix="soak-reports-"))
    scratch = Path(tempfile.mkdtemp(prefix="soak-tmp-"))
    scratch.chmod(0o755)  # PostgreSQL's OS user passes through it
    try:
        cmd = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:randomly", "--report-dir", str(reports),
               *extra]
        started = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "TMPDIR": str(scratch)})
            code, tail = done.returncode, (done.stdout.strip().splitlines() or [""])[-1]
        except subprocess.TimeoutExpired:
            code, tail = None, f"no verdict within {timeout:.0f} s"
        wall = time.monotonic() - started
        signoff = reports / "signoff.json"
        red = []
        if signoff.exists():
            data = json.loads(signoff.read_text())
            red = [c["id"] for c in data["criteria"] if c["scope"].startswith("service") and c["status"] != "passed"]
        else:
            red = ["no signoff.json"]
        return {"wall": wall, "code": code, "green": code == 0 and not red, "red": red, "summary": tail}
    finally:
        shutil.rmtree(reports, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def condition(name: str, runs: int, extra: list[str], timeout: float) -> dict:
    results = []
    for i in range(runs):
        r = one_run(extra, timeout)
        results.append(r)
        print(f"{name} run {i + 1}/{runs}: {'green' if r['green'] else 'RED'} in {r['wall']:.1f} s; exit {r['code']}"
              f"{'; not passed: ' + ', '.join(r['red']) if r['red'] else ''}; {r['summary']}", flush=True)
    walls = [r["wall"] for r in results]
    return {"name": name, "green": sum(r["green"] for r in results), "total": runs,
            "median": statistics.median(walls), "max": max(walls)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-hog", action="store_true", help="only the quiet condition")
    which.add_argument("--only-hog", action="store_true", help="only the condition with every core busy")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one run may take (a hang guard)")
    args, extra = parser.parse_known_args()
    summaries = []
    if not args.only_hog:
        summaries.append(condition("quiet", args.runs, extra, args.timeout))
    if not args.no_hog:
        hogs = start_hog()
        try:
            summaries.append(condition(f"hog x{len(hogs)}", args.runs, extra, args.timeout))
        finally:
            stop_hog(hogs)
    for s in summaries:
        print(f"{s['name']}: {s['green']}/{s['total']} green; time to verdict median {s['median']:.1f} s, "
              f"max {s['max']:.1f} s")
    return 0 if all(s["green"] == s["total"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
