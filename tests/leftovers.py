"""What a run may leave behind (processes, temporary folders): nothing."""

from __future__ import annotations

import time
from pathlib import Path

import psutil


def processes_under(folder: Path) -> list[int]:
    """Processes whose command line names a path inside `folder` (the run's TMPDIR)."""
    marker = str(folder)
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(p.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_processes_under(folder: Path) -> None:
    """SIGKILL the process group of every process started inside `folder` (its command line or its
    TMPDIR names it): what a test kept on purpose (--keep-stack) or a failed test left behind."""
    import os
    import signal

    marker = str(folder)
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            inside = marker in " ".join(p.info["cmdline"] or []) or marker in (p.info["environ"] or {}).get("TMPDIR", "")
            if inside:
                os.killpg(os.getpgid(p.info["pid"]), signal.SIGKILL)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue


def assert_nothing_left(tmpdir: Path, grace: float = 10) -> None:
    """Every server stopped, every temporary folder of the run removed."""
    deadline = time.monotonic() + grace
    while (processes_under(tmpdir) or any(tmpdir.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = processes_under(tmpdir)
    assert not left, f"processes left running: {[psutil.Process(p).cmdline()[:3] for p in left if psutil.pid_exists(p)]}"
    assert not any(tmpdir.iterdir()), f"temporary files left: {sorted(p.name for p in tmpdir.iterdir())}"
