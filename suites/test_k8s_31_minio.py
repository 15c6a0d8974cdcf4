"""CLOUD-3.1 MinIO: the Kubernetes criteria (objects, status, wiring) through the Kubernetes API.

On kwok the pods are simulated (Running/Ready by kwok's stages); everything read here is
what the real API server, scheduler and controllers made of the applied manifests.
"""

from __future__ import annotations

import pytest

from mlops_acceptance.suites.k8s_helpers import (check_claim, check_ingress, check_process_env, check_service, requests_through_controller,
                                running_pods)

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
    """Read from the pods themselves, not the Deployment's template (a pod made before a template change
    runs with what it was made with): in each pod the volume that holds the S3 server's data path is a
    claim that is Bound, of the configured size and class, and a pod runs with it."""
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    dep = k8s.deployment("minio", ns)
    assert dep.exists, f"Deployment {ns}/minio is missing"
    pods = dep.pods()
    assert pods, f"no pod of Deployment {ns}/minio"
    held = {}
    for pod in pods:
        container = pod.template.container("minio") or pod.template.container()
        path = data_path(container)
        held[pod.name] = (container.name, path, *pod.template.claim_holding(container, path))
    evidence("; ".join(f"pod {name}: data path {path} held by " + (f"claim {claim} mounted at {mount}" if claim else
                                                                 f"no claim (mount {mount})")
                       for name, (_c, path, claim, mount) in held.items()))
    missing = {name: (path, mount) for name, (_c, path, claim, mount) in held.items() if not claim}
    assert not missing, ("no PersistentVolumeClaim holds MinIO's data path in pod(s) " + ", ".join(
        f"{name} (data path {path!r}, held by {'the volume mounted at ' + mount if mount else 'the container filesystem'})"
        for name, (path, mount) in missing.items()))
    for claim in sorted({claim for *_x, claim, _m in held.values()}):
        check_claim(k8s.pvc(claim, ns), v.minio_storage_size, v.minio_storage_class, "minio", evidence,
                    getattr(stack, "values_replaced", {}).get("minio_storage_class"))
    running = running_pods(pods, next(iter(held.values()))[0], f"Deployment {ns}/minio")
    evidence(f"running with it: {', '.join(p.name for p in running)}")


@criterion("3.1-service", scope="k8s")
def test_minio_service_ports_and_ready_endpoints(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    svc = k8s.service("minio", ns)
    pods = k8s.pods(ns, "app=minio")
    check_service(svc, 9000, pods, "minio", evidence)  # 9000: the S3 API
    console = svc.port("console") or next((p for p in svc.ports if p.get("port") != 9000), None)
    assert console, "Service exposes no console port"


def s3_answer(response) -> bool:
    """The S3 server answered (a listing, or its own XML error: 403 anonymous, 404 no such bucket), not the
    ingress controller (its 404 for an unrouted path, 502/503 for a backend it cannot reach)."""
    return response.status_code in (200, 403, 404) and any(
        tag in response.text for tag in ("<Error", "ListAllMyBucketsResult", "ListBucketResult"))


@criterion("3.1-ingress", scope="k8s")
def test_minio_ingress_routes_to_the_service(stack, evidence):
    v = stack.values
    check_ingress(stack.k8s, v.minio_namespace, v.minio_ingress_enabled, v.minio_ingress_host, "minio", 9000,
                  evidence)
    if v.minio_ingress_enabled:  # every rule path, each answered by the S3 server itself
        requests_through_controller(stack, v.minio_ingress_host, v.minio_namespace, lambda path: (path, s3_answer),
                                    evidence)


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
    """Read from the running pods (their own spec, envFrom included) and their process: a pod made before
    the template changed, or before the Secret did, runs with what it was made with."""
    v, k8s = stack.values, stack.k8s
    ns = v.minio_namespace
    pods = running_pods(k8s.deployment("minio", ns).pods(), "minio", f"Deployment {ns}/minio")
    wanted = {"MINIO_ROOT_USER": v.minio_access_key, "MINIO_ROOT_PASSWORD": v.minio_secret_key}
    for pod in pods:
        container = pod.template.container("minio")
        assert container is not None, f"pod {pod.name} has no container named minio"
        sources = container.env_sources(k8s.keys_of(ns))
        evidence(f"pod {pod.name} minio env sources: " + ", ".join(
            f"{k}<-{s[0]}:{'/'.join(map(str, s[1:])) if s[0] != 'literal' else '(literal)'}" for k, s in sources.items()))
        for var, expected in wanted.items():
            src = sources.get(var)
            assert src is not None, f"{var} is not set on pod {pod.name}'s minio container"
            assert src[0] == "secret", f"{var} comes from {src[0]}, not a Secret (pod {pod.name})"
            secret = k8s.secret(src[1], ns)
            assert secret.exists, f"Secret {ns}/{src[1]} (for {var}) is missing"
            assert src[2] in secret.keys, f"Secret {src[1]} has no key {src[2]} (keys: {secret.keys})"
            assert secret.matches(src[2], expected), f"Secret {src[1]}/{src[2]} does not hold the configured value"
        literal = [k for k, s in sources.items() if s[0] == "literal" and s[1] in (v.minio_access_key, v.minio_secret_key)]
        assert not literal, f"credentials as literal env values: {literal} (pod {pod.name})"
        check_process_env(stack, pod, "minio", wanted, evidence)
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
             f"Secrets read by the pod: {k8s.secret_refs(pods[0].template, ns)}")
    assert not leaking, f"MinIO credentials found in ConfigMaps {leaking}"
    defaults = [k for k in v.default_credentials_in_use() if k.startswith("minio_")]
    profile = pytestconfig.getoption("profile", "dev")
    if defaults:
        evidence(f"FLAGGED: the spec's published default credentials are in use ({', '.join(defaults)}); "
                 f"profile {profile}")
    assert not (defaults and profile == "production"), f"default credentials {defaults} in the production profile"
