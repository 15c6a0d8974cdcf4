"""The pure half of the Kubernetes access: object views and named conditions work without the
`kubernetes` package, and quantities parse as the official client parses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlops_acceptance.fixtures.kube import conditions
from mlops_acceptance.fixtures.kube.objects import _parse_quantity, quantity


def test_views_and_conditions_import_without_the_kubernetes_package():
    code = ("import sys; sys.modules['kubernetes'] = None\n"
            "from mlops_acceptance.fixtures.kube import conditions, objects\n"
            "assert objects.quantity('500m') == 0.5 and objects.quantity('1Gi') == 2**30\n"
            "assert conditions.pvc_bound({'status': {'phase': 'Bound'}})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("text", ["100Gi", "500m", "4", "1e3", "2.5G", "12e-3", "250m", "1Ki", "3E"])
def test_the_fallback_quantity_parser_agrees_with_the_clients(text):
    assert _parse_quantity(text) == pytest.approx(quantity(text))


def test_a_malformed_quantity_is_named():
    with pytest.raises(ValueError, match="'12 cores'"):
        quantity("12 cores")


def _workload(replicas=2, ready=2, updated=2, generation=3, observed=3):
    return {"metadata": {"name": "w", "generation": generation}, "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready, "updatedReplicas": updated, "observedGeneration": observed}}


def test_rolled_out_needs_every_replica_updated_and_ready_at_the_current_generation():
    assert conditions.rolled_out(_workload())
    assert not conditions.rolled_out(_workload(ready=1))
    assert not conditions.rolled_out(_workload(updated=1))
    assert not conditions.rolled_out(_workload(observed=2))


def test_a_failed_job_ends_the_wait_with_its_message():
    job = {"metadata": {"name": "create-buckets"},
           "status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}}
    with pytest.raises(conditions.ConditionFailed, match="Job create-buckets failed: BackoffLimitExceeded"):
        conditions.job_complete(job)
    assert conditions.job_complete({"metadata": {"name": "j"},
                                    "status": {"conditions": [{"type": "Complete", "status": "True"}]}})


def test_a_node_is_ready_only_once_its_lifecycle_taints_are_lifted():
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    tainted = {**ready, "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]}}
    assert conditions.node_ready(ready)
    assert not conditions.node_ready(tainted)
    assert conditions.condition_true("Established")({"status": {"conditions": [{"type": "Established",
                                                                                 "status": "True"}]}})


class _ExpiringApi:
    """A stand-in for the API server's list/watch that expires the first watch (HTTP 410 Gone), as a
    real server does when the list's resourceVersion is compacted away."""

    namespaced = True

    def __init__(self, states: list[dict]):
        self.states, self.lists, self.watches = states, 0, 0
        self.dyn = self

    def resource(self, api_version, kind):
        return self

    def get(self, serializer, **_):
        """A list as the dynamic client's get hands it to `serializer` (wait.list_objects: plain JSON)."""
        self.lists += 1
        obj = self.states[min(self.lists - 1, len(self.states) - 1)]
        return serializer(self, {"kind": "PersistentVolumeClaimList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": str(self.lists)}, "items": [dict(obj)]})

    def watch(self, res, **_):
        from kubernetes.client.rest import ApiException

        self.watches += 1
        if self.watches == 1:
            raise ApiException(status=410, reason="Gone")
        return iter(())


def test_an_expired_watch_lists_again():
    pytest.importorskip("kubernetes")
    from mlops_acceptance.fixtures.kube import wait

    pending = {"metadata": {"name": "data"}, "status": {"phase": "Pending"}}
    bound = {"metadata": {"name": "data"}, "status": {"phase": "Bound"}}
    api = _ExpiringApi([pending, bound])
    found = wait.until(api, "v1", "PersistentVolumeClaim", "ns", {"data": conditions.pvc_bound}, timeout=10)
    assert found["data"]["status"]["phase"] == "Bound"
    assert api.lists == 2 and api.watches == 1
