"""The node target's KServe decisions that need no cluster: the values it refuses, the deviations it
reports, where the served model's artifacts are, and the HPA feasibility finding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.errors import UsageError
from mlops_acceptance.fixtures.kserve import node, serving
from mlops_acceptance.fixtures.kserve.python_images import runtime_requirements

NODE_VALUES = "manifests/values/node.yaml"


def test_node_values_name_every_deviation_from_the_spec_with_its_reason():
    lines = node.deviations(load_values([NODE_VALUES]))
    joined = "\n".join(lines)
    assert "cert_manager_version=1.11.5 (spec: 1.13.0): the spec's version cannot be built" in joined
    assert "mlserver_version=1.6.1 (spec: 1.7.1)" in joined
    assert "inference_cpu_request=100m (spec: 2)" in joined
    assert node.deviations(load_values()) == [], "the spec's own values deviate from nothing"


def test_node_refuses_what_it_cannot_run_in_one_line():
    with pytest.raises(UsageError, match=r"cert_manager_version='1\.13\.0' cannot be built here"):
        node.check(load_values())
    with pytest.raises(UsageError, match="kserve_enable_raw_deployment=false needs Knative Serving"):
        node.check(load_values([NODE_VALUES], sets=["kserve_enable_raw_deployment=false"]))
    node.check(load_values([NODE_VALUES]))


def test_runtime_runs_the_trackers_mlflow_where_mlserver_accepts_it():
    assert "mlflow==2.9.2" in runtime_requirements("1.6.1", "2.9.2")
    assert "sqlalchemy<2.1" in runtime_requirements("1.6.1", "2.9.2")
    assert not any(r.startswith("mlflow==") for r in runtime_requirements("1.7.1", "2.9.2"))
    assert "uvloop==0.21.0" in runtime_requirements("1.6.1", "2.9.2")


class FakeMlflow:
    def __init__(self, source):
        self.source = source

    def get(self, path, **params):
        assert path == "model-versions/get" and params == {"name": "m", "version": "3"}
        return {"model_version": {"source": self.source}}


@pytest.mark.parametrize("source, want", [
    ("s3://mlflow-artifacts/1/abc/artifacts/model", "s3://mlflow-artifacts/1/abc/artifacts/model"),
    ("runs:/abc/model", "s3://mlflow-artifacts/1/abc/artifacts/model"),
])
def test_the_registered_versions_artifacts_as_an_s3_uri(source, want):
    assert serving.version_source(FakeMlflow(source), "m", "3", "s3://mlflow-artifacts/1/abc/artifacts") == want


def test_served_values_point_the_inference_service_at_the_artifacts():
    v = serving.served_values(load_values([NODE_VALUES]), "s3://mlflow-artifacts/1/abc/artifacts/model/")
    assert v.inference_storage_uri == "s3://mlflow-artifacts/1/abc/artifacts/model/"


def _hpa_stack(cpu_request: str, target: int, workers: str | None = None):
    from mlops_acceptance.suites import autoscaling_helpers as kserve_checks

    env = [{"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": "mlserver_mlflow.MLflowRuntime"}]
    if workers:
        env.append({"name": "MLSERVER_PARALLEL_WORKERS", "value": workers})
    runtime = SimpleNamespace(get=lambda path, default=None: [{"image": "x/mlserver:1", "env": env}])
    values = load_values(sets=[f"inference_cpu_request={cpu_request}", f"inference_scale_target={target}"])
    isvc = SimpleNamespace(raw={"spec": {"predictor": {"model": {"resources": {"requests": {"cpu": cpu_request}}}}}})
    return kserve_checks, SimpleNamespace(values=values), isvc, runtime


@pytest.mark.parametrize("cpu, target, workers, reachable", [
    ("2", 80, None, False),      # the spec: 1.6 cores needed, one worker uses at most one
    ("250m", 80, None, True),    # the node values
    ("2", 80, "2", True),        # parallel workers make it reachable
    ("1", 100, None, False),     # exactly one core: never above the target
])
def test_hpa_feasibility_finding(monkeypatch, cpu, target, workers, reachable):
    checks, stack, isvc, runtime = _hpa_stack(cpu, target, workers)
    monkeypatch.setattr(checks, "runtime_for", lambda s: (runtime, "test"))
    finding = checks.cpu_target_unreachable(stack, isvc)
    assert (finding is None) == reachable, finding
    if finding:
        assert f"inference_cpu_request={cpu}" in finding and "can never scale" in finding
