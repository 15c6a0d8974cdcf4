"""CLOUD-3.3 MLflow: the Kubernetes criteria through the Kubernetes API."""

from __future__ import annotations

import pytest

from suites.k8s_helpers import check_ingress, check_service, request_through_controller

criterion = pytest.mark.criterion

SECRET = "mlflow-secret"


def _value_of(k8s, ns: str, source: tuple) -> str | None:
    """The value an env source resolves to, for non-secret sources (literal or ConfigMap)."""
    if source[0] == "literal":
        return source[1]
    if source[0] == "configmap":
        return k8s.configmap(source[1], ns).data.get(source[2])
    return None


def _arg_after(args: list[str], option: str) -> str | None:
    for i, a in enumerate(args):
        if a == option and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return None


@criterion("3.3-pods", scope="k8s")
def test_mlflow_replicas_ready_and_probes_hit_health(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.mlflow_namespace
    dep = k8s.deployment("mlflow", ns)
    pods = dep.pods()
    evidence(dep.summary() + "; " + ("; ".join(p.summary() for p in pods) or "no pods"))
    assert dep.exists, f"Deployment {ns}/mlflow is missing"
    assert dep.replicas == v.mlflow_replicas, f"Deployment asks for {dep.replicas}, mlflow_replicas={v.mlflow_replicas}"
    assert dep.ready_replicas == v.mlflow_replicas, f"{dep.ready_replicas} ready replicas, want {v.mlflow_replicas}"
    assert sum(1 for p in pods if p.phase == "Running" and p.ready) == v.mlflow_replicas, "pods not Running+Ready"
    container = dep.template.container("mlflow") or dep.template.container()
    live, ready = container.probe_target(container.liveness), container.probe_target(container.readiness)
    evidence(f"liveness {live}, readiness {ready} (container ports {container.ports})")
    for label, probe in (("liveness", live), ("readiness", ready)):
        assert probe is not None, f"no {label} probe"
        assert probe[0] == "httpGet" and probe[1] == "/health", f"{label} probe is {probe}, not GET /health"
        assert probe[2] == v.mlflow_port, f"{label} probe port {probe[2]}, mlflow_port={v.mlflow_port}"


@criterion("3.3-config", scope="k8s")
def test_mlflow_config_and_credentials_from_secret(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.mlflow_namespace
    dep = k8s.deployment("mlflow", ns)
    container = dep.template.container("mlflow") or dep.template.container()
    assert container is not None, f"Deployment {ns}/mlflow has no container"
    sources = container.env_sources()
    args = container.command + container.args
    evidence("mlflow env sources: " + ", ".join(
        f"{k}<-{s[0]}" + (f":{s[1]}/{s[2]}" if s[0] in ('secret', 'configmap') else "") for k, s in sources.items()))
    secret = k8s.secret(SECRET, ns)
    assert secret.exists, f"Secret {ns}/{SECRET} is missing"
    evidence(f"Secret {SECRET} keys: {secret.keys}")
    for var, expected in (("MLFLOW_BACKEND_STORE_URI", v.mlflow_backend_store_uri),
                          ("AWS_ACCESS_KEY_ID", v.mlflow_aws_access_key_id),
                          ("AWS_SECRET_ACCESS_KEY", v.mlflow_aws_secret_access_key)):
        src = sources.get(var)
        assert src is not None, f"{var} is not set on the mlflow container"
        assert src[0] == "secret" and src[1] == SECRET, f"{var} comes from {src[0]} {src[1:]} , not Secret {SECRET}"
        assert secret.matches(src[2], expected), f"Secret {SECRET}/{src[2]} does not hold the configured {var}"
    uri_arg = _arg_after(args, "--backend-store-uri")
    if uri_arg is not None:
        ref = uri_arg[2:-1] if uri_arg.startswith("$(") and uri_arg.endswith(")") else None
        assert ref and sources.get(ref, ("missing",))[0] == "secret", (
            "--backend-store-uri is given literally on the command line, not from the Secret")
    root = _arg_after(args, "--default-artifact-root") or _arg_after(args, "--artifacts-destination")
    if root and root.startswith("$(") and root.endswith(")"):
        root = _value_of(k8s, ns, sources.get(root[2:-1], ("missing",)))
    root = root or _value_of(k8s, ns, sources.get("MLFLOW_DEFAULT_ARTIFACT_ROOT", ("missing",)))
    endpoint = _value_of(k8s, ns, sources.get("MLFLOW_S3_ENDPOINT_URL", ("missing",)))
    evidence(f"artifact root {root!r} (configured {v.mlflow_artifact_root!r}); S3 endpoint {endpoint!r} "
             f"(configured {v.mlflow_s3_endpoint_url!r})")
    assert root == v.mlflow_artifact_root, f"artifact root {root!r}, mlflow_artifact_root={v.mlflow_artifact_root!r}"
    assert endpoint == v.mlflow_s3_endpoint_url, f"S3 endpoint {endpoint!r}, configured {v.mlflow_s3_endpoint_url!r}"
    literal = [k for k, s in sources.items() if s[0] == "literal" and any(x and x in s[1] for x in v.secrets())]
    assert not literal, f"credentials as literal env values: {literal}"
    leaking = {cm.name: cm.contains_any(v.secrets()) for cm in k8s.configmaps(ns)}
    leaking = {n: keys for n, keys in leaking.items() if keys}
    evidence(f"ConfigMaps in {ns} holding a credential: {leaking or 'none'}")
    assert not leaking, f"credentials in ConfigMaps: {leaking}"


@criterion("3.3-service", scope="k8s")
def test_mlflow_service_with_ready_endpoints(stack, evidence):
    v, k8s = stack.values, stack.k8s
    ns = v.mlflow_namespace
    svc = k8s.service("mlflow", ns)
    pods = k8s.deployment("mlflow", ns).pods()
    check_service(svc, v.mlflow_port, pods, "mlflow", evidence)
    assert len(svc.ready_addresses) == v.mlflow_replicas, (
        f"{len(svc.ready_addresses)} ready endpoints, mlflow_replicas={v.mlflow_replicas}")


@criterion("3.3-ingress", scope="k8s")
def test_mlflow_ingress_routes_to_the_service(stack, evidence):
    v = stack.values
    check_ingress(stack.k8s, v.mlflow_namespace, v.mlflow_ingress_enabled, v.mlflow_ingress_host, "mlflow",
                  v.mlflow_port, evidence)
    if v.mlflow_ingress_enabled:
        request_through_controller(stack, v.mlflow_ingress_host, "/health",
                                   lambda r: r.status_code == 200 and r.text.strip() == "OK", evidence)
