"""Whatever ends the run, nothing it started is left: Ctrl-C and SIGTERM, early and late."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.leftovers import assert_nothing_left, processes_under


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _files(tmpdir, pattern):
    return list(tmpdir.glob(pattern))


@pytest.mark.parametrize("sig,moment", [
    (signal.SIGINT, "model"),        # Ctrl-C while the model loads: every server is up
    (signal.SIGTERM, "postgresql"),  # a CI job cancelled while the first servers start
])
def test_an_interrupted_run_leaves_nothing(sig, moment, run_tmpdir, tmp_path):
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "suites/", "-q", "--report-dir", str(tmp_path / "report")],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(run_tmpdir)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        if moment == "model":
            _wait_for(lambda: _files(run_tmpdir, "mlops-acceptance-*/mlserver/*/model-settings.json"), 180,
                      "the model to be loading")
        else:
            _wait_for(lambda: _files(run_tmpdir, "mlops-acceptance-*/logs/postgresql.log"), 120,
                      "PostgreSQL to start")
        assert processes_under(run_tmpdir), "no server was running when the signal was sent"
        run.send_signal(sig)
        output, _ = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0, output[-2000:]
    assert "Traceback" not in output.split("sign-off")[0][-3000:] or "KeyboardInterrupt" in output
    assert_nothing_left(run_tmpdir)
