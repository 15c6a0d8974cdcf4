"""CLOUD-3.4 GPU: predictors request GPUs as configured, land only on GPU nodes, tolerate their taint,
never oversubscribe; on real GPU nodes the container sees exactly its GPUs.

On kwok the scheduling half runs against the real scheduler on simulated GPU nodes, with
predictor-like probe pods made from the InferenceService's spec (no KServe controller there). On
node the real predictor is CPU-only (no GPU on the host): the same probe pods, made from the spec's
GPU variant of that predictor, go to the simulated GPU nodes joined to the node (proof: simulated).
"""

from __future__ import annotations

import time

import pytest

import secrets

from mlops_acceptance.fixtures.kube.client import WaitTimeout, dig, quantity
from mlops_acceptance.fixtures.kube.conditions import condition_true
from mlops_acceptance.fixtures.kube.gpu import LIST_COMMAND, read_smi
from mlops_acceptance.fixtures.kube.pod_resources import devices_of
from mlops_acceptance.fixtures.kube.selectors import tolerates
from mlops_acceptance.suites.gpu_helpers import (
    POD_RESOURCES_REMOTE, CapacityProbe, assert_placed, brief, daemonset_ready, daemonset_summary, device_plugin_daemonsets,
    gpu_nodes, gpu_variant_of_pod, pin_to, placement_problems, predictor_like_pod, scheduling_nodes, scheduling_subject,
    simulated, simulated_devices, wait_placed,
)
from mlops_acceptance.suites.kserve_helpers import isvc_of, needs, runtime_for

criterion = pytest.mark.criterion


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
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    subject, per_pod, variant = scheduling_subject(stack, isvc)
    nodes = gpu_nodes(stack)
    evidence(f"GPU nodes: {brief([(n.name, n.allocatable(v.kserve_gpu_resource_limit)) for n in nodes])}")
    assert nodes, f"no node labelled {dict(v.kserve_gpu_node_selector)} has {v.kserve_gpu_resource_limit} allocatable"
    started = time.monotonic()
    if "kserve-controller" not in k8s.limitations and not variant:
        pods = k8s.pods(v.inference_service_namespace, f"serving.kserve.io/inferenceservice={v.inference_service_name}")
        assert pods, "no predictor pod to check"
        assert_placed(stack, pods, evidence, simulated=False)
    else:
        # No controller (kwok), or a CPU-only predictor beside simulated GPU nodes (node): the pod KServe
        # would make of the (GPU) predictor, placed by the real scheduler.
        if variant:
            evidence(variant, proof="simulated",
                     note="simulated GPU nodes (kwok) joined to the node; a GPU cluster (tox -e gpu) proves it")
        rt, _ = runtime_for(stack)
        targets = scheduling_nodes(nodes)
        with k8s.scratch_namespace("acceptance-gpu") as ns:
            body = predictor_like_pod(subject, rt, "predictor-probe")
            body["metadata"]["namespace"] = ns
            if len(targets) < len(nodes):
                # Beside a real node with fake devices the probe stays on the kwok nodes (no container starts).
                pin_to(body, targets)
                evidence(f"probe kept on the kwok GPU nodes {brief([n.name for n in targets])}")
            k8s.create(body)
            wait_placed(k8s, ns, ["predictor-probe"], timeout=60)
            assert_placed(stack, [k8s.pod("predictor-probe", ns)], evidence, simulated=True, per_pod=per_pod)
    evidence(f"placement checked in {time.monotonic() - started:.2f} s")


@criterion("3.4-gpu", scope="k8s")
def test_gpu_requests_beyond_free_capacity_stay_pending(stack, evidence):
    """Never oversubscribed: predictor-like pods beyond the free GPUs stay Pending (Unschedulable for the
    GPU resource); one asking more than any node has is never placed."""
    v, k8s = stack.values, stack.k8s
    isvc = isvc_of(stack)
    assert isvc.exists, "the example InferenceService is missing"
    subject, per_pod, variant = scheduling_subject(stack, isvc)
    res, nodes = v.kserve_gpu_resource_limit, gpu_nodes(stack)
    assert nodes, f"no GPU nodes ({dict(v.kserve_gpu_node_selector)}, {res} allocatable)"
    if variant:
        evidence(variant, proof="simulated",
                 note="simulated GPU nodes (kwok) joined to the node; a GPU cluster (tox -e gpu) proves it")
    targets = scheduling_nodes(nodes)
    probe = CapacityProbe(stack, subject, targets, per_pod=per_pod, pinned=len(targets) < len(nodes))
    if probe.creates_nothing:
        pytest.skip(f"real GPU nodes are not filled (it would take every free GPU) and a cluster autoscaler runs "
                    f"({probe.autoscaler}): a pod asking more than any node has would make it buy one")
    with k8s.scratch_namespace("acceptance-gpu-cap") as ns:
        pods = probe.run(ns)
        probe.record(pods, evidence)
        scheduled = [p for p in pods if p.node_name]
        pending = [p for p in pods if not p.node_name]
        oversubscribed = probe.oversubscribed()
        assert not oversubscribed, f"nodes oversubscribed (requested, allocatable): {oversubscribed}"
        for p in scheduled:
            problems = placement_problems(k8s, v, p)
            assert not problems, "; ".join(problems)
        big = next((p for p in pods if p.name == "too-big"), None)
        if big is not None:
            assert not big.node_name, f"a pod asking {probe.too_big} {res} was placed on {big.node_name}"
            assert big.unschedulable and res in big.unschedulable, (
                f"too-big is not Unschedulable for {res}: {big.unschedulable}")
        if probe.fill:
            assert len([p for p in scheduled if p.name.startswith("fill-")]) == probe.fits, (
                f"{len(scheduled)} of {probe.fits + 1} fill pods scheduled, {probe.fits} fit")
            extra = [p for p in pending if p.name.startswith("fill-")]
            assert len(extra) == 1 and extra[0].unschedulable and res in extra[0].unschedulable, (
                f"the pod beyond free capacity is not Unschedulable for {res}: {[p.summary() for p in extra]}")


@criterion("3.4-gpu", scope="gpu")
def test_gpu_devices_visible_in_the_predictor(stack, evidence):
    """On real GPU nodes: nvidia-smi in each predictor container exits 0 and lists exactly its GPUs."""
    v, k8s = stack.values, stack.k8s
    needs(k8s, "gpu-devices", "kserve-controller")
    pods = k8s.pods(v.inference_service_namespace, f"serving.kserve.io/inferenceservice={v.inference_service_name}")
    assert pods, "no predictor pod"
    for pod in pods:
        code, out = k8s.exec(pod.name, pod.namespace, ["sh", "-c", LIST_COMMAND], container="kserve-container")
        reading = read_smi(out)
        evidence(f"{pod.name} on {pod.node_name}: {reading.path or 'nvidia-smi'} -L exit {reading.exit_code}: "
                 f"{reading.gpus or reading.output.strip()[-200:]}")
        assert code == 0, f"{pod.name}: the listing command did not finish (exit {code}): {out[-300:]}"
        assert reading.ok, f"{pod.name}: {reading.problem}"
        assert len(reading.gpus) == v.inference_gpu_count, (
            f"{pod.name} sees {len(reading.gpus)} GPUs, asked {v.inference_gpu_count}")
    if not v.gpu_cuda_smoke_image:
        evidence("CUDA smoke test not run (optional: gpu_cuda_smoke_image names an image that runs a CUDA program)")
        return
    _cuda_smoke_test(stack, pods[0], evidence)


def _cuda_smoke_test(stack, predictor, evidence) -> None:
    """A CUDA program on one GPU of a GPU node (gpu_cuda_smoke_image's own command) must exit 0."""
    v, k8s = stack.values, stack.k8s
    res = v.kserve_gpu_resource_limit
    with k8s.scratch_namespace("acceptance-cuda") as ns:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cuda-smoke", "namespace": ns},
                "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                         "nodeSelector": dict(v.kserve_gpu_node_selector),
                         "tolerations": predictor.tolerations,
                         "containers": [{"name": "cuda", "image": v.gpu_cuda_smoke_image,
                                         "resources": {"limits": {res: "1"}, "requests": {res: "1"}}}]}}
        k8s.create(body)
        try:
            done = k8s.wait_for("v1", "Pod", "cuda-smoke", ns,
                                lambda o: dig(o, "status.phase") in ("Succeeded", "Failed"),
                                timeout=max(300, v.timeouts.inference), what="the CUDA smoke pod finished")
        except WaitTimeout as exc:
            raise AssertionError(f"the CUDA smoke pod ({v.gpu_cuda_smoke_image}) did not finish: {exc}") from None
        from kubernetes import client

        log = client.CoreV1Api(k8s.api).read_namespaced_pod_log("cuda-smoke", ns, tail_lines=20)
        evidence(f"CUDA smoke test {v.gpu_cuda_smoke_image} on {dig(done, 'spec.nodeName')}: "
                 f"{dig(done, 'status.phase')}; log: {log.strip()[-400:]}")
        assert dig(done, "status.phase") == "Succeeded", f"the CUDA smoke test failed: {log.strip()[-400:]}"


@criterion("3.4-gpu", scope="k8s")
def test_gpus_are_allocated_by_the_kubelet_device_manager(stack, evidence):
    """The GPUs a predictor container holds come from the node's device plugin through the kubelet:
    the plugin runs (its DaemonSet Ready; on the node target a host process), the node reports the
    devices allocatable, and the kubelet's PodResources API lists the container's devices (as
    dcgm-exporter reads them). On the node target the devices are a device plugin's fakes and the
    pod is the predictor's GPU variant pinned to the real node (proof: simulated)."""
    v, k8s = stack.values, stack.k8s
    needs(k8s, "containers", "gpu-nodes")
    res = v.kserve_gpu_resource_limit
    gpu_nodes(stack)  # skips where the target has no GPU nodes at all
    selector = ",".join(f"{k}={val}" for k, val in v.kserve_gpu_node_selector.items())
    labelled = [n for n in k8s.nodes(selector) if not simulated(n)]
    if not labelled:
        pytest.skip(f"no GPU node with a kubelet (labelled {selector}): only simulated (kwok) GPU nodes")
    nodes = [n for n in labelled if n.allocatable(res) > 0]
    assert nodes, (f"the nodes labelled {selector} report no {res} allocatable "
                   f"({[n.name for n in labelled]}): no device plugin advertises it there")
    fake = [n for n in nodes if simulated_devices(n)]
    if fake:
        evidence(f"the devices of {[n.name for n in fake]} are a device plugin's fakes (fixtures/node/deviceplugin), "
                 "not GPUs", proof="simulated", note="a GPU cluster (tox -e gpu) proves it with real GPUs")
    daemonsets = device_plugin_daemonsets(k8s)
    evidence("device plugin: " + ("; ".join(daemonset_summary(o) for o in daemonsets) if daemonsets else
                                  "no DaemonSet" + (" (a host process on the node target)" if fake else "")))
    if not fake:
        assert daemonsets, f"no device plugin DaemonSet (*device-plugin*) advertises {res}"
        assert all(daemonset_ready(o) for o in daemonsets), "; ".join(daemonset_summary(o) for o in daemonsets)
    evidence(f"{res} allocatable: {brief({n.name: n.allocatable(res) for n in nodes})}")
    if v.inference_gpu_count:
        pods = k8s.pods(v.inference_service_namespace,
                        f"serving.kserve.io/inferenceservice={v.inference_service_name}")
        assert pods and all(p.ready for p in pods), f"predictor pods not Ready: {[p.summary() for p in pods]}"
        _allocation_listed(k8s, pods, v.inference_gpu_count, res, evidence)
        return
    needs(k8s, "kserve-controller")
    node = fake[0] if fake else nodes[0]
    pods = k8s.pods(v.inference_service_namespace, f"serving.kserve.io/inferenceservice={v.inference_service_name}")
    assert pods, "no predictor pod to make the GPU variant of"
    name = f"acceptance-gpu-variant-{secrets.token_hex(3)}"
    body = gpu_variant_of_pod(pods[0], v, node, 1, name)
    evidence(f"the predictor's GPU variant {name}: {pods[0].name}'s spec with 1 {res} (request = limit), "
             f"nodeSelector {body['spec']['nodeSelector']}, CPU requests lowered to 10m")
    k8s.create(body)
    try:
        try:
            k8s.wait_for("v1", "Pod", name, pods[0].namespace, condition_true("Ready"),
                         timeout=max(180, v.timeouts.inference), what=f"the GPU variant {name} Ready")
        except WaitTimeout as exc:
            raise AssertionError(f"the predictor's GPU variant is not Running and Ready on {node.name}: {exc}") from None
        variant = k8s.pod(name, pods[0].namespace)
        evidence(f"{variant.summary()} on {variant.node_name}")
        devices = _allocation_listed(k8s, [variant], 1, res, evidence)
        code, out = k8s.exec(name, variant.namespace, ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"],
                             container="kserve-container")
        evidence(f"in the container: NVIDIA_VISIBLE_DEVICES={out.strip()!r} (exit {code})")
        assert out.strip().split(",") == devices[variant.name], (
            f"the container was handed {out.strip()!r}, the kubelet lists {devices[variant.name]}")
    finally:
        k8s.delete("v1", "Pod", name, pods[0].namespace, grace_period=0)


def _allocation_listed(k8s, pods, count: int, res: str, evidence) -> dict[str, list[str]]:
    """The kubelet's PodResources List names `count` devices of `res` for each pod's model container."""
    if k8s.pod_resources is None:
        pytest.skip(POD_RESOURCES_REMOTE)
    listing = k8s.pod_resources.list()
    found = {}
    for pod in pods:
        containers = devices_of(listing, pod.namespace, pod.name, res)
        evidence(f"{k8s.pod_resources.where}: {pod.namespace}/{pod.name}: {containers}")
        assert containers is not None, f"the kubelet's PodResources API does not list {pod.namespace}/{pod.name}"
        ids = containers.get("kserve-container") or []
        assert len(ids) == count, f"{pod.name}'s kserve-container holds {ids} of {res}, asked {count}"
        found[pod.name] = ids
    return found


# --- autoscaling ------------------------------------------------------------------------
