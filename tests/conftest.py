"""Helpers for the project's own tests: run the suite as a user would, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_suite(*args: str, report_dir: Path, timeout: float = 600, env: dict | None = None):
    """`pytest suites/ ARGS` in a subprocess; returns (completed process, signoff dict or None)."""
    cmd = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:randomly", "--report-dir", str(report_dir),
           *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    signoff = report_dir / "signoff.json"
    return done, (json.loads(signoff.read_text()) if signoff.exists() else None)


def statuses(signoff: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in signoff["criteria"]}


@pytest.fixture
def suite_run(tmp_path):
    def run(*args, **kwargs):
        return run_suite(*args, report_dir=tmp_path / "report", **kwargs)

    return run
