"""The installable plugin: the wheel built from this tree, installed into a fresh venv, runs the suite
without a checkout (`pytest --pyargs mlops_acceptance.suites --target local`, reports under the current
directory); and a checkout with the editable install loads each plugin once (the `pytest11` entry point
and the root conftest.py name the same modules)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("fixtures", "reports", "load", "manifests", "suites")
PLUGINS = ("mlops_acceptance.reports.plugin", "mlops_acceptance.fixtures.plugin")


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as a user gets it: `uv build` makes the sdist, then the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    done = _run([sys.executable, "-m", "uv", "build", "--quiet", "--out-dir", str(out), str(ROOT)], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = out.glob("mlops_acceptance-*.whl")
    return found


def _shipped_sources() -> list[str]:
    """Every file git tracks in the namespaced folders (reports/out and caches are not tracked)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    done = _run(["git", "ls-files", "--", *FOLDERS], timeout=60, cwd=ROOT, check=True)
    return [line for line in done.stdout.splitlines() if line]


def test_the_wheel_namespaces_every_folder_with_its_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    top = {name.split("/")[0] for name in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"mlops_acceptance"}, f"top-level names besides mlops_acceptance: {sorted(top)}"
    missing = [path for path in _shipped_sources() if f"mlops_acceptance/{path}" not in names]
    assert not missing, f"tracked files the wheel lacks: {missing}"
    (info,) = dist_info
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "[pytest11]" in entry_points and "mlops_acceptance.plugin" in entry_points, entry_points


def test_the_installed_plugin_runs_the_suite_without_a_checkout(wheel, tmp_path, run_tmpdir):
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "uv", "venv", "--quiet", "--python", sys.executable, str(venv)], timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", str(python),
                      f"{wheel}[load]"], timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    work = tmp_path / "work"  # a directory with nothing of the project in it
    work.mkdir()
    done = _run([str(python), "-m", "pytest", "--pyargs", "mlops_acceptance.suites", "--target", "local", "-q"],
                timeout=900, cwd=work, env={**os.environ, "TMPDIR": str(run_tmpdir), "PYTHONPATH": ""})
    output = done.stdout[-4000:] + done.stderr[-4000:]
    signoff_file = work / "reports" / "out" / "signoff.json"
    assert signoff_file.is_file(), f"no reports under the working directory (rc {done.returncode}):\n{output}"
    signoff = json.loads(signoff_file.read_text())
    # Every service row passed but 3.2-backup: its schedule is a Kubernetes object the local target
    # cannot run, so that row is partial and the verdict INCOMPLETE (never ACCEPTED) on local.
    status = {c["id"]: c["status"] for c in signoff["criteria"]}
    assert signoff["verdict"] == "INCOMPLETE" and status["3.2-backup"] == "partial", output
    assert not [cid for cid, s in status.items() if s not in ("passed", "skipped", "partial")], status
    assert [cid for cid, s in status.items() if s == "partial"] == ["3.2-backup"], status
    assert done.returncode == 0, output
    assert (work / "reports" / "out" / "acceptance.html").is_file() and (work / "reports" / "out" / "junit.xml").is_file()
    # The suite ran from the installed package, not from this checkout.
    where = _run([str(python), "-c", "import mlops_acceptance.suites as s; print(s.__file__)"], timeout=60, cwd=work)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout, where.stdout + where.stderr


LIST_PLUGINS = """
import json, os, types

def pytest_collection_finish(session):
    plugins = [(name, plugin.__name__) for name, plugin in session.config.pluginmanager.list_name_plugin()
               if isinstance(plugin, types.ModuleType)]
    with open(os.environ["PLUGINS_FILE"], "w") as out:
        json.dump(plugins, out)
"""


@pytest.mark.parametrize("autoload", ["entry point", "root conftest.py"])
def test_a_checkout_registers_each_plugin_once(autoload, tmp_path):
    """Loaded by the entry point, the root conftest.py's list adds nothing; with autoload off, it loads them."""
    (tmp_path / "list_plugins.py").write_text(LIST_PLUGINS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PLUGINS_FILE": str(tmp_path / "plugins.json"),
           **({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"} if autoload == "root conftest.py" else {})}
    # Without autoload the run names the third-party plugins the suite uses, as a user would.
    named = (["-p", "pytest_metadata.plugin", "-p", "pytest_html.plugin", "-p", "pytest_timeout"]
             if autoload == "root conftest.py" else [])
    done = _run([sys.executable, "-m", "pytest", "suites/", "--collect-only", "-q", "-p", "list_plugins", *named,
                 "--report-dir", str(tmp_path / "report")], timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    registered = json.loads((tmp_path / "plugins.json").read_text())  # [name, module] per registered module
    modules = [module for _, module in registered]
    for plugin in PLUGINS:
        assert modules.count(plugin) == 1, f"{plugin} registered {modules.count(plugin)} times: {registered}"
        assert [plugin, plugin] in registered, f"{plugin} not registered under its module's name: {registered}"
    entry_point = ["mlops_acceptance", "mlops_acceptance.plugin"]
    assert (entry_point in registered) == (autoload == "entry point"), registered
