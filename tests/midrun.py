"""A pytest plugin that breaks one component of the embedded stack in the middle of the checks.

    pytest suites/ -p tests.midrun --break mlflow=kill --break-after suites/test_33_mlflow.py

After the first check whose node id starts with --break-after has finished, the
component's whole process group is
  kill: sent SIGKILL (a crash: the port closes, the process is gone), or
  hang: sent SIGSTOP (a hung server: the kernel still accepts TCP connections into
        the listen backlog, and nothing ever answers them).
The product's own teardown must then cope (it wakes a stopped group before stopping it).
The checks that ran before the break are written, one node id a line, to --break-log.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

COMPONENTS = ("s3", "postgresql", "mlflow", "mlserver")
HOW = {"kill": signal.SIGKILL, "hang": signal.SIGSTOP}

_state: dict = {"stack": None, "done": False, "config": None}


def pytest_addoption(parser):
    parser.addoption("--break", dest="break_spec", required=True, metavar="COMPONENT=kill|hang")
    parser.addoption("--break-after", required=True, metavar="NODEID_PREFIX")
    parser.addoption("--break-log", default=None, metavar="FILE")


def pytest_configure(config):
    spec = config.getoption("break_spec")
    name, _, how = spec.partition("=")
    if name not in COMPONENTS or how not in HOW:
        raise pytest.UsageError(f"--break {spec!r}: expected COMPONENT=kill|hang, COMPONENT one of {COMPONENTS}")
    _state.update(config=config, name=name, how=how)


@pytest.hookimpl
def pytest_acceptance_stack_ready(stack):
    _state["stack"] = stack


def pytest_runtest_logreport(report):
    config = _state["config"]
    if report.when != "teardown" or _state["done"] or _state["stack"] is None:
        return
    log = config.getoption("break_log")
    if log:
        with open(log, "a") as out:
            out.write(report.nodeid + "\n")
    if report.nodeid.startswith(config.getoption("break_after")):
        _break(_state["stack"], _state["name"], _state["how"])
        _state["done"] = True


def _break(stack, name: str, how: str) -> None:
    component = next(c for c in stack.components if c.name == name)
    leader = component.pids[0]
    os.killpg(leader, HOW[how])
    if how == "kill":
        # The break is complete when the process is gone, so the next check meets a dead component.
        deadline = time.monotonic() + 30
        while component.exited() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        deadline = time.monotonic() + 30
        while _state_of(leader) != "T" and time.monotonic() < deadline:
            time.sleep(0.05)


def _state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "?"
