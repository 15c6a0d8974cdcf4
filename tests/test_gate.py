"""The sign-off gate end to end: `--require-accepted` and `--require-scope` through the real plugins.

What is under test is the gate, not the criteria: a probe suite with one passing check per catalog
criterion runs with the acceptance plugins (reports.plugin, fixtures.plugin) in a pytest subprocess,
exactly as `pytest suites/` loads them. The target's scopes are applied by the real plugin (the
local target skips its k8s and gpu rows, the durability rows skip without --disruptive); the probe
checks touch no stack, so nothing is provisioned.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from mlops_acceptance.fixtures.targets import TARGETS, provider_class
from mlops_acceptance.reports import catalog
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(300)


def probe_suite(folder) -> str:
    lines = ["import pytest", ""]
    for n, c in enumerate(catalog.load()):
        lines += [f"@pytest.mark.criterion({c.id!r})", f"def test_probe_{n}():", "    pass", ""]
    path = folder / "test_probe.py"
    path.write_text("\n".join(lines))
    return str(path)


def run_gate(tmp_path, *args: str):
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", probe_suite(tmp_path), "-c", str(ROOT / "pyproject.toml"), "-q",
           "-p", "no:randomly", "-p", "mlops_acceptance.reports.plugin", "-p", "mlops_acceptance.fixtures.plugin", "--report-dir", str(report), *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    signoff = report / "signoff.json"
    return done, report, (json.loads(signoff.read_text()) if signoff.exists() else None)


def test_a_local_run_is_accepted_for_the_service_scope_it_requires_by_default(tmp_path):
    done, report, signoff = run_gate(tmp_path, "--target", "local", "--require-accepted")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert signoff["verdict"] == "ACCEPTED"
    detail = signoff["verdict_detail"]
    assert detail["required_scopes"] == ["service"] and detail["scope_gaps"] == []
    assert "service" in detail["covered_scopes"] and "3.1-pods" in detail["unchecked_scopes"]["k8s"]
    assert "required: service" in done.stdout and "not checked: k8s (none of its 22 rows)" in done.stdout


def test_requiring_k8s_on_the_local_target_can_never_be_accepted(tmp_path):
    done, report, signoff = run_gate(tmp_path, "--target", "local", "--require-accepted", "--require-scope", "k8s")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-2000:]
    assert signoff["verdict"] == "INCOMPLETE"
    gap = "required scope k8s not checked on this target (none of its 22 rows)"
    assert signoff["verdict_detail"]["scope_gaps"] == [gap]
    assert signoff["verdict_detail"]["required_scopes"] == ["service", "k8s"]
    assert "VERDICT INCOMPLETE" in done.stdout and gap in done.stdout
    assert gap in (report / "acceptance.html").read_text()
    props = {p.get("name"): p.get("value") for p in ET.parse(report / "junit.xml").iter("property")}
    assert props["verdict"] == "INCOMPLETE" and props["scopes.required"] == "service,k8s"
    assert props["scope_gaps"] == gap and "k8s" in props["scopes.unchecked"].split(",")
    # Without the gate the run's exit code stays pytest's: every check passed or was skipped.
    done, _, signoff = run_gate(tmp_path, "--target", "local", "--require-scope", "k8s,gpu")
    assert done.returncode == 0 and signoff["verdict"] == "INCOMPLETE"
    assert len(signoff["verdict_detail"]["scope_gaps"]) == 2


def test_a_scope_the_catalog_does_not_have_is_one_line_before_anything_starts(tmp_path):
    done, report, signoff = run_gate(tmp_path, "--target", "local", "--require-scope", "k8s,gpus")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == ["ERROR: --require-scope 'gpus': not a scope of the catalog "
                      "(choose from service, k8s, gpu, disruptive)"], done.stderr[-2000:]
    assert signoff is None and "passed" not in done.stdout


def test_the_kubernetes_targets_require_k8s_and_the_others_only_service():
    required = {t: provider_class(t).required_scopes for t in TARGETS}
    assert required == {"local": ("service",), "external": ("service",), "kwok": ("service", "k8s"),
                        "kind": ("service", "k8s"), "cluster": ("service", "k8s"), "node": ("service", "k8s")}


def test_a_model_version_that_is_not_a_registry_version_is_one_line_before_anything_starts(tmp_path):
    done, _, signoff = run_gate(tmp_path, "--target", "local", "--model-version", "latest")
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == ["ERROR: --model-version 'latest': not a model registry version (a positive integer)"], \
        done.stderr[-2000:]
    assert signoff is None
