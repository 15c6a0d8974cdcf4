"""The pure parts of the kubelet-allocation half of 3.4-gpu: reading PodResources, making the
predictor's GPU variant, and where the scheduling half puts its probe pods."""

from __future__ import annotations

import json

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.kube.objects import Node, Pod
from mlops_acceptance.fixtures.kube.pod_resources import devices_of, parse_listing
from mlops_acceptance.suites.gpu_helpers import (
    SIMULATED_DEVICES_LABEL, SIMULATED_NODE_LABEL, daemonset_ready, gpu_variant_of_pod, scheduling_nodes,
)

# What `gpu-device-plugin pod-resources` prints: Go's encoding/json of the List answer.
LISTING = json.dumps({"pod_resources": [
    {"name": "mlflow-0", "namespace": "mlops", "containers": [{"name": "mlflow"}]},
    {"name": "variant", "namespace": "default", "containers": [
        {"name": "storage-initializer"},
        {"name": "kserve-container", "devices": [
            {"resource_name": "nvidia.com/gpu", "device_ids": ["sim-gpu-1"]},
            {"resource_name": "example.com/other", "device_ids": ["x"]}]}]}]})


def test_pod_resources_name_the_containers_devices_of_the_resource():
    listing = parse_listing(LISTING)
    assert devices_of(listing, "default", "variant", "nvidia.com/gpu") == {
        "storage-initializer": [], "kserve-container": ["sim-gpu-1"]}
    assert devices_of(listing, "mlops", "mlflow-0", "nvidia.com/gpu") == {"mlflow": []}
    assert devices_of(listing, "default", "absent", "nvidia.com/gpu") is None
    assert parse_listing("{}") == [] and parse_listing("") == []


def node(name, **labels):
    return Node(None, name, None, {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}})


def test_scheduling_half_stays_on_kwok_nodes_beside_a_node_with_fake_devices():
    real = node("node", **{SIMULATED_DEVICES_LABEL: "true"})
    kwok = [node(f"sim-{i}", **{SIMULATED_NODE_LABEL: "true"}) for i in range(2)]
    assert scheduling_nodes([real, *kwok]) == kwok
    assert scheduling_nodes(kwok) == kwok  # kwok target
    assert scheduling_nodes([real]) == [real]  # no kwok nodes: the real one
    gpu = node("gpu-a")  # a real GPU cluster: every node
    assert scheduling_nodes([gpu]) == [gpu]


def test_gpu_variant_keeps_the_predictor_and_adds_one_gpu_on_the_node():
    values = load_values(sets=["inference_gpu_count=0"])
    pod = Pod(None, "pred-abc", "default", {"metadata": {"name": "pred-abc", "namespace": "default",
                                                           "labels": {"serving.kserve.io/inferenceservice": "x"}},
                                             "spec": {"nodeName": "node", "serviceAccountName": "sa",
                                                      "initContainers": [{"name": "storage-initializer",
                                                                          "resources": {"requests": {"cpu": "100m"}}}],
                                                      "containers": [{"name": "kserve-container", "image": "mlserver",
                                                                      "resources": {"requests": {"cpu": "100m"},
                                                                                    "limits": {"cpu": "1"}}}]}})
    body = gpu_variant_of_pod(pod, values, node("node", **{SIMULATED_DEVICES_LABEL: "true"}), 1, "variant")
    spec = body["spec"]
    model = spec["containers"][0]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == model["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert model["image"] == "mlserver" and spec["serviceAccountName"] == "sa" and "nodeName" not in spec
    assert spec["nodeSelector"] == {**values.kserve_gpu_node_selector, "kubernetes.io/hostname": "node"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    # A probe: no Service selects it; the live pod is not changed.
    assert "serving.kserve.io/inferenceservice" not in body["metadata"]["labels"]
    assert pod.raw["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m"}


def test_a_device_plugin_daemonset_is_ready_only_when_every_pod_is():
    assert daemonset_ready({"status": {"desiredNumberScheduled": 2, "numberReady": 2}})
    assert not daemonset_ready({"status": {"desiredNumberScheduled": 2, "numberReady": 1}})
    assert not daemonset_ready({"status": {"desiredNumberScheduled": 0, "numberReady": 0}})  # on no node
