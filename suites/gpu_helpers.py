"""Helpers of the GPU checks (test_k8s_34_gpu.py): predictor-like probe pods, placement rules, GPU use."""

from __future__ import annotations

import time

from mlops_acceptance.fixtures.kube.client import dig, quantity
from mlops_acceptance.fixtures.kube.selectors import tolerates
from mlops_acceptance.suites.kserve_helpers import MAX_FILL_PODS, PROBE_LABEL, needs, runtime_for

# kwok's fake nodes carry this label (fixtures.kube.cluster.node_manifest), on kwok and joined to a real node.
SIMULATED_NODE_LABEL = "mlops-acceptance/simulated"
# A real node whose GPUs are a device plugin's fake devices (fixtures.node.cluster: the node target).
SIMULATED_DEVICES_LABEL = "mlops-acceptance/simulated-gpu-devices"
# The spec's GPUs per predictor: what the GPU variant asks when the configured predictor asks none.
SPEC_GPU_COUNT = 1


def brief(entries, most: int = 12) -> str:
    """`entries` (a dict or a list) as Python shows it, cut to the first `most` with how many there are:
    10,000 simulated GPU nodes would otherwise be pages of one evidence line."""
    if len(entries) <= most:
        return repr(entries)
    head = dict(list(entries.items())[:most]) if isinstance(entries, dict) else list(entries)[:most]
    return f"{repr(head)[:-1]}, ...{repr(head)[-1]} ({most} of {len(entries)} shown)"


def gpu_nodes(stack) -> list:
    v, k8s = stack.values, stack.k8s
    needs(k8s, "gpu-nodes")
    selector = ",".join(f"{k}={val}" for k, val in v.kserve_gpu_node_selector.items())
    return [n for n in k8s.nodes(selector) if n.allocatable(v.kserve_gpu_resource_limit) > 0]


def simulated(node) -> bool:
    """A kwok node: the node and its pods are simulated."""
    return node.labels.get(SIMULATED_NODE_LABEL) == "true"


def simulated_devices(node) -> bool:
    """A real node (real kubelet, real pods) whose GPUs are a device plugin's fake devices."""
    return node.labels.get(SIMULATED_DEVICES_LABEL) == "true"


def scheduling_nodes(nodes: list) -> list:
    """The GPU nodes the scheduling half places its probe pods on: the kwok nodes where there are any
    beside a node with fake devices (the probe pods would start real containers there)."""
    kwok = [n for n in nodes if simulated(n)]
    return kwok if kwok and len(kwok) < len(nodes) and all(simulated(n) or simulated_devices(n) for n in nodes) \
        else nodes


def pin_to(body: dict, nodes: list) -> dict:
    """Keep a probe pod on these nodes (a required node affinity on their names). One term per node: the
    terms are ORed, and a `metadata.name` field selector takes exactly one value (the API server refuses
    a list: 422)."""
    body["spec"].setdefault("affinity", {})["nodeAffinity"] = {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n.name]}]} for n in nodes]}}
    return body


def cluster_autoscaler(k8s) -> str | None:
    """What would buy nodes for a Pending pod (None: nothing found): the cluster autoscaler (its status
    ConfigMap or Deployment in kube-system) or Karpenter (its NodePool kind)."""
    if k8s.read("v1", "ConfigMap", "cluster-autoscaler-status", "kube-system"):
        return "cluster-autoscaler (ConfigMap kube-system/cluster-autoscaler-status)"
    for o in k8s.list("apps/v1", "Deployment", "kube-system"):
        if "cluster-autoscaler" in o["metadata"]["name"]:
            return f"cluster-autoscaler (Deployment kube-system/{o['metadata']['name']})"
    for api in ("karpenter.sh/v1", "karpenter.sh/v1beta1"):
        if k8s.has_kind(api, "NodePool"):
            return f"Karpenter ({api} NodePool)"
    return None


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
    if nodes and all(simulated(n) or simulated_devices(n) for n in nodes):
        return GpuVariant(isvc, v), SPEC_GPU_COUNT, (
            f"inference_gpu_count is 0 (the predictor runs on this CPU-only host); the scheduling half places the "
            f"spec's GPU predictor ({SPEC_GPU_COUNT} {v.kserve_gpu_resource_limit}, kserve_gpu_node_selector, "
            f"kserve_gpu_tolerations) on the simulated GPU nodes (kwok nodes, or fake devices of a device plugin)")
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

    def __init__(self, stack, isvc, nodes, per_pod: int | None = None, pinned: bool = False):
        v, self.k8s = stack.values, stack.k8s
        # pinned: the probe pods stay on `nodes` (the kwok nodes beside a node with fake devices).
        self.pinned = pinned
        # A pod no node can take makes a cluster autoscaler buy one: where one runs, too-big is not created.
        self.autoscaler = cluster_autoscaler(self.k8s)
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
        if not self.autoscaler:
            bodies.append(predictor_like_pod(self.isvc, self.runtime, "too-big", gpus=self.too_big))
        for body in bodies:
            body["metadata"]["namespace"] = namespace
            if self.pinned:
                pin_to(body, self.nodes)
            self.k8s.create(body)
            self.names.append(body["metadata"]["name"])
        wait_placed(self.k8s, namespace, self.names, timeout=90)
        self.took = time.monotonic() - started
        return [self.k8s.pod(n, namespace) for n in self.names]

    @property
    def creates_nothing(self) -> bool:
        return not self.fill and bool(self.autoscaler)

    def oversubscribed(self) -> dict:
        after = gpu_use(self.k8s, self.res)
        return {n.name: (after.get(n.name, 0), n.allocatable(self.res)) for n in self.nodes
                if after.get(n.name, 0) > n.allocatable(self.res)}

    def record(self, pods, evidence) -> None:
        scheduled = [p for p in pods if p.node_name]
        big = "no pod asking more than any node (a cluster autoscaler would buy a node for it: " \
            f"{self.autoscaler})" if self.autoscaler else f"one asking {self.too_big} > any node's allocatable"
        evidence(f"free {self.res} before: {self.free}; created {len(pods)} probe pods "
                 f"({self.fits + 1 if self.fill else 0} x {self.per_pod} to fill, {big})"
                 + (f", kept on {brief([n.name for n in self.nodes])}" if self.pinned else "")
                 + f" in {self.took:.2f} s: {len(scheduled)} scheduled, {len(pods) - len(scheduled)} Pending")
        pending = [p for p in pods if not p.node_name]
        for p in pending[:12]:
            evidence(f"{p.name}: Pending, {p.unschedulable}")
        if len(pending) > 12:
            evidence(f"... and {len(pending) - 12} more Pending")
        after = gpu_use(self.k8s, self.res)
        evidence(f"{self.res} requested per GPU node after: {brief({n.name: after.get(n.name, 0) for n in self.nodes})}")
        if not self.fill:
            evidence("capacity fill skipped: " + ("real GPU nodes (it would take every free GPU)"
                                                   if not self.k8s.simulated
                                                   else f"{self.fits} pods would fit (> {MAX_FILL_PODS})"))


# --- the kubelet's allocation (device plugin, PodResources) ----------------------------------

def device_plugin_daemonsets(k8s) -> list[dict]:
    """The device plugin's DaemonSets (NVIDIA's plugin, the GPU operator's): any named *device-plugin*."""
    return [o for o in k8s.list("apps/v1", "DaemonSet") if "device-plugin" in o["metadata"]["name"]]


def daemonset_summary(o: dict) -> str:
    st = o.get("status") or {}
    return (f"DaemonSet {o['metadata'].get('namespace')}/{o['metadata']['name']}: "
            f"{st.get('numberReady', 0)}/{st.get('desiredNumberScheduled', 0)} Ready")


def daemonset_ready(o: dict) -> bool:
    st = o.get("status") or {}
    return st.get("desiredNumberScheduled", 0) > 0 and st.get("numberReady", 0) == st.get("desiredNumberScheduled")


# Why a remote cluster's PodResources are not read (the node target reads the socket on its host).
POD_RESOURCES_REMOTE = ("the kubelet's PodResources API is read where this host reaches the node's "
                        "pod-resources socket (node target); on a remote cluster that needs a pod mounting "
                        "/var/lib/kubelet/pod-resources (as dcgm-exporter), which the suite does not run yet")
# The variant's CPU request on a small node: what is checked is the GPU allocation, not CPU fit.
VARIANT_CPU_REQUEST = "10m"


def gpu_variant_of_pod(pod, values, node, gpus: int, name: str) -> dict:
    """The live predictor pod as the spec's GPU predictor, pinned to `node`: its own containers, init
    containers (the storage initializer), volumes and service account, plus the GPU request and limit
    on the model container, the GPU nodeSelector and tolerations; CPU requests lowered to
    VARIANT_CPU_REQUEST; labelled as a probe (so no Service sends it traffic)."""
    import copy

    spec = copy.deepcopy(pod.get("spec", {}))
    # Where it ran, and what admission computes again (a copied priority must equal the computed one).
    for key in ("nodeName", "priority", "preemptionPolicy"):
        spec.pop(key, None)
    res = values.kserve_gpu_resource_limit
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        resources = c.setdefault("resources", {})
        if "cpu" in (resources.get("requests") or {}):
            resources["requests"]["cpu"] = VARIANT_CPU_REQUEST
        if c["name"] == "kserve-container":
            for part in ("requests", "limits"):
                resources.setdefault(part, {})[res] = str(gpus)
    spec["nodeSelector"] = {**dict(values.kserve_gpu_node_selector),
                            "kubernetes.io/hostname": node.labels.get("kubernetes.io/hostname", node.name)}
    spec["tolerations"] = list(spec.get("tolerations") or []) + [
        {k: val for k, val in (("key", t.key), ("operator", t.operator), ("value", t.value), ("effect", t.effect))
         if val is not None} for t in values.kserve_gpu_tolerations]
    spec["terminationGracePeriodSeconds"] = 0
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": pod.namespace, "labels": {PROBE_LABEL: "gpu-allocation"}},
            "spec": spec}
