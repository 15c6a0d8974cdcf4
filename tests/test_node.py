"""The node target's host hygiene: a real single-node Kubernetes on this host leaves it exactly as it
found it, after success, failure, Ctrl-C, and a SIGKILLed run followed by the next run.

Each scenario runs `python -m mlops_acceptance.fixtures.node up` (fixtures/node/__main__.py) as a user's run would,
and compares fixtures.node.host.snapshot() (iptables, ip6tables, nft, links, addresses, mounts,
network namespaces, the three sysctls, cgroups, the host paths) with the one taken before.

Needs root, Linux and the node's Debian packages (fixtures/node/install-host-packages.sh), and the
Go binaries (built once by fixtures/kube/toolchain.py): skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_acceptance.fixtures.kube.toolchain import binary_paths
from mlops_acceptance.fixtures.node.cluster import NODE_BINARIES, missing_requirements
from mlops_acceptance.fixtures.node.host import MachineLock, snapshot, snapshot_diff

ROOT = Path(__file__).resolve().parent.parent


def _why_not() -> str | None:
    missing = missing_requirements()
    if missing:
        return "the node target needs " + "; ".join(missing)
    unbuilt = [b for b, p in binary_paths(NODE_BINARIES).items() if not os.access(p, os.X_OK)]
    if unbuilt and not shutil.which("go"):
        return f"node binaries {unbuilt} not built and no `go` to build them"
    return None


pytestmark = [pytest.mark.timeout(1800), pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]


def _node(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlops_acceptance.fixtures.node", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _until_ready(proc: subprocess.Popen, timeout: float = 600) -> list[str]:
    """Read the run's output until it says `ready` (or ends); the lines seen."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("ready "):
            return lines
    pytest.fail("the node never said ready:\n" + "\n".join(lines[-30:]))


@pytest.fixture(scope="module")
def before():
    # Binaries first, so that the scenarios' timeouts measure the node, not a cold Go build.
    from mlops_acceptance.fixtures.kube.toolchain import ensure_binaries

    ensure_binaries(NODE_BINARIES)
    # Another run's node (one per machine) would change the host under the snapshots: wait until
    # none is up. The scenarios then take the lock themselves, one after the other.
    lock = MachineLock()
    lock.acquire(1800, print)
    lock.release()
    subprocess.run([sys.executable, "-m", "mlops_acceptance.fixtures.node", "cleanup"], cwd=ROOT, check=True, timeout=300)
    return snapshot()


def _assert_restored(before: dict, what: str) -> None:
    diff = snapshot_diff(before, snapshot())
    assert not diff, f"after {what} the host differs from before:\n" + "\n".join(diff)


def test_success_restores_the_host(before):
    proc = _node("up", "--hold", "0")
    lines = _until_ready(proc)
    assert proc.wait(timeout=300) == 0, "\n".join(lines + proc.stdout.read().splitlines()[-20:])
    _assert_restored(before, "a run that ended normally")


def test_failure_restores_the_host(before):
    # Node Ready can never come within 0.01 s: the bring-up fails part-way, with components running.
    proc = _node("up", "--timeout", "0.01")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 2 and "not ready after" in out, out[-2000:]
    _assert_restored(before, "a run whose node failed to come up")


def test_ctrl_c_restores_the_host(before):
    proc = _node("up")
    _until_ready(proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=300) == 0
    _assert_restored(before, "Ctrl-C")


def test_sigkill_then_the_next_run_restores_the_host(before):
    proc = _node("up")
    _until_ready(proc)
    # SIGKILL the run only (its components have sessions of their own and keep running).
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert snapshot_diff(before, snapshot()), "a SIGKILLed run left nothing behind: the test proves nothing"
    nxt = _node("up", "--hold", "0")
    lines = _until_ready(nxt)
    assert nxt.wait(timeout=300) == 0, "\n".join(lines)
    assert any("node cleanup:" in line for line in lines), "the next run did not clean up after the killed one"
    _assert_restored(before, "a SIGKILLed run followed by the next run")
