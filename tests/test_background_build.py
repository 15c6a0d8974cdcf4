"""The real node's background build (tests/background_build.py, fixtures/node/prebuild.py): started
only for runs that collect a real-node module, and its command refuses bad input in one line."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.background_build import BackgroundBuild
from tests.conftest import KSERVE_NODE_MODULES as KSERVE
from tests.conftest import REAL_NODE_MODULES, ROOT


def test_only_runs_with_a_real_node_module_build_and_kserve_only_when_asked():
    build = BackgroundBuild(REAL_NODE_MODULES, KSERVE)
    assert build.wanted(["tests/test_inputs.py::test_x@test_inputs", "tests/test_lint.py::test_y"]) == (False, False)
    assert build.wanted(["tests/test_node.py::test_success_restores_the_host@real-node"]) == (True, False)
    assert build.wanted(["tests/test_kserve_node_faults.py::test_a[x]@real-node"]) == (True, True)


def test_turned_off_it_starts_nothing(monkeypatch):
    monkeypatch.setenv("TESTS_PREBUILD", "0")
    build = BackgroundBuild(REAL_NODE_MODULES, KSERVE)
    build.start(["tests/test_node.py::test_success_restores_the_host"])
    assert build.proc is None


def test_prebuild_names_a_values_file_that_does_not_exist_in_one_line(tmp_path):
    missing = tmp_path / "nope.yaml"
    done = subprocess.run([sys.executable, "-m", "mlops_acceptance.fixtures.node", "prebuild", "--values", str(missing)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_a_workers_progress_lines_reach_the_runs_terminal(tmp_path):
    """A build that a pytest-xdist worker's fixture runs says how far it is on the run's terminal
    (a worker's own terminal reporter goes nowhere: a cold build there looked hung in CI's log)."""
    (tmp_path / "test_say.py").write_text(
        "from mlops_acceptance.fixtures import progress\n"
        "def test_say(pytestconfig):\n"
        "    progress.attach(pytestconfig)\n"
        "    progress.say('building something: 3 of 7')\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:randomly", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "[acceptance] building something: 3 of 7" in done.stdout + done.stderr
