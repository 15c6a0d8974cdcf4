"""Time to verdict of the main job on the embedded stack: provisioning, checks, teardown, peak memory.

    python benchmarks/time_to_verdict.py [--runs 3] [pytest args...]

Runs `pytest suites/` in a subprocess (as a user would), samples the resident
memory of its whole process tree every 0.2 s, and splits the wall time with
pytest's per-phase durations: the session fixture's setup is provisioning, its
teardown is teardown, the rest is checks. Prints one line per run and the median.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
_DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)")


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def one_run(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as reports:
        cmd = [sys.executable, "-m", "pytest", "suites/", "-q", "--durations=0", "--durations-min=0",
               "--report-dir", reports, *extra]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        watcher = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(watcher))
            time.sleep(0.2)
        output = proc.stdout.read()
        wall = time.monotonic() - started
    phases = [m.groups() for m in map(_DURATION.match, output.splitlines()) if m]
    setups = [float(d) for d, phase, _ in phases if phase == "setup"]
    teardowns = [float(d) for d, phase, _ in phases if phase == "teardown"]
    provisioning = max(setups, default=0.0)  # the session fixture's setup dwarfs every other
    teardown = max(teardowns, default=0.0)
    summary = output.strip().splitlines()[-1]
    return {"wall": wall, "provisioning": provisioning, "teardown": teardown,
            "checks": wall - provisioning - teardown, "peak_mb": peak / 2**20, "summary": summary,
            "code": proc.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args, extra = parser.parse_known_args()
    results = []
    for i in range(args.runs):
        r = one_run(extra)
        results.append(r)
        print(f"run {i + 1}: verdict {r['wall']:.1f} s = provisioning {r['provisioning']:.1f} s + checks "
              f"{r['checks']:.1f} s (incl. pytest start-up and reports) + teardown {r['teardown']:.1f} s; "
              f"peak RSS {r['peak_mb']:.0f} MB; exit {r['code']}; {r['summary']}")
    med = {k: statistics.median(r[k] for r in results) for k in ("wall", "provisioning", "checks", "teardown",
                                                                 "peak_mb")}
    print(f"median of {args.runs}: verdict {med['wall']:.1f} s, provisioning {med['provisioning']:.1f} s, "
          f"checks {med['checks']:.1f} s, teardown {med['teardown']:.1f} s, peak RSS {med['peak_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
