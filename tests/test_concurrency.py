"""Two runs at once on one machine (two `tox -e local`, the same command twice) both finish green:
ports, names, caches and the report folder are never shared."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.tools import kwok_unbuildable
from tests.conftest import ROOT, statuses
from tests.leftovers import assert_nothing_left


@pytest.fixture
def two_tmpdirs():
    """A TMPDIR for each run (what each leaves there is its own doing), in /tmp: PostgreSQL's OS user
    must pass through every folder above its data folder."""
    folders = [Path(tempfile.mkdtemp(prefix="acceptance-test-")) for _ in range(2)]
    for folder in folders:
        folder.chmod(0o755)
    yield folders
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _start(args, report_dir: Path, tmpdir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:randomly",
                             "--report-dir", str(report_dir), *args],
                            cwd=ROOT, env={**os.environ, "TMPDIR": str(tmpdir)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


TARGETS = [
    pytest.param([], id="local"),
    # Two control planes and two embedded stacks: kwokctl's ports, cluster names and the kubeconfigs
    # must not collide either. Skipped only where the binaries cannot be built (no `go`).
    pytest.param(["--target", "kwok"], id="kwok",
                 marks=[pytest.mark.skipif(bool(kwok_unbuildable("metrics-server")),
                                           reason=kwok_unbuildable("metrics-server") or ""),
                        pytest.mark.timeout(2400)]),
]


@pytest.mark.parametrize("target", TARGETS)
def test_two_runs_at_once_both_finish_green_with_their_own_reports(target, tmp_path, two_tmpdirs):
    if "kwok" in target:
        # Built (or waited for, under their lock) here, so the two runs' hang guard times the runs only.
        from mlops_acceptance.fixtures.kube.cluster import REQUIRED_BINARIES
        from mlops_acceptance.fixtures.kube.toolchain import ensure_binaries

        ensure_binaries(REQUIRED_BINARIES + ("metrics-server",))
    report_dir = tmp_path / "out"  # the same folder for both, as two `tox -e local` would use
    runs = [_start([*target, "--set", "load_duration_s=3"], report_dir, tmpdir) for tmpdir in two_tmpdirs]
    outputs = []
    try:
        for run in runs:
            # Hang guard only: two runs on a loaded 2-core machine take a few minutes.
            outputs.append(run.communicate(timeout=2000))
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, f"exit {run.returncode}:\n{out[-3000:]}\n{err[-2000:]}"
    # The second run to start found the folder taken and wrote beside it.
    folders = [report_dir, tmp_path / "out-2"]
    assert any(f"{report_dir} is in use by another run: this run writes its reports to {folders[1]}" in err
               for _, err in outputs), [err[-500:] for _, err in outputs]
    for folder in folders:
        signoff = json.loads((folder / "signoff.json").read_text())
        status = statuses(signoff)
        # Every criterion the target can judge was judged and none failed (kwok's simulated rows are partial).
        bad = {cid: s for cid, s in status.items() if s in ("failed", "not-run")}
        assert not bad, bad
        service = {c["id"] for c in signoff["criteria"] if c["scope"].startswith("service")}
        # A service criterion with a Kubernetes-only part (a predictor restart, the backup Job) may be partial.
        assert all(status[cid] in ("passed", "partial") for cid in service), {cid: status[cid] for cid in service}
        assert (folder / "acceptance.html").exists() and (folder / "junit.xml").exists()
    for tmpdir in two_tmpdirs:
        assert_nothing_left(tmpdir)
