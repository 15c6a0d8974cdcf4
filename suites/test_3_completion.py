"""Phase 3 completion: the end-to-end path and what makes a sign-off reproducible."""

from urllib.parse import urlsplit

import numpy as np
import pytest

from fixtures.config import SECRET_KEYS, SPEC_DEFAULT_SECRETS

criterion = pytest.mark.criterion


@criterion("3-integration")
def test_the_served_model_is_the_registered_version_and_predicts_like_the_local_model(stack, values, mlflow_database,
                                                                                  evidence):
    model = stack.served_model
    if model is None:
        pytest.skip("the suite did not train the served model on this target, so it has no local model to compare")
    name = values.inference_service_name
    registered = stack.mlflow.registered_model(name)
    assert registered is not None, f"the served model is not registered: no registered model named {name!r}"
    versions = {v["version"]: v for v in stack.mlflow.model_versions(name)}
    evidence(f"registered model {name}: versions {sorted(versions)}; served from {model.model_uri}")
    assert model.model_uri.startswith(f"models:/{name}/"), (
        f"the server loads {model.model_uri}, not a registered version of {name}")
    served_version = model.model_uri.rsplit("/", 1)[-1]
    assert served_version in versions, f"served version {served_version} is not in the registry"
    source = versions[served_version]["source"]
    run = stack.mlflow.get("runs/get", run_id=versions[served_version]["run_id"])["run"]
    tables = stack.postgres.tables()
    evidence(f"version {served_version}: source {source}; run {run['info']['run_id']} in the tracking store; "
             f"backend tables in PostgreSQL: {'runs' in tables}")
    assert "runs" in tables and stack.postgres.query("SELECT 1 FROM runs WHERE run_uuid = %s", run["info"]["run_id"]), \
        "the model's run is not in PostgreSQL"
    artifact_root = run["info"]["artifact_uri"]
    assert artifact_root.startswith(values.mlflow_artifact_root.rstrip("/") + "/"), (
        f"the model's artifacts are at {artifact_root}, not in the object store under {values.mlflow_artifact_root}")
    served_by_kserve = kserve_storage_uri(stack)
    if served_by_kserve is not None:
        # Through KServe the predictor serves what its storage initializer downloaded: the storageUri.
        want = source if not source.startswith("runs:/") else artifact_root.rstrip("/") + "/" + source.split("/", 2)[2]
        evidence(f"InferenceService {values.inference_service_namespace}/{name}: storageUri {served_by_kserve}; "
                 f"registered version {served_version}'s artifacts {want}")
        assert served_by_kserve.rstrip("/") == want.rstrip("/"), (
            f"the InferenceService serves {served_by_kserve}, not version {served_version}'s artifacts {want}")
    response = stack.inference.infer(model.input)
    assert response.status_code == 200, f"infer -> HTTP {response.status_code}: {response.text[:300]}"
    served = response.json()["outputs"][0]["data"]
    evidence(f"served prediction {served}; local model {model.expected}")
    assert np.array_equal(np.array(served), np.array(model.expected))


def kserve_storage_uri(stack) -> str | None:
    """The storageUri of the InferenceService a real KServe controller serves (None: no KServe serves here)."""
    k8s = stack.k8s
    if k8s is None or k8s.simulated or "kserve-controller" in k8s.limitations:
        return None
    v = stack.values
    isvc = k8s.custom("serving.kserve.io/v1beta1", "InferenceService", v.inference_service_name,
                      v.inference_service_namespace)
    return isvc.get("spec.predictor.model.storageUri") if isvc.exists else None


@criterion("3-docs")
def test_the_report_records_versions_values_and_target(stack, values, evidence):
    """What makes a sign-off reproducible is recorded; whether the versions are the configured ones is
    3.2-version's and 3.3-health's to judge, not this row's."""
    versions = stack.versions()
    evidence("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    unreadable = [k for k, v in versions.items() if v.startswith("unreadable")]
    assert not unreadable, f"versions not readable from the live components: {', '.join(unreadable)}"
    recorded = values.redacted()
    # Redaction by key, not by comparing values: an access key may equal a bucket name.
    unredacted = [k for k in SPEC_DEFAULT_SECRETS if recorded.get(k) != "***"]
    if urlsplit(recorded["mlflow_backend_store_uri"]).password not in (None, "***"):
        unredacted.append("mlflow_backend_store_uri")
    assert not unredacted, f"values recorded with a secret not redacted: {', '.join(sorted(unredacted))}"
    evidence(f"target {stack.target}; {len(recorded)} values recorded, secrets ({', '.join(sorted(SECRET_KEYS))}) "
             f"redacted; notes: {'; '.join(stack.notes)}")
    assert stack.target
