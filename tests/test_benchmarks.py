"""Smoke tests of benchmarks/: each script runs, as a user starts it, on the smallest real input that
reaches its figure lines, and prints them. No figure is judged (speed is the benchmarks' business,
never a test's): only that the script still works and says what it measured.

What each covers:
- time_to_verdict.py, soak.py, kserve_serving.py: a whole run each (subprocess, arguments, the
  pytest run, parsing its durations and signoff.json, the figure lines), one run, on the external
  target pointed at a closed port, with one check selected: every phase is there in seconds, not
  minutes. The figures of a provisioned stack or a real node are not exercised.
- load_vs_reference.py: the real thing, smallest: the embedded stack, one round of 1 s at 2 users
  per client, the asyncio reference (no apt-get from a test).
- kwok_gpu_scheduling.py: the real thing, smallest: a kwok cluster, 2 then 3 GPU nodes (the fill
  and oversize probes), the suite's GPU checks passing. Needs the kwok binaries.
- node.py: needs root and a real node (minutes): only its arguments, its memory sampling (real, on
  this machine's /proc) and its bare-node figure line from `fixtures.node up` output.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import kwok_unbuildable

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
# An external stack that is not there: every check fails at once (connection refused).
NOWHERE = ["--target", "external", "--s3-endpoint", "http://127.0.0.1:9", "--postgres-dsn",
           "postgresql://acceptance:wrong@127.0.0.1:9/mlflow", "--mlflow-uri", "http://127.0.0.1:9",
           "--inference-url", "http://127.0.0.1:9"]
ONE_CHECK = ["-k", "test_health_ok_and_version_as_configured"]
SECONDS = r"[\d.]+ s"


def bench(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def lines(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


def test_every_benchmark_has_a_smoke_test():
    covered = set(re.findall(r"^- ([\w_, .]+?):", __doc__, re.M))
    named = {name.strip() for entry in covered for name in entry.split(",")}
    assert {p.name for p in BENCHMARKS.glob("*.py")} <= named, "a benchmark without a smoke test: add it here"


def test_time_to_verdict_prints_its_phases(run_tmpdir):
    done = bench("time_to_verdict.py", "--runs", "1", *NOWHERE, *ONE_CHECK)
    assert done.returncode == 0, lines(done)
    assert re.search(rf"^run 1: verdict {SECONDS} = provisioning {SECONDS} \+ checks {SECONDS} .*\+ teardown "
                     rf"{SECONDS}; peak RSS \d+ MB; exit 1; .*1 failed", done.stdout, re.M), lines(done)
    assert re.search(rf"^median of 1: verdict {SECONDS}, provisioning {SECONDS}, checks {SECONDS}, teardown "
                     rf"{SECONDS}, peak RSS \d+ MB$", done.stdout, re.M), lines(done)


def test_soak_prints_each_run_and_the_condition():
    done = bench("soak.py", "--runs", "1", "--no-hog", "--timeout", "240", *NOWHERE, *ONE_CHECK)
    assert done.returncode == 1, lines(done)  # a red run: the stack is not there
    assert re.search(rf"^quiet run 1/1: RED in {SECONDS}; exit 1; not passed: .*3\.3-", done.stdout, re.M), lines(done)
    assert re.search(rf"^quiet: 0/1 green; time to verdict median {SECONDS}, max {SECONDS}$", done.stdout,
                     re.M), lines(done)


def test_kserve_serving_prints_its_figures_when_there_is_no_kserve():
    done = bench("kserve_serving.py", "--runs", "1", *NOWHERE)
    assert done.returncode == 0, lines(done)
    assert re.search(r"^run 1 \(warm: cached binaries and images\): InferenceService create -> Ready n/a "
                     r"\(3\.4-isvc-ready skipped\); 3\.4-autoscaling-load check n/a \(skipped\); .*whole run "
                     r"\d+ s, exit \d", done.stdout, re.M), lines(done)


def test_load_vs_reference_compares_the_harness_with_the_reference(run_tmpdir):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "load_vs_reference.py"), "--users", "2", "--duration",
                           "1", "--rounds", "1", "--reference", "asyncio"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "TMPDIR": str(run_tmpdir)})
    assert done.returncode in (0, 1), lines(done)  # 1: the ratio missed its target on this machine
    assert re.search(r"^stack up in \d+ s; endpoint http://127\.0\.0\.1:\d+/v2/models/\S+/infer; .*reference: "
                     r"asyncio", done.stdout, re.M), lines(done)
    for client in ("locust x1", "asyncio"):
        assert re.search(rf"^  {client} +[\d.]+ req/s.* p50 +[\d.]+ ms +p95 +[\d.]+ ms +p99 +[\d.]+ ms +\d+ requests, "
                         r"\d+ failed; client CPU \d+ us/request; load average [\d.]+$", done.stdout, re.M), lines(done)
    assert re.search(r"^harness [\d.]+ req/s, asyncio [\d.]+ req/s \(medians\); ratio harness/reference per round "
                     r"[\d.]+: median [\d.]+ \(target >= 0\.85\)$", done.stdout, re.M), lines(done)


@pytest.mark.timeout(2400)  # may wait for the kube binaries another worker is building
@pytest.mark.skipif(bool(kwok_unbuildable()), reason=kwok_unbuildable() or "")
def test_kwok_gpu_scheduling_runs_the_suite_checks_at_two_sizes():
    done = bench("kwok_gpu_scheduling.py", "--sizes", "2", "3", timeout=2400)
    assert done.returncode == 0, lines(done)
    assert re.search(rf"^control plane: kwokctl create {SECONDS}, ready .* {SECONDS}, KwokCluster.create {SECONDS}; "
                     r"load average", done.stdout, re.M), lines(done)
    for size in (2, 3):
        assert re.search(rf"^ +{size} +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+  passed \(fill \+ oversize\); "
                         r"load average", done.stdout, re.M), lines(done)


def _node_benchmark():
    spec = importlib.util.spec_from_file_location("node_benchmark", BENCHMARKS / "node.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_node_benchmark_arguments_memory_sampling_and_figure_line():
    done = bench("node.py", "--help", timeout=60)
    assert done.returncode == 0 and "--cold-images" in done.stdout and "--no-suite" in done.stdout, lines(done)
    done = bench("node.py", "--colder", timeout=60)
    assert done.returncode == 2 and "--colder" in done.stderr, lines(done)

    node = _node_benchmark()
    assert node.node_memory() >= 0  # no node here: its state file is absent or names no live process
    with node.PeakMemory() as mem:
        __import__("time").sleep(0.6)
    assert mem.peak_mib >= 0
    # The line `python -m mlops_acceptance.fixtures.node up` prints when its node is Ready (fixtures/node/__main__.py).
    up = 'progress\nready /run/x/kubeconfig {"node_ready_s": 12.5, "up_s": 18.0}\n'
    assert node.bare_node_line(up, "", 0, 25.04, 1024) == (
        "node: Ready 12.5 s after its images were imported; up in all 18.0 s; up + teardown 25.0 s; node peak "
        "memory 1024 MiB (components + containers)")
    assert node.bare_node_line("no ready line", "boom", 3, 1.0, 0).startswith("node: failed (3): no ready lineboom")
