"""KServe on a real node: each check fails exactly when its criterion is violated.

One node bring-up for the whole module (the node target with manifests/values/node.yaml: the stack
as pods, cert-manager and KServe installed for real, the model trained, registered and served).
The unbroken stack passes the KServe checks; then each fault is an InferenceService of its own in a
scratch namespace (the same bucket, runtime and MLflow), broken one way, and the suite's own check
functions are called on it and must fail, naming what they saw:

- a runtime in another namespace than the InferenceService     -> 3.4-runtime (the controller says so)
- a storageUri to an object that does not exist                -> 3.4-storage-access, 3.4-isvc-ready
- no S3 credentials for the storage initializer                -> 3.4-storage-access
- a predictor that answers malformed input with 500            -> 3.4-inference
- an HPA whose maximum is 1                                    -> 3.4-autoscaling-load
- a served version other than the registered one               -> 3-integration
- a model whose files are gone when the predictor's pod is replaced -> 3.4-durability (its healthy
  counterpart, the same InferenceService with its files kept, passes)

Needs root, Linux, the node's Debian packages and Go (or the cached binaries and images): skipped with
the reason otherwise. About 6-8 minutes warm on 2 cores.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import time
from types import SimpleNamespace

import pytest

from mlops_acceptance.fixtures.config import load_values

pytestmark = pytest.mark.timeout(2400)

NODE_VALUES = "manifests/values/node.yaml"


def _why_not() -> str | None:
    from mlops_acceptance.fixtures.targets import PROVIDERS

    if os.environ.get("MLOPS_ACCEPTANCE_KSERVE_FAULTS") != "1":
        # Opt-in until it has run to completion on a real node: written against the node target the
        # day it landed, never run whole in that session (the one real node of the machine was busy).
        return "KServe fault tests on a real node are opt-in: MLOPS_ACCEPTANCE_KSERVE_FAULTS=1"

    if "node" not in PROVIDERS:
        return "no node target in this version of the suite"
    try:
        from mlops_acceptance.fixtures.node.cluster import missing_requirements
    except ImportError as exc:
        return f"the node target is not available: {exc}"
    if os.geteuid() != 0:
        return "the node target needs root"
    missing = missing_requirements()
    if missing:
        return "the node target needs " + "; ".join(missing)
    if not shutil.which("go"):
        return "no `go` to build the node's and KServe's binaries"
    return None


pytestmark = [pytestmark, pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]

import mlops_acceptance.suites.kserve_helpers as kserve_helpers  # noqa: E402
import mlops_acceptance.suites.test_3_completion as m3  # noqa: E402  (modules, not functions: pytest must not collect them here)
import mlops_acceptance.suites.test_k8s_34_autoscaling as m34a  # noqa: E402
import mlops_acceptance.suites.test_k8s_34_kserve as m34  # noqa: E402


class Evidence(list):
    def __call__(self, text: str, proof: str | None = None, note: str = "") -> None:
        self.append(str(text))
        if proof:
            self.proof(proof, note)

    def proof(self, kind: str, note: str = "") -> None:
        self.append(f"proof: {kind} {note}")


def fails(check, stack, *args) -> str:
    """Run a suite check; it must fail (AssertionError or pytest.fail). Returns its message and evidence."""
    evidence = Evidence()
    with pytest.raises((AssertionError, pytest.fail.Exception)) as info:
        check(stack, evidence, *args)
    return f"{info.value}\n" + "\n".join(evidence)


def passes(check, stack, *args) -> list[str]:
    evidence = Evidence()
    check(stack, evidence, *args)
    return evidence


@pytest.fixture(scope="module")
def node():
    from mlops_acceptance.fixtures.targets import provider_class

    values = load_values([NODE_VALUES])
    provider = provider_class("node")(values)
    try:
        stack = provider.up()
        yield SimpleNamespace(provider=provider, stack=stack)
    finally:
        provider.down()


# Namespaces `fault` made during the running test: deleted after it, so each fault starts on a node
# without the previous faults' predictors (a crash-looping one slowed the next one's readiness).
_FAULT_NAMESPACES: list[str] = []


@pytest.fixture(autouse=True)
def _delete_this_tests_faults(request):
    yield
    if "node" not in request.fixturenames or not _FAULT_NAMESPACES:
        return
    kube = request.getfixturevalue("node").provider.kube
    while _FAULT_NAMESPACES:
        ns = _FAULT_NAMESPACES.pop()
        kube.delete("v1", "Namespace", ns)
        kube.wait_gone("v1", "Namespace", ns, timeout=180)


def fault(node, name: str, *, mutate=None, sets: dict | None = None, wait_ready: bool = False,
          extra: list[dict] = ()) -> SimpleNamespace:
    """The example InferenceService (with its S3 Secret and ServiceAccount) in a fresh namespace, rendered
    with the served model's values + `sets`, broken by `mutate(objects)`, applied. Returns a stack-like
    object whose values name it (the checks read the InferenceService from the values)."""
    from mlops_acceptance.fixtures.kube.manifests import apply_order, render_manifests

    stack = node.stack
    ns = f"kf-{name}-{secrets.token_hex(2)}"
    values = stack.values.model_copy(update={"inference_service_namespace": ns, **(sets or {})})
    keep = {"Secret": "kserve-s3-credentials", "ServiceAccount": "kserve-s3", "InferenceService": None}
    objects = [copy.deepcopy(dict(o)) for o in apply_order(render_manifests(values))
               if o["kind"] in keep and o["metadata"].get("namespace") == ns]
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, *extra, *objects]
    if mutate:
        mutate(objects)
    _FAULT_NAMESPACES.append(ns)
    node.provider.deployer.apply(objects)
    if wait_ready:
        node.provider.kube.wait_for("serving.kserve.io/v1beta1", "InferenceService", values.inference_service_name,
                                    ns, m34_ready, timeout=values.timeouts.inference, what="fault isvc Ready")
    return SimpleNamespace(values=values, k8s=stack.k8s, served_model=stack.served_model, mlflow=stack.mlflow,
                           postgres=stack.postgres, inference=stack.inference, target=stack.target, namespace=ns)


def integration(stack, evidence):
    """3-integration's check (its arguments are stack, values, known_input, mlflow_database, evidence)."""
    from mlops_acceptance.fixtures.reference import build

    m3.test_the_served_model_is_the_registered_version_and_predicts_like_it(stack, stack.values, build(stack, None),
                                                                            stack.postgres, evidence)


def m34_ready(obj: dict) -> bool:
    from mlops_acceptance.fixtures.kserve.serving import isvc_ready

    return isvc_ready(obj)


def isvc_of(objects):
    return next(o for o in objects if o["kind"] == "InferenceService")


def inference_for(node, broken) -> object:
    """The broken predictor's own endpoint (its Service, as the stack reaches services)."""
    from mlops_acceptance.fixtures.capabilities.inference import Inference

    v = broken.values
    host, port = node.provider.service_address(v.inference_service_namespace, f"{v.inference_service_name}-predictor", 80)
    return Inference(f"http://{host}:{port}", v.inference_service_name)


def wait_initializer_failed(node, broken, timeout: float = 180) -> None:
    """Until the predictor pod's storage initializer has exited non-zero at least once."""
    v = broken.values
    deadline = time.monotonic() + timeout
    selector = f"serving.kserve.io/inferenceservice={v.inference_service_name}"
    while time.monotonic() < deadline:
        for pod in node.provider.kube.pods(v.inference_service_namespace, selector):
            for s in pod.get("status.initContainerStatuses", []) or []:
                for state in (s.get("state") or {}, s.get("lastState") or {}):
                    code = (state.get("terminated") or {}).get("exitCode")
                    if s.get("name") == "storage-initializer" and code not in (None, 0):
                        return
        time.sleep(2)
    pytest.fail(f"the storage initializer of {v.inference_service_namespace} never failed within {timeout:.0f} s")


# --- the unbroken stack -----------------------------------------------------------------------

def test_unbroken_stack_passes_the_kserve_checks(node):
    stack = node.stack
    for check in (m34.test_cert_manager_installed_and_ready, m34.test_kserve_controller_ready_at_the_configured_version,
                  m34.test_kserve_crds_established, m34.test_mlflow_runtime_visible_from_the_isvc_namespace,
                  m34.test_inference_service_ready_with_url, m34.test_storage_credentials_wired_to_the_predictor,
                  m34.test_predictor_storage_initializer_downloaded_the_model,
                  m34a.test_autoscaling_objects_match_the_configuration):
        passes(check, stack)
    passes(integration, stack)
    # The autoscaler's own state was observed (the HPA controller acts on KServe's HPA): live, not declared.
    evidence = passes(m34a.test_autoscaling_objects_match_the_configuration, stack)
    assert any("ScalingActive True" in e for e in evidence) and not any("proof: declared" in e for e in evidence), \
        evidence


def test_real_mlserver_answers_a_shape_mismatch_with_500_and_keeps_running(node):
    """A finding, not a fault: MLServer 1.6.1 answers a V2 request whose data does not fill its shape with
    HTTP 500 (`ValueError: cannot reshape array`), measured here; every other malformed request gets 422.
    3.4-inference on KServe targets takes a 5xx as a failure, so the row fails with exactly that evidence
    while the predictor keeps running (restartCount unchanged)."""
    try:
        evidence = passes(m34.test_malformed_requests_get_4xx_and_the_predictor_never_restarts, node.stack)
    except AssertionError as exc:
        text = str(exc)
        assert "shape/data mismatch" in text and "500" in text, text
        for other in ("not JSON", "no inputs", "unknown datatype"):
            assert f"'{other}'" not in text.split("server error:", 1)[1], text
    else:
        assert any("malformed requests" in line for line in evidence)


# --- faults -----------------------------------------------------------------------------------

def test_runtime_in_another_namespace_leaves_the_isvc_without_a_runtime(node):
    """The spec's defect: a namespaced ServingRuntime in kserve_namespace, invisible from the
    InferenceService's namespace. The real controller finds no runtime."""
    rt = node.stack.k8s.custom("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "mlflow-serving").raw
    elsewhere = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                 "metadata": {"name": "mlflow-serving-elsewhere", "namespace": "kserve"},
                 "spec": copy.deepcopy(rt["spec"])}

    def use_it(objects):
        isvc_of(objects)["spec"]["predictor"]["model"]["runtime"] = "mlflow-serving-elsewhere"

    broken = fault(node, "runtime", mutate=use_it, extra=[elsewhere])
    text = fails(m34.test_mlflow_runtime_visible_from_the_isvc_namespace, broken)
    assert "exists neither in" in text, text
    text = fails(kserve_helpers.controller_resolved_runtime, broken)
    assert "RuntimeNotRecognized" in text, text


def test_storage_uri_to_a_missing_object_fails_storage_access_and_readiness(node):
    broken = fault(node, "missing", sets={"inference_storage_uri": "s3://mlflow-artifacts/acceptance-no-such-model/",
                                          "timeouts": node.stack.values.timeouts.model_copy(update={"inference": 30})})
    wait_initializer_failed(node, broken)
    text = fails(m34.test_predictor_storage_initializer_downloaded_the_model, broken)
    assert "did not finish cleanly" in text, text
    assert "not Ready" in fails(m34.test_inference_service_ready_with_url, broken)


def test_no_s3_credentials_for_the_storage_initializer(node):
    def anonymous(objects):
        isvc_of(objects)["spec"]["predictor"].pop("serviceAccountName")

    broken = fault(node, "nocreds", mutate=anonymous)
    text = fails(m34.test_storage_credentials_wired_to_the_predictor, broken)
    assert "names no ServiceAccount" in text, text
    wait_initializer_failed(node, broken)
    assert "did not finish cleanly" in fails(m34.test_predictor_storage_initializer_downloaded_the_model, broken)


FAILING_SERVER = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
NAME = sys.argv[1]
class H(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        if self.path.startswith("/v2/models/"):
            return self._send(200, {"name": NAME, "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]})
        return self._send(200, {"name": "failing", "version": "0"})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._send(500, {"error": "internal server error on malformed input"})
HTTPServer(("0.0.0.0", 8080), H).serve_forever()
'''


def test_predictor_answering_malformed_input_with_500_fails_inference(node):
    rt = node.stack.k8s.custom("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "mlflow-serving").raw
    container = copy.deepcopy(rt["spec"]["containers"][0])
    container.update(command=["python3", "-c", FAILING_SERVER, "{{.Name}}"], args=[])
    container.pop("readinessProbe", None)

    def own_runtime(objects):
        isvc = isvc_of(objects)
        ns = isvc["metadata"]["namespace"]
        objects.insert(1, {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                           "metadata": {"name": "failing-runtime", "namespace": ns},
                           "spec": {**copy.deepcopy(rt["spec"]), "containers": [container]}})
        isvc["spec"]["predictor"]["model"]["runtime"] = "failing-runtime"

    broken = fault(node, "500", mutate=own_runtime, wait_ready=True)
    broken.inference = inference_for(node, broken)
    text = fails(m34.test_malformed_requests_get_4xx_and_the_predictor_never_restarts, broken)
    assert "server error" in text and "500" in text, text


def test_hpa_whose_maximum_is_1_fails_autoscaling_load(node):
    broken = fault(node, "max1", sets={"inference_max_replicas": 1, "autoscaling_load_duration_s": 20,
                                       "autoscaling_scale_up_timeout_s": 20}, wait_ready=True)
    broken.inference = inference_for(node, broken)
    text = fails(m34a.test_replicas_follow_the_load, broken, None)
    assert "rise" in text or "scale" in text, text


def test_serving_another_version_than_the_registered_one_fails_integration(node, tmp_path):
    from mlops_acceptance.fixtures.kserve.serving import train_and_register

    v = node.stack.values
    mlflow_url = "http://%s:%d" % node.provider.service_address(v.mlflow_namespace, "mlflow", v.mlflow_port)
    s3_url = "http://%s:%d" % node.provider.service_address(v.minio_namespace, "minio", 9000)
    other = train_and_register(v.model_copy(update={"inference_service_name": "acceptance-unregistered"}),
                               mlflow_url, s3_url, tmp_path, tmp_path / "train.log")
    broken = fault(node, "version", sets={"inference_storage_uri": other.artifact_uri.rstrip("/") + "/model/"})
    text = fails(integration, broken)
    assert "not version" in text, text


# --- 3.4-durability: the predictor's pod deleted; the replacement must load the same model -----------

def served_from_a_copy(node, name: str):
    """An InferenceService of its own (`fault`) serving a copy of the served model's files, Ready,
    with the way to it and a restarter for its predictor's pods (what the node target's Stack hands the
    checks, pointed at this namespace). Returns (stack-like object, the copy's bucket, its keys)."""
    from mlops_acceptance.fixtures.reference import build
    from mlops_acceptance.fixtures.restarts import KubeRestarts

    v, s3 = node.stack.values, node.stack.s3
    bucket, path = v.inference_storage_uri[len("s3://"):].rstrip("/").split("/", 1)
    prefix = f"acceptance-durability-{secrets.token_hex(3)}/model/"
    copied = []
    for key in s3.bucket(bucket).keys(path + "/"):
        s3.put(bucket, prefix + key[len(path) + 1:], s3.read(bucket, key))
        copied.append(prefix + key[len(path) + 1:])
    broken = fault(node, name, sets={"inference_storage_uri": f"s3://{bucket}/{prefix}"}, wait_ready=True)
    broken.inference = inference_for(node, broken)
    broken.restarts = KubeRestarts(node.provider.kube, broken.values, timeout=90)
    broken.known_input = build(broken, None)
    return broken, bucket, copied


def test_a_replaced_predictor_serves_the_same_model_and_prediction(node):
    import mlops_acceptance.suites.test_durability as dur

    served, bucket, copied = served_from_a_copy(node, "durable")
    try:
        evidence = passes(lambda stack, ev: dur.test_the_replacement_serves_the_same_model_and_prediction(
            stack, stack.known_input, stack.restarts, ev), served)
        assert any("deleted; replacement" in e for e in evidence) and any(e.startswith("after:") for e in evidence)
    finally:
        for key in copied:
            node.stack.s3.client.remove_object(bucket, key)


def test_model_files_gone_when_the_predictor_is_replaced_fail_34_durability(node):
    import mlops_acceptance.suites.test_durability as dur

    broken, bucket, copied = served_from_a_copy(node, "lost")
    for key in copied:  # served, then lost: the running pod has it loaded, a replacement cannot load it
        node.stack.s3.client.remove_object(bucket, key)
    text = fails(lambda stack, ev: dur.test_the_replacement_serves_the_same_model_and_prediction(
        stack, stack.known_input, stack.restarts, ev), broken)
    assert "before:" in text and "no Ready replacement" in text, text
