"""CLOUD-3.3 MLflow tracking server: the service criteria, over REST and with a client of its version."""

import json
import time
import uuid

import pytest

from mlops_acceptance.fixtures.capabilities.mlflow import MlflowApiError
from mlops_acceptance.suites.artifacts import describe, object_location

criterion = pytest.mark.criterion

# The spec's own validation, run with the MLflow client of the server's version, plus one
# artifact and one registered model whose places the checks below verify.
_CLIENT_WORKFLOW = r"""
import json, sys, mlflow
from sklearn.dummy import DummyClassifier
tag = sys.argv[1]
mlflow.set_experiment("acceptance-client-" + tag)
with mlflow.start_run() as run:
    mlflow.log_param("test", "value")
    mlflow.log_text("acceptance " + tag, "acceptance/artifact.txt")
    info = mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), "model",
                                    pip_requirements=["scikit-learn"])
version = mlflow.register_model(info.model_uri, "acceptance-registry-" + tag)
print(json.dumps({"run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri,
                  "model_name": version.name, "model_version": str(version.version)}))
"""


_LOG_A_PARAM = r"""
import sys, mlflow
mlflow.set_experiment("acceptance-client-param-" + sys.argv[1])
with mlflow.start_run() as run:
    mlflow.log_param("test", "value")
print(run.info.run_id)
"""


@pytest.fixture(scope="module")
def client_workflow(stack):
    tag = uuid.uuid4().hex[:10]
    done = stack.mlflow.run_client(_CLIENT_WORKFLOW, tag)
    if done.returncode:
        pytest.fail(f"the MLflow {stack.mlflow.version} client failed against {stack.mlflow.uri}:\n"
                    f"{done.stderr.strip()[-1500:]}", pytrace=False)
    return {"tag": tag, **json.loads(done.stdout.strip().splitlines()[-1])}


@criterion("3.3-health")
def test_health_ok_and_version_as_configured(stack, values, evidence):
    evidence(f"GET /health -> {stack.mlflow.health!r}; GET /version -> {stack.mlflow.version}")
    assert stack.mlflow.health == "OK"
    assert stack.mlflow.version == values.mlflow_version, (
        f"server runs MLflow {stack.mlflow.version}, configured mlflow_version is {values.mlflow_version}")


@criterion("3.3-rest")
def test_rest_api_experiments_and_runs(stack, evidence):
    mlflow = stack.mlflow
    legacy = mlflow.request("GET", "/api/2.0/mlflow/experiments/list")
    evidence(f"the spec's GET experiments/list -> HTTP {legacy.status_code} (removed in MLflow 2.0; "
             "experiments/search is checked instead)")
    name = f"acceptance-rest-{uuid.uuid4().hex[:10]}"
    experiment_id = mlflow.post("experiments/create", {"name": name})["experiment_id"]
    found = mlflow.post("experiments/search", {"filter": f"name = '{name}'", "max_results": 10})
    assert [e["experiment_id"] for e in found.get("experiments", [])] == [experiment_id], f"search found {found}"
    assert mlflow.get("experiments/get", experiment_id=experiment_id)["experiment"]["name"] == name
    run = mlflow.post("runs/create", {"experiment_id": experiment_id, "start_time": int(time.time() * 1000)})["run"]
    run_id = run["info"]["run_id"]
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "alpha", "value": "0.5"})
    mlflow.post("runs/log-metric", {"run_id": run_id, "key": "rmse", "value": 0.25,
                                    "timestamp": int(time.time() * 1000), "step": 1})
    mlflow.post("runs/update", {"run_id": run_id, "status": "FINISHED"})
    data = mlflow.get("runs/get", run_id=run_id)["run"]["data"]
    params = {p["key"]: p["value"] for p in data.get("params", [])}
    metrics = {m["key"]: m["value"] for m in data.get("metrics", [])}
    evidence(f"experiments create/search/get and runs create/log/get on {name}: params {params}, metrics {metrics}")
    assert params == {"alpha": "0.5"} and metrics == {"rmse": 0.25}


@criterion("3.3-backend")
def test_runs_are_stored_in_postgresql(stack, mlflow_database, evidence):
    mlflow = stack.mlflow
    experiment_id = mlflow.post("experiments/create", {"name": f"acceptance-backend-{uuid.uuid4().hex[:10]}"})[
        "experiment_id"]
    run_id = mlflow.post("runs/create", {"experiment_id": experiment_id})["run"]["info"]["run_id"]
    marker = uuid.uuid4().hex
    mlflow.post("runs/log-parameter", {"run_id": run_id, "key": "backend-marker", "value": marker})
    tables = stack.postgres.tables()
    assert "runs" in tables and "params" in tables, (
        f"PostgreSQL database {stack.postgres.database} has no MLflow tables ({len(tables)} tables): "
        "the server does not use it as its backend store")
    rows = stack.postgres.query(
        "SELECT r.run_uuid, p.value FROM runs r JOIN params p ON p.run_uuid = r.run_uuid "
        "WHERE r.run_uuid = %s AND p.key = 'backend-marker'", run_id)
    evidence(f"run {run_id} logged through the API; rows in PostgreSQL runs/params: {len(rows)}")
    assert rows == [(run_id, marker)], f"run {run_id} is not in PostgreSQL (found {rows})"


@criterion("3.3-artifacts")
def test_artifacts_land_in_the_configured_bucket(stack, values, client_workflow, evidence):
    artifact_uri = client_workflow["artifact_uri"]
    evidence(f"run {client_workflow['run_id']} artifact root: {describe(values.mlflow_artifact_root, artifact_uri)}")
    found = object_location(values.mlflow_artifact_root, artifact_uri)
    assert found is not None and found[0] == values.artifact_bucket, (
        f"artifacts go to {artifact_uri}, not to the configured bucket {values.artifact_bucket}")
    key = found[1].rstrip("/") + "/acceptance/artifact.txt"
    body = stack.s3.read(found[0], key).decode()
    evidence(f"s3://{found[0]}/{key} holds {body!r}")
    assert body == f"acceptance {client_workflow['tag']}"


@criterion("3.3-registry")
def test_registry_versions_alias_and_download_uri(stack, values, client_workflow, evidence):
    mlflow, name, version = stack.mlflow, client_workflow["model_name"], client_workflow["model_version"]
    versions = [v["version"] for v in mlflow.model_versions(name)]
    assert version in versions, f"registered model {name} has versions {versions}, not {version}"
    mlflow.post("registered-models/alias", {"name": name, "alias": "champion", "version": version})
    by_alias = mlflow.get("registered-models/alias", name=name, alias="champion")["model_version"]["version"]
    assert by_alias == version, f"alias champion resolves to {by_alias}, not {version}"
    try:
        mlflow.post("model-versions/transition-stage",
                    {"name": name, "version": version, "stage": "Staging", "archive_existing_versions": False})
        stage = mlflow.get("model-versions/get", name=name, version=version)["model_version"]["current_stage"]
    except MlflowApiError as exc:  # stages are deprecated; an alias is enough
        stage = f"not supported ({exc.status})"
    download = mlflow.get("model-versions/get-download-uri", name=name, version=version)["artifact_uri"]
    evidence(f"{name} v{version}: alias champion -> v{by_alias}, stage {stage}, download URI "
             f"{describe(values.mlflow_artifact_root, download)}")
    found = object_location(values.mlflow_artifact_root, download)
    assert found is not None and found[0] == values.artifact_bucket, (
        f"the model's files are at {download}, not in the object store bucket {values.artifact_bucket}")
    keys = [k.rsplit("/", 1)[-1] for k in stack.s3.bucket(found[0]).keys(found[1].rstrip("/") + "/")]
    evidence(f"object store holds under the download URI: {', '.join(sorted(keys))}")
    # The serialized model: model.pkl (MLflow 2.x) or model.skops (3.x).
    assert "MLmodel" in keys and any(k.startswith("model.") for k in keys), (
        f"model files missing in the object store: {keys}")


@criterion("3.3-client")
def test_python_client_logs_a_param(stack, evidence):
    """The spec's own check, alone: the `mlflow` client of the server's version logs a param."""
    done = stack.mlflow.run_client(_LOG_A_PARAM, uuid.uuid4().hex[:10])
    assert done.returncode == 0, (f"the MLflow {stack.mlflow.version} client failed to log a param against "
                                  f"{stack.mlflow.uri}:\n{done.stderr.strip()[-1500:]}")
    run_id = done.stdout.strip().splitlines()[-1]
    run = stack.mlflow.get("runs/get", run_id=run_id)["run"]
    params = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    evidence(f"mlflow {stack.mlflow.version} client: start_run + log_param('test', 'value') -> run {run_id} "
             f"params {params}")
    assert params.get("test") == "value"
