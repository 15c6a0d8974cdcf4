"""What a run may leave behind (processes, temporary folders): nothing."""

from __future__ import annotations

import glob
import time

import psutil

MARKERS = ("mlops-acceptance-",)


def _our_processes() -> set[int]:
    found = set()
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmdline = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(m in cmdline for m in MARKERS):
            found.add(p.info["pid"])
    return found


def snapshot() -> dict:
    # Ports are not compared: every port the stack opens is held by one of its processes.
    return {"pids": _our_processes(), "dirs": set(glob.glob("/tmp/mlops-acceptance-*"))}


def assert_nothing_left(before: dict, grace: float = 10) -> None:
    deadline = time.monotonic() + grace
    while True:
        now = snapshot()
        pids = now["pids"] - before["pids"]
        dirs = now["dirs"] - before["dirs"]
        if not (pids or dirs) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not pids, f"processes left running: {[psutil.Process(p).cmdline()[:3] for p in pids if psutil.pid_exists(p)]}"
    assert not dirs, f"temporary folders left: {sorted(dirs)}"
