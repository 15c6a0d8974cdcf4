"""Helpers of the GPU checks (test_k8s_34_gpu.py): predictor-like probe pods, placement rules, GPU use."""

from __future__ import annotations

import time

from fixtures.kube.client import dig, quantity
from fixtures.kube.selectors import tolerates
from suites.kserve_helpers import MAX_FILL_PODS, PROBE_LABEL, needs, runtime_for

# kwok's fake nodes carry this label (fixtures.kube.cluster.node_manifest), on kwok and joined to a real node.
SIMULATED_NODE_LABEL = "mlops-acceptance/simulated"
# The spec's GPUs per predictor: what the GPU variant asks when the configured predictor asks none.
SPEC_GPU_COUNT = 1


def gpu_nodes(stack) -> list:
    v, k8s = stack.values, stack.k8s
    needs(k8s, "gpu-nodes")
    selector = ",".join(f"{k}={val}" for k, val in v.kserve_gpu_node_selector.items())
    return [n for n in k8s.nodes(selector) if n.allocatable(v.kserve_gpu_resource_limit) > 0]


def simulated(node) -> bool:
    return node.labels.get(SIMULATED_NODE_LABEL) == "true"


class GpuVariant:
    """The configured predictor as the spec's GPU predictor: its spec, plus the GPU request and limit,
    the GPU nodeSelector and tolerations the manifests add when inference_gpu_count > 0.

    Why: on the node target the real predictor is CPU-only (no GPU on the host), yet simulated GPU
    nodes (kwok) joined to the node let the real scheduler decide where the spec's GPU predictor
    would go. The probe pods made of it run on fake nodes only (they tolerate only the GPU taint)."""

    def __init__(self, isvc, values, gpus: int = SPEC_GPU_COUNT):
        self.name, self.gpus = isvc.name, gpus
        pred = dict(isvc.get("spec.predictor", {}) or {})
        model = dict(pred.get("model", {}) or {})
        resources = {k: dict(v) for k, v in (model.get("resources") or {}).items()}
        for part in ("requests", "limits"):
            resources.setdefault(part, {})[values.kserve_gpu_resource_limit] = str(gpus)
        model["resources"] = resources
        pred["model"] = model
        pred["nodeSelector"] = dict(values.kserve_gpu_node_selector)
        # As manifests/kserve/inference-service-example.yaml.j2 renders them.
        pred["tolerations"] = [{k: val for k, val in (("key", t.key), ("operator", t.operator), ("value", t.value),
                                                      ("effect", t.effect)) if val is not None}
                               for t in values.kserve_gpu_tolerations]
        self._spec = {"predictor": pred}

    def get(self, path: str, default=None):
        return dig({"spec": self._spec}, path, default)


def scheduling_subject(stack, isvc):
    """(what the scheduling checks place, GPUs per pod, why it is a variant or None).

    The InferenceService itself when it asks for GPUs; its GPU variant when it asks none but every
    GPU node is simulated (node target); else skip: there is no GPU predictor to place."""
    v = stack.values
    if v.inference_gpu_count:
        return isvc, v.inference_gpu_count, None
    nodes = gpu_nodes(stack)
    if nodes and all(simulated(n) for n in nodes):
        return GpuVariant(isvc, v), SPEC_GPU_COUNT, (
            f"inference_gpu_count is 0 (the predictor runs on this CPU-only host); the scheduling half places the "
            f"spec's GPU predictor ({SPEC_GPU_COUNT} {v.kserve_gpu_resource_limit}, kserve_gpu_node_selector, "
            f"kserve_gpu_tolerations) on the simulated GPU nodes")
    import pytest

    pytest.skip("inference_gpu_count is 0: the predictor asks for no GPU")


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


def assert_placed(stack, pods, evidence, simulated: bool, per_pod: int | None = None) -> None:
    v, k8s = stack.values, stack.k8s
    per_pod = v.inference_gpu_count if per_pod is None else per_pod
    res = v.kserve_gpu_resource_limit
    for pod in pods:
        node = k8s.node(pod.node_name) if pod.node_name else None
        evidence(f"{'predictor-like probe pod (from the InferenceService spec; no KServe controller)' if simulated else 'predictor pod'} "
                 f"{pod.summary()}; requests {pod.requests(res):g} {res}, limits {pod.limits(res):g}; node labels "
                 f"{ {k: node.labels.get(k) for k in v.kserve_gpu_node_selector} if node else None}, taints "
                 f"{node.taints if node else None}")
        assert pod.node_name, f"{pod.name} was not scheduled: {pod.unschedulable}"
        assert pod.limits(res) == per_pod, f"{pod.name} limits {pod.limits(res):g} {res}, expected {per_pod}"
        problems = placement_problems(k8s, v, pod)
        assert not problems, "; ".join(problems)


class CapacityProbe:
    """Predictor-like pods that fill every free GPU and one more (kwok only: on a real cluster that
    would take them all), plus one asking more GPUs than any node has."""

    def __init__(self, stack, isvc, nodes, per_pod: int | None = None):
        v, self.k8s = stack.values, stack.k8s
        self.isvc, self.nodes, self.res = isvc, nodes, v.kserve_gpu_resource_limit
        self.per_pod = v.inference_gpu_count if per_pod is None else per_pod
        self.runtime, _ = runtime_for(stack)
        use = gpu_use(self.k8s, self.res)
        self.free = {n.name: n.allocatable(self.res) - use.get(n.name, 0) for n in nodes}
        self.fits = int(sum(max(0, f) // self.per_pod for f in self.free.values()))
        # Fill every free GPU only where the GPU nodes are fake: on real ones that would take them all.
        self.fill = (bool(self.k8s.simulated) or all(simulated(n) for n in nodes)) and self.fits <= MAX_FILL_PODS
        self.too_big = int(max(n.allocatable(self.res) for n in nodes)) + 1
        self.names: list[str] = []
        self.took = 0.0

    def run(self, namespace: str) -> list:
        started = time.monotonic()
        bodies = [predictor_like_pod(self.isvc, self.runtime, f"fill-{i}") for i in range(self.fits + 1)] \
            if self.fill else []
        bodies.append(predictor_like_pod(self.isvc, self.runtime, "too-big", gpus=self.too_big))
        for body in bodies:
            body["metadata"]["namespace"] = namespace
            self.k8s.create(body)
            self.names.append(body["metadata"]["name"])
        wait_placed(self.k8s, namespace, self.names, timeout=90)
        self.took = time.monotonic() - started
        return [self.k8s.pod(n, namespace) for n in self.names]

    def oversubscribed(self) -> dict:
        after = gpu_use(self.k8s, self.res)
        return {n.name: (after.get(n.name, 0), n.allocatable(self.res)) for n in self.nodes
                if after.get(n.name, 0) > n.allocatable(self.res)}

    def record(self, pods, evidence) -> None:
        scheduled = [p for p in pods if p.node_name]
        evidence(f"free {self.res} before: {self.free}; created {len(pods)} probe pods "
                 f"({self.fits + 1 if self.fill else 0} x {self.per_pod} to fill, one asking {self.too_big} > any "
                 f"node's allocatable) in {self.took:.2f} s: {len(scheduled)} scheduled, "
                 f"{len(pods) - len(scheduled)} Pending")
        for p in pods:
            if not p.node_name:
                evidence(f"{p.name}: Pending, {p.unschedulable}")
        after = gpu_use(self.k8s, self.res)
        evidence(f"{self.res} requested per GPU node after: { {n.name: after.get(n.name, 0) for n in self.nodes} }")
        if not self.fill:
            evidence("capacity fill skipped: " + ("real GPU nodes (it would take every free GPU)"
                                                   if not self.k8s.simulated
                                                   else f"{self.fits} pods would fit (> {MAX_FILL_PODS})"))
