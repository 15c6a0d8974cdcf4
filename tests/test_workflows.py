"""The GitHub Actions workflows (.github/workflows/*.yml): actionlint finds nothing in them,
and the facts a reviewer checks by hand hold:

- each nightly workflow is scheduled, runs its tox environment, and uploads the reports
  (acceptance.html, junit.xml, signoff.json, from the report dir tox.ini gives that
  environment) and writes the sign-off summary whatever happened (`if: always()`), with the
  one script both share (.github/scripts/signoff_summary.py); their actions are at the
  current majors;
- the GPU workflow installs kubectl, fails unless the verdict is ACCEPTED (--require-accepted),
  passes the cloud credentials through tox, runs on the self-hosted GPU runner, one run at a time, and never
  prints the kubeconfig secret: the secret reaches one step only, through its env, and
  is written to a private file named by KUBECONFIG, removed at the end;
- ci.yml runs the project's own tests (.ci/run) on push and pull request.

actionlint is built once with Go (tests/tools.py) and cached outside the repository;
without Go and without a cached binary the lint test is skipped with that reason. When
`shellcheck` is on PATH actionlint also checks the `run:` scripts with it.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import tools

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
# Custom labels of our self-hosted runners (actionlint knows only GitHub's own).
SELF_HOSTED_LABELS = ("gpu",)

NIGHTLY = {"nightly-kind.yml": "kind", "nightly-gpu.yml": "gpu"}
REPORT_FILES = ("acceptance.html", "junit.xml", "signoff.json")
EXPECTED = ("ci.yml", *NIGHTLY)


# ---------------------------------------------------------------------------------------
# Reading workflows and tox.ini
# ---------------------------------------------------------------------------------------

def load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in doc:  # YAML 1.1: the key `on` reads as the boolean true
        doc["on"] = doc.pop(True)
    return doc


def triggers(doc: dict) -> dict:
    on = doc.get("on")
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {t: None for t in on}
    return dict(on or {})


def steps(doc: dict) -> list[dict]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def condition(step: dict) -> str:
    cond = str(step.get("if", "")).strip()
    if cond.startswith("${{") and cond.endswith("}}"):
        cond = cond[3:-2].strip()
    return cond


def uses(step: dict, action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def runs_tox(step: dict, env: str) -> bool:
    return bool(re.search(rf"\btox\s+(?:\S+\s+)*?-e\s+{re.escape(env)}\b", str(step.get("run", ""))))


def tox_ini() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return parser


def tox_option(env: str, key: str) -> str:
    ini = tox_ini()
    section = f"testenv:{env}"
    if ini.has_option(section, key):
        return ini.get(section, key)
    return ini.get("testenv", key, fallback="")


def tox_report_dir(env: str) -> str:
    args = shlex.split(tox_option(env, "commands").replace("{posargs}", ""))
    assert "--report-dir" in args, f"tox.ini [testenv:{env}] names no --report-dir"
    return args[args.index("--report-dir") + 1].rstrip("/")


def covered(patterns: list[str], path: str) -> bool:
    """Does an upload-artifact `path:` list (globs, folders, files, !exclusions) take `path`?"""
    def match(pattern: str) -> bool:
        pattern = pattern.strip()
        if any(c in pattern for c in "*?["):
            return fnmatch.fnmatchcase(path, pattern)
        pattern = pattern.rstrip("/")
        return path == pattern or path.startswith(pattern + "/")

    included = any(match(p) for p in patterns if p.strip() and not p.strip().startswith("!"))
    excluded = any(match(p.strip()[1:]) for p in patterns if p.strip().startswith("!"))
    return included and not excluded


SUMMARY_SCRIPT = ".github/scripts/signoff_summary.py"
# The majors current when the nightlies were last revised (Node 24 actions): an older one fails the test.
CURRENT_MAJORS = {"actions/checkout": 7, "actions/setup-python": 7, "actions/cache": 6,
                  "actions/upload-artifact": 7, "azure/setup-kubectl": 5}


def summary_step(doc: dict) -> dict:
    found = [s for s in steps(doc) if SUMMARY_SCRIPT in str(s.get("run", ""))]
    assert len(found) == 1, f"expected one step that runs {SUMMARY_SCRIPT}"
    return found[0]


# ---------------------------------------------------------------------------------------
# actionlint
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def actionlint() -> Path:
    try:
        return tools.actionlint()
    except tools.ToolUnavailable as exc:
        pytest.skip(str(exc))


def lint(actionlint: Path, files: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [str(actionlint), "-no-color"]
    if not any((ROOT / ".github" / name).is_file() for name in ("actionlint.yaml", "actionlint.yml")):
        config = tmp_path / "actionlint.yaml"
        config.write_text(yaml.safe_dump({"self-hosted-runner": {"labels": list(SELF_HOSTED_LABELS)}}))
        cmd += ["-config-file", str(config)]
    return subprocess.run([*cmd, *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_workflows_exist():
    present = {p.name for p in WORKFLOWS.glob("*.y*ml")}
    assert set(EXPECTED) <= present, f"missing: {sorted(set(EXPECTED) - present)}"


def test_actionlint_finds_nothing(actionlint, tmp_path):
    files = sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])
    assert files
    done = lint(actionlint, files, tmp_path)
    assert done.returncode == 0 and not done.stdout.strip(), \
        f"actionlint {tools.actionlint_version()} (exit {done.returncode}):\n{done.stdout}{done.stderr}"


def test_actionlint_does_lint(actionlint, tmp_path):
    """The linter is live: a broken workflow (unknown expression, undefined step output) fails."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_thing.x }}\n"
        "        if: ${{ alwayz() }}\n"
    )
    done = lint(actionlint, [bad], tmp_path)
    assert done.returncode == 1 and "alwayz" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------
# Every workflow
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXPECTED)
def test_read_only_token_and_timeouts(name):
    doc = load(name)
    assert doc.get("permissions") == {"contents": "read"}, f"{name}: the token should be read-only"
    for job_id, job in doc["jobs"].items():
        assert "permissions" not in job, f"{name}: job {job_id} widens the token's permissions"
        assert isinstance(job.get("timeout-minutes"), int) and job["timeout-minutes"] > 0, \
            f"{name}: job {job_id} has no timeout-minutes"
        setup = [s for s in job["steps"] if uses(s, "actions/setup-python")]
        assert setup, f"{name}: job {job_id} sets up no Python"
        version = str(setup[0]["with"]["python-version"])
        if version.startswith("${{ matrix."):  # the supported Pythons, one job each
            key = version.removeprefix("${{ matrix.").removesuffix("}}").strip()
            assert [str(v) for v in job["strategy"]["matrix"][key]] == ["3.11", "3.12", "3.13"], \
                f"{name}: job {job_id} should run on Python 3.11, 3.12 and 3.13"
        else:
            assert version == "3.11", f"{name}: Python 3.11 expected"


def test_ci_runs_the_projects_own_tests():
    doc = load("ci.yml")
    assert {"push", "pull_request"} <= set(triggers(doc))
    assert any(str(s.get("run", "")).strip() == ".ci/run" for s in steps(doc))
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    # tests/test_workflows.py and the kwok tests build Go programs: CI must have Go.
    assert any(uses(s, "actions/setup-go") for s in steps(doc))


# ---------------------------------------------------------------------------------------
# The nightly workflows
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,env", NIGHTLY.items())
def test_nightly_is_scheduled(name, env):
    on = triggers(load(name))
    assert "workflow_dispatch" in on
    crons = [entry.get("cron", "") for entry in on.get("schedule") or []]
    assert crons and all(len(c.split()) == 5 for c in crons), f"{name}: schedule {crons}"


@pytest.mark.parametrize("name,env", NIGHTLY.items())
def test_nightly_runs_its_tox_env(name, env):
    all_steps = steps(load(name))
    assert any("pip install" in str(s.get("run", "")) and "tox-uv" in str(s.get("run", "")) for s in all_steps)
    tox_steps = [s for s in all_steps if runs_tox(s, env)]
    assert len(tox_steps) == 1, f"{name}: expected one step running `tox -e {env}`"
    assert "python -m tox" in " ".join(str(tox_steps[0]["run"]).split())
    assert "continue-on-error" not in tox_steps[0], f"{name}: a failed acceptance run must fail the job"


@pytest.mark.parametrize("name,env", NIGHTLY.items())
def test_nightly_always_uploads_the_reports(name, env):
    doc = load(name)
    report_dir = tox_report_dir(env)
    all_steps = steps(doc)
    uploads = [s for s in all_steps if uses(s, "actions/upload-artifact")]
    assert uploads, f"{name}: no upload-artifact step"
    upload = uploads[0]
    assert condition(upload) == "always()", f"{name}: the reports must be uploaded even when the run fails"
    patterns = str(upload["with"]["path"]).splitlines()
    missing = [f for f in REPORT_FILES if not covered(patterns, f"{report_dir}/{f}")]
    assert not missing, f"{name}: the artifact leaves out {missing} (report dir {report_dir}, paths {patterns})"
    assert covered(patterns, f"{report_dir}/logs/mlflow.log"), f"{name}: the component logs are left out"
    tox_at = next(i for i, s in enumerate(all_steps) if runs_tox(s, env))
    assert all_steps.index(upload) > tox_at


@pytest.mark.parametrize("name,env", NIGHTLY.items())
def test_nightly_summarises_the_signoff(name, env):
    doc = load(name)
    step = summary_step(doc)
    assert condition(step) == "always()"
    assert (step.get("env") or {}).get("SUMMARY_TITLE")
    assert doc["env"]["REPORT_DIR"] == tox_report_dir(env), "REPORT_DIR must be where tox writes the reports"
    assert "${{" not in step["run"], "the script takes its inputs from env, not from expressions"
    steps_ = steps(doc)
    assert steps_.index(step) > next(i for i, s in enumerate(steps_) if runs_tox(s, env))


def test_the_nightlies_share_one_summary_script():
    """One script in the repository, no inline copies to keep in step."""
    runs = {name: " ".join(str(summary_step(load(name))["run"]).split()) for name in NIGHTLY}
    assert set(runs.values()) == {f"python {SUMMARY_SCRIPT}"}, runs
    for name in NIGHTLY:
        assert not [s for s in steps(load(name)) if s.get("shell") == "python"], f"{name}: an inline Python step"
    script = (ROOT / SUMMARY_SCRIPT).read_text()
    assert "GITHUB_STEP_SUMMARY" in script and "junit.xml" in script and "signoff.json" in script


@pytest.mark.parametrize("name", NIGHTLY)
def test_nightly_actions_are_at_their_current_majors(name):
    for step in steps(load(name)):
        action, _, ref = str(step.get("uses", "")).partition("@")
        if action in CURRENT_MAJORS:
            assert ref.startswith("v") and int(ref[1:].split(".")[0]) >= CURRENT_MAJORS[action], \
                f"{name}: {action}@{ref} is older than v{CURRENT_MAJORS[action]}"


@pytest.mark.parametrize("name,env", NIGHTLY.items())
def test_nightly_caches_uv_and_the_suite_cache(name, env):
    caches = [s for s in steps(load(name)) if uses(s, "actions/cache")]
    assert caches
    paths = str(caches[0]["with"]["path"]).split()
    assert "~/.cache/uv" in paths and "~/.cache/mlops-acceptance" in paths
    assert "hashFiles('pyproject.toml'" in caches[0]["with"]["key"]


def run_summary(tmp_path: Path, report: Path) -> tuple[subprocess.CompletedProcess, str]:
    out = tmp_path / "step-summary.md"
    done = subprocess.run([sys.executable, str(ROOT / SUMMARY_SCRIPT)], capture_output=True, text=True, timeout=60,
                          check=False, cwd=tmp_path,
                          env={**os.environ, "REPORT_DIR": str(report), "GITHUB_STEP_SUMMARY": str(out),
                               "SUMMARY_TITLE": "Nightly test"})
    return done, out.read_text() if out.exists() else ""


def test_the_summary_script_renders_a_report(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "signoff.json").write_text(json.dumps({
        "target": "kind", "duration_s": 412.5, "verdict": "REJECTED",
        "summary": {"passed": 1, "failed": 1, "skipped": 1, "not-covered": 0},
        "criteria": [
            {"id": "3.2-db", "status": "passed", "evidence": "3 tables"},
            {"id": "3.3-ui", "status": "failed", "evidence": "GET /health -> 503\nbody: a | b"},
            {"id": "3.4-gpu", "status": "skipped", "evidence": "kind nodes have no GPUs"},
        ],
    }))
    (report / "junit.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="suites.test_33" name="test_ui"><failure message="503 | down">x</failure></testcase>'
        '<testcase classname="suites.test_32" name="test_db"/>'
        '<testcase classname="suites.test_34" name="test_gpu"><skipped message="no GPUs"/></testcase>'
        "</testsuite></testsuites>")
    done, text = run_summary(tmp_path, report)
    assert done.returncode == 0, done.stderr
    assert text.startswith("## Nightly test")
    assert "**REJECTED**: target `kind`, 412.5 s: 1 passed, 1 failed, 1 skipped, 0 not-covered" in text
    assert "| 3.3-ui | **failed** | GET /health -> 503 body: a \\| b |" in text
    assert "| 3.2-db | passed | 3 tables |" in text
    assert "3 tests: 1 failed, 0 errors, 1 skipped" in text
    assert "| suites.test_33::test_ui | failure: 503 \\| down |" in text


def test_the_summary_script_without_reports(tmp_path):
    """Provisioning failed before any report: the summary says so and the step still succeeds."""
    done, text = run_summary(tmp_path, tmp_path / "nothing")
    assert done.returncode == 0, done.stderr
    assert "**No sign-off**" in text and "No JUnit result" in text


# ---------------------------------------------------------------------------------------
# kind
# ---------------------------------------------------------------------------------------

def test_kind_job_gets_what_the_kind_target_needs():
    doc = load("nightly-kind.yml")
    (job,) = doc["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    tox_step = next(s for s in steps(doc) if runs_tox(s, "kind"))
    command = " ".join(str(tox_step["run"]).split())
    # pytest-kind-ng is the `kind` extra: from tox.ini or added on the command line.
    extras = tox_option("kind", "extras").split()
    assert "kind" in extras or "testenv:kind.extras+=kind" in command, "tox -e kind lacks pytest-kind-ng"
    # On its defaults: the values' local-path is missing on kind, and the run takes kind's default
    # StorageClass itself (fixtures/kube/storage.py; tests/test_cluster_target.py, tests/test_kind_profile.py).
    assert "storage_class" not in command, "the kind job should run on the defaults"
    # The cluster kind-action creates is the one the suite reuses.
    kind_action = [s for s in steps(doc) if uses(s, "helm/kind-action")]
    if kind_action:
        name = str(kind_action[0]["with"]["cluster_name"])
        if name == "${{ env.KIND_CLUSTER }}":
            name = doc["env"]["KIND_CLUSTER"]
        assert '--kind-name "${KIND_CLUSTER}"' in command and doc["env"]["KIND_CLUSTER"] == name \
            or (name == "mlops-acceptance" and "--kind-name" not in command)


# ---------------------------------------------------------------------------------------
# GPU
# ---------------------------------------------------------------------------------------

def test_gpu_runs_on_the_self_hosted_runner_one_at_a_time():
    doc = load("nightly-gpu.yml")
    (job,) = doc["jobs"].values()
    assert {"self-hosted", "linux", "gpu"} <= set(job["runs-on"])
    concurrency = job.get("concurrency") or doc.get("concurrency")
    assert isinstance(concurrency, dict) and concurrency.get("group"), "no concurrency group"
    assert concurrency.get("cancel-in-progress") is False, "a new run must wait, not cancel the running one"
    assert not re.search(r"run_id|run_number|run_attempt|github\.sha", concurrency["group"]), \
        "a per-run concurrency group does not serialise anything"


def test_gpu_job_has_kubectl_and_requires_acceptance():
    from mlops_acceptance.fixtures.kube.kubectl import DEFAULT_VERSION

    doc = load("nightly-gpu.yml")
    all_steps = steps(doc)
    tox_at = next(i for i, s in enumerate(all_steps) if runs_tox(s, "gpu"))
    kubectl = [i for i, s in enumerate(all_steps) if uses(s, "azure/setup-kubectl")]
    assert kubectl and kubectl[0] < tox_at, "kubectl must be installed before the suite runs"
    assert str(all_steps[kubectl[0]]["with"]["version"]) == DEFAULT_VERSION, \
        "the workflow's kubectl and the one the suite downloads (fixtures/kube/kubectl.py) should agree"
    assert "--require-accepted" in str(all_steps[tox_at]["run"]).split(), "a verdict short of ACCEPTED must fail the job"


def test_tox_passes_cloud_credentials_to_the_gpu_run():
    """A cloud kubeconfig runs its credential plugin (aws eks get-token, gke-gcloud-auth-plugin) inside tox."""
    passenv = tox_option("gpu", "passenv").split()
    for needed in ("KUBECONFIG", "AWS_*", "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_*",
                   "ACCEPTANCE_POSTGRES_ADMIN_DSN"):
        assert needed in passenv, f"tox.ini does not pass {needed} to tox -e gpu"


def _secret_bindings(doc: dict) -> list[tuple[dict, str]]:
    """(step, env var) for every secret the workflow reads."""
    bound = []
    for step in steps(doc):
        for var, value in (step.get("env") or {}).items():
            if "secrets." in str(value):
                bound.append((step, var))
    return bound


def test_gpu_never_prints_the_kubeconfig():
    text = (WORKFLOWS / "nightly-gpu.yml").read_text()
    doc = load("nightly-gpu.yml")
    bound = _secret_bindings(doc)
    # The secret reaches exactly one step, through that step's env (never spliced into a script,
    # a `with:`, or the workflow/job env where every step, tox included, would see it).
    assert len(bound) == 1 and text.count("secrets.") == 1, "the kubeconfig secret must reach one step only"
    writer, var = bound[0]
    assert not runs_tox(writer, "gpu")
    script = str(writer["run"])
    assert "${{" not in script
    for line in script.splitlines():
        if not re.search(rf"\${{?{var}\b", line):
            continue
        if re.match(r"\s*(if\s+)?\[\[?\s+-[zn]\s", line):
            continue  # an emptiness test prints nothing
        redirect = re.search(r"(?<![0-9&])>\s*\"?([^\s\"&|;]+)", line)
        assert redirect and redirect.group(1) not in ("/dev/stdout", "/dev/stderr"), \
            f"this line may print the kubeconfig: {line.strip()!r}"
    # A private file, named by KUBECONFIG for the later steps (tox passes KUBECONFIG through).
    assert "umask 077" in script or re.search(r"chmod\s+(0?600|go-rwx|u=rw)", script)
    assert "GITHUB_ENV" in script and "KUBECONFIG=" in script
    assert "KUBECONFIG" in tox_option("gpu", "passenv").split()
    # Nothing traces or dumps it.
    for bad in (r"set\s+-[a-z]*x", r"set\s+-o\s+xtrace", r"bash\s+-[a-z]*x", r"config\s+view",
                r"\bcat\b[^\n]*KUBECONFIG", r"\becho\b[^\n>]*\$\{?KUBECONFIG\b(?![^\n]*>)"):
        assert not re.search(bad, text), f"nightly-gpu.yml matches {bad!r}"
    # And the file goes away whatever happened.
    cleanup = [s for s in steps(doc) if condition(s) == "always()" and "rm " in str(s.get("run", ""))]
    assert cleanup and "steps.kubeconfig.outputs.path" in str(cleanup[0].get("env", {})), \
        "an `if: always()` step must remove the kubeconfig file"
