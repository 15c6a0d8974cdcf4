"""Phase 3 completion: the end-to-end path and what makes a sign-off reproducible."""

from urllib.parse import urlsplit

import pytest

from mlops_acceptance.fixtures.config import SECRET_KEYS, SPEC_DEFAULT_SECRETS
from mlops_acceptance.fixtures.reference import MIN_ROWS
from mlops_acceptance.suites.artifacts import object_location
from mlops_acceptance.suites.served_model import same_prediction, served_version

criterion = pytest.mark.criterion


@criterion("3-integration")
def test_the_served_model_is_the_registered_version_and_predicts_like_it(stack, values, known_input,
                                                                         mlflow_database, evidence):
    """Trained, logged to MLflow (PostgreSQL + object store), registered, served: the server serves the
    version it should (--model-version, the suite's, the storageUri's or the newest) and predicts like
    it for every row of the known input (at least two)."""
    ref, served = known_input, stack.served_model
    assert not ref.defect, ref.defect
    if served is not None:  # the suite deployed it: what the server loads must be a registered version
        evidence(f"the server loads {served.model_uri}")
        assert served.model_uri.startswith("models:/"), (
            f"the server loads {served.model_uri}, not a registered version of {values.inference_service_name}")
    if ref.model_uri is None or ref.payload is None:
        pytest.skip(f"no registered version to compare the served model with: {ref.reason}")
    name, version = ref.model_uri.removeprefix("models:/").rsplit("/", 1)
    info = next((v for v in stack.mlflow.model_versions(name) if v["version"] == version), None)
    assert info is not None, f"{ref.model_uri} is not in the registry"
    run = stack.mlflow.get("runs/get", run_id=info["run_id"])["run"]["info"]
    in_postgres = stack.postgres.query("SELECT 1 FROM runs WHERE run_uuid = %s", run["run_id"])
    evidence(f"{ref.model_uri}: source {info['source']}; run {run['run_id']} in PostgreSQL: {bool(in_postgres)}; "
             f"artifacts {run['artifact_uri']}")
    assert in_postgres, "the model's run is not in PostgreSQL"
    found = object_location(values.mlflow_artifact_root, run["artifact_uri"])
    assert found is not None and found[0] == values.artifact_bucket, (
        f"the model's artifacts are at {run['artifact_uri']}, not in the object store under "
        f"{values.mlflow_artifact_root}")
    served_by_kserve = kserve_storage_uri(stack)
    if served_by_kserve is not None:
        # Through KServe the predictor serves what its storage initializer downloaded: the storageUri.
        source, root = info["source"], run["artifact_uri"]
        want = source if not source.startswith("runs:/") else root.rstrip("/") + "/" + source.split("/", 2)[2]
        evidence(f"InferenceService {values.inference_service_namespace}/{values.inference_service_name}: "
                 f"storageUri {served_by_kserve}; registered version {version}'s artifacts {want}")
        assert served_by_kserve.rstrip("/") == want.rstrip("/"), (
            f"the InferenceService serves {served_by_kserve}, not version {version}'s artifacts {want}")
    response = stack.inference.post(f"/v2/models/{stack.inference.model_name}/infer", json=ref.payload)
    assert response.status_code == 200, f"infer -> HTTP {response.status_code}: {response.text[:300]}"
    answer = response.json()
    claimed, how = served_version(answer, _metadata(stack))
    if claimed is None and served is not None and served.registered_version:
        claimed, how = served.registered_version, f"the suite loaded {served.model_uri}"
    evidence(f"served version: {claimed or 'not named'} ({how}); to serve: version {version} ({ref.chosen_by})")
    assert claimed is None or claimed == version, (
        f"the endpoint serves version {claimed} of {name} ({how}), not version {version} ({ref.chosen_by})")
    got = answer["outputs"][0]["data"]
    evidence(f"served prediction for {ref.rows} row(s) {got}; {ref.model_uri} predicts {ref.expected} ({ref.source})")
    assert same_prediction(got, ref.expected), (
        f"the endpoint serves another model than {ref.model_uri}: {got} != {ref.expected}")
    if ref.rows < MIN_ROWS:
        pytest.skip(f"the served prediction equals {ref.model_uri}'s for {ref.rows} row only ({got}); "
                    f"{MIN_ROWS} rows are compared where the model predicts a widened input ({ref.source})")


def _metadata(stack) -> dict:
    """The served model's V2 metadata, or {} when it cannot be read (3.4-inference judges that)."""
    try:
        return stack.inference.metadata
    except Exception:  # noqa: BLE001 - the version is then taken from the infer answer alone
        return {}


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
    platform = {p.component for p in stack.platform_versions()}  # judged by the next check
    unreadable = [k for k, v in versions.items() if v.startswith("unreadable") and k not in platform]
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


@criterion("3-docs")
def test_the_report_records_the_k8s_platform_versions(stack, evidence):
    """Kubernetes, KServe, Knative Serving and cert-manager versions, where the target has Kubernetes: a
    component this target has but whose version cannot be read leaves the row partial, never passed."""
    if stack.k8s is None:
        evidence.out_of_scope(f"Kubernetes, KServe, Knative Serving and cert-manager versions: not applicable on the "
                              f"{stack.target} target (no Kubernetes API)")
    found = stack.platform_versions()
    # The API server and the components' Deployments are read as they are, on kwok too.
    evidence("platform: " + ", ".join(f"{p.component} {p.shown}" + (f" ({p.where})" if p.where else "")
                                      for p in found), proof="live")
    unreadable = [f"{p.component}: {p.error}" for p in found if p.error]
    if unreadable:
        pytest.skip("versions not readable from the cluster: " + "; ".join(unreadable))
