"""The stack as real pods on the node target, and the Kubernetes checks' teeth against real pods.

One node for the module (fixtures.kube.providers.node: the real provider path, images built here):
- the healthy stack passes every 3.1/3.2/3.3 Kubernetes check, the backup CronJob's own Job
  included (run now, its dump restored with identical row counts);
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
import secrets
from types import SimpleNamespace

import pytest

from fixtures.config import load_values
from tests.test_node import _why_not

pytestmark = [pytest.mark.timeout(2400), pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "")]

import suites.test_32_postgresql as s32  # noqa: E402
import suites.test_k8s_31_minio as m31  # noqa: E402  (modules, not functions: pytest must not collect them here)
import suites.test_k8s_32_postgresql as m32  # noqa: E402
import suites.test_k8s_33_mlflow as m33  # noqa: E402


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
    from fixtures.kube.options import KubeOptions
    from fixtures.kube.providers.node import NodeProvider

    # Without KServe: this module is about 3.1-3.3 (KServe on node: tests/test_kserve_node_faults.py).
    provider = NodeProvider(load_values(), options=KubeOptions.defaults(timeout=900), kserve=False)
    try:
        stack = provider.up()
        yield SimpleNamespace(provider=provider, stack=stack, kube=stack.k8s)
    finally:
        provider.down()


def fails(check, stack, *extra) -> str:
    evidence = Evidence()
    with pytest.raises(AssertionError) as info:
        check(stack, evidence, *extra)
    return f"{info.value}\n" + "\n".join(evidence)


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


def test_the_backup_cronjobs_own_job_runs_and_the_dump_restores(node):
    evidence = Evidence()
    m32.test_backup_job_from_the_cronjob_completes(node.stack, evidence)
    assert any("succeeded 1" in e for e in evidence), evidence
    evidence = Evidence()
    s32.test_the_configured_backup_restores_with_identical_row_counts(node.stack, node.stack.values,
                                                                      node.stack.postgres, evidence)
    assert any("restored into" in e for e in evidence), evidence


def test_a_backup_cronjob_whose_command_fails_fails_the_backup_check(node):
    kube, v = node.kube, node.stack.values
    ns = v.postgresql_namespace
    original = kube.read("batch/v1", "CronJob", "postgresql-backup", ns)
    broken = {"apiVersion": "batch/v1", "kind": "CronJob",
              "metadata": {"name": "postgresql-backup", "namespace": ns},
              "spec": copy.deepcopy(original["spec"])}
    pod = broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    # Still a pg_dump of the database as far as the spec says; the command itself fails.
    pod["initContainers"][0]["command"] = ["sh", "-c", f"echo pg_dump --dbname={v.postgresql_database} >&2; exit 3"]
    broken["spec"]["jobTemplate"]["spec"]["backoffLimit"] = 0
    kube.apply(broken)
    try:
        text = fails(m32.test_backup_job_from_the_cronjob_completes, node.stack)
        assert "did not complete" in text and "failed 1" in text, text
    finally:
        kube.apply({"apiVersion": "batch/v1", "kind": "CronJob",
                    "metadata": {"name": "postgresql-backup", "namespace": ns}, "spec": original["spec"]})


# --- defects in a scratch namespace: MinIO's objects of the manifests, one defect each --------------

def deploy_minio(node, mutate=None, wait: float = 60, component: str = "minio", **sets):
    """Render the manifests with every namespace set to a fresh one, keep the namespace and the
    component's objects (minio/*.j2 but the bucket Job; postgresql/*.j2 but the backup), break them with
    `mutate`, apply, wait; a stack-like object."""
    from fixtures.kube.deploy import Deployer
    from fixtures.kube.manifests import apply_order, render_manifests
    from fixtures.node.stack_images import image_values

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
    from fixtures.kube.manifests import render_manifests

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
    from fixtures.kube.manifests import render_manifests

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

    from fixtures.capabilities.postgres import Postgres

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

    import suites.test_33_mlflow as s33
    from fixtures import liveness

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
