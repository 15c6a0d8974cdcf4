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

from fixtures.kube.client import dig, quantity
from fixtures.kube.gpu import LIST_COMMAND, visible_gpus
from fixtures.kube.selectors import tolerates
from suites.gpu_helpers import (
    CapacityProbe, assert_placed, gpu_nodes, placement_problems, predictor_like_pod, scheduling_subject, wait_placed,
)
from suites.kserve_helpers import isvc_of, needs, runtime_for

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
    evidence(f"GPU nodes: {[(n.name, n.allocatable(v.kserve_gpu_resource_limit)) for n in nodes]}")
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
        with k8s.scratch_namespace("acceptance-gpu") as ns:
            body = predictor_like_pod(subject, rt, "predictor-probe")
            body["metadata"]["namespace"] = ns
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
    probe = CapacityProbe(stack, subject, nodes, per_pod=per_pod)
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
        big = next(p for p in pods if p.name == "too-big")
        assert not big.node_name, f"a pod asking {probe.too_big} {res} was placed on {big.node_name}"
        assert big.unschedulable and res in big.unschedulable, f"too-big is not Unschedulable for {res}: {big.unschedulable}"
        if probe.fill:
            assert len([p for p in scheduled if p.name.startswith("fill-")]) == probe.fits, (
                f"{len(scheduled)} of {probe.fits + 1} fill pods scheduled, {probe.fits} fit")
            extra = [p for p in pending if p.name.startswith("fill-")]
            assert len(extra) == 1 and extra[0].unschedulable and res in extra[0].unschedulable, (
                f"the pod beyond free capacity is not Unschedulable for {res}: {[p.summary() for p in extra]}")


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
