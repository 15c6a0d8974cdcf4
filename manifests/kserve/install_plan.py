"""The install plan for KServe and what it stands on: which release manifests to
apply, in which order, and what to wait for after each step.

The spec's tasks/install-kserve.yml applies only kserve.yaml and waits for the
controller; on a fresh cluster that fails: KServe's webhooks need cert-manager's
CRDs and certificates, Serverless mode needs Knative Serving and a networking
layer, and InferenceServices need the runtimes file. This plan is data, so the
kind/cluster targets, an Ansible role or a person can follow it:

    python manifests/kserve/install_plan.py [values.yaml ...]   # prints the plan as YAML

Each step: `apply` (release URLs, in order; `server_side` where a CRD is too
large for client-side apply's annotation), `patch` (merge patches of ConfigMaps
that the release created), `wait` (conditions to reach before the next step).
After the last step, apply the rendered manifests in `apply_order` and wait for
the InferenceService to be Ready.

Stdlib and PyYAML only: this file must run where only the manifests are copied.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping

# Namespaces the release manifests hard-code (not configurable by our values).
CERT_MANAGER_NAMESPACE = "cert-manager"
KNATIVE_NAMESPACE = "knative-serving"
# kserve.yaml installs its controller in `kserve` since v0.7, whatever the
# spec's `kserve_namespace` (kserve-system) says; see `notes` in the plan.
KSERVE_RELEASE_NAMESPACE = "kserve"

# Knative's ingress-class value for each networking layer.
INGRESS_CLASSES = {
    "istio": "istio.ingress.networking.knative.dev",
    "kourier": "kourier.ingress.networking.knative.dev",
    "contour": "contour.ingress.networking.knative.dev",
}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:3] if p.isdigit())


def _deployments(namespace: str, *names: str) -> list[dict[str, str]]:
    return [{"kind": "Deployment", "namespace": namespace, "name": n, "condition": "Available"} for n in names]


def _crds(*names: str) -> list[dict[str, str]]:
    return [{"kind": "CustomResourceDefinition", "name": n, "condition": "Established"} for n in names]


def _step(name: str, apply=(), wait=(), patch=(), server_side: bool = False, why: str = "") -> dict[str, Any]:
    return {"name": name, "why": why, "apply": list(apply), "server_side": server_side,
            "patch": list(patch), "wait": list(wait)}


def _cert_manager(v: Mapping[str, Any]) -> dict[str, Any]:
    ver = v["cert_manager_version"]
    return _step(
        "cert-manager",
        why="KServe's webhook certificates are issued by cert-manager",
        apply=[f"https://github.com/cert-manager/cert-manager/releases/download/v{ver}/cert-manager.yaml"],
        wait=_crds("certificates.cert-manager.io", "issuers.cert-manager.io")
        # The webhook must answer before KServe's Certificate/Issuer can be created.
        + _deployments(CERT_MANAGER_NAMESPACE, "cert-manager", "cert-manager-cainjector", "cert-manager-webhook"),
    )


def _knative(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    ver = v["knative_version"]
    base = f"https://github.com/knative/serving/releases/download/knative-v{ver}"
    core = [f"{base}/serving-core.yaml"]
    core_deployments = ["activator", "autoscaler", "controller", "webhook"]
    if v["knative_autoscaling_class"] == "hpa":
        # The hpa.autoscaling.knative.dev class is an extension, not in serving-core.
        core.append(f"{base}/serving-hpa.yaml")
        core_deployments.append("autoscaler-hpa")
    return [
        _step("knative-serving-crds", why="Knative Serving's CRDs, before the controllers that watch them",
              apply=[f"{base}/serving-crds.yaml"],
              wait=_crds("services.serving.knative.dev", "revisions.serving.knative.dev",
                         "podautoscalers.autoscaling.internal.knative.dev")),
        _step("knative-serving-core", why="Knative Serving: runs InferenceServices in Serverless mode",
              apply=core, wait=_deployments(KNATIVE_NAMESPACE, *core_deployments)),
    ]


def _networking(v: Mapping[str, Any]) -> dict[str, Any]:
    ver = v["knative_version"]
    layer = v["knative_ingress_class"]
    apply: list[str] = []
    wait: list[dict[str, str]] = []
    if layer == "istio" or v["kserve_enable_istio"]:
        # net-istio's bundled Istio: the quick-start profile, replace with your own
        # Istio installation in production.
        apply.append(f"https://github.com/knative/net-istio/releases/download/knative-v{ver}/istio.yaml")
        wait += _deployments("istio-system", "istiod", "istio-ingressgateway")
    if layer == "istio":
        apply.append(f"https://github.com/knative/net-istio/releases/download/knative-v{ver}/net-istio.yaml")
        wait += _deployments(KNATIVE_NAMESPACE, "net-istio-controller", "net-istio-webhook")
    elif layer == "kourier":
        apply.append(f"https://github.com/knative/net-kourier/releases/download/knative-v{ver}/kourier.yaml")
        wait += _deployments("kourier-system", "3scale-kourier-gateway")
        wait += _deployments(KNATIVE_NAMESPACE, "net-kourier-controller")
    elif layer == "contour":
        apply.append(f"https://github.com/knative/net-contour/releases/download/knative-v{ver}/contour.yaml")
        apply.append(f"https://github.com/knative/net-contour/releases/download/knative-v{ver}/net-contour.yaml")
        wait += _deployments("contour-external", "contour")
        wait += _deployments(KNATIVE_NAMESPACE, "net-contour-controller")
    patches = [
        {"kind": "ConfigMap", "namespace": KNATIVE_NAMESPACE, "name": "config-network",
         "merge": {"data": {"ingress-class": INGRESS_CLASSES[layer]}}},
        # KServe's v1beta1 predictor puts nodeSelector/tolerations/affinity on the
        # Knative Service; Knative drops them unless these features are enabled,
        # and a GPU predictor would then never reach a GPU node (criterion 3.4-gpu).
        {"kind": "ConfigMap", "namespace": KNATIVE_NAMESPACE, "name": "config-features",
         "merge": {"data": {"kubernetes.podspec-nodeselector": "enabled",
                            "kubernetes.podspec-tolerations": "enabled",
                            "kubernetes.podspec-affinity": "enabled"}}},
    ]
    return _step(f"knative-networking-{layer}", apply=apply, wait=wait, patch=patches,
                 why=f"Knative's ingress: {layer} (knative_ingress_class)")


def _kserve(v: Mapping[str, Any]) -> list[dict[str, Any]]:
    ver = v["kserve_version"]
    base = f"https://github.com/kserve/kserve/releases/download/v{ver}"
    # The built-in runtimes file was renamed in v0.12.
    runtimes = "kserve-runtimes.yaml" if _version_tuple(ver) < (0, 12) else "kserve-cluster-resources.yaml"
    steps = [
        _step("kserve", apply=[f"{base}/kserve.yaml"], server_side=True,
              why="CRDs and controller; the InferenceService CRD is too large for client-side apply",
              wait=_crds("inferenceservices.serving.kserve.io", "servingruntimes.serving.kserve.io",
                         "clusterservingruntimes.serving.kserve.io")
              + _deployments(KSERVE_RELEASE_NAMESPACE, "kserve-controller-manager")),
        _step("kserve-runtimes", apply=[f"{base}/{runtimes}"], server_side=True,
              why="built-in ClusterServingRuntimes (kserve-mlserver, the fallback MLflow runtime)",
              wait=[{"kind": "ClusterServingRuntime", "name": "kserve-mlserver", "condition": "exists"}]),
    ]
    if v["kserve_enable_raw_deployment"]:
        steps.append(_step(
            "kserve-raw-deployment-default",
            why="make RawDeployment the default for every InferenceService, not only annotated ones",
            patch=[{"kind": "ConfigMap", "namespace": KSERVE_RELEASE_NAMESPACE, "name": "inferenceservice-config",
                    "merge": {"data": {"deploy": json.dumps({"defaultDeploymentMode": "RawDeployment"})}}}],
        ))
    return steps


def plan(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ordered install steps for these values (a mapping: `Values.model_dump()` or a defaults file)."""
    steps = [_cert_manager(values), *_knative(values), _networking(values), *_kserve(values)]
    notes = []
    if values["kserve_namespace"] != KSERVE_RELEASE_NAMESPACE:
        notes.append(
            f"kserve_namespace is {values['kserve_namespace']!r} but KServe v{values['kserve_version']}'s "
            f"kserve.yaml installs kserve-controller-manager in {KSERVE_RELEASE_NAMESPACE!r}"
        )
    return {"steps": steps, "then": "apply the rendered manifests in apply_order(); wait for the "
            "InferenceService to be Ready", "notes": notes}


def main(argv: list[str]) -> int:
    import yaml

    here = Path(__file__).resolve().parent
    values: dict[str, Any] = yaml.safe_load((here.parent / "values" / "defaults.yaml").read_text())
    for path in argv:
        values.update(yaml.safe_load(Path(path).read_text()) or {})
    print(yaml.safe_dump(plan(values), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
