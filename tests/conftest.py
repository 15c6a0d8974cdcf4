"""Helpers for the project's own tests: run the suite as a user would, in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.background_build import BackgroundBuild

ROOT = Path(__file__).resolve().parent.parent


def run_suite(*args: str, report_dir: Path, timeout: float = 600, env: dict | None = None):
    """`pytest suites/ ARGS` in a subprocess; returns (completed process, signoff dict or None).

    The run's TMPDIR is a folder of its own, so what it leaves there is its own doing.
    """
    cmd = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:randomly", "--report-dir", str(report_dir),
           *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    signoff = report_dir / "signoff.json"
    return done, (json.loads(signoff.read_text()) if signoff.exists() else None)


def statuses(signoff: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in signoff["criteria"]}


@pytest.fixture
def run_tmpdir():
    """A TMPDIR for one suite run; PostgreSQL's OS user must be able to pass through it."""
    folder = Path(tempfile.mkdtemp(prefix="acceptance-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def suite_run(tmp_path, run_tmpdir):
    def run(*args, env=None, **kwargs):
        return run_suite(*args, report_dir=tmp_path / "report", env={"TMPDIR": str(run_tmpdir), **(env or {})},
                         **kwargs)

    return run


# --- running the project's tests on several workers (pytest-xdist, `--dist loadgroup`) --------------
# Why groups: a module's fixtures (a kwok cluster, a real node) are made once per worker, so a module
# with module-scoped fixtures stays on one worker; and there is one real node per machine
# (fixtures.node.host.MachineLock), so every module that brings one up shares a single group and runs
# one after the other. A test that needs nothing of its module's (each runs its own suite in a
# subprocess: the fault, mid-run and durability tests) is a group of its own, so the long modules
# spread over the workers instead of holding one for ten minutes.
# In the order they run: on a cold cache the first needs only the node's binaries, the second also
# the stack's images, the last two KServe's too, which the background build (tests/background_build.py)
# makes meanwhile.
REAL_NODE_ORDER = ("test_node.py", "test_node_gpu.py", "test_node_stack.py", "test_node_suite_run.py", "test_kserve_node_faults.py")
REAL_NODE_MODULES = set(REAL_NODE_ORDER)
KSERVE_NODE_MODULES = set(REAL_NODE_ORDER[3:])
REAL_NODE_GROUP = "real-node"
# Handed out right after the real node's group, longest first, so that no worker starts a long test
# at the end while the others are idle (a warm run's module totals on 2 workers: faults 594 s,
# mid-run faults 513 s, durability 421 s, kwok 219 s, autoscaling 185 s, external inference 181 s).
LONGEST_FIRST = ("test_faults.py", "test_midrun_faults.py", "test_durability.py", "test_kwok.py",
                 "test_autoscaling.py", "test_external_inference.py")


def _shares_module_fixtures(item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return any(defs and defs[-1].scope in ("module", "class", "package")
               for defs in (info.name2fixturedefs.values() if info else ()))


def xdist_group_of(item) -> str:
    if item.path.name in REAL_NODE_MODULES:
        return REAL_NODE_GROUP
    return item.path.stem if _shares_module_fixtures(item) else f"{item.path.stem}::{item.name}".replace("@", "_")


def _run_order(item) -> tuple[int, int]:
    name = item.path.name
    if name in REAL_NODE_MODULES:
        return 0, REAL_NODE_ORDER.index(name)
    if name in LONGEST_FIRST:
        return 1, LONGEST_FIRST.index(name)
    return 2, 0


# tryfirst: xdist's worker turns the xdist_group mark into the `@group` suffix of the node id in its
# own pytest_collection_modifyitems, so the mark must be there before that hook runs.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))
    # A stable sort keeps each module's own order.
    items.sort(key=_run_order)


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "loadgroup" and tuple(map(int, pytest.__version__.split(".")[:2])) >= (9, 2):
        raise pytest.UsageError(f"--dist loadgroup does not group tests on pytest {pytest.__version__} "
                                "(pytest-xdist 3.8): install pytest<9.2 (tox -e tests does) or run with -n 0")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    _check_groups(session)
    if not hasattr(session.config, "workerinput") and session.items and not session.config.option.collectonly:
        # A run without xdist (-n 0): it collected the tests itself.
        _BUILD.start([item.nodeid for item in session.items])


def _check_groups(session) -> None:
    """Stop a worker whose tests did not get their group: the real-node modules would run at once.

    Seen with pytest 9.2 and pytest-xdist 3.8 (the group suffix is written where pytest no longer
    reads it): one node's test waited on the other's machine lock and both host snapshots saw the
    other's node. tox.ini pins pytest below 9.2 for this.
    """
    if not getattr(session.config.option, "loadgroup", False) or not session.items:
        return
    ungrouped = [item.nodeid for item in session.items if "@" not in item.nodeid]
    if ungrouped:
        raise pytest.UsageError(
            f"pytest-xdist's --dist loadgroup did not group {ungrouped[0]} (pytest {pytest.__version__}): "
            "install pytest<9.2 (tox -e tests does) or run with -n 0")


# --- the real node's builds, in the background (tests/background_build.py) ------------------------
_BUILD = BackgroundBuild(REAL_NODE_MODULES, KSERVE_NODE_MODULES)


def pytest_xdist_node_collection_finished(node, ids):
    """xdist's controller: a worker's collected ids (the controller collects nothing itself)."""
    _BUILD.start(ids)




def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        _BUILD.stop()
