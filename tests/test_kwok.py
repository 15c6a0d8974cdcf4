"""The kwok target's library and its Kubernetes checks, on a real kwok cluster.

A check proves its criterion only if it fails on a stack that violates it. Each test
here applies the suite's rendered manifests with one defect (bypassing the offline
linter, as a hand-applied manifest would) into namespaces of its own on one
module-scoped kwok cluster, then calls the suite's check function and expects it to
fail, naming what it saw. The unbroken manifests pass the same checks.

Needs the cached kwok/Kubernetes binaries (fixtures/kube/toolchain.py; a cold build
needs Go): skipped with the reason when they are missing and cannot be built.
"""

from __future__ import annotations

import copy
import secrets
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.kube.cluster import KwokCluster, KwokError
from tests.tools import kwok_unbuildable

# Covers the module cluster's wait for the kube binaries, which another worker may be building
# cold for the real node (~25 min on 2 busy cores).
pytestmark = pytest.mark.timeout(2400)

ROOT = Path(__file__).resolve().parent.parent


pytestmark = [pytestmark, pytest.mark.skipif(bool(kwok_unbuildable()), reason=kwok_unbuildable() or "")]


# --- the shared cluster ---------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    c = KwokCluster.create(timeout=120)
    try:
        c.add_nodes(2)
        c.add_gpu_nodes(3, gpus=4)
        yield c
    finally:
        c.delete()


@pytest.fixture(scope="module")
def kube(cluster):
    from mlops_acceptance.fixtures.kube.client import Kube
    from mlops_acceptance.fixtures.kube.deploy import Deployer
    from mlops_acceptance.fixtures.kube.providers.kwok import KwokProvider
    from mlops_acceptance.fixtures.kube.simulation import kserve_crds

    k = Kube(cluster.api_client(), name=cluster.name, simulated=KwokProvider.simulated, cluster=cluster,
             limitations=KwokProvider.limitations)
    crds, _ = kserve_crds(load_values().kserve_version)
    Deployer(k).apply(crds)
    yield k
    k.close()


class Evidence(list):
    """The checks' `evidence` (fixtures/evidence.py), recording into a list."""

    def __call__(self, text: str, proof: str | None = None, note: str = "") -> None:
        self.append(str(text))
        if proof:
            self.proof(proof, note)

    def proof(self, kind: str, note: str = "") -> None:
        self.append(f"proof {kind}: {note}")


def deploy(kube, cluster, mutate=None, wait: float = 20, storage: bool = True, **sets):
    """Render the suite's manifests into fresh namespaces (+ `sets`), let `mutate(objects)` break
    them, apply (static PVs as the kwok provider makes them), wait; returns a stack-like object."""
    from mlops_acceptance.fixtures.kube.manifests import apply_order, render_manifests
    from mlops_acceptance.fixtures.kube.deploy import Deployer
    from mlops_acceptance.fixtures.kube.simulation import with_static_storage

    ns = f"t-{secrets.token_hex(3)}"
    assignments = [f"{k}={ns}" for k in ("minio_namespace", "postgresql_namespace", "mlflow_namespace",
                                          "inference_service_namespace")]
    assignments += [f"{k}={v}" for k, v in sets.items()]
    values = load_values(sets=assignments)
    objects = [copy.deepcopy(dict(o)) for o in apply_order(render_manifests(values))]
    if mutate:
        mutate(objects)
    if storage:
        objects, _storage = with_static_storage(kube, objects, str(cluster.workdir / "volumes"))
    deployer = Deployer(kube)
    applied = deployer.apply(objects)
    not_ready = deployer.wait_ready(applied, timeout=wait)
    return SimpleNamespace(values=values, k8s=kube, served_model=None, namespace=ns, not_ready=not_ready,
                           skipped=deployer.result.skipped)


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def fails(check, stack, *args) -> str:
    """Run a suite check; it must fail (AssertionError). Returns the failure and the evidence it recorded."""
    evidence = Evidence()
    with pytest.raises(AssertionError) as info:
        check(stack, evidence, *args)
    return f"{info.value}\n" + "\n".join(evidence)


def passes(check, stack, *args) -> list[str]:
    evidence = Evidence()
    check(stack, evidence, *args)
    return evidence


class _Config:
    def __init__(self, profile="dev"):
        self.profile = profile

    def getoption(self, name, default=None):
        return self.profile if name == "profile" else default


import mlops_acceptance.suites.test_k8s_31_minio as m31  # noqa: E402  (modules, not their functions: pytest must not collect them here)
import mlops_acceptance.suites.test_k8s_32_postgresql as m32  # noqa: E402
import mlops_acceptance.suites.test_k8s_33_mlflow as m33  # noqa: E402
import mlops_acceptance.suites.test_k8s_34_autoscaling as m34a  # noqa: E402
import mlops_acceptance.suites.test_k8s_34_gpu as m34g  # noqa: E402
import mlops_acceptance.suites.test_k8s_34_kserve as m34  # noqa: E402


# --- the cluster library ------------------------------------------------------------------

def test_cluster_is_up_with_simulated_gpu_nodes(cluster, kube):
    assert cluster.timings["control-plane-ready"] < 60
    nodes = {n.name: n for n in kube.nodes()}
    gpu = [n for n in nodes.values() if n.labels.get("workload-type") == "inference"]
    assert len(nodes) == 5 and len(gpu) == 3
    for n in gpu:
        assert n.ready and n.allocatable("nvidia.com/gpu") == 4
        assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in n.taints
    assert all(n.allocatable("nvidia.com/gpu") == 0 for n in nodes.values() if n not in gpu)
    # Every component listens on 127.0.0.1 only.
    server = kube.api.configuration.host
    assert server.startswith("https://127.0.0.1:"), server


def test_create_and_delete_leave_nothing_behind(tmp_path):
    c = KwokCluster.create(timeout=120)
    workdir, name = c.workdir, c.name
    assert (workdir / "clusters" / name).is_dir()
    c.delete()
    assert not workdir.exists(), "the cluster's KWOK_WORKDIR was not removed"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", str(workdir)], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"components of {name} still running: {left}"


def test_reused_cluster_is_not_deleted(cluster):
    again = KwokCluster.create(cluster.name, workdir=cluster.workdir, reuse=True, timeout=30)
    assert not again.created and not again.owns_workdir
    again.delete()  # deletes nothing: it did not create the cluster
    assert (cluster.workdir / "clusters" / cluster.name).is_dir()
    from kubernetes import client

    assert client.CoreV1Api(cluster.api_client()).list_node().items


def test_a_failed_create_raises_with_the_log_tail(tmp_path, monkeypatch):
    fake = tmp_path / "kwokctl"
    fake.write_text("#!/bin/sh\necho 'boom: etcd did not start' >&2\nexit 3\n")
    fake.chmod(0o755)
    from mlops_acceptance.fixtures.kube import cluster as mod

    real = mod.toolchain.ensure_binaries

    def with_fake(*a, **kw):
        paths = real(*a, **kw)
        return {**paths, "kwokctl": fake}

    monkeypatch.setattr(mod.toolchain, "ensure_binaries", with_fake)
    with pytest.raises(KwokError) as info:
        KwokCluster.create(workdir=tmp_path / "wd", timeout=10)
    assert "exited 3" in str(info.value) and "boom: etcd did not start" in str(info.value)


# --- the unbroken manifests pass every Kubernetes check -------------------------------------

def test_unbroken_manifests_pass_the_k8s_checks(kube, cluster):
    stack = deploy(kube, cluster)
    assert not stack.not_ready, stack.not_ready
    for check in (m31.test_minio_pods_running_and_ready, m31.test_minio_claim_bound_and_mounted_at_the_data_path,
                  m31.test_minio_service_ports_and_ready_endpoints, m31.test_minio_ingress_routes_to_the_service,
                  m32.test_postgresql_statefulset_ready, m32.test_postgresql_claim_template_bound,
                  m32.test_postgresql_service_with_ready_endpoints, m32.test_backup_cronjob_scheduled,
                  m33.test_mlflow_replicas_ready_and_probes_hit_health, m33.test_mlflow_config_and_credentials_from_secret,
                  m33.test_mlflow_service_with_ready_endpoints, m33.test_mlflow_ingress_routes_to_the_service,
                  m34.test_kserve_crds_established, m34.test_mlflow_runtime_visible_from_the_isvc_namespace,
                  m34.test_storage_credentials_wired_to_the_predictor,
                  m34g.test_gpu_predictor_requests_and_limits_as_configured,
                  m34g.test_gpu_predictor_lands_only_on_gpu_nodes, m34g.test_gpu_requests_beyond_free_capacity_stay_pending,
                  m34a.test_autoscaling_objects_match_the_configuration):
        passes(check, stack)
    passes(m31.test_minio_credentials_come_from_a_secret, stack, _Config())
    # No KServe controller here, so no HPA of its: only the InferenceService's spec was read, and the check says so.
    assert any(e.startswith("proof declared: ") for e in
               passes(m34a.test_autoscaling_objects_match_the_configuration, stack))
    # Storage and credentials are read from the (simulated) pods: no process to ask, and the evidence says why.
    assert any("data_directory not read" in e for e in passes(m32.test_postgresql_claim_template_bound, stack))


def test_default_credentials_fail_the_production_profile(kube, cluster):
    stack = deploy(kube, cluster)
    text = fails(m31.test_minio_credentials_come_from_a_secret, stack, _Config("production"))
    assert "default credentials" in text and "FLAGGED" in text


# --- 3.4-gpu: scheduling on simulated GPU nodes ----------------------------------------------

def test_gpu_predictor_without_tolerations_stays_pending(kube, cluster):
    def drop_tolerations(objects):
        find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"].pop("tolerations")

    stack = deploy(kube, cluster, drop_tolerations)
    text = fails(m34g.test_gpu_predictor_lands_only_on_gpu_nodes, stack)
    assert "was not scheduled" in text and "untolerated taint" in text, text
    assert "does not tolerate" in fails(m34g.test_gpu_predictor_requests_and_limits_as_configured, stack)


def test_gpu_request_larger_than_any_node_stays_pending(kube, cluster):
    stack = deploy(kube, cluster, inference_gpu_count=5)  # nodes have 4
    text = fails(m34g.test_gpu_predictor_lands_only_on_gpu_nodes, stack)
    assert "was not scheduled" in text and "Insufficient nvidia.com/gpu" in text, text


def test_gpu_predictor_without_node_selector_fails(kube, cluster):
    def drop_selector(objects):
        find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"].pop("nodeSelector")

    stack = deploy(kube, cluster, drop_selector)
    assert "nodeSelector differs" in fails(m34g.test_gpu_predictor_requests_and_limits_as_configured, stack)


def test_gpu_limit_different_from_the_configuration_fails(kube, cluster):
    def two_gpus(objects):
        res = find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"]["model"]["resources"]
        res["limits"]["nvidia.com/gpu"] = "2"

    stack = deploy(kube, cluster, two_gpus)
    assert "inference_gpu_count=1" in fails(m34g.test_gpu_predictor_requests_and_limits_as_configured, stack)


def test_gpu_predictor_without_selector_spills_onto_an_unlabelled_gpu_node(kube, cluster):
    """A node that advertises GPUs without the workload-type label (a mislabelled pool): a predictor
    without nodeSelector fills the labelled GPUs and then lands there. The capacity check names it."""
    rogue = cluster.add_nodes(1, prefix="rogue-gpu", extended={"nvidia.com/gpu": "8"})
    try:
        def drop_selector(objects):
            find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"].pop("nodeSelector")

        stack = deploy(kube, cluster, drop_selector)
        text = fails(m34g.test_gpu_requests_beyond_free_capacity_stay_pending, stack)
        assert "rogue-gpu-0 lacks labels" in text, text
    finally:
        cluster.remove_nodes(rogue)


def test_no_pod_bigger_than_any_node_where_a_cluster_autoscaler_runs(kube, cluster):
    """A Pending pod no node can take makes a cluster autoscaler buy one: where its status ConfigMap is
    found, the capacity check creates no too-big pod (it still fills the simulated GPUs) and says why."""
    status = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"}, "data": {"status": "x"}}
    kube.create(status)
    try:
        stack = deploy(kube, cluster)
        text = "\n".join(passes(m34g.test_gpu_requests_beyond_free_capacity_stay_pending, stack))
        assert "no pod asking more than any node (a cluster autoscaler would buy a node for it: " \
               "cluster-autoscaler (ConfigMap kube-system/cluster-autoscaler-status))" in text, text
        assert "too-big" not in text, text
    finally:
        kube.delete("v1", "ConfigMap", "cluster-autoscaler-status", "kube-system")


def test_gpu_preflight_names_the_selector_no_node_matches(kube):
    """The gpu profile's selector (the GPU operator's label) on a cluster whose GPU nodes carry only
    workload-type=inference: one line naming the selector, before anything is applied."""
    from mlops_acceptance.fixtures.kube.providers.cluster import cluster_problems

    def gpu_problems(values) -> list[str]:
        found = cluster_problems(kube, values, SimpleNamespace(install_kserve=True), "kwok")
        return [p for p in found if "nvidia.com/gpu" in p]

    problems = gpu_problems(load_values(files=[ROOT / "manifests" / "values" / "gpu.yaml"]))
    assert len(problems) == 1, problems
    assert "no node labelled nvidia.com/gpu.present=true has nvidia.com/gpu allocatable" in problems[0]
    assert "\n" not in problems[0]
    assert not gpu_problems(load_values())  # workload-type=inference: 3 nodes
    assert not gpu_problems(load_values(sets=["inference_gpu_count=0"]))


def test_autoscaling_without_a_free_gpu_for_a_second_replica_is_said_up_front(kube, cluster):
    """3.4-autoscaling-load's precondition on GPU predictors: a replica beyond the first needs free GPUs.
    On a GPU node of its own (4 GPUs, nothing on it): the module's other tests leave pods on the shared
    GPU nodes, which would decide the answer instead of the precondition."""
    from mlops_acceptance.fixtures.kube.cluster import node_manifest
    from mlops_acceptance.suites.autoscaling_helpers import no_gpu_for_a_replica

    name = f"free-gpu-node-{secrets.token_hex(3)}"
    kube.create(node_manifest(name, labels={"acceptance/free-gpu-test": name}, extended={"nvidia.com/gpu": "4"}))
    try:
        mine = {"kserve_gpu_node_selector": {"acceptance/free-gpu-test": name}}
        evidence = Evidence()
        fits = SimpleNamespace(values=load_values().model_copy(update=mine), k8s=kube)
        assert no_gpu_for_a_replica(fits, evidence) is None, evidence
        assert f"'{name}': 4" in evidence[-1], evidence  # read from the node: 4 allocatable, none used
        too_many = SimpleNamespace(values=load_values(sets=["inference_gpu_count=5"]).model_copy(update=mine),
                                   k8s=kube)
        finding = no_gpu_for_a_replica(too_many, evidence)
        assert finding and "needs a second free GPU" in finding and f"'{name}'" in finding, finding
    finally:
        kube.delete("v1", "Node", name)


def test_a_probe_pinned_to_several_nodes_is_accepted_and_placed_on_one_of_them(kube, cluster):
    """pin_to (the capacity probe kept on the simulated GPU nodes beside the node's own): the API server
    takes one name per `metadata.name` field selector, so several nodes are several terms."""
    from mlops_acceptance.suites.gpu_helpers import pin_to, wait_placed

    nodes = kube.nodes("workload-type=inference")[:2]
    assert len(nodes) == 2, nodes
    with kube.scratch_namespace("acceptance-pin") as ns:
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned", "namespace": ns},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": [{"operator": "Exists"}]}}
        kube.create(pin_to(body, nodes))
        wait_placed(kube, ns, ["pinned"], timeout=60)
        assert kube.pod("pinned", ns).node_name in {n.name for n in nodes}


def test_gpu_allocation_check_skips_on_simulated_pods(kube, cluster):
    """kwok runs no kubelet: the device-manager check skips with the target's reason, never passes."""
    stack = deploy(kube, cluster)
    with pytest.raises(pytest.skip.Exception) as info:
        m34g.test_gpus_are_allocated_by_the_kubelet_device_manager(stack, Evidence())
    assert "kwok" in str(info.value).lower() or "simulat" in str(info.value).lower(), info.value


# --- 3.1 / 3.2 / 3.3: broken objects fail their checks ----------------------------------------

def test_service_selector_matching_no_pod_fails_3_1_service(kube, cluster):
    def typo(objects):
        find(objects, "Service", "minio")["spec"]["selector"] = {"app": "minio-typo"}

    stack = deploy(kube, cluster, typo)
    assert "no ready endpoints" in fails(m31.test_minio_service_ports_and_ready_endpoints, stack)


def test_deployment_selecting_other_labels_fails_3_1_pods(kube, cluster):
    def relabel(objects):
        dep = find(objects, "Deployment", "minio")
        dep["spec"]["selector"]["matchLabels"] = {"app": "object-store"}
        dep["spec"]["template"]["metadata"]["labels"] = {"app": "object-store"}

    stack = deploy(kube, cluster, relabel)
    assert "Running+Ready pods labelled app=minio" in fails(m31.test_minio_pods_running_and_ready, stack)


def test_too_few_ready_replicas_fail_3_3_pods(kube, cluster):
    def impossible(objects):
        # The pods ask for more memory than any node has: they stay Pending, the Deployment not ready.
        c = find(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
        c["resources"] = {"requests": {"memory": "1Ti"}, "limits": {"memory": "1Ti"}}

    stack = deploy(kube, cluster, impossible, wait=5)
    assert "ready replicas" in fails(m33.test_mlflow_replicas_ready_and_probes_hit_health, stack)


def test_probes_not_on_health_fail_3_3_pods(kube, cluster):
    def ready_path(objects):
        c = find(objects, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
        c["readinessProbe"]["httpGet"]["path"] = "/"

    stack = deploy(kube, cluster, ready_path)
    assert "not GET /health" in fails(m33.test_mlflow_replicas_ready_and_probes_hit_health, stack)


def test_claim_of_another_class_fails_3_1_storage(kube, cluster):
    def other_class(objects):
        find(objects, "PersistentVolumeClaim", "minio-data")["spec"]["storageClassName"] = "standard"

    stack = deploy(kube, cluster, other_class)
    assert "minio_storage_class=local-path" in fails(m31.test_minio_claim_bound_and_mounted_at_the_data_path, stack)


def test_unbound_claims_fail_3_1_and_3_2_storage(kube, cluster):
    # No PersistentVolume at all (a cluster without a provisioner for the class): the claims stay Pending.
    stack = deploy(kube, cluster, storage=False, wait=3)
    assert "not Bound" in fails(m31.test_minio_claim_bound_and_mounted_at_the_data_path, stack)
    assert "not Bound" in fails(m32.test_postgresql_claim_template_bound, stack)


def test_literal_credentials_fail_3_1_credentials(kube, cluster):
    def literal(objects):
        env = find(objects, "Deployment", "minio")["spec"]["template"]["spec"]["containers"][0]["env"]
        for e in env:
            if e["name"] == "MINIO_ROOT_PASSWORD":
                e.pop("valueFrom")
                e["value"] = "minioadmin123"

    stack = deploy(kube, cluster, literal)
    assert "comes from literal, not a Secret" in fails(m31.test_minio_credentials_come_from_a_secret, stack,
                                                       _Config())


def test_credentials_in_a_configmap_fail_3_3_config(kube, cluster):
    def leak(objects):
        find(objects, "ConfigMap", "mlflow-config")["data"]["backend"] = "postgresql://mlflow:mlflow_secure_password@x/y"

    stack = deploy(kube, cluster, leak)
    assert "credentials in ConfigMaps" in fails(m33.test_mlflow_config_and_credentials_from_secret, stack)


def test_missing_backup_cronjob_fails_3_2_backup(kube, cluster):
    def no_cronjob(objects):
        objects.remove(find(objects, "CronJob", "postgresql-backup"))

    stack = deploy(kube, cluster, no_cronjob)
    assert "no CronJob" in fails(m32.test_backup_cronjob_scheduled, stack)


def test_ingress_to_the_wrong_service_fails_3_3_ingress(kube, cluster):
    def wrong_backend(objects):
        path = find(objects, "Ingress", "mlflow")["spec"]["rules"][0]["http"]["paths"][0]
        path["backend"]["service"]["name"] = "minio"

    stack = deploy(kube, cluster, wrong_backend)
    assert "no route of" in fails(m33.test_mlflow_ingress_routes_to_the_service, stack)


def test_autoscaling_mismatch_fails_3_4_autoscaling_config(kube, cluster):
    def max5(objects):
        find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"]["maxReplicas"] = 5

    stack = deploy(kube, cluster, max5)
    assert "configured" in fails(m34a.test_autoscaling_objects_match_the_configuration, stack)


def test_runtime_without_mlflow_v2_fails_3_4_runtime(kube, cluster):
    def v1_only(objects):
        rt = find(objects, "ClusterServingRuntime", "mlflow-serving")
        rt["metadata"]["name"] = f"mlflow-v1-{secrets.token_hex(2)}"
        rt["spec"]["supportedModelFormats"][0]["version"] = "1"
        find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"]["model"]["runtime"] = \
            rt["metadata"]["name"]

    stack = deploy(kube, cluster, v1_only)
    assert "does not support model format mlflow v2" in fails(m34.test_mlflow_runtime_visible_from_the_isvc_namespace,
                                                               stack)


def test_missing_storage_service_account_fails_3_4_storage_access(kube, cluster):
    def no_sa(objects):
        find(objects, "InferenceService", "oumi-model-example")["spec"]["predictor"].pop("serviceAccountName")

    stack = deploy(kube, cluster, no_sa)
    assert "names no ServiceAccount" in fails(m34.test_storage_credentials_wired_to_the_predictor, stack)


# --- the cluster target's provisioning path, pointed at this kwok cluster ---------------------

def test_cluster_target_removes_exactly_what_it_applied(kube, cluster):
    """--target cluster on an existing cluster: apply in order, wait (claims stay Pending: no provisioner,
    said in the notes), then delete what was applied; a namespace that existed before is left."""
    from mlops_acceptance.fixtures.kube.options import KubeOptions
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider

    ns = f"ct-{secrets.token_hex(3)}"
    values = load_values(sets=[f"{k}={ns}" for k in ("minio_namespace", "postgresql_namespace", "mlflow_namespace",
                                                     "inference_service_namespace")])
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    provider = ClusterProvider(values, options=KubeOptions.defaults(kubeconfig=cluster.kubeconfig, timeout=3))
    # Where KServe's CRDs exist the provider holds the InferenceService back until it has trained and
    # registered the model in the stack's MLflow (fixtures/kserve/serving.py); nothing runs on kwok, so
    # here it is applied with the rest, as on a cluster whose model the suite does not train.
    provider.trains_served_model = lambda: False
    try:
        provider.provision()
        applied = {(k[1], k[2]) for k in (a.key for a in provider.deployer.result.applied)}
        assert {("Deployment", "minio"), ("StatefulSet", "postgresql"), ("InferenceService", "oumi-model-example"),
                ("CronJob", "postgresql-backup")} <= applied
        assert kube.deployment("mlflow", ns).exists
        assert any("not ready within --kube-timeout" in n and "PersistentVolumeClaim" in n for n in provider.notes), \
            provider.notes
        assert any("knative-serving" in n for n in provider.notes)  # its namespace comes with Knative's release
        existed = [a.key for a in provider.deployer.result.applied if a.existed]
        assert ("v1", "Namespace", ns, None) in existed
    finally:
        provider.down()
    assert kube.read("v1", "Namespace", ns) is not None, "a namespace that existed before was deleted"
    for kind, api, name in (("Deployment", "apps/v1", "minio"), ("Service", "v1", "mlflow"), ("Secret", "v1", "mlflow-secret"),
                            ("InferenceService", "serving.kserve.io/v1beta1", "oumi-model-example")):
        assert kube.read(api, kind, name, ns) is None, f"{kind} {name} was left behind"
    kube.delete("v1", "Namespace", ns)


def test_install_plan_runner_applies_patches_and_waits(kube, tmp_path):
    """kind/cluster install cert-manager, Knative and KServe by following manifests/kserve/install_plan.py;
    the runner is exercised here with a release file of our own (the real ones are on GitHub)."""
    import yaml

    from mlops_acceptance.fixtures.config import load_values
    from mlops_acceptance.fixtures.kube.deploy import Deployer
    from mlops_acceptance.fixtures.kube.install import PlanRunner, install_plan

    real = install_plan(load_values())
    assert [s["name"] for s in real["steps"]][0] == "cert-manager"
    assert all(u.startswith("https://") for s in real["steps"] for u in s["apply"])

    ns = f"ip-{secrets.token_hex(3)}"
    labels = {"app": "controller"}
    release = tmp_path / "release.yaml"
    release.write_text(yaml.safe_dump_all([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller", "namespace": ns},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-network", "namespace": ns},
         "data": {"kept": "1"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    ]))
    plan = {"steps": [{"name": "fake-release", "apply": [release.as_uri()],
                       "patch": [{"kind": "ConfigMap", "namespace": ns, "name": "config-network",
                                  "merge": {"data": {"ingress-class": "kourier.ingress.networking.knative.dev"}}}],
                       "wait": [{"kind": "Deployment", "namespace": ns, "name": "controller",
                                 "condition": "Available"}]}]}
    deployer = Deployer(kube)
    done = PlanRunner(kube, deployer).run(plan, timeout=60)
    assert done and done[0].startswith("fake-release")
    assert kube.configmap("config-network", ns).data == {"kept": "1",
                                                         "ingress-class": "kourier.ingress.networking.knative.dev"}
    assert kube.deployment("controller", ns).ready_replicas == 1
    assert not deployer.teardown(timeout=60)
    assert kube.read("v1", "Namespace", ns) is None


def test_3_docs_reads_platform_versions_from_the_cluster_and_an_unreadable_one_leaves_it_partial(cluster):
    """fixtures/kube/platform.py against the real API server: a cluster that should run KServe (no
    limitations, as kind or cluster) whose controller names no version -> 3-docs' platform check skips
    (the row reads partial) naming it; tagged, its version is read. On kwok's own view the controllers
    are not on this target, said with kwok's reason, and nothing is missing."""
    import mlops_acceptance.suites.test_3_completion as m3
    from mlops_acceptance.fixtures.kube.client import Kube
    from mlops_acceptance.fixtures.kube.platform import read_versions
    from mlops_acceptance.fixtures.kube.providers.kwok import KwokProvider

    ns = f"kserve-{secrets.token_hex(3)}"
    values = load_values(sets=[f"kserve_namespace={ns}"])
    real = Kube(cluster.api_client(), name=cluster.name)
    labels = {"control-plane": "kserve-controller-manager"}

    def controller(image: str) -> dict:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "kserve-controller-manager", "namespace": ns, "labels": labels},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "manager", "image": image}]}}}}

    def stack_of(k):
        return SimpleNamespace(k8s=k, values=values, target="kwok", platform_versions=lambda: read_versions(k, values))

    try:
        real.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        real.apply(controller("kserve/kserve-controller@sha256:" + "0" * 64))
        evidence = Evidence()
        with pytest.raises(pytest.skip.Exception) as info:
            m3.test_the_report_records_the_k8s_platform_versions(stack_of(real), evidence)
        why = str(info.value)
        assert (f"kserve: Deployment {ns}/kserve-controller-manager has no app.kubernetes.io/version label and no "
                "tagged kserve-controller image") in why, why
        assert "knative-serving: no Deployment controller in knative-serving" in why, why
        assert evidence[0].startswith("platform: kubernetes v1."), evidence
        real.apply(controller("kserve/kserve-controller:v0.11.2"))
        found = {p.component: p for p in read_versions(real, values)}
        assert found["kserve"].version == "v0.11.2", found["kserve"]
        assert found["kserve"].where == f"Deployment {ns}/kserve-controller-manager"
        kwok = Kube(cluster.api_client(), name=cluster.name, limitations=KwokProvider.limitations)
        try:
            said = passes(m3.test_the_report_records_the_k8s_platform_versions, stack_of(kwok))
        finally:
            kwok.close()
        assert "kserve not on this target (kwok runs no containers" in said[0], said
        assert "cert-manager not on this target" in said[0] and "proof live: " in said, said
    finally:
        real.delete("v1", "Namespace", ns)
        real.close()


# --- the whole target, as a user runs it ------------------------------------------------------

def test_suite_on_kwok_signs_off_k8s_criteria_and_leaves_nothing(suite_run, run_tmpdir):
    from tests.leftovers import assert_nothing_left

    done, signoff = suite_run("--target", "kwok", "-k", "k8s", timeout=600)
    assert signoff is not None, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {c["id"]: c for c in signoff["criteria"]}
    k8s_rows = {i: r for i, r in rows.items() if "k8s" in r["scope"] or r["scope"] == "gpu"}
    # kwok simulates pods, volumes and metrics: what it proves is `partial`, naming the targets that
    # prove it live; nothing fails and nothing reads plain `passed` from a simulation.
    # `-k k8s` deselects the service checks: a row with a service half too reads not-run.
    def allowed(r):
        return ("passed", "partial", "skipped") + (("not-run",) if "service" in r["scope"] else ())
    assert all(r["status"] in allowed(r) for r in k8s_rows.values()), \
        {i: (r["status"], r["evidence"][:300]) for i, r in k8s_rows.items() if r["status"] not in allowed(r)}
    for cid in ("3.1-pods", "3.2-storage", "3.4-gpu"):
        assert rows[cid]["status"] == "partial" and rows[cid]["proof"] == "simulated", (cid, rows[cid])
        assert "node, kind or cluster target" in rows[cid]["evidence"].splitlines()[0], rows[cid]["evidence"]
    assert all(r["proof"] == "live" for r in k8s_rows.values() if r["status"] == "passed"), k8s_rows
    assert signoff["verdict"] == "INCOMPLETE"
    assert "kwok runs no containers" in rows["3.4-controller"]["evidence"]
    # `-k k8s` runs 3-docs' platform check only: the real API server's version; no KServe controller here.
    docs = rows["3-docs"]["evidence"]
    assert "platform: kubernetes v1." in docs and "kserve not on this target (kwok" in docs, docs
    assert any("pods are simulated" in n for n in signoff["notes"])
    assert done.returncode == 0, done.stdout[-3000:]
    # Nothing left: the cluster's processes and KWOK_WORKDIR, the provider's folder, the discovery cache,
    # and the embedded stack's servers and files.
    assert_nothing_left(run_tmpdir, grace=15)


def test_a_failed_kubernetes_row_links_its_events_and_pod_logs(suite_run, run_tmpdir):
    """MinIO's Service made to select no pod once the stack is up (tests/kube_faults.py), run as a user runs
    it: 3.1-service fails, and its row links the namespace's diagnostics (events table, each pod's
    container logs, objects as YAML), secrets redacted."""
    done, signoff = suite_run("-p", "tests.kube_faults", "--target", "kwok", "-k", "test_k8s_31", timeout=600)
    assert signoff is not None, done.stdout[-3000:] + done.stderr[-3000:]
    row = next(c for c in signoff["criteria"] if c["id"] == "3.1-service")
    assert row["status"] == "failed", row
    diagnostics = [log for log in row["logs"] if Path(log).name.startswith("k8s-3.1-service-")]
    assert diagnostics, row["logs"]
    report_dir = Path(next(line.split("reports: ", 1)[1].split("/{", 1)[0] for line in done.stdout.splitlines()
                           if line.startswith("reports: ")))
    text = (report_dir / diagnostics[0]).read_text()
    events = text.split("## Events\n", 1)[1].split("## Pod logs", 1)[0]
    assert "REASON" in events and ("Scheduled" in events or "ScalingReplicaSet" in events), events[:2000]
    pods = text.split("## Pod logs", 1)[1].split("## Objects", 1)[0]
    assert "### pod minio-" in pods and "#### container minio" in pods, pods[:2000]
    assert "kind: Service" in text and "minio-typo" in text
    values = load_values()
    assert values.minio_secret_key not in text


# --- restarts for the durability rows (fixtures/restarts.py): the real API server's watch -----------

def test_a_restart_deletes_the_pods_and_waits_for_a_ready_replacement(kube, cluster):
    """KubeRestarts as the cluster targets hand it to the durability checks: postgresql-0 deleted, the
    real StatefulSet controller makes a new one (same name, new uid), kwok marks it Ready; then the
    `after` hook gets the new pods (the cluster target reopens its port-forwards with them)."""
    from mlops_acceptance.fixtures.restarts import KubeRestarts

    stack = deploy(kube, cluster)
    ns = stack.values.postgresql_namespace
    old = {p.get("metadata.uid") for p in kube.pods(ns, "app=postgresql")}
    followed = []
    said = KubeRestarts(kube, stack.values, timeout=60, after=lambda n, pods: followed.append((n, pods))).restart(
        "postgresql")
    now = kube.pods(ns, "app=postgresql")
    assert [p.name for p in now] == ["postgresql-0"] and now[0].ready, now
    assert now[0].get("metadata.uid") not in old
    assert said.startswith(f"postgresql: pod(s) {ns}/postgresql-0 (uid ") and "deleted; replacement" in said, said
    assert [(n, [p["metadata"]["uid"] for p in pods]) for n, pods in followed] == [(ns, [now[0].get("metadata.uid")])]


def test_a_pod_no_controller_replaces_fails_the_restart_naming_what_is_left(kube, cluster):
    """MinIO as a bare Pod (no Deployment): deleted, nothing makes another; the restart fails within its
    timeout and says what it saw (no pod at all)."""
    from mlops_acceptance.fixtures.kube.conditions import condition_true
    from mlops_acceptance.fixtures.restarts import KubeRestarts, RestartFailed

    def bare_pod(objects):
        dep = find(objects, "Deployment", "minio")
        objects[objects.index(dep)] = {"apiVersion": "v1", "kind": "Pod",
                                       "metadata": {"name": "minio-bare", "namespace": dep["metadata"]["namespace"],
                                                    "labels": {"app": "minio"}},
                                       "spec": dep["spec"]["template"]["spec"]}

    stack = deploy(kube, cluster, bare_pod)
    ns = stack.values.minio_namespace
    kube.wait_for("v1", "Pod", "minio-bare", ns, condition_true("Ready"), timeout=60, what="the bare MinIO pod Ready")
    with pytest.raises(RestartFailed) as info:
        KubeRestarts(kube, stack.values, timeout=15).restart("s3")
    text = str(info.value)
    assert text.startswith("s3: pod(s) minio-bare deleted; no Ready replacement") and "pods now: none" in text, text
