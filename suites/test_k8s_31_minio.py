"""CLOUD-3.1 MinIO: the Kubernetes criteria (objects, status, wiring) through the Kubernetes API.

On kwok the pods are simulated (Running/Ready by kwok's stages); everything read here is
what the real API server, scheduler and controllers made of the applied manifests.
"""

from __future__ import annotations

import pytest

from suites.k8s_helpers import check_claim, check_ingress, check_service, request_through_controller

criterion = pytest.mark.criterion


def data_path(container) -> str | None:
    """The S3 server's data path: MinIO's first argument after `server` that is not an option; for
    another server standing in (its arguments are values: s3_server_args), its first absolute path."""
    args = container.command + container.args
    rest = args[args.index("server") + 1:] if "server" in args else args
    return next((a for a in rest if not a.startswith("-") and ("server" in args or a.startswith("/"))), None)


@criterion("3.1-pods", scope="k8s")
def test_minio_pods_running_and_ready(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    dep = k8s.deployment("minio", ns)
    pods = k8s.pods(ns, "app=minio")
    evidence(dep.summary() + "; " + ("; ".join(p.summary() for p in pods) or "no pod labelled app=minio"))
    assert dep.exists, f"Deployment {ns}/minio is missing"
    assert dep.replicas == v.minio_replicas, f"Deployment asks for {dep.replicas} replicas, minio_replicas={v.minio_replicas}"
    assert dep.ready_replicas == v.minio_replicas, f"{dep.ready_replicas} ready replicas, want {v.minio_replicas}"
    running = [p for p in pods if p.phase == "Running" and p.ready]
    assert len(running) == v.minio_replicas, (
        f"{len(running)} Running+Ready pods labelled app=minio, want {v.minio_replicas}")
    assert all(p.phase == "Running" and p.ready for p in pods), "a pod labelled app=minio is not Running and Ready"
    assert {p.name for p in dep.pods()} >= {p.name for p in running}, "the Running pods are not the Deployment's"


@criterion("3.1-storage", scope="k8s")
def test_minio_claim_bound_and_mounted_at_the_data_path(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    tmpl = k8s.deployment("minio", ns).template
    container = tmpl.container("minio") or tmpl.container()
    assert container is not None, f"Deployment {ns}/minio has no container"
    claims = {name: vol["persistentVolumeClaim"]["claimName"] for name, vol in tmpl.volumes.items()
              if "persistentVolumeClaim" in vol}
    path = data_path(container)
    mounted = {name: container.mount_path(name) for name in claims}
    evidence(f"minio data path {path}; claim volumes {claims} mounted at {mounted}")
    at_path = [claims[name] for name, mount in mounted.items() if mount and path and
               (path == mount or path.startswith(mount.rstrip("/") + "/"))]
    assert at_path, f"no PersistentVolumeClaim is mounted at MinIO's data path {path!r} (mounts: {mounted})"
    check_claim(k8s.pvc(at_path[0], ns), v.minio_storage_size, v.minio_storage_class, "minio", evidence,
                getattr(stack, "values_replaced", {}).get("minio_storage_class"))


@criterion("3.1-service", scope="k8s")
def test_minio_service_ports_and_ready_endpoints(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    svc = k8s.service("minio", ns)
    pods = k8s.pods(ns, "app=minio")
    check_service(svc, 9000, pods, "minio", evidence)  # 9000: the S3 API
    console = svc.port("console") or next((p for p in svc.ports if p.get("port") != 9000), None)
    assert console, "Service exposes no console port"


@criterion("3.1-ingress", scope="k8s")
def test_minio_ingress_routes_to_the_service(stack, evidence):
    v = stack.values
    check_ingress(stack.k8s, v.minio_namespace, v.minio_ingress_enabled, v.minio_ingress_host, "minio", 9000,
                  evidence)
    if v.minio_ingress_enabled:  # S3 answers an anonymous bucket listing with 403, an unknown host never
        request_through_controller(stack, v.minio_ingress_host, "/", lambda r: r.status_code in (200, 403)
                                   and ("<Error" in r.text or "ListAllMyBucketsResult" in r.text), evidence)


@criterion("3.1-buckets", scope="k8s")
def test_bucket_job_completed(stack, evidence):
    """Bucket creation is automatic: the manifests' bucket Job ran to completion in the cluster."""
    ns = stack.values.minio_namespace
    jobs = [j for j in stack.k8s.jobs(ns) if "bucket" in j.name]
    evidence(f"bucket Jobs in {ns}: " + (", ".join(f"{j.name} succeeded={j.succeeded} failed={j.failed} "
                                                  f"complete={j.complete}" for j in jobs) or "none"))
    assert jobs, f"no bucket-creation Job in {ns}: buckets are not created automatically"
    assert any(j.complete for j in jobs), f"no bucket Job in {ns} completed"


@criterion("3.1-credentials", scope="k8s")
def test_minio_credentials_come_from_a_secret(stack, evidence, pytestconfig):
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    container = k8s.deployment("minio", ns).template.container("minio")
    assert container is not None, f"Deployment {ns}/minio has no container named minio"
    sources = container.env_sources()
    wanted = {"MINIO_ROOT_USER": v.minio_access_key, "MINIO_ROOT_PASSWORD": v.minio_secret_key}
    evidence("minio env sources: " + ", ".join(f"{k}<-{s[0]}:{'/'.join(map(str, s[1:])) if s[0] != 'literal' else '(literal)'}"
                                               for k, s in sources.items()))
    for var, expected in wanted.items():
        src = sources.get(var)
        assert src is not None, f"{var} is not set on the minio container"
        assert src[0] == "secret", f"{var} comes from {src[0]}, not a Secret"
        secret = k8s.secret(src[1], ns)
        assert secret.exists, f"Secret {ns}/{src[1]} (for {var}) is missing"
        assert src[2] in secret.keys, f"Secret {src[1]} has no key {src[2]} (keys: {secret.keys})"
        assert secret.matches(src[2], expected), f"Secret {src[1]}/{src[2]} does not hold the configured value"
    literal = [k for k, s in sources.items() if s[0] == "literal" and s[1] in (v.minio_access_key, v.minio_secret_key)]
    assert not literal, f"credentials as literal env values: {literal}"
    # Every other pod template of the namespace that passes MinIO credentials (the bucket Job, ...).
    templates = [(f"Job {j.name}", j.template) for j in k8s.jobs(ns)] + \
                [(f"CronJob {c.name}", c.template) for c in k8s.cronjobs(ns)]
    for label, tmpl in templates:
        for c in tmpl.containers + tmpl.init_containers:
            bad = [k for k, s in c.env_sources().items() if s[0] == "literal" and s[1] in v.secrets()]
            assert not bad, f"{label} container {c.name}: credentials as literal env values {bad}"
    leaking = {cm.name: cm.contains_any([v.minio_access_key, v.minio_secret_key]) for cm in k8s.configmaps(ns)}
    leaking = {name: keys for name, keys in leaking.items() if keys}
    evidence(f"ConfigMaps in {ns} holding a MinIO credential: {leaking or 'none'}; "
             f"Secrets read by the pod: {k8s.secret_refs(k8s.deployment('minio', ns).template, ns)}")
    assert not leaking, f"MinIO credentials found in ConfigMaps {leaking}"
    defaults = [k for k in v.default_credentials_in_use() if k.startswith("minio_")]
    profile = pytestconfig.getoption("profile", "dev")
    if defaults:
        evidence(f"FLAGGED: the spec's published default credentials are in use ({', '.join(defaults)}); "
                 f"profile {profile}")
    assert not (defaults and profile == "production"), f"default credentials {defaults} in the production profile"
