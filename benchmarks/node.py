"""The node target's figures: image builds (cold/warm), node Ready, stack Ready, verdict, peak memory.

    python benchmarks/node.py [--cold-images] [--no-suite]

- images: each stack image built (--cold-images: its cached archive moved aside first, restored
  if the build fails) or found in the cache (warm);
- node: `python -m mlops_acceptance.fixtures.node up --hold 0` (a bare node: certificates reused, images imported);
  its own timings (to node Ready, in all) and the teardown;
- suite: `pytest suites/ --target node` in a subprocess: to stack Ready (the session fixture's
  setup), to verdict (the whole run); the node's peak memory (its components and containers are
  not children of pytest: they run in sessions and
  cgroups of their own: their RSS and the containers' memory cgroup are sampled every 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def node_memory() -> int:
    """Bytes the node uses now: its components' RSS (the PIDs its state file records, with their
    children) plus the RSS of every container (the memory cgroup under the kubelet's cgroupRoot).
    The machine's `used` figure is useless here: other runs share the machine."""
    from mlops_acceptance.fixtures.node.host import STATE_FILE, Layout

    total = 0
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return 0
    for entry in state.get("pids", {}).values():
        try:
            proc = psutil.Process(entry["pid"])
            total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        except psutil.Error:
            continue
    stat = Path("/sys/fs/cgroup/memory") / Layout().cgroup_root / "memory.stat"
    if stat.exists():
        fields = dict(line.split() for line in stat.read_text().splitlines())
        total += int(fields.get("total_rss", 0))
    return total


class PeakMemory:
    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, node_memory())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return round(self.peak / 2**20)


def images(cold: bool) -> None:
    from mlops_acceptance.fixtures.config import load_values
    from mlops_acceptance.fixtures.node.images import archive_path, build
    from mlops_acceptance.fixtures.node.stack_images import stack_images

    for spec in stack_images(load_values()):
        cached = archive_path(spec)
        aside = cached.with_suffix(".bench-aside") if cold and cached.exists() else None
        if aside:
            cached.rename(aside)
        started = time.monotonic()
        try:
            archive, built = build(spec, progress=lambda _line: None)
        except Exception:
            if aside:
                aside.rename(cached)
            raise
        if aside:
            aside.unlink()
        print(f"image {spec.reference}: {'built (cold)' if built else 'cached (warm)'} in "
              f"{time.monotonic() - started:.1f} s, {archive.stat().st_size / 2**20:.0f} MiB", flush=True)


def bare_node() -> None:
    with PeakMemory() as mem:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mlops_acceptance.fixtures.node", "up", "--hold", "0"], cwd=ROOT,
                              capture_output=True, text=True)
        total = time.monotonic() - started
    print(bare_node_line(done.stdout, done.stderr, done.returncode, total, mem.peak_mib), flush=True)


def bare_node_line(stdout: str, stderr: str, code: int, total: float, peak_mib: float) -> str:
    """The bare node's figure line from `python -m mlops_acceptance.fixtures.node up` output (its `ready KUBECONFIG
    {timings}` line)."""
    ready = next((ln for ln in stdout.splitlines() if ln.startswith("ready ")), None)
    if code or not ready:
        return f"node: failed ({code}): {(stdout + stderr)[-1500:]}"
    timings = json.loads(ready.split(" ", 2)[2])
    return (f"node: Ready {timings['node_ready_s']} s after its images were imported; up in all {timings['up_s']} s; "
            f"up + teardown {total:.1f} s; node peak memory {peak_mib} MiB (components + containers)")


def suite() -> None:
    with tempfile.TemporaryDirectory() as reports, PeakMemory() as mem:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-q", "--target", "node", "--values",
                               "manifests/values/node.yaml", "--durations=0",
                               "--durations-min=0", "--report-dir", reports], cwd=ROOT, capture_output=True, text=True)
        verdict = time.monotonic() - started
        signoff = Path(reports, "signoff.json")
        summary = json.loads(signoff.read_text())["summary"] if signoff.exists() else "no signoff.json"
    setups = [float(m.group(1)) for m in re.finditer(r"^([\d.]+)s setup\s+\S+", done.stdout, re.M)]
    stack_ready = max(setups) if setups else float("nan")
    print(f"suite --target node: exit {done.returncode}; stack Ready {stack_ready:.1f} s (session setup); "
          f"verdict {verdict:.1f} s; node peak memory {mem.peak_mib} MiB (components + containers); "
          f"summary {summary}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold-images", action="store_true", help="rebuild every stack image (minutes)")
    parser.add_argument("--no-suite", action="store_true", help="skip the suite run")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/node.py needs root (the node target does)")
        return 2
    images(args.cold_images)
    bare_node()
    if not args.no_suite:
        suite()
    return 0


if __name__ == "__main__":
    sys.exit(main())
