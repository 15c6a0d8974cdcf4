"""Helpers of the KServe checks (test_k8s_34_*.py): the objects they read and how.

Setup and observers live here so each check reads like its criterion.
"""

from __future__ import annotations

import pytest

from mlops_acceptance.fixtures.kube.client import WaitTimeout, dig

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


def initializer_log(k8s, pod) -> str:
    from kubernetes import client

    try:
        return client.CoreV1Api(k8s.api).read_namespaced_pod_log(pod.name, pod.namespace,
                                                                 container="storage-initializer", tail_lines=200)
    except Exception as exc:  # noqa: BLE001 - the evidence says why there is no log
        return f"(no log: {exc})"
