"""Durability (`--disruptive`): what was written before a component's restart is there after it.

Each check writes, restarts the component through the target (stack.restarts: the process on
local and kwok, the pod on Kubernetes: fixtures/restarts.py), then reads back, and records both.
The order is deliberate: the model server first (its restart reloads the model through the registry and
the object store), then the object store, then PostgreSQL, so one component's lost data does not
fail another's row.
"""

import hashlib
import os
import time
import uuid

import pytest
from urllib3.exceptions import HTTPError  # the S3 SDK's connection failures while the store restarts

from mlops_acceptance.fixtures.capabilities.mlflow import MlflowApiError
from mlops_acceptance.fixtures.capabilities.s3 import S3Failure
from mlops_acceptance.fixtures.restarts import RestartFailed
from mlops_acceptance.suites.served_model import same_prediction

criterion = pytest.mark.criterion


@pytest.fixture
def restarts(stack):
    if stack.restarts is None:
        pytest.skip(f"the {stack.target} target offers no component restart yet: durability not checked")
    return stack.restarts


def restart(restarts, component: str, evidence) -> None:
    try:
        evidence("restart: " + restarts.restart(component))
    except RestartFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def eventually(read, timeout: float = 60):
    """A client's pooled connections die with the server: the first request after a restart may fail."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            return read()
        except (MlflowApiError, *S3Failure, HTTPError, OSError, KeyError, ValueError) as exc:
            last = exc
            time.sleep(1)
    raise AssertionError(f"still failing {timeout:.0f} s after the restart: {last}")


@criterion("3.4-durability")
def test_the_replacement_serves_the_same_model_and_prediction(stack, known_input, restarts, evidence):
    inf, ref = stack.inference, known_input
    if ref.payload is None:
        pytest.skip(ref.reason)
    path = f"/v2/models/{inf.model_name}/infer"
    before = inf.post(path, json=ref.payload).json()["outputs"][0]["data"]
    evidence(f"before: {inf.model_name} predicts {before} for {ref.rows} row(s)")
    restart(restarts, "inference", evidence)
    after = eventually(lambda: inf.post(path, json=ref.payload).json()["outputs"][0]["data"])
    evidence(f"after: {after}" + (f"; the registered version {ref.model_uri} predicts {ref.expected}"
                                  if ref.expected is not None else ""))
    assert same_prediction(after, before), f"after the restart the model predicts {after}, before {before}"
    if ref.expected is not None:
        assert same_prediction(after, ref.expected), "the replacement serves another model than the registered one"


@criterion("3.1-durability")
def test_objects_survive_a_restart_of_the_object_store(stack, values, restarts, evidence):
    bucket, prefix = values.artifact_bucket, f"acceptance-durability/{uuid.uuid4().hex[:10]}/"
    s3 = stack.s3.client
    written = {f"{prefix}object-{i}.bin": os.urandom(256 * 1024 + i) for i in range(3)}
    digests = {k: hashlib.sha256(v).hexdigest() for k, v in written.items()}
    for key, body in written.items():
        stack.s3.put(bucket, key, body)
    evidence(f"before: wrote {len(written)} objects to s3://{bucket}/{prefix}: "
             + ", ".join(f"{k.rsplit('/', 1)[-1]} sha256 {d[:12]}" for k, d in digests.items()))
    try:
        restart(restarts, "s3", evidence)
        listed = eventually(lambda: set(stack.s3.bucket(bucket).keys(prefix)))
        back = {k: eventually(lambda k=k: hashlib.sha256(stack.s3.read(bucket, k)).hexdigest())
                for k in written if k in listed}
        evidence(f"after: listed {len(listed)} of {len(written)}; read back byte-identical: "
                 f"{sum(back.get(k) == d for k, d in digests.items())}")
        assert listed == set(written), f"after the restart, s3://{bucket}/{prefix} lists {sorted(listed)}"
        assert back == digests, "objects read back after the restart differ from what was written"
    finally:
        for key in written:
            try:
                s3.remove_object(bucket, key)
            except Exception:  # noqa: BLE001 - best effort: the store may be the broken part
                pass


def mlflow_pods(stack) -> dict[str, tuple[str, int]] | None:
    """MLflow's pods on a real cluster: name -> (uid, container restarts); None where MLflow is a
    process (local, kwok: its process is never restarted by the checks)."""
    if stack.k8s is None or stack.k8s.simulated:
        return None
    return {p.name: (p.get("metadata.uid"), p.restarts)
            for p in stack.k8s.pods(stack.values.mlflow_namespace, "app=mlflow")}


@criterion("3.2-durability")
def test_mlflow_metadata_survives_a_restart_of_postgresql(stack, restarts, evidence):
    mlflow, tag = stack.mlflow, uuid.uuid4().hex[:10]
    experiment_id = mlflow.post("experiments/create", {"name": f"acceptance-durability-{tag}"})["experiment_id"]
    run_id = mlflow.post("runs/create", {"experiment_id": experiment_id})["run"]["info"]["run_id"]
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "durability", "value": tag})
    name = f"acceptance-durability-{tag}"
    mlflow.post("registered-models/create", {"name": name})
    version = mlflow.post("model-versions/create", {"name": name, "source": f"runs:/{run_id}/model",
                                                    "run_id": run_id})["model_version"]["version"]
    evidence(f"before: experiment {experiment_id}, run {run_id} (param durability={tag}), model {name} v{version}")
    mlflow_before = mlflow_pods(stack)
    restart(restarts, "postgresql", evidence)
    # Through MLflow, which is not restarted: it must reconnect on its own.
    experiment = eventually(lambda: mlflow.get("experiments/get", experiment_id=experiment_id))["experiment"]
    run = eventually(lambda: mlflow.get("runs/get", run_id=run_id))["run"]
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    got = eventually(lambda: mlflow.get("model-versions/get", name=name, version=version))["model_version"]
    evidence(f"after, through the same MLflow server: experiment {experiment['name']}, run params {params}, "
             f"model {got['name']} v{got['version']}")
    assert params.get("durability") == tag and got["version"] == version
    if mlflow_before is not None:
        mlflow_after = mlflow_pods(stack)
        evidence(f"MLflow's pods (uid, container restarts) before {mlflow_before}, after {mlflow_after}")
        assert mlflow_after == mlflow_before, "MLflow's pods were replaced or restarted: it did not serve the " \
            "metadata without its own restart"
