"""`pytest suites/ --target node` as a user runs it: a real node, the stack as real pods, and every
3.1, 3.2 and 3.3 criterion passes (service and Kubernetes scope), observed on real pods; with
MLOPS_ACCEPTANCE_NODE_DURABILITY=1 the run adds --disruptive and the durability rows must pass with
the pods deleted (MinIO's, postgresql-0, the predictor's: opt-in until it has run whole); 3.4-gpu's
scheduling half runs on the simulated GPU nodes joined to the node; the host is restored afterwards. Needs root, Linux, the node's Debian packages and the Go binaries."""

from __future__ import annotations

import os

import pytest

from mlops_acceptance.fixtures.node.host import snapshot, snapshot_diff
from tests.conftest import statuses
from tests.test_node import _why_not

pytestmark = [pytest.mark.timeout(2400), pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]


DURABILITY = ("3.1-durability", "3.2-durability", "3.4-durability")


def test_the_suite_on_the_node_target_passes_31_32_33(suite_run):
    disruptive = os.environ.get("MLOPS_ACCEPTANCE_NODE_DURABILITY") == "1"
    before = snapshot()
    done, signoff = suite_run("--target", "node", "--values", "manifests/values/node.yaml", "--kube-timeout", "900",
                             *(["--disruptive"] if disruptive else []), timeout=2400)
    assert signoff is not None, done.stdout[-3000:] + done.stderr[-3000:]
    # The durability rows (scope `disruptive`) run only with --disruptive: skipped otherwise, by design.
    rows = {cid: status for cid, status in statuses(signoff).items()
            if (cid.split("-")[0] in ("3.1", "3.2", "3.3") or cid in DURABILITY)
            and (disruptive or cid not in DURABILITY)}
    bad = {cid: status for cid, status in rows.items() if status != "passed"}
    evidence = {c["id"]: c.get("evidence") for c in signoff["criteria"] if c["id"] in bad}
    assert rows and not bad, f"{bad}\n{evidence}\n{done.stdout[-3000:]}"
    assert signoff["target"] == "node"
    # 3.2-backup passed on what the CronJob's own Job uploaded, fetched and restored (not a dump made here).
    backup = next(c for c in signoff["criteria"] if c["id"] == "3.2-backup")
    assert "the Job uploaded s3://backups/postgresql/" in backup["evidence"], backup["evidence"]
    assert backup["evidence"].count("restored into acceptance_restore_") == 2, backup["evidence"]
    # The durability rows ran on real pods: each deleted and replaced by a new one (a new uid).
    for cid in DURABILITY if disruptive else ():
        text = next(c["evidence"] for c in signoff["criteria"] if c["id"] == cid)
        assert "deleted; replacement" in text and "before:" in text and "after" in text, (cid, text)
    # 3.4-gpu's scheduling half ran on the simulated GPU nodes joined to the node (the spec's GPU
    # predictor placed by the real scheduler), and the device half cannot run here: partial, never passed.
    gpu = next(c for c in signoff["criteria"] if c["id"] == "3.4-gpu")
    assert gpu["status"] == "partial", gpu
    for check in ("test_gpu_predictor_lands_only_on_gpu_nodes", "test_gpu_requests_beyond_free_capacity_stay_pending",
                  "test_gpus_are_allocated_by_the_kubelet_device_manager"):
        assert f"partial: {check} proved it on simulated proof only" in gpu["evidence"], gpu["evidence"]
    # The device plugin's fake GPUs on the real node: allocatable, and the predictor's GPU variant Running
    # with its device listed by the kubelet's PodResources API and handed to the container.
    text = gpu["evidence"]
    assert "nvidia.com/gpu allocatable: {'" in text and "the predictor's GPU variant" in text, text
    assert "kserve-container': ['sim-gpu-" in text and "NVIDIA_VISIBLE_DEVICES='sim-gpu-" in text, text
    assert "test_gpus_are_allocated_by_the_kubelet_device_manager FAILED" not in text, text
    assert any("SeaweedFS" in n for n in signoff.get("notes", [])), signoff.get("notes")
    # 3-docs records the platform: the API server's Kubernetes version and KServe's, read from the cluster;
    # Knative is not on the node (said with the reason), and nothing unreadable leaves the row partial.
    docs = next(c for c in signoff["criteria"] if c["id"] == "3-docs")
    assert "versions not readable from the cluster" not in docs["evidence"], docs
    assert "platform: kubernetes v1." in docs["evidence"], docs["evidence"]
    assert "kserve v0." in docs["evidence"] and "cert-manager v1." in docs["evidence"], docs["evidence"]
    assert "knative-serving not on this target" in docs["evidence"], docs["evidence"]
    assert signoff["versions"]["kubernetes"].startswith("v1."), signoff["versions"]
    diff = snapshot_diff(before, snapshot())
    assert not diff, "the suite run left the host changed:\n" + "\n".join(diff)
