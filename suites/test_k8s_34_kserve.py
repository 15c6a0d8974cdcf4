"""CLOUD-3.4 KServe: the Kubernetes criteria through the Kubernetes API.

kwok runs no controller and no container. There, the criteria that need the KServe
controller, Knative, cert-manager or a running predictor are skipped with that reason
(`stack.k8s.limitations`); the CRDs, the runtime, the InferenceService's wiring and
autoscaling fields, and GPU *scheduling* are checked against the real API server and
scheduler, on simulated GPU nodes. On a real cluster nothing is skipped here.
"""

from __future__ import annotations

import time

import pytest

from fixtures.kube.gpu import LIST_COMMAND, visible_gpus

from fixtures.kube.client import WaitTimeout, dig, quantity
from fixtures.kube.selectors import tolerates

criterion = pytest.mark.criterion

ISVC_API = "serving.kserve.io/v1beta1"
RUNTIME_API = "serving.kserve.io/v1alpha1"
CRDS = ("inferenceservices.serving.kserve.io", "servingruntimes.serving.kserve.io",
        "clusterservingruntimes.serving.kserve.io")
INGRESS_CLASSES = {"istio": "istio.ingress.networking.knative.dev",
                   "kourier": "kourier.ingress.networking.knative.dev",
                   "contour": "contour.ingress.networking.knative.dev"}
PROBE_LABEL = "mlops-acceptance/probe"
# The most probe pods the capacity check creates to fill every free GPU (kwok only).
MAX_FILL_PODS = 64


def needs(k8s, *capabilities: str) -> None:
    """Skip, with the target's reason, when the cluster lacks a capability (kwok: controllers, containers)."""
    for cap in capabilities:
        reason = k8s.limitations.get(cap)
        if reason:
            pytest.skip(reason)


def isvc_of(stack):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "kserve-crds")
    isvc = k8s.custom(ISVC_API, "InferenceService", v.inference_service_name, v.inference_service_namespace)
    return isvc


def image_tag(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    return tail.split("@")[0].split(":", 1)[1] if ":" in tail else ""


def ready_deployments(k8s, namespace: str, evidence) -> list:
    deps = [k8s.deployment(o["metadata"]["name"], namespace) for o in k8s.list("apps/v1", "Deployment", namespace)]
    evidence(f"Deployments in {namespace}: " + (", ".join(d.summary().split(": ", 1)[1] + f" {d.name}" for d in deps)
                                               or "none"))
    return deps


# --- controllers -------------------------------------------------------------------------

@criterion("3.4-certmanager", scope="k8s")
def test_cert_manager_installed_and_ready(stack, evidence):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "cert-manager")
    deps = ready_deployments(k8s, "cert-manager", evidence)
    names = {d.name for d in deps}
    assert {"cert-manager", "cert-manager-webhook", "cert-manager-cainjector"} <= names, f"found {sorted(names)}"
    assert all(d.ready_replicas == d.replicas for d in deps), "a cert-manager Deployment is not ready"
    tags = {image_tag(c.image) for d in deps for c in d.template.containers}
    evidence(f"cert-manager image tags {sorted(tags)}; configured v{v.cert_manager_version}")
    assert f"v{v.cert_manager_version}" in tags, f"cert-manager v{v.cert_manager_version} not deployed ({tags})"
    for crd in ("certificates.cert-manager.io", "issuers.cert-manager.io"):
        assert k8s.crd(crd).established, f"CRD {crd} not Established"
    if not k8s.simulated:
        issued_webhook_certificate(k8s, evidence)


def issued_webhook_certificate(k8s, evidence) -> None:
    """cert-manager did its job for KServe: the webhook Certificate is Ready, its Secret holds the key pair,
    and the cainjector put that certificate's CA into KServe's webhook configurations."""
    import base64

    ns, name = "kserve", "serving-cert"
    cert = k8s.custom("cert-manager.io/v1", "Certificate", name, ns)
    ready = cert.condition("Ready") or {}
    evidence(f"Certificate {ns}/{name}: Ready={ready.get('status')} ({ready.get('reason')}: {ready.get('message')}); "
             f"issuer {cert.get('spec.issuerRef')}; notAfter {cert.get('status.notAfter')}")
    assert cert.exists, f"no Certificate {ns}/{name} (KServe's webhook certificate)"
    assert ready.get("status") == "True", f"Certificate {ns}/{name} is not Ready: {ready}"
    secret_name = cert.get("spec.secretName")
    secret = k8s.read("v1", "Secret", secret_name, ns) or {}
    data = secret.get("data") or {}
    evidence(f"Secret {ns}/{secret_name}: keys {sorted(data)}; issued by cert-manager: "
             f"{(secret.get('metadata', {}).get('annotations') or {}).get('cert-manager.io/issuer-name')}")
    assert data.get("tls.crt") and data.get("tls.key"), f"Secret {ns}/{secret_name} holds no key pair"
    ca = data.get("ca.crt") or data.get("tls.crt")
    hooks = k8s.read("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
                     "inferenceservice.serving.kserve.io") or {}
    bundles = {dig(w, "clientConfig.caBundle") for w in hooks.get("webhooks") or []}
    evidence(f"MutatingWebhookConfiguration inferenceservice.serving.kserve.io: {len(bundles)} distinct caBundle(s), "
             f"equal to the issued CA: {bundles == {ca}} ({len(base64.b64decode(ca or ''))} bytes)")
    assert bundles == {ca}, "the webhook configuration's caBundle is not the CA cert-manager issued (cainjector)"


@criterion("3.4-knative", scope="k8s")
def test_knative_serving_installed_and_ready(stack, evidence):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "knative")
    ns = "knative-serving"
    deps = ready_deployments(k8s, ns, evidence)
    names = {d.name for d in deps}
    assert {"activator", "autoscaler", "controller", "webhook"} <= names, f"found {sorted(names)}"
    assert all(d.ready_replicas == d.replicas for d in deps), "a Knative Serving Deployment is not ready"
    versions = {d.labels.get("app.kubernetes.io/version") for d in deps} - {None}
    network = k8s.configmap("config-network", ns).data
    evidence(f"Knative versions {sorted(versions)}; config-network ingress-class {network.get('ingress-class')!r} "
             f"(ingress.class {network.get('ingress.class')!r})")
    assert v.knative_version in versions, f"Knative {v.knative_version} not deployed ({versions})"
    got = network.get("ingress-class") or network.get("ingress.class")
    assert got == INGRESS_CLASSES[v.knative_ingress_class], f"ingress class {got!r}, want {INGRESS_CLASSES[v.knative_ingress_class]}"


@criterion("3.4-controller", scope="k8s")
def test_kserve_controller_ready_at_the_configured_version(stack, evidence):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "kserve-controller")
    found = [(ns, k8s.deployment("kserve-controller-manager", ns)) for ns in dict.fromkeys((v.kserve_namespace, "kserve"))]
    found = [(ns, d) for ns, d in found if d.exists]
    evidence("kserve-controller-manager: " + (", ".join(f"{ns}: {d.summary()}" for ns, d in found) or "not found in "
                                              f"{v.kserve_namespace} or kserve"))
    assert found, f"no kserve-controller-manager in {v.kserve_namespace} (or kserve)"
    ns, dep = found[0]
    if ns != v.kserve_namespace:
        evidence(f"NOTE: installed in {ns}, not kserve_namespace={v.kserve_namespace} (KServe's release hard-codes {ns})")
    assert dep.ready_replicas >= 1 and dep.ready_replicas == dep.replicas, dep.summary()
    tags = {image_tag(c.image) for c in dep.template.containers if "kserve" in c.image}
    evidence(f"controller image tags {sorted(tags)}; configured v{v.kserve_version}")
    assert f"v{v.kserve_version}" in tags, f"KServe v{v.kserve_version} not deployed ({tags})"


@criterion("3.4-crds", scope="k8s")
def test_kserve_crds_established(stack, evidence):
    k8s = stack.k8s
    needs(k8s, "kserve-crds")
    crds = {name: k8s.crd(name) for name in CRDS}
    evidence(", ".join(f"{n}: exists={c.exists} Established={c.established} served={c.served_versions}"
                       for n, c in crds.items()))
    if k8s.simulated:
        evidence("kwok: the CRDs were applied by the provider from KServe's Go module at kserve_version "
                 "(no KServe release manifests offline); the real kube-apiserver established them")
    for name, crd in crds.items():
        assert crd.exists, f"CRD {name} is missing"
        assert crd.established, f"CRD {name} is not Established"
    assert "v1beta1" in crds[CRDS[0]].served_versions, "InferenceService v1beta1 is not served"


# --- runtime and InferenceService ----------------------------------------------------------

def runtime_for(stack):
    """(the runtime object the InferenceService resolves to, how it was found)."""
    v, k8s = stack.values, stack.k8s
    isvc = isvc_of(stack)
    name = isvc.get("spec.predictor.model.runtime")
    if name:
        for api_kind, ns in (("ServingRuntime", v.inference_service_namespace), ("ClusterServingRuntime", None)):
            rt = k8s.custom(RUNTIME_API, api_kind, name, ns)
            if rt.exists:
                return rt, f"{api_kind} {name} named by the InferenceService"
        return None, f"runtime {name!r} named by the InferenceService exists neither in {v.inference_service_namespace} nor cluster-wide"
    candidates = [(o, "ServingRuntime") for o in k8s.list(RUNTIME_API, "ServingRuntime", v.inference_service_namespace)]
    candidates += [(o, "ClusterServingRuntime") for o in k8s.list(RUNTIME_API, "ClusterServingRuntime")]
    for o, kind in candidates:
        if supports_mlflow(o):
            return k8s.custom(RUNTIME_API, kind, o["metadata"]["name"], o["metadata"].get("namespace")), f"auto-selected {kind}"
    return None, "no runtime visible from the InferenceService's namespace supports mlflow with autoSelect"


def supports_mlflow(obj: dict, version: str = "2") -> bool:
    return any(f.get("name") == "mlflow" and str(f.get("version", "")) .split(".")[0] == version and f.get("autoSelect")
               for f in dig(obj, "spec.supportedModelFormats", []) or [])


@criterion("3.4-runtime", scope="k8s")
def test_mlflow_runtime_visible_from_the_isvc_namespace(stack, evidence):
    v = stack.values
    isvc = isvc_of(stack)
    assert isvc.exists, f"InferenceService {v.inference_service_namespace}/{v.inference_service_name} is missing"
    rt, how = runtime_for(stack)
    evidence(f"runtime: {how}")
    assert rt is not None, how
    formats = rt.get("spec.supportedModelFormats", [])
    evidence(f"{rt.ref} supportedModelFormats {formats}, protocols {rt.get('spec.protocolVersions')}, "
             f"image {[c.get('image') for c in rt.get('spec.containers', [])]}")
    assert supports_mlflow(rt.raw), f"{rt.ref} does not support model format mlflow v2 with autoSelect"
    visible = rt.kind == "ClusterServingRuntime" or rt.namespace == v.inference_service_namespace
    assert visible, f"{rt.ref} is not visible from namespace {v.inference_service_namespace}"
    if "kserve-controller" not in stack.k8s.limitations:
        controller_resolved_runtime(stack, evidence)


RUNTIME_FAILURES = ("RuntimeNotRecognized", "NoSupportingRuntime", "RuntimeDisabled")


def controller_resolved_runtime(stack, evidence) -> None:
    """The KServe controller's own verdict: it found a runtime for the InferenceService (its modelStatus
    is not InvalidSpec with a runtime failure)."""
    v, k8s = stack.values, stack.k8s
    try:
        obj = k8s.wait_for(ISVC_API, "InferenceService", v.inference_service_name, v.inference_service_namespace,
                           lambda o: bool(dig(o, "status.modelStatus.transitionStatus")),
                           timeout=min(60, v.timeouts.inference), what="the controller's modelStatus")
    except WaitTimeout as exc:
        raise AssertionError(f"the KServe controller never reported on the InferenceService: {exc}") from None
    status = dig(obj, "status.modelStatus", {}) or {}
    failure = status.get("lastFailureInfo") or {}
    evidence(f"controller: modelStatus.transitionStatus {status.get('transitionStatus')}, lastFailureInfo {failure or None}")
    assert not (status.get("transitionStatus") == "InvalidSpec" or failure.get("reason") in RUNTIME_FAILURES), (
        f"the KServe controller found no runtime for the InferenceService: {failure.get('reason')}: "
        f"{failure.get('message')}")


@criterion("3.4-isvc-ready", scope="k8s")
def test_inference_service_ready_with_url(stack, evidence):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "kserve-controller")
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    try:
        obj = k8s.wait_for(ISVC_API, "InferenceService", v.inference_service_name, v.inference_service_namespace,
                           lambda o: any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in dig(o, "status.conditions", []) or []),
                           timeout=v.timeouts.inference, what="InferenceService Ready")
    except WaitTimeout as exc:
        events = k8s.events(v.inference_service_namespace, name=v.inference_service_name)
        evidence(f"not Ready: {exc}; events: {[str(e) for e in events[-5:]]}")
        raise AssertionError(str(exc)) from None
    evidence(f"Ready; url {dig(obj, 'status.url')}; conditions "
             f"{[(c['type'], c['status']) for c in dig(obj, 'status.conditions', [])]}")
    assert dig(obj, "status.url"), "Ready, but no URL published"


@criterion("3.4-storage-access", scope="k8s")
def test_storage_credentials_wired_to_the_predictor(stack, evidence):
    v, k8s = stack.values, stack.k8s
    isvc = isvc_of(stack)
    ns = v.inference_service_namespace
    assert isvc.exists, "the example InferenceService is missing"
    uri = isvc.get("spec.predictor.model.storageUri")
    sa_name = isvc.get("spec.predictor.serviceAccountName")
    evidence(f"storageUri {uri}; serviceAccountName {sa_name}")
    assert uri == v.inference_storage_uri, f"storageUri {uri}, inference_storage_uri={v.inference_storage_uri}"
    bucket = uri.split("/")[2]
    assert v.bucket(bucket) is not None, f"bucket {bucket} of the storageUri is not in minio_buckets"
    assert sa_name, "the predictor names no ServiceAccount: the storage initializer gets no S3 credentials"
    sa = k8s.obj("v1", "ServiceAccount", sa_name, ns)
    assert sa.exists, f"ServiceAccount {ns}/{sa_name} is missing"
    secret_names = [s.get("name") for s in sa.get("secrets", []) or []]
    secrets = [k8s.secret(n, ns) for n in secret_names]
    evidence(f"ServiceAccount {sa_name} lists Secrets {secret_names}: " + "; ".join(
        f"{s.name} exists={s.exists} keys={s.keys} s3-endpoint={s.annotations.get('serving.kserve.io/s3-endpoint')}"
        for s in secrets))
    usable = [s for s in secrets if s.exists and s.matches("AWS_ACCESS_KEY_ID", v.minio_access_key)
              and s.matches("AWS_SECRET_ACCESS_KEY", v.minio_secret_key)]
    assert usable, "no Secret of the ServiceAccount holds the object store's credentials (AWS_ACCESS_KEY_ID/SECRET)"
    endpoint = usable[0].annotations.get("serving.kserve.io/s3-endpoint", "")
    expected_host = f"minio.{v.minio_namespace}"
    assert endpoint.startswith(expected_host), f"s3-endpoint annotation {endpoint!r} is not the MinIO Service ({expected_host}...)"


@criterion("3.4-storage-access", scope="k8s")
def test_predictor_storage_initializer_downloaded_the_model(stack, evidence):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "kserve-controller", "containers")
    pods = k8s.pods(v.inference_service_namespace, f"serving.kserve.io/inferenceservice={v.inference_service_name}")
    assert pods, "no predictor pod"
    for pod in pods:
        statuses = {s["name"]: s for s in pod.get("status.initContainerStatuses", []) or []}
        init = statuses.get("storage-initializer")
        state = (init or {}).get("state", {})
        evidence(f"{pod.name}: storage-initializer {state}")
        assert init is not None, f"{pod.name} has no storage-initializer"
        assert dig(state, "terminated.exitCode") == 0, f"{pod.name}: storage-initializer did not finish cleanly: {state}"
        log = initializer_log(k8s, pod)
        uri = (pod.get("spec.initContainers") or [{}])
        uri = next((c.get("args", [None])[0] for c in uri if c.get("name") == "storage-initializer"), None)
        downloaded = [line for line in log.splitlines() if "Downloaded object" in line or "Successfully copied" in line]
        evidence(f"{pod.name}: storage-initializer args[0] {uri}; log: " + " | ".join(downloaded[-4:] or log.splitlines()[-3:]))
        assert any("Successfully copied" in line and uri and uri.rstrip("/") in line for line in downloaded), (
            f"{pod.name}: the storage-initializer's log does not say it copied {uri}")
        assert any("Downloaded object" in line for line in downloaded), f"{pod.name}: no object was downloaded"


def initializer_log(k8s, pod) -> str:
    from kubernetes import client

    try:
        return client.CoreV1Api(k8s.api).read_namespaced_pod_log(pod.name, pod.namespace,
                                                                 container="storage-initializer", tail_lines=200)
    except Exception as exc:  # noqa: BLE001 - the evidence says why there is no log
        return f"(no log: {exc})"


@criterion("3.4-inference", scope="k8s")
def test_malformed_requests_get_4xx_and_the_predictor_never_restarts(stack, evidence):
    """On a real predictor: a malformed request is the client's error (4xx; a 5xx fails the row) and
    does not bring the model server down (the predictor pods' restartCount is unchanged)."""
    v, k8s = stack.values, stack.k8s
    needs(k8s, "kserve-controller", "containers")
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    inf = stack.inference
    selector = f"serving.kserve.io/inferenceservice={v.inference_service_name}"
    before = {p.name: p.restarts for p in k8s.pods(v.inference_service_namespace, selector)}
    assert before, "no predictor pod"
    path = f"/v2/models/{inf.model_name}/infer"
    cases = {
        "not JSON": dict(data=b"{not json", headers={"Content-Type": "application/json"}),
        "no inputs": dict(json={"outputs": []}),
        "shape/data mismatch": dict(json={"inputs": [{"name": inf.input_name, "shape": [1, 4], "datatype": "FP64",
                                                      "data": [1.0]}]}),
        "unknown datatype": dict(json={"inputs": [{"name": inf.input_name, "shape": [1, 1], "datatype": "NOPE",
                                                   "data": [1]}]}),
    }
    answered = {label: inf.post_alone(path, **kwargs) for label, kwargs in cases.items()}
    time.sleep(2)  # a crash shows in the pod status within the kubelet's next sync
    after = {p.name: p.restarts for p in k8s.pods(v.inference_service_namespace, selector)}
    evidence(f"malformed requests -> { {k: r.status_code for k, r in answered.items()} }; predictor restartCount "
             f"before {before}, after {after}")
    server_errors = {k: f"HTTP {r.status_code} {r.text[:120]}" for k, r in answered.items() if r.status_code >= 500}
    assert not server_errors, f"malformed requests answered with a server error: {server_errors}"
    assert all(400 <= r.status_code < 500 for r in answered.values()), "a malformed request was not refused"
    assert after == before, f"the predictor restarted or was replaced: restartCount {before} -> {after}"


# --- GPU scheduling ------------------------------------------------------------------------

def gpu_nodes(stack) -> list:
    v, k8s = stack.values, stack.k8s
    needs(k8s, "gpu-nodes")
    selector = ",".join(f"{k}={val}" for k, val in v.kserve_gpu_node_selector.items())
    return [n for n in k8s.nodes(selector) if n.allocatable(v.kserve_gpu_resource_limit) > 0]


def predictor_like_pod(isvc, runtime, name: str, gpus: float | None = None) -> dict:
    """The pod KServe makes of the predictor: its nodeSelector, tolerations, affinity, and the model
    container's resources (what the scheduler decides on). `gpus` overrides the GPU count."""
    pred = isvc.get("spec.predictor", {}) or {}
    model = pred.get("model", {}) or {}
    resources = {k: dict(v) for k, v in (model.get("resources") or {}).items()}
    if gpus is not None:
        for part in ("requests", "limits"):
            for res in list(resources.get(part, {})):
                if "gpu" in res:
                    resources[part][res] = str(int(gpus))
    image = next((c.get("image") for c in (runtime.get("spec.containers", []) if runtime else [])), None)
    spec = {
        "containers": [{"name": "kserve-container", "image": image or "registry.k8s.io/pause:3.9",
                        "resources": resources}],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
    }
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "schedulerName"):
        if pred.get(key):
            spec[key] = pred[key]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {PROBE_LABEL: "gpu", "serving.kserve.io/inferenceservice": isvc.name}},
            "spec": spec}


def placement_problems(k8s, values, pod) -> list[str]:
    """Why a scheduled predictor pod's placement breaks 3.4-gpu (empty: it is right)."""
    res = values.kserve_gpu_resource_limit
    node = k8s.node(pod.node_name)
    problems = []
    missing = {k: val for k, val in values.kserve_gpu_node_selector.items() if node.labels.get(k) != val}
    if missing:
        problems.append(f"node {node.name} lacks labels {missing}")
    if node.allocatable(res) < pod.requests(res) or node.allocatable(res) <= 0:
        problems.append(f"node {node.name} has {node.allocatable(res):g} {res} allocatable, pod requests {pod.requests(res):g}")
    untolerated = [t for t in node.taints if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not tolerates(pod.tolerations, t)]
    if untolerated:
        problems.append(f"node {node.name} taints {untolerated} are not tolerated")
    return problems


def gpu_use(k8s, resource: str) -> dict[str, float]:
    """node -> GPUs requested by its non-terminated pods."""
    use: dict[str, float] = {}
    for o in k8s.list("v1", "Pod", None, field_selector="status.phase!=Succeeded,status.phase!=Failed"):
        node = dig(o, "spec.nodeName")
        if node:
            req = sum(quantity(dig(c, "resources.requests", {}).get(resource)) for c in dig(o, "spec.containers", []))
            use[node] = use.get(node, 0) + req
    return use


def wait_placed(k8s, namespace: str, names: list[str], timeout: float) -> dict[str, dict]:
    """Wait until each pod is either scheduled or marked Unschedulable by the scheduler."""
    def decided(o: dict) -> bool:
        if dig(o, "spec.nodeName"):
            return True
        return any(c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
                   for c in dig(o, "status.conditions", []) or [])
    return k8s.wait_all("v1", "Pod", namespace, {n: decided for n in names}, timeout=timeout,
                        what="probe pods scheduled or Unschedulable")


@criterion("3.4-gpu", scope="k8s")
def test_gpu_predictor_requests_and_limits_as_configured(stack, evidence):
    v = stack.values
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    res = v.kserve_gpu_resource_limit
    pred = isvc.get("spec.predictor", {})
    resources = dig(pred, "model.resources", {}) or {}
    req, lim = quantity(dig(resources, "requests", {}).get(res)), quantity(dig(resources, "limits", {}).get(res))
    evidence(f"predictor {res}: requests {req:g}, limits {lim:g} (inference_gpu_count={v.inference_gpu_count}); "
             f"nodeSelector {pred.get('nodeSelector')}; tolerations {pred.get('tolerations')}")
    assert lim == v.inference_gpu_count, f"limit {lim:g} {res}, inference_gpu_count={v.inference_gpu_count}"
    assert req in (0, lim), f"request {req:g} differs from limit {lim:g} (extended resources: request = limit)"
    if v.inference_gpu_count:
        assert (pred.get("nodeSelector") or {}) == dict(v.kserve_gpu_node_selector), "nodeSelector differs from kserve_gpu_node_selector"
        for t in v.kserve_gpu_tolerations:
            taint = {"key": t.key, "value": t.value, "effect": t.effect or "NoSchedule"}
            assert tolerates(pred.get("tolerations"), taint), f"the predictor does not tolerate {taint}"


@criterion("3.4-gpu", scope="k8s")
def test_gpu_predictor_lands_only_on_gpu_nodes(stack, evidence):
    v, k8s = stack.values, stack.k8s
    if v.inference_gpu_count == 0:
        pytest.skip("inference_gpu_count is 0: the predictor asks for no GPU")
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    nodes = gpu_nodes(stack)
    evidence(f"GPU nodes: {[(n.name, n.allocatable(v.kserve_gpu_resource_limit)) for n in nodes]}")
    assert nodes, f"no node labelled {dict(v.kserve_gpu_node_selector)} has {v.kserve_gpu_resource_limit} allocatable"
    started = time.monotonic()
    if "kserve-controller" not in k8s.limitations:
        pods = k8s.pods(v.inference_service_namespace, f"serving.kserve.io/inferenceservice={v.inference_service_name}")
        assert pods, "no predictor pod to check"
        _assert_placed(stack, pods, evidence, simulated=False)
    else:
        # No controller (kwok): the pod KServe would make of this InferenceService, placed by the real scheduler.
        rt, _ = runtime_for(stack)
        with k8s.scratch_namespace("acceptance-gpu") as ns:
            body = predictor_like_pod(isvc, rt, "predictor-probe")
            body["metadata"]["namespace"] = ns
            k8s.create(body)
            wait_placed(k8s, ns, ["predictor-probe"], timeout=60)
            _assert_placed(stack, [k8s.pod("predictor-probe", ns)], evidence, simulated=True)
    evidence(f"placement checked in {time.monotonic() - started:.2f} s")


def _assert_placed(stack, pods, evidence, simulated: bool) -> None:
    v, k8s = stack.values, stack.k8s
    res = v.kserve_gpu_resource_limit
    for pod in pods:
        node = k8s.node(pod.node_name) if pod.node_name else None
        evidence(f"{'predictor-like probe pod (from the InferenceService spec; no KServe controller)' if simulated else 'predictor pod'} "
                 f"{pod.summary()}; requests {pod.requests(res):g} {res}, limits {pod.limits(res):g}; node labels "
                 f"{ {k: node.labels.get(k) for k in v.kserve_gpu_node_selector} if node else None}, taints "
                 f"{node.taints if node else None}")
        assert pod.node_name, f"{pod.name} was not scheduled: {pod.unschedulable}"
        assert pod.limits(res) == v.inference_gpu_count, f"{pod.name} limits {pod.limits(res):g} {res}"
        problems = placement_problems(k8s, v, pod)
        assert not problems, "; ".join(problems)


@criterion("3.4-gpu", scope="k8s")
def test_gpu_requests_beyond_free_capacity_stay_pending(stack, evidence):
    v, k8s = stack.values, stack.k8s
    if v.inference_gpu_count == 0:
        pytest.skip("inference_gpu_count is 0: the predictor asks for no GPU")
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    res = v.kserve_gpu_resource_limit
    nodes = gpu_nodes(stack)
    assert nodes, f"no GPU nodes ({dict(v.kserve_gpu_node_selector)}, {res} allocatable)"
    rt, _ = runtime_for(stack)
    use = gpu_use(k8s, res)
    free = {n.name: n.allocatable(res) - use.get(n.name, 0) for n in nodes}
    per_pod = v.inference_gpu_count
    fits = int(sum(max(0, f) // per_pod for f in free.values()))
    # Fill every free GPU only where no container runs (kwok): on a real cluster that would take them all.
    fill = bool(k8s.simulated) and fits <= MAX_FILL_PODS
    too_big = int(max(n.allocatable(res) for n in nodes)) + 1
    started = time.monotonic()
    with k8s.scratch_namespace("acceptance-gpu-cap") as ns:
        names = []
        bodies = []
        if fill:
            for i in range(fits + 1):
                names.append(f"fill-{i}")
                bodies.append(predictor_like_pod(isvc, rt, f"fill-{i}"))
        names.append("too-big")
        bodies.append(predictor_like_pod(isvc, rt, "too-big", gpus=too_big))
        for body in bodies:
            body["metadata"]["namespace"] = ns
            k8s.create(body)
        wait_placed(k8s, ns, names, timeout=90)
        pods = [k8s.pod(n, ns) for n in names]
        scheduled = [p for p in pods if p.node_name]
        pending = [p for p in pods if not p.node_name]
        after = gpu_use(k8s, res)
        evidence(f"free {res} before: {free}; created {len(names)} probe pods ({fits + 1 if fill else 0} x {per_pod} to "
                 f"fill, one asking {too_big} > any node's allocatable) in {time.monotonic() - started:.2f} s: "
                 f"{len(scheduled)} scheduled, {len(pending)} Pending")
        for p in pending:
            evidence(f"{p.name}: Pending, {p.unschedulable}")
        oversubscribed = {n.name: (after.get(n.name, 0), n.allocatable(res)) for n in nodes
                          if after.get(n.name, 0) > n.allocatable(res)}
        evidence(f"{res} requested per GPU node after: { {n.name: after.get(n.name, 0) for n in nodes} }")
        assert not oversubscribed, f"nodes oversubscribed (requested, allocatable): {oversubscribed}"
        for p in scheduled:
            problems = placement_problems(k8s, v, p)
            assert not problems, "; ".join(problems)
        big = next(p for p in pods if p.name == "too-big")
        assert not big.node_name, f"a pod asking {too_big} {res} was placed on {big.node_name}"
        assert big.unschedulable and res in big.unschedulable, f"too-big is not Unschedulable for {res}: {big.unschedulable}"
        if fill:
            assert len([p for p in scheduled if p.name.startswith("fill-")]) == fits, (
                f"{len(scheduled)} of {fits + 1} fill pods scheduled, {fits} fit")
            extra = [p for p in pending if p.name.startswith("fill-")]
            assert len(extra) == 1 and extra[0].unschedulable and res in extra[0].unschedulable, (
                f"the pod beyond free capacity is not Unschedulable for {res}: {[p.summary() for p in extra]}")
        else:
            evidence("capacity fill skipped: " + ("a real cluster (it would take every free GPU)" if not k8s.simulated
                                                   else f"{fits} pods would fit (> {MAX_FILL_PODS})"))


@criterion("3.4-gpu", scope="gpu")
def test_gpu_devices_visible_in_the_predictor(stack, evidence):
    v, k8s = stack.values, stack.k8s
    needs(k8s, "gpu-devices", "kserve-controller")
    from kubernetes.stream import stream
    from kubernetes import client

    pods = k8s.pods(v.inference_service_namespace, f"serving.kserve.io/inferenceservice={v.inference_service_name}")
    assert pods, "no predictor pod"
    core = client.CoreV1Api(k8s.api)
    for pod in pods:
        out = stream(core.connect_get_namespaced_pod_exec, pod.name, pod.namespace, container="kserve-container",
                     command=["sh", "-c", LIST_COMMAND], stderr=True, stdin=False, stdout=True, tty=False)
        devices = visible_gpus(out)
        evidence(f"{pod.name}: {devices}")
        assert len(devices) == v.inference_gpu_count, f"{pod.name} sees {len(devices)} GPUs, asked {v.inference_gpu_count}"


# --- autoscaling ------------------------------------------------------------------------

@criterion("3.4-autoscaling-config", scope="k8s")
def test_autoscaling_objects_match_the_configuration(stack, evidence):
    v, k8s = stack.values, stack.k8s
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    pred = isvc.get("spec.predictor", {})
    ann = isvc.annotations
    got = {k: pred.get(k) for k in ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric")}
    want = {"minReplicas": v.inference_min_replicas, "maxReplicas": v.inference_max_replicas,
            "scaleTarget": v.inference_scale_target, "scaleMetric": v.inference_scale_metric}
    mode = ann.get("serving.kserve.io/deploymentMode", "Serverless")
    evidence(f"InferenceService predictor {got} (configured {want}); deploymentMode {mode}; annotations "
             f"{ {k: val for k, val in ann.items() if 'autoscal' in k or 'deploymentMode' in k} }")
    assert got == want, f"predictor autoscaling {got}, configured {want}"
    if mode == "RawDeployment":
        assert v.kserve_enable_raw_deployment, "RawDeployment mode but kserve_enable_raw_deployment is false"
        cls = ann.get("serving.kserve.io/autoscalerClass", "hpa")
        assert cls in ("hpa", "external"), f"RawDeployment autoscalerClass {cls!r}"
        if v.inference_scale_metric in ("concurrency", "rps"):
            raise AssertionError(f"scaleMetric {v.inference_scale_metric} needs Knative (KPA); RawDeployment's HPA "
                                 "scales on cpu or memory")
    else:
        want_cls = f"{v.knative_autoscaling_class}.autoscaling.knative.dev"
        assert ann.get("autoscaling.knative.dev/class") == want_cls, (
            f"autoscaling.knative.dev/class {ann.get('autoscaling.knative.dev/class')!r}, want {want_cls}")
    if "knative" in k8s.limitations:
        evidence(f"Knative's config-autoscaler not checked: {k8s.limitations['knative']}")
    else:
        cm = k8s.configmap("config-autoscaler", "knative-serving")
        evidence(f"knative-serving/config-autoscaler: { {k: cm.data.get(k) for k in ('pod-autoscaler-class', 'min-scale', 'max-scale')} }")
        assert cm.exists, "ConfigMap knative-serving/config-autoscaler is missing"
        assert cm.data.get("pod-autoscaler-class") == f"{v.knative_autoscaling_class}.autoscaling.knative.dev"
        assert cm.data.get("min-scale") == str(v.knative_min_scale)
        assert cm.data.get("max-scale") == str(v.knative_max_scale)
    if "kserve-controller" in k8s.limitations:
        evidence(f"the HorizontalPodAutoscaler KServe makes was not checked: {k8s.limitations['kserve-controller']}")
    elif mode == "RawDeployment":
        hpa = k8s.obj("autoscaling/v2", "HorizontalPodAutoscaler", f"{v.inference_service_name}-predictor",
                      v.inference_service_namespace)
        metrics = hpa.get("spec.metrics", []) or []
        evidence(f"HPA {hpa.name}: min {hpa.get('spec.minReplicas')}, max {hpa.get('spec.maxReplicas')}, metrics {metrics}")
        assert hpa.exists, f"no HPA {hpa.name}"
        assert hpa.get("spec.minReplicas") == v.inference_min_replicas and hpa.get("spec.maxReplicas") == v.inference_max_replicas
        assert any(dig(m, "resource.name") == v.inference_scale_metric and
                   dig(m, "resource.target.averageUtilization") == v.inference_scale_target for m in metrics), (
            f"HPA metrics {metrics} do not target {v.inference_scale_metric} at {v.inference_scale_target}")


@criterion("3.4-autoscaling-load", scope="k8s")
def test_replicas_follow_the_load(stack, evidence, request):
    """Locust loads the inference endpoint; a WATCH on the predictor's Deployment records the ready
    replicas; they must rise above the minimum within the scale-up timeout, never pass the maximum,
    keep the requests succeeding, and be back at the minimum within the autoscaler's scale-down
    window + grace after the load (load.autoscaling.judge).

    kwok: the Deployment and HPA are the provider's (simulated_predictor: no KServe controller), the
    pods are kwok's, and each ready pod reports its share of the CPU the real local MLServer
    measurably used (load.autoscaling.UsageFeeder): the HPA controller, metrics-server and the API
    server that act on it are real."""
    import tempfile
    from urllib.parse import urlsplit

    from load import autoscaling as auto
    from load.harness import LoadError, run_load

    v, k8s = stack.values, stack.k8s
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    simulated = "kserve-controller" in k8s.limitations
    target = auto.find_target(k8s, isvc.raw)
    if simulated:
        dep = k8s.deployment(target.deployment, target.namespace) if target else None
        if dep is None or not dep.exists or dep.labels.get("mlops-acceptance/simulated") != "true":
            needs(k8s, "kserve-controller")  # no predictor the provider could make (e.g. Serverless mode)
        needs(k8s, "metrics-server")
    else:
        needs(k8s, "containers")
        finding = cpu_target_unreachable(stack, isvc)
        evidence(f"values: inference_cpu_request={v.inference_cpu_request}, inference_cpu_limit={v.inference_cpu_limit}, "
                 f"inference_scale_metric={v.inference_scale_metric}, inference_scale_target={v.inference_scale_target}, "
                 f"replicas {v.inference_min_replicas}..{v.inference_max_replicas}")
        if finding:
            pytest.fail(finding, pytrace=False)
    if stack.served_model is None and not stack.inference.model_ready:
        pytest.fail("the predictor serves no ready model to load")
    assert target is not None, (f"no Deployment found that scales InferenceService {isvc.ref} "
                                f"(mode {isvc.annotations.get('serving.kserve.io/deploymentMode', 'Serverless')})")
    kpa = target.autoscaler[1] == "PodAutoscaler"
    minimum = v.inference_min_replicas if kpa else max(1, v.inference_min_replicas)
    maximum = v.inference_max_replicas
    window, window_from = auto.scale_down_window_s(k8s, target)
    down_limit = min(v.autoscaling_scale_down_timeout_s, window + auto.SCALE_DOWN_GRACE_S)
    evidence(f"scaled: Deployment {target.namespace}/{target.deployment} by {target.autoscaler_ref} "
             f"({target.mode}); minimum {minimum}, maximum {maximum}; scale-down window {window:g} s ({window_from})")

    inf = stack.inference
    rows = stack.served_model.input if stack.served_model else [[5.1, 3.5, 1.4, 0.2]]
    payload = inf.infer_payload(rows)
    feeder = None
    if simulated:
        port = urlsplit(inf.url).port
        pid = auto.listener_pid(port) if port else None
        if pid is None:
            pytest.fail(f"no process found listening on {inf.url}: the simulated pods would get no measured CPU")
        feeder = auto.UsageFeeder(k8s, target, auto.ProcessTreeCpu(pid))
    observer = auto.ReplicaObserver(k8s, target).start()
    try:
        if feeder:
            feeder.start()
        if not observer.wait_for(lambda n: n <= minimum, timeout=down_limit):
            evidence(f"NOTE: {observer.current} replicas ready before the load, not the minimum {minimum}")
        if not kpa and not observer.wait_autoscaler(lambda desired, metric: bool(metric), timeout=60):
            raise AssertionError(f"{target.autoscaler_ref} got no {v.inference_scale_metric} metric within 60 s "
                                 f"(the metrics pipeline: metrics-server, resource metrics API): "
                                 f"{observer.autoscaler[-1:] or 'no status'}")
        with tempfile.TemporaryDirectory(prefix="autoscaling-load-") as workdir:
            before = time.time()
            try:
                result = run_load(inf.url, f"/v2/models/{inf.model_name}/infer", payload, users=v.load_users,
                                  spawn_rate=v.load_spawn_rate, duration_s=v.autoscaling_load_duration_s,
                                  shape=v.load_shape, processes=v.load_processes, workdir=workdir)
            except LoadError as exc:
                pytest.fail(str(exc), pytrace=False)
            epoch = auto.locust_epoch(workdir)
        load_start = (epoch if epoch is not None else before) + result.load_window[0]
        load_stop = load_start + result.duration_s
        observer.wait_for(lambda n: n <= minimum, timeout=max(0.0, load_stop + down_limit - time.time()))
        observed_until = time.time()
    finally:
        if feeder:
            feeder.stop()
        observer.stop()

    up_limit = min(v.autoscaling_scale_up_timeout_s, result.duration_s)
    ok, reasons = auto.judge(observer.samples, minimum=minimum, maximum=maximum, load_start=load_start,
                             load_stop=load_stop, scale_up_timeout_s=up_limit, scale_down_timeout_s=down_limit,
                             requests=result.requests, failures=result.failures,
                             max_error_rate=v.load_max_error_rate, observed_until=observed_until)
    f = auto.summarize(observer.samples, minimum=minimum, load_start=load_start, load_stop=load_stop)
    evidence(f"load: {result.summary()}")
    evidence("ready replicas (s since the load started): " + ", ".join(
        f"{t - load_start:+.0f}s={n}" for t, n in observer.samples))
    evidence(f"scale-up {_s(f.scale_up_s)} after the load started (limit {up_limit:.0f} s); peak {f.peak} "
             f"(maximum {maximum}); back to {minimum} {_s(f.scale_down_s)} after it stopped (limit {down_limit:.0f} s)")
    if observer.autoscaler:
        evidence(f"{target.autoscaler_ref} (desired replicas, metric): " + ", ".join(
            f"{t - load_start:+.0f}s={d} {m}".rstrip() for t, d, m in observer.autoscaler[-12:]))
    if feeder:
        _kwok_autoscaling_evidence(evidence, stack, isvc, feeder, load_start, load_stop)
    for problem in observer.errors[:3] + (feeder.errors[:3] if feeder else []):
        evidence(f"NOTE: {problem}")
    if request is not None:
        cpu = [(t, c) for t, c, _, _ in feeder.samples] if feeder else None
        request.node.user_properties.append(("figure", auto.chart(result, observer.samples, load_start, load_stop,
                                                                  cpu=cpu, observed=(observer.samples[0][0]
                                                                                     if observer.samples else load_start,
                                                                                     observed_until))))
    assert ok, "; ".join(reasons)


def cpu_target_unreachable(stack, isvc) -> str | None:
    """Why the HPA can never scale this predictor on CPU (None: it can). One MLServer worker process
    runs the model: it uses at most one core, so a pod must be able to reach request x target with one
    core per worker (MLSERVER_PARALLEL_WORKERS on the runtime, MLServer's default 1)."""
    v = stack.values
    if v.inference_scale_metric != "cpu":
        return None
    request = quantity(dig(isvc.raw, "spec.predictor.model.resources.requests.cpu"))
    rt, _ = runtime_for(stack)
    containers = (rt.get("spec.containers", []) if rt else []) or []
    env = {e.get("name"): e.get("value") for c in containers for e in c.get("env", []) or []}
    if not request or not any("mlserver" in str(c.get("image", "")) or "MLSERVER_MODEL_IMPLEMENTATION" in env
                              for c in containers):
        return None
    workers = int(env.get("MLSERVER_PARALLEL_WORKERS") or 1)
    needed = request * v.inference_scale_target / 100
    if needed < workers:
        return None
    return (f"the HPA can never scale this predictor: at a CPU request of {request:g} and a target of "
            f"{v.inference_scale_target} % a pod must use {needed:g} cores before a replica is added, and "
            f"{workers} MLServer worker process(es) use at most {workers} core(s) (values: inference_cpu_request="
            f"{v.inference_cpu_request}, inference_scale_target={v.inference_scale_target}; lower the request or "
            "set MLSERVER_PARALLEL_WORKERS on the runtime)")


def _s(seconds) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s"


def _kwok_autoscaling_evidence(evidence, stack, isvc, feeder, load_start: float, load_stop: float) -> None:
    """What was real and what was simulated, and what the measured CPU means for the real request."""
    v, k8s = stack.values, stack.k8s
    idle = [c for t, c, _, _ in feeder.samples if t < load_start]
    mean, peak = feeder.mean_cores(load_start, load_stop), feeder.peak_cores(load_start, load_stop)
    evidence(f"kwok: the predictor pods were SIMULATED by kwok (no container ran); the HPA controller "
             f"(kube-controller-manager {k8s.cluster.kube_version if k8s.cluster else ''}), metrics-server and the "
             "API server were REAL. The pods' CPU came from the REAL local MLServer process tree "
             f"({feeder.cpu.description}, pid {feeder.cpu.root.pid}) under the REAL Locust load: psutil cpu_times "
             f"every {feeder.interval:g} s; before the load {sum(idle) / len(idle) if idle else 0:.2f} cores (mean), under load mean "
             f"{mean or 0:.2f} / peak {peak or 0:.2f} cores; each ready simulated pod reported measured / ready "
             "pods (annotation kwok.x-k8s.io/usage-cpu -> kwok's emulated kubelet /metrics/resource -> "
             "metrics-server -> HPA)")
    request = quantity(dig(isvc.raw, "spec.predictor.model.resources.requests.cpu"))
    if request and mean:
        share = mean / request * 100
        evidence(f"NOTE: the simulated pods request {v.autoscaling_kwok_cpu_request} CPU "
                 f"(autoscaling_kwok_cpu_request). At the InferenceService's own request of {request:g} CPU the "
                 f"measured {mean:.2f} cores would be {share:.0f} % of one pod's request (target "
                 f"{v.inference_scale_target} %): with this model and load a real HPA would "
                 + ("scale on CPU" if share > v.inference_scale_target * 1.1 else "NOT scale on CPU"))
