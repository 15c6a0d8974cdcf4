"""The node target's fake GPUs on the real kubelet: the device plugin (fixtures/node/deviceplugin)
registers nvidia.com/gpu with the kubelet's device manager, which admits and allocates them, and the
kubelet's PodResources API lists the allocation (what 3.4-gpu's allocation check reads on node).

A bare node (no stack): pods from the pause image. The broken cases are the kubelet's own refusals
(more GPUs than the node has, even past the scheduler) and a container holding no device, which the
suite's allocation reading rejects. Needs root, Linux, the node's Debian packages and the Go binaries."""

from __future__ import annotations

import pytest

from mlops_acceptance.fixtures.node.cluster import PAUSE_IMAGE, SIMULATED_DEVICES_LABEL, NodeCluster
from tests.test_node import _why_not

pytestmark = [pytest.mark.timeout(1800), pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]

DEVICES = 2


@pytest.fixture(scope="module")
def node():
    from kubernetes import config

    from mlops_acceptance.fixtures.kube.client import Kube

    cluster = NodeCluster(gpu_devices=DEVICES, gpu_labels={"nvidia.com/gpu.present": "true"}, progress=print,
                          lock_timeout=1800)
    try:
        kubeconfig = cluster.up(timeout=300)
        kube = Kube(config.new_client_from_config(config_file=str(kubeconfig)), name="node")
        kube.pod_resources = cluster.pod_resources_reader()
        yield cluster, kube
        kube.close()
    finally:
        cluster.down()


def pod(name: str, gpus: int | None, node_name: str | None = None) -> dict:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus is not None else {}
    spec = {"containers": [{"name": "kserve-container", "image": PAUSE_IMAGE, "imagePullPolicy": "Never",
                            "resources": resources}], "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def running(o: dict) -> bool:
    return (o.get("status") or {}).get("phase") == "Running"


def test_the_device_plugin_makes_the_node_a_gpu_node(node):
    cluster, kube = node
    n = kube.node(cluster.layout.node_name)
    assert n.allocatable("nvidia.com/gpu") == DEVICES and n.capacity("nvidia.com/gpu") == DEVICES
    assert n.labels.get("nvidia.com/gpu.present") == "true" and n.labels.get(SIMULATED_DEVICES_LABEL) == "true"
    assert not n.taints  # the stack's own pods run here


def test_the_kubelet_allocates_a_device_and_lists_it(node):
    from mlops_acceptance.fixtures.kube.pod_resources import devices_of

    cluster, kube = node
    kube.create(pod("one-gpu", 1))
    kube.wait_for("v1", "Pod", "one-gpu", "default", running, timeout=120, what="one-gpu Running")
    listing = kube.pod_resources.list()
    ids = devices_of(listing, "default", "one-gpu", "nvidia.com/gpu")["kserve-container"]
    assert len(ids) == 1 and ids[0].startswith("sim-gpu-"), listing
    kube.delete("v1", "Pod", "one-gpu", "default", grace_period=0)
    kube.wait_gone("v1", "Pod", "one-gpu", "default", timeout=60)


def test_the_kubelet_refuses_more_devices_than_it_has(node):
    """Past the scheduler (nodeName set), the kubelet's device manager itself refuses the pod."""
    cluster, kube = node
    kube.create(pod("too-many", DEVICES + 1, node_name=cluster.layout.node_name))
    done = kube.wait_for("v1", "Pod", "too-many", "default", lambda o: (o.get("status") or {}).get("phase") == "Failed",
                         timeout=60, what="too-many refused by the kubelet")
    assert done["status"].get("reason") == "UnexpectedAdmissionError", done["status"]
    assert "nvidia.com/gpu" in done["status"].get("message", ""), done["status"]
    kube.delete("v1", "Pod", "too-many", "default", grace_period=0)


def test_a_container_without_a_device_fails_the_allocation_reading(node):
    """The suite's reading of PodResources (suites/test_k8s_34_gpu.py) fails a container holding no GPU."""
    import mlops_acceptance.suites.test_k8s_34_gpu as m34g

    cluster, kube = node
    kube.create(pod("no-gpu", None))
    kube.wait_for("v1", "Pod", "no-gpu", "default", running, timeout=120, what="no-gpu Running")
    seen: list[str] = []
    with pytest.raises(AssertionError, match=r"no-gpu's kserve-container holds \[\] of nvidia.com/gpu, asked 1"):
        m34g._allocation_listed(kube, [kube.pod("no-gpu", "default")], 1, "nvidia.com/gpu",
                                lambda text, **kw: seen.append(text))
    assert any("PodResources" in line for line in seen), seen
    kube.delete("v1", "Pod", "no-gpu", "default", grace_period=0)
