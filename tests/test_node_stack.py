"""The stack as real pods on the node target, and the Kubernetes checks' teeth against real pods.

One node for the module (fixtures.kube.providers.node: the real provider path, images built here):
- the healthy stack passes every 3.1/3.2/3.3 Kubernetes check, the backup CronJob's own Job
  included (run now, the dump it uploaded fetched and restored with identical row counts);
- then one defect at a time, each in a scratch namespace of its own (the MinIO objects of the
  manifests, rendered into it) or on the stack's own CronJob (restored afterwards), and the check
  of exactly that criterion fails, naming what it saw: an image that does not exist locally, a
  PVC of a storage class the node lacks, a Service whose selector matches no pod, credentials as
  a literal env value, an Ingress for another host, a backup CronJob whose command fails.

The suite run as a user runs it (`pytest suites/ --target node`) is test_node_suite_run.py's.
Needs root, Linux, the node's Debian packages and the Go binaries: skipped with the reason otherwise.
"""

from __future__ import annotations

import copy
import os
import secrets
from types import SimpleNamespace

import pytest

from mlops_acceptance.fixtures.config import load_values
from mlops_acceptance.fixtures.kube.conditions import rolled_out
from tests.test_node import _why_not

pytestmark = [pytest.mark.timeout(2400), pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]

import mlops_acceptance.suites.test_32_postgresql as s32  # noqa: E402
import mlops_acceptance.suites.test_durability as dur  # noqa: E402
import mlops_acceptance.suites.test_k8s_31_minio as m31  # noqa: E402  (modules, not functions: pytest must not collect them here)
import mlops_acceptance.suites.test_k8s_32_postgresql as m32  # noqa: E402
import mlops_acceptance.suites.test_k8s_33_mlflow as m33  # noqa: E402


class Evidence(list):
    def __call__(self, text: str, proof: str | None = None, note: str = "") -> None:
        self.append(str(text))
        if proof:
            self.proof(proof, note)

    def proof(self, kind: str, note: str = "") -> None:
        self.append(f"proof: {kind} {note}")

    @property
    def declared(self) -> list[str]:
        return [e for e in self if e.startswith("proof: declared")]

    def blocked_by(self, criterion: str, why: str) -> None:
        pytest.fail(f"blocked by {criterion}: {why}")


class _Config:
    def getoption(self, name, default=None):
        return "dev" if name == "profile" else default


@pytest.fixture(scope="module")
def node():
    from mlops_acceptance.fixtures.kube.options import KubeOptions
    from mlops_acceptance.fixtures.kube.providers.node import NodeProvider

    # Without KServe: this module is about 3.1-3.3 (KServe on node: tests/test_kserve_node_faults.py).
    provider = NodeProvider(load_values(), options=KubeOptions.defaults(timeout=900), kserve=False)
    try:
        stack = provider.up()
        yield SimpleNamespace(provider=provider, stack=stack, kube=stack.k8s)
    finally:
        provider.down()


# Scratch namespaces deploy_minio made during the running test: (kube, namespace).
_SCRATCH: list[tuple] = []


@pytest.fixture(autouse=True)
def scratch_namespaces_go_with_their_test():
    """Each test's scratch MinIO or PostgreSQL goes when the test ends, and is waited for: the node has 2
    cores and the stack requests about 1.6 of them, so one scratch pod left running starves the next
    test's pods and the stack's own replacements (Insufficient cpu)."""
    yield
    while _SCRATCH:
        kube, ns = _SCRATCH.pop()
        for pod in kube.pods(ns):  # no 30 s grace: nothing in a scratch namespace is worth keeping
            kube.delete("v1", "Pod", pod.name, ns, grace_period=0)
        kube.delete("v1", "Namespace", ns)
        kube.wait_gone("v1", "Namespace", ns, timeout=180)


def fails(check, stack, *extra) -> str:
    evidence = Evidence()
    try:
        with pytest.raises(AssertionError) as info:
            check(stack, evidence, *extra)
    except pytest.skip.Exception as exc:  # a check that cannot judge must not read as a pass of this test
        pytest.fail(f"{check.__name__} skipped instead of failing: {exc}\n" + "\n".join(evidence))
    return f"{info.value}\n" + "\n".join(evidence)


def judged(check, *args, **kwargs):
    """Run a check that must pass: a skip (it could not judge) fails this test."""
    try:
        return check(*args, **kwargs)
    except pytest.skip.Exception as exc:
        pytest.fail(f"{check.__name__} skipped: {exc}")


# --- the healthy stack --------------------------------------------------------------------------

def test_the_healthy_stack_passes_the_31_32_33_kubernetes_checks(node):
    stack = node.stack
    assert not [n for n in stack.notes if n.startswith("not ready")], stack.notes
    for check in (m31.test_minio_pods_running_and_ready, m31.test_minio_claim_bound_and_mounted_at_the_data_path,
                  m31.test_minio_service_ports_and_ready_endpoints, m31.test_minio_ingress_routes_to_the_service,
                  m31.test_bucket_job_completed,
                  m32.test_postgresql_statefulset_ready, m32.test_postgresql_claim_template_bound,
                  m32.test_postgresql_service_with_ready_endpoints, m32.test_backup_cronjob_scheduled,
                  m33.test_mlflow_replicas_ready_and_probes_hit_health, m33.test_mlflow_config_and_credentials_from_secret,
                  m33.test_mlflow_service_with_ready_endpoints, m33.test_mlflow_ingress_routes_to_the_service):
        check(stack, Evidence())
    m31.test_minio_credentials_come_from_a_secret(stack, Evidence(), _Config())
    # The checks that once read only specs observe the running pods and servers here: live, nothing declared.
    for check, extra, observed in ((m31.test_minio_claim_bound_and_mounted_at_the_data_path, (), "running with it: "),
                                   (m31.test_minio_credentials_come_from_a_secret, (_Config(),), "compared by digest"),
                                   (m32.test_postgresql_claim_template_bound, (), "SHOW data_directory -> /"),
                                   (m33.test_mlflow_config_and_credentials_from_secret, (), "compared by digest")):
        evidence = Evidence()
        check(stack, evidence, *extra)
        assert not evidence.declared, (check.__name__, evidence)
        assert any(observed in e for e in evidence), (check.__name__, evidence)
    # The ingress rows went through the real controller (Traefik), not only the objects.
    evidence = Evidence()
    m33.test_mlflow_ingress_routes_to_the_service(stack, evidence)
    assert any("through the ingress controller" in e and "HTTP 200" in e for e in evidence), evidence
    # Real pods, real volumes: the claims were bound by the node's provisioner, not made by the suite.
    pvs = node.kube.list("v1", "PersistentVolume")
    assert pvs and all(pv["spec"].get("hostPath", {}).get("path", "").startswith("/tmp/hostpath_pv") for pv in pvs), pvs


def backup_check(stack, evidence):
    return m32.test_backup_job_from_the_cronjob_uploads_a_dump_that_restores(
        stack=stack, mlflow_database=stack.postgres, evidence=evidence)


def test_the_backup_cronjobs_own_job_uploads_a_dump_that_restores(node):
    stack, v = node.stack, node.stack.values
    evidence = Evidence()
    judged(backup_check, stack, evidence)
    text = "\n".join(evidence)
    assert "succeeded 1" in text, text
    # What the Job itself uploaded, fetched and restored, not a dump this machine made.
    assert f"the Job uploaded s3://backups/postgresql/{v.postgresql_database}-" in text, text
    assert f"dbname: {v.postgresql_database}" in text and "restored into acceptance_restore_" in text, text
    assert stack.s3.listing("backups") == {}, "the check's dump was not removed"  # nothing else uploads there
    # The service half runs the flags of the CronJob the cluster holds, live (no declared proof here).
    evidence = Evidence()
    judged(s32.test_the_configured_backup_restores_with_identical_row_counts, stack, v, stack.postgres, evidence,
           _Config())
    assert any("restored into" in e for e in evidence) and not any(e.startswith("proof:") for e in evidence), evidence


def with_backup_cronjob(node, change):
    """Replace the stack's backup CronJob by a copy that `change(pod_spec, values)` broke; give back a
    context that puts the original back."""
    import contextlib

    kube, v = node.kube, node.stack.values
    ns = v.postgresql_namespace
    original = kube.read("batch/v1", "CronJob", "postgresql-backup", ns)
    broken = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "postgresql-backup", "namespace": ns},
              "spec": copy.deepcopy(original["spec"])}
    broken["spec"]["jobTemplate"]["spec"]["backoffLimit"] = 0
    change(broken["spec"]["jobTemplate"]["spec"]["template"]["spec"], v)

    @contextlib.contextmanager
    def applied():
        kube.apply(broken)
        try:
            yield
        finally:
            kube.apply({"apiVersion": "batch/v1", "kind": "CronJob",
                        "metadata": {"name": "postgresql-backup", "namespace": ns}, "spec": original["spec"]})
    return applied()


def _dump_command(v, database: str, file: str) -> str:
    return (f"pg_dump --host=postgresql.{v.postgresql_namespace}.svc.cluster.local --port=5432 "
            f"--username={v.postgresql_user} --dbname={database} --format=custom --file={file}")


def _command_fails(pod, v):
    # Still a pg_dump of the database as far as the spec says; the command itself fails.
    pod["initContainers"][0]["command"] = ["sh", "-c", f"echo pg_dump --dbname={v.postgresql_database} >&2; exit 3"]


def _empty_dump(pod, v):
    # Exits 0 and the upload exits 0: an empty file reaches the bucket.
    pod["initContainers"][0]["command"] = ["sh", "-c", f"echo pg_dump; : > /backup/{v.postgresql_database}.dump"]


def _truncated_dump(pod, v):
    db = v.postgresql_database
    pod["initContainers"][0]["command"] = [
        "sh", "-c", f"{_dump_command(v, db, '/tmp/full.dump')} && "
                    f"head -c $(( $(stat -c %s /tmp/full.dump) / 2 )) /tmp/full.dump > /backup/{db}.dump"]


def _wrong_database(pod, v):
    # A real, complete dump: of the maintenance database, not MLflow's.
    pod["initContainers"][0]["command"] = ["sh", "-c", _dump_command(v, "postgres", f"/backup/{v.postgresql_database}.dump")]


# broken backup CronJob -> what the failed check must say
BACKUP_FAULTS = {
    "command-fails": (_command_fails, ("did not complete", "failed 1")),
    "empty-dump": (_empty_dump, ("(0 bytes)", "not a dump pg_restore can read")),
    "truncated-dump": (_truncated_dump, ("s3://backups/postgresql/",)),
    "wrong-database": (_wrong_database, ("a dump of database 'postgres', not of the configured",)),
}


def _without_alembic_rows(pod, v):
    # As a --manifests copy whose pg_dump leaves out a table's rows: a dump that restores, one row short.
    pod["initContainers"][0]["command"].insert(-1, "--exclude-table-data=alembic_version")


def test_a_backup_cronjob_dumping_with_other_flags_fails_both_halves(node):
    """The flags of the CronJob the cluster holds are the ones judged, by the Job's own dump and by the
    service half's dump from this machine (not the suite's own manifests' flags)."""
    with with_backup_cronjob(node, _without_alembic_rows):
        text = fails(backup_check, node.stack)
        assert "row counts differ after restore" in text and "alembic_version" in text, text
        service = fails(lambda stack, evidence: s32.test_the_configured_backup_restores_with_identical_row_counts(
            stack, stack.values, stack.postgres, evidence, _Config()), node.stack)
        assert "--exclude-table-data=alembic_version" in service and "row counts differ" in service, service
    assert node.stack.s3.listing("backups") == {}, "the check's dump was not removed"


@pytest.mark.parametrize("fault", sorted(BACKUP_FAULTS))
def test_a_backup_cronjob_whose_job_uploads_no_good_dump_fails_the_backup_check(node, fault):
    change, said = BACKUP_FAULTS[fault]
    with with_backup_cronjob(node, change):
        text = fails(backup_check, node.stack)
    assert all(s in text for s in said), text
    assert node.stack.s3.listing("backups") == {}, "the check's dump was not removed"


# --- defects in a scratch namespace: MinIO's objects of the manifests, one defect each --------------

def deploy_minio(node, mutate=None, wait: float = 60, component: str = "minio", **sets):
    """Render the manifests with every namespace set to a fresh one, keep the namespace and the
    component's objects (minio/*.j2 but the bucket Job; postgresql/*.j2 but the backup), break them with
    `mutate`, apply, wait; a stack-like object."""
    from mlops_acceptance.fixtures.kube.deploy import Deployer
    from mlops_acceptance.fixtures.kube.manifests import apply_order, render_manifests
    from mlops_acceptance.fixtures.node.stack_images import image_values

    ns = f"t-{secrets.token_hex(3)}"
    assignments = [f"{k}={ns}" for k in ("minio_namespace", "postgresql_namespace", "mlflow_namespace")]
    assignments += [f"{k}={val}" for k, val in sets.items()]
    base = load_values(sets=assignments)
    values = base.model_copy(update=image_values(base))
    objects = [copy.deepcopy(dict(o)) for o in apply_order(render_manifests(values))
               if o.source.startswith(f"{component}/") and "buckets" not in o.source and "backup" not in o.source
               or o["kind"] == "Namespace"]
    objects = [o for o in objects if o["kind"] != "Namespace" or o["metadata"]["name"] == ns]
    if mutate:
        mutate(objects)
    deployer = Deployer(node.kube)
    _SCRATCH.append((node.kube, ns))
    applied = deployer.apply(objects)
    not_ready = deployer.wait_ready(applied, timeout=wait)
    node.provider.deployer.result.applied.extend(deployer.result.applied)  # deleted with the stack's
    return SimpleNamespace(values=values, k8s=node.kube, namespace=ns, not_ready=not_ready, deployer=deployer)


def find(objects, kind, name="minio"):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def minio_container(objects):
    return find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_an_image_that_does_not_exist_locally_fails_the_pod_check(node):
    def absent(objects):
        minio_container(objects)["image"] = "localhost/mlops-acceptance/absent:1"

    stack = deploy_minio(node, absent, wait=20)
    text = fails(m31.test_minio_pods_running_and_ready, stack)
    assert "0/1" in text or "ready" in text, text
    # And the pod says why: the kubelet could not pull what is not there.
    pods = node.kube.pods(stack.namespace, "app=minio")
    reasons = {s.get("state", {}).get("waiting", {}).get("reason") for p in pods for s in p.get("status.containerStatuses", [])}
    assert reasons & {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"}, reasons


def test_a_storage_class_the_node_lacks_fails_the_storage_check(node):
    stack = deploy_minio(node, wait=20, minio_storage_class="absent-class")
    text = fails(m31.test_minio_claim_bound_and_mounted_at_the_data_path, stack)
    assert "Pending" in text, text


def test_a_service_selecting_no_pod_fails_the_service_check(node):
    def nobody(objects):
        find(objects, "Service")["spec"]["selector"] = {"app": "nobody"}

    stack = deploy_minio(node, nobody)
    text = fails(m31.test_minio_service_ports_and_ready_endpoints, stack)
    assert "endpoint" in text.lower(), text
    # The pod itself is fine: only the Service is broken.
    m31.test_minio_pods_running_and_ready(stack, Evidence())


def test_credentials_as_a_literal_env_value_fail_the_credentials_check(node):
    def literal(objects):
        env = minio_container(objects)["env"]
        for e in env:
            if e["name"] == "MINIO_ROOT_PASSWORD":
                e.pop("valueFrom")
                e["value"] = stack_values.minio_secret_key

    stack_values = load_values()
    stack = deploy_minio(node, literal)
    text = fails(m31.test_minio_credentials_come_from_a_secret, stack, _Config())
    assert "MINIO_ROOT_PASSWORD" in text and stack_values.minio_secret_key not in text, text


def test_an_ingress_for_another_host_fails_the_ingress_check(node):
    def other_host(objects):
        find(objects, "Ingress")["spec"]["rules"][0]["host"] = "other.example.org"

    stack = deploy_minio(node, other_host)
    text = fails(m31.test_minio_ingress_routes_to_the_service, stack)
    assert "no Ingress" in text and "serves host" in text, text


# --- durability (--disruptive): the pods deleted, the data on their claims ---------------------------
# Opt-in until they have run to completion on a real node: written the day they landed, when the
# machine's one node was queued behind other runs and its builds (never run whole in that session).
DURABILITY_OPT_IN = "MLOPS_ACCEPTANCE_NODE_DURABILITY"
durability = pytest.mark.skipif(os.environ.get(DURABILITY_OPT_IN) != "1",
                                reason=f"the node's durability tests are opt-in: {DURABILITY_OPT_IN}=1")

def breaks(check, *args) -> str:
    """A durability check must fail: an assertion, or pytest.fail when the pod is not replaced."""
    evidence = Evidence()
    with pytest.raises((AssertionError, pytest.fail.Exception)) as info:
        check(*args, evidence)
    return f"{info.value}\n" + "\n".join(evidence)


def patch_and_replace(node, api_version: str, kind: str, name: str, namespace: str, selector: str, patch: dict):
    """A strategic-merge patch of a workload's pod template, then every old pod gone and a new one Ready
    (watched: fixtures/restarts.py; the Deployment's status lags behind a Recreate rollout)."""
    from mlops_acceptance.fixtures.restarts import wait_replaced

    kube = node.kube
    old = {p.get("metadata.uid") for p in kube.pods(namespace, selector)}
    kube.resource(api_version, kind).patch(body=patch, name=name, namespace=namespace,
                                           content_type="application/strategic-merge-patch+json")
    wait_replaced(kube, namespace, selector, old, timeout=300)


def data_volume(source: dict) -> dict:
    """The MinIO Deployment's `data` volume from `source` (the other sources nulled: one per volume)."""
    sources = {"persistentVolumeClaim": None, "emptyDir": None, **source}
    return {"spec": {"template": {"spec": {"volumes": [{"name": "data", **sources}]}}}}


def pgdata(path: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"name": "postgresql",
                                                           "env": [{"name": "PGDATA", "value": path}]}]}}}}


@durability
def test_the_healthy_stack_keeps_its_data_across_pod_restarts(node):
    """3.1/3.2-durability on real pods: MinIO's pod and postgresql-0 deleted (KubeRestarts, as the
    node target's Stack hands it to the checks), the replacements read their claims."""
    stack = node.stack
    assert stack.restarts is not None and type(stack.restarts).__name__ == "KubeRestarts", stack.restarts
    evidence = Evidence()
    dur.test_objects_survive_a_restart_of_the_object_store(stack, stack.values, stack.restarts, evidence)
    assert any("deleted; replacement" in e and "uid" in e for e in evidence), evidence
    evidence = Evidence()
    dur.test_mlflow_metadata_survives_a_restart_of_postgresql(stack, stack.restarts, evidence)
    assert any("postgresql-0" in e and "deleted; replacement" in e for e in evidence), evidence
    assert any(e.startswith("MLflow's pods") for e in evidence), evidence  # not restarted, and checked


@durability
def test_object_store_data_on_an_emptydir_fails_31_durability(node):
    stack, v = node.stack, node.stack.values
    ns = v.minio_namespace
    patch_and_replace(node, "apps/v1", "Deployment", "minio", ns, "app=minio", data_volume({"emptyDir": {}}))
    try:
        def make_bucket() -> None:  # on the new, empty volume: as the bucket Job would
            if not stack.s3.client.bucket_exists(v.artifact_bucket):
                stack.s3.client.make_bucket(v.artifact_bucket)

        dur.eventually(make_bucket, timeout=30)
        text = breaks(dur.test_objects_survive_a_restart_of_the_object_store, stack, v, stack.restarts)
        assert "before: wrote 3 objects" in text and "deleted; replacement" in text, text
        assert "after the restart" in text, text
    finally:
        patch_and_replace(node, "apps/v1", "Deployment", "minio", ns, "app=minio",
                          data_volume({"persistentVolumeClaim": {"claimName": "minio-data"}}))
    # Back on its claim: what was written before the fault is there again.
    assert v.artifact_bucket in dur.eventually(stack.s3.bucket_names, timeout=30)


@durability
def test_postgresql_data_off_its_claim_fails_32_durability(node):
    """PGDATA in the container's own filesystem: each new pod runs initdb again. MLflow is restarted
    once on the fresh database (it creates its tables at start), then the check writes, postgresql-0
    is deleted, and the replacement has an empty database."""
    stack, v, kube = node.stack, node.stack.values, node.kube
    ns, original = v.postgresql_namespace, "/var/lib/postgresql/data/pgdata"
    patch_and_replace(node, "apps/v1", "StatefulSet", "postgresql", ns, "app=postgresql", pgdata("/tmp/pgdata"))
    try:
        patch_and_replace(node, "apps/v1", "Deployment", "mlflow", v.mlflow_namespace, "app=mlflow",
                          {"spec": {"template": {"metadata": {"annotations": {
                              "mlops-acceptance/restarted-for": secrets.token_hex(3)}}}}})
        kube.wait_for("apps/v1", "Deployment", "mlflow", v.mlflow_namespace, rolled_out, timeout=300)
        text = breaks(dur.test_mlflow_metadata_survives_a_restart_of_postgresql, stack, stack.restarts)
        assert "before: experiment" in text and "postgresql-0" in text and "deleted; replacement" in text, text
        assert "still failing" in text, text
    finally:
        patch_and_replace(node, "apps/v1", "StatefulSet", "postgresql", ns, "app=postgresql", pgdata(original))
    # Back on its claim: MLflow serves the stack's own experiments again, without a restart of its own.
    dur.eventually(lambda: stack.mlflow.get("experiments/search", max_results=5))


@durability
def test_mlflow_restarted_with_postgresql_fails_32_durability(node):
    """"MLflow serves them without its own restart": a PostgreSQL restart that takes MLflow's pods with
    it (what a stack whose MLflow cannot reconnect would need) fails the row, though the data is there."""
    from mlops_acceptance.fixtures.restarts import wait_replaced

    stack, kube, ns = node.stack, node.kube, node.stack.values.mlflow_namespace

    class AlsoMlflow:
        def restart(self, component: str) -> str:
            said = stack.restarts.restart(component)
            old = {p.get("metadata.uid") for p in kube.pods(ns, "app=mlflow")}
            for pod in kube.pods(ns, "app=mlflow"):
                kube.delete("v1", "Pod", pod.name, ns)
            wait_replaced(kube, ns, "app=mlflow", old, timeout=300)
            kube.wait_for("apps/v1", "Deployment", "mlflow", ns, rolled_out, timeout=300)
            return said

    text = breaks(dur.test_mlflow_metadata_survives_a_restart_of_postgresql, stack, AlsoMlflow())
    assert "after, through the same MLflow server" in text, text  # the data itself came back
    assert "MLflow's pods were replaced or restarted" in text, text


@durability
def test_a_port_forward_follows_the_replaced_pod(node):
    """The cluster and kind targets reach the Services through kubectl port-forward, which pins one
    pod: without reopening, the forward is dead after the restart; the provider reopens it on the same
    local port (ClusterProvider.follow_replaced_pods), and the S3 client's URL works again."""
    from mlops_acceptance.fixtures.capabilities.s3 import S3
    from mlops_acceptance.fixtures.kube.providers.cluster import ClusterProvider
    from mlops_acceptance.fixtures.restarts import KubeRestarts

    provider, v = node.provider, node.stack.values
    host, port = ClusterProvider.service_address(provider, v.minio_namespace, "minio", 9000)
    forward = provider.forwards[-1]
    s3 = S3(f"http://{host}:{port}", v.minio_access_key, v.minio_secret_key)
    assert v.artifact_bucket in s3.bucket_names()
    timeout = v.timeouts.s3
    # Without following: the forward still points at the deleted pod.
    KubeRestarts(node.kube, v, timeout).restart("s3")
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises: the dead forward must not answer
        s3.bucket_names()
    pid = forward.proc.pid
    KubeRestarts(node.kube, v, timeout, after=provider.follow_replaced_pods).restart("s3")
    assert forward.proc.pid != pid and forward.local_port == port
    assert v.artifact_bucket in dur.eventually(s3.bucket_names, timeout=30)


# --- what only the running pods and servers show: the checks read them, not the specs -------------

def test_pods_that_predate_their_template_fail_storage_and_credentials(node):
    """MinIO's pods run with an emptyDir at the data path (the claim mounted aside, Bound) and the password
    as a literal; then the Deployment is paused and its template set right. The template now says
    what the criteria ask, the running pods do not: 3.1-storage and 3.1-credentials fail on the pods."""
    def as_made(objects):
        pod = find(objects, "Deployment")["spec"]["template"]["spec"]
        pod["volumes"] = [{"name": "data", "emptyDir": {}},
                          {"name": "claim", "persistentVolumeClaim": {"claimName": "minio-data"}}]
        pod["containers"][0]["volumeMounts"].append({"name": "claim", "mountPath": "/claim"})
        for e in pod["containers"][0]["env"]:
            if e["name"] == "MINIO_ROOT_PASSWORD":
                e.pop("valueFrom")
                e["value"] = stack_values.minio_secret_key

    stack_values = load_values()
    stack = deploy_minio(node, as_made)
    assert not stack.not_ready, stack.not_ready
    from mlops_acceptance.fixtures.kube.manifests import render_manifests

    fixed = next(copy.deepcopy(dict(o)) for o in render_manifests(stack.values)
                 if o["kind"] == "Deployment" and o["metadata"]["name"] == "minio")
    fixed["spec"]["paused"] = True
    node.kube.apply(fixed)
    dep = node.kube.deployment("minio", stack.namespace)
    assert dep.template.volumes["data"].get("persistentVolumeClaim"), dep.template.volumes
    text = fails(m31.test_minio_claim_bound_and_mounted_at_the_data_path, stack)
    assert "no PersistentVolumeClaim holds MinIO's data path" in text and "mounted at /data" in text, text
    text = fails(m31.test_minio_credentials_come_from_a_secret, stack, _Config())
    assert "MINIO_ROOT_PASSWORD comes from literal" in text and stack_values.minio_secret_key not in text, text


def test_a_secret_changed_after_the_pod_started_fails_credentials(node):
    """The pod started with one password; then its Secret was set to the configured one and the pod kept
    running: spec and Secret agree with the values, the process does not, and 3.1-credentials fails on
    the process environment (compared by digest: the value itself appears nowhere)."""
    from mlops_acceptance.fixtures.kube.manifests import render_manifests

    configured = load_values()
    stack = deploy_minio(node, minio_secret_key=f"old-{secrets.token_hex(8)}")
    assert not stack.not_ready, stack.not_ready
    stack.values = stack.values.model_copy(update={"minio_secret_key": configured.minio_secret_key})
    node.kube.apply(next(dict(o) for o in render_manifests(stack.values)
                         if o["kind"] == "Secret" and o["metadata"]["name"] == "minio-credentials"))
    text = fails(m31.test_minio_credentials_come_from_a_secret, stack, _Config())
    assert "MINIO_ROOT_PASSWORD different from the configured value" in text, text
    assert configured.minio_secret_key not in text and "comes from" not in text.split("\n")[0], text


@pytest.mark.skip(reason="unfinished: on its first node run (2026-12-04) the scratch PostgreSQL started with the "
                  "overridden PGDATA was not Ready within 180 s; the setup needs debugging before it proves anything")
def test_a_postgresql_whose_data_directory_is_off_the_claim_fails_storage(node):
    """PostgreSQL's pod mounts its claim where PGDATA says, but its process is started with another
    PGDATA: the spec looks right, the server keeps its data on the container's own filesystem, and
    3.2-storage fails on the live `SHOW data_directory`."""
    from psycopg.conninfo import make_conninfo

    from mlops_acceptance.fixtures.capabilities.postgres import Postgres

    elsewhere = "/var/lib/postgresql/elsewhere"

    def started_elsewhere(objects):
        c = find(objects, "StatefulSet", "postgresql")["spec"]["template"]["spec"]["containers"][0]
        c["command"] = ["sh", "-c", f'PGDATA={elsewhere} exec docker-entrypoint.sh "$@"', "sh"]

    stack = deploy_minio(node, started_elsewhere, wait=180, component="postgresql")
    assert not stack.not_ready, stack.not_ready
    v = stack.values
    ip = node.kube.pod("postgresql-0", stack.namespace).ip
    stack.postgres = Postgres(make_conninfo(host=ip, port=5432, user=v.postgresql_user, password=v.postgresql_password,
                                            dbname=v.postgresql_database),
                              admin_conninfo=make_conninfo(host=ip, port=5432, user="postgres", dbname="postgres",
                                                           password=v.postgresql_password))
    text = fails(m32.test_postgresql_claim_template_bound, stack)
    assert f"live data_directory '{elsewhere}'" in text and "container filesystem" in text, text


def test_every_ingress_path_is_requested_through_the_controller(node):
    """Two rule paths to MinIO pass, each requested through Traefik; a third path to a Service that exists,
    has ready endpoints and the port, but whose targetPort nothing listens on, fails only on its own
    request (the controller answers 502); a path to a Service that does not exist fails on the objects."""
    import time

    import requests

    host = f"{secrets.token_hex(3)}.minio.example.org"
    stack = deploy_minio(node, wait=180, minio_ingress_host=host)
    assert not stack.not_ready, stack.not_ready  # a pod not Ready yet is "no ready endpoints", not the fault
    stack.ingress_url = node.stack.ingress_url
    ingress = node.kube.read("networking.k8s.io/v1", "Ingress", "minio", stack.namespace)
    paths = ingress["spec"]["rules"][0]["http"]["paths"]

    def with_paths(*extra, routed=None):
        body = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "minio", "namespace": stack.namespace},
                "spec": {"rules": [{"host": host, "http": {"paths": [paths[0], *extra]}}]}}
        node.kube.apply(body)
        # Traefik watches Ingresses and reloads within seconds: wait until the last path answers as `routed`.
        deadline = time.monotonic() + 30
        while routed and time.monotonic() < deadline:
            if routed(requests.get(stack.ingress_url + extra[-1]["path"], headers={"Host": host}, timeout=5)):
                return
            time.sleep(1)

    def path(at: str, service: str, port: int = 9000) -> dict:
        return {"path": at, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": port}}}}

    with_paths(path("/models", "minio"), routed=lambda r: "<Error" in r.text)
    evidence = Evidence()
    m31.test_minio_ingress_routes_to_the_service(stack, evidence)
    assert any("rule path /models" in e and "GET /models" in e for e in evidence), evidence
    assert any("rule path / " in e for e in evidence), evidence

    node.kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "minio-no-listener",
                                                                          "namespace": stack.namespace},
                     "spec": {"selector": {"app": "minio"}, "ports": [{"port": 9000, "targetPort": 9999}]}})
    with_paths(path("/models", "minio"), path("/console", "minio-no-listener"), routed=lambda r: r.status_code >= 500)
    text = fails(m31.test_minio_ingress_routes_to_the_service, stack)
    assert "path /console (Service minio-no-listener): GET /console answered HTTP 5" in text, text

    with_paths(path("/absent", "absent"))
    text = fails(m31.test_minio_ingress_routes_to_the_service, stack)
    assert "path /absent -> Service absent, which does not exist" in text, text


# --- last: a component's pod that dies and cannot be replaced (it breaks the stack for good) --------

def test_a_pod_that_cannot_be_replaced_is_named_with_the_tail_of_its_log(node):
    """MLflow's pod deleted in the middle of the checks while a ResourceQuota refuses every new pod in
    its namespace: the MLflow checks fail, and the liveness view every failed check asks
    (fixtures/liveness.py) names mlflow as not running, with the quota's refusal from the events and
    the last lines of its log, copied before the pod went; the other components still answer."""
    import time

    import mlops_acceptance.suites.test_33_mlflow as s33
    from mlops_acceptance.fixtures import liveness

    stack, kube, ns = node.stack, node.kube, node.stack.values.mlflow_namespace
    names = {c.name for c in stack.components}
    assert {"s3", "postgresql", "mlflow"} <= names, names
    assert not liveness.look(stack.components), "a component is already down before the break"
    recorded = stack.logs["mlflow"]
    assert recorded.exists() and recorded.read_text().strip(), "no copy of mlflow's pod log"

    kube.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-new-pods", "namespace": ns},
                "spec": {"hard": {"pods": "0"}}})
    for pod in kube.pods(ns, "app=mlflow"):
        kube.delete("v1", "Pod", pod.name, ns, grace_period=0)
    deadline = time.monotonic() + 120
    while kube.pods(ns, "app=mlflow") and time.monotonic() < deadline:
        time.sleep(1)
    assert not kube.pods(ns, "app=mlflow"), "MLflow's pod was replaced despite the quota"
    # A pod deleted with no grace leaves the API at once; its container and kube-proxy's rules go a few
    # seconds later, and until then the old pod still answers. Wait for what the checks would see.
    while not liveness.look(stack.components) and time.monotonic() < deadline + 60:
        time.sleep(1)

    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises: the check must not pass
        s33.test_rest_api_experiments_and_runs(stack, Evidence())
    findings = liveness.look(stack.components)
    assert [f.component.name for f in findings] == ["mlflow"], [f.describe() for f in findings]
    text = findings[0].describe()
    assert text.startswith("mlflow is not running (no Ready pod in"), text
    assert "forbidden" in text and "quota" in text, text
    assert "last lines of mlflow.log:" in text and len(text.split("last lines of mlflow.log:")[1].strip()) > 0, text
    # The others are still judged on their own: the object store and the database answer.
    m31.test_minio_pods_running_and_ready(stack, Evidence())
    m32.test_postgresql_statefulset_ready(stack, Evidence())
