"""A pytest plugin that breaks a provisioned Kubernetes stack (`-p tests.kube_faults`): once the stack
is up, MinIO's Service selects no pod (a change the offline lint cannot see, made on the live
object), and the run goes on as a user's would."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="session", autouse=True)
def minio_service_selects_nothing(stack):
    if stack.k8s is None:
        return
    from mlops_acceptance.fixtures.kube import wait

    k8s, ns = stack.k8s, stack.values.minio_namespace
    k8s.resource("v1", "Service").patch(body={"spec": {"selector": {"app": "minio-typo"}}}, name="minio",
                                        namespace=ns, content_type="application/merge-patch+json")
    # The real endpoint-slice controller empties the Service's endpoints: wait for it (a watch, 60 s).
    for _event, payload in wait.changes(k8s, "discovery.k8s.io/v1", "EndpointSlice", ns,
                                        label_selector="kubernetes.io/service-name=minio",
                                        deadline=time.monotonic() + 60):
        slices = payload if isinstance(payload, list) else [payload]
        if not any(ep.get("addresses") for s in slices for ep in s.get("endpoints") or []):
            break
